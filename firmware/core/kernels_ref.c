/* kernels_ref.c - reference kernels: plain C99, written to read like the formulas in
 * docs/blob-format.md ("Numerics"). Always compiled; every optimized kernel set is
 * tested against these (tests/c/test_kernels.c). */
#include <math.h>
#include <string.h>

#include "kernels.h"

/* ------------------------------------------------------------------ f16 */

uint16_t mote_f32_to_f16(float f)
{
    uint32_t x, sign, exponent, mantissa, half, rest, halfway, shift;
    int32_t e;
    memcpy(&x, &f, sizeof x);
    sign = (x >> 16) & 0x8000u;
    exponent = (x >> 23) & 0xFFu;
    mantissa = x & 0x7FFFFFu;
    if (exponent == 0xFFu) /* inf stays inf; NaN stays NaN (quiet bit set) */
        return (uint16_t)(sign | 0x7C00u | (mantissa ? 0x200u | (mantissa >> 13) : 0u));
    e = (int32_t)exponent - 127 + 15;
    if (e >= 31)
        return (uint16_t)(sign | 0x7C00u); /* overflow: infinity */
    if (e <= 0) {
        /* binary16 subnormal: value / 2^-24 = (1.mantissa) * 2^(e-14 + 10) */
        if (e < -10)
            return (uint16_t)sign; /* below half the smallest subnormal */
        mantissa |= 0x800000u;
        shift = (uint32_t)(14 - e);
        half = mantissa >> shift;
        rest = mantissa & ((1u << shift) - 1u);
        halfway = 1u << (shift - 1u);
        if (rest > halfway || (rest == halfway && (half & 1u)))
            half++; /* may carry into the smallest normal: still the right encoding */
        return (uint16_t)(sign | half);
    }
    half = ((uint32_t)e << 10) | (mantissa >> 13);
    rest = mantissa & 0x1FFFu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u)))
        half++; /* a carry out of the mantissa bumps the exponent, up to infinity */
    return (uint16_t)(sign | half);
}

/* ------------------------------------------------------------------ quantization */

/* rintf(v) (round half to even) for |v| < 2^22, other v unchanged. Adding 1.5 * 2^23
 * lands in [2^23, 2^24), where floats are the integers, so the FPU's round-to-nearest-
 * even does the rounding and the subtraction is exact. The same value as rintf (only
 * the sign of a zero result may differ, which no caller sees), without a libm call: a
 * Cortex-M4 has no VRINT instruction and its rintf costs some 30 instructions. */
static float rint_small(float v)
{
    const float shift = 12582912.0f; /* 1.5 * 2^23 */
    return fabsf(v) < 4194304.0f ? (v + shift) - shift : v;
}

/* rint and clamp to [-127, 127]; NaN becomes -127, as the SIMD max/min order does.
 * |v| >= 2^22 clamps whether rounded or not. */
static int8_t clamp_rint_q8(float v)
{
    v = rint_small(v);
    if (!(v >= -127.0f))
        v = -127.0f;
    if (v > 127.0f)
        v = 127.0f;
    return (int8_t)v;
}

void mote_ref_quantize_act(int8_t *xq, float *xs, const float *x, uint32_t n, uint32_t group)
{
    uint32_t begin, i, g = 0;
    for (begin = 0; begin < n; begin += group, g++) {
        uint32_t end = n - begin < group ? n : begin + group;
        float amax = 0.0f, inv;
        for (i = begin; i < end; i++) {
            float a = fabsf(x[i]);
            if (a > amax)
                amax = a;
        }
        if (amax == 0.0f) {
            xs[g] = 0.0f;
            memset(xq + begin, 0, end - begin);
            continue;
        }
        xs[g] = amax / 127.0f;
        inv = 127.0f / amax;
        for (i = begin; i < end; i++)
            xq[i] = clamp_rint_q8(x[i] * inv);
    }
}

void mote_ref_quantize_kv(int8_t *q, uint16_t *scale, const float *x, uint32_t n)
{
    float amax = 0.0f, s, inv;
    uint32_t i;
    for (i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (a > amax)
            amax = a;
    }
    *scale = mote_f32_to_f16(amax / 127.0f);
    s = mote_f16_to_f32(*scale);
    if (s == 0.0f) {
        memset(q, 0, n);
        return;
    }
    inv = 1.0f / s;
    for (i = 0; i < n; i++)
        q[i] = clamp_rint_q8(x[i] * inv);
}

/* ------------------------------------------------------------------ matvec */

/* Code i of a q8, q4 or q4a row; a q4/q4a byte holds columns i (low nibble) and i + 1
 * (high nibble). */
