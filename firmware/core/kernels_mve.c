/* kernels_mve.c - the Helium kernel set: Armv8.1-M with MVE integer and float
 * (Cortex-M55, M85). The int8 dot products are VMLADAVA (sixteen int8 products summed
 * into an int32 per instruction), four rows sharing each activation vector, and the
 * exact conversions (int32 or int8 to f32, f16 to f32) run four lanes at a time.
 * MVE's float arithmetic flushes subnormal inputs and results to zero (whatever
 * FPSCR.FZ says), which the reference's IEEE arithmetic does not: float multiplies and
 * adds that can meet subnormals run on the scalar FPU, on the vector's lanes (q<n> is
 * s<4n>..s<4n+3>), each output's operations in the reference's order; vector float
 * arithmetic runs only where a guard proves no lane meets a subnormal (exp). Bit for
 * bit the reference (tests/c/test_kernels.c). */
#if !defined(__ARM_FEATURE_MVE) || !(__ARM_FEATURE_MVE & 2)
#error "the mve kernel set needs MVE with floating point (-mcpu=cortex-m55 -mfloat-abi=hard)"
#endif

#include <arm_mve.h>
#include <math.h>
#include <string.h>

#include "kernels.h"

/* ------------------------------------------------------------------ helpers */

/* Four f16 bit patterns (the low halves of u32 lanes) widened exactly to f32 by VCVTB:
 * the value of mote_f16_to_f32 for every input (a signalling NaN comes out quieted,
 * which no finite result can tell). */
static inline float32x4_t f16x4_to_f32(uint32x4_t h)
{
    /* VCVTB.F32.F16 q0, q1 by its encoding, from fixed registers: binutils 2.40
     * assembles the Q registers of MVE's VCVTB and VCVTT doubled (q1 as q2), which
     * breaks GCC's vcvtbq_f32_f16 as well */
    register uint32x4_t in __asm__("q1") = h;
    register float32x4_t out __asm__("q0");
    __asm__(".inst.w 0xfe3f0e03" : "=w"(out) : "w"(in));
    return out;
}

static inline float f16_to_f32(uint16_t h)
{
    return vgetq_lane_f32(f16x4_to_f32(vdupq_n_u32(h)), 0);
}

/* ------------------------------------------------------------------ matvec */

/* The int32 sums of four q8 rows over one group of n columns (w[k] at the group's first
 * column, x its activations): per 16 columns one activation load serves the four rows'
 * VMLADAVA; the last columns past a multiple of 16 in C (GCC's predicated MVE code for
 * them costs more). */
static inline int32x4_t dot4_q8(const int8_t *const w[4], const int8_t *x, uint32_t n)
{
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int32x4_t sums = vdupq_n_s32(0);
    uint32_t i = 0;
    for (; i + 16u <= n; i += 16u) {
        const int8x16_t a = vldrbq_s8(x + i);
        s0 = vmladavaq_s8(s0, vldrbq_s8(w[0] + i), a);
        s1 = vmladavaq_s8(s1, vldrbq_s8(w[1] + i), a);
        s2 = vmladavaq_s8(s2, vldrbq_s8(w[2] + i), a);
        s3 = vmladavaq_s8(s3, vldrbq_s8(w[3] + i), a);
    }
    for (; i < n; i++) {
        s0 += w[0][i] * x[i];
        s1 += w[1][i] * x[i];
        s2 += w[2][i] * x[i];
        s3 += w[3][i] * x[i];
    }
    sums = vsetq_lane_s32(s0, sums, 0);
    sums = vsetq_lane_s32(s1, sums, 1);
    sums = vsetq_lane_s32(s2, sums, 2);
    return vsetq_lane_s32(s3, sums, 3);
}

/* The same for four q4 rows (w[k] at the byte of the group's first, even, column),
 * the sums times 16: per 32 columns the activations are split into even and odd
 * columns by one de-interleaving load (VLD2), and each row's 16 bytes give 16 * low
 * nibble (shifted up) and 16 * high nibble (masked). A group's last columns past its
 * last whole 32 are added in C (group sizes that are not a multiple of 32, a ragged last
 * group). */
