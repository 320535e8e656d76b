/* kernels_dsp.c - the Cortex-M DSP kernel set: Armv7E-M and Armv8-M Mainline with the
 * DSP extension and a single-precision FPU (Cortex-M4, M7, M33). Instructions are what
 * these cores spend, one after another, so every loop is shaped for fewer of them:
 * the int8 dot products take SXTB16 (two bytes sign-extended to two int16 lanes) and
 * SMLAD (two 16x16 multiply-adds at once), with four rows sharing each activation word;
 * f16 scales widen with the FPU's VCVTB. Bit for bit the reference (kernels_ref.c,
 * tests/c/test_kernels.c): integer sums run in any order, and each output keeps its
 * own float operations in the reference's order. */
#if !defined(__ARM_FEATURE_DSP) || !defined(__ARM_FP) || !(__ARM_FP & 4)
#error "the dsp kernel set needs the Arm DSP extension and a single-precision FPU (-mcpu=cortex-m4/m7/m33 -mfloat-abi=hard)"
#endif

#include <arm_acle.h>
#include <math.h>
#include <string.h>

#include "kernels.h"

/* ------------------------------------------------------------------ helpers */

/* Four bytes from any address: these cores load unaligned words. */
static inline uint32_t load_word(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Bytes 0 and 2 / 1 and 3 of x as two sign-extended int16 lanes. GCC 12 does not fold
 * the rotation of __sxtb16(__ror(x, 8)) into the instruction, hence the asm. */
static inline int16x2_t sxtb16_even(uint32_t x) { return __sxtb16((int8x4_t)x); }
static inline int16x2_t sxtb16_odd(uint32_t x)
{
    int16x2_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

/* Exact f16 -> f32 by the FPU (VCVTB, half-precision format IEEE: FPSCR.AHP is 0 out
 * of reset). The same value as mote_f16_to_f32 for every input; a signalling NaN
 * comes out quieted, which no finite result can tell. */
static inline float f16_to_f32(uint16_t h)
{
    const uint32_t bits = h;
    float in, out;
    memcpy(&in, &bits, sizeof in);
    __asm__("vcvtb.f32.f16 %0, %1" : "=t"(out) : "t"(in));
    return out;
}

/* ------------------------------------------------------------------ matvec */

/* A matvec runs over a chunk of whole input groups at a time (PREP_COLUMNS columns, or
 * one group if larger), in two steps:
 * - the chunk's activations are prepared once for every row, one group after another:
 *   q8 matrices get per 4 columns the words (x0, x2) and (x1, x3) (two sign-extended
 *   int16 each: SMLAD's operands, loaded with one LDRD), q4 matrices per 8 columns the
 *   words (x0, x4), (x2, x6), (x1, x5), (x3, x7), the order of the q4 nibble pairs; a
 *   group's columns past its last whole 4 (8) are read from xq itself;
 * - per block of rows, group by group, the rows' int32 sums, each scaled and added to
 *   its row's float sum in group order as the reference: in assembly where the group
 *   size is a multiple of 8 (the default 32 fully unrolled), as 14 registers are live
 *   that GCC spills from the same loops written in C, followed there by a row's ragged
 *   last group when it is a multiple of 4 columns; in C elsewhere.
 * A row's float sum is kept exactly in y between chunks. */
#define PREP_COLUMNS 256u
#define PREP_WORDS (MOTE_MAX_GROUP > PREP_COLUMNS ? MOTE_MAX_GROUP / 2u : PREP_COLUMNS / 2u)

static uint32_t *prepare_q8(uint32_t *prep, const int8_t *x, uint32_t n)
{
    const int8_t *const end = x + (n & ~3u);
    for (; x < end; x += 4, prep += 2) {
        const uint32_t a = load_word(x);
        prep[0] = (uint32_t)sxtb16_even(a);
        prep[1] = (uint32_t)sxtb16_odd(a);
    }
    return prep;
}

static uint32_t *prepare_q4(uint32_t *prep, const int8_t *x, uint32_t n)
{
    const int8_t *const end = x + (n & ~7u);
    for (; x < end; x += 8, prep += 4) {
        const uint32_t a = load_word(x), b = load_word(x + 4);
        const uint32_t x0145 = (a & 0xFFFFu) | (b << 16), x2367 = (b & 0xFFFF0000u) | (a >> 16);
        prep[0] = (uint32_t)sxtb16_even(x0145);
        prep[1] = (uint32_t)sxtb16_even(x2367);
        prep[2] = (uint32_t)sxtb16_odd(x0145);
        prep[3] = (uint32_t)sxtb16_odd(x2367);
    }
    if ((n & 7u) >= 4u) { /* a half unit: (x0, x1), (x2, x3), for the ragged tail's Q4_HALF */
        prep[0] = (uint16_t)x[0] | (uint32_t)x[1] << 16;
        prep[1] = (uint16_t)x[2] | (uint32_t)x[3] << 16;
        prep += 2;
    }
    return prep;
}

/* What the assembly group loops keep in memory (an asm statement has at most 30
 * operands), in pairs of words that one LDRD reads. */
typedef struct {
    const uint16_t *ws; /* the block's first row's scale of the next group */
    const float *xs;    /* the next group's activation scale */
} scale_cursor;
typedef struct {
    const uint32_t *p_end; /* where the loop's prepared words end */
    uint32_t ws_stride;    /* bytes from one row's scales to the next row's */
} group_bounds;
typedef struct {
    uint32_t left, per_group; /* steps left in the group, and per group */
} step_count;

/* q8, four rows, their int32 sums in r0-r3. One row's step over 4 columns: w's word
 * against the prepared pair (ae, ao); a group's first step starts the sum (SMUAD). */
#define Q8_ROW(s, w, mac)                                                                  \
    "ldr %[v], [%[" w "]], #4\n\t"                                                        \
    "sxtb16 %[t], %[v]\n\t" mac                                                           \
    "sxtb16 %[v], %[v], ror #8\n\t"                                                       \
    "smlad " s ", %[v], %[ao], " s "\n\t"
#define Q8_MAC(s) "smlad " s ", %[t], %[ae], " s "\n\t"
#define Q8_MUL(s) "smuad " s ", %[t], %[ae]\n\t"
#define Q8_UNIT                                                                            \
    "ldrd %[ae], %[ao], [%[p]], #8\n\t" Q8_ROW("r0", "w0", Q8_MAC("r0"))                     \
    Q8_ROW("r1", "w1", Q8_MAC("r1")) Q8_ROW("r2", "w2", Q8_MAC("r2")) Q8_ROW("r3", "w3", Q8_MAC("r3"))
#define Q8_FIRST_UNIT                                                                      \
    "ldrd %[ae], %[ao], [%[p]], #8\n\t" Q8_ROW("r0", "w0", Q8_MUL("r0"))                     \
    Q8_ROW("r1", "w1", Q8_MUL("r1")) Q8_ROW("r2", "w2", Q8_MUL("r2")) Q8_ROW("r3", "w3", Q8_MUL("r3"))
/* After a group: acc[k] += (float)sum[k] * (f16(ws[k]) * xs), the scales of the four
 * rows at ws, ws + stride, ...; then the next group, until the prepared words end. The
 * sum is a VMLA: not fused, the product rounded and then added as the reference. */
#define Q8_SCALE                                                                           \
    "vmov s16, s17, r0, r1\n\t"                                                           \
    "vmov s18, s19, r2, r3\n\t"                                                           \
    "ldrd r0, r1, %[cur]\n\t"                                                             \
    "ldrd r2, r3, %[bounds]\n\t"                                                          \
    "vldmia r1!, {s28}\n\t"                                                               \
    "ldrh %[t], [r0]\n\t"                                                                 \
    "ldrh %[v], [r0, r3]\n\t"                                                             \
    "vmov s24, s25, %[t], %[v]\n\t"                                                       \
    "add %[ae], r0, r3, lsl #1\n\t"                                                       \
    "ldrh %[t], [%[ae]]\n\t"                                                              \
    "ldrh %[v], [%[ae], r3]\n\t"                                                          \
    "vmov s26, s27, %[t], %[v]\n\t"                                                       \
    "adds r0, r0, #2\n\t"                                                                 \
    "strd r0, r1, %[cur]\n\t"                                                             \
    "vcvt.f32.s32 s16, s16\n\t"                                                           \
    "vcvt.f32.s32 s17, s17\n\t"                                                           \
    "vcvt.f32.s32 s18, s18\n\t"                                                           \
    "vcvt.f32.s32 s19, s19\n\t"                                                           \
    "vcvtb.f32.f16 s24, s24\n\t"                                                          \
    "vcvtb.f32.f16 s25, s25\n\t"                                                          \
    "vcvtb.f32.f16 s26, s26\n\t"                                                          \
    "vcvtb.f32.f16 s27, s27\n\t"                                                          \
    "vmul.f32 s24, s24, s28\n\t"                                                          \
    "vmul.f32 s25, s25, s28\n\t"                                                          \
    "vmul.f32 s26, s26, s28\n\t"                                                          \
    "vmul.f32 s27, s27, s28\n\t"                                                          \
    "vmla.f32 s20, s16, s24\n\t"                                                          \
    "vmla.f32 s21, s17, s25\n\t"                                                          \
    "vmla.f32 s22, s18, s26\n\t"                                                          \
    "vmla.f32 s23, s19, s27\n\t"
#define Q8_SCALE_AND_LOOP Q8_SCALE "cmp %[p], r2\n\t" "bne 1b\n\t"
/* The ragged last group of the rows, when its columns are a multiple of 4 (the
 * prepared words end at tail_end): after the whole groups, as they do. */
#define Q8_TAIL                                                                            \
    Q8_FIRST_UNIT                                                                          \
    "b 6f\n\t"                                                                            \
    "5:\n\t" Q8_UNIT                                                                       \
    "6:\n\t"                                                                              \
    "ldr %[t], %[tail_end]\n\t"                                                           \
    "cmp %[p], %[t]\n\t"                                                                  \
    "bne 5b\n\t" Q8_SCALE
/* Per block of four rows (its state in a q8_blocks): the rows' pointers, the scale
 * cursor, the four float sums (s20-s23) from `src` (zeros in a matvec's first chunk,
 * else `out`); after the groups, the sums to `out` and the next block until out_end. */
#define Q8_BLOCK_START                                                                     \
    "2:\n\t"                                                                              \
    "ldrd %[w0], %[t], %[row]\n\t"                                                        \
    "add %[w1], %[w0], %[t]\n\t"                                                          \
    "add %[w2], %[w1], %[t]\n\t"                                                          \
    "add %[w3], %[w2], %[t]\n\t"                                                          \
    "add %[t], %[w3], %[t]\n\t"                                                           \
    "str %[t], %[row]\n\t"                                                                \
    "ldrd %[v], %[ae], %[wsb]\n\t"                                                        \
    "add %[ae], %[v], %[ae]\n\t"                                                          \
    "str %[ae], %[wsb]\n\t"                                                               \
    "ldrd %[ao], %[p], %[xsp]\n\t"                                                        \
    "strd %[v], %[ao], %[cur]\n\t"                                                        \
    "ldrd %[t], %[v], %[src]\n\t"                                                        \
    "vldmia %[t], {s20-s23}\n\t"                                                          \
    "add %[t], %[t], %[v]\n\t"                                                            \
    "str %[t], %[src]\n\t"                                                                \
    "1:\n\t"
#define Q8_BLOCK_END                                                                       \
    "ldr %[t], %[out]\n\t"                                                                \
    "vstmia %[t]!, {s20-s23}\n\t"                                                         \
    "str %[t], %[out]\n\t"                                                                \
    "ldr %[v], %[out_end]\n\t"                                                            \
    "cmp %[t], %[v]\n\t"                                                                  \
    "bne 2b\n\t"
#define Q8_OPERANDS                                                                        \
    : [w0] "=&r"(w0), [w1] "=&r"(w1), [w2] "=&r"(w2), [w3] "=&r"(w3), [p] "=&r"(p),          \
      [ae] "=&r"(ae), [ao] "=&r"(ao), [v] "=&r"(v), [t] "=&r"(t), [cur] "+m"(at),             \
      [left] "+m"(steps.left), [row] "+m"(b.row), [wsb] "+m"(b.ws), [out] "+m"(b.out),       \
      [src] "+m"(b.src)                                                                    \
    : [bounds] "m"(end), [per_group] "m"(steps.per_group), [xsp] "m"(b.xs),                 \
      [out_end] "m"(b.out_end), [tail_end] "m"(tail_end)                                   \
    : "r0", "r1", "r2", "r3", "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24", \
      "s25", "s26", "s27", "s28", "cc", "memory"

/* What the block loop keeps in memory, in pairs of words that one LDRD reads. */
typedef struct {
    const int8_t *row;    /* the next block's first row, at the chunk's first column */
    uint32_t row_bytes;
    const uint16_t *ws;   /* its scales, at the chunk's first group */
    uint32_t ws_block;    /* bytes from one block's scales to the next's */
    const float *xs;      /* the chunk's first group's activation scale */
    const uint32_t *prep; /* the chunk's prepared activations */
    float *out, *out_end; /* the blocks' float sums */
    const float *src;     /* where the next block's sums start from: out's, or zeros */
    uint32_t src_step;    /* bytes from one block's start to the next's: 16, or 0 */
} q8_blocks;

/* What the blocks of rows of one chunk share. */
typedef struct {
    const uint8_t *data;    /* the tensor's codes, at the chunk's first column */
    const uint16_t *scales; /* the tensor's scales, at the chunk's first group */
    size_t row_bytes;       /* bytes from one row to the next */
    uint32_t n_groups;      /* groups per row */
    const uint32_t *prep;   /* the chunk's prepared activations */
    group_bounds bounds;    /* the end of the whole groups' prepared words, scale stride */
    const int8_t *xq;
    const float *xs;
    uint32_t group, cols;
    uint32_t g0, g1, whole; /* the chunk's groups; the first `whole` of them are the
                               assembly's: whole groups of a multiple of 8 columns */
    const uint32_t *tail_end; /* where the prepared words of the rows' ragged last group
                                 end when the assembly takes it too (after at least one
                                 whole group; q8: a multiple of 4 columns, q4: of 4 or
                                 8), else NULL */
} chunk;

static void other_groups_q8(float acc[4], const chunk *c, const uint32_t rk[4]);

/* The blocks of four consecutive rows from r on that end by row_end, over the chunk's
 * whole groups (21 instructions per 16 multiply-adds, 36 per group for the scaling: the
 * default group of 32 costs 204 per 128 products), then the ragged last group in the
 * same assembly (c->tail_end) or else the other groups in C, the sums of row r + i in out[i] (from 0 in the first chunk, else from out). Returns the
 * first row it did not do. Not inlined, and the memory operands of the assembly in its
 * own small frame: addressed from sp, within LDRD's reach, they need no register. */
static __attribute__((noinline)) uint32_t whole_blocks_q8(float *out, const chunk *c, uint32_t r,
                                                          uint32_t row_end)
{
    const group_bounds end = c->bounds;
    step_count steps = {0u, c->group / 8u - 1u}; /* pairs of steps after a group's first */
    static const float zeros[4] = {0.0f};
    const uint32_t first = r, n_blocks = (row_end - r) / 4u;
    q8_blocks b;
    scale_cursor at;
    const uint32_t *const tail_end = c->tail_end;
    const int8_t *w0, *w1, *w2, *w3;
    const uint32_t *p;
    uint32_t ae, ao, v, t;
    if (n_blocks == 0u)
        return r;
    b.row = (const int8_t *)c->data + r * c->row_bytes;
    b.row_bytes = (uint32_t)c->row_bytes;
    b.ws = c->scales + r * c->n_groups;
    b.ws_block = 8u * c->n_groups;
    b.xs = c->xs + c->g0;
    b.prep = c->prep;
    b.out = out;
    b.out_end = out + 4u * n_blocks;
    b.src = c->g0 == 0u ? zeros : out;
    b.src_step = c->g0 == 0u ? 0u : 4u * sizeof *out;
#define Q8_GROUPS_OF_32                                                                    \
    Q8_BLOCK_START Q8_FIRST_UNIT Q8_UNIT Q8_UNIT Q8_UNIT Q8_UNIT Q8_UNIT Q8_UNIT Q8_UNIT      \
    Q8_SCALE_AND_LOOP
#define Q8_GROUPS_OF_8N                                                                    \
    Q8_BLOCK_START Q8_FIRST_UNIT Q8_UNIT                                                   \
    "ldr %[t], %[per_group]\n\t"                                                          \
    "b 3f\n\t"                                                                            \
    "4:\n\t" Q8_UNIT Q8_UNIT                                                               \
    "ldr %[t], %[left]\n\t"                                                               \
    "3:\n\t"                                                                              \
    "subs %[t], %[t], #1\n\t"                                                             \
    "str %[t], %[left]\n\t"                                                               \
    "bpl 4b\n\t" Q8_SCALE_AND_LOOP
    /* four variants, so that a matrix without a ragged tail spends nothing on it */
    if (c->group == 32u && tail_end)
        __asm__(Q8_GROUPS_OF_32 Q8_TAIL Q8_BLOCK_END Q8_OPERANDS);
    else if (c->group == 32u)
        __asm__(Q8_GROUPS_OF_32 Q8_BLOCK_END Q8_OPERANDS);
    else if (tail_end)
        __asm__(Q8_GROUPS_OF_8N Q8_TAIL Q8_BLOCK_END Q8_OPERANDS);
    else
        __asm__(Q8_GROUPS_OF_8N Q8_BLOCK_END Q8_OPERANDS);
    if (c->g0 + c->whole < c->g1 && !tail_end) /* then each block's other groups, in C */
        for (r = first; r < first + 4u * n_blocks; r += 4u, out += 4) {
            const uint32_t rk[4] = {r, r + 1u, r + 2u, r + 3u};
            other_groups_q8(out, c, rk);
        }
    return first + 4u * n_blocks;
}

/* The int32 sums s[k] of four q8 rows over one group of n columns of any size (w[k]
 * and *p advanced past it; x holds the activations of the group's column 0 on). */
static void dot4_q8(int32_t s[4], const int8_t *w[4], const uint32_t **p, const int8_t *x,
                    uint32_t n)
{
    const int8_t *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3];
    const uint32_t *pp = *p;
    const uint32_t *const pp_end = pp + 2u * (n / 4u);
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    uint32_t i;
    for (; pp < pp_end; pp += 2, w0 += 4, w1 += 4, w2 += 4, w3 += 4) {
        const int16x2_t ae = (int16x2_t)pp[0], ao = (int16x2_t)pp[1];
        uint32_t v;
        v = load_word(w0);
        s0 = __smlad(sxtb16_even(v), ae, __smlad(sxtb16_odd(v), ao, s0));
        v = load_word(w1);
        s1 = __smlad(sxtb16_even(v), ae, __smlad(sxtb16_odd(v), ao, s1));
        v = load_word(w2);
        s2 = __smlad(sxtb16_even(v), ae, __smlad(sxtb16_odd(v), ao, s2));
        v = load_word(w3);
        s3 = __smlad(sxtb16_even(v), ae, __smlad(sxtb16_odd(v), ao, s3));
    }
    for (i = n & ~3u; i < n; i++) {
        s0 += *w0++ * x[i];
        s1 += *w1++ * x[i];
        s2 += *w2++ * x[i];
        s3 += *w3++ * x[i];
    }
    s[0] = s0, s[1] = s1, s[2] = s2, s[3] = s3;
    w[0] = w0, w[1] = w1, w[2] = w2, w[3] = w3;
    *p = pp;
}

/* q4, two rows, their int32 sums in r0, r1: per 8 columns the low nibbles moved up a
 * nibble and the high nibbles masked are bytes of 16 * code, which SXTB16 pairs as
 * columns (0, 4), (2, 6) and (1, 5), (3, 7), against the prepared words in that order.
 * The sums come out times 16 (exactly: |sum| < 2^28), which the fixed-point VCVT (#4)
 * divides out. Two rows, not four: the four activation words and the nibble
 * temporaries fill the registers. */
#define Q4_ROW(s, w, mac)                                                                  \
    "ldr %[v], [%[" w "]], #4\n\t"                                                        \
    "and %[lo], %[mask], %[v], lsl #4\n\t"                                                \
    "and %[v], %[v], %[mask]\n\t"                                                         \
    "sxtb16 %[t], %[lo]\n\t" mac                                                          \
    "sxtb16 %[lo], %[lo], ror #8\n\t"                                                     \
    "smlad " s ", %[lo], %[x26], " s "\n\t"                                               \
    "sxtb16 %[t], %[v]\n\t"                                                               \
    "smlad " s ", %[t], %[x15], " s "\n\t"                                                \
    "sxtb16 %[v], %[v], ror #8\n\t"                                                       \
    "smlad " s ", %[v], %[x37], " s "\n\t"
#define Q4_MAC(s) "smlad " s ", %[t], %[x04], " s "\n\t"
#define Q4_MUL(s) "smuad " s ", %[t], %[x04]\n\t"
/* LDM fills registers in ascending order, which is why x04..x37 are fixed registers */
#define Q4_LOAD "ldmia %[p]!, {%[x04], %[x26], %[x15], %[x37]}\n\t"
#define Q4_UNIT Q4_LOAD Q4_ROW("r0", "w0", Q4_MAC("r0")) Q4_ROW("r1", "w1", Q4_MAC("r1"))
#define Q4_FIRST_UNIT Q4_LOAD Q4_ROW("r0", "w0", Q4_MUL("r0")) Q4_ROW("r1", "w1", Q4_MUL("r1"))
#define Q4_SCALE                                                                           \
    "vmov s16, s17, r0, r1\n\t"                                                           \
    "ldrd r0, r1, %[cur]\n\t"                                                             \
    "ldrd %[lo], %[t], %[bounds]\n\t"                                                     \
    "vldmia r1!, {s28}\n\t"                                                               \
    "ldrh %[v], [r0]\n\t"                                                                 \
    "ldrh %[x04], [r0, %[t]]\n\t"                                                         \
    "vmov s24, s25, %[v], %[x04]\n\t"                                                     \
    "adds r0, r0, #2\n\t"                                                                 \
    "strd r0, r1, %[cur]\n\t"                                                             \
    "vcvt.f32.s32 s16, s16, #4\n\t"                                                       \
    "vcvt.f32.s32 s17, s17, #4\n\t"                                                       \
    "vcvtb.f32.f16 s24, s24\n\t"                                                          \
    "vcvtb.f32.f16 s25, s25\n\t"                                                          \
    "vmul.f32 s24, s24, s28\n\t"                                                          \
    "vmul.f32 s25, s25, s28\n\t"                                                          \
    "vmla.f32 %[a0], s16, s24\n\t"                                                        \
    "vmla.f32 %[a1], s17, s25\n\t"
#define Q4_SCALE_AND_LOOP Q4_SCALE "cmp %[p], %[lo]\n\t" "bne 1b\n\t"
/* Four columns of two rows: one halfword of codes per row, whose low nibbles (moved up)
 * and high nibbles make the bytes of columns (0, 2, 1, 3), against (x0, x1), (x2, x3). */
#define Q4_HALF_ROW(s, w)                                                                  \
    "ldrh %[v], [%[" w "]], #2\n\t"                                                        \
    "and %[lo], %[mask], %[v], lsl #4\n\t"                                                \
    "and %[v], %[v], %[mask]\n\t"                                                         \
    "orr %[v], %[lo], %[v], lsl #16\n\t"                                                  \
    "sxtb16 %[t], %[v]\n\t"                                                               \
    "smlad " s ", %[t], %[x04], " s "\n\t"                                                 \
    "sxtb16 %[v], %[v], ror #8\n\t"                                                       \
    "smlad " s ", %[v], %[x26], " s "\n\t"
/* The ragged last group of the two rows (as Q8_TAIL): its units of 8 columns until
 * units_end, a half unit if the prepared words go on to tail_end, then the scaling. */
#define Q4_TAIL                                                                            \
    "movs r0, #0\n\t"                                                                     \
    "movs r1, #0\n\t"                                                                     \
    "b 6f\n\t"                                                                            \
    "5:\n\t" Q4_UNIT                                                                       \
    "6:\n\t"                                                                              \
    "ldr %[t], %[units_end]\n\t"                                                          \
    "cmp %[p], %[t]\n\t"                                                                  \
    "bne 5b\n\t"                                                                          \
    "ldr %[t], %[tail_end]\n\t"                                                           \
    "cmp %[p], %[t]\n\t"                                                                  \
    "beq 7f\n\t"                                                                          \
    "ldrd %[x04], %[x26], [%[p]], #8\n\t" Q4_HALF_ROW("r0", "w0") Q4_HALF_ROW("r1", "w1")  \
    "7:\n\t" Q4_SCALE
#define Q4_OPERANDS                                                                        \
    : [w0] "+r"(w0), [w1] "+r"(w1), [p] "+r"(p), [x04] "=&r"(x04), [x26] "=&r"(x26),         \
      [x15] "=&r"(x15), [x37] "=&r"(x37), [v] "=&r"(v), [lo] "=&r"(lo), [t] "=&r"(t),         \
      [a0] "+t"(acc[0]), [a1] "+t"(acc[1]), [cur] "+m"(at), [left] "+m"(steps.left)          \
    : [mask] "r"(0xF0F0F0F0u), [bounds] "m"(end), [per_group] "m"(steps.per_group),          \
      [units_end] "m"(units_end), [tail_end] "m"(tail_end)                               \
    : "r0", "r1", "s16", "s17", "s24", "s25", "s28", "cc", "memory"

static void other_groups_q4(float acc[2], const chunk *c, const uint32_t rk[2]);

/* Blocks of two consecutive q4 rows, as whole_blocks_q8: 23 instructions per 16
 * multiply-adds, 20 per group for the scaling. */
static __attribute__((noinline)) uint32_t whole_blocks_q4(float *out, const chunk *c, uint32_t r,
                                                          uint32_t row_end)
{
    const group_bounds end = c->bounds;
    step_count steps = {0u, c->group / 8u - 1u}; /* steps after a group's first */
    const int others = c->g0 + c->whole < c->g1, first_chunk = c->g0 == 0u;
    /* the block's rows and scales advance by pointer: this loop runs per two rows */
    const size_t row_bytes = c->row_bytes, ws_step = 2u * (size_t)c->n_groups;
    const uint8_t *row = c->data + r * row_bytes;
    const uint16_t *ws = c->scales + r * c->n_groups;
    const float *const xs = c->xs + c->g0;
    /* the ragged tail's whole units end where its half unit's two words begin, if any */
    const uint32_t *const tail_end = c->tail_end;
    const uint32_t *const units_end =
        tail_end && (c->cols - (c->g1 - 1u) * c->group) % 8u ? tail_end - 2 : tail_end;
    register uint32_t x04 __asm__("r8"), x26 __asm__("r9"), x15 __asm__("r10"), x37 __asm__("r11");
    for (; r + 2u <= row_end; r += 2u, out += 2, row += 2u * row_bytes, ws += ws_step) {
        const uint8_t *w0 = row, *w1 = row + row_bytes;
        const uint32_t *p = c->prep;
        scale_cursor at;
        float acc[2];
        uint32_t v, lo, t;
        acc[0] = first_chunk ? 0.0f : out[0]; /* the sum so far */
        acc[1] = first_chunk ? 0.0f : out[1];
        at.ws = ws;
        at.xs = xs;
        if (c->group == 32u)
            __asm__("1:\n\t" Q4_FIRST_UNIT Q4_UNIT Q4_UNIT Q4_UNIT Q4_SCALE_AND_LOOP Q4_OPERANDS);
        else
            __asm__("1:\n\t" Q4_FIRST_UNIT
                    "ldr %[t], %[per_group]\n\t"
                    "b 3f\n\t"
                    "2:\n\t" Q4_UNIT
                    "ldr %[t], %[left]\n\t"
                    "3:\n\t"
                    "subs %[t], %[t], #1\n\t"
                    "str %[t], %[left]\n\t"
                    "bpl 2b\n\t" Q4_SCALE_AND_LOOP Q4_OPERANDS);
        if (tail_end)
            __asm__(Q4_TAIL Q4_OPERANDS);
        else if (others) {
            const uint32_t rk[2] = {r, r + 1u};
            other_groups_q4(acc, c, rk);
        }
        out[0] = acc[0];
        out[1] = acc[1];
    }
    return r;
}

/* The int32 sums s[k] of two q4 rows over one group of n columns of any size, as
 * dot4_q8 (the last columns two by two, one byte each; an odd last one, the tensor's
 * last column, has a low nibble only). */
static void dot2_q4(int32_t s[2], const uint8_t *w[2], const uint32_t **p, const int8_t *x,
                    uint32_t n)
{
    const uint32_t units = n / 8u;
    const uint32_t *pp = *p;
    uint32_t i, k;
    for (k = 0; k < 2u; k++) {
        int32_t sum = 0;
        const uint8_t *wk = w[k];
        for (i = 0; i < units; i++, wk += 4) {
            const uint32_t v = load_word(wk), lo = (v << 4) & 0xF0F0F0F0u, hi = v & 0xF0F0F0F0u;
            sum = __smlad(sxtb16_even(lo), (int16x2_t)pp[4u * i], sum);
            sum = __smlad(sxtb16_odd(lo), (int16x2_t)pp[4u * i + 1u], sum);
            sum = __smlad(sxtb16_even(hi), (int16x2_t)pp[4u * i + 2u], sum);
            sum = __smlad(sxtb16_odd(hi), (int16x2_t)pp[4u * i + 3u], sum);
        }
        for (i = 8u * units; i + 1u < n; i += 2u, wk++)
            sum += (int8_t)(*wk << 4) * x[i] + (int8_t)(*wk & 0xF0u) * x[i + 1u];
        if (i < n)
            sum += (int8_t)(*wk++ << 4) * x[i];
        s[k] = sum / 16;
        w[k] = wk;
    }
    *p = pp + 4u * units;
}

/* The groups of a chunk past its whole ones, in C, for a block of rows (rk[k]; the
 * ragged last group of a row, group sizes the assembly does not take), added to acc[k]
 * in group order. */
static void other_groups_q8(float acc[4], const chunk *c, const uint32_t rk[4])
{
    const int8_t *w[4];
    const uint32_t *p = c->bounds.p_end;
    uint32_t g, k;
    for (k = 0; k < 4u; k++)
        w[k] = (const int8_t *)c->data + rk[k] * c->row_bytes + c->whole * c->group;
    for (g = c->g0 + c->whole; g < c->g1; g++) {
        const uint32_t begin = g * c->group;
        const uint32_t n = c->cols - begin < c->group ? c->cols - begin : c->group;
        int32_t s[4];
        dot4_q8(s, w, &p, c->xq + begin, n);
        for (k = 0; k < 4u; k++)
            acc[k] += (float)s[k] * (f16_to_f32(c->scales[rk[k] * c->n_groups + g - c->g0]) * c->xs[g]);
    }
}

static void other_groups_q4(float acc[2], const chunk *c, const uint32_t rk[2])
{
    const uint8_t *w[2];
    const uint32_t *p = c->bounds.p_end;
    uint32_t g, k;
    for (k = 0; k < 2u; k++)
        w[k] = c->data + rk[k] * c->row_bytes + c->whole * c->group / 2u;
    for (g = c->g0 + c->whole; g < c->g1; g++) {
        const uint32_t begin = g * c->group;
        const uint32_t n = c->cols - begin < c->group ? c->cols - begin : c->group;
        int32_t s[2];
        dot2_q4(s, w, &p, c->xq + begin, n);
        for (k = 0; k < 2u; k++)
            acc[k] += (float)s[k] * (f16_to_f32(c->scales[rk[k] * c->n_groups + g - c->g0]) * c->xs[g]);
    }
}

/* Rows [r, row_end) of a block of `rows` consecutive rows: a block that would run past
 * row_end ends there instead (or starts at row 0), recomputing rows before r that it
 * does not store; a tensor of fewer rows repeats its last row (then not consecutive,
 * so all in C). Each row's sum starts from 0, or from y for the chunks after the first. */
static void block_q8(float *y, const chunk *c, uint32_t rows, uint32_t r, uint32_t row_end)
{
    const uint32_t base = r + 4u <= row_end ? r : row_end >= 4u ? row_end - 4u : 0u;
    uint32_t rk[4], k;
    float acc[4];
    for (k = 0; k < 4u; k++) {
        rk[k] = base + k < rows ? base + k : rows - 1u;
        acc[k] = c->g0 == 0u || rk[k] < r ? 0.0f : y[rk[k]];
    }
    if (c->whole && rows >= 4u) {
        whole_blocks_q8(acc, c, base, base + 4u); /* and the other groups */
    } else if (c->g0 < c->g1) {
        chunk other = *c;
        other.whole = 0u, other.bounds.p_end = c->prep, other.tail_end = NULL;
        other_groups_q8(acc, &other, rk);
    }
    for (k = r - base; k < 4u && base + k < row_end; k++)
        y[base + k] = acc[k];
}

static void block_q4(float *y, const chunk *c, uint32_t rows, uint32_t r, uint32_t row_end)
{
    const uint32_t base = r + 2u <= row_end ? r : row_end >= 2u ? row_end - 2u : 0u;
    uint32_t rk[2], k;
    float acc[2];
    for (k = 0; k < 2u; k++) {
        rk[k] = base + k < rows ? base + k : rows - 1u;
        acc[k] = c->g0 == 0u || rk[k] < r ? 0.0f : y[rk[k]];
    }
    if (c->whole && rows >= 2u) {
        whole_blocks_q4(acc, c, base, base + 2u); /* and the other groups */
    } else if (c->g0 < c->g1) {
        chunk other = *c;
        other.whole = 0u, other.bounds.p_end = c->prep, other.tail_end = NULL;
        other_groups_q4(acc, &other, rk);
    }
    for (k = r - base; k < 2u && base + k < row_end; k++)
        y[base + k] = acc[k];
}

/* Bytes 0 and 2 / 1 and 3 of x as two zero-extended int16 lanes (as sxtb16_odd, asm). */
static inline int16x2_t uxtb16_even(uint32_t x) { return (int16x2_t)__uxtb16((uint8x4_t)x); }
static inline int16x2_t uxtb16_odd(uint32_t x)
{
    int16x2_t r;
    __asm__("uxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

/* The int32 sums s[k] of two q4a rows' codes (0..15) times the activations over one
 * group of n columns (w[k] at its first byte, *p at its prepared words, all advanced
 * past it; x its activations): per 8 columns the low and the high nibbles masked are
 * the codes themselves, which UXTB16 pairs in the prepared words' order (prepare_q4),
 * the two rows sharing each prepared word; the columns past the last whole 8 from x,
 * one by one (an odd last one, the tensor's last column, is a low nibble). */
static inline void dot2_q4a(int32_t s[2], const uint8_t *w[2], const uint32_t **p,
                            const int8_t *x, uint32_t n)
{
    const uint8_t *w0 = w[0], *w1 = w[1];
    const uint32_t *pp = *p;
    const uint32_t *const units_end = pp + 4u * (n / 8u);
    int32_t s0 = 0, s1 = 0;
    uint32_t i;
    for (; pp < units_end; pp += 4, w0 += 4, w1 += 4) {
        const int16x2_t x04 = (int16x2_t)pp[0], x26 = (int16x2_t)pp[1];
        const int16x2_t x15 = (int16x2_t)pp[2], x37 = (int16x2_t)pp[3];
        const uint32_t v0 = load_word(w0), v1 = load_word(w1);
        const uint32_t lo0 = v0 & 0x0F0F0F0Fu, hi0 = (v0 >> 4) & 0x0F0F0F0Fu;
        const uint32_t lo1 = v1 & 0x0F0F0F0Fu, hi1 = (v1 >> 4) & 0x0F0F0F0Fu;
        s0 = __smlad(uxtb16_even(lo0), x04, s0);
        s0 = __smlad(uxtb16_odd(lo0), x26, s0);
        s0 = __smlad(uxtb16_even(hi0), x15, s0);
        s0 = __smlad(uxtb16_odd(hi0), x37, s0);
        s1 = __smlad(uxtb16_even(lo1), x04, s1);
        s1 = __smlad(uxtb16_odd(lo1), x26, s1);
        s1 = __smlad(uxtb16_even(hi1), x15, s1);
        s1 = __smlad(uxtb16_odd(hi1), x37, s1);
    }
    for (i = n & ~7u; i < n; i++) { /* column i: byte (i % 8) / 2, nibble i % 2 */
        const uint32_t at = (i & 7u) / 2u, shift = 4u * (i & 1u);
        s0 += (int32_t)((w0[at] >> shift) & 0x0Fu) * x[i];
        s1 += (int32_t)((w1[at] >> shift) & 0x0Fu) * x[i];
    }
    s[0] = s0, s[1] = s1;
    w[0] = w0 + ((n & 7u) + 1u) / 2u, w[1] = w1 + ((n & 7u) + 1u) / 2u;
    *p = (n & 7u) >= 4u ? pp + 2 : pp; /* past prepare_q4's half unit, if any */
}

/* A q4a matvec, in C, chunk by chunk of groups as the q8 and q4 ones: the chunk's
 * activations prepared as for q4 and its groups' activation sums once for every row;
 * then per two rows (the last pair repeating row_end - 1) and group the code term and
 * the offset term, in the reference's order (kernels.h), a row's float sum kept in y
 * between chunks. */
static void matvec_q4a(float *y, const mote_tensor *w, const int8_t *xq, const float *xs,
                       uint32_t group, uint32_t row_begin, uint32_t row_end)
{
    const uint32_t cols = w->cols, n_groups = (cols + group - 1u) / group;
    const uint32_t per_chunk = group >= PREP_COLUMNS ? 1u : PREP_COLUMNS / group;
    const size_t row_bytes = (cols + 1u) / 2u;
    uint32_t prep[PREP_WORDS];
    int32_t act_sum[PREP_COLUMNS / MOTE_MIN_GROUP];
    uint32_t g0, g1, g, r, k;
    for (g0 = 0; g0 < n_groups; g0 = g1) {
        uint32_t *p = prep;
        g1 = n_groups - g0 < per_chunk ? n_groups : g0 + per_chunk;
        for (g = g0; g < g1; g++) {
            const uint32_t begin = g * group, n = cols - begin < group ? cols - begin : group;
            p = prepare_q4(p, xq + begin, n);
            act_sum[g - g0] = mote_ref_act_sum(xq, begin, begin + n);
        }
        for (r = row_begin; r < row_end; r += 2u) {
            const uint32_t rk[2] = {r, r + 1u < row_end ? r + 1u : r};
            const uint8_t *row[2];
            const uint16_t *ws[2];
            const uint32_t *pp = prep;
            float acc[2];
            for (k = 0; k < 2u; k++) {
                row[k] = (const uint8_t *)w->data + rk[k] * row_bytes + g0 * group / 2u;
                ws[k] = w->scales + 2u * ((size_t)rk[k] * n_groups + g0);
                acc[k] = g0 == 0u ? 0.0f : y[rk[k]];
            }
            for (g = g0; g < g1; g++) {
                const uint32_t begin = g * group, n = cols - begin < group ? cols - begin : group;
                int32_t dot[2];
                dot2_q4a(dot, row, &pp, xq + begin, n);
                for (k = 0; k < 2u; k++) {
                    acc[k] += (float)dot[k] * (f16_to_f32(ws[k][0]) * xs[g]);
                    acc[k] += (float)act_sum[g - g0] * (f16_to_f32(ws[k][1]) * xs[g]);
                    ws[k] += 2;
                }
            }
            y[rk[0]] = acc[0];
            y[rk[1]] = acc[1];
        }
    }
}

void mote_dsp_matvec(float *y, const mote_tensor *w, const int8_t *xq, const float *xs,
                     uint32_t group, uint32_t row_begin, uint32_t row_end)
{
    if (w->dtype == MOTE_Q4A) {
        matvec_q4a(y, w, xq, xs, group, row_begin, row_end);
        return;
    }
    const uint32_t cols = w->cols, n_groups = (cols + group - 1u) / group;
    const uint32_t per_chunk = group >= PREP_COLUMNS ? 1u : PREP_COLUMNS / group;
    const int is_q4 = w->dtype == MOTE_Q4;
    uint32_t prep[PREP_WORDS];
    chunk c;
    uint32_t g, r;
    c.row_bytes = is_q4 ? (cols + 1u) / 2u : cols;
    c.n_groups = n_groups;
    c.prep = prep;
    c.bounds.ws_stride = 2u * n_groups;
    c.xq = xq;
    c.xs = xs;
    c.group = group;
    c.cols = cols;
    for (c.g0 = 0; c.g0 < n_groups; c.g0 = c.g1) {
        uint32_t *p = prep;
        c.g1 = n_groups - c.g0 < per_chunk ? n_groups : c.g0 + per_chunk;
        c.whole = group % 8u ? 0u : (c.g1 * group <= cols ? c.g1 : c.g1 - 1u) - c.g0;
        c.data = (const uint8_t *)w->data + (is_q4 ? c.g0 * group / 2u : c.g0 * group);
        c.scales = w->scales + c.g0;
        c.tail_end = NULL;
        for (g = c.g0; g < c.g1; g++) {
            const uint32_t begin = g * group, n = cols - begin < group ? cols - begin : group;
            p = is_q4 ? prepare_q4(p, xq + begin, n) : prepare_q8(p, xq + begin, n);
            if (g + 1u == c.g0 + c.whole)
                c.bounds.p_end = p;
            else if (c.whole && g + 1u == c.g1 && n % 4u == 0u)
                c.tail_end = p; /* the ragged last group, in the assembly too */
        }
        if (c.whole == 0u)
            c.bounds.p_end = prep;
        r = row_begin;
        if (is_q4) {
            if (c.whole && w->rows >= 2u)
                r = whole_blocks_q4(y + r, &c, r, row_end);
            for (; r < row_end; r += 2u)
                block_q4(y, &c, w->rows, r, row_end);
        } else {
            if (c.whole && w->rows >= 4u)
                r = whole_blocks_q8(y + r, &c, r, row_end);
            for (; r < row_end; r += 4u)
                block_q8(y, &c, w->rows, r, row_end);
        }
    }
}

/* The positions of a prefill pass: the set's matvec (mve's in an mve build, which
 * defines mote_k_matvec first) over 16-row tiles for every position, so that a tile's
 * weights stay in cache across the positions; each output is exactly matvec's. */
#define MATMAT_TILE_ROWS 16u

void mote_dsp_matmat(float *y, uint32_t y_stride, const mote_tensor *w, const int8_t *xq,
                     const float *xs, uint32_t n_pos, uint32_t group, uint32_t row_begin,
                     uint32_t row_end)
{
    const uint32_t cols = w->cols, n_groups = (cols + group - 1u) / group;
    uint32_t r0, p;
    for (r0 = row_begin; r0 < row_end; r0 += MATMAT_TILE_ROWS) {
        const uint32_t r1 = row_end - r0 < MATMAT_TILE_ROWS ? row_end : r0 + MATMAT_TILE_ROWS;
        for (p = 0; p < n_pos; p++)
            mote_k_matvec(y + (size_t)p * y_stride, w, xq + (size_t)p * cols,
                          xs + (size_t)p * n_groups, group, r0, r1);
    }
}

/* ------------------------------------------------------------------ sparse matvec */

/* The column kernel takes a group's needed columns (nonzero codes) in pairs: SMLAD
 * multiplies two columns' bytes of one row by their two codes at once, after a halfword
 * pack puts the two columns' bytes of a row side by side. Per four rows and a pair:
 * two loads, two packs, four SXTB16 and four SMLAD, the rows' sums in registers over
 * all of a group's pairs. An odd last needed column pairs with a zero code. */
#define COLUMN_TILE 64u  /* rows per pass over a group's columns, as the reference */
#define PAIRS_MAX 32u    /* needed-column pairs gathered at a time */

typedef struct {
    int16x2_t codes;      /* the two columns' codes, as SMLAD's operand */
    uint32_t first, second; /* their byte offsets from the group's first column */
} column_pair;

/* (lo of a, lo of b) and (hi of a, hi of b) as halfword pairs: one PKHBT / PKHTB each,
 * which GCC does not find in the masks and shifts (it gives two instructions each) */
static inline uint32_t pack_low_halves(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
static inline uint32_t pack_high_halves(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("pkhtb %0, %2, %1, asr #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

/* sum[k] = (`add` ? sum[k] : 0) + the pairs' products for rows r..r+3 (at byte `base` of
 * the group): a group's first pairs start its sums, which are not zeroed beforehand. */
static inline void pairs_dot4(int32_t sum[4], const column_pair *pair, uint32_t n_pairs,
                              const int8_t *base, uint32_t add)
{
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    if (add)
        s0 = sum[0], s1 = sum[1], s2 = sum[2], s3 = sum[3];
    const column_pair *const end = pair + n_pairs;
    for (; pair < end; pair++) {
        const uint32_t a = load_word(base + pair->first), b = load_word(base + pair->second);
        const uint32_t rows01 = pack_low_halves(a, b), rows23 = pack_high_halves(a, b);
        s0 = __smlad(sxtb16_even(rows01), pair->codes, s0);
        s1 = __smlad(sxtb16_odd(rows01), pair->codes, s1);
        s2 = __smlad(sxtb16_even(rows23), pair->codes, s2);
        s3 = __smlad(sxtb16_odd(rows23), pair->codes, s3);
    }
    sum[0] = s0, sum[1] = s1, sum[2] = s2, sum[3] = s3;
}

void mote_dsp_matvec_cols(float *y, const mote_tensor *w, const int8_t *xq, const float *xs,
                          uint32_t group, uint32_t row_begin, uint32_t row_end)
{
    const mote_column_map map = mote_columns_of(w, group);
    const uint32_t cols = w->cols;
    int32_t acc[COLUMN_TILE];
    column_pair pairs[PAIRS_MAX];
    uint32_t tile, r;
    for (r = row_begin; r < row_end; r++)
        y[r] = 0.0f;
    for (tile = row_begin; tile < row_end; tile += COLUMN_TILE) {
        const uint32_t n = row_end - tile < COLUMN_TILE ? row_end - tile : COLUMN_TILE;
        uint32_t begin, g = 0;
        for (begin = 0; begin < cols; begin += group, g++) {
            const uint32_t end = cols - begin < group ? cols : begin + group;
            const int8_t *const block = map.codes + g * map.group_stride + tile;
            const uint16_t *ws;
            uint32_t j = begin, n_pairs, any = 0;
            const float sx = xs[g];
            while (j < end) {
                /* the next needed columns, in pairs */
                int32_t code[2];
                uint32_t at[2], k = 0;
                n_pairs = 0;
                for (; j < end && n_pairs < PAIRS_MAX; j++) {
                    if (xq[j] == 0)
                        continue; /* a column this token does not need: not read */
                    code[k] = xq[j];
                    at[k++] = (j - begin) * map.col_stride;
                    if (k == 2u) {
                        pairs[n_pairs].codes = (int16x2_t)((code[0] & 0xFFFF) | ((uint32_t)code[1] << 16));
                        pairs[n_pairs].first = at[0];
                        pairs[n_pairs++].second = at[1];
                        k = 0;
                    }
                }
                if (k == 1u) { /* an odd one: with a zero code for its pair */
                    pairs[n_pairs].codes = (int16x2_t)(code[0] & 0xFFFF);
                    pairs[n_pairs].first = pairs[n_pairs].second = at[0];
                    n_pairs++;
                }
                if (n_pairs == 0)
                    break;
                for (r = 0; r + 4u <= n; r += 4u)
                    pairs_dot4(acc + r, pairs, n_pairs, block + r, any);
                for (; r < n; r++) { /* the tile's last rows */
                    uint32_t i;
                    int32_t sum = any ? acc[r] : 0;
                    for (i = 0; i < n_pairs; i++)
                        sum += (int16_t)pairs[i].codes * block[pairs[i].first + r] +
                               ((int32_t)pairs[i].codes >> 16) * block[pairs[i].second + r];
                    acc[r] = sum;
                }
                any = 1;
            }
            if (!any)
                continue; /* all codes 0: the dense term is +0, skip the group's scales */
            ws = (const uint16_t *)(const void *)(map.scales + g * map.group_stride_scales) + tile;
            for (r = 0; r < n; r++)
                y[tile + r] += (float)acc[r] * (f16_to_f32(ws[r]) * sx);
        }
    }
}

void mote_dsp_matvec_bundled_rows(float *u, const mote_tensor *w_up, const float *gate,
                                  const int8_t *xq, const float *xs, uint32_t group,
                                  uint32_t begin, uint32_t end)
{
    const uint32_t dim = w_up->cols, n_groups = (dim + group - 1u) / group;
    const size_t bundle = 2u * (size_t)dim + 2u * n_groups;
    const size_t group_stride = 2u * (size_t)dim + group * bundle;
    uint32_t prep[PREP_WORDS];
    uint32_t j = begin, g0 = 0, g;
    /* the activations prepared once for every kept neuron, a chunk of groups at a time,
     * as mote_dsp_matvec; each neuron's sum kept exactly in u between chunks */
    const uint32_t per_chunk = group >= PREP_COLUMNS ? 1u : PREP_COLUMNS / group;
    for (g0 = 0; g0 < n_groups; g0 += per_chunk) {
        const uint32_t g1 = n_groups - g0 < per_chunk ? n_groups : g0 + per_chunk;
        uint32_t *p = prep;
        for (g = g0; g < g1; g++) {
            const uint32_t lo = g * group, n = dim - lo < group ? dim - lo : group;
            p = prepare_q8(p, xq + lo, n);
        }
        for (j = begin; j < end;) {
            /* the next (up to) four kept neurons; a short block repeats its first */
            const int8_t *row[4];
            const uint16_t *ws[4];
            uint32_t which[4], k = 0, i;
            float acc[4];
            for (; j < end && k < 4u; j++) {
                if (gate[j] == 0.0f)
                    continue; /* a dropped neuron: its whole bundle stays unread */
                which[k] = j;
                row[k] = (const int8_t *)w_up->data + (j / group) * group_stride +
                         2u * (size_t)dim + (j % group) * bundle;
                ws[k] = (const uint16_t *)(const void *)(row[k] + dim);
                acc[k] = g0 == 0u ? 0.0f : u[j];
                row[k] += g0 * group;
                k++;
            }
            if (k == 0)
                break;
            for (i = k; i < 4u; i++)
                row[i] = row[0], ws[i] = ws[0], acc[i] = acc[0];
            p = prep;
            for (g = g0; g < g1; g++) {
                const uint32_t lo = g * group, n = dim - lo < group ? dim - lo : group;
                int32_t sum[4];
                dot4_q8(sum, row, (const uint32_t **)&p, xq + lo, n);
                for (i = 0; i < k; i++)
                    acc[i] += (float)sum[i] * (f16_to_f32(ws[i][g]) * xs[g]);
            }
            for (i = 0; i < k; i++)
                u[which[i]] = acc[i];
        }
    }
}

/* ------------------------------------------------------------------ quantization */

/* round(v) to nearest even as an int32 by the FPU's VCVTR (FPSCR's rounding mode,
 * nearest-even out of reset): the reference's add-and-subtract-1.5*2^23 for |v| < 2^22. */
static inline int32_t round_to_int(float v)
{
    float r;
    int32_t i;
    __asm__("vcvtr.s32.f32 %0, %1" : "=t"(r) : "t"(v));
    memcpy(&i, &r, sizeof i);
    return i;
}

/* The largest |x[i]| as float bits (sign cleared: for non-negative floats the integer
 * order is the float order); a NaN makes it larger than the bits of infinity. Four at
 * a time, each compared shifted left by one (which drops the sign: three instructions
 * a value), the maximum shifted back. */
static inline uint32_t abs_max_bits(const float *x, uint32_t n)
{
    const float *p = x;
    const float *const end4 = x + (n & ~3u);
    uint32_t m = 0, i, a, b, c, d;
    if (p < end4)
        __asm__("1:\n\t"
                "ldmia %[p]!, {%[a], %[b], %[c], %[d]}\n\t"
                "cmp %[m], %[a], lsl #1\n\t"
                "it cc\n\t"
                "lslcc %[m], %[a], #1\n\t"
                "cmp %[m], %[b], lsl #1\n\t"
                "it cc\n\t"
                "lslcc %[m], %[b], #1\n\t"
                "cmp %[m], %[c], lsl #1\n\t"
                "it cc\n\t"
                "lslcc %[m], %[c], #1\n\t"
                "cmp %[m], %[d], lsl #1\n\t"
                "it cc\n\t"
                "lslcc %[m], %[d], #1\n\t"
                "cmp %[p], %[end4]\n\t"
                "bne 1b\n\t"
                : [p] "+r"(p), [m] "+r"(m), [a] "=&r"(a), [b] "=&r"(b), [c] "=&r"(c), [d] "=&r"(d)
                : [end4] "r"(end4)
                : "cc", "memory");
    m >>= 1;
    for (i = n & ~3u; i < n; i++) {
        memcpy(&a, x + i, sizeof a);
        a &= 0x7FFFFFFFu;
        m = a > m ? a : m;
    }
    return m;
}

/* xq = round(x * inv) for |x * inv| <= 127 (rounding may reach 127.00002, never 127.5):
 * the reference's clamp does nothing there. Four at a time: one load, four products
 * and conversions (VCVTR), two moves to core registers, four byte stores. */
static inline void quantize_codes(int8_t *xq, const float *x, uint32_t n, float inv)
{
    int8_t *q = xq;
    const int8_t *const end4 = xq + (n & ~3u);
    const float *p = x;
    uint32_t i, a, b, c, d;
    if (q < end4)
        __asm__ volatile("1:\n\t"
                         "vldmia %[p]!, {s0-s3}\n\t"
                         "vmul.f32 s0, s0, %[inv]\n\t"
                         "vmul.f32 s1, s1, %[inv]\n\t"
                         "vmul.f32 s2, s2, %[inv]\n\t"
                         "vmul.f32 s3, s3, %[inv]\n\t"
                         "vcvtr.s32.f32 s0, s0\n\t"
                         "vcvtr.s32.f32 s1, s1\n\t"
                         "vcvtr.s32.f32 s2, s2\n\t"
                         "vcvtr.s32.f32 s3, s3\n\t"
                         "vmov %[a], %[b], s0, s1\n\t"
                         "vmov %[c], %[d], s2, s3\n\t"
                         "strb %[a], [%[q]], #1\n\t"
                         "strb %[b], [%[q]], #1\n\t"
                         "strb %[c], [%[q]], #1\n\t"
                         "strb %[d], [%[q]], #1\n\t"
                         "cmp %[q], %[end4]\n\t"
                         "bne 1b\n\t"
                         : [p] "+r"(p), [q] "+r"(q), [a] "=&r"(a), [b] "=&r"(b), [c] "=&r"(c),
                           [d] "=&r"(d)
                         : [end4] "r"(end4), [inv] "t"(inv)
                         : "s0", "s1", "s2", "s3", "cc", "memory");
    for (i = n & ~3u; i < n; i++)
        xq[i] = (int8_t)round_to_int(x[i] * inv);
}

void mote_dsp_quantize_act(int8_t *xq, float *xs, const float *x, uint32_t n, uint32_t group)
{
    uint32_t begin, g = 0;
    for (begin = 0; begin < n; begin += group, g++) {
        const uint32_t len = n - begin < group ? n - begin : group;
        const uint32_t max_bits = abs_max_bits(x + begin, len);
        float amax, inv;
        memcpy(&amax, &max_bits, sizeof amax);
        inv = 127.0f / amax;
        /* a non-finite value, or an amax so small that 127 / amax overflows: the
         * reference's clamping and NaN rules matter, so it does the group */
        if (max_bits >= 0x7F800000u || max_bits == 0u || !(inv < HUGE_VALF)) {
            mote_ref_quantize_act(xq + begin, xs + g, x + begin, len, len);
            continue;
        }
        xs[g] = amax / 127.0f;
        quantize_codes(xq + begin, x + begin, len, inv);
    }
}

void mote_dsp_quantize_kv(int8_t *q, uint16_t *scale, const float *x, uint32_t n)
{
    const uint32_t max_bits = abs_max_bits(x, n);
    float amax, s, inv;
    memcpy(&amax, &max_bits, sizeof amax);
    *scale = mote_f32_to_f16(amax / 127.0f);
    s = f16_to_f32(*scale);
    inv = 1.0f / s;
    /* the f16 scale rounds amax / 127 either way: while amax * inv < 127.5 every code
     * rounds to at most 127 and the reference's clamp does nothing; beyond, and for
     * non-finite values and a zero scale, the reference does it */
    if (max_bits >= 0x7F800000u || s == 0.0f || !(amax * inv < 127.5f)) {
        mote_ref_quantize_kv(q, scale, x, n);
        return;
    }
    quantize_codes(q, x, n, inv);
}

/* ------------------------------------------------------------------ attention */

/* Both take the query heads of a kv head in pairs: each key and value is converted to
 * float once (SXTB, a two-register VMOV, VCVT: 2.5 instructions per value) for both
 * heads, and each head keeps its own float sums in the reference's order. Head sizes
 * that are not a multiple of 8 are the reference's. */

/* Eight cache bytes at k as floats in s8-s15. On a core with MVE (the mve set builds on
 * this one) four bytes at a time, sign-extended into q2's and q3's lanes (s8-s15) and
 * converted together: exact, as int to float conversions are. */
#if defined(__ARM_FEATURE_MVE)
#define KV8_TO_FLOATS                                                                      \
    "vldrb.s32 q2, [%[k]]\n\t"                                                            \
    "vldrb.s32 q3, [%[k], #4]\n\t"                                                        \
    "vcvt.f32.s32 q2, q2\n\t"                                                             \
    "vcvt.f32.s32 q3, q3\n\t"
#else
#define KV8_TO_FLOATS                                                                      \
    "ldr %[w0], [%[k]]\n\t"                                                               \
    "ldr %[w1], [%[k], #4]\n\t"                                                           \
    "sxtb %[e0], %[w0]\n\t"                                                               \
    "sxtb %[e1], %[w0], ror #8\n\t"                                                       \
    "vmov s8, s9, %[e0], %[e1]\n\t"                                                       \
    "sxtb %[e0], %[w0], ror #16\n\t"                                                      \
    "asr %[e1], %[w0], #24\n\t"                                                           \
    "vmov s10, s11, %[e0], %[e1]\n\t"                                                     \
    "sxtb %[e0], %[w1]\n\t"                                                               \
    "sxtb %[e1], %[w1], ror #8\n\t"                                                       \
    "vmov s12, s13, %[e0], %[e1]\n\t"                                                     \
    "sxtb %[e0], %[w1], ror #16\n\t"                                                      \
    "asr %[e1], %[w1], #24\n\t"                                                           \
    "vmov s14, s15, %[e0], %[e1]\n\t"                                                     \
    "vcvt.f32.s32 s8, s8\n\t"                                                             \
    "vcvt.f32.s32 s9, s9\n\t"                                                             \
    "vcvt.f32.s32 s10, s10\n\t"                                                           \
    "vcvt.f32.s32 s11, s11\n\t"                                                           \
    "vcvt.f32.s32 s12, s12\n\t"                                                           \
    "vcvt.f32.s32 s13, s13\n\t"                                                           \
    "vcvt.f32.s32 s14, s14\n\t"                                                           \
    "vcvt.f32.s32 s15, s15\n\t"
#endif

/* dot += q[i] * k[i], the eight k in s8-s15, q in the eight registers named, in order.
 * VMLA is not fused: it rounds the product, then adds it to dot (in that operand
 * order, as the reference's `dot += q * k`), the bits of a VMUL and a VADD. */
#define DOTQ(dot, q0, q1, q2, q3, q4, q5, q6, q7)                                          \
    "vmla.f32 " dot ", " q0 ", s8\n\t"                                                     \
    "vmla.f32 " dot ", " q1 ", s9\n\t"                                                     \
    "vmla.f32 " dot ", " q2 ", s10\n\t"                                                    \
    "vmla.f32 " dot ", " q3 ", s11\n\t"                                                    \
    "vmla.f32 " dot ", " q4 ", s12\n\t"                                                    \
    "vmla.f32 " dot ", " q5 ", s13\n\t"                                                    \
    "vmla.f32 " dot ", " q6 ", s14\n\t"                                                    \
    "vmla.f32 " dot ", " q7 ", s15\n\t"
#define DOTQ_HEAD0(dot) DOTQ(dot, "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23")
#define DOTQ_HEAD1(dot) DOTQ(dot, "s24", "s25", "s26", "s27", "s28", "s29", "s30", "s31")
/* per position: att[h][t] = (dot * f16(ks[t])) / sqrt_hd, the dot in s<d> */
#define SCORE_SCALE                                                                        \
    "ldrh %[e0], [%[ks]], #2\n\t"                                                         \
    "vmov s6, %[e0]\n\t"                                                                  \
    "vcvtb.f32.f16 s6, s6\n\t"
#define SCORE_STORE(d, att)                                                                \
    "vmul.f32 " d ", " d ", s6\n\t"                                                       \
    "vdiv.f32 " d ", " d ", %[sqrt_hd]\n\t"                                               \
    "vstmia %[" att "]!, {" d "}\n\t"
#define SCORE_CLOBBERS                                                                     \
    "s4", "s5", "s6", "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15", "s16",      \
        "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24", "s25", "s26", "s27", "s28",  \
        "s29", "s30", "s31", "cc", "memory"

void mote_dsp_attn_scores(float *const att[], const float *q, uint32_t n_q, const int8_t *kq,
                          const uint16_t *ks, uint32_t stride, uint32_t head_dim, uint32_t n_pos,
                          float sqrt_hd)
{
    const float *const q1 = q + head_dim;
    const int8_t *k = kq;
    float *a0 = att[0], *a1 = att[n_q - 1u];
    uint32_t t, i, w0, w1, e0, e1;
    if (head_dim % 8u) {
        mote_ref_attn_scores(att, q, n_q, kq, ks, stride, head_dim, n_pos, sqrt_hd);
        return;
    }
    if (head_dim == 8u) { /* the queries stay in s16-s31, one loop over the positions */
        if (n_q == 2u)
            __asm__ volatile("vldmia %[q], {s16-s31}\n\t"
                             "1:\n\t" KV8_TO_FLOATS
                             "add %[k], %[k], %[stride]\n\t"
                             "vmov.f32 s4, %[zero]\n\t"
                             "vmov.f32 s5, %[zero]\n\t" DOTQ_HEAD0("s4") DOTQ_HEAD1("s5")
                             SCORE_SCALE SCORE_STORE("s4", "a0") SCORE_STORE("s5", "a1")
                             "cmp %[ks], %[ks_end]\n\t"
                             "bne 1b\n\t"
                             : [k] "+r"(k), [ks] "+r"(ks), [a0] "+r"(a0), [a1] "+r"(a1),
                               [w0] "=&r"(w0), [w1] "=&r"(w1), [e0] "=&r"(e0), [e1] "=&r"(e1)
                             : [q] "r"(q), [stride] "r"(stride), [ks_end] "r"(ks + n_pos),
                               [zero] "t"(0.0f), [sqrt_hd] "t"(sqrt_hd)
                             : SCORE_CLOBBERS);
        else
            __asm__ volatile("vldmia %[q], {s16-s23}\n\t"
                             "1:\n\t" KV8_TO_FLOATS
                             "add %[k], %[k], %[stride]\n\t"
                             "vmov.f32 s4, %[zero]\n\t" DOTQ_HEAD0("s4")
                             SCORE_SCALE SCORE_STORE("s4", "a0")
                             "cmp %[ks], %[ks_end]\n\t"
                             "bne 1b\n\t"
                             : [k] "+r"(k), [ks] "+r"(ks), [a0] "+r"(a0), [w0] "=&r"(w0),
                               [w1] "=&r"(w1), [e0] "=&r"(e0), [e1] "=&r"(e1)
                             : [q] "r"(q), [stride] "r"(stride), [ks_end] "r"(ks + n_pos),
                               [zero] "t"(0.0f), [sqrt_hd] "t"(sqrt_hd)
                             : SCORE_CLOBBERS);
        return;
    }
    /* larger heads: eight query values of each head at a time, reloaded per position */
    for (t = 0; t < n_pos; t++) {
        const float scale = f16_to_f32(ks[t]);
        float d0 = 0.0f, d1 = 0.0f;
        k = kq + (size_t)t * stride;
        for (i = 0; i < head_dim; i += 8u, k += 8) {
            if (n_q == 2u)
                __asm__(KV8_TO_FLOATS "vldmia %[q0], {s16-s23}\n\t" DOTQ_HEAD0("%[d0]")
                        "vldmia %[q1], {s16-s23}\n\t" DOTQ_HEAD0("%[d1]")
                        : [d0] "+t"(d0), [d1] "+t"(d1), [w0] "=&r"(w0), [w1] "=&r"(w1),
                          [e0] "=&r"(e0), [e1] "=&r"(e1)
                        : [k] "r"(k), [q0] "r"(q + i), [q1] "r"(q1 + i)
                        : SCORE_CLOBBERS);
            else
                __asm__(KV8_TO_FLOATS "vldmia %[q0], {s16-s23}\n\t" DOTQ_HEAD0("%[d0]")
                        : [d0] "+t"(d0), [w0] "=&r"(w0), [w1] "=&r"(w1), [e0] "=&r"(e0),
                          [e1] "=&r"(e1)
                        : [k] "r"(k), [q0] "r"(q + i)
                        : SCORE_CLOBBERS);
        }
        att[0][t] = (d0 * scale) / sqrt_hd;
        if (n_q == 2u)
            att[1][t] = (d1 * scale) / sqrt_hd;
    }
}

/* acc[i] += a * v[i] for the eight values in s8-s15, acc the eight registers from
 * s<first> (a in s<a>), by VMLA: the reference's product and sum, each rounded. */
#define MIX8(a, o0, o1, o2, o3, o4, o5, o6, o7)                                            \
    "vmla.f32 " o0 ", " a ", s8\n\t"                                                       \
    "vmla.f32 " o1 ", " a ", s9\n\t"                                                       \
    "vmla.f32 " o2 ", " a ", s10\n\t"                                                      \
    "vmla.f32 " o3 ", " a ", s11\n\t"                                                      \
    "vmla.f32 " o4 ", " a ", s12\n\t"                                                      \
    "vmla.f32 " o5 ", " a ", s13\n\t"                                                      \
    "vmla.f32 " o6 ", " a ", s14\n\t"                                                      \
    "vmla.f32 " o7 ", " a ", s15\n\t"
#define MIX_HEAD0 MIX8("s1", "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23")
#define MIX_HEAD1 MIX8("s2", "s24", "s25", "s26", "s27", "s28", "s29", "s30", "s31")
/* per position: the f16 scale, the heads' weights a = att[t] * scale, the values */
#define MIX_POSITION_START                                                                 \
    "ldrh %[e0], [%[vs]], #2\n\t"                                                         \
    "vmov s0, %[e0]\n\t"                                                                  \
    "vcvtb.f32.f16 s0, s0\n\t"                                                            \
    "vldmia %[a0]!, {s1}\n\t"                                                             \
    "vmul.f32 s1, s1, s0\n\t"
#define MIX_NEXT                                                                           \
    "add %[k], %[k], %[stride]\n\t"                                                       \
    "cmp %[vs], %[vs_end]\n\t"                                                            \
    "bne 1b\n\t"
#define MIX_CLOBBERS                                                                       \
    "s0", "s1", "s2", "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15", "s16",      \
        "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24", "s25", "s26", "s27", "s28",  \
        "s29", "s30", "s31", "cc", "memory"

void mote_dsp_attn_mix(float *out, const float *const att[], uint32_t n_q, const int8_t *vq,
                       const uint16_t *vs, uint32_t stride, uint32_t head_dim, uint32_t n_pos)
{
    static const float zeros[16] = {0.0f};
    uint32_t i;
    if (head_dim % 8u) {
        mote_ref_attn_mix(out, att, n_q, vq, vs, stride, head_dim, n_pos);
        return;
    }
    /* eight output dims of each head at a time, their sums in s16-s31 over all positions */
    for (i = 0; i < head_dim; i += 8u) {
        const int8_t *k = vq + i;
        const uint16_t *v_scale = vs;
        const float *a0 = att[0], *a1 = att[n_q - 1u];
        uint32_t w0, w1, e0, e1;
        /* volatile: the results leave through memory (VSTM), not the operands */
        if (n_q == 2u)
            __asm__ volatile("vldmia %[zeros], {s16-s31}\n\t"
                    "1:\n\t" MIX_POSITION_START
                    "vldmia %[a1]!, {s2}\n\t"
                    "vmul.f32 s2, s2, s0\n\t" KV8_TO_FLOATS MIX_HEAD0 MIX_HEAD1 MIX_NEXT
                    "vstmia %[o0], {s16-s23}\n\t"
                    "vstmia %[o1], {s24-s31}\n\t"
                    : [k] "+r"(k), [vs] "+r"(v_scale), [a0] "+r"(a0), [a1] "+r"(a1), [w0] "=&r"(w0),
                      [w1] "=&r"(w1), [e0] "=&r"(e0), [e1] "=&r"(e1)
                    : [stride] "r"(stride), [vs_end] "r"(vs + n_pos), [zeros] "r"(zeros),
                      [o0] "r"(out + i), [o1] "r"(out + head_dim + i)
                    : MIX_CLOBBERS);
        else
            __asm__ volatile("vldmia %[zeros], {s16-s23}\n\t"
                    "1:\n\t" MIX_POSITION_START KV8_TO_FLOATS MIX_HEAD0 MIX_NEXT
                    "vstmia %[o0], {s16-s23}\n\t"
                    : [k] "+r"(k), [vs] "+r"(v_scale), [a0] "+r"(a0), [w0] "=&r"(w0), [w1] "=&r"(w1),
                      [e0] "=&r"(e0), [e1] "=&r"(e1)
                    : [stride] "r"(stride), [vs_end] "r"(vs + n_pos), [zeros] "r"(zeros),
                      [o0] "r"(out + i)
                    : MIX_CLOBBERS);
        (void)a1;
    }
}

/* ------------------------------------------------------------------ small ops */

/* The reference's exp (mote_expf: the same IEEE operations in the same order) for
 * x in [-87, 88], in assembly: n = rint(x * log2 e) by adding and subtracting
 * 1.5 * 2^23 (|x log2 e| < 2^22, as the reference's rint_small). The reference's
 * p * 2^n, for n in [-126, 127] and p = exp(r) in (0.7, 1.42), is a normal float (p > 1
 * when n = -126, as x >= -87 makes r > 0.33): exactly p with n added to its exponent,
 * p's bits plus n << 23; the low 9 bits of the shifted sum's bits are n's (it holds
 * n + 0x400000 in its low 23 bits), so << 23 drops the rest.
 * VMLA and VMLS are not fused (each product is rounded, then added or subtracted: the
 * bits of a VMUL and a VADD or VSUB), so each step of the reference's Horner
 * polynomial, c + r * p, is one VMLA into a register holding c: one VLDM per value
 * reloads those constants. x comes in s0 (finite, not NaN: the operand order of a sum
 * only matters for NaN), exp(x) goes out in s0; s1-s8, %[bits] and %[pb] are overwritten;
 * s16-s20 hold exp_constants[0..4] and %[k] points at exp_horner. */
#define EXP_LOG2E ((float)1.44269504)
#define EXP_LN2_HI ((float)0.693145751953125)
#define EXP_LN2_LO ((float)1.42860677e-06)
#define EXP_S0                                                                             \
    "vldmia %[k], {s1-s7}\n\t"                                                            \
    "vmla.f32 s1, s0, s16\n\t"      /* shifted = x * log2e + 1.5 * 2^23 */                 \
    "vsub.f32 s8, s1, s17\n\t"      /* n */                                                \
    "vmov %[bits], s1\n\t"                                                                \
    "vmls.f32 s0, s8, s18\n\t"      /* r = (x - n * ln2_hi) - n * ln2_lo */                \
    "vmls.f32 s0, s8, s19\n\t"                                                            \
    "vmla.f32 s2, s0, s20\n\t"      /* p = 1/120 + r * 1/720, ... */                       \
    "vmla.f32 s3, s0, s2\n\t"                                                             \
    "vmla.f32 s4, s0, s3\n\t"                                                             \
    "vmla.f32 s5, s0, s4\n\t"                                                             \
    "vmla.f32 s6, s0, s5\n\t"                                                             \
    "vmla.f32 s7, s0, s6\n\t"       /* ..., p = 1 + r * p */                               \
    "vmov %[pb], s7\n\t"                                                                  \
    "add %[pb], %[pb], %[bits], lsl #23\n\t" /* p * 2^n */                                 \
    "vmov s0, %[pb]\n\t"
/* An x that EXP_S0 does not take, below -87 or NaN (branched to 2): a NaN stays, the
 * rest gives 0; then back to 3 with the result in s0. */
#define EXP_BELOW_RANGE                                                                    \
    "2:\n\t"                                                                              \
    "vcmp.f32 s0, s0\n\t"                                                                 \
    "vmrs APSR_nzcv, fpscr\n\t"                                                           \
    "it eq\n\t"                                                                           \
    "vmoveq.f32 s0, %[zero]\n\t"                                                          \
    "b 3b\n\t"
#define EXP_CLOBBERS                                                                       \
    "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s16", "s17", "s18", "s19",   \
        "s20", "s21", "s22", "cc", "memory"

/* In the order EXP_S0 and its callers load them into s16-s22: the constants that stay,
 * then the range's ends; and the Horner steps' c (with the shift first) reloaded per
 * value into s1-s7. */
static const float exp_constants[7] = {
    EXP_LOG2E, 12582912.0f, EXP_LN2_HI, EXP_LN2_LO, (float)(1.0 / 720.0), -87.0f, 88.0f};
static const float exp_horner[7] = {12582912.0f, (float)(1.0 / 120.0), (float)(1.0 / 24.0),
                                    (float)(1.0 / 6.0), 0.5f, 1.0f, 1.0f};

/* The reference's max (x[0], then any larger x[i]; a NaN never replaces it) of x[1..n),
 * four at a time. */
static float softmax_max(const float *x, uint32_t n)
{
    float max = x[0];
    const float *p = x + 1;
    const float *const end4 = p + (n - 1u) / 4u * 4u, *const end = x + n;
    if (p < end4)
        __asm__("1:\n\t"
                "vldmia %[p]!, {s0-s3}\n\t"
                "vcmp.f32 s0, %[max]\n\t"
                "vmrs APSR_nzcv, fpscr\n\t"
                "it gt\n\t"
                "vmovgt.f32 %[max], s0\n\t"
                "vcmp.f32 s1, %[max]\n\t"
                "vmrs APSR_nzcv, fpscr\n\t"
                "it gt\n\t"
                "vmovgt.f32 %[max], s1\n\t"
                "vcmp.f32 s2, %[max]\n\t"
                "vmrs APSR_nzcv, fpscr\n\t"
                "it gt\n\t"
                "vmovgt.f32 %[max], s2\n\t"
                "vcmp.f32 s3, %[max]\n\t"
                "vmrs APSR_nzcv, fpscr\n\t"
                "it gt\n\t"
                "vmovgt.f32 %[max], s3\n\t"
                "cmp %[p], %[end4]\n\t"
                "bne 1b\n\t"
                : [p] "+r"(p), [max] "+t"(max)
                : [end4] "r"(end4)
                : "s0", "s1", "s2", "s3", "cc", "memory");
    for (; p < end; p++)
        if (*p > max)
            max = *p;
    return max;
}

void mote_dsp_softmax(float *x, uint32_t n)
{
    const float max = softmax_max(x, n);
    float sum = 0.0f;
    float *p = x;
    const float *const end = x + n;
    uint32_t i, bits, pb;
    /* e = exp(x - max), x - max <= 0 or NaN (exp's upper cut-off never applies) */
    __asm__ volatile(
        "vldmia %[c], {s16-s22}\n\t"
        "1:\n\t"
        "vldr s0, [%[p]]\n\t"
        "vsub.f32 s0, s0, %[max]\n\t"
        "vcmp.f32 s0, s21\n\t"
        "vmrs APSR_nzcv, fpscr\n\t"
        "blt 2f\n\t" /* below -87, or NaN (unordered) */
        EXP_S0
        "3:\n\t"
        "vstmia %[p]!, {s0}\n\t"
        "vadd.f32 %[sum], %[sum], s0\n\t"
        "cmp %[p], %[end]\n\t"
        "bne 1b\n\t"
        "b 4f\n\t"
        EXP_BELOW_RANGE
        "4:\n\t"
        : [p] "+r"(p), [sum] "+&t"(sum), [bits] "=&r"(bits), [pb] "=&r"(pb)
        : [c] "r"(exp_constants), [k] "r"(exp_horner), [max] "t"(max), [end] "r"(end),
          [zero] "t"(0.0f)
        : EXP_CLOBBERS);
    p = x;
    if (n >= 4u) /* four divisions a load and a store (volatile: p is not read after) */
        __asm__ volatile("1:\n\t"
                         "vldmia %[p], {s0-s3}\n\t"
                         "vdiv.f32 s0, s0, %[sum]\n\t"
                         "vdiv.f32 s1, s1, %[sum]\n\t"
                         "vdiv.f32 s2, s2, %[sum]\n\t"
                         "vdiv.f32 s3, s3, %[sum]\n\t"
                         "vstmia %[p]!, {s0-s3}\n\t"
                         "cmp %[p], %[end4]\n\t"
                         "bne 1b\n\t"
                         : [p] "+r"(p)
                         : [sum] "t"(sum), [end4] "r"(x + n / 4u * 4u)
                         : "s0", "s1", "s2", "s3", "cc", "memory");
    for (i = n / 4u * 4u; i < n; i++)
        x[i] /= sum;
}

/* The reference's rotation of each head's pairs (x0, x1) by the position's angles:
 * x0 * cos - x1 * sin (two products, then the difference: a VMLS would negate a NaN
 * product's sign) and x0 * sin + x1 * cos (VMLA: the product rounded, then added to
 * the first), one pair of angles at a time for every head. */
void mote_dsp_rope_apply(float *x, const float *cos_t, const float *sin_t, uint32_t n_heads,
                         uint32_t head_dim)
{
    float *const end = x + (size_t)n_heads * head_dim;
    uint32_t i;
    for (i = 0; i < head_dim / 2u; i++) {
        const float c = cos_t[i], s = sin_t[i];
        float *v;
        for (v = x + 2u * i; v < end; v += head_dim)
            __asm__("vldmia %[v], {s0, s1}\n\t"
                    "vmul.f32 s2, s0, %[c]\n\t"
                    "vmul.f32 s3, s1, %[s]\n\t"
                    "vsub.f32 s2, s2, s3\n\t"
                    "vmul.f32 s3, s0, %[s]\n\t"
                    "vmla.f32 s3, s1, %[c]\n\t"
                    "vstmia %[v], {s2, s3}\n\t"
                    :
                    : [v] "r"(v), [c] "t"(c), [s] "t"(s)
                    : "s0", "s1", "s2", "s3", "memory");
    }
}

/* The reference's RMSNorm: the squares summed in order (VMLA: each product rounded,
 * then added), then out = (x * inv) * w, four values a load and a store. */
void mote_dsp_rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps)
{
    const float *p = x;
    const float *const end4 = x + (n & ~3u);
    float ss = 0.0f, inv;
    uint32_t i;
    if (p < end4)
        __asm__("1:\n\t"
                "vldmia %[p]!, {s0-s3}\n\t"
                "vmla.f32 %[ss], s0, s0\n\t"
                "vmla.f32 %[ss], s1, s1\n\t"
                "vmla.f32 %[ss], s2, s2\n\t"
                "vmla.f32 %[ss], s3, s3\n\t"
                "cmp %[p], %[end4]\n\t"
                "bne 1b\n\t"
                : [p] "+r"(p), [ss] "+t"(ss)
                : [end4] "r"(end4)
                : "s0", "s1", "s2", "s3", "cc", "memory");
    for (i = n & ~3u; i < n; i++)
        ss += x[i] * x[i];
    inv = 1.0f / sqrtf(ss / (float)n + eps);
    p = x;
    if (p < end4) {
        float *o = out;
        const float *wp = w;
        __asm__ volatile("1:\n\t"
                         "vldmia %[p]!, {s0-s3}\n\t"
                         "vldmia %[w]!, {s4-s7}\n\t"
                         "vmul.f32 s0, s0, %[inv]\n\t"
                         "vmul.f32 s1, s1, %[inv]\n\t"
                         "vmul.f32 s2, s2, %[inv]\n\t"
                         "vmul.f32 s3, s3, %[inv]\n\t"
                         "vmul.f32 s0, s0, s4\n\t"
                         "vmul.f32 s1, s1, s5\n\t"
                         "vmul.f32 s2, s2, s6\n\t"
                         "vmul.f32 s3, s3, s7\n\t"
                         "vstmia %[o]!, {s0-s3}\n\t"
                         "cmp %[p], %[end4]\n\t"
                         "bne 1b\n\t"
                         : [p] "+r"(p), [w] "+r"(wp), [o] "+r"(o)
                         : [end4] "r"(end4), [inv] "t"(inv)
                         : "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "cc", "memory");
    }
    for (i = n & ~3u; i < n; i++)
        out[i] = x[i] * inv * w[i];
}

/* h = h / (1 + exp(-h)), the reference's exp and order, then `times_u` (empty, or h *= u):
 * silu_mul, and SiLU alone for CATS, whose bits times u are silu_mul's. */
#define SILU_LOOP(times_u)                                                                 \
    __asm__ volatile(                                                                      \
        "vldmia %[c], {s16-s22}\n\t"                                                       \
        "1:\n\t"                                                                           \
        "vldr s10, [%[h]]\n\t"                                                             \
        "vneg.f32 s0, s10\n\t"                                                             \
        "vcmp.f32 s0, s21\n\t"                                                             \
        "vmrs APSR_nzcv, fpscr\n\t"                                                        \
        "blt 2f\n\t" /* below -87, or NaN (unordered) */                                   \
        "vcmp.f32 s0, s22\n\t"                                                             \
        "vmrs APSR_nzcv, fpscr\n\t"                                                        \
        "bgt 5f\n\t" /* above 88 */                                                        \
        EXP_S0                                                                             \
        "3:\n\t"                                                                           \
        "vadd.f32 s0, %[one], s0\n\t"                                                      \
        "vdiv.f32 s10, s10, s0\n\t" times_u                                                 \
        "vstmia %[h]!, {s10}\n\t"                                                          \
        "cmp %[h], %[end]\n\t"                                                             \
        "bne 1b\n\t"                                                                       \
        "b 4f\n\t"                                                                         \
        EXP_BELOW_RANGE                                                                    \
        "5:\n\t"                                                                           \
        "vmov.f32 s0, %[inf]\n\t"                                                          \
        "b 3b\n\t"                                                                         \
        "4:\n\t"                                                                           \
        : [h] "+r"(h), [u] "+r"(u), [bits] "=&r"(bits), [pb] "=&r"(pb)                     \
        : [c] "r"(exp_constants), [k] "r"(exp_horner), [end] "r"(end), [zero] "t"(0.0f),   \
          [one] "t"(1.0f), [inf] "t"(HUGE_VALF)                                            \
        : EXP_CLOBBERS, "s10", "s11")

void mote_dsp_silu_mul(float *h, const float *u, uint32_t n)
{
    const float *const end = h + n;
    uint32_t bits, pb;
    if (n == 0u)
        return;
    SILU_LOOP("vldmia %[u]!, {s11}\n\t"
              "vmul.f32 s10, s10, s11\n\t");
}

void mote_dsp_silu(float *h, uint32_t n)
{
    const float *const end = h + n, *u = h; /* u: an operand the loop does not use */
    uint32_t bits, pb;
    if (n == 0u)
        return;
    SILU_LOOP("");
}
