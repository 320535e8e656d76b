/* kernels_x86.c - the x86 kernel set: AVX2 with F16C, plus AVX-VNNI or AVX-512 VNNI
 * dot products and AVX-512 masked tail loads where the compiler flags (-march=...)
 * enable them; variants sit side by side and feature macros choose. Every kernel
 * computes exactly what its mote_ref_* twin computes, bit for bit: integer dot
 * products may run in any order, float operations keep the reference's order per
 * output (vectors run across outputs, never across a float sum).
 * Built with KERNELS=x86 (-DMOTE_KERNELS=x86, firmware/core/sources.mk). */
#include "kernels.h"

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

#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

/* The `is_q4` argument of the kernels below: 0 q8, 1 q4, Q4A (2) q4a, whose nibbles
 * are the same as q4's but unsigned codes already (no bias; an offset term instead). */
#define Q4A 2
/* What turns a byte of two nibbles into two unsigned codes: q4's w + 8, q4a's own. */
#define NIBBLE_FLIP(is_q4) ((char)((is_q4) == Q4A ? 0x00 : 0x88))

/* acc += w . x for 32 q4 weights (16 bytes, low nibble = even column) against x
 * rearranged as [even columns | odd columns] (see q4_x). Weights enter as unsigned
 * w + 8 in [0, 15] (q4; the caller subtracts 8 * sum(x)) or as they are (q4a). */
static ALWAYS_INLINE __m256i dot_q4(__m256i acc, __m128i packed, __m256i x_split, int is_q4)
{
    const __m256i shifts = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);
    __m256i b = _mm256_broadcastsi128_si256(_mm_xor_si128(packed, _mm_set1_epi8(NIBBLE_FLIP(is_q4))));
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

/* The activations of one 32-column chunk (n <= 32 of them, zero beyond), in the
 * layout the dot product wants. */
static ALWAYS_INLINE __m256i x_chunk(const int8_t *xq, uint32_t n, int is_q4)
{
    const __m256i x = load_bytes32(xq, n);
    return is_q4 ? q4_x(x) : x;
}

/* One 32-column weight chunk of a row at p against x (from x_chunk). */
static ALWAYS_INLINE __m256i chunk_dot(const uint8_t *p, __m256i x, int is_q4)
{
    return is_q4 ? dot_q4(_mm256_setzero_si256(), _mm_loadu_si128((const __m128i *)(const void *)p), x, is_q4)
                 : dot_q8(_mm256_setzero_si256(), _mm256_loadu_si256((const __m256i *)(const void *)p), x);
}

/* Integer dots of eight consecutive rows (the first at p, row_bytes apart) with one
 * 32-column chunk x, as eight int32 totals. The weights load in full: a chunk shorter
 * than 32 columns reads bytes past its group, which meet zero activations (the caller
 * keeps such reads off the tensor's last row). Pairs are reduced as soon as they are
 * ready, which keeps few registers alive. */
static ALWAYS_INLINE __m256i block_dots(const uint8_t *p, size_t row_bytes, __m256i x, int is_q4)
{
    const uint8_t *p4 = p + 4u * row_bytes;
    const __m256i d01 = _mm256_hadd_epi32(chunk_dot(p, x, is_q4), chunk_dot(p + row_bytes, x, is_q4));
    const __m256i d23 = _mm256_hadd_epi32(chunk_dot(p + 2u * row_bytes, x, is_q4),
                                          chunk_dot(p + 3u * row_bytes, x, is_q4));
    const __m256i d0123 = _mm256_hadd_epi32(d01, d23);
    const __m256i d45 = _mm256_hadd_epi32(chunk_dot(p4, x, is_q4), chunk_dot(p4 + row_bytes, x, is_q4));
    const __m256i d67 = _mm256_hadd_epi32(chunk_dot(p4 + 2u * row_bytes, x, is_q4),
                                          chunk_dot(p4 + 3u * row_bytes, x, is_q4));
    const __m256i d4567 = _mm256_hadd_epi32(d45, d67);
    return _mm256_add_epi32(_mm256_permute2x128_si256(d0123, d4567, 0x20),
                            _mm256_permute2x128_si256(d0123, d4567, 0x31));
}

/* The dots of one q4 row's two whole groups of 32 (32 bytes at p: 16 of each) with
 * x_even = [even columns of group 1 | of group 2] and x_odd likewise: the low 128-bit
 * half holds partial sums of the first group, the high one of the second (VNNI: four
 * int32 each; else eight int16, four_rows_q4). The low nibbles of
 * both groups' bytes are their even columns, the high ones their odd columns, so one
 * load and two masks serve 64 weights. Weights enter as w + 8 (the caller subtracts
 * 8 * sum(x) per group). */
static ALWAYS_INLINE __m256i pair_row_q4(const uint8_t *p, __m256i x_even, __m256i x_odd,
                                          int is_q4)
{
    const __m256i nibble = _mm256_set1_epi8(0x0F);
    const __m256i b = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)p),
                                       _mm256_set1_epi8(NIBBLE_FLIP(is_q4)));
    const __m256i lo = _mm256_and_si256(b, nibble);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), nibble);
#if HAVE_VNNI
    return dpbusd(dpbusd(_mm256_setzero_si256(), lo, x_even), hi, x_odd);
#else
    /* int16 lanes, each the sum of four products of at most 15 * 128 (pair_dots_q4
     * adds them up further before they widen) */
    return _mm256_add_epi16(_mm256_maddubs_epi16(lo, x_even), _mm256_maddubs_epi16(hi, x_odd));
#endif
}

/* The int32 totals of four rows' pair_row_q4 sums (a..d), per 128-bit half [a b c d]. */
static ALWAYS_INLINE __m256i four_rows_q4(__m256i a, __m256i b, __m256i c, __m256i d)
{
#if HAVE_VNNI
    return _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
#else
    /* two rounds of 16-bit adds first: sums of 16 products, at most 30720 in magnitude,
     * still int16; then one widening add of pairs, where a widening add per row takes
     * four times as many multiplier operations */
    const __m256i sums = _mm256_hadd_epi16(_mm256_hadd_epi16(a, b), _mm256_hadd_epi16(c, d));
    return _mm256_madd_epi16(sums, _mm256_set1_epi16(1));
#endif
}

/* The int32 totals of eight consecutive q4 rows (the first at p) over two whole groups
 * of 32 columns: first[j] and second[j] for row j, biased by 8 * sum(x) as dot_q4's. */
static ALWAYS_INLINE void pair_dots_q4(const uint8_t *p, size_t row_bytes, __m256i x_even,
                                       __m256i x_odd, __m256i *first, __m256i *second, int is_q4)
{
    const uint8_t *p4 = p + 4u * row_bytes;
    /* horizontal adds work within 128-bit halves: the low half stays the first group's */
    const __m256i d0123 = four_rows_q4(pair_row_q4(p, x_even, x_odd, is_q4),
                                       pair_row_q4(p + row_bytes, x_even, x_odd, is_q4),
                                       pair_row_q4(p + 2u * row_bytes, x_even, x_odd, is_q4),
                                       pair_row_q4(p + 3u * row_bytes, x_even, x_odd, is_q4));
    const __m256i d4567 = four_rows_q4(pair_row_q4(p4, x_even, x_odd, is_q4),
                                       pair_row_q4(p4 + row_bytes, x_even, x_odd, is_q4),
                                       pair_row_q4(p4 + 2u * row_bytes, x_even, x_odd, is_q4),
                                       pair_row_q4(p4 + 3u * row_bytes, x_even, x_odd, is_q4));
    *first = _mm256_permute2x128_si256(d0123, d4567, 0x20);
    *second = _mm256_permute2x128_si256(d0123, d4567, 0x31);
}

/* The integer dot of one row's group [begin, begin + len) with the activations, one
 * chunk at a time; `last` (the tensor's last row) loads only the group's own bytes. */
static ALWAYS_INLINE int32_t row_dot(const uint8_t *row, int is_q4, int last, const int8_t *xq,
                                     uint32_t begin, uint32_t len)
{
    __m256i acc = _mm256_setzero_si256();
    uint32_t c;
    for (c = 0; c < len; c += 32u) {
        const uint32_t n = len - c < 32u ? len - c : 32u;
        const __m256i x = x_chunk(xq + begin + c, n, is_q4);
        if (is_q4) {
            const uint8_t *p = row + (begin + c) / 2u;
            acc = dot_q4(acc, last ? load_bytes16(p, (n + 1u) / 2u)
                                   : _mm_loadu_si128((const __m128i *)(const void *)p), x, is_q4);
        } else {
            const uint8_t *p = row + begin + c;
            acc = dot_q8(acc, last ? load_bytes32(p, n)
                                   : _mm256_loadu_si256((const __m256i *)(const void *)p), x);
        }
    }
    return hsum_epi32(acc);
}

/* acc + (float)dots * (ws * sx), ws the eight rows' scales of one group as floats:
 * the reference's acc += (float)sum * (f32(ws) * xs) with the same operands, one row
 * per lane. */
static ALWAYS_INLINE __m256 add_term(__m256 acc, __m256i dots, __m256 ws, float sx)
{
    return _mm256_add_ps(acc, _mm256_mul_ps(_mm256_cvtepi32_ps(dots),
                                            _mm256_mul_ps(ws, _mm256_set1_ps(sx))));
}

/* n f16 words at p (n = 16, 8, 4, 2 or 1, a constant after inlining) in the low words
 * of a vector, one load of exactly those bytes. */
static ALWAYS_INLINE __m256i load_words(const uint16_t *p, uint32_t n)
{
    if (n == 16u)
        return _mm256_loadu_si256((const __m256i *)(const void *)p);
    if (n == 8u)
        return _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)p));
    if (n == 4u)
        return _mm256_castsi128_si256(_mm_loadl_epi64((const __m128i *)(const void *)p));
    if (n == 2u) {
        int32_t word;
        memcpy(&word, p, sizeof word);
        return _mm256_castsi128_si256(_mm_cvtsi32_si128(word));
    }
    return _mm256_castsi128_si256(_mm_cvtsi32_si128(p[0]));
}

/* The 8 x 8 transpose of 16-bit words in each 128-bit half: word c of out[k]'s half is
 * word k of r[c]'s. Outputs the caller does not use cost nothing after inlining. */
