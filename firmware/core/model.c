/* model.c - the arena and the forward pass of docs/blob-format.md ("Numerics",
 * "Arena"). All memory comes from the caller's arena; weights are read in place. */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "mote.h"

/* Below this many multiply-adds a parallel_rows hand-off costs more than it saves:
 * about 5 us of work on one x86 core, against a hand-off of a few hundred ns when the
 * other thread is awake and tens of us when it must be woken or was preempted. All of
 * stories260K's products stay inline (bench/host.py measures 1 against 2 threads). */
#define PARALLEL_MIN_WORK 65536u

/* ------------------------------------------------------------------ arena */

typedef struct {
    uint64_t x, xb2, xb, q, k, v, hb, hb2, att, logits, xq, xs, rope_cos, rope_sin;
    uint64_t key_cache, value_cache, key_scales, value_scales, scratch, tokens;
} arena_sizes;

static uint64_t round16(uint64_t n) { return (n + 15u) & ~(uint64_t)15u; }
static uint64_t max64(uint64_t a, uint64_t b) { return a > b ? a : b; }

/* The table of docs/blob-format.md, "Arena" (host/mote/format/blob.py arena_bytes mirrors
 * it), for prefill passes of `batch` positions: the per-position pieces hold one row per
 * position. A blob's arena_bytes is the table for batch 1. */
static arena_sizes arena_table(const mote_config *c, uint64_t ctx, uint64_t batch)
{
    const uint64_t q_dim = (uint64_t)c->n_heads * c->head_dim;
    const uint64_t kv_dim = (uint64_t)c->n_kv_heads * c->head_dim;
    const uint64_t widest = max64(max64(c->dim, q_dim), c->hidden_dim);
    const uint64_t cache = (uint64_t)c->n_layers * ctx * kv_dim;
    arena_sizes a;
    a.x = a.xb2 = 4u * batch * c->dim;
    a.xb = 4u * batch * max64(c->dim, q_dim);
    a.q = 4u * batch * q_dim;
    a.k = a.v = 4u * batch * kv_dim;
    a.hb = a.hb2 = 4u * batch * c->hidden_dim;
    a.att = 4u * ctx;
    a.logits = 4u * (uint64_t)c->vocab_size;
    a.xq = batch * widest;
    a.xs = 4u * batch * ((widest + c->group_size - 1u) / c->group_size);
    a.rope_cos = a.rope_sin = 4u * batch * (uint64_t)(c->head_dim / 2u);
    a.key_cache = a.value_cache = cache;
    a.key_scales = a.value_scales = 2u * (uint64_t)c->n_layers * ctx;
    /* the model's own needs only: the console keeps its line and prompt ids itself */
    a.scratch = max64(4u * ctx, 8u * (uint64_t)c->vocab_size);
    /* a chat model's conversation history: re-prefilled when old turns are dropped */
    a.tokens = c->has_chat ? 4u * ctx : 0u;
    return a;
}

static uint64_t arena_total(const mote_config *c, uint64_t ctx, uint64_t batch)
{
    const arena_sizes a = arena_table(c, ctx, batch);
    return round16(a.x) + round16(a.xb2) + round16(a.xb) + round16(a.q) + round16(a.k) +
           round16(a.v) + round16(a.hb) + round16(a.hb2) + round16(a.att) +
           round16(a.logits) + round16(a.xq) + round16(a.xs) + round16(a.rope_cos) +
           round16(a.rope_sin) + round16(a.key_cache) + round16(a.value_cache) +
           round16(a.key_scales) + round16(a.value_scales) + round16(a.scratch) +
           round16(a.tokens);
}

