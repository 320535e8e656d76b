/* sample.c - token sampling as docs/sampling.md specifies, step for step the same as
 * host/mote/reference/sample.py, so one seed gives one generation everywhere. */
#include <string.h>

#include "kernels.h"
#include "mote.h"

#define DEFAULT_RNG_STATE 0x9E3779B97F4A7C15ull

typedef struct {
    uint32_t index;
    float prob;
} candidate;

void mote_sampler_init(mote_sampler *smp, float temperature, float top_p, uint32_t top_k,
                       uint64_t seed)
{
    smp->temperature = temperature;
    smp->top_p = top_p;
    smp->top_k = top_k;
    smp->rng = seed ? seed : DEFAULT_RNG_STATE;
}

/* xorshift64* (as llama2.c's sampler) */
static uint32_t random_u32(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return (uint32_t)((x * 0x2545F4914F6CDD1Dull) >> 32);
}

static float random_f32(uint64_t *state)
{
    return (float)(random_u32(state) >> 8) / 16777216.0f;
}

/* a comes before b: more probable first, lower index first on ties */
static int before(const candidate *a, const candidate *b)
{
    return a->prob > b->prob || (a->prob == b->prob && a->index < b->index);
}

/* Sift c[root] down a heap whose parent comes *after* its children (a heap of the
 * "last" candidate), over c[0..n). */
static void sift_down(candidate *c, uint32_t root, uint32_t n)
{
    for (;;) {
        uint32_t child = 2u * root + 1u;
        candidate tmp;
        if (child >= n)
            return;
        if (child + 1u < n && before(&c[child], &c[child + 1u]))
            child++; /* the child that comes later */
        if (!before(&c[root], &c[child]))
            return;
        tmp = c[root];
        c[root] = c[child];
        c[child] = tmp;
        root = child;
    }
}

/* Heapsort into "before" order; no recursion, no libc. */
static void sort_candidates(candidate *c, uint32_t n)
{
    uint32_t i, end;
    if (n < 2u)
        return;
    for (i = n / 2u; i-- > 0;)
        sift_down(c, i, n);
    for (end = n - 1u; end > 0; end--) {
        candidate tmp = c[0];
        c[0] = c[end];
        c[end] = tmp;
        sift_down(c, 0, end);
    }
}

int32_t mote_sample(mote_sampler *smp, float *logits, uint32_t n, void *scratch)
{
    candidate *cand = (candidate *)scratch;
    const int filter_k = smp->top_k > 0 && smp->top_k < n;
    const int filter_p = smp->top_p > 0.0f && smp->top_p < 1.0f;
    float coin, cdf, kept_sum, r;
    uint32_t i, kept;

    if (!(smp->temperature > 0.0f))
        return mote_k_argmax(logits, n); /* greedy: no draw */
    for (i = 0; i < n; i++)
        logits[i] /= smp->temperature;
    mote_k_softmax(logits, n);
    coin = random_f32(&smp->rng);

    if (!filter_k && !filter_p) {
        cdf = 0.0f;
        for (i = 0; i < n; i++) {
            cdf += logits[i];
            if (coin < cdf)
                return (int32_t)i;
        }
        return (int32_t)(n - 1u);
    }

    for (i = 0; i < n; i++) {
        cand[i].index = i;
        cand[i].prob = logits[i];
    }
    sort_candidates(cand, n);
    kept = filter_k ? smp->top_k : n;
    if (filter_p) {
        cdf = 0.0f;
        for (i = 0; i < kept; i++) {
            cdf += cand[i].prob;
            if (cdf >= smp->top_p) {
                kept = i + 1u;
                break;
            }
        }
    }
    kept_sum = 0.0f;
    for (i = 0; i < kept; i++)
        kept_sum += cand[i].prob;
    r = coin * kept_sum;
    cdf = 0.0f;
    for (i = 0; i < kept; i++) {
        cdf += cand[i].prob;
        if (r < cdf)
            return (int32_t)cand[i].index;
    }
    return (int32_t)cand[kept - 1u].index;
}