static ALWAYS_INLINE void transpose_words(__m256i out[8], const __m256i r[8])
{
    /* rows 2i, 2i+1 interleaved: words 0-3, then 4-7 */
    const __m256i a0 = _mm256_unpacklo_epi16(r[0], r[1]), a1 = _mm256_unpackhi_epi16(r[0], r[1]);
    const __m256i a2 = _mm256_unpacklo_epi16(r[2], r[3]), a3 = _mm256_unpackhi_epi16(r[2], r[3]);
    const __m256i a4 = _mm256_unpacklo_epi16(r[4], r[5]), a5 = _mm256_unpackhi_epi16(r[4], r[5]);
    const __m256i a6 = _mm256_unpacklo_epi16(r[6], r[7]), a7 = _mm256_unpackhi_epi16(r[6], r[7]);
    /* rows 0-3 (b0..b3) and 4-7 (b4..b7) of words (0,1), (2,3), (4,5), (6,7) */
    const __m256i b0 = _mm256_unpacklo_epi32(a0, a2), b1 = _mm256_unpackhi_epi32(a0, a2);
    const __m256i b2 = _mm256_unpacklo_epi32(a1, a3), b3 = _mm256_unpackhi_epi32(a1, a3);
    const __m256i b4 = _mm256_unpacklo_epi32(a4, a6), b5 = _mm256_unpackhi_epi32(a4, a6);
    const __m256i b6 = _mm256_unpacklo_epi32(a5, a7), b7 = _mm256_unpackhi_epi32(a5, a7);
    out[0] = _mm256_unpacklo_epi64(b0, b4);
    out[1] = _mm256_unpackhi_epi64(b0, b4);
    out[2] = _mm256_unpacklo_epi64(b1, b5);
    out[3] = _mm256_unpackhi_epi64(b1, b5);
    out[4] = _mm256_unpacklo_epi64(b2, b6);
    out[5] = _mm256_unpackhi_epi64(b2, b6);
    out[6] = _mm256_unpacklo_epi64(b3, b7);
    out[7] = _mm256_unpackhi_epi64(b3, b7);
}

/* The low eight f16 words of v as floats. */
static ALWAYS_INLINE __m256 low_words_ps(__m256i v)
{
    return _mm256_cvtph_ps(_mm256_castsi256_si128(v));
}

/* ws[k] (q4a: and wm[k]) = the scales (and offsets) of group k of eight rows, the first
 * row's at `at` and the others `stride` words apart, one row per lane, for k < n (n = 8,
 * 4, 2 or 1, a constant): per row one load of exactly its n groups' words and
 * transpose_words, instead of a gather per group (AVX2 gathers are slow, on AMD Zen
 * especially) or eight scalar loads. q8 and q4: word k is group k's scale. q4a: a row's
 * pairs interleave scale and offset, so n = 8 loads sixteen words, groups 0-3 in the low
 * 128-bit half and 4-7 in the high one, and the transpose in both halves at once leaves
 * word c of each half in one register: (c even) the scales, (c odd) the offsets, of
 * groups c / 2 (low half) and 4 + c / 2 (high half): 24 shuffles where a transpose of
 * the 32-bit pairs then split into halves takes 48 (the shuffle units are what bounds
 * this on AMD Zen 3); for n <= 4 the words are all in the low half. */
static ALWAYS_INLINE void transpose_scales(__m256 *ws, __m256 *wm, const uint16_t *at, size_t stride,
                                           uint32_t n, int is_q4)
{
    const uint32_t words = is_q4 == Q4A ? 2u : 1u; /* per group */
    __m256i r[8], col[8];
    uint32_t k;
#pragma GCC unroll 8
    for (k = 0; k < 8u; k++)
        r[k] = load_words(at + k * stride, words * n);
    transpose_words(col, r);
#pragma GCC unroll 8
    for (k = 0; k < n; k++) {
        if (is_q4 != Q4A) {
            ws[k] = low_words_ps(col[k]);
        } else if (n == 8u) {
            if (k < 4u) {
                ws[k] = low_words_ps(col[2u * k]);
                wm[k] = low_words_ps(col[2u * k + 1u]);
            } else {
                ws[k] = _mm256_cvtph_ps(_mm256_extracti128_si256(col[2u * (k - 4u)], 1));
                wm[k] = _mm256_cvtph_ps(_mm256_extracti128_si256(col[2u * (k - 4u) + 1u], 1));
            }
        } else {
            ws[k] = low_words_ps(col[2u * k]);
            wm[k] = low_words_ps(col[2u * k + 1u]);
        }
    }
}

/* transpose_scales for groups g..n-1 of a block (n - g < 8) by four, two and one, exactly
 * (a run of three after four as the last four again: the loads stay inside the row). */
static ALWAYS_INLINE void scales_tail(__m256 *ws, __m256 *wm, const uint16_t *at, size_t stride,
                                      uint32_t g, uint32_t n, int is_q4)
{
    const uint32_t words = is_q4 == Q4A ? 2u : 1u;
    if (n - g >= 4u) {
        transpose_scales(ws + g, wm + g, at + words * g, stride, 4u, is_q4);
        g += 4u;
    }
    if (n - g == 3u && g > 0) {
        transpose_scales(ws + n - 4u, wm + n - 4u, at + words * (n - 4u), stride, 4u, is_q4);
        return;
    }
    if (n - g >= 2u) {
        transpose_scales(ws + g, wm + g, at + words * g, stride, 2u, is_q4);
        g += 2u;
    }
    if (g < n)
        transpose_scales(ws + g, wm + g, at + words * g, stride, 1u, is_q4);
}

/* transpose_scales over a block's n groups (ws[0..n), wm[0..n)): eight groups per
 * transpose, a last run of 5-7 as the last eight again, shorter ones by scales_tail.
 * Rows of fewer than eight groups take their own branch, where every offset is a
 * constant. */
static ALWAYS_INLINE void block_scales(__m256 *ws, __m256 *wm, const uint16_t *at, size_t stride,
                                       uint32_t n, int is_q4)
{
    const uint32_t words = is_q4 == Q4A ? 2u : 1u;
    uint32_t g = 0;
    switch (n) { /* scales_tail with constants */
    case 1u: scales_tail(ws, wm, at, stride, 0, 1u, is_q4); return;
    case 2u: scales_tail(ws, wm, at, stride, 0, 2u, is_q4); return;
    case 3u: scales_tail(ws, wm, at, stride, 0, 3u, is_q4); return;
    case 4u: scales_tail(ws, wm, at, stride, 0, 4u, is_q4); return;
    case 5u: scales_tail(ws, wm, at, stride, 0, 5u, is_q4); return;
    case 6u: scales_tail(ws, wm, at, stride, 0, 6u, is_q4); return;
    case 7u: scales_tail(ws, wm, at, stride, 0, 7u, is_q4); return;
    default: break;
    }
    for (; g + 8u <= n; g += 8u)
        transpose_scales(ws + g, wm + g, at + words * g, stride, 8u, is_q4);
    if (n - g > 4u)
        transpose_scales(ws + n - 8u, wm + n - 8u, at + words * (n - 8u), stride, 8u, is_q4);
    else if (g < n)
        scales_tail(ws, wm, at, stride, g, n, is_q4);
}

/* The unsigned dots' bias per activation sum: q8 with VNNI (codes w + 128), q4 (w + 8). */
#define DOT_BIAS(is_q4) ((is_q4) == Q4A ? 0 : (is_q4) ? Q4_BIAS : Q8_BIAS)

/* Eight f16 values, the low halves of `halves`' int32 lanes, as floats. */
static ALWAYS_INLINE __m256 low_halves_ps(__m256i halves)
{
    return _mm256_cvtph_ps(_mm256_castsi256_si128(_mm256_permute4x64_epi64(
        _mm256_packus_epi32(halves, _mm256_setzero_si256()), _MM_SHUFFLE(3, 1, 2, 0))));
}

/* The f16 scales of eight rows at arbitrary places, one group: 32-bit words ending at
 * each scale, gathered from 2 bytes before it (inside the blob, as the scales start
 * 32-aligned after the header at least), as floats. */
static ALWAYS_INLINE __m256 gather_scales(const uint16_t *scale, __m256i offsets)
{
    const __m256i words = _mm256_i32gather_epi32(
        (const int *)(const void *)((const uint8_t *)scale - 2), offsets, 1);
    return low_halves_ps(_mm256_srli_epi32(words, 16));
}

/* acc plus group g's terms for eight rows: the biased dots corrected by bias_of (bias
 * times the group's activation sum) with the scales block_ws[g] (transpose_scales); or
 * for q4a, the dots' term with the scales block_ws[g] then the offset's, whose integer is
 * the activation sum, with the offsets block_wm[g] (transpose_pairs): bias_of holds that
 * sum converted to float (the same conversion as the reference's, done once per call). */
static ALWAYS_INLINE __m256 add_group(__m256 acc, __m256i dots, const __m256 *block_ws,
                                      const __m256 *block_wm, uint32_t g, float sx,
                                      __m256i bias_of, int is_q4)
{
    if (is_q4 == Q4A)
        return _mm256_add_ps(add_term(acc, dots, block_ws[g], sx),
                             _mm256_mul_ps(_mm256_castsi256_ps(bias_of),
                                           _mm256_mul_ps(block_wm[g], _mm256_set1_ps(sx))));
    if (DOT_BIAS(is_q4) != 0)
        dots = _mm256_sub_epi32(dots, bias_of);
    return add_term(acc, dots, block_ws[g], sx);
}

/* The groups [g_begin, g_end) of the block of rows at r0 (`valid` of them; `whole`:
 * eight distinct rows ending at r0 + valid) that are not one whole chunk: a ragged
 * group (cols % group), or a group size not a multiple of 32. Reads only what it may:
 * a short chunk loads past its group except on the tensor's last row. Kept out of
 * line, where its temporaries do not crowd the common loop's registers. */
static ALWAYS_INLINE __m256 careful_groups(__m256 acc, const mote_tensor *w, const int8_t *xq,
                                           const float *xs, uint32_t group, uint32_t r0,
                                           uint32_t valid, int whole, uint32_t g_begin,
                                           uint32_t g_end, const __m256i *x_first,
                                           const __m256i *bias_of, const __m256 *ws,
                                           const __m256 *wm, int is_q4)
{
    const uint32_t cols = w->cols, last_row = w->rows - 1u;
    const size_t row_bytes = is_q4 ? (cols + 1u) / 2u : cols;
    const uint32_t base = valid == 8u || !whole ? r0 : r0 + valid - 8u;
    const uint8_t *block = (const uint8_t *)w->data + (size_t)base * row_bytes;
    uint32_t g, j;
    for (g = g_begin; g < g_end; g++) {
        const uint32_t begin = g * group, len = cols - begin < group ? cols - begin : group;
        __m256i dots;
        if (whole && (len % 32u == 0 || base + 8u <= last_row)) { /* loads stay inside */
            const uint8_t *p = block + (is_q4 ? begin / 2u : begin);
            uint32_t c;
            dots = block_dots(p, row_bytes, x_first[g], is_q4);
            for (c = 32u; c < len; c += 32u)
                dots = _mm256_add_epi32(
                    dots, block_dots(p + (is_q4 ? c / 2u : c), row_bytes,
                                     x_chunk(xq + begin + c, len - c < 32u ? len - c : 32u, is_q4),
                                     is_q4));
        } else {
            int32_t d[8];
            for (j = 0; j < 8u; j++) {
                const uint32_t r = whole ? base + j : r0 + (j < valid ? j : valid - 1u);
                d[j] = row_dot((const uint8_t *)w->data + (size_t)r * row_bytes, is_q4,
                               r == last_row, xq, begin, len);
            }
            dots = _mm256_loadu_si256((const __m256i *)(const void *)d);
        }
        acc = add_group(acc, dots, ws, wm, g, xs[g], bias_of[g], is_q4);
    }
    return acc;
}