static inline int32x4_t dot4_q4(const uint8_t *const w[4], const int8_t *x, uint32_t n)
{
    const int8x16_t high_mask = vdupq_n_s8((int8_t)0xF0);
    int32_t s[4] = {0, 0, 0, 0};
    uint32_t i = 0, k;
    for (; i + 32u <= n; i += 32u) {
        const int8x16x2_t a = vld2q_s8(x + i); /* val[0]: even columns, val[1]: odd */
        for (k = 0; k < 4u; k++) {
            const int8x16_t b = vldrbq_s8((const int8_t *)w[k] + i / 2u);
            s[k] = vmladavaq_s8(s[k], vshlq_n_s8(b, 4), a.val[0]);
            s[k] = vmladavaq_s8(s[k], vandq_s8(b, high_mask), a.val[1]);
        }
    }
    for (k = 0; k < 4u; k++) {
        uint32_t j;
        for (j = i; j + 1u < n; j += 2u) {
            const uint8_t b = w[k][j / 2u];
            s[k] += (int8_t)(b << 4) * x[j] + (int8_t)(b & 0xF0u) * x[j + 1u];
        }
        if (j < n)
            s[k] += (int8_t)(w[k][j / 2u] << 4) * x[j];
    }
    return vld1q_s32(s);
}

/* acc[k] += sums[k] * (scales[k] * xs) for four rows, on the FPU lane by lane: the
 * vectors in q2 and q3, their lanes s8-s11 and s12-s15. */
static inline void scale_add4(float acc[4], float32x4_t sums, float32x4_t scales, float xs)
{
    register float32x4_t s __asm__("q2") = sums;
    register float32x4_t w __asm__("q3") = scales;
    __asm__("vmul.f32 s12, s12, %[x]\n\t"
            "vmul.f32 s13, s13, %[x]\n\t"
            "vmul.f32 s14, s14, %[x]\n\t"
            "vmul.f32 s15, s15, %[x]\n\t"
            "vmul.f32 s8, s8, s12\n\t"
            "vmul.f32 s9, s9, s13\n\t"
            "vmul.f32 s10, s10, s14\n\t"
            "vmul.f32 s11, s11, s15\n\t"
            "vadd.f32 %[a0], %[a0], s8\n\t"
            "vadd.f32 %[a1], %[a1], s9\n\t"
            "vadd.f32 %[a2], %[a2], s10\n\t"
            "vadd.f32 %[a3], %[a3], s11\n\t"
            : [a0] "+t"(acc[0]), [a1] "+t"(acc[1]), [a2] "+t"(acc[2]), [a3] "+t"(acc[3]),
              "+w"(s), "+w"(w)
            : [x] "t"(xs));
}

/* Blocks of four consecutive rows over their whole groups of 32 columns (the default
 * group size), in assembly: per group the activations, each row's VMLADAV into r0, r2,
 * r4, r6 (its accumulator must be an even register), the sums (`convert`) and the
 * gathered f16 scales to f32 four lanes at a time (exact), then the scalar float terms
 * on the lanes; per block the four float sums (q6, s24-s27) stored to y. q5 holds the
 * rows' scale offsets from the block's first row's. What the loops keep in memory (the
 * core registers are all taken) is a block_loop, through one register. */
typedef struct {
    const uint8_t *row;   /* 0: the next block's first row */
    uint32_t row_bytes;   /* 4 */
    const int8_t *xq;     /* 8: the activations of the first group */
    const float *xs;      /* 12: their scales */
    const uint16_t *ws;   /* 16: the next block's first row's scales */
    uint32_t ws_block;    /* 20: bytes from one block's scales to the next's */
    float *y;             /* 24: the next block's outputs */
    float *y_end;         /* 28 */
    uint32_t offsets[4];  /* 32: each row's scales, in bytes from the block's first row's */
    uint32_t high_mask[4]; /* 48: 0xF0 in every byte (q4) */
} block_loop;
#define BLOCK_START                                                                        \
    "vldrw.u32 q5, [%[b], #32]\n\t"                                                       \
    "2:\n\t"                                                                              \
    "ldrd %[w0], %[x], [%[b]]\n\t"                                                        \
    "add %[w1], %[w0], %[x]\n\t"                                                          \
    "add %[w2], %[w1], %[x]\n\t"                                                          \
    "add %[w3], %[w2], %[x]\n\t"                                                          \
    "add %[x], %[w3], %[x]\n\t"                                                           \
    "str %[x], [%[b]]\n\t"                                                                \
    "ldrd %[x], %[xs], [%[b], #8]\n\t"                                                    \
    "ldrd %[ws], r0, [%[b], #16]\n\t"                                                     \
    "add r0, %[ws], r0\n\t"                                                               \
    "str r0, [%[b], #16]\n\t"                                                             \
    "vmov.i32 q6, #0\n\t"                                                                 \
    "1:\n\t"