uint64_t mote_param_count(const mote_config *c)
{
    const uint64_t dim = c->dim, q_dim = (uint64_t)c->n_heads * c->head_dim,
                   kv_dim = (uint64_t)c->n_kv_heads * c->head_dim;
    const uint64_t per_layer = 2u * dim + 2u * q_dim * dim + 2u * kv_dim * dim +
                               3u * (uint64_t)c->hidden_dim * dim;
    const uint64_t embedding = (uint64_t)c->vocab_size * dim;
    return embedding * (c->tied_classifier ? 1u : 2u) + c->n_layers * per_layer + dim;
}

uint32_t mote_arena_bytes_batch(const mote_config *c, uint32_t ctx, uint32_t batch)
{
    uint64_t total;
    if (c->group_size == 0 || batch == 0)
        return UINT32_MAX;
    total = arena_total(c, ctx, batch);
    return total > UINT32_MAX ? UINT32_MAX : (uint32_t)total;
}

uint32_t mote_arena_bytes(const mote_config *c, uint32_t ctx)
{
    return mote_arena_bytes_batch(c, ctx, 1u);
}

/* The RoPE table of every position: ctx rows of head_dim/2 cos, then as many of sin. */
static uint64_t rope_table_total(const mote_config *c, uint64_t ctx)
{
    return 2u * round16(4u * ctx * (uint64_t)(c->head_dim / 2u));
}

uint32_t mote_rope_table_bytes(const mote_config *c, uint32_t ctx)
{
    const uint64_t total = rope_table_total(c, ctx);
    return total > UINT32_MAX ? UINT32_MAX : (uint32_t)total;
}

/* Hand out the next piece of the arena; pieces keep 16-byte alignment. */
static void *carve(uint8_t **cursor, uint64_t bytes)
{
    void *p = *cursor;
    *cursor += (size_t)round16(bytes);
    return p;
}

mote_status mote_state_init(mote_state *s, const mote_model *m, void *arena, size_t arena_bytes,
                            uint32_t ctx)
{
    uint8_t *cursor = (uint8_t *)arena;
    arena_sizes a;
    uint32_t batch = 1, t;
    uint64_t room;
    int rope_all;
    if (s == NULL || m == NULL || arena == NULL || ((uintptr_t)arena & 15u) != 0)
        return MOTE_E_ARG;
    if (ctx == 0)
        ctx = m->config.ctx_len;
    if (ctx > m->config.max_seq_len)
        return MOTE_E_CONTEXT;
    if (arena_total(&m->config, ctx, 1u) > arena_bytes)
        return MOTE_E_ARENA;
    /* the bytes beyond a single position's needs hold first the RoPE table of every
     * position (a token then reads its row instead of computing it: pow, cos and sin
     * in double, software on cores without a double FPU), then widen prefill passes */
    rope_all = arena_total(&m->config, ctx, 1u) + rope_table_total(&m->config, ctx) <= arena_bytes;
    room = arena_bytes - (rope_all ? rope_table_total(&m->config, ctx) : 0u);
    while (batch < MOTE_MAX_BATCH && arena_total(&m->config, ctx, batch + 1u) <= room)
        batch++;
    memset(s, 0, sizeof *s);
    a = arena_table(&m->config, ctx, batch);
    s->model = m;
    s->ctx = ctx;
    s->batch = batch;
    s->x = carve(&cursor, a.x);
    s->xb2 = carve(&cursor, a.xb2);
    s->xb = carve(&cursor, a.xb);
    s->q = carve(&cursor, a.q);
    s->k = carve(&cursor, a.k);
    s->v = carve(&cursor, a.v);
    s->hb = carve(&cursor, a.hb);
    s->hb2 = carve(&cursor, a.hb2);
    s->att = carve(&cursor, a.att);
    s->logits = carve(&cursor, a.logits);
    s->xq = carve(&cursor, a.xq);
    s->xs = carve(&cursor, a.xs);
    s->rope_cos = carve(&cursor, a.rope_cos);
    s->rope_sin = carve(&cursor, a.rope_sin);
    s->key_cache = carve(&cursor, a.key_cache);
    s->value_cache = carve(&cursor, a.value_cache);
    s->key_scales = carve(&cursor, a.key_scales);
    s->value_scales = carve(&cursor, a.value_scales);
    s->scratch = carve(&cursor, a.scratch);
    s->scratch_bytes = (uint32_t)a.scratch;
    s->tokens = a.tokens ? carve(&cursor, a.tokens) : NULL;
    if (rope_all) {
        const uint32_t half = m->config.head_dim / 2u;
        float *cos_all = carve(&cursor, rope_table_total(&m->config, ctx) / 2u);
        float *sin_all = carve(&cursor, rope_table_total(&m->config, ctx) / 2u);
        for (t = 0; t < ctx; t++)
            mote_k_rope_table(cos_all + (size_t)t * half, sin_all + (size_t)t * half, t,
                              m->config.head_dim, m->config.rope_theta);
        s->rope_all_cos = cos_all;
        s->rope_all_sin = sin_all;
    }
    return MOTE_OK;
}