#if defined(__GNUC__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif

static NOINLINE __m256 careful_groups_q8(__m256 acc, const mote_tensor *w, const int8_t *xq,
                                         const float *xs, uint32_t group, uint32_t r0,
                                         uint32_t valid, int whole, uint32_t g_begin,
                                         uint32_t g_end, const __m256i *x_first,
                                         const __m256i *bias_of, const __m256 *ws, const __m256 *wm)
{
    return careful_groups(acc, w, xq, xs, group, r0, valid, whole, g_begin, g_end, x_first,
                          bias_of, ws, wm, 0);
}

static NOINLINE __m256 careful_groups_q4(__m256 acc, const mote_tensor *w, const int8_t *xq,
                                         const float *xs, uint32_t group, uint32_t r0,
                                         uint32_t valid, int whole, uint32_t g_begin,
                                         uint32_t g_end, const __m256i *x_first,
                                         const __m256i *bias_of, const __m256 *ws, const __m256 *wm)
{
    return careful_groups(acc, w, xq, xs, group, r0, valid, whole, g_begin, g_end, x_first,
                          bias_of, ws, wm, 1);
}

static NOINLINE __m256 careful_groups_q4a(__m256 acc, const mote_tensor *w, const int8_t *xq,
                                          const float *xs, uint32_t group, uint32_t r0,
                                          uint32_t valid, int whole, uint32_t g_begin,
                                          uint32_t g_end, const __m256i *x_first,
                                          const __m256i *bias_of, const __m256 *ws, const __m256 *wm)
{
    return careful_groups(acc, w, xq, xs, group, r0, valid, whole, g_begin, g_end, x_first,
                          bias_of, ws, wm, Q4A);
}

/* Decode reads every weight once per token, from memory, eight rows at a time: a
 * few lines of each row in turn, which the hardware prefetcher follows too late (the
 * matvecs of a SmolLM2-135M token ran at about 3 GB/s where a plain read streams
 * 10-11 GB/s). So each block of rows asks for the weights of the block some
 * PREFETCH_AHEAD bytes further on (2 to 16 KB measured alike; README, "Beside
 * llama.cpp"), four lines per step of 256 bytes: spread out, not all at the block's
 * start, where a burst of prefetches fills the core's queue of outstanding misses and
 * stalls it (1.6x slower, measured). */
#define PREFETCH_AHEAD 4096u

static ALWAYS_INLINE void prefetch_bytes(const void *p, size_t n)
{
    size_t at;
    for (at = 0; at < n; at += 64u)
        _mm_prefetch((const char *)p + at, _MM_HINT_T0);
}

/* Groups per pass over the rows: their first activation chunks and the bias of the
 * unsigned dot products (VNNI, q4) are prepared once per pass, on the stack (8 KB).
 * Rows of up to 2048 columns (groups of 32) take one pass, so that decode reads each
 * block of rows in one sweep. */
#define TILE_GROUPS 64u

/* What the blocks of rows of one pass over groups [g0, g1) share (matvec_impl). */
typedef struct {
    const mote_tensor *w;
    const int8_t *xq;
    const float *xs;
    uint32_t group, g0, g1;
    uint32_t g_simple;   /* groups g0..g_simple are one whole chunk each (eight distinct rows) */
    uint32_t row_end, row_scales;
    uint32_t ahead;      /* blocks of rows: PREFETCH_AHEAD */
    size_t row_bytes;
    const __m256i *x_first, *x_pair, *bias_of; /* indexed from g0 */
    __m256 *ws, *wm;     /* the block's scales and (q4a) offsets, one row per lane */
    uint16_t *spare;     /* a short tensor's scales, its last row repeated */
} rows_pass;

/* The rows [r0, r0 + valid) of pass p (valid = 8 a constant in the common case):
 * computed as the 8 rows ending at row_end (lanes before r0 dropped) when the tensor
 * has them, else lane by lane with the last row repeated. */
static ALWAYS_INLINE void row_block(float *y, const rows_pass *p, uint32_t r0, uint32_t valid, int is_q4)
{
    const mote_tensor *w = p->w;
    const uint32_t g0 = p->g0, g1 = p->g1, row_end = p->row_end, row_scales = p->row_scales;
    const uint32_t words = is_q4 == Q4A ? 2u : 1u;
    const size_t row_bytes = p->row_bytes;
    const int whole = valid == 8u || row_end >= 8u; /* eight distinct rows */
    const uint32_t base = valid == 8u || !whole ? r0 : row_end - 8u;
    const uint32_t skip = r0 - base; /* lanes before r0 */
    const uint32_t g_simple = whole ? p->g_simple : g0;
    const uint8_t *block = (const uint8_t *)w->data + (size_t)base * row_bytes;
    const uint16_t *scale = w->scales + (size_t)base * row_scales;
    const uint8_t *pf = block + 8u * p->ahead * row_bytes, *pf_end = pf; /* PREFETCH_AHEAD */
    const __m256i *x_first = p->x_first - g0, *x_pair = p->x_pair - g0, *bias_of = p->bias_of - g0;
    const __m256 *ws = p->ws - g0, *wm = p->wm - g0;
    const float *xs = p->xs;
    __m256 acc;
    float tmp[8];
    uint32_t g, j;
    if (whole) {
        block_scales(p->ws, p->wm, scale + words * g0, row_scales, g1 - g0, is_q4);
    } else { /* a tensor of fewer than 8 rows */
        for (j = 0; j < 8u; j++)
            memcpy(p->spare + j * words * (g1 - g0),
                   scale + (size_t)(j < valid ? j : valid - 1u) * row_scales + words * g0,
                   words * (g1 - g0) * sizeof p->spare[0]);
        block_scales(p->ws, p->wm, p->spare, words * (g1 - g0), g1 - g0, is_q4);
    }
    if (g0 == 0) {
        acc = _mm256_setzero_ps();
    } else if (valid == 8u) {
        acc = _mm256_loadu_ps(y + r0);
    } else {
        for (j = 0; j < 8u; j++)
            tmp[j] = j >= skip && j - skip < valid ? y[r0 + j - skip] : 0.0f;
        acc = _mm256_loadu_ps(tmp);
    }
    /* whole rows, once; past row_end too, inside the tensor (a thread's range of
     * rows: the next range comes next, here or on another core) */
    if (g0 == 0 && base + 8u * (p->ahead + 1u) <= w->rows) {
        pf_end = pf + 8u * row_bytes;
        prefetch_bytes(scale + 8u * p->ahead * row_scales, 16u * row_scales);
    }
    /* the common case first: groups of exactly one whole chunk, q4 two at a time */
    g = g0;
    for (; is_q4 && g + 2u <= g_simple; g += 2u, pf += 256u) {
        __m256i first, second;
        if (pf < pf_end)
            prefetch_bytes(pf, 256u);
        pair_dots_q4(block + g * 16u, row_bytes, x_pair[g], x_pair[g + 1u], &first, &second, is_q4);
        acc = add_group(acc, first, ws, wm, g, xs[g], bias_of[g], is_q4);
        acc = add_group(acc, second, ws, wm, g + 1u, xs[g + 1u], bias_of[g + 1u], is_q4);
    }
    for (; g < g_simple; g++, pf += 256u) {
        __m256i dots;
        if (pf < pf_end)
            prefetch_bytes(pf, 256u);
        dots = block_dots(block + (is_q4 ? g * 16u : g * 32u), row_bytes, x_first[g], is_q4);
        acc = add_group(acc, dots, ws, wm, g, xs[g], bias_of[g], is_q4);
    }
    if (g_simple < g1)
        acc = is_q4 == Q4A ? careful_groups_q4a(acc, w, p->xq, xs, p->group, r0, valid, whole, g_simple,
                                                g1, x_first, bias_of, ws, wm)
              : is_q4 ? careful_groups_q4(acc, w, p->xq, xs, p->group, r0, valid, whole, g_simple, g1,
                                          x_first, bias_of, ws, wm)
                      : careful_groups_q8(acc, w, p->xq, xs, p->group, r0, valid, whole, g_simple, g1,
                                          x_first, bias_of, ws, wm);
    if (pf < pf_end)
        prefetch_bytes(pf, (size_t)(pf_end - pf));
    if (valid == 8u) {
        _mm256_storeu_ps(y + r0, acc);
    } else {
        _mm256_storeu_ps(tmp, acc);
        for (j = 0; j < valid; j++)
            y[r0 + j] = tmp[skip + j];
    }
}

/* Eight rows at a time, each row's groups in order with its float sum in a register
 * (kept in y between passes): y[r] = ((0 + term_0) + term_1) + ..., the reference's
 * acc += (float)sum * (f32(ws) * xs) with the same operands. Whole blocks of eight rows
 * first, then the short last block (row_block). */
static ALWAYS_INLINE void matvec_impl(float *y, const mote_tensor *w, const int8_t *xq,
                                      const float *xs, uint32_t group, uint32_t row_begin,
                                      uint32_t row_end, int is_q4)
{
    const uint32_t cols = w->cols;
    const uint32_t n_groups = (cols + group - 1u) / group;
    const size_t row_bytes = is_q4 ? (cols + 1u) / 2u : cols;
    /* q4a: bias_of holds the activation sums as floats (add_group) */
    const int32_t bias = is_q4 == Q4A ? 1 : DOT_BIAS(is_q4);
    const uint32_t n_simple = group == 32u ? cols / 32u : 0; /* groups of one whole chunk */
    __m256i x_first[TILE_GROUPS], bias_of[TILE_GROUPS];
    __m256i x_pair[TILE_GROUPS]; /* q4: [even | even], [odd | odd] of two simple groups */
    __m256 ws[TILE_GROUPS], wm[TILE_GROUPS];
    uint16_t spare[8u * 2u * TILE_GROUPS];
    rows_pass p = {.w = w, .xq = xq, .xs = xs, .group = group, .row_end = row_end,
                   .row_scales = n_groups * (is_q4 == Q4A ? 2u : 1u), /* f16 words: q4a's are pairs */
                   .ahead = (uint32_t)((PREFETCH_AHEAD + 8u * row_bytes - 1u) / (8u * row_bytes)),
                   .row_bytes = row_bytes, .x_first = x_first, .x_pair = x_pair, .bias_of = bias_of,
                   .ws = ws, .wm = wm, .spare = spare};
    uint32_t g0, r0, g;
    for (g0 = 0; g0 < n_groups; g0 += TILE_GROUPS) {
        const uint32_t g1 = n_groups - g0 < TILE_GROUPS ? n_groups : g0 + TILE_GROUPS;
        for (g = g0; g < g1; g++) {
            const uint32_t begin = g * group, len = cols - begin < group ? cols - begin : group;
            int32_t x_sum = 0;
            uint32_t c;
            x_first[g - g0] = x_chunk(xq + begin, len < 32u ? len : 32u, is_q4);
            for (c = 0; c < len && bias != 0; c += 32u) /* x_chunk's permutation keeps the sum */
                x_sum += hsum_epi32(byte_sums(
                    c == 0 ? x_first[g - g0] : load_bytes32(xq + begin + c, len - c < 32u ? len - c : 32u)));
            bias_of[g - g0] = is_q4 == Q4A ? _mm256_castps_si256(_mm256_set1_ps((float)x_sum))
                                           : _mm256_set1_epi32(bias * x_sum);
        }
        for (g = g0; is_q4 && g + 2u <= (n_simple < g1 ? n_simple : g1); g += 2u) {
            x_pair[g - g0] = _mm256_permute2x128_si256(x_first[g - g0], x_first[g + 1u - g0], 0x20);
            x_pair[g + 1u - g0] = _mm256_permute2x128_si256(x_first[g - g0], x_first[g + 1u - g0], 0x31);
        }
        p.g0 = g0;
        p.g1 = g1;
        p.g_simple = n_simple < g0 ? g0 : n_simple < g1 ? n_simple : g1;
        for (r0 = row_begin; row_end - r0 >= 8u; r0 += 8u)
            row_block(y, &p, r0, 8u, is_q4);
        if (r0 < row_end)
            row_block(y, &p, r0, row_end - r0, is_q4);
    }
}