#define GROUP32_SCALE(convert)                                                             \
    "vmov q3[2], q3[0], r0, r4\n\t"                                                       \
    "vmov q3[3], q3[1], r2, r6\n\t" convert                                               \
    "vldrh.u32 q1, [%[ws], q5]\n\t"                                                       \
    ".inst.w 0xfe3f0e03\n\t" /* vcvtb.f32.f16 q0, q1 (see f16x4_to_f32) */                \
    "adds %[ws], %[ws], #2\n\t"                                                           \
    "vldmia %[xs]!, {s16}\n\t"                                                            \
    "vmul.f32 s0, s0, s16\n\t"                                                            \
    "vmul.f32 s1, s1, s16\n\t"                                                            \
    "vmul.f32 s2, s2, s16\n\t"                                                            \
    "vmul.f32 s3, s3, s16\n\t"                                                            \
    "vmul.f32 s12, s12, s0\n\t"                                                           \
    "vmul.f32 s13, s13, s1\n\t"                                                           \
    "vmul.f32 s14, s14, s2\n\t"                                                           \
    "vmul.f32 s15, s15, s3\n\t"                                                           \
    "vadd.f32 s24, s24, s12\n\t"                                                          \
    "vadd.f32 s25, s25, s13\n\t"                                                          \
    "vadd.f32 s26, s26, s14\n\t"                                                          \
    "vadd.f32 s27, s27, s15\n\t"
#define BLOCK_END                                                                          \
    "cmp %[x], %[x_end]\n\t"                                                              \
    "bne 1b\n\t"                                                                          \
    "ldrd r0, r2, [%[b], #24]\n\t"                                                        \
    "vstrw.32 q6, [r0], #16\n\t"                                                          \
    "str r0, [%[b], #24]\n\t"                                                             \
    "cmp r0, r2\n\t"                                                                      \
    "bne 2b\n\t"
#define BLOCK_OPERANDS                                                                     \
    : [x] "=&r"(x), [w0] "=&r"(w0), [w1] "=&r"(w1), [w2] "=&r"(w2), [w3] "=&r"(w3),           \
      [ws] "=&r"(ws), [xs] "=&r"(xsp)                                                      \
    : [x_end] "r"(x_end), [b] "r"(loop)                                                    \
    : "r0", "r2", "r4", "r6", "q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7", "cc", "memory"
#define Q8_ROW32(w, s)                                                                     \
    "vldrb.u8 q2, [%[" w "]], #16\n\t"                                                    \
    "vmladav.s8 " s ", q2, q0\n\t"                                                        \
    "vldrb.u8 q2, [%[" w "]], #16\n\t"                                                    \
    "vmladava.s8 " s ", q2, q1\n\t"
/* a q4 row's 16 bytes: 16 * low nibble (shifted up) against the even columns, 16 *
 * high nibble (masked, q7) against the odd ones */
#define Q4_ROW32(w, s)                                                                     \
    "vldrb.u8 q2, [%[" w "]], #16\n\t"                                                    \
    "vshl.i8 q3, q2, #4\n\t"                                                              \
    "vmladav.s8 " s ", q3, q0\n\t"                                                        \
    "vand q2, q2, q7\n\t"                                                                 \
    "vmladava.s8 " s ", q2, q1\n\t"

/* y[r..] for the blocks of `loop` over n_whole groups of 32 columns, q8 rows. */
static __attribute__((noinline)) void blocks32_q8(block_loop *loop, uint32_t n_whole)
{
    const int8_t *x, *const x_end = loop->xq + 32u * n_whole;
    const uint8_t *w0, *w1, *w2, *w3;
    const uint16_t *ws;
    const float *xsp;
    __asm__ volatile(BLOCK_START
                     "vldrb.u8 q0, [%[x]], #16\n\t"
                     "vldrb.u8 q1, [%[x]], #16\n\t" Q8_ROW32("w0", "r0") Q8_ROW32("w1", "r2")
                     Q8_ROW32("w2", "r4") Q8_ROW32("w3", "r6")
                     GROUP32_SCALE("vcvt.f32.s32 q3, q3\n\t") BLOCK_END BLOCK_OPERANDS);
}

