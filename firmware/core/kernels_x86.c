/* kernels_x86.c - the x86 kernel set: AVX2 with F16C, plus AVX-VNNI or AVX-512 VNNI
 * dot products and AVX-512 masked tail loads where the compiler flags (-march=...)
 * enable them; variants sit side by side and feature macros choose. Every kernel
 * computes exactly what its mote_ref_* twin computes, bit for bit: integer dot
 * products may run in any order, float operations keep the reference's order per
 * output (vectors run across outputs, never across a float sum).
 * Compiled only with -DMOTE_KERNELS_X86 (firmware/Makefile KERNELS=x86). */
#include "kernels.h"

#if defined(MOTE_KERNELS_X86)

#include <immintrin.h>
#include <math.h>
#include <string.h>

#if !defined(__AVX2__) || !defined(__F16C__)
#error "the x86 kernels need AVX2 and F16C: build with -march=native or -mavx2 -mf16c"
#endif

#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define HAVE_VNNI 1
#define dpbusd(acc, u, s) _mm256_dpbusd_epi32((acc), (u), (s))
#elif defined(__AVXVNNI__)
#define HAVE_VNNI 1
#define dpbusd(acc, u, s) _mm256_dpbusd_avx_epi32((acc), (u), (s))
#else
#define HAVE_VNNI 0
#endif

#if defined(__AVX512BW__) && defined(__AVX512VL__)
#define HAVE_MASKED_LOADS 1
#else
#define HAVE_MASKED_LOADS 0
#endif

/* ------------------------------------------------------------------ loads */

/* n (<= 32) bytes at p, zero beyond; never reads past p + n. */
static __m256i load_bytes32(const void *p, uint32_t n)
{
    if (n == 32u)
        return _mm256_loadu_si256((const __m256i *)p);
#if HAVE_MASKED_LOADS
    return _mm256_maskz_loadu_epi8((__mmask32)((1ull << n) - 1u), p);
#else
    {
        uint8_t buf[32] = {0};
        memcpy(buf, p, n);
        return _mm256_loadu_si256((const __m256i *)(const void *)buf);
    }
#endif
}

/* n (<= 16) bytes at p, zero beyond. */
static __m128i load_bytes16(const void *p, uint32_t n)
{
    if (n == 16u)
        return _mm_loadu_si128((const __m128i *)p);
#if HAVE_MASKED_LOADS
    return _mm_maskz_loadu_epi8((__mmask16)((1u << n) - 1u), p);
#else
    {
        uint8_t buf[16] = {0};
        memcpy(buf, p, n);
        return _mm_loadu_si128((const __m128i *)(const void *)buf);
    }
#endif
}

/* ------------------------------------------------------------------ integer dots */

/* Sum of 32 signed bytes, in lane 0..7 partial sums. */
static __m256i byte_sums(__m256i x)
{
    const __m256i ones8 = _mm256_set1_epi8(1);
    const __m256i ones16 = _mm256_set1_epi16(1);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, x), ones16);
}

static int32_t hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* Eight vectors of lane partials -> one vector of their eight totals, in order. */
static __m256i reduce8(const __m256i p[8])
{
    __m256i a = _mm256_hadd_epi32(p[0], p[1]), b = _mm256_hadd_epi32(p[2], p[3]);
    __m256i c = _mm256_hadd_epi32(p[4], p[5]), d = _mm256_hadd_epi32(p[6], p[7]);
    __m256i ab = _mm256_hadd_epi32(a, b), cd = _mm256_hadd_epi32(c, d);
    return _mm256_add_epi32(_mm256_permute2x128_si256(ab, cd, 0x20),
                            _mm256_permute2x128_si256(ab, cd, 0x31));
}

/* acc += w . x for 32 int8 weights. With VNNI the weights enter as unsigned w + 128
 * and the caller subtracts 128 * sum(x); without, |w| times x carrying w's sign
 * (|w| <= 128 and |x| <= 127 keep maddubs' int16 pairs from saturating). */
static __m256i dot_q8(__m256i acc, __m256i w, __m256i x)
{
#if HAVE_VNNI
    return dpbusd(acc, _mm256_xor_si256(w, _mm256_set1_epi8((char)0x80)), x);
#else
    __m256i pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
#endif
}
#define Q8_BIAS (HAVE_VNNI ? 128 : 0)