static int32_t code_at(const uint8_t *row, uint8_t dtype, uint32_t i)
{
    const uint8_t b = row[i / 2u];
    if (dtype == MOTE_Q8)
        return (int32_t)(int8_t)row[i];
    if (dtype == MOTE_Q4A)
        return (i & 1u) ? (int32_t)(b >> 4) : (int32_t)(b & 0x0Fu);
    return (i & 1u) ? mote_q4_high(b) : mote_q4_low(b);
}

/* The int32 sum over columns [begin, end) of one row's codes times xq. */
static int32_t group_sum(const uint8_t *row, uint8_t dtype, const int8_t *xq, uint32_t begin,
                         uint32_t end)
{
    int32_t sum = 0;
    uint32_t i;
    for (i = begin; i < end; i++)
        sum += code_at(row, dtype, i) * xq[i];
    return sum;
}

int32_t mote_ref_act_sum(const int8_t *xq, uint32_t begin, uint32_t end)
{
    int32_t sum = 0;
    uint32_t i;
    for (i = begin; i < end; i++)
        sum += xq[i];
    return sum;
}

/* Row r's float dot product over every group, in the order kernels.h gives: q8/q4 one
 * term per group, q4a the code term then the offset term. */
static float row_dot(const mote_tensor *w, uint32_t r, const int8_t *xq, const float *xs,
                     uint32_t group)
{
    const uint32_t cols = w->cols;
    const uint32_t n_groups = (cols + group - 1u) / group;
    const uint32_t per_group = mote_scales_per_group(w->dtype);
    const size_t row_bytes = w->dtype == MOTE_Q8 ? cols : (cols + 1u) / 2u;
    const uint8_t *row = (const uint8_t *)w->data + (size_t)r * row_bytes;
    const uint16_t *ws = w->scales + (size_t)r * n_groups * per_group;
    float acc = 0.0f;
    uint32_t g;
    for (g = 0; g < n_groups; g++) {
        const uint32_t begin = g * group;
        const uint32_t end = cols - begin < group ? cols : begin + group;
        acc += (float)group_sum(row, w->dtype, xq, begin, end) *
               (mote_f16_to_f32(ws[g * per_group]) * xs[g]);
        if (w->dtype == MOTE_Q4A)
            acc += (float)mote_ref_act_sum(xq, begin, end) *
                   (mote_f16_to_f32(ws[2u * g + 1u]) * xs[g]);
    }
    return acc;
}

void mote_ref_matvec(float *y, const mote_tensor *w, const int8_t *xq, const float *xs,
                     uint32_t group, uint32_t row_begin, uint32_t row_end)
{
    uint32_t r;
    for (r = row_begin; r < row_end; r++)
        y[r] = row_dot(w, r, xq, xs, group);
}

void mote_ref_matmat(float *y, uint32_t y_stride, const mote_tensor *w, const int8_t *xq,
                     const float *xs, uint32_t n_pos, uint32_t group, uint32_t row_begin,
                     uint32_t row_end)
{
    const uint32_t cols = w->cols;
    const uint32_t n_groups = (cols + group - 1u) / group;
    uint32_t r, b;
    /* a row at a time against every position, while the row is at hand */
    for (r = row_begin; r < row_end; r++)
        for (b = 0; b < n_pos; b++)
            y[(size_t)b * y_stride + r] =
                row_dot(w, r, xq + (size_t)b * cols, xs + (size_t)b * n_groups, group);
}

/* ------------------------------------------------------------------ sparse matvec */

/* Rows of y done at a time by the column kernel: their int32 group sums live on the
 * stack (256 bytes). Input-major weights are read column after column. */
#define COLUMN_TILE 64u

void mote_ref_matvec_cols(float *y, const mote_tensor *w, const int8_t *xq, const float *xs,
                          uint32_t group, uint32_t row_begin, uint32_t row_end)
{
    const mote_column_map map = mote_columns_of(w, group);
    const uint32_t cols = w->cols;
    int32_t acc[COLUMN_TILE];
    uint32_t tile, r;
    for (tile = row_begin; tile < row_end; tile += COLUMN_TILE) {
        const uint32_t n = row_end - tile < COLUMN_TILE ? row_end - tile : COLUMN_TILE;
        uint32_t begin, g = 0;
        for (r = 0; r < n; r++)
            y[tile + r] = 0.0f;
        for (begin = 0; begin < cols; begin += group, g++) {
            const uint32_t end = cols - begin < group ? cols : begin + group;
            const uint16_t *ws;
            uint32_t j;
            int any = 0;
            for (j = begin; j < end && !any; j++)
                any = xq[j] != 0;
            if (!any)
                continue; /* all codes 0: the dense term is +0, skip the group's scales */
            for (r = 0; r < n; r++)
                acc[r] = 0;
            for (j = begin; j < end; j++) {
                const int8_t *col;
                if (xq[j] == 0)
                    continue; /* a column this token does not need: not read */
                col = map.codes + g * map.group_stride + (j - begin) * map.col_stride + tile;
                for (r = 0; r < n; r++)
                    acc[r] += xq[j] * col[r];
            }
            ws = (const uint16_t *)(const void *)(map.scales + g * map.group_stride_scales) + tile;
            for (r = 0; r < n; r++)
                y[tile + r] += (float)acc[r] * (mote_f16_to_f32(ws[r]) * xs[g]);
        }
    }
}