void mote_x86_matvec(float *y, const mote_tensor *w, const int8_t *xq, const float *xs,
                     uint32_t group, uint32_t row_begin, uint32_t row_end)
{
    if (row_begin >= row_end)
        return;
    if (w->dtype == MOTE_Q4A)
        matvec_impl(y, w, xq, xs, group, row_begin, row_end, Q4A);
    else if (w->dtype == MOTE_Q4)
        matvec_impl(y, w, xq, xs, group, row_begin, row_end, 1);
    else
        matvec_impl(y, w, xq, xs, group, row_begin, row_end, 0);
}

/* Rows per tile of the matrix x matrix product: a tile's weights (64 rows, up to a
 * few tens of KB) stay in the core's caches while every position runs over them, so
 * each weight comes from memory once per pass rather than once per position. */
#define MATMAT_TILE_ROWS 64u

void mote_x86_matmat(float *y, uint32_t y_stride, const mote_tensor *w, const int8_t *xq,
                     const float *xs, uint32_t n_pos, uint32_t group, uint32_t row_begin,
                     uint32_t row_end)
{
    const uint32_t cols = w->cols, n_groups = (cols + group - 1u) / group;
    uint32_t r0, p;
    for (r0 = row_begin; r0 < row_end; r0 += MATMAT_TILE_ROWS) {
        const uint32_t r1 = row_end - r0 < MATMAT_TILE_ROWS ? row_end : r0 + MATMAT_TILE_ROWS;
        for (p = 0; p < n_pos; p++)
            mote_x86_matvec(y + (size_t)p * y_stride, w, xq + (size_t)p * cols,
                            xs + (size_t)p * n_groups, group, r0, r1);
    }
}

/* ------------------------------------------------------------------ activations */

/* max |x[i]| over i in order, NaN skipped, as the reference's `if (a > amax)` loop:
 * max_ps returns its second operand (the running max) when either is NaN. */
static float abs_max(const float *x, uint32_t n)
{
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    __m256 vmax = _mm256_setzero_ps();
    __m128 m;
    float amax;
    uint32_t i;
    for (i = 0; i + 8u <= n; i += 8u)
        vmax = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask), vmax);
    m = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    amax = _mm_cvtss_f32(m);
    for (; i < n; i++) {
        float a = x[i] < 0.0f ? -x[i] : x[i];
        if (a > amax)
            amax = a;
    }
    return amax;
}

/* q[i] = clamp(rint(x[i] * inv), -127, 127); NaN becomes -127, as the reference. */
static void quantize_codes(int8_t *q, const float *x, uint32_t n, float inv)
{
    const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    const __m256 vinv = _mm256_set1_ps(inv);
    uint32_t i;
    for (i = 0; i + 8u <= n; i += 8u) {
        __m256 v = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vinv),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m256i c = _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(v, lo), hi));
        __m128i c16 = _mm_packs_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
        _mm_storel_epi64((__m128i *)(void *)(q + i), _mm_packs_epi16(c16, c16));
    }
    for (; i < n; i++) {
        __m128 v = _mm_round_ss(_mm_setzero_ps(), _mm_set_ss(x[i] * inv),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        v = _mm_min_ss(_mm_max_ss(v, _mm_set_ss(-127.0f)), _mm_set_ss(127.0f));
        q[i] = (int8_t)_mm_cvttss_si32(v);
    }
}

void mote_x86_quantize_act(int8_t *xq, float *xs, const float *x, uint32_t n, uint32_t group)
{
    uint32_t begin, g = 0;
    for (begin = 0; begin < n; begin += group, g++) {
        const uint32_t len = n - begin < group ? n - begin : group;
        const float amax = abs_max(x + begin, len);
        if (amax == 0.0f) {
            xs[g] = 0.0f;
            memset(xq + begin, 0, len);
            continue;
        }
        xs[g] = amax / 127.0f;
        quantize_codes(xq + begin, x + begin, len, 127.0f / amax);
    }
}

void mote_x86_quantize_kv(int8_t *q, uint16_t *scale, const float *x, uint32_t n)
{
    float s;
    *scale = mote_f32_to_f16(abs_max(x, n) / 127.0f);
    s = mote_f16_to_f32(*scale);
    if (s == 0.0f) {
        memset(q, 0, n);
        return;
    }
    quantize_codes(q, x, n, 1.0f / s);
}

void mote_x86_rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps)
{
    float ss = 0.0f, inv, sq[8];
    uint32_t i, j;
    /* the squares eight lanes at a time; their sum in index order */
    for (i = 0; i + 8u <= n; i += 8u) {
        const __m256 v = _mm256_loadu_ps(x + i);
        _mm256_storeu_ps(sq, _mm256_mul_ps(v, v));
        for (j = 0; j < 8u; j++)
            ss += sq[j];
    }
    for (; i < n; i++)
        ss += x[i] * x[i];
    inv = 1.0f / sqrtf(ss / (float)n + eps);
    {
        const __m256 vinv = _mm256_set1_ps(inv);
        for (i = 0; i + 8u <= n; i += 8u)
            _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vinv),
                                                    _mm256_loadu_ps(w + i)));
        for (; i < n; i++)
            out[i] = x[i] * inv * w[i];
    }
}

/* ------------------------------------------------------------------ attention */

/* Scores of eight positions at once, one lane each: lane t sums q[i] * k[t][i] in i
 * order; in the last block, lanes past n_pos repeat position n_pos - 1 (results
 * dropped). head_dim % 4 == 0; inlined with a constant head_dim for small heads, so
 * that the broadcasts of q stay in registers across positions. */
static ALWAYS_INLINE void attn_scores_impl(float *att, const float *q, const int8_t *kq,
                                           const uint16_t *ks, uint32_t stride,
                                           uint32_t head_dim, uint32_t n_pos, float sqrt_hd)
{
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i rows = _mm256_mullo_epi32(lanes, _mm256_set1_epi32((int)stride));
    const __m256 div = _mm256_set1_ps(sqrt_hd);
    uint32_t t, i, j;
    for (t = 0; t < n_pos; t += 8u) {
        const uint32_t valid = n_pos - t < 8u ? n_pos - t : 8u;
        const int8_t *k = kq + (size_t)t * stride;
        __m256i offsets = rows;
        __m256 dot = _mm256_setzero_ps(), s;
        if (valid < 8u)
            offsets = _mm256_mullo_epi32(_mm256_min_epi32(lanes, _mm256_set1_epi32((int)valid - 1)),
                                         _mm256_set1_epi32((int)stride));
        for (i = 0; i < head_dim; i += 4u) {
            /* k[t][i..i+3] of the eight positions, one 32-bit word per lane */
            const __m256i k4 = _mm256_i32gather_epi32((const int *)(const void *)(k + i), offsets, 1);
            const __m256 k0 = _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(k4, 24), 24));
            const __m256 k1 = _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(k4, 16), 24));
            const __m256 k2 = _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(k4, 8), 24));
            const __m256 k3 = _mm256_cvtepi32_ps(_mm256_srai_epi32(k4, 24));
            dot = _mm256_add_ps(dot, _mm256_mul_ps(_mm256_set1_ps(q[i]), k0));
            dot = _mm256_add_ps(dot, _mm256_mul_ps(_mm256_set1_ps(q[i + 1u]), k1));
            dot = _mm256_add_ps(dot, _mm256_mul_ps(_mm256_set1_ps(q[i + 2u]), k2));
            dot = _mm256_add_ps(dot, _mm256_mul_ps(_mm256_set1_ps(q[i + 3u]), k3));
        }
        if (valid == 8u) {
            s = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(ks + t)));
            _mm256_storeu_ps(att + t, _mm256_div_ps(_mm256_mul_ps(dot, s), div));
        } else {
            uint16_t h[8] = {0};
            float out[8];
            for (j = 0; j < valid; j++)
                h[j] = ks[t + j];
            s = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)h));
            _mm256_storeu_ps(out, _mm256_div_ps(_mm256_mul_ps(dot, s), div));
            for (j = 0; j < valid; j++)
                att[t + j] = out[j];
        }
    }
}

/* one head at a time: the gather converts keys cheaply enough here */
void mote_x86_attn_scores(float *const att[], const float *q, uint32_t n_q, const int8_t *kq,
                          const uint16_t *ks, uint32_t stride, uint32_t head_dim, uint32_t n_pos,
                          float sqrt_hd)
{
    uint32_t h;
    for (h = 0; h < n_q; h++) {
        const float *qh = q + (size_t)h * head_dim;
        if (head_dim == 8u)
            attn_scores_impl(att[h], qh, kq, ks, stride, 8u, n_pos, sqrt_hd);
        else if (head_dim == 16u)
            attn_scores_impl(att[h], qh, kq, ks, stride, 16u, n_pos, sqrt_hd);
        else if (head_dim % 4u == 0)
            attn_scores_impl(att[h], qh, kq, ks, stride, head_dim, n_pos, sqrt_hd);
        else
            mote_ref_attn_scores(att + h, qh, 1u, kq, ks, stride, head_dim, n_pos, sqrt_hd);
    }
}