/* The same for q4 rows (w at the byte of the first group's column): the activations
 * of a group split into even and odd columns by VLD20/VLD21, the sums times 16 divided
 * out by the fixed-point VCVT. */
static __attribute__((noinline)) void blocks32_q4(block_loop *loop, uint32_t n_whole)
{
    const int8_t *x, *const x_end = loop->xq + 32u * n_whole;
    const uint8_t *w0, *w1, *w2, *w3;
    const uint16_t *ws;
    const float *xsp;
    __asm__ volatile("vldrw.u32 q7, [%[b], #48]\n\t" BLOCK_START
                     "vld20.8 {q0, q1}, [%[x]]\n\t"
                     "vld21.8 {q0, q1}, [%[x]]!\n\t" Q4_ROW32("w0", "r0") Q4_ROW32("w1", "r2")
                     Q4_ROW32("w2", "r4") Q4_ROW32("w3", "r6")
                     GROUP32_SCALE("vcvt.f32.s32 q3, q3, #4\n\t") BLOCK_END BLOCK_OPERANDS);
}

/* acc[k] += the terms of groups [g0, n_groups) of four rows (row[k] at column 0,
 * scale_at[k] its scales in bytes from the tensor's), in C: the groups the assembly does
 * not take (a ragged last group, group sizes other than 32) and blocks of rows that are
 * not four consecutive ones. */
static void groups_c(float acc[4], const mote_tensor *w, const uint8_t *const row[4],
                     const uint32_t scale_at[4], const int8_t *xq, const float *xs,
                     uint32_t group, uint32_t g0)
{
    const uint32_t cols = w->cols, n_groups = (cols + group - 1u) / group;
    const int is_q4 = w->dtype == MOTE_Q4;
    const uint32x4_t scale_offsets = vld1q_u32(scale_at);
    uint32_t g, k;
    for (g = g0; g < n_groups; g++) {
        const uint32_t begin = g * group;
        const uint32_t n = cols - begin < group ? cols - begin : group;
        const uint8_t *at[4];
        float32x4_t sums;
        for (k = 0; k < 4u; k++)
            at[k] = row[k] + (is_q4 ? begin / 2u : begin);
        if (is_q4) /* exactly the sums / 16 */
            sums = vcvtq_n_f32_s32(dot4_q4(at, xq + begin, n), 4);
        else
            sums = vcvtq_f32_s32(dot4_q8((const int8_t *const *)at, xq + begin, n));
        /* the four rows' scales of group g, gathered */
        scale_add4(acc, sums, f16x4_to_f32(vldrhq_gather_offset_u32(w->scales + g, scale_offsets)),
                   xs[g]);
    }
}

/* The int32 sums of four q4a rows (codes 0..15) over one group of n columns, as
 * dot4_q4 but exact: the low nibbles masked and the high ones shifted down are the
 * codes themselves. */
static inline int32x4_t dot4_q4a(const uint8_t *const w[4], const int8_t *x, uint32_t n)
{
    const uint8x16_t low_mask = vdupq_n_u8(0x0F);
    const uint8_t *const w0 = w[0], *const w1 = w[1], *const w2 = w[2], *const w3 = w[3];
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int32x4_t sums = vdupq_n_s32(0);
    uint32_t i = 0;
#define Q4A_ROW(s, wk)                                                                     \
    do {                                                                                   \
        const uint8x16_t b = vldrbq_u8(wk + i / 2u);                                       \
        s = vmladavaq_s8(s, vreinterpretq_s8_u8(vandq_u8(b, low_mask)), a.val[0]);         \
        s = vmladavaq_s8(s, vreinterpretq_s8_u8(vshrq_n_u8(b, 4)), a.val[1]);              \
    } while (0)
    for (; i + 32u <= n; i += 32u) {
        const int8x16x2_t a = vld2q_s8(x + i); /* val[0]: even columns, val[1]: odd */
        Q4A_ROW(s0, w0);
        Q4A_ROW(s1, w1);
        Q4A_ROW(s2, w2);
        Q4A_ROW(s3, w3);
    }
#undef Q4A_ROW
    for (; i + 1u < n; i += 2u) {
        const int32_t a = x[i], b = x[i + 1u];
        s0 += (int32_t)(w0[i / 2u] & 0x0Fu) * a + (int32_t)(w0[i / 2u] >> 4) * b;
        s1 += (int32_t)(w1[i / 2u] & 0x0Fu) * a + (int32_t)(w1[i / 2u] >> 4) * b;
        s2 += (int32_t)(w2[i / 2u] & 0x0Fu) * a + (int32_t)(w2[i / 2u] >> 4) * b;
        s3 += (int32_t)(w3[i / 2u] & 0x0Fu) * a + (int32_t)(w3[i / 2u] >> 4) * b;
    }
    if (i < n) {
        s0 += (int32_t)(w0[i / 2u] & 0x0Fu) * x[i];
        s1 += (int32_t)(w1[i / 2u] & 0x0Fu) * x[i];
        s2 += (int32_t)(w2[i / 2u] & 0x0Fu) * x[i];
        s3 += (int32_t)(w3[i / 2u] & 0x0Fu) * x[i];
    }
    sums = vsetq_lane_s32(s0, sums, 0);
    sums = vsetq_lane_s32(s1, sums, 1);
    sums = vsetq_lane_s32(s2, sums, 2);
    return vsetq_lane_s32(s3, sums, 3);
}