void mote_ref_matvec_bundled_rows(float *u, const mote_tensor *w_up, const float *gate,
                                  const int8_t *xq, const float *xs, uint32_t group,
                                  uint32_t begin, uint32_t end)
{
    const uint32_t dim = w_up->cols, n_groups = (dim + group - 1u) / group;
    const size_t bundle = 2u * (size_t)dim + 2u * n_groups;
    const size_t group_stride = 2u * (size_t)dim + group * bundle;
    uint32_t j, g;
    for (j = begin; j < end; j++) {
        /* neuron j's bundle: its up row (dim codes), then the row's f16 scales */
        const uint8_t *row = (const uint8_t *)w_up->data + (j / group) * group_stride +
                             2u * (size_t)dim + (j % group) * bundle;
        const uint16_t *ws = (const uint16_t *)(const void *)(row + dim);
        float acc = 0.0f;
        if (gate[j] == 0.0f)
            continue; /* a dropped neuron: its whole bundle stays unread */
        for (g = 0; g < n_groups; g++) {
            const uint32_t lo = g * group, hi = dim - lo < group ? dim : lo + group;
            acc += (float)group_sum(row, MOTE_Q8, xq, lo, hi) * (mote_f16_to_f32(ws[g]) * xs[g]);
        }
        u[j] = acc;
    }
}

void mote_ref_matvec_f32(float *y, const mote_tensor *w, const float *x, uint32_t row_begin,
                         uint32_t row_end)
{
    const uint32_t cols = w->cols;
    uint32_t r, i;
    for (r = row_begin; r < row_end; r++) {
        const float *row = (const float *)w->data + (size_t)r * cols;
        float acc = 0.0f;
        for (i = 0; i < cols; i++)
            acc += row[i] * x[i];
        y[r] = acc;
    }
}

void mote_ref_embedding_row(float *x, const mote_tensor *e, uint32_t row, uint32_t group)
{
    const uint32_t cols = e->cols;
    const uint32_t n_groups = (cols + group - 1u) / group;
    const uint16_t *s = e->scales + (size_t)row * n_groups * mote_scales_per_group(e->dtype);
    uint32_t i;
    if (e->dtype == MOTE_F32) {
        memcpy(x, (const float *)e->data + (size_t)row * cols, (size_t)cols * sizeof *x);
        return;
    }
    if (e->dtype == MOTE_Q8) {
        const int8_t *q = (const int8_t *)e->data + (size_t)row * cols;
        for (i = 0; i < cols; i++)
            x[i] = (float)q[i] * mote_f16_to_f32(s[i / group]);
        return;
    }
    {
        const uint8_t *q = (const uint8_t *)e->data + (size_t)row * ((cols + 1u) / 2u);
        for (i = 0; i < cols; i++) {
            const float code = (float)code_at(q, e->dtype, i);
            x[i] = e->dtype == MOTE_Q4A ? code * mote_f16_to_f32(s[2u * (i / group)]) +
                                              mote_f16_to_f32(s[2u * (i / group) + 1u])
                                        : code * mote_f16_to_f32(s[i / group]);
        }
    }
}

/* ------------------------------------------------------------------ attention */

void mote_ref_attn_scores(float *const att[], const float *q, uint32_t n_q, const int8_t *kq,
                          const uint16_t *ks, uint32_t stride, uint32_t head_dim, uint32_t n_pos,
                          float sqrt_hd)
{
    uint32_t h, t, i;
    for (h = 0; h < n_q; h++) {
        const float *qh = q + (size_t)h * head_dim;
        for (t = 0; t < n_pos; t++) {
            const int8_t *k = kq + (size_t)t * stride;
            float dot = 0.0f;
            for (i = 0; i < head_dim; i++)
                dot += qh[i] * (float)k[i];
            att[h][t] = (dot * mote_f16_to_f32(ks[t])) / sqrt_hd;
        }
    }
}

void mote_ref_attn_mix(float *out, const float *const att[], uint32_t n_q, const int8_t *vq,
                       const uint16_t *vs, uint32_t stride, uint32_t head_dim, uint32_t n_pos)
{
    uint32_t h, t, i;
    for (h = 0; h < n_q; h++)
        for (i = 0; i < head_dim; i++) {
            float acc = 0.0f;
            for (t = 0; t < n_pos; t++)
                acc += (att[h][t] * mote_f16_to_f32(vs[t])) * (float)vq[(size_t)t * stride + i];
            out[(size_t)h * head_dim + i] = acc;
        }
}