static void attn_mix_head(float *out, const float *att, const int8_t *vq, const uint16_t *vs,
                          uint32_t stride, uint32_t head_dim, uint32_t n_pos)
{
    float a8[8];
    uint32_t i0, t, i, j;
    /* eight outputs at once, one lane each: lane i sums (att[t] * vs[t]) * v[t][i] in t
     * order; the weights att[t] * vs[t] of eight positions come from one multiply */
    for (i0 = 0; i0 + 8u <= head_dim; i0 += 8u) {
        const int8_t *v = vq + i0;
        __m256 acc = _mm256_setzero_ps();
        for (t = 0; t + 8u <= n_pos; t += 8u) {
            _mm256_storeu_ps(a8, _mm256_mul_ps(_mm256_loadu_ps(att + t),
                                               _mm256_cvtph_ps(_mm_loadu_si128(
                                                   (const __m128i *)(const void *)(vs + t)))));
#pragma GCC unroll 8
            for (j = 0; j < 8u; j++, v += stride) {
                const __m256 vf = _mm256_cvtepi32_ps(
                    _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)v)));
                acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_set1_ps(a8[j]), vf));
            }
        }
        for (; t < n_pos; t++, v += stride) {
            const __m256 vf = _mm256_cvtepi32_ps(
                _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)v)));
            acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_set1_ps(att[t] * _cvtsh_ss(vs[t])), vf));
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

void mote_x86_attn_mix(float *out, const float *const att[], uint32_t n_q, const int8_t *vq,
                       const uint16_t *vs, uint32_t stride, uint32_t head_dim, uint32_t n_pos)
{
    uint32_t h;
    for (h = 0; h < n_q; h++)
        attn_mix_head(out + (size_t)h * head_dim, att[h], vq, vs, stride, head_dim, n_pos);
}

/* ------------------------------------------------------------------ exp, softmax, SiLU */

/* mote_expf on eight lanes: the same operations in the same order. */
static ALWAYS_INLINE __m256 expf8(__m256 x)
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

/* The first n (< 8) lanes: a mask for maskload (zero beyond, never reads past p + n)
 * and maskstore. */
static __m256i first_lanes(uint32_t n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
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
    /* e = exp(x - max) eight lanes at a time; the sum stays in index order */
    vmax = _mm256_set1_ps(max);
    for (i = 0; i + 8u <= n; i += 8u) {
        _mm256_storeu_ps(x + i, expf8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmax)));
        sum += x[i];
        sum += x[i + 1u];
        sum += x[i + 2u];
        sum += x[i + 3u];
        sum += x[i + 4u];
        sum += x[i + 5u];
        sum += x[i + 6u];
        sum += x[i + 7u];
    }
    if (i < n) { /* the last lanes: exp of 0 - max beyond n, not stored */
        const __m256i mask = first_lanes(n - i);
        _mm256_maskstore_ps(x + i, mask, expf8(_mm256_sub_ps(_mm256_maskload_ps(x + i, mask), vmax)));
        for (; i < n; i++)
            sum += x[i];
    }
    vsum = _mm256_set1_ps(sum);
    for (i = 0; i + 8u <= n; i += 8u)
        _mm256_storeu_ps(x + i, _mm256_div_ps(_mm256_loadu_ps(x + i), vsum));
    for (; i < n; i++)
        x[i] /= sum;
}

/* mote_ref_argmax in two passes: the maximum m of x[0] and every x[i] that is not NaN
 * (maxps returns its second operand, the running maxima that start at x[0], when
 * either is NaN), then the first i with x[i] == m: the reference's pick, as its strict
 * `>` leaves ties (-0 == +0 among them) to the lowest index and NaN equals nothing. A
 * NaN x[0], which the reference keeps, goes to the reference. */
int32_t mote_x86_argmax(const float *x, uint32_t n)
{
    __m256 m0, m1, m2, m3, target;
    __m128 h;
    float m;
    uint32_t i;
    if (n < 32u || x[0] != x[0])
        return mote_ref_argmax(x, n);
    m0 = m1 = m2 = m3 = _mm256_set1_ps(x[0]);
    for (i = 0; i + 32u <= n; i += 32u) {
        m0 = _mm256_max_ps(_mm256_loadu_ps(x + i), m0);
        m1 = _mm256_max_ps(_mm256_loadu_ps(x + i + 8u), m1);
        m2 = _mm256_max_ps(_mm256_loadu_ps(x + i + 16u), m2);
        m3 = _mm256_max_ps(_mm256_loadu_ps(x + i + 24u), m3);
    }
    m0 = _mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3));
    h = _mm_max_ps(_mm256_castps256_ps128(m0), _mm256_extractf128_ps(m0, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    m = _mm_cvtss_f32(_mm_max_ss(h, _mm_shuffle_ps(h, h, 1)));
    for (; i < n; i++)
        if (x[i] > m)
            m = x[i];
    target = _mm256_set1_ps(m);
    for (i = 0; i + 32u <= n; i += 32u) {
        const __m256 eq01 = _mm256_or_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), target, _CMP_EQ_OQ),
                                         _mm256_cmp_ps(_mm256_loadu_ps(x + i + 8u), target, _CMP_EQ_OQ));
        const __m256 eq23 = _mm256_or_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i + 16u), target, _CMP_EQ_OQ),
                                         _mm256_cmp_ps(_mm256_loadu_ps(x + i + 24u), target, _CMP_EQ_OQ));
        if (_mm256_movemask_ps(_mm256_or_ps(eq01, eq23)) != 0)
            break;
    }
    while (x[i] != m) /* m is one of x's values: this stops */
        i++;
    return (int32_t)i;
}

void mote_x86_silu_mul(float *h, const float *u, uint32_t n)
{
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    uint32_t i;
    /* h / (1 + exp(-h)) * u, the reference's operations on each lane */
    for (i = 0; i + 8u <= n; i += 8u) {
        const __m256 g = _mm256_loadu_ps(h + i);
        const __m256 e = expf8(_mm256_xor_ps(g, sign));
        _mm256_storeu_ps(h + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)),
                                              _mm256_loadu_ps(u + i)));
    }
    if (i < n) {
        const __m256i mask = first_lanes(n - i);
        const __m256 g = _mm256_maskload_ps(h + i, mask);
        const __m256 e = expf8(_mm256_xor_ps(g, sign));
        _mm256_maskstore_ps(h + i, mask, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)),
                                                       _mm256_maskload_ps(u + i, mask)));
    }
}

/* ------------------------------------------------------------------ sparse kernels */

/* The column kernel (mote_ref_matvec_cols): input-major weights, so that a zero code
 * skips its column. First the nonzero codes of every input group are listed, sixteen
 * codes at a time with vector compares and a compaction (no per-code branch): the
 * positive codes in one list, the negative ones in another, each group's padded with
 * code 0 to whole quads of four columns, as byte offsets of the columns and their
 * magnitudes as unsigned bytes. Then, 64 rows at a time (32 for the last few), with
 * the rows' float sums in registers: per group, each quad's offsets and magnitudes are
 * loaded once, and per 32 rows its four columns loaded and interleaved so that every
 * 32-bit lane holds one row's four weights, which multiply
 * the four magnitudes as the signed operand (maddubs or VNNI's dpbusd: no sign
 * juggling, no bias), the negative quads' products subtracted; the group's int32 sums
 * become the reference's float term y[r] += (float)sum * (f16(ws[r]) * xs[g]), groups
 * in order. */

/* A tensor of COLUMN_FAR_BYTES or more (a guess at what stays out of the caches
 * between tokens: ref-11m's matrices, not mcu-1m's) has each 64-row block prefetch
 * its columns' rows COLUMN_AHEAD further on: the scattered columns' lines otherwise
 * wait on memory one by one (ref-11m-silu half dropped: about 18 % less decode time,
 * medians of 9 interleaved runs on a shared machine, at 10 % more instructions). */
#define COLUMN_FAR_BYTES (64u * 1024u)
#define COLUMN_AHEAD 128u

/* Quads and groups listed per pass: a pass covers groups until a list could
 * overflow, and the row blocks run once per pass (one, unless a layer has more than
 * 4 * QUAD_CAP nonzero inputs of a sign). */
#define QUAD_CAP 1024u
#define GROUP_CAP 512u

/* The listed codes of one sign: entry i is a column at byte offset off[i] from the
 * column map's codes, with code magnitude mag[i]; quad q is entries 4q .. 4q+3 (its
 * magnitudes read as one int32, byte k column k's). A compaction stores eight entries
 * at the end, hence the slack. */
typedef struct {
    int32_t off[4u * QUAD_CAP + 8u];
    uint8_t mag[4u * QUAD_CAP + 8u];
} column_side;

typedef struct {
    column_side pos, neg;
} column_list;

typedef struct {
    const uint16_t *ws; /* the input group's f16 scales, one per row */
    float sx;           /* and its activation scale */
    uint32_t pos_first, pos_quads, neg_first, neg_quads; /* its quads in each list */
} column_group;

/* The indices of the set bits of a byte, packed into the low bytes in order (one load
 * per eight codes listed; generated by: for b in 0..255, the k with bit k of b set). */
