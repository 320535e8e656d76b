/* kernels_ref.c - reference kernels: plain C99, written to read like the formulas in
 * docs/blob-format.md ("Numerics"). Always compiled; every optimized kernel set is
 * tested against these (tests/c/test_kernels.c). */
#include <math.h>
#include <string.h>

#include "kernels.h"

/* ------------------------------------------------------------------ f16 */

float mote_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1Fu;
    uint32_t mantissa = h & 0x3FFu;
    uint32_t bits;
    float f;
    if (exponent == 0) {
        /* zero or subnormal: mantissa * 2^-24, exact in binary32 */
        f = (float)mantissa * 5.9604644775390625e-8f;
        return sign ? -f : f;
    }
    if (exponent == 31)
        bits = sign | 0x7F800000u | (mantissa << 13); /* inf, NaN keeps its payload */
    else
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    memcpy(&f, &bits, sizeof f);
    return f;
}

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

/* rint and clamp to [-127, 127]; NaN becomes -127, as the SIMD max/min order does. */
static int8_t clamp_rint_q8(float v)
{
    v = rintf(v);
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

void mote_quantize_kv(int8_t *q, uint16_t *scale, const float *x, uint32_t n)
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

/* A q4 code: a 4-bit two's-complement nibble. */
static int32_t q4_low(uint8_t b) { return (int32_t)((b & 0x0Fu) ^ 0x08u) - 8; }
static int32_t q4_high(uint8_t b) { return (int32_t)((b >> 4) ^ 0x08u) - 8; }

/* ------------------------------------------------------------------ matvec */

void mote_ref_matvec(float *y, const mote_tensor *w, const int8_t *xq, const float *xs,
                     uint32_t group, uint32_t row_begin, uint32_t row_end)
{
    const uint32_t cols = w->cols;
    const uint32_t n_groups = (cols + group - 1u) / group;
    const size_t row_bytes = w->dtype == MOTE_Q4 ? (cols + 1u) / 2u : cols;
    uint32_t r;
    for (r = row_begin; r < row_end; r++) {
        const uint8_t *row = (const uint8_t *)w->data + (size_t)r * row_bytes;
        const uint16_t *ws = w->scales + (size_t)r * n_groups;
        float acc = 0.0f;
        uint32_t g;
        for (g = 0; g < n_groups; g++) {
            uint32_t begin = g * group;
            uint32_t end = cols - begin < group ? cols : begin + group;
            int32_t sum = 0;
            uint32_t i;
            if (w->dtype == MOTE_Q8) {
                for (i = begin; i < end; i++)
                    sum += (int32_t)(int8_t)row[i] * xq[i];
            } else { /* q4: groups start on even columns */
                for (i = begin; i < end; i += 2) {
                    uint8_t b = row[i / 2u];
                    sum += q4_low(b) * xq[i];
                    if (i + 1u < end)
                        sum += q4_high(b) * xq[i + 1u];
                }
            }
            acc += (float)sum * (mote_f16_to_f32(ws[g]) * xs[g]);
        }
        y[r] = acc;
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

void mote_embedding_row(float *x, const mote_tensor *e, uint32_t row, uint32_t group)
{
    const uint32_t cols = e->cols;
    const uint32_t n_groups = (cols + group - 1u) / group;
    const uint16_t *s = e->scales + (size_t)row * n_groups;
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
            uint8_t b = q[i / 2u];
            int32_t code = (i & 1u) ? q4_high(b) : q4_low(b);
            x[i] = (float)code * mote_f16_to_f32(s[i / group]);
        }
    }
}

/* ------------------------------------------------------------------ attention */

void mote_ref_attn_scores(float *att, const float *q, const int8_t *kq, const uint16_t *ks,
                          uint32_t stride, uint32_t head_dim, uint32_t n_pos, float sqrt_hd)
{
    uint32_t t, i;
    for (t = 0; t < n_pos; t++) {
        const int8_t *k = kq + (size_t)t * stride;
        float dot = 0.0f;
        for (i = 0; i < head_dim; i++)
            dot += q[i] * (float)k[i];
        att[t] = (dot * mote_f16_to_f32(ks[t])) / sqrt_hd;
    }
}

void mote_ref_attn_mix(float *out, const float *att, const int8_t *vq, const uint16_t *vs,
                       uint32_t stride, uint32_t head_dim, uint32_t n_pos)
{
    uint32_t t, i;
    for (i = 0; i < head_dim; i++)
        out[i] = 0.0f;
    for (t = 0; t < n_pos; t++) {
        const int8_t *v = vq + (size_t)t * stride;
        float a = att[t] * mote_f16_to_f32(vs[t]);
        for (i = 0; i < head_dim; i++)
            out[i] += a * (float)v[i];
    }
}

/* ------------------------------------------------------------------ small ops */

void mote_rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps)
{
    float ss = 0.0f, inv;
    uint32_t i;
    for (i = 0; i < n; i++)
        ss += x[i] * x[i];
    inv = 1.0f / sqrtf(ss / (float)n + eps);
    for (i = 0; i < n; i++)
        out[i] = x[i] * inv * w[i];
}

void mote_rope_table(float *cos_out, float *sin_out, uint32_t pos, uint32_t head_dim,
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

void mote_rope_apply(float *x, const float *cos_t, const float *sin_t, uint32_t n_heads,
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

/* exp from IEEE operations only (host/mote/mathf.py expf_mote, same constants, same
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
    n = rintf(x * EXP_LOG2E); /* within [-126, 127] for x in [-87, 88] */
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

void mote_softmax(float *x, uint32_t n)
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