/* acc += w . x for 32 q4 weights (16 bytes, low nibble = even column) against x
 * rearranged as [even columns | odd columns] (see q4_x). Weights enter as unsigned
 * w + 8 in [0, 15]; the caller subtracts 8 * sum(x). */
static __m256i dot_q4(__m256i acc, __m128i packed, __m256i x_split)
{
    const __m256i shifts = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);
    __m256i b = _mm256_broadcastsi128_si256(_mm_xor_si128(packed, _mm_set1_epi8((char)0x88)));
    __m256i u = _mm256_and_si256(_mm256_srlv_epi32(b, shifts), _mm256_set1_epi8(0x0F));
#if HAVE_VNNI
    return dpbusd(acc, u, x_split);
#else
    __m256i pairs = _mm256_maddubs_epi16(u, x_split);
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
#endif
}
#define Q4_BIAS 8

/* 32 activations x0..x31 -> [x0 x2 .. x30 | x1 x3 .. x31], matching dot_q4's nibbles. */
static __m256i q4_x(__m256i x)
{
    const __m256i split = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15,
                                           0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    return _mm256_permute4x64_epi64(_mm256_shuffle_epi8(x, split), _MM_SHUFFLE(3, 1, 2, 0));
}

/* ------------------------------------------------------------------ matvec */

#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

/* The activations of one 32-column chunk, in the layout the dot product wants. */
static ALWAYS_INLINE __m256i x_chunk(const int8_t *xq, uint32_t n, int is_q4)
{
    const __m256i x = load_bytes32(xq, n);
    return is_q4 ? q4_x(x) : x;
}

/* Integer dot of one row's group [begin, begin + len) with the activations (their
 * first chunk prepared in x_first; x is zero past len). A short chunk reads the row's
 * weights in full, past the group into the next row's bytes, which meet zero
 * activations; only the tensor's last row (`last`) must not read past its end. */
static ALWAYS_INLINE __m256i row_dot(const uint8_t *row, int is_q4, int last, const int8_t *xq,
                                     uint32_t begin, uint32_t len, __m256i x_first)
{
    __m256i acc = _mm256_setzero_si256();
    uint32_t c;
    for (c = 0; c < len; c += 32u) {
        const uint32_t n = len - c < 32u ? len - c : 32u;
        const __m256i x = c == 0 ? x_first : x_chunk(xq + begin + c, n, is_q4);
        if (is_q4) {
            const uint8_t *p = row + (begin + c) / 2u;
            acc = dot_q4(acc, last ? load_bytes16(p, (n + 1u) / 2u)
                                   : _mm_loadu_si128((const __m128i *)(const void *)p), x);
        } else {
            const uint8_t *p = row + begin + c;
            acc = dot_q8(acc, last ? load_bytes32(p, n)
                                   : _mm256_loadu_si256((const __m256i *)(const void *)p), x);
        }
    }
    return acc;
}