/* ------------------------------------------------------------------ products */

/* Up to three matrices that share one quantized input (wq/wk/wv, w_gate/w_up), for
 * n_pos positions, run as one row range 0..sum(rows) so a thread pool splits them in
 * one hand-off. Position p's input codes are at xq + p * cols, its scales at
 * xs + p * ceil(cols / group), its outputs at y[i] + p * y_stride[i]. */
typedef struct {
    const mote_tensor *w[3];
    float *y[3];
    uint32_t y_stride[3];
    uint32_t n, n_pos;
    const int8_t *xq;
    const float *xs;
    uint32_t group;
    const float *gate; /* CATS (one position): a bundled w_up computes only rows with gate[j] != 0 */
} matvec_job;

static void add_product(matvec_job *job, const mote_tensor *w, float *y, uint32_t y_stride)
{
    job->w[job->n] = w;
    job->y[job->n] = y;
    job->y_stride[job->n] = y_stride;
    job->n++;
}

static void matvec_rows(void *ctx, uint32_t begin, uint32_t end)
{
    const matvec_job *job = (const matvec_job *)ctx;
    uint32_t i, p, base = 0;
    for (i = 0; i < job->n && begin < end; i++) {
        const mote_tensor *w = job->w[i];
        const uint32_t rows = w->rows;
        if (begin < base + rows) {
            const uint32_t stop = end < base + rows ? end : base + rows;
            const uint32_t lo = begin - base, hi = stop - base;
            const size_t n_groups = (w->cols + job->group - 1u) / job->group;
            if (w->layout == MOTE_LAYOUT_ROWS && job->n_pos > 1u)
                mote_k_matmat(job->y[i], job->y_stride[i], w, job->xq, job->xs, job->n_pos,
                              job->group, lo, hi);
            else if (w->layout == MOTE_LAYOUT_ROWS)
                mote_k_matvec(job->y[i], w, job->xq, job->xs, job->group, lo, hi);
            else if (w->layout == MOTE_LAYOUT_BUNDLED && job->gate != NULL)
                mote_k_matvec_bundled_rows(job->y[i], w, job->gate, job->xq, job->xs,
                                           job->group, lo, hi);
            else /* the column kernels skip each position's own zero codes: one at a time */
                for (p = 0; p < job->n_pos; p++)
                    mote_k_matvec_cols(job->y[i] + (size_t)p * job->y_stride[i], w,
                                       job->xq + (size_t)p * w->cols, job->xs + p * n_groups,
                                       job->group, lo, hi);
            begin = stop;
        }
        base += rows;
    }
}

static void run_matvecs(mote_state *s, matvec_job *job)
{
    uint32_t i, rows = 0;
    uint64_t work = 0;
    for (i = 0; i < job->n; i++) {
        rows += job->w[i]->rows;
        work += (uint64_t)job->w[i]->rows * job->w[i]->cols * job->n_pos;
    }
    if (s->parallel_rows != NULL && work >= PARALLEL_MIN_WORK)
        s->parallel_rows(s->pool, matvec_rows, job, rows);
    else
        matvec_rows(job, 0, rows);
}