/* Groups whose activation sums a q4a matvec holds at a time (on the stack). */
#define Q4A_SUM_GROUPS 64u

/* A q4a matvec, in C: chunk by chunk of groups, the chunk's activation sums once for
 * every row, then four rows at a time (the last block repeating row_end - 1) per group
 * the code term and the offset term, each as scale_add4 in the reference's order
 * (kernels.h), a row's float sum kept in y between chunks; a row's scale and offset
 * pairs are 4 * n_groups bytes apart. */
static __attribute__((noinline)) void matvec_q4a(float *y, const mote_tensor *w, const int8_t *xq,
                                                 const float *xs, uint32_t group,
                                                 uint32_t row_begin, uint32_t row_end)
{
    const uint32_t cols = w->cols, n_groups = (cols + group - 1u) / group;
    const size_t row_bytes = (cols + 1u) / 2u;
    int32_t act_sum[Q4A_SUM_GROUPS];
    uint32_t g0, g1, r, g, k;
    for (g0 = 0; g0 < n_groups; g0 = g1) {
        g1 = n_groups - g0 < Q4A_SUM_GROUPS ? n_groups : g0 + Q4A_SUM_GROUPS;
        for (g = g0; g < g1; g++)
            act_sum[g - g0] = mote_ref_act_sum(xq, g * group, g + 1u == n_groups ? cols : (g + 1u) * group);
        for (r = row_begin; r < row_end; r += 4u) {
            const uint8_t *at[4];
            uint32_t scale_at[4];
            float acc[4];
            uint32x4_t scale_offsets;
            for (k = 0; k < 4u; k++) {
                const uint32_t rk = r + k < row_end ? r + k : row_end - 1u;
                at[k] = (const uint8_t *)w->data + (size_t)rk * row_bytes + g0 * group / 2u;
                scale_at[k] = 4u * rk * n_groups;
                acc[k] = g0 == 0u ? 0.0f : y[rk];
            }
            scale_offsets = vld1q_u32(scale_at);
            for (g = g0; g < g1; g++) {
                const uint32_t begin = g * group;
                const uint32_t n = cols - begin < group ? cols - begin : group;
                const float32x4_t sums = vcvtq_f32_s32(dot4_q4a(at, xq + begin, n));
                scale_add4(acc, sums,
                           f16x4_to_f32(vldrhq_gather_offset_u32(w->scales + 2u * g, scale_offsets)),
                           xs[g]);
                scale_add4(acc, vdupq_n_f32((float)act_sum[g - g0]),
                           f16x4_to_f32(vldrhq_gather_offset_u32(w->scales + 2u * g + 1u, scale_offsets)),
                           xs[g]);
                for (k = 0; k < 4u; k++)
                    at[k] += n / 2u;
            }
            for (k = 0; k < 4u && r + k < row_end; k++)
                y[r + k] = acc[k];
        }
    }
}