static ALWAYS_INLINE void matvec_impl(float *y, const mote_tensor *w, const int8_t *xq,
                                      const float *xs, uint32_t group, uint32_t row_begin,
                                      uint32_t row_end, int is_q4)
{
    const uint32_t cols = w->cols, last_row = w->rows - 1u;
    const uint32_t n_groups = (cols + group - 1u) / group;
    const size_t row_bytes = is_q4 ? (cols + 1u) / 2u : cols;
    const int32_t bias = is_q4 ? Q4_BIAS : Q8_BIAS;
    /* f16 scales of 8 consecutive rows are n_groups apart: gathered as 32-bit words
     * ending at each scale (from 2 bytes before it, which lie inside the blob: the
     * scales start 32-aligned after the header at least), then shifted down. */
    const __m256i scale_offsets = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                                     _mm256_set1_epi32((int)(2u * n_groups)));
    uint32_t g;
    for (g = 0; g < n_groups; g++) {
        const uint32_t begin = g * group;
        const uint32_t len = cols - begin < group ? cols - begin : group;
        const __m256i x_first = x_chunk(xq + begin, len < 32u ? len : 32u, is_q4);
        const __m256 sx = _mm256_set1_ps(xs[g]);
        __m256i bias_v = _mm256_setzero_si256();
        uint32_t r0;
        if (bias != 0) {
            int32_t x_sum = 0;
            uint32_t c;
            for (c = 0; c < len; c += 32u) /* x_chunk's permutation keeps the sum */
                x_sum += hsum_epi32(byte_sums(
                    c == 0 ? x_first : load_bytes32(xq + begin + c, len - c < 32u ? len - c : 32u)));
            bias_v = _mm256_set1_epi32(bias * x_sum);
        }
        for (r0 = row_begin; r0 < row_end; r0 += 8u) {
            const uint8_t *rows = (const uint8_t *)w->data + (size_t)r0 * row_bytes;
            const uint8_t *scale_words = (const uint8_t *)(w->scales + (size_t)r0 * n_groups + g) - 2;
            __m256i partial[8], offsets = scale_offsets, words;
            __m256 ws, term;
            uint32_t j;
            if (r0 + 8u <= row_end && r0 + 8u <= last_row && len <= 32u) {
                /* the common case: eight whole rows, a group of one chunk */
                const uint8_t *p = rows + (is_q4 ? begin / 2u : begin);
#pragma GCC unroll 8
                for (j = 0; j < 8u; j++, p += row_bytes)
                    partial[j] = is_q4 ? dot_q4(_mm256_setzero_si256(),
                                                _mm_loadu_si128((const __m128i *)(const void *)p),
                                                x_first)
                                       : dot_q8(_mm256_setzero_si256(),
                                                _mm256_loadu_si256((const __m256i *)(const void *)p),
                                                x_first);
            } else if (r0 + 8u <= row_end && r0 + 8u <= last_row) {
                for (j = 0; j < 8u; j++)
                    partial[j] = row_dot(rows + j * row_bytes, is_q4, 0, xq, begin, len, x_first);
            } else {
                /* the range's or the tensor's end: rows past row_end repeat the last
                 * one (results dropped), the tensor's last row loads carefully */
                const uint32_t valid = row_end - r0 < 8u ? row_end - r0 : 8u;
                offsets = _mm256_min_epi32(offsets,
                                           _mm256_set1_epi32((int)(2u * n_groups * (valid - 1u))));
                for (j = 0; j < 8u; j++) {
                    const uint32_t r = j < valid ? r0 + j : r0 + valid - 1u;
                    partial[j] = row_dot((const uint8_t *)w->data + (size_t)r * row_bytes, is_q4,
                                         r == last_row, xq, begin, len, x_first);
                }
            }
            words = _mm256_i32gather_epi32((const int *)(const void *)scale_words, offsets, 1);
            ws = _mm256_cvtph_ps(_mm256_castsi256_si128(_mm256_permute4x64_epi64(
                _mm256_packus_epi32(_mm256_srli_epi32(words, 16), _mm256_setzero_si256()),
                _MM_SHUFFLE(3, 1, 2, 0))));
            /* y[r] = 0 + term for the first group, as the reference's acc starts at 0 */
            term = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(reduce8(partial), bias_v)),
                                 _mm256_mul_ps(ws, sx));
            if (r0 + 8u <= row_end) {
                const __m256 prev = g == 0 ? _mm256_setzero_ps() : _mm256_loadu_ps(y + r0);
                _mm256_storeu_ps(y + r0, _mm256_add_ps(prev, term));
            } else {
                float tmp[8];
                _mm256_storeu_ps(tmp, term);
                for (j = 0; r0 + j < row_end; j++)
                    y[r0 + j] = (g == 0 ? 0.0f : y[r0 + j]) + tmp[j];
            }
        }
    }
}

void mote_x86_matvec(float *y, const mote_tensor *w, const int8_t *xq, const float *xs,
                     uint32_t group, uint32_t row_begin, uint32_t row_end)
{
    if (row_begin >= row_end)
        return;
    if (w->dtype == MOTE_Q4)
        matvec_impl(y, w, xq, xs, group, row_begin, row_end, 1);
    else
        matvec_impl(y, w, xq, xs, group, row_begin, row_end, 0);
}

/* ------------------------------------------------------------------ activations */