/* The nonzero codes of a quantized input and the input groups holding one: what a
 * column kernel reads of every matrix it multiplies (counted once per input). */
typedef struct {
    uint32_t kept, active;
} code_counts;

/* Count what a job's kernel reads for one position, `codes` being that position's
 * (host/mote/format/sparsity.py counts the same): row kernels read whole rows; column
 * kernels one column per nonzero code and one scales block per input group with a
 * nonzero code (a bundled w_up's rows: ffn_cats). */
static void count_reads(mote_reads *reads, const mote_tensor *w, code_counts codes, uint32_t group)
{
    const uint64_t n_groups = (w->cols + group - 1u) / group;
    if (w->layout == MOTE_LAYOUT_ROWS) {
        const uint64_t row_bytes = w->dtype == MOTE_Q8 ? w->cols : (w->cols + 1u) / 2u;
        reads->rows += w->rows;
        reads->bytes += (uint64_t)w->rows * (row_bytes + 2u * mote_scales_per_group(w->dtype) * n_groups);
    } else {
        reads->cols += codes.kept;
        reads->bytes += ((uint64_t)codes.kept + 2u * codes.active) * w->rows;
    }
}

/* Y = W X for the matrices of `job` and n_pos inputs x + p * x_stride of n floats:
 * each position quantized once, then one job. A row-major matrix is read once for
 * all positions, a column kernel's matrix once per position. */
static void products(mote_state *s, matvec_job *job, const float *x, uint32_t x_stride,
                     uint32_t n, uint32_t n_pos)
{
    const uint32_t group = s->model->config.group_size;
    const uint32_t n_groups = (n + group - 1u) / group;
    uint32_t i, p;
    job->group = group;
    job->xq = s->xq;
    job->xs = s->xs;
    job->n_pos = n_pos;
    for (p = 0; p < n_pos; p++)
        mote_k_quantize_act(s->xq + (size_t)p * n, s->xs + (size_t)p * n_groups,
                            x + (size_t)p * x_stride, n, group);
    for (i = 0; i < job->n; i++)
        if (job->w[i]->layout == MOTE_LAYOUT_ROWS)
            count_reads(&s->reads, job->w[i], (code_counts){0, 0}, group);
    for (p = 0; p < n_pos; p++) {
        code_counts codes = {0, 0};
        int counted = 0; /* each position's codes counted once, for its first column matrix */
        for (i = 0; i < job->n; i++) {
            if (job->w[i]->layout == MOTE_LAYOUT_ROWS)
                continue;
            if (!counted) {
                mote_k_count_codes(&codes.kept, &codes.active, s->xq + (size_t)p * n, n, group);
                counted = 1;
            }
            count_reads(&s->reads, job->w[i], codes, group);
        }
    }
    run_matvecs(s, job);
}

static matvec_job new_job(void)
{
    matvec_job job;
    memset(&job, 0, sizeof job);
    return job;
}

/* ------------------------------------------------------------------ sparsity */

/* The threshold of one point of a layer: values of magnitude <= it become 0 before
 * they are quantized (NaN is kept), so their codes are 0; -1 (drops nothing) at a
 * point left dense. */
static float threshold_of(const mote_model *m, uint32_t layer, mote_sparse_point point)
{
    if (!((m->sparsity.flags >> point) & 1u))
        return -1.0f;
    return m->sparsity.thresholds[(size_t)layer * MOTE_SPARSE_POINTS + point];
}

/* Dynamic sparsity at one point of a layer. */
static void drop_small(float *v, uint32_t n, const mote_model *m, uint32_t layer,
                       mote_sparse_point point)
{
    if ((m->sparsity.flags >> point) & 1u)
        (void)mote_k_drop_small(v, n, threshold_of(m, layer, point));
}

