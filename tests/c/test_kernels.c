/* test_kernels.c - every dispatched kernel (mote_k_*, the kernel set this is built
 * with) against its reference twin (mote_ref_*) on seeded random inputs, bit for bit:
 * integers and floats alike, since every set keeps the reference's order of float
 * operations per output. Every shape class: partial groups and blocks, odd columns,
 * the full int8 range, zero and non-finite values. Where the build has F16C, also the
 * f16 conversions against the CPU.
 *
 * Portable C99 over hal.h only, so the same program runs on the host (firmware/Makefile
 * kernel-test) and on a board (firmware/ports/<port> kernel-test, under QEMU). It
 * prints one line: "MOTE-KERNELS-PASS ..." or "MOTE-KERNELS-FAIL ..." after the first
 * failures, and returns 0 or 1 (the board's semihosting exit status). Run by
 * tests/test_kernels.py. */
#include <math.h>
#include <stddef.h>
#include <string.h>
#if defined(__F16C__)
#include <immintrin.h>
#endif

#include "hal.h"
#include "kernels.h"

#define KT_STR_(x) #x
#define KT_STR(x) KT_STR_(x)
#if defined(MOTE_KERNELS)
#define KT_SET KT_STR(MOTE_KERNELS)
#else
#define KT_SET "ref"
#endif

/* Weights, caches and scales of every test (one at a time), sized for a board's RAM. */
enum { MAXR = 172, MAXC = 320 };
static uint16_t weight_buf[MAXR * MAXC / 2];
static uint16_t scale_buf[16 + MAXR * MAXC / 2]; /* 32 bytes before the scales */
/* q4a's scale and offset pairs of the widest shapes at the smallest groups do not fit
 * (a board's RAM): those are left out */
#define Q4A_FITS(rows, ng) (2u * (rows) * (ng) <= MAXR * MAXC / 2)

static uint64_t rng_state = 0x1234567ull;
static uint32_t failures, checks;

static uint32_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

static float rnd_float(float scale) { return ((float)rnd() / 4294967296.0f * 2.0f - 1.0f) * scale; }

static int same_float(float a, float b)
{
    uint32_t x, y;
    if (a != a && b != b)
        return 1;
    memcpy(&x, &a, 4);
    memcpy(&y, &b, 4);
    return x == y;
}

static void put_str(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    hal_write(s, n);
}