void mote_x86_quantize_act(int8_t *xq, float *xs, const float *x, uint32_t n, uint32_t group)
{
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    uint32_t begin, i, g = 0;
    for (begin = 0; begin < n; begin += group, g++) {
        const uint32_t end = n - begin < group ? n : begin + group;
        __m256 vmax = _mm256_setzero_ps();
        __m128 m;
        float amax, inv;
        for (i = begin; i + 8u <= end; i += 8u) /* NaN lanes keep the old max, as ref */
            vmax = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask), vmax);
        m = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
        amax = _mm_cvtss_f32(m);
        for (; i < end; i++) {
            float a = x[i] < 0.0f ? -x[i] : x[i];
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
        {
            const __m256 vinv = _mm256_set1_ps(inv);
            for (i = begin; i + 8u <= end; i += 8u) {
                __m256 v = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vinv),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                __m256i q = _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(v, lo), hi));
                __m128i q16 = _mm_packs_epi32(_mm256_castsi256_si128(q),
                                              _mm256_extracti128_si256(q, 1));
                _mm_storel_epi64((__m128i *)(void *)(xq + i), _mm_packs_epi16(q16, q16));
            }
            for (; i < end; i++) {
                __m128 v = _mm_round_ss(_mm_setzero_ps(), _mm_set_ss(x[i] * inv),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                v = _mm_min_ss(_mm_max_ss(v, _mm_set_ss(-127.0f)), _mm_set_ss(127.0f));
                xq[i] = (int8_t)_mm_cvttss_si32(v);
            }
        }
    }
}

/* ------------------------------------------------------------------ attention */

void mote_x86_attn_scores(float *att, const float *q, const int8_t *kq, const uint16_t *ks,
                          uint32_t stride, uint32_t head_dim, uint32_t n_pos, float sqrt_hd)
{
    const __m256i rows = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                            _mm256_set1_epi32((int)stride));
    const __m256 div = _mm256_set1_ps(sqrt_hd);
    uint32_t t = 0, i;
    if (head_dim % 4u == 0) {
        /* eight positions at once, one lane each: lane t sums q[i] * k[t][i] in i order */
        for (; t + 8u <= n_pos; t += 8u) {
            const int8_t *k = kq + (size_t)t * stride;
            __m256 dot = _mm256_setzero_ps();
            for (i = 0; i < head_dim; i += 4u) {
                /* k[t][i..i+3] of the eight positions, one 32-bit word per lane */
                __m256i k4 = _mm256_i32gather_epi32((const int *)(const void *)(k + i), rows, 1);
                __m256 k0 = _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(k4, 24), 24));
                __m256 k1 = _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(k4, 16), 24));
                __m256 k2 = _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(k4, 8), 24));
                __m256 k3 = _mm256_cvtepi32_ps(_mm256_srai_epi32(k4, 24));
                dot = _mm256_add_ps(dot, _mm256_mul_ps(_mm256_set1_ps(q[i]), k0));
                dot = _mm256_add_ps(dot, _mm256_mul_ps(_mm256_set1_ps(q[i + 1u]), k1));
                dot = _mm256_add_ps(dot, _mm256_mul_ps(_mm256_set1_ps(q[i + 2u]), k2));
                dot = _mm256_add_ps(dot, _mm256_mul_ps(_mm256_set1_ps(q[i + 3u]), k3));
            }
            {
                __m256 s = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(ks + t)));
                _mm256_storeu_ps(att + t, _mm256_div_ps(_mm256_mul_ps(dot, s), div));
            }
        }
    }
    if (t < n_pos)
        mote_ref_attn_scores(att + t, q, kq + (size_t)t * stride, ks + t, stride, head_dim,
                             n_pos - t, sqrt_hd);
}