void mote_mve_matvec(float *y, const mote_tensor *w, const int8_t *xq, const float *xs,
                     uint32_t group, uint32_t row_begin, uint32_t row_end)
{
    if (w->dtype == MOTE_Q4A) {
        matvec_q4a(y, w, xq, xs, group, row_begin, row_end);
        return;
    }
    const uint32_t cols = w->cols, n_groups = (cols + group - 1u) / group;
    const int is_q4 = w->dtype == MOTE_Q4;
    const size_t row_bytes = is_q4 ? (cols + 1u) / 2u : cols;
    /* the assembly takes the whole groups of 32 columns of blocks of four rows */
    const uint32_t n_whole = group == 32u ? cols / 32u : 0u;
    const uint32_t full_end = n_whole ? row_begin + (row_end - row_begin) / 4u * 4u : row_begin;
    uint32_t r, k;
    if (full_end > row_begin) {
        block_loop loop;
        loop.row = (const uint8_t *)w->data + (size_t)row_begin * row_bytes;
        loop.row_bytes = (uint32_t)row_bytes;
        loop.xq = xq;
        loop.xs = xs;
        loop.ws = w->scales + (size_t)row_begin * n_groups;
        loop.ws_block = 8u * n_groups;
        loop.y = y + row_begin;
        loop.y_end = y + full_end;
        for (k = 0; k < 4u; k++) {
            loop.offsets[k] = 2u * k * n_groups;
            loop.high_mask[k] = 0xF0F0F0F0u;
        }
        if (is_q4)
            blocks32_q4(&loop, n_whole);
        else
            blocks32_q8(&loop, n_whole);
    }
    /* in C: the groups the assembly left of its blocks, and the rows after them */
    for (r = n_whole == n_groups ? full_end : row_begin; r < row_end; r += 4u) {
        const uint8_t *row[4];
        uint32_t scale_at[4];
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        const int done = r < full_end; /* the assembly's block: its sums so far in y */
        /* past row_end the block repeats the last row; those sums are dropped */
        for (k = 0; k < 4u; k++) {
            const uint32_t rk = r + k < row_end ? r + k : row_end - 1u;
            row[k] = (const uint8_t *)w->data + (size_t)rk * row_bytes;
            scale_at[k] = 2u * rk * n_groups;
            if (done)
                acc[k] = y[rk];
        }
        groups_c(acc, w, row, scale_at, xq, xs, group, done ? n_whole : 0u);
        for (k = 0; k < 4u && r + k < row_end; k++)
            y[r + k] = acc[k];
    }
}

/* ------------------------------------------------------------------ sparse matvec */

#define COLUMN_TILE 16u /* rows per pass over a group's needed columns: four int32 vectors */

void mote_mve_matvec_cols(float *y, const mote_tensor *w, const int8_t *xq, const float *xs,
                          uint32_t group, uint32_t row_begin, uint32_t row_end)
{
    const mote_column_map map = mote_columns_of(w, group);
    const uint32_t cols = w->cols;
    uint32_t tile, r, begin, g = 0;
    for (r = row_begin; r < row_end; r++)
        y[r] = 0.0f;
    for (begin = 0; begin < cols; begin += group, g++) {
        const uint32_t end = cols - begin < group ? cols : begin + group;
        const float sx = xs[g];
        uint32_t j;
        int any = 0;
        for (j = begin; j < end && !any; j++)
            any = xq[j] != 0;
        if (!any)
            continue; /* all codes 0: the dense term is +0, skip the group's scales */
        for (tile = row_begin; tile < row_end; tile += COLUMN_TILE) {
            const uint32_t n = row_end - tile < COLUMN_TILE ? row_end - tile : COLUMN_TILE;
            const int8_t *const block = map.codes + g * map.group_stride + tile;
            const uint16_t *ws = (const uint16_t *)(const void *)(map.scales + g * map.group_stride_scales) + tile;
            int32_t sums[COLUMN_TILE];
            if (n == COLUMN_TILE) {
                /* each needed column's 16 bytes widened to int32 and multiplied by its
                 * code into the tile's four sums (VLDRB.S32, VMLA) */
                int32x4_t s0 = vdupq_n_s32(0), s1 = s0, s2 = s0, s3 = s0;
                for (j = begin; j < end; j++) {
                    const int8_t *col;
                    const int32_t a = xq[j];
                    if (a == 0)
                        continue; /* a column this token does not need: not read */
                    col = block + (j - begin) * map.col_stride;
                    s0 = vmlaq_n_s32(s0, vldrbq_s32(col), a);
                    s1 = vmlaq_n_s32(s1, vldrbq_s32(col + 4), a);
                    s2 = vmlaq_n_s32(s2, vldrbq_s32(col + 8), a);
                    s3 = vmlaq_n_s32(s3, vldrbq_s32(col + 12), a);
                }
                vst1q_s32(sums, s0);
                vst1q_s32(sums + 4, s1);
                vst1q_s32(sums + 8, s2);
                vst1q_s32(sums + 12, s3);
            } else {
                for (r = 0; r < n; r++)
                    sums[r] = 0;
                for (j = begin; j < end; j++) {
                    const int8_t *const col = block + (j - begin) * map.col_stride;
                    if (xq[j] == 0)
                        continue;
                    for (r = 0; r < n; r++)
                        sums[r] += xq[j] * col[r];
                }
            }
            for (r = 0; r < n; r++)
                y[tile + r] += (float)sums[r] * (f16_to_f32(ws[r]) * sx);
        }
    }
}