static const uint64_t byte_bits[256] = {
    0x0000000000000000u, 0x0000000000000000u, 0x0000000000000001u, 0x0000000000000100u,
    0x0000000000000002u, 0x0000000000000200u, 0x0000000000000201u, 0x0000000000020100u,
    0x0000000000000003u, 0x0000000000000300u, 0x0000000000000301u, 0x0000000000030100u,
    0x0000000000000302u, 0x0000000000030200u, 0x0000000000030201u, 0x0000000003020100u,
    0x0000000000000004u, 0x0000000000000400u, 0x0000000000000401u, 0x0000000000040100u,
    0x0000000000000402u, 0x0000000000040200u, 0x0000000000040201u, 0x0000000004020100u,
    0x0000000000000403u, 0x0000000000040300u, 0x0000000000040301u, 0x0000000004030100u,
    0x0000000000040302u, 0x0000000004030200u, 0x0000000004030201u, 0x0000000403020100u,
    0x0000000000000005u, 0x0000000000000500u, 0x0000000000000501u, 0x0000000000050100u,
    0x0000000000000502u, 0x0000000000050200u, 0x0000000000050201u, 0x0000000005020100u,
    0x0000000000000503u, 0x0000000000050300u, 0x0000000000050301u, 0x0000000005030100u,
    0x0000000000050302u, 0x0000000005030200u, 0x0000000005030201u, 0x0000000503020100u,
    0x0000000000000504u, 0x0000000000050400u, 0x0000000000050401u, 0x0000000005040100u,
    0x0000000000050402u, 0x0000000005040200u, 0x0000000005040201u, 0x0000000504020100u,
    0x0000000000050403u, 0x0000000005040300u, 0x0000000005040301u, 0x0000000504030100u,
    0x0000000005040302u, 0x0000000504030200u, 0x0000000504030201u, 0x0000050403020100u,
    0x0000000000000006u, 0x0000000000000600u, 0x0000000000000601u, 0x0000000000060100u,
    0x0000000000000602u, 0x0000000000060200u, 0x0000000000060201u, 0x0000000006020100u,
    0x0000000000000603u, 0x0000000000060300u, 0x0000000000060301u, 0x0000000006030100u,
    0x0000000000060302u, 0x0000000006030200u, 0x0000000006030201u, 0x0000000603020100u,
    0x0000000000000604u, 0x0000000000060400u, 0x0000000000060401u, 0x0000000006040100u,
    0x0000000000060402u, 0x0000000006040200u, 0x0000000006040201u, 0x0000000604020100u,
    0x0000000000060403u, 0x0000000006040300u, 0x0000000006040301u, 0x0000000604030100u,
    0x0000000006040302u, 0x0000000604030200u, 0x0000000604030201u, 0x0000060403020100u,
    0x0000000000000605u, 0x0000000000060500u, 0x0000000000060501u, 0x0000000006050100u,
    0x0000000000060502u, 0x0000000006050200u, 0x0000000006050201u, 0x0000000605020100u,
    0x0000000000060503u, 0x0000000006050300u, 0x0000000006050301u, 0x0000000605030100u,
    0x0000000006050302u, 0x0000000605030200u, 0x0000000605030201u, 0x0000060503020100u,
    0x0000000000060504u, 0x0000000006050400u, 0x0000000006050401u, 0x0000000605040100u,
    0x0000000006050402u, 0x0000000605040200u, 0x0000000605040201u, 0x0000060504020100u,
    0x0000000006050403u, 0x0000000605040300u, 0x0000000605040301u, 0x0000060504030100u,
    0x0000000605040302u, 0x0000060504030200u, 0x0000060504030201u, 0x0006050403020100u,
    0x0000000000000007u, 0x0000000000000700u, 0x0000000000000701u, 0x0000000000070100u,
    0x0000000000000702u, 0x0000000000070200u, 0x0000000000070201u, 0x0000000007020100u,
    0x0000000000000703u, 0x0000000000070300u, 0x0000000000070301u, 0x0000000007030100u,
    0x0000000000070302u, 0x0000000007030200u, 0x0000000007030201u, 0x0000000703020100u,
    0x0000000000000704u, 0x0000000000070400u, 0x0000000000070401u, 0x0000000007040100u,
    0x0000000000070402u, 0x0000000007040200u, 0x0000000007040201u, 0x0000000704020100u,
    0x0000000000070403u, 0x0000000007040300u, 0x0000000007040301u, 0x0000000704030100u,
    0x0000000007040302u, 0x0000000704030200u, 0x0000000704030201u, 0x0000070403020100u,
    0x0000000000000705u, 0x0000000000070500u, 0x0000000000070501u, 0x0000000007050100u,
    0x0000000000070502u, 0x0000000007050200u, 0x0000000007050201u, 0x0000000705020100u,
    0x0000000000070503u, 0x0000000007050300u, 0x0000000007050301u, 0x0000000705030100u,
    0x0000000007050302u, 0x0000000705030200u, 0x0000000705030201u, 0x0000070503020100u,
    0x0000000000070504u, 0x0000000007050400u, 0x0000000007050401u, 0x0000000705040100u,
    0x0000000007050402u, 0x0000000705040200u, 0x0000000705040201u, 0x0000070504020100u,
    0x0000000007050403u, 0x0000000705040300u, 0x0000000705040301u, 0x0000070504030100u,
    0x0000000705040302u, 0x0000070504030200u, 0x0000070504030201u, 0x0007050403020100u,
    0x0000000000000706u, 0x0000000000070600u, 0x0000000000070601u, 0x0000000007060100u,
    0x0000000000070602u, 0x0000000007060200u, 0x0000000007060201u, 0x0000000706020100u,
    0x0000000000070603u, 0x0000000007060300u, 0x0000000007060301u, 0x0000000706030100u,
    0x0000000007060302u, 0x0000000706030200u, 0x0000000706030201u, 0x0000070603020100u,
    0x0000000000070604u, 0x0000000007060400u, 0x0000000007060401u, 0x0000000706040100u,
    0x0000000007060402u, 0x0000000706040200u, 0x0000000706040201u, 0x0000070604020100u,
    0x0000000007060403u, 0x0000000706040300u, 0x0000000706040301u, 0x0000070604030100u,
    0x0000000706040302u, 0x0000070604030200u, 0x0000070604030201u, 0x0007060403020100u,
    0x0000000000070605u, 0x0000000007060500u, 0x0000000007060501u, 0x0000000706050100u,
    0x0000000007060502u, 0x0000000706050200u, 0x0000000706050201u, 0x0000070605020100u,
    0x0000000007060503u, 0x0000000706050300u, 0x0000000706050301u, 0x0000070605030100u,
    0x0000000706050302u, 0x0000070605030200u, 0x0000070605030201u, 0x0007060503020100u,
    0x0000000007060504u, 0x0000000706050400u, 0x0000000706050401u, 0x0000070605040100u,
    0x0000000706050402u, 0x0000070605040200u, 0x0000070605040201u, 0x0007060504020100u,
    0x0000000706050403u, 0x0000070605040300u, 0x0000070605040301u, 0x0007060504030100u,
    0x0000070605040302u, 0x0007060504030200u, 0x0007060504030201u, 0x0706050403020100u};

/* Append the columns of `bits` (a byte: eight consecutive columns, the first at byte
 * offset at) to a list of n entries; returns the new n. Their magnitudes from the low
 * eight bytes of mags, their offsets at + k * stride (lane_offs holds k * stride for
 * k = 0..7). */
static ALWAYS_INLINE uint32_t append8(column_side *side, uint32_t n, uint32_t bits, __m128i mags,
                                      int32_t at, __m256i lane_offs)
{
    const __m128i idx = _mm_cvtsi64_si128((long long)byte_bits[bits]);
    _mm_storel_epi64((__m128i *)(void *)(side->mag + n), _mm_shuffle_epi8(mags, idx));
    _mm256_storeu_si256((__m256i *)(void *)(side->off + n),
                        _mm256_add_epi32(_mm256_set1_epi32(at),
                                         _mm256_permutevar8x32_epi32(lane_offs, _mm256_cvtepu8_epi32(idx))));
    return n + (uint32_t)__builtin_popcount(bits);
}

/* Pad a list of n entries to whole quads with code 0 at the column at byte offset
 * `any`; returns the new n. */
static ALWAYS_INLINE uint32_t pad_quad(column_side *side, uint32_t n, int32_t any)
{
    static const uint8_t zeros[4] = {0, 0, 0, 0};
    _mm_storeu_si128((__m128i *)(void *)(side->off + n), _mm_set1_epi32(any));
    memcpy(side->mag + n, zeros, sizeof zeros);
    return (n + 3u) & ~3u;
}

/* List the nonzero codes of groups g, g+1, ... while the lists have room for a whole
 * group; returns the next group to list. */
static uint32_t list_quads(column_list *list, column_group *groups, uint32_t *n_groups_listed,
                           const mote_column_map *map, const int8_t *xq, const float *xs, uint32_t cols,
                           uint32_t group, uint32_t g)
{
    const int32_t stride = (int32_t)map->col_stride;
    const __m256i lane_offs = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                                 _mm256_set1_epi32(stride));
    const __m128i zero = _mm_setzero_si128();
    uint32_t listed = 0, n_pos = 0, n_neg = 0; /* the lists' lengths, kept in registers */
    for (; g * group < cols && listed < GROUP_CAP && n_pos + group + 8u <= 4u * QUAD_CAP &&
           n_neg + group + 8u <= 4u * QUAD_CAP;
         g++) {
        const uint32_t begin = g * group, len = cols - begin < group ? cols - begin : group;
        const int32_t group_at = (int32_t)(g * map->group_stride);
        const uint32_t pos0 = n_pos, neg0 = n_neg;
        uint32_t j;
        for (j = 0; j < len; j += 16u) {
            const __m128i c = load_bytes16(xq + begin + j, len - j < 16u ? len - j : 16u);
            const uint32_t pos = (uint32_t)_mm_movemask_epi8(_mm_cmpgt_epi8(c, zero));
            const uint32_t neg = (uint32_t)_mm_movemask_epi8(_mm_cmpgt_epi8(zero, c));
            const __m128i mags = _mm_abs_epi8(c);
            const int32_t at = group_at + (int32_t)j * stride;
            n_pos = append8(&list->pos, n_pos, pos & 0xFFu, mags, at, lane_offs);
            n_neg = append8(&list->neg, n_neg, neg & 0xFFu, mags, at, lane_offs);
            if (len - j > 8u) {
                n_pos = append8(&list->pos, n_pos, pos >> 8, _mm_srli_si128(mags, 8), at + 8 * stride, lane_offs);
                n_neg = append8(&list->neg, n_neg, neg >> 8, _mm_srli_si128(mags, 8), at + 8 * stride, lane_offs);
            }
        }
        if (n_pos == pos0 && n_neg == neg0)
            continue; /* all codes 0: the dense term is +0, the group is skipped */
        n_pos = pad_quad(&list->pos, n_pos, group_at);
        n_neg = pad_quad(&list->neg, n_neg, group_at);
        groups[listed].ws = (const uint16_t *)(const void *)(map->scales + g * map->group_stride_scales);
        groups[listed].sx = xs[g];
        groups[listed].pos_first = pos0 / 4u;
        groups[listed].pos_quads = (n_pos - pos0) / 4u;
        groups[listed].neg_first = neg0 / 4u;
        groups[listed].neg_quads = (n_neg - neg0) / 4u;
        listed++;
    }
    *n_groups_listed = listed;
    return g;
}

/* The quad's four columns, 32 rows from `at` (the column map's codes plus the first
 * row), as four vectors of eight rows' four weights: rows {4k..4k+3, 16+4k..16+4k+3}
 * in vector k (unpacking bytes, then 16-bit pairs, keeps each 128-bit half's rows
 * together). */
static ALWAYS_INLINE void quad_rows32(__m256i v[4], const int32_t *off, const int8_t *at)
{
    const __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(at + off[0]));
    const __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(at + off[1]));
    const __m256i c = _mm256_loadu_si256((const __m256i *)(const void *)(at + off[2]));
    const __m256i d = _mm256_loadu_si256((const __m256i *)(const void *)(at + off[3]));
    const __m256i ab_lo = _mm256_unpacklo_epi8(a, b), ab_hi = _mm256_unpackhi_epi8(a, b);
    const __m256i cd_lo = _mm256_unpacklo_epi8(c, d), cd_hi = _mm256_unpackhi_epi8(c, d);
    v[0] = _mm256_unpacklo_epi16(ab_lo, cd_lo);
    v[1] = _mm256_unpackhi_epi16(ab_lo, cd_lo);
    v[2] = _mm256_unpacklo_epi16(ab_hi, cd_hi);
    v[3] = _mm256_unpackhi_epi16(ab_hi, cd_hi);
}

/* Per 32-bit lane, the sum of four unsigned magnitudes (m) times four signed weights
 * (w), added to acc: |m| <= 128 and w >= -128 keep maddubs' int16 pairs exact. */