/* ------------------------------------------------------------------ small ops */

void mote_ref_rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps)
{
    float ss = 0.0f, inv;
    uint32_t i;
    for (i = 0; i < n; i++)
        ss += x[i] * x[i];
    inv = 1.0f / sqrtf(ss / (float)n + eps);
    for (i = 0; i < n; i++)
        out[i] = x[i] * inv * w[i];
}

void mote_ref_rope_table(float *cos_out, float *sin_out, uint32_t pos, uint32_t head_dim,
                     float theta)
{
    /* in double, then rounded: large angles keep their precision (as the reference) */
    uint32_t i;
    for (i = 0; i < head_dim / 2u; i++) {
        double freq = pow((double)theta, -(double)(2u * i) / (double)head_dim);
        double angle = (double)pos * freq;
        cos_out[i] = (float)cos(angle);
        sin_out[i] = (float)sin(angle);
    }
}

void mote_ref_rope_apply(float *x, const float *cos_t, const float *sin_t, uint32_t n_heads,
                     uint32_t head_dim)
{
    uint32_t h, i;
    for (h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_dim;
        for (i = 0; i < head_dim / 2u; i++) {
            float x0 = v[2u * i], x1 = v[2u * i + 1u];
            v[2u * i] = x0 * cos_t[i] - x1 * sin_t[i];
            v[2u * i + 1u] = x0 * sin_t[i] + x1 * cos_t[i];
        }
    }
}

/* exp from IEEE operations only (host/mote/reference/mathf.py expf_mote, same constants, same
 * order): libm expf differs between platforms in the last bit, this does not. The
 * constants are double literals rounded to float, as numpy's np.float32(1 / 720). */
#define EXP_LOG2E ((float)1.44269504)
#define EXP_LN2_HI ((float)0.693145751953125)
#define EXP_LN2_LO ((float)1.42860677e-06)

float mote_expf(float x)
{
    float n, r, p, two_n;
    uint32_t bits;
    if (x != x)
        return x;
    if (x < -87.0f)
        return 0.0f;
    if (x > 88.0f)
        return HUGE_VALF;
    n = rint_small(x * EXP_LOG2E); /* within [-126, 127] for x in [-87, 88] */
    r = (x - n * EXP_LN2_HI) - n * EXP_LN2_LO;
    p = (float)(1.0 / 720.0);
    p = (float)(1.0 / 120.0) + r * p;
    p = (float)(1.0 / 24.0) + r * p;
    p = (float)(1.0 / 6.0) + r * p;
    p = 0.5f + r * p;
    p = 1.0f + r * p;
    p = 1.0f + r * p;
    bits = (uint32_t)((int32_t)n + 127) << 23;
    memcpy(&two_n, &bits, sizeof two_n);
    return p * two_n;
}

void mote_ref_softmax(float *x, uint32_t n)
{
    float max = x[0], sum = 0.0f;
    uint32_t i;
    for (i = 1; i < n; i++)
        if (x[i] > max)
            max = x[i];
    for (i = 0; i < n; i++) {
        x[i] = mote_expf(x[i] - max);
        sum += x[i];
    }
    for (i = 0; i < n; i++)
        x[i] /= sum;
}

int32_t mote_ref_argmax(const float *x, uint32_t n)
{
    uint32_t i, best = 0;
    for (i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return (int32_t)best;
}

void mote_ref_silu_mul(float *h, const float *u, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; i++)
        h[i] = h[i] / (1.0f + mote_expf(-h[i])) * u[i];
}

void mote_ref_silu(float *h, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; i++)
        h[i] = h[i] / (1.0f + mote_expf(-h[i]));
}

void mote_ref_count_codes(uint32_t *kept, uint32_t *active, const int8_t *xq, uint32_t n,
                          uint32_t group)
{
    uint32_t begin, i;
    *kept = *active = 0;
    for (begin = 0; begin < n; begin += group) {
        const uint32_t end = n - begin < group ? n : begin + group, before = *kept;
        for (i = begin; i < end; i++)
            *kept += xq[i] != 0;
        *active += *kept != before;
    }
}

uint32_t mote_ref_drop_small(float *v, uint32_t n, float threshold)
{
    uint32_t i, kept = 0;
    for (i = 0; i < n; i++) {
        if (fabsf(v[i]) <= threshold)
            v[i] = 0.0f;
        kept += v[i] != 0.0f;
    }
    return kept;
}

void mote_ref_gate_mul(float *h, const float *u, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; i++)
        h[i] = h[i] != 0.0f ? h[i] * u[i] : 0.0f;
}

void mote_ref_relu_mul(float *h, const float *u, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; i++)
        h[i] = (h[i] > 0.0f ? h[i] : 0.0f) * u[i];
}