void mote_mve_matvec_bundled_rows(float *u, const mote_tensor *w_up, const float *gate,
                                  const int8_t *xq, const float *xs, uint32_t group,
                                  uint32_t begin, uint32_t end)
{
    const uint32_t dim = w_up->cols, n_groups = (dim + group - 1u) / group;
    const size_t bundle = 2u * (size_t)dim + 2u * n_groups;
    const size_t group_stride = 2u * (size_t)dim + group * bundle;
    uint32_t j = begin;
    while (j < end) {
        /* the next (up to) four kept neurons, as four rows of a matvec; a short block
         * repeats its first neuron and drops the copies' results */
        const int8_t *row[4];
        uint32_t which[4], k = 0, i, g;
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (; j < end && k < 4u; j++) {
            if (gate[j] == 0.0f)
                continue; /* a dropped neuron: its whole bundle stays unread */
            which[k] = j;
            row[k++] = (const int8_t *)w_up->data + (j / group) * group_stride +
                       2u * (size_t)dim + (j % group) * bundle;
        }
        if (k == 0)
            break;
        for (i = k; i < 4u; i++)
            row[i] = row[0];
        for (g = 0; g < n_groups; g++) {
            const uint32_t lo = g * group, n = dim - lo < group ? dim - lo : group;
            const int8_t *at[4];
            int32_t sums[4];
            for (i = 0; i < 4u; i++)
                at[i] = row[i] + lo;
            vst1q_s32(sums, dot4_q8(at, xq + lo, n));
            for (i = 0; i < k; i++) {
                const uint16_t *ws = (const uint16_t *)(const void *)(row[i] + dim);
                acc[i] += (float)sums[i] * (f16_to_f32(ws[g]) * xs[g]);
            }
        }
        for (i = 0; i < k; i++)
            u[which[i]] = acc[i];
    }
}

/* ------------------------------------------------------------------ exp */

/* The reference's exp (mote_expf) four lanes at a time for lanes where no operation
 * meets a subnormal, which MVE's float arithmetic would flush: x in [-86, 87] and
 * |x| not in (0, 2^-60). Then every intermediate is normal or exactly zero (r is x
 * less a multiple of ln 2 computed exactly, never tiny unless x is) and 2^n normal, and
 * the same IEEE operations in the same order give the reference's bits. `unsafe` gets
 * the lanes outside (NaN included), which the caller computes on the FPU. */
#define EXP_LOG2E ((float)1.44269504)
#define EXP_LN2_HI ((float)0.693145751953125)
#define EXP_LN2_LO ((float)1.42860677e-06)
#define EXP_TINY_BITS 0x21800000u /* 2^-60 */

static inline float32x4_t exp4(float32x4_t x, mve_pred16_t *unsafe)
{
    const uint32x4_t magnitude = vandq_u32(vreinterpretq_u32_f32(x), vdupq_n_u32(0x7FFFFFFFu));
    const float32x4_t shifted = vaddq_n_f32(vmulq_n_f32(x, EXP_LOG2E), 12582912.0f);
    const float32x4_t n = vsubq_n_f32(shifted, 12582912.0f);
    const float32x4_t r = vsubq_f32(vsubq_f32(x, vmulq_n_f32(n, EXP_LN2_HI)), vmulq_n_f32(n, EXP_LN2_LO));
    float32x4_t p = vaddq_n_f32(vmulq_n_f32(r, (float)(1.0 / 720.0)), (float)(1.0 / 120.0));
    uint32x4_t two_n;
    /* lanes to leave to the FPU: below -86 or above 87 (or NaN: not >= -86), or tiny */
    *unsafe = (mve_pred16_t)(~vcmpgeq_n_f32(x, -86.0f) | vcmpgtq_n_f32(x, 87.0f) |
                             (vcmphiq_n_u32(magnitude, 0u) & vcmphiq_u32(vdupq_n_u32(EXP_TINY_BITS), magnitude)));
    p = vaddq_n_f32(vmulq_f32(r, p), (float)(1.0 / 24.0));
    p = vaddq_n_f32(vmulq_f32(r, p), (float)(1.0 / 6.0));
    p = vaddq_n_f32(vmulq_f32(r, p), 0.5f);
    p = vaddq_n_f32(vmulq_f32(r, p), 1.0f);
    p = vaddq_n_f32(vmulq_f32(r, p), 1.0f);
    two_n = vshlq_n_u32(vaddq_n_u32(vreinterpretq_u32_f32(shifted), 127u), 23);
    return vmulq_f32(p, vreinterpretq_f32_u32(two_n));
}