static ALWAYS_INLINE __m256i mag_dot(__m256i acc, __m256i m, __m256i w)
{
#if HAVE_VNNI
    return dpbusd(acc, m, w);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(m, w), _mm256_set1_epi16(1)));
#endif
}

/* The quads q .. end-1 of one sign into acc: four vectors per 32 rows, for `halves`
 * blocks of 32 rows from `at` (a constant, 1 or 2: two share each quad's offsets and
 * magnitudes). */
static ALWAYS_INLINE void quads_into(__m256i acc[8], const column_side *side, uint32_t q, uint32_t end,
                                     const int8_t *at, uint32_t halves, size_t ahead)
{
    __m256i v[4];
    int32_t mags;
    uint32_t h, k;
#pragma GCC unroll 2
    for (; q < end; q++) {
        memcpy(&mags, side->mag + 4u * q, sizeof mags);
        for (k = 0; ahead != 0 && k < 4u; k++) /* the rows `ahead` of these of the columns */
            _mm_prefetch((const char *)(at + side->off[4u * q + k] + ahead), _MM_HINT_T0);
        #pragma GCC unroll 8
        for (h = 0; h < halves; h++) {
            quad_rows32(v, side->off + 4u * q, at + 32u * h);
            acc[4u * h] = mag_dot(acc[4u * h], _mm256_set1_epi32(mags), v[0]);
            acc[4u * h + 1u] = mag_dot(acc[4u * h + 1u], _mm256_set1_epi32(mags), v[1]);
            acc[4u * h + 2u] = mag_dot(acc[4u * h + 2u], _mm256_set1_epi32(mags), v[2]);
            acc[4u * h + 3u] = mag_dot(acc[4u * h + 3u], _mm256_set1_epi32(mags), v[3]);
        }
    }
}

/* y (eight rows' float sums) += (float)sums * (f16(ws) * sx). */
static ALWAYS_INLINE __m256 column_term(__m256 y, __m256i sums, const uint16_t *ws, __m256 sx)
{
    const __m256 s = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)ws));
    return _mm256_add_ps(y, _mm256_mul_ps(_mm256_cvtepi32_ps(sums), _mm256_mul_ps(s, sx)));
}

/* The listed groups for the 32 * halves rows at `base` (halves a constant, 1 or 2):
 * y[0 .. 4 * halves) += each group's terms, in group order. */
static ALWAYS_INLINE void column_block(__m256 y[8], const column_list *list, const column_group *groups,
                                       uint32_t n_groups, const int8_t *codes, size_t base, uint32_t halves,
                                       size_t ahead)
{
    const __m256i zero = _mm256_setzero_si256();
    const int8_t *at = codes + base;
    uint32_t i, k;
    for (i = 0; i < n_groups; i++) {
        const column_group *gr = groups + i;
        const uint16_t *ws = gr->ws + base;
        const __m256 sx = _mm256_set1_ps(gr->sx);
        __m256i acc[8];
        #pragma GCC unroll 8
        for (k = 0; k < 4u * halves; k++)
            acc[k] = zero;
        /* the negative codes' products first, negated once: -(N) + P = P - N */
        quads_into(acc, &list->neg, gr->neg_first, gr->neg_first + gr->neg_quads, at, halves, ahead);
                if (gr->neg_quads) {
#pragma GCC unroll 8
            for (k = 0; k < 4u * halves; k++)
                acc[k] = _mm256_sub_epi32(zero, acc[k]);
        }
        quads_into(acc, &list->pos, gr->pos_first, gr->pos_first + gr->pos_quads, at, halves, ahead);
        #pragma GCC unroll 8
        for (k = 0; k < halves; k++) { /* rows 32k + 0-7, 8-15, 16-23, 24-31 */
            const __m256i *a = acc + 4u * k;
            const uint16_t *w = ws + 32u * k;
            y[4u * k] = column_term(y[4u * k], _mm256_permute2x128_si256(a[0], a[1], 0x20), w, sx);
            y[4u * k + 1u] = column_term(y[4u * k + 1u], _mm256_permute2x128_si256(a[2], a[3], 0x20), w + 8, sx);
            y[4u * k + 2u] = column_term(y[4u * k + 2u], _mm256_permute2x128_si256(a[0], a[1], 0x31), w + 16, sx);
            y[4u * k + 3u] = column_term(y[4u * k + 3u], _mm256_permute2x128_si256(a[2], a[3], 0x31), w + 24, sx);
        }
    }
}

/* Rows base .. base+63 of y (at y64), whole: started, they add to y; otherwise they
 * start at 0. With `ahead` (a constant) the columns' rows that far ahead are
 * prefetched. */
static ALWAYS_INLINE void column_block64(float *y64, const column_list *list, const column_group *groups,
                                         uint32_t n_groups, const int8_t *codes, size_t base, size_t ahead,
                                         int started)
{
    __m256 acc[8];
    uint32_t k;
    for (k = 0; k < 8u; k++)
        acc[k] = started ? _mm256_loadu_ps(y64 + 8u * k) : _mm256_setzero_ps();
    column_block(acc, list, groups, n_groups, codes, base, 2u, ahead);
    for (k = 0; k < 8u; k++)
        _mm256_storeu_ps(y64 + 8u * k, acc[k]);
}

static NOINLINE void column_block64_near(float *y64, const column_list *list, const column_group *groups,
                                         uint32_t n_groups, const int8_t *codes, size_t base, int started)
{
    column_block64(y64, list, groups, n_groups, codes, base, 0, started);
}

static NOINLINE void column_block64_far(float *y64, const column_list *list, const column_group *groups,
                                        uint32_t n_groups, const int8_t *codes, size_t base, int started)
{
    column_block64(y64, list, groups, n_groups, codes, base, COLUMN_AHEAD, started);
}

void mote_x86_matvec_cols(float *y, const mote_tensor *w, const int8_t *xq, const float *xs,
                          uint32_t group, uint32_t row_begin, uint32_t row_end)
{
    const mote_column_map map = mote_columns_of(w, group);
    const uint32_t cols = w->cols;
    column_list list;
    column_group groups[GROUP_CAP];
    uint32_t g = 0, r, r0, n_listed;
    int started = 0; /* y holds the sums of the groups listed so far */
    const int far = (uint64_t)w->rows * cols >= COLUMN_FAR_BYTES;
    if (row_begin >= row_end)
        return;
    /* no block of 32 rows to load, or columns beyond the lists' 32-bit offsets (no
     * model in sight): the reference */
    if (w->rows < 32u || (uint64_t)((cols + group - 1u) / group) * map.group_stride >= (1ull << 31)) {
        mote_ref_matvec_cols(y, w, xq, xs, group, row_begin, row_end);
        return;
    }
    while (g * group < cols) {
        g = list_quads(&list, groups, &n_listed, &map, xq, xs, cols, group, g);
        /* blocks of 32 rows of the tensor; a last short one is computed as the 32 rows
         * ending at the tensor's last, and only rows r0..row_end-1 of it kept. The
         * first pass with groups starts the sums at 0, later ones add to y */
        for (r0 = row_begin; r0 + 64u <= row_end && n_listed > 0; r0 += 64u)
            if (far && r0 + COLUMN_AHEAD + 64u <= w->rows)
                column_block64_far(y + r0, &list, groups, n_listed, map.codes, r0, started);
            else
                column_block64_near(y + r0, &list, groups, n_listed, map.codes, r0, started);
        for (; r0 < row_end && n_listed > 0; r0 += 32u) {
            const uint32_t base = r0 + 32u <= w->rows ? r0 : w->rows - 32u;
            const uint32_t first = r0 - base, last = row_end - base < 32u ? row_end - base : 32u;
            const int whole = first == 0 && last == 32u;
            float part[32];
            __m256 acc[8];
            uint32_t k;
            for (k = 0; started && !whole && k < 32u; k++)
                part[k] = k >= first && k < last ? y[base + k] : 0.0f;
            for (k = 0; k < 4u; k++)
                acc[k] = started ? _mm256_loadu_ps(whole ? y + base + 8u * k : part + 8u * k) : _mm256_setzero_ps();
            column_block(acc, &list, groups, n_listed, map.codes, base, 1u, 0);
            for (k = 0; k < 4u; k++)
                _mm256_storeu_ps(whole ? y + base + 8u * k : part + 8u * k, acc[k]);
            for (k = first; !whole && k < last; k++)
                y[base + k] = part[k];
        }
        started |= n_listed > 0;
    }
    for (r = row_begin; !started && r < row_end; r++) /* every code 0: y = +0 */
        y[r] = 0.0f;
}

/* CATS' up projection (mote_ref_matvec_bundled_rows): the rows of the kept neurons,
 * eight at a time, each a dense row dot like matvec's, read from its bundle. */

/* block_dots for eight rows at any addresses: one 32-column chunk at offset `at`. */
static ALWAYS_INLINE __m256i rows_dots(const uint8_t *const p[8], size_t at, __m256i x)
{
    const __m256i d01 = _mm256_hadd_epi32(chunk_dot(p[0] + at, x, 0), chunk_dot(p[1] + at, x, 0));
    const __m256i d23 = _mm256_hadd_epi32(chunk_dot(p[2] + at, x, 0), chunk_dot(p[3] + at, x, 0));
    const __m256i d0123 = _mm256_hadd_epi32(d01, d23);
    const __m256i d45 = _mm256_hadd_epi32(chunk_dot(p[4] + at, x, 0), chunk_dot(p[5] + at, x, 0));
    const __m256i d67 = _mm256_hadd_epi32(chunk_dot(p[6] + at, x, 0), chunk_dot(p[7] + at, x, 0));
    const __m256i d4567 = _mm256_hadd_epi32(d45, d67);
    return _mm256_add_epi32(_mm256_permute2x128_si256(d0123, d4567, 0x20),
                            _mm256_permute2x128_si256(d0123, d4567, 0x31));
}

/* The same for a chunk of n < 32 columns, each row's own n bytes only (a short
 * chunk may end its bundle's region). */
static __m256i rows_dots_short(const uint8_t *const p[8], size_t at, uint32_t n, __m256i x)
{
    int32_t d[8];
    uint32_t k;
    for (k = 0; k < 8u; k++)
        d[k] = hsum_epi32(dot_q8(_mm256_setzero_si256(), load_bytes32(p[k] + at, n), x));
    return _mm256_loadu_si256((const __m256i *)(const void *)d);
}

/* u[j] for the kept neurons j = idx[0..valid) (idx padded to eight with repeats),
 * whose rows start at region + at[k], each row's f16 scales following its dim codes: gathered as 32-bit words ending at
 * each scale, i.e. from 2 bytes before it (the row's last code). `x` (the chunks of
 * xq) and `bias` (per group) are prepared by the caller when every chunk is whole;
 * otherwise (x NULL) each chunk is loaded with its own length. */
