/* test_kernels.c - every optimized x86 kernel against its reference twin on seeded
 * random inputs, bit for bit (integers and floats alike: the x86 set keeps the
 * reference's order of float operations per output). Also the f16 conversions
 * against the CPU's F16C instructions. Prints "test_kernels: PASS" on success.
 * Built and run by tests/test_kernels.py with several -m flag sets. */
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

static uint64_t rng_state = 0x1234567ull;
static unsigned failures, checks;

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

static void expect(int ok, const char *what, unsigned a, unsigned b, unsigned c, unsigned d)
{
    checks++;
    if (!ok && failures++ < 20)
        fprintf(stderr, "FAIL %s (%u %u %u %u)\n", what, a, b, c, d);
}

static void test_f16(void)
{
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
}

/* x with some all-zero groups, some huge and some tiny values */
static void fill_activation(float *x, uint32_t n, uint32_t group)
{
    uint32_t i, mode = rnd() % 4u;
    float scale = mode == 0 ? 1.0f : mode == 1 ? 1e-30f : mode == 2 ? 1e30f : 3.0f;
    for (i = 0; i < n; i++)
        x[i] = rnd_float(scale);
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
                mote_x86_quantize_act(xq_opt, xs_opt, x, n, g);
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

static void test_matvec(void)
{
    static const uint32_t rows_list[] = {1, 3, 7, 8, 9, 16, 17, 64, 172};
    static const uint32_t cols_list[] = {1, 2, 12, 13, 31, 32, 33, 64, 100, 172, 320};
    static const uint32_t groups[] = {2, 8, 16, 32, 48, 64, 128};
    enum { MAXR = 172, MAXC = 320 };
    static uint8_t data[MAXR * MAXC];
    static uint16_t scale_buf[16 + MAXR * MAXC]; /* 32 bytes before the scales */
    uint16_t *scales = scale_buf + 16;
    float x[MAXC], xs[MAXC], y_ref[MAXR], y_opt[MAXR];
    int8_t xq[MAXC];
    unsigned a, b, c, dt;
    for (a = 0; a < sizeof rows_list / sizeof rows_list[0]; a++)
        for (b = 0; b < sizeof cols_list / sizeof cols_list[0]; b++)
            for (c = 0; c < sizeof groups / sizeof groups[0]; c++)
                for (dt = 0; dt < 2; dt++) {
                    const uint32_t rows = rows_list[a], cols = cols_list[b], g = groups[c];
                    const uint32_t ng = (cols + g - 1) / g;
                    const uint32_t row_bytes = dt ? (cols + 1) / 2 : cols;
                    mote_tensor w;
                    uint32_t i, begin, end;
                    for (i = 0; i < rows * row_bytes; i++)
                        data[i] = (uint8_t)rnd(); /* the whole int8 range, -128 included */
                    for (i = 0; i < rows * ng; i++)
                        scales[i] = rnd_scale();
                    fill_activation(x, cols, g);
                    mote_ref_quantize_act(xq, xs, x, cols, g);
                    w.data = data;
                    w.scales = scales;
                    w.rows = rows;
                    w.cols = cols;
                    w.dtype = dt ? MOTE_Q4 : MOTE_Q8;
                    /* all rows, then a sub-range as a thread would get */
                    mote_ref_matvec(y_ref, &w, xq, xs, g, 0, rows);
                    mote_x86_matvec(y_opt, &w, xq, xs, g, 0, rows);
                    expect(memcmp(y_ref, y_opt, rows * sizeof(float)) == 0, "matvec", rows, cols,
                           g, dt);
                    begin = rnd() % rows;
                    end = begin + 1 + rnd() % (rows - begin);
                    memset(y_opt, 0, sizeof y_opt);
                    mote_x86_matvec(y_opt, &w, xq, xs, g, begin, end);
                    expect(memcmp(y_ref + begin, y_opt + begin, (end - begin) * sizeof(float)) == 0,
                           "matvec row range", rows, cols, begin, end);
                    for (i = 0; i < MAXR; i++)
                        if ((i < begin || i >= end) && y_opt[i] != 0.0f)
                            expect(0, "matvec wrote outside its rows", rows, cols, begin, i);
                }
}

static void test_attention(void)
{
    static const uint32_t head_dims[] = {2, 4, 6, 8, 12, 16, 40, 64};
    static const uint32_t n_pos_list[] = {1, 2, 7, 8, 9, 16, 31, 100, 257};
    enum { MAXP = 257, STRIDE_MAX = 3 * 64 };
    static int8_t cache[MAXP * STRIDE_MAX];
    static uint16_t cs[MAXP];
    float q[64], att_ref[MAXP], att_opt[MAXP], out_ref[64], out_opt[64];
    unsigned a, b;
    for (a = 0; a < sizeof head_dims / sizeof head_dims[0]; a++)
        for (b = 0; b < sizeof n_pos_list / sizeof n_pos_list[0]; b++) {
            const uint32_t hd = head_dims[a], n_pos = n_pos_list[b], stride = 3 * hd;
            const float sqrt_hd = sqrtf((float)hd);
            uint32_t i;
            for (i = 0; i < n_pos * stride; i++)
                cache[i] = (int8_t)(rnd() % 255u) - 127;
            for (i = 0; i < n_pos; i++)
                cs[i] = rnd_scale();
            for (i = 0; i < hd; i++)
                q[i] = rnd_float(4.0f);
            /* the head in the middle of each cache row, as kv heads are */
            mote_ref_attn_scores(att_ref, q, cache + hd, cs, stride, hd, n_pos, sqrt_hd);
            mote_x86_attn_scores(att_opt, q, cache + hd, cs, stride, hd, n_pos, sqrt_hd);
            expect(memcmp(att_ref, att_opt, n_pos * sizeof(float)) == 0, "attn_scores", hd,
                   n_pos, 0, 0);
            mote_softmax(att_ref, n_pos);
            mote_ref_attn_mix(out_ref, att_ref, cache + hd, cs, stride, hd, n_pos);
            mote_x86_attn_mix(out_opt, att_ref, cache + hd, cs, stride, hd, n_pos);
            expect(memcmp(out_ref, out_opt, hd * sizeof(float)) == 0, "attn_mix", hd, n_pos, 0,
                   0);
        }
}

static void test_softmax(void)
{
    static const uint32_t ns[] = {1, 2, 7, 8, 9, 15, 16, 17, 100, 512, 4096};
    static float x[4096], ref[4096], opt[4096];
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
        mote_x86_softmax(e8, 8);
        mote_softmax(ref, 8);
        for (j = 0; j < 8; j++)
            expect(same_float(ref[j], e8[j]), "softmax 8", i, j, 0, 0);
        /* the same through the partial-vector tail: five lanes */
        memcpy(ref, in, sizeof in);
        memcpy(e8, in, sizeof in);
        mote_x86_softmax(e8, 5);
        mote_softmax(ref, 5);
        for (j = 0; j < 5; j++)
            expect(same_float(ref[j], e8[j]), "softmax 5", i, j, 0, 0);
    }
    for (a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (rep = 0; rep < 20; rep++) {
            const uint32_t n = ns[a];
            for (i = 0; i < n; i++)
                x[i] = rnd_float(rep < 10 ? 5.0f : 60.0f);
            if (rep == 19)
                x[rnd() % n] = NAN;
            memcpy(ref, x, n * sizeof(float));
            memcpy(opt, x, n * sizeof(float));
            mote_softmax(ref, n);
            mote_x86_softmax(opt, n);
            for (i = 0; i < n; i++)
                expect(same_float(ref[i], opt[i]), "softmax", n, rep, i, 0);
        }
}

/* The vector exp inside the SiLU kernel, lane by lane against mote_expf through the
 * reference formula: every length (partial last vector), and inputs over the whole
 * range of exp, beyond its cut-offs, and non-finite. */
static void test_silu_mul(void)
{
    static const uint32_t ns[] = {1, 3, 7, 8, 9, 15, 16, 17, 64, 172, 864};
    static float h[864], u[864], ref[864], opt[864];
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
            mote_silu_mul(ref, u, n);
            mote_x86_silu_mul(opt, u, n);
            for (i = 0; i < n; i++)
                expect(same_float(ref[i], opt[i]), "silu_mul", n, rep, i, 0);
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
            mote_rmsnorm(ref, x, w, n, 1e-5f);
            mote_x86_rmsnorm(opt, x, w, n, 1e-5f);
            for (i = 0; i < n; i++)
                expect(same_float(ref[i], opt[i]), "rmsnorm", n, rep, i, 0);
            mote_quantize_kv(q_ref, &s_ref, x, n);
            mote_x86_quantize_kv(q_opt, &s_opt, x, n);
            expect(s_ref == s_opt, "quantize_kv scale", n, rep, s_ref, s_opt);
            expect(memcmp(q_ref, q_opt, n) == 0, "quantize_kv codes", n, rep, 0, 0);
        }
}

int main(void)
{
    test_f16();
    test_quantize_act();
    test_matvec();
    test_attention();
    test_softmax();
    test_silu_mul();
    test_rmsnorm_quantize_kv();
    if (failures) {
        printf("test_kernels: FAIL (%u of %u checks)\n", failures, checks);
        return 1;
    }
    printf("test_kernels: PASS (%u checks)\n", checks);
    return 0;
}