/* The largest x[i] as the reference finds it (x[0], then any larger one; NaN never
 * replaces it), four lanes at a time on order-preserving integer keys of the float
 * bits; a NaN among x[1..] or a NaN x[0] leaves it to the reference's loop. Between
 * -0 and +0 this may pick the other one: x - max, and everything after, is the same. */
static float softmax_max(const float *x, uint32_t n)
{
    int32x4_t best = vdupq_n_s32(INT32_MIN);
    uint32x4_t widest = vdupq_n_u32(0u);
    float max = x[0];
    uint32_t i = 0;
    int32_t key;
    for (; i + 4u <= n; i += 4u) {
        const int32x4_t bits = vreinterpretq_s32_f32(vld1q_f32(x + i));
        /* negative floats order backwards: flip their magnitude bits */
        const int32x4_t k = veorq_s32(bits, vandq_s32(vshrq_n_s32(bits, 31), vdupq_n_s32(0x7FFFFFFF)));
        best = vmaxq_s32(best, k);
        widest = vmaxq_u32(widest, vandq_u32(vreinterpretq_u32_s32(bits), vdupq_n_u32(0x7FFFFFFFu)));
    }
    if (vmaxvq_u32(0u, widest) > 0x7F800000u || x[0] != x[0]) { /* a NaN */
        for (i = 1; i < n; i++)
            if (x[i] > max)
                max = x[i];
        return max;
    }
    key = vmaxvq_s32(INT32_MIN, best);
    if (i) {
        const int32_t bits = key ^ ((key >> 31) & 0x7FFFFFFF);
        memcpy(&max, &bits, sizeof max);
    }
    for (; i < n; i++)
        if (x[i] > max)
            max = x[i];
    return max;
}

void mote_mve_softmax(float *x, uint32_t n)
{
    const float max = softmax_max(x, n);
    float sum = 0.0f;
    uint32_t i = 0, j;
    /* x - max is exact in MVE when |max| >= 2^-60 (a subnormal x is below half an ulp
     * of max; a difference that is subnormal comes out 0, whose exp is the same 1) */
    const int vector = fabsf(max) >= 0x1p-60f && fabsf(max) < HUGE_VALF;
    for (; vector && i + 4u <= n; i += 4u) {
        const float32x4_t v = vld1q_f32(x + i);
        mve_pred16_t unsafe;
        vst1q_f32(x + i, exp4(vsubq_n_f32(v, max), &unsafe));
        if (unsafe) { /* those lanes on the FPU */
            float in[4];
            vst1q_f32(in, v);
            for (j = 0; j < 4u; j++)
                if (unsafe & (1u << (4u * j)))
                    x[i + j] = mote_expf(in[j] - max);
        }
        sum += x[i];
        sum += x[i + 1u];
        sum += x[i + 2u];
        sum += x[i + 3u];
    }
    for (; i < n; i++) {
        x[i] = mote_expf(x[i] - max);
        sum += x[i];
    }
    for (i = 0; i < n; i++)
        x[i] /= sum;
}

void mote_mve_silu_mul(float *h, const float *u, uint32_t n)
{
    uint32_t i = 0, j;
    for (; i + 4u <= n; i += 4u) {
        float e[4];
        mve_pred16_t unsafe;
        vst1q_f32(e, exp4(vnegq_f32(vld1q_f32(h + i)), &unsafe));
        for (j = 0; j < 4u; j++) {
            if (unsafe & (1u << (4u * j)))
                e[j] = mote_expf(-h[i + j]);
            h[i + j] = h[i + j] / (1.0f + e[j]) * u[i + j];
        }
    }
    for (; i < n; i++)
        h[i] = h[i] / (1.0f + mote_expf(-h[i])) * u[i];
}