static ALWAYS_INLINE void bundled_block(float *u, const uint8_t *region, const int32_t *at,
                                        const uint32_t *idx, uint32_t valid, uint32_t dim, uint32_t group,
                                        const int8_t *xq, const float *xs, const __m256i *x,
                                        const int32_t *bias)
{
    const uint32_t n_groups = (dim + group - 1u) / group;
    const __m256i at8 = _mm256_loadu_si256((const __m256i *)(const void *)at);
    const __m256i offsets = _mm256_sub_epi32(at8, _mm256_set1_epi32(at[0]));
    const uint8_t *const p[8] = {region + at[0], region + at[1], region + at[2], region + at[3],
                                 region + at[4], region + at[5], region + at[6], region + at[7]};
    const uint16_t *scale0 = (const uint16_t *)(const void *)(p[0] + dim);
    __m256 acc = _mm256_setzero_ps();
    float out[8];
    uint32_t g, k, c;
    for (g = 0; g < n_groups; g++) {
        const uint32_t lo = g * group, len = dim - lo < group ? dim - lo : group;
        __m256i dots = _mm256_setzero_si256();
        int32_t code_sum = 0;
        if (x != NULL) {
            for (c = 0; c < len; c += 32u)
                dots = _mm256_add_epi32(dots, rows_dots(p, lo + c, x[(lo + c) / 32u]));
            code_sum = bias[g];
        } else {
            for (c = 0; c < len; c += 32u) {
                const uint32_t n = len - c < 32u ? len - c : 32u;
                const __m256i xc = load_bytes32(xq + lo + c, n);
                dots = _mm256_add_epi32(dots, rows_dots_short(p, lo + c, n, xc));
                code_sum += Q8_BIAS * hsum_epi32(byte_sums(xc));
            }
        }
        if (Q8_BIAS != 0)
            dots = _mm256_sub_epi32(dots, _mm256_set1_epi32(code_sum));
        acc = add_term(acc, dots, gather_scales(scale0 + g, offsets), xs[g]);
    }
    _mm256_storeu_ps(out, acc);
    for (k = 0; k < valid; k++)
        u[idx[k]] = out[k];
}

static NOINLINE void bundled_block_whole(float *u, const uint8_t *region, const int32_t *at,
                                         const uint32_t *idx, uint32_t valid, uint32_t dim, uint32_t group,
                                         const float *xs, const __m256i *x, const int32_t *bias)
{
    if (group == 32u) /* the common group: one chunk per group, no chunk loop */
        bundled_block(u, region, at, idx, valid, dim, 32u, NULL, xs, x, bias);
    else
        bundled_block(u, region, at, idx, valid, dim, group, NULL, xs, x, bias);
}

static NOINLINE void bundled_block_ragged(float *u, const uint8_t *region, const int32_t *at,
                                          const uint32_t *idx, uint32_t valid, uint32_t dim, uint32_t group,
                                          const int8_t *xq, const float *xs)
{
    bundled_block(u, region, at, idx, valid, dim, group, xq, xs, NULL, NULL);
}

/* Widths up to this many columns get their activation chunks prepared once. */
#define BUNDLE_DIM_CAP 4096u

void mote_x86_matvec_bundled_rows(float *u, const mote_tensor *w_up, const float *gate,
                                  const int8_t *xq, const float *xs, uint32_t group,
                                  uint32_t begin, uint32_t end)
{
    const uint32_t dim = w_up->cols, n_groups = (dim + group - 1u) / group;
    const size_t bundle = 2u * (size_t)dim + 2u * n_groups;
    const size_t group_stride = 2u * (size_t)dim + group * bundle;
    const uint8_t *region = (const uint8_t *)w_up->data;
    const int whole = dim % 32u == 0 && group % 32u == 0 && dim <= BUNDLE_DIM_CAP;
    __m256i x[BUNDLE_DIM_CAP / 32u];
    int32_t bias[BUNDLE_DIM_CAP / 32u];
    /* the kept neurons not yet computed and their rows' offsets in the region; a
     * compaction stores eight at the end */
    uint32_t idx[16], n = 0, j, c, ng;
    int32_t at[16];
    /* the gather's 32-bit offsets span the region; a region of 2 GiB or more (no model
     * in sight) takes the reference */
    if ((uint64_t)(w_up->rows / group + 1u) * group_stride >= (1ull << 31)) {
        mote_ref_matvec_bundled_rows(u, w_up, gate, xq, xs, group, begin, end);
        return;
    }
    if (whole) {
        for (c = 0; c < dim / 32u; c++)
            x[c] = _mm256_loadu_si256((const __m256i *)(const void *)(xq + 32u * c));
        for (c = 0; c < n_groups; c++) {
            bias[c] = 0;
            for (j = c * group; j < (c + 1u) * group && Q8_BIAS != 0; j += 32u)
                bias[c] += Q8_BIAS * hsum_epi32(byte_sums(x[j / 32u]));
        }
    }
    for (ng = begin / group; ng * group < end; ng++) { /* neurons of one group at a time */
        /* neuron k's row at rows_at + k * bundle */
        const __m256i rows_at = _mm256_set1_epi32(
            (int32_t)(ng * group_stride + 2u * (size_t)dim - (size_t)ng * group * bundle));
        const uint32_t lo = ng * group > begin ? ng * group : begin;
        const uint32_t hi = (ng + 1u) * group < end ? (ng + 1u) * group : end;
        for (j = lo; j < hi; j += 8u) {
            const uint32_t len = hi - j < 8u ? hi - j : 8u;
            /* kept: gate != 0 (NaN kept, -0 dropped, as the reference's == 0 test),
             * listed in order without a branch per neuron */
            const uint32_t bits = (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(
                _mm256_maskload_ps(gate + j, first_lanes(len)), _mm256_setzero_ps(), _CMP_NEQ_UQ)) &
                                  ((1u << len) - 1u);
            const __m256i kept = _mm256_add_epi32(_mm256_set1_epi32((int32_t)j),
                                                  _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)byte_bits[bits])));
            _mm256_storeu_si256((__m256i *)(void *)(idx + n), kept);
            _mm256_storeu_si256((__m256i *)(void *)(at + n),
                                _mm256_add_epi32(rows_at, _mm256_mullo_epi32(kept, _mm256_set1_epi32((int32_t)bundle))));
            n += (uint32_t)__builtin_popcount(bits);
            if (n >= 8u) {
                if (whole)
                    bundled_block_whole(u, region, at, idx, 8u, dim, group, xs, x, bias);
                else
                    bundled_block_ragged(u, region, at, idx, 8u, dim, group, xq, xs);
                n -= 8u;
                _mm256_storeu_si256((__m256i *)(void *)idx, _mm256_loadu_si256((const __m256i *)(const void *)(idx + 8)));
                _mm256_storeu_si256((__m256i *)(void *)at, _mm256_loadu_si256((const __m256i *)(const void *)(at + 8)));
            }
        }
    }
    if (n > 0) { /* the last few kept rows: the last one repeated, its lanes not stored */
        const uint32_t valid = n;
        for (; n < 8u; n++) {
            idx[n] = idx[valid - 1u];
            at[n] = at[valid - 1u];
        }
        if (whole)
            bundled_block_whole(u, region, at, idx, valid, dim, group, xs, x, bias);
        else
            bundled_block_ragged(u, region, at, idx, valid, dim, group, xq, xs);
    }
}

/* The read counters' code counts (mote_ref_count_codes): 32 codes per compare. */
void mote_x86_count_codes(uint32_t *kept, uint32_t *active, const int8_t *xq, uint32_t n,
                          uint32_t group)
{
    uint32_t begin, i;
    *kept = *active = 0;
    for (begin = 0; begin < n; begin += group) {
        const uint32_t end = n - begin < group ? n : begin + group;
        uint32_t in_group = 0;
        for (i = begin; i < end; i += 32u) {
            const uint32_t len = end - i < 32u ? end - i : 32u;
            const uint32_t zero = (uint32_t)_mm256_movemask_epi8(
                _mm256_cmpeq_epi8(load_bytes32(xq + i, len), _mm256_setzero_si256()));
            in_group += len - (uint32_t)__builtin_popcount(len < 32u ? zero & ((1u << len) - 1u) : zero);
        }
        *kept += in_group;
        *active += in_group != 0;
    }
}

/* Dynamic sparsity (mote_ref_drop_small): |v| <= threshold is an ordered compare, so
 * NaN is kept; the count is of v != 0 after, unordered (NaN counted). */
uint32_t mote_x86_drop_small(float *v, uint32_t n, float threshold)
{
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    const __m256 t = _mm256_set1_ps(threshold), zero = _mm256_setzero_ps();
    uint32_t i, kept = 0;
    for (i = 0; i < n; i += 8u) {
        const __m256i mask = n - i < 8u ? first_lanes(n - i) : _mm256_set1_epi32(-1);
        __m256 x = _mm256_maskload_ps(v + i, mask);
        x = _mm256_andnot_ps(_mm256_cmp_ps(_mm256_and_ps(x, abs_mask), t, _CMP_LE_OQ), x);
        _mm256_maskstore_ps(v + i, mask, x);
        kept += (uint32_t)__builtin_popcount(
            (uint32_t)_mm256_movemask_ps(_mm256_and_ps(_mm256_cmp_ps(x, zero, _CMP_NEQ_UQ),
                                                       _mm256_castsi256_ps(mask))));
    }
    return kept;
}

/* CATS' product (mote_ref_gate_mul): the product where h != 0 (NaN included), +0 elsewhere. */
void mote_x86_gate_mul(float *h, const float *u, uint32_t n)
{
    const __m256 zero = _mm256_setzero_ps();
    uint32_t i;
    for (i = 0; i < n; i += 8u) {
        const __m256i mask = n - i < 8u ? first_lanes(n - i) : _mm256_set1_epi32(-1);
        const __m256 g = _mm256_maskload_ps(h + i, mask);
        const __m256 y = _mm256_mul_ps(g, _mm256_maskload_ps(u + i, mask));
        _mm256_maskstore_ps(h + i, mask, _mm256_and_ps(_mm256_cmp_ps(g, zero, _CMP_NEQ_UQ), y));
    }
}

/* CATS' activation (mote_ref_silu): silu_mul's operations without the multiply. */
void mote_x86_silu(float *h, uint32_t n)
{
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    uint32_t i;
    for (i = 0; i + 8u <= n; i += 8u) {
        const __m256 g = _mm256_loadu_ps(h + i);
        _mm256_storeu_ps(h + i, _mm256_div_ps(g, _mm256_add_ps(one, expf8(_mm256_xor_ps(g, sign)))));
    }
    if (i < n) {
        const __m256i mask = first_lanes(n - i);
        const __m256 g = _mm256_maskload_ps(h + i, mask);
        _mm256_maskstore_ps(h + i, mask, _mm256_div_ps(g, _mm256_add_ps(one, expf8(_mm256_xor_ps(g, sign)))));
    }
}