static void put_u32(uint32_t v)
{
    char digits[11];
    int i = 10;
    digits[i] = '\0';
    do {
        digits[--i] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    put_str(&digits[i]);
}

/* The first failures are reported with the case's numbers (sizes, indices, codes). */
static void expect(int ok, const char *what, uint32_t a, uint32_t b, uint32_t c, uint32_t d)
{
    checks++;
    if (!ok && failures++ < 20) {
        put_str("FAIL ");
        put_str(what);
        put_str(" (");
        put_u32(a), put_str(" "), put_u32(b), put_str(" "), put_u32(c), put_str(" "), put_u32(d);
        put_str(")\n");
    }
}

/* The f16 conversions against the CPU's F16C instructions, where the build has them
 * (the same C runs on every target). */
static void test_f16(void)
{
#if defined(__F16C__)
    uint32_t h, i;
    for (h = 0; h < 65536u; h++) {
        float want = _cvtsh_ss((unsigned short)h), got = mote_f16_to_f32((uint16_t)h);
        expect(same_float(want, got), "f16_to_f32", h, 0, 0, 0);
    }
    for (i = 0; i < 2000000u; i++) {
        uint32_t bits = rnd();
        float f;
        unsigned short want;
        if (i % 4u == 1u) /* concentrate on the binary16 range, subnormals included */
            bits = (bits & 0x807FFFFFu) | ((100u + rnd() % 45u) << 23);
        memcpy(&f, &bits, 4);
        want = _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
        expect(mote_f32_to_f16(f) == want, "f32_to_f16", bits, want, mote_f32_to_f16(f), 0);
    }
#endif
}

/* x with some all-zero groups, some huge, tiny and subnormal values */
static void fill_activation(float *x, uint32_t n, uint32_t group)
{
    uint32_t i, mode = rnd() % 6u;
    float scale = mode == 0 ? 1.0f : mode == 1 ? 1e-30f : mode == 2 ? 1e30f : mode == 4 ? 1e-39f : 3.0f;
    for (i = 0; i < n; i++)
        x[i] = rnd_float(scale);
    if (mode == 5) /* subnormals next to normal values */
        for (i = 0; i < n; i += 3)
            x[i] = rnd_float(1e-40f);
    if (n > group && rnd() % 2u)
        for (i = 0; i < group; i++)
            x[i] = 0.0f;
}

static void test_quantize_act(void)
{
    static const uint32_t ns[] = {1, 2, 7, 8, 9, 31, 32, 33, 64, 100, 172, 320, 864};
    static const uint32_t groups[] = {2, 4, 6, 16, 32, 64, 128};
    float x[864], xs_ref[432], xs_opt[432];
    int8_t xq_ref[864], xq_opt[864];
    unsigned a, b, rep;
    for (a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (b = 0; b < sizeof groups / sizeof groups[0]; b++)
            for (rep = 0; rep < 8; rep++) {
                const uint32_t n = ns[a], g = groups[b], ng = (n + g - 1) / g;
                fill_activation(x, n, g);
                if (rep == 7) /* non-finite inputs must agree too */
                    x[rnd() % n] = rep % 2 ? INFINITY : NAN;
                mote_ref_quantize_act(xq_ref, xs_ref, x, n, g);
                mote_k_quantize_act(xq_opt, xs_opt, x, n, g);
                expect(memcmp(xq_ref, xq_opt, n) == 0, "quantize_act codes", n, g, rep, 0);
                expect(memcmp(xs_ref, xs_opt, ng * sizeof(float)) == 0, "quantize_act scales",
                       n, g, rep, 0);
            }
}

static uint16_t rnd_scale(void)
{
    uint32_t r = rnd() % 16u;
    if (r == 0)
        return 0; /* a zero scale */
    return mote_f32_to_f16(rnd_float(0.05f));
}

/* Row counts around multiples of 8 and 16 (the optimized sets' blocks of rows); column
 * counts that give every group count from 1 to 18 (x86 transposes the scales of a block
 * of rows eight, four, two or one groups at a time) and passes of more than 64 groups
 * whose last pass has 1, 3 or 7 (130, 134 and 142 columns in groups of 2). */
static void test_matvec(void)
{
    static const uint32_t rows_list[] = {1, 3, 7, 8, 9, 16, 17, 24, 31, 64, 172};
    static const uint32_t cols_list[] = {1, 2, 12, 13, 31, 32, 33, 64, 100, 130, 134, 142,
                                         172, 192, 224, 240, 288, 320};
    static const uint32_t groups[] = {2, 8, 16, 32, 48, 64, 128};
    uint8_t *data = (uint8_t *)weight_buf;
    uint16_t *scales = scale_buf + 16;
    float x[MAXC], xs[MAXC], y_ref[MAXR], y_opt[MAXR];
    int8_t xq[MAXC];
    unsigned a, b, c, dt, k;
    for (a = 0; a < sizeof rows_list / sizeof rows_list[0]; a++)
        for (b = 0; b < sizeof cols_list / sizeof cols_list[0]; b++)
            for (c = 0; c < sizeof groups / sizeof groups[0]; c++)
                for (dt = 0; dt < 3; dt++) { /* q8, q4, q4a */
                    const uint32_t rows = rows_list[a], cols = cols_list[b], g = groups[c];
                    const uint32_t ng = (cols + g - 1) / g;
                    const uint32_t row_bytes = dt ? (cols + 1) / 2 : cols;
                    mote_tensor w;
                    uint32_t i, begin, end;
                    for (i = 0; i < rows * row_bytes; i++)
                        data[i] = (uint8_t)rnd(); /* the whole int8 range, -128 included */
                    if (dt == 2 && !Q4A_FITS(rows, ng))
                        continue;
                    for (i = 0; i < rows * ng * (dt == 2 ? 2u : 1u); i++)
                        scales[i] = rnd_scale();
                    fill_activation(x, cols, g);
                    mote_ref_quantize_act(xq, xs, x, cols, g);
                    w.data = data;
                    w.scales = scales;
                    w.rows = rows;
                    w.cols = cols;
                    w.dtype = dt == 2 ? MOTE_Q4A : dt ? MOTE_Q4 : MOTE_Q8;
                    /* all rows, then sub-ranges as a thread would get: a random one and
                     * one from row 3 to the second last (mid-block at both ends) */
                    mote_ref_matvec(y_ref, &w, xq, xs, g, 0, rows);
                    mote_k_matvec(y_opt, &w, xq, xs, g, 0, rows);
                    expect(memcmp(y_ref, y_opt, rows * sizeof(float)) == 0, "matvec", rows, cols,
                           g, dt);
                    for (k = 0; k < 2; k++) {
                        begin = k == 0 || rows < 5 ? rnd() % rows : 3;
                        end = k == 0 || rows < 5 ? begin + 1 + rnd() % (rows - begin) : rows - 1;
                        memset(y_opt, 0, sizeof y_opt);
                        mote_k_matvec(y_opt, &w, xq, xs, g, begin, end);
                        expect(memcmp(y_ref + begin, y_opt + begin, (end - begin) * sizeof(float)) == 0,
                               "matvec row range", rows, cols, begin, end);
                        for (i = 0; i < MAXR; i++)
                            if ((i < begin || i >= end) && y_opt[i] != 0.0f)
                                expect(0, "matvec wrote outside its rows", rows, cols, begin, i);
                    }
                }
}

/* The matrix x matrix product against the reference matvec of each position: a few
 * positions, every shape class of test_matvec, all rows and a thread's sub-range, y
 * rows wider than the matrix (a stride) left alone beyond it. */
static void test_matmat(void)
{
    enum { MAXP = 5, STRIDE = MAXR + 3 };
    static const uint32_t rows_list[] = {1, 7, 8, 9, 17, 24, 64, 172};
    static const uint32_t cols_list[] = {1, 13, 32, 33, 64, 100, 320};
    static const uint32_t groups[] = {2, 16, 32, 48, 128};
    static float x[MAXC], xs[MAXP * MAXC], y_ref[MAXR], y_opt[MAXP * STRIDE];
    static int8_t xq[MAXP * MAXC];
    uint8_t *data = (uint8_t *)weight_buf;
    uint16_t *scales = scale_buf + 16;
    unsigned a, b, c, dt;
    for (a = 0; a < sizeof rows_list / sizeof rows_list[0]; a++)
        for (b = 0; b < sizeof cols_list / sizeof cols_list[0]; b++)
            for (c = 0; c < sizeof groups / sizeof groups[0]; c++)
                for (dt = 0; dt < 3; dt++) { /* q8, q4, q4a */
                    const uint32_t rows = rows_list[a], cols = cols_list[b], g = groups[c];
                    const uint32_t ng = (cols + g - 1) / g, n_pos = 1 + rnd() % MAXP;
                    const uint32_t row_bytes = dt ? (cols + 1) / 2 : cols;
                    const uint32_t begin = rnd() % rows, end = begin + 1 + rnd() % (rows - begin);
                    mote_tensor w;
                    uint32_t i, p;
                    for (i = 0; i < rows * row_bytes; i++)
                        data[i] = (uint8_t)rnd();
                    if (dt == 2 && !Q4A_FITS(rows, ng))
                        continue;
                    for (i = 0; i < rows * ng * (dt == 2 ? 2u : 1u); i++)
                        scales[i] = rnd_scale();
                    for (p = 0; p < n_pos; p++) {
                        fill_activation(x, cols, g);
                        mote_ref_quantize_act(xq + p * cols, xs + p * ng, x, cols, g);
                    }
                    memset(&w, 0, sizeof w);
                    w.data = data;
                    w.scales = scales;
                    w.rows = rows;
                    w.cols = cols;
                    w.dtype = dt == 2 ? MOTE_Q4A : dt ? MOTE_Q4 : MOTE_Q8;
                    for (i = 0; i < MAXP * STRIDE; i++)
                        y_opt[i] = -1.0f;
                    mote_k_matmat(y_opt, STRIDE, &w, xq, xs, n_pos, g, 0, rows);
                    for (p = 0; p < n_pos; p++) {
                        mote_ref_matvec(y_ref, &w, xq + p * cols, xs + p * ng, g, 0, rows);
                        expect(memcmp(y_ref, y_opt + p * STRIDE, rows * sizeof(float)) == 0,
                               "matmat", rows, cols, g, p);
                        for (i = rows; i < STRIDE; i++)
                            expect(y_opt[p * STRIDE + i] == -1.0f, "matmat wrote past its rows",
                                   rows, cols, p, i);
                    }
                    for (i = 0; i < MAXP * STRIDE; i++)
                        y_opt[i] = -1.0f;
                    mote_k_matmat(y_opt, STRIDE, &w, xq, xs, n_pos, g, begin, end);
                    for (p = 0; p < n_pos; p++) {
                        mote_ref_matvec(y_ref, &w, xq + p * cols, xs + p * ng, g, 0, rows);
                        for (i = 0; i < STRIDE; i++) {
                            const float got = y_opt[p * STRIDE + i];
                            expect(i >= begin && i < end ? same_float(got, y_ref[i]) : got == -1.0f,
                                   "matmat row range", rows, begin, end, i);
                        }
                    }
                }
}

static void test_attention(void)
{
    static const uint32_t head_dims[] = {2, 4, 6, 8, 12, 16, 40, 64};
    static const uint32_t n_pos_list[] = {1, 2, 7, 8, 9, 16, 31, 100, 257};
    enum { MAXP = 257 };
    int8_t *cache = (int8_t *)weight_buf; /* MAXP * 3 * 64 bytes */
    static uint16_t cs[MAXP];
    static float att_ref[MOTE_ATTN_HEADS][MAXP], att_opt[MOTE_ATTN_HEADS][MAXP];
    float q[MOTE_ATTN_HEADS * 64], out_ref[MOTE_ATTN_HEADS * 64], out_opt[MOTE_ATTN_HEADS * 64];
    float *const ref[MOTE_ATTN_HEADS] = {att_ref[0], att_ref[1]};
    float *const opt[MOTE_ATTN_HEADS] = {att_opt[0], att_opt[1]};
    unsigned a, b;
    uint32_t n_q, h;
    for (a = 0; a < sizeof head_dims / sizeof head_dims[0]; a++)
        for (b = 0; b < sizeof n_pos_list / sizeof n_pos_list[0]; b++)
            for (n_q = 1; n_q <= MOTE_ATTN_HEADS; n_q++) {
                const uint32_t hd = head_dims[a], n_pos = n_pos_list[b], stride = 3 * hd;
                const float sqrt_hd = sqrtf((float)hd);
                uint32_t i;
                for (i = 0; i < n_pos * stride; i++)
                    cache[i] = (int8_t)(rnd() % 255u) - 127;
                for (i = 0; i < n_pos; i++)
                    cs[i] = rnd_scale();
                for (i = 0; i < n_q * hd; i++)
                    q[i] = rnd_float(4.0f);
                if (n_pos == 7)
                    q[rnd() % (n_q * hd)] = rnd() % 2u ? NAN : INFINITY; /* non-finite too */
                /* the head in the middle of each cache row, as kv heads are */
                mote_ref_attn_scores(ref, q, n_q, cache + hd, cs, stride, hd, n_pos, sqrt_hd);
                mote_k_attn_scores(opt, q, n_q, cache + hd, cs, stride, hd, n_pos, sqrt_hd);
                for (h = 0; h < n_q; h++)
                    for (i = 0; i < n_pos; i++)
                        expect(same_float(att_ref[h][i], att_opt[h][i]), "attn_scores", hd, n_pos,
                               n_q, h);
                for (h = 0; h < n_q; h++)
                    mote_ref_softmax(att_ref[h], n_pos);
                mote_ref_attn_mix(out_ref, (const float *const *)ref, n_q, cache + hd, cs, stride,
                                  hd, n_pos);
                mote_k_attn_mix(out_opt, (const float *const *)ref, n_q, cache + hd, cs, stride, hd,
                                n_pos);
                for (i = 0; i < n_q * hd; i++)
                    expect(same_float(out_ref[i], out_opt[i]), "attn_mix", hd, n_pos, n_q, i);
            }
}

static void test_softmax(void)
{
    static const uint32_t ns[] = {1, 2, 7, 8, 9, 15, 16, 17, 100, 512, 1000};
    static float x[1000], ref[1000], opt[1000];
    unsigned a, rep;
    uint32_t i;
    for (i = 0; i < 200000u; i++) { /* the exp itself, over its whole range */
        float v = rnd_float(100.0f), e8[8], in[8];
        unsigned j;
        for (j = 0; j < 8; j++)
            in[j] = j == 0 ? v : rnd_float(j < 4 ? 10.0f : 90.0f);
        if (i % 1000u == 0)
            in[1] = NAN, in[2] = INFINITY, in[3] = -INFINITY;
        memcpy(ref, in, sizeof in);
        memcpy(e8, in, sizeof in);
        mote_k_softmax(e8, 8);
        mote_ref_softmax(ref, 8);
        for (j = 0; j < 8; j++)
            expect(same_float(ref[j], e8[j]), "softmax 8", i, j, 0, 0);
        /* the same through the partial-vector tail: five lanes */
        memcpy(ref, in, sizeof in);
        memcpy(e8, in, sizeof in);
        mote_k_softmax(e8, 5);
        mote_ref_softmax(ref, 5);
        for (j = 0; j < 5; j++)
            expect(same_float(ref[j], e8[j]), "softmax 5", i, j, 0, 0);
    }
    for (a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (rep = 0; rep < 24; rep++) {
            const uint32_t n = ns[a];
            for (i = 0; i < n; i++)
                x[i] = rnd_float(rep < 10 ? 5.0f : 60.0f);
            if (rep == 19)
                x[rnd() % n] = NAN;
            if (rep == 20) /* differences just above and below exp's cut-off */
                for (i = 1; i < n; i++)
                    x[i] = x[0] - 85.5f - rnd_float(2.0f);
            if (rep == 21) /* differences tiny against the max */
                for (i = 0; i < n; i++)
                    x[i] = 1e-17f + rnd_float(1e-21f);
            if (rep == 22) /* all tiny, subnormals among them */
                for (i = 0; i < n; i++)
                    x[i] = rnd_float(rnd() % 2u ? 1e-37f : 1e-44f);
            if (rep == 23) /* a subnormal next to a max of 1 */
                for (i = 0; i < n; i++)
                    x[i] = i % 3u ? rnd_float(1e-40f) : 1.0f;
            memcpy(ref, x, n * sizeof(float));
            memcpy(opt, x, n * sizeof(float));
            mote_ref_softmax(ref, n);
            mote_k_softmax(opt, n);
            for (i = 0; i < n; i++)
                expect(same_float(ref[i], opt[i]), "softmax", n, rep, i, 0);
        }
}

/* Greedy sampling's argmax: every length around the vector steps, ties (the first index
 * wins), the maximum at either end, signed zeros, infinities and NaN (at 0 and elsewhere). */
static void test_argmax(void)
{
    static const uint32_t ns[] = {1, 2, 7, 31, 32, 33, 63, 64, 65, 100, 1000};
    static float x[1000];
    unsigned a, rep;
    uint32_t i;
    for (a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (rep = 0; rep < 40; rep++) {
            const uint32_t n = ns[a];
            for (i = 0; i < n; i++) /* few distinct values: many ties */
                x[i] = rep < 10 ? rnd_float(5.0f) : (float)(rnd() % 7u) - 3.0f;
            if (rep == 10)
                x[n - 1] = 100.0f;
            if (rep == 11)
                x[0] = 100.0f;
            if (rep == 12 || rep == 13) /* only zeros of both signs */
                for (i = 0; i < n; i++)
                    x[i] = rnd() % 2u ? 0.0f : -0.0f;
            if (rep == 14)
                x[rnd() % n] = INFINITY;
            if (rep == 15)
                for (i = 0; i < n; i++)
                    x[i] = -INFINITY;
            if (rep == 16 || rep == 17)
                x[rnd() % n] = NAN;
            if (rep == 18)
                x[0] = NAN;
            if (rep == 19)
                for (i = 0; i < n; i++)
                    x[i] = i % 3u ? NAN : -1.0f;
            expect(mote_k_argmax(x, n) == mote_ref_argmax(x, n), "argmax", n, rep,
                   (uint32_t)mote_ref_argmax(x, n), (uint32_t)mote_k_argmax(x, n));
        }
}

/* The vector exp inside the SiLU kernels, lane by lane against mote_expf through the
 * reference formula: every length (partial last vector), and inputs over the whole
 * range of exp, beyond its cut-offs, and non-finite. */
static void test_silu_mul(void)
{
    static const uint32_t ns[] = {1, 3, 7, 8, 9, 15, 16, 17, 64, 172, 864};
    static float h[864], u[864], ref[864], opt[864], act_ref[864];
    static const float special[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 87.0f, -87.0f,
                                    88.0f, -88.0f, 89.0f, -89.0f, 1e30f, -1e30f, 1e-30f,
                                    -1e-45f, 3.4e38f, -3.4e38f};
    unsigned a, rep;
    uint32_t i;
    for (a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (rep = 0; rep < 400; rep++) {
            const uint32_t n = ns[a];
            const float scale = rep % 4u == 0 ? 2.0f : rep % 4u == 1 ? 20.0f : rep % 4u == 2 ? 100.0f : 1e6f;
            for (i = 0; i < n; i++) {
                h[i] = rnd_float(scale);
                u[i] = rnd_float(rep % 2u ? 3.0f : 1e20f);
                if (rnd() % 16u == 0)
                    h[i] = special[rnd() % (sizeof special / sizeof special[0])];
                if (rnd() % 64u == 0)
                    u[i] = special[rnd() % (sizeof special / sizeof special[0])];
            }
            memcpy(ref, h, n * sizeof(float));
            memcpy(opt, h, n * sizeof(float));
            mote_ref_silu_mul(ref, u, n);
            mote_k_silu_mul(opt, u, n);
            for (i = 0; i < n; i++)
                expect(same_float(ref[i], opt[i]), "silu_mul", n, rep, i, 0);
            /* SiLU alone (CATS): the reference's bits, which times u are silu_mul's */
            memcpy(act_ref, h, n * sizeof(float));
            memcpy(opt, h, n * sizeof(float));
            mote_ref_silu(act_ref, n);
            mote_k_silu(opt, n);
            for (i = 0; i < n; i++) {
                expect(same_float(act_ref[i], opt[i]), "silu", n, rep, i, 0);
                expect(same_float(act_ref[i] * u[i], ref[i]), "silu then multiply", n, rep, i, 0);
            }
        }
}

/* The sparsity points' drop, the code counts and CATS' product: values at, below and above the
 * threshold, signed zeros, NaN; a threshold below 0 only counts. */
static void test_drop_small_gate_mul(void)
{
    static const uint32_t ns[] = {1, 5, 8, 9, 31, 128, 352, 864};
    static float h[864], u[864], ref[864], opt[864];
    static const float special[] = {NAN, -NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1e-45f, -3.4e38f};
    unsigned a, rep;
    uint32_t i;
    for (a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (rep = 0; rep < 50; rep++) {
            const uint32_t n = ns[a];
            float threshold;
            uint32_t kept_ref, kept_opt;
            for (i = 0; i < n; i++) {
                h[i] = rnd_float(2.0f);
                u[i] = rnd_float(3.0f);
                if (rnd() % 8u == 0)
                    h[i] = special[rnd() % (sizeof special / sizeof special[0])];
                if (rnd() % 16u == 0)
                    u[i] = special[rnd() % (sizeof special / sizeof special[0])];
            }
            threshold = rep % 5u == 0 ? -1.0f : rep % 5u == 1 ? 0.0f : rep % 5u == 2 ? fabsf(h[rnd() % n])
                                                                                     : rnd_float(1.0f) + 1.0f;
            if (threshold != threshold)
                threshold = 0.5f;
            memcpy(ref, h, n * sizeof(float));
            memcpy(opt, h, n * sizeof(float));
            kept_ref = mote_ref_drop_small(ref, n, threshold);
            kept_opt = mote_k_drop_small(opt, n, threshold);
            expect(kept_ref == kept_opt, "drop_small kept", n, rep, kept_ref, kept_opt);
            for (i = 0; i < n; i++)
                expect(same_float(ref[i], opt[i]), "drop_small", n, rep, i, 0);
            {   /* the read counters' code counts, zeros in runs and alone */
                static int8_t codes[864];
                const uint32_t group = rep % 3u == 0 ? 32u : rep % 3u == 1 ? 20u : 64u;
                uint32_t kept[2], active[2];
                for (i = 0; i < n; i++)
                    codes[i] = (int8_t)(rnd() % 4u == 0 || (i / 40u) % 3u == 1 ? 0 : (int32_t)(rnd() % 255u) - 127);
                mote_ref_count_codes(&kept[0], &active[0], codes, n, group);
                mote_k_count_codes(&kept[1], &active[1], codes, n, group);
                expect(kept[0] == kept[1] && active[0] == active[1], "count_codes", n, group, kept[1], active[1]);
            }
            memcpy(opt, ref, n * sizeof(float));
            mote_ref_gate_mul(ref, u, n);
            mote_k_gate_mul(opt, u, n);
            for (i = 0; i < n; i++)
                expect(same_float(ref[i], opt[i]), "gate_mul", n, rep, i, 0);
        }
}

static void test_rmsnorm_quantize_kv(void)
{
    static const uint32_t ns[] = {1, 7, 8, 9, 31, 32, 40, 64, 100, 320};
    static float x[320], w[320], ref[320], opt[320];
    int8_t q_ref[320], q_opt[320];
    unsigned a, rep;
    uint32_t i;
    for (a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (rep = 0; rep < 40; rep++) {
            const uint32_t n = ns[a];
            uint16_t s_ref, s_opt;
            fill_activation(x, n, 8);
            for (i = 0; i < n; i++)
                w[i] = rnd_float(2.0f);
            if (rep == 39) /* non-finite inputs must agree too */
                x[rnd() % n] = rep % 2 ? INFINITY : NAN;
            if (rep == 38)
                memset(x, 0, n * sizeof(float));
            mote_ref_rmsnorm(ref, x, w, n, 1e-5f);
            mote_k_rmsnorm(opt, x, w, n, 1e-5f);
            for (i = 0; i < n; i++)
                expect(same_float(ref[i], opt[i]), "rmsnorm", n, rep, i, 0);
            mote_ref_quantize_kv(q_ref, &s_ref, x, n);
            mote_k_quantize_kv(q_opt, &s_opt, x, n);
            expect(s_ref == s_opt, "quantize_kv scale", n, rep, s_ref, s_opt);
            expect(memcmp(q_ref, q_opt, n) == 0, "quantize_kv codes", n, rep, 0, 0);
        }
}

/* Random int8 activation codes, zero with probability 1/2 and some whole groups zero
 * (as a sparse token's), and their positive scales. */
static void fill_sparse_codes(int8_t *xq, float *xs, uint32_t n, uint32_t group)
{
    uint32_t i;
    for (i = 0; i < n; i++)
        xq[i] = rnd() % 2u ? 0 : (int8_t)(rnd() % 255u) - 127;
    for (i = 0; i < n; i += group)
        if (rnd() % 4u == 0)
            memset(xq + i, 0, n - i < group ? n - i : group);
    for (i = 0; i < (n + group - 1) / group; i++)
        xs[i] = (float)(rnd() % 1000u + 1u) / 64000.0f;
}

static void fill_bytes(uint8_t *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        p[i] = (uint8_t)rnd();
}

/* The f16 scales inside a region: every other byte pair made a sane scale. */
static void fill_scales(uint16_t *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        p[i] = rnd_scale();
}

static void test_sparse(void)
{
    static const uint32_t rows_list[] = {2, 6, 8, 18, 64, 66, 130};
    static const uint32_t cols_list[] = {1, 3, 8, 17, 40, 100, 172};
    static const uint32_t groups[] = {2, 8, 16, 32, 128}; /* 128: more needed columns than a
                                                            * Cortex-M column kernel lists at once */
    float xs[MAXC], gate[MAXC], y_ref[MAXR], y_opt[MAXR];
    int8_t xq[MAXC];
    unsigned a, b, c;
    for (a = 0; a < sizeof rows_list / sizeof rows_list[0]; a++)
        for (b = 0; b < sizeof cols_list / sizeof cols_list[0]; b++)
            for (c = 0; c < sizeof groups / sizeof groups[0]; c++) {
                const uint32_t rows = rows_list[a], cols = cols_list[b], g = groups[c];
                const uint32_t ngc = (cols + g - 1) / g, ngr = (rows + g - 1) / g;
                /* a bundled region: per group of g neurons the down scales, then g
                 * bundles of (up row, up scales, down column) */
                const size_t bundle = 2u * rows + 2u * ngr, stride = 2u * rows + g * bundle;
                mote_tensor w;
                uint32_t i, begin, end, k;
                memset(&w, 0, sizeof w);
                /* input-major: codes of the whole int8 range, then the scales */
                fill_bytes((uint8_t *)weight_buf, (size_t)rows * cols);
                fill_scales(scale_buf + 16, (size_t)rows * ngc);
                fill_sparse_codes(xq, xs, cols, g);
                w.data = weight_buf;
                w.scales = scale_buf + 16;
                w.rows = rows;
                w.cols = cols;
                w.dtype = MOTE_Q8;
                w.layout = MOTE_LAYOUT_COLUMNS;
                begin = rnd() % rows;
                end = begin + 1 + rnd() % (rows - begin);
                mote_ref_matvec_cols(y_ref, &w, xq, xs, g, 0, rows);
                mote_k_matvec_cols(y_opt, &w, xq, xs, g, 0, rows);
                expect(memcmp(y_ref, y_opt, rows * sizeof(float)) == 0, "matvec_cols", rows, cols, g, 0);
                mote_k_matvec_cols(y_opt, &w, xq, xs, g, begin, end);
                expect(memcmp(y_ref + begin, y_opt + begin, (end - begin) * sizeof(float)) == 0,
                       "matvec_cols row range", rows, cols, begin, end);
                if (ngc * stride > sizeof weight_buf)
                    continue;
                /* bundled: w_down (rows = dim, cols = hidden) and w_up (cols = dim) */
                fill_bytes((uint8_t *)weight_buf, ngc * stride);
                for (k = 0; k < ngc; k++) { /* the scales at their places, sane */
                    uint8_t *base = (uint8_t *)weight_buf + k * stride;
                    fill_scales((uint16_t *)(void *)base, rows);
                    for (i = 0; i < g; i++)
                        fill_scales((uint16_t *)(void *)(base + 2u * rows + i * bundle + rows), ngr);
                }
                w.scales = NULL;
                w.layout = MOTE_LAYOUT_BUNDLED;
                mote_ref_matvec_cols(y_ref, &w, xq, xs, g, 0, rows);
                mote_k_matvec_cols(y_opt, &w, xq, xs, g, 0, rows);
                expect(memcmp(y_ref, y_opt, rows * sizeof(float)) == 0, "matvec_cols bundled", rows,
                       cols, g, 0);
                {
                    mote_tensor up = w;
                    float u_ref[MAXC], u_opt[MAXC];
                    int8_t xq_dim[MAXR];
                    float xs_dim[MAXR];
                    up.rows = cols;
                    up.cols = rows;
                    fill_sparse_codes(xq_dim, xs_dim, rows, g);
                    for (i = 0; i < cols; i++) {
                        gate[i] = rnd() % 3u ? rnd_float(1.0f) : 0.0f;
                        u_ref[i] = u_opt[i] = -1.0f; /* left as is where gate[i] == 0 */
                    }
                    begin = rnd() % cols;
                    end = begin + 1 + rnd() % (cols - begin);
                    mote_ref_matvec_bundled_rows(u_ref, &up, gate, xq_dim, xs_dim, g, begin, end);
                    mote_k_matvec_bundled_rows(u_opt, &up, gate, xq_dim, xs_dim, g, begin, end);
                    expect(memcmp(u_ref, u_opt, cols * sizeof(float)) == 0, "matvec_bundled_rows",
                           rows, cols, begin, end);
                }
            }
}

#if defined(__linux__)
/* A wide column tensor with few rows: more nonzero codes than an optimized kernel
 * may list at once (x86: 4096), so that it runs its row blocks in several passes, and
 * row ranges that end inside a block. On hosts only: its 180 KB do not fit a board's
 * RAM, and the listing limit it reaches is the x86 set's. */
static void test_wide_columns(void)
{
    enum { ROWS = 40, COLS = 4400, GROUP = 32, NG = (COLS + GROUP - 1) / GROUP };
    static int8_t codes[ROWS * COLS], xq[COLS];
    static uint16_t scales[ROWS * NG];
    static float xs[NG];
    float y_ref[ROWS], y_opt[ROWS];
    mote_tensor w;
    uint32_t i, rep;
    memset(&w, 0, sizeof w);
    fill_bytes((uint8_t *)codes, sizeof codes);
    fill_scales(scales, ROWS * NG);
    w.data = codes;
    w.scales = scales;
    w.rows = ROWS;
    w.cols = COLS;
    w.dtype = MOTE_Q8;
    w.layout = MOTE_LAYOUT_COLUMNS;
    for (rep = 0; rep < 6; rep++) {
        const uint32_t begin = rep % 3u == 0 ? 0 : rnd() % 12u, end = rep % 2u ? ROWS : ROWS - rnd() % 9u;
        for (i = 0; i < COLS; i++) /* dense, or one in three zero */
            xq[i] = rep < 2 || rnd() % 3u ? (int8_t)(rnd() % 255u) - 127 : 0;
        for (i = 0; i < NG; i++)
            xs[i] = (float)(rnd() % 1000u + 1u) / 64000.0f;
        mote_ref_matvec_cols(y_ref, &w, xq, xs, GROUP, begin, end);
        mote_k_matvec_cols(y_opt, &w, xq, xs, GROUP, begin, end);
        expect(memcmp(y_ref + begin, y_opt + begin, (end - begin) * sizeof(float)) == 0, "matvec_cols wide",
               rep, begin, end, 0);
    }
}
#endif

/* The f32 classifier, embedding rows of every dtype, RoPE and the ReLU gate. */
static void test_float_kernels(void)
{
    static const uint32_t cols_list[] = {1, 2, 7, 8, 9, 33, 64, 100};
    static float x[MAXC], ref[MAXC], opt[MAXC], cos_t[64], sin_t[64];
    float *fw = (float *)(void *)weight_buf;
    unsigned a, dt, rep;
    uint32_t i;
    for (a = 0; a < sizeof cols_list / sizeof cols_list[0]; a++) {
        const uint32_t cols = cols_list[a], rows = 40, g = 8, ng = (cols + g - 1) / g;
        mote_tensor w;
        memset(&w, 0, sizeof w);
        for (i = 0; i < rows * cols; i++)
            fw[i] = rnd_float(1.0f);
        for (i = 0; i < cols; i++)
            x[i] = rnd_float(3.0f);
        w.data = fw;
        w.rows = rows;
        w.cols = cols;
        w.dtype = MOTE_F32;
        mote_ref_matvec_f32(ref, &w, x, 0, rows);
        mote_k_matvec_f32(opt, &w, x, 0, rows);
        expect(memcmp(ref, opt, rows * sizeof(float)) == 0, "matvec_f32", cols, 0, 0, 0);
        for (dt = 0; dt < 4; dt++) {
            const uint32_t row = rnd() % rows;
            w.dtype = dt == 0 ? MOTE_F32 : dt == 1 ? MOTE_Q8 : dt == 2 ? MOTE_Q4 : MOTE_Q4A;
            if (dt > 0) {
                fill_bytes((uint8_t *)weight_buf, (size_t)rows * cols);
                fill_scales(scale_buf + 16, (size_t)rows * ng * 2u);
                w.scales = scale_buf + 16;
            }
            mote_ref_embedding_row(ref, &w, row, g);
            mote_k_embedding_row(opt, &w, row, g);
            expect(memcmp(ref, opt, cols * sizeof(float)) == 0, "embedding_row", cols, dt, row, 0);
        }
    }
    for (rep = 0; rep < 40; rep++) {
        const uint32_t hd = 2u * (1u + rnd() % 32u), heads = 1u + rnd() % 4u;
        const uint32_t pos = rep < 20 ? rep : rnd() % 100000u;
        float c_ref[32], s_ref[32];
        mote_ref_rope_table(c_ref, s_ref, pos, hd, 10000.0f);
        mote_k_rope_table(cos_t, sin_t, pos, hd, 10000.0f);
        expect(memcmp(c_ref, cos_t, hd / 2u * sizeof(float)) == 0 &&
               memcmp(s_ref, sin_t, hd / 2u * sizeof(float)) == 0, "rope_table", hd, pos, 0, 0);
        for (i = 0; i < hd * heads; i++)
            ref[i] = opt[i] = rnd_float(5.0f);
        mote_ref_rope_apply(ref, c_ref, s_ref, heads, hd);
        mote_k_rope_apply(opt, c_ref, s_ref, heads, hd);
        expect(memcmp(ref, opt, hd * heads * sizeof(float)) == 0, "rope_apply", hd, heads, 0, 0);
        for (i = 0; i < MAXC; i++) {
            ref[i] = opt[i] = rnd_float(4.0f);
            x[i] = rnd_float(2.0f);
        }
        mote_ref_relu_mul(ref, x, MAXC - rep);
        mote_k_relu_mul(opt, x, MAXC - rep);
        expect(memcmp(ref, opt, MAXC * sizeof(float)) == 0, "relu_mul", rep, 0, 0, 0);
    }
}

int main(void)
{
    hal_init();
    test_f16();
    test_quantize_act();
    test_matvec();
    test_matmat();
    test_sparse();
#if defined(__linux__)
    test_wide_columns();
#endif
    test_attention();
    test_softmax();
    test_argmax();
    test_silu_mul();
    test_drop_small_gate_mul();
    test_rmsnorm_quantize_kv();
    test_float_kernels();
    put_str(failures ? "MOTE-KERNELS-FAIL set=" KT_SET " failures=" : "MOTE-KERNELS-PASS set=" KT_SET);
    if (failures)
        put_u32(failures);
    put_str(" checks=");
    put_u32(checks);
    put_str("\n");
    return failures ? 1 : 0;
}