/* The FFN with CATS (w_up/w_down bundled) for one position: gate = act(w_gate xb)
 * dense; neurons at or below the threshold are dropped; w_up rows and w_down columns
 * only for the others. Expects xb normed (and dropped at FFN_IN); leaves w_down h in
 * xb2; hb and hb2 are its (hidden,) workspace. */
static void ffn_cats(mote_state *s, const mote_layer *L, uint32_t layer, const float *xb,
                     float *xb2, float *hb, float *hb2)
{
    const mote_config *c = &s->model->config;
    const uint32_t hidden = c->hidden_dim;
    matvec_job job = new_job();
    uint32_t i, kept;
    add_product(&job, &L->w_gate, hb, hidden);
    products(s, &job, xb, c->dim, c->dim, 1u);
    if (c->activation == MOTE_ACT_SILU)
        mote_k_silu(hb, hidden);
    else
        for (i = 0; i < hidden; i++)
            hb[i] = hb[i] > 0.0f ? hb[i] : 0.0f;
    /* the kept neurons counted as they are dropped (a dense gate point only counts) */
    kept = mote_k_drop_small(hb, hidden, threshold_of(s->model, layer, MOTE_SPARSE_GATE));
    /* s->xq still holds xb quantized for w_gate: the same input for w_up, whose
     * bundle of each kept neuron is read */
    s->reads.rows += kept;
    s->reads.bytes += (uint64_t)kept * (c->dim + 2u * ((c->dim + c->group_size - 1u) / c->group_size));
    job = new_job();
    add_product(&job, &L->w_up, hb2, hidden);
    job.group = c->group_size;
    job.xq = s->xq;
    job.xs = s->xs;
    job.n_pos = 1u;
    job.gate = hb;
    run_matvecs(s, &job);
    mote_k_gate_mul(hb, hb2, hidden);
    job = new_job();
    add_product(&job, &L->w_down, xb2, c->dim);
    products(s, &job, hb, hidden, hidden, 1u);
}

/* ------------------------------------------------------------------ forward */

/* Attention of positions pos..pos+n_pos-1 in one layer: their k and v (rotated, in
 * s->k and s->v) quantized into the cache first, then each position's heads over the
 * cache up to itself, into s->xb. */
static void attention(mote_state *s, uint32_t layer, uint32_t pos, uint32_t n_pos, uint32_t xb_stride)
{
    const mote_config *c = &s->model->config;
    const uint32_t hd = c->head_dim, kv_dim = c->n_kv_heads * hd, q_dim = c->n_heads * hd;
    const uint32_t heads_per_kv = c->n_heads / c->n_kv_heads;
    const size_t layer_base = (size_t)layer * s->ctx;
    const float sqrt_hd = sqrtf((float)hd);
    int8_t *kc = s->key_cache + layer_base * kv_dim;
    int8_t *vc = s->value_cache + layer_base * kv_dim;
    uint16_t *ks = s->key_scales + layer_base, *vs = s->value_scales + layer_base;
    uint32_t h, n_q, p;

    for (p = 0; p < n_pos; p++) {
        const size_t t = (size_t)pos + p;
        mote_k_quantize_kv(kc + t * kv_dim, ks + t, s->k + (size_t)p * kv_dim, kv_dim);
        mote_k_quantize_kv(vc + t * kv_dim, vs + t, s->v + (size_t)p * kv_dim, kv_dim);
    }
    /* each position of the pass over the cache up to itself. The query heads of a kv
     * head up to MOTE_ATTN_HEADS at a time, which a kernel set may serve with one
     * conversion of each key and value; a second head's scores go to the scratch space
     * (at least ctx floats), which the sampler and a chat turn's layout use only
     * between forward passes */
    for (p = 0; p < n_pos; p++) {
        const uint32_t seen = pos + p + 1u;
        for (h = 0; h < c->n_heads; h += n_q) {
            const uint32_t kv_head = h / heads_per_kv, left = (kv_head + 1u) * heads_per_kv - h;
            const uint32_t kv_off = kv_head * hd;
            float *const att[MOTE_ATTN_HEADS] = {s->att, (float *)s->scratch};
            uint32_t j;
            n_q = left < MOTE_ATTN_HEADS ? left : MOTE_ATTN_HEADS;
            mote_k_attn_scores(att, s->q + (size_t)p * q_dim + (size_t)h * hd, n_q, kc + kv_off, ks,
                               kv_dim, hd, seen, sqrt_hd);
            for (j = 0; j < n_q; j++)
                mote_k_softmax(att[j], seen);
            mote_k_attn_mix(s->xb + (size_t)p * xb_stride + (size_t)h * hd,
                            (const float *const *)att, n_q, vc + kv_off, vs, kv_dim, hd, seen);
        }
    }
}