void mote_x86_attn_mix(float *out, const float *att, const int8_t *vq, const uint16_t *vs,
                       uint32_t stride, uint32_t head_dim, uint32_t n_pos)
{
    uint32_t i0, t, i;
    /* eight outputs at once, one lane each: lane i sums a_t * v[t][i] in t order */
    for (i0 = 0; i0 + 8u <= head_dim; i0 += 8u) {
        __m256 acc = _mm256_setzero_ps();
        for (t = 0; t < n_pos; t++) {
            const float a = att[t] * _cvtsh_ss(vs[t]);
            __m128i v8 = _mm_loadl_epi64((const __m128i *)(const void *)(vq + (size_t)t * stride + i0));
            __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v8));
            acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_set1_ps(a), v));
        }
        _mm256_storeu_ps(out + i0, acc);
    }
    for (i = i0; i < head_dim; i++) {
        float acc = 0.0f;
        for (t = 0; t < n_pos; t++)
            acc += (att[t] * mote_f16_to_f32(vs[t])) * (float)vq[(size_t)t * stride + i];
        out[i] = acc;
    }
}

/* ------------------------------------------------------------------ softmax */

/* mote_expf on eight lanes: the same operations in the same order. */
static __m256 expf8(__m256 x)
{
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps((float)1.44269504)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 r = _mm256_sub_ps(_mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps((float)0.693145751953125))),
                                   _mm256_mul_ps(n, _mm256_set1_ps((float)1.42860677e-06)));
    __m256 p = _mm256_set1_ps((float)(1.0 / 720.0));
    __m256 out;
    __m256i two_n;
    p = _mm256_add_ps(_mm256_set1_ps((float)(1.0 / 120.0)), _mm256_mul_ps(r, p));
    p = _mm256_add_ps(_mm256_set1_ps((float)(1.0 / 24.0)), _mm256_mul_ps(r, p));
    p = _mm256_add_ps(_mm256_set1_ps((float)(1.0 / 6.0)), _mm256_mul_ps(r, p));
    p = _mm256_add_ps(_mm256_set1_ps(0.5f), _mm256_mul_ps(r, p));
    p = _mm256_add_ps(_mm256_set1_ps(1.0f), _mm256_mul_ps(r, p));
    p = _mm256_add_ps(_mm256_set1_ps(1.0f), _mm256_mul_ps(r, p));
    /* lanes outside [-87, 88] get garbage here and are replaced below */
    two_n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127)), 23);
    out = _mm256_mul_ps(p, _mm256_castsi256_ps(two_n));
    out = _mm256_blendv_ps(out, _mm256_setzero_ps(),
                           _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_LT_OQ));
    out = _mm256_blendv_ps(out, _mm256_set1_ps(HUGE_VALF),
                           _mm256_cmp_ps(x, _mm256_set1_ps(88.0f), _CMP_GT_OQ));
    return _mm256_blendv_ps(out, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

void mote_x86_softmax(float *x, uint32_t n)
{
    __m256 vmax = _mm256_set1_ps(x[0]), vsum;
    __m128 m;
    float max, sum = 0.0f;
    uint32_t i;
    /* max_ps returns its second operand when either is NaN: a NaN x[i] is skipped and
     * a NaN x[0] sticks, exactly as the reference's `if (x[i] > max)` loop */
    for (i = 0; i + 8u <= n; i += 8u)
        vmax = _mm256_max_ps(_mm256_loadu_ps(x + i), vmax);
    m = _mm_max_ps(_mm256_extractf128_ps(vmax, 1), _mm256_castps256_ps128(vmax));
    m = _mm_max_ps(_mm_movehl_ps(m, m), m);
    m = _mm_max_ss(_mm_shuffle_ps(m, m, 1), m);
    max = _mm_cvtss_f32(m);
    for (; i < n; i++)
        if (x[i] > max)
            max = x[i];
    vmax = _mm256_set1_ps(max);
    for (i = 0; i + 8u <= n; i += 8u)
        _mm256_storeu_ps(x + i, expf8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmax)));
    for (; i < n; i++)
        x[i] = mote_expf(x[i] - max);
    for (i = 0; i < n; i++) /* the sum stays in index order */
        sum += x[i];
    vsum = _mm256_set1_ps(sum);
    for (i = 0; i + 8u <= n; i += 8u)
        _mm256_storeu_ps(x + i, _mm256_div_ps(_mm256_loadu_ps(x + i), vsum));
    for (; i < n; i++)
        x[i] /= sum;
}

#else
typedef int mote_kernels_x86_not_built; /* ISO C wants at least one declaration */
#endif /* MOTE_KERNELS_X86 */