static void add(float *x, const float *y, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; i++)
        x[i] += y[i];
}

/* One pass of n_pos (<= s->batch) checked tokens at positions pos..: every layer for
 * all of them, each matrix read once for all; the final norm and the classifier for the
 * last position only, when `logits` asks for them. Row p of every per-position buffer
 * is position pos + p. */
static void forward_pass(mote_state *s, const int32_t *tokens, uint32_t n_pos, uint32_t pos,
                         int logits)
{
    const mote_model *m = s->model;
    const mote_config *c = &m->config;
    const uint32_t dim = c->dim, hidden = c->hidden_dim, hd = c->head_dim;
    const uint32_t q_dim = c->n_heads * hd, kv_dim = c->n_kv_heads * hd;
    const uint32_t xb_stride = dim > q_dim ? dim : q_dim, half = hd / 2u;
    /* the pass's rows of the RoPE table: every position's, or computed here */
    const float *const rope_cos = s->rope_all_cos ? s->rope_all_cos + (size_t)pos * half : s->rope_cos;
    const float *const rope_sin = s->rope_all_sin ? s->rope_all_sin + (size_t)pos * half : s->rope_sin;
    uint32_t l, p;

    for (p = 0; p < n_pos; p++) {
        const mote_tensor *e = &m->tok_embedding;
        const uint64_t n_groups = (dim + c->group_size - 1u) / c->group_size;
        mote_k_embedding_row(s->x + (size_t)p * dim, e, (uint32_t)tokens[p], c->group_size);
        if (s->rope_all_cos == NULL)
            mote_k_rope_table(s->rope_cos + (size_t)p * half, s->rope_sin + (size_t)p * half,
                              pos + p, hd, c->rope_theta);
        /* the embedding row and the norm vectors (2 per layer + the final one) */
        s->reads.rows += 1u;
        s->reads.bytes += e->dtype == MOTE_F32 ? 4u * (uint64_t)dim
                          : (e->dtype == MOTE_Q8 ? dim : (dim + 1u) / 2u) +
                                2u * mote_scales_per_group(e->dtype) * n_groups;
        s->reads.bytes += 4u * (uint64_t)dim * (2u * c->n_layers + 1u);
    }

    for (l = 0; l < c->n_layers; l++) {
        const mote_layer *L = &m->layers[l];
        matvec_job job = new_job();
        for (p = 0; p < n_pos; p++) {
            float *xb = s->xb + (size_t)p * xb_stride;
            mote_k_rmsnorm(xb, s->x + (size_t)p * dim, (const float *)L->attn_norm.data, dim,
                           c->norm_eps);
            drop_small(xb, dim, m, l, MOTE_SPARSE_ATTN_IN);
        }
        add_product(&job, &L->wq, s->q, q_dim);
        add_product(&job, &L->wk, s->k, kv_dim);
        add_product(&job, &L->wv, s->v, kv_dim);
        products(s, &job, s->xb, xb_stride, dim, n_pos);
        for (p = 0; p < n_pos; p++) {
            const float *cos_t = rope_cos + (size_t)p * half, *sin_t = rope_sin + (size_t)p * half;
            mote_k_rope_apply(s->q + (size_t)p * q_dim, cos_t, sin_t, c->n_heads, hd);
            mote_k_rope_apply(s->k + (size_t)p * kv_dim, cos_t, sin_t, c->n_kv_heads, hd);
        }
        attention(s, l, pos, n_pos, xb_stride); /* writes the heads' outputs to xb */
        for (p = 0; p < n_pos; p++)
            drop_small(s->xb + (size_t)p * xb_stride, q_dim, m, l, MOTE_SPARSE_ATTN_OUT);
        job = new_job();
        add_product(&job, &L->wo, s->xb2, dim);
        products(s, &job, s->xb, xb_stride, q_dim, n_pos);
        for (p = 0; p < n_pos; p++)
            add(s->x + (size_t)p * dim, s->xb2 + (size_t)p * dim, dim);

        for (p = 0; p < n_pos; p++) {
            float *xb = s->xb + (size_t)p * xb_stride;
            mote_k_rmsnorm(xb, s->x + (size_t)p * dim, (const float *)L->ffn_norm.data, dim,
                           c->norm_eps);
            drop_small(xb, dim, m, l, MOTE_SPARSE_FFN_IN);
        }
        if (L->w_up.layout == MOTE_LAYOUT_BUNDLED) {
            for (p = 0; p < n_pos; p++) /* each position keeps its own neurons */
                ffn_cats(s, L, l, s->xb + (size_t)p * xb_stride, s->xb2 + (size_t)p * dim,
                         s->hb + (size_t)p * hidden, s->hb2 + (size_t)p * hidden);
        } else {
            job = new_job();
            add_product(&job, &L->w_gate, s->hb, hidden);
            add_product(&job, &L->w_up, s->hb2, hidden);
            products(s, &job, s->xb, xb_stride, dim, n_pos);
            for (p = 0; p < n_pos; p++) {
                float *h = s->hb + (size_t)p * hidden;
                const float *u = s->hb2 + (size_t)p * hidden;
                if (c->activation == MOTE_ACT_SILU)
                    mote_k_silu_mul(h, u, hidden);
                else
                    mote_k_relu_mul(h, u, hidden);
            }
            job = new_job();
            add_product(&job, &L->w_down, s->xb2, dim);
            products(s, &job, s->hb, hidden, hidden, n_pos);
        }
        for (p = 0; p < n_pos; p++)
            add(s->x + (size_t)p * dim, s->xb2 + (size_t)p * dim, dim);
    }

    if (!logits)
        return;
    mote_k_rmsnorm(s->xb, s->x + (size_t)(n_pos - 1u) * dim, (const float *)m->final_norm.data,
                   dim, c->norm_eps);
    if (m->classifier.dtype == MOTE_F32) {
        mote_k_matvec_f32(s->logits, &m->classifier, s->xb, 0, c->vocab_size);
        s->reads.rows += c->vocab_size;
        s->reads.bytes += 4u * (uint64_t)c->vocab_size * dim;
    } else {
        matvec_job job = new_job();
        add_product(&job, &m->classifier, s->logits, c->vocab_size);
        products(s, &job, s->xb, dim, dim, 1u);
    }
}

float *mote_prefill(mote_state *s, const int32_t *tokens, uint32_t n, uint32_t pos)
{
    const uint32_t vocab = s->model->config.vocab_size;
    uint32_t i;
    if (n == 0 || pos >= s->ctx || n > s->ctx - pos)
        return NULL;
    for (i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= vocab)
            return NULL;
    while (n > 0) {
        const uint32_t n_pos = n < s->batch ? n : s->batch;
        forward_pass(s, tokens, n_pos, pos, n_pos == n);
        tokens += n_pos;
        pos += n_pos;
        n -= n_pos;
    }
    return s->logits;
}

float *mote_forward(mote_state *s, int32_t token, uint32_t pos)
{
    return mote_prefill(s, &token, 1u, pos);
}
