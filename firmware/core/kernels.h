/* kernels.h - the numeric kernels of the forward pass (docs/blob-format.md,
 * "Numerics"). Every kernel has a reference version, mote_ref_<op> (kernels_ref.c,
 * plain C99, always compiled: the oracle). A kernel set (kernels_<set>.c, built with
 * -DMOTE_KERNELS=<set>, firmware/core/sources.mk) overrides the ops it implements:
 * its header kernels_<set>.h declares mote_<set>_<op> and defines mote_k_<op> as
 * that name; the table at the end of this file maps every other mote_k_<op> to
 * mote_ref_<op>. The forward pass calls only mote_k_* names. Output first, sizes
 * last. */
#ifndef MOTE_KERNELS_H
#define MOTE_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mote.h"

/* ---------------------------------------------------------------- helpers */

/* IEEE binary16 <-> binary32: exact widening; narrowing rounds to nearest even,
 * with subnormals, infinities and NaN (quieted) handled. */
uint16_t mote_f32_to_f16(float f);
static inline float mote_f16_to_f32(uint16_t h)
{
    /* Exponent and mantissa moved to their binary32 places read as the value times
     * 2^-112, subnormals included (the exponent biases are 15 and 127): one exact
     * multiplication by 2^112 fixes that, with no branch for zero and subnormals. The
     * matvecs convert one scale per row and group, so this is kept short, and inline
     * here for every kernel set. */
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t magnitude = (uint32_t)(h & 0x7FFFu) << 13;
    uint32_t bits;
    float f;
    if (magnitude >= 0x0F800000u) {
        bits = sign | 0x7F800000u | magnitude; /* inf, NaN keeps its payload */
        memcpy(&f, &bits, sizeof f);
        return f;
    }
    bits = sign | magnitude;
    memcpy(&f, &bits, sizeof f);
    return f * 0x1p112f;
}

/* exp from IEEE float operations only: the same bits on every platform and in the
 * reference (host/mote/reference/mathf.py, expf_mote). */
float mote_expf(float x);

/* A q4 code: a 4-bit two's-complement nibble. The high one is the byte as int8 with
 * its low nibble cleared, divided by 16 (exact): written so, GCC makes each of the two
 * one signed bit-field extract on Arm (sbfx) instead of three instructions. */
static inline int32_t mote_q4_low(uint8_t b) { return (int32_t)((b & 0x0Fu) ^ 0x08u) - 8; }
static inline int32_t mote_q4_high(uint8_t b) { return ((int32_t)(int8_t)b & ~15) / 16; }

/* Where column j's `rows` codes and input group g's `rows` f16 scales lie in an
 * input-major tensor or a bundled w_down (rows = dim, cols = hidden): column j of
 * group g at codes + g*group_stride + (j - g*group)*col_stride, the group's scales at
 * scales + g*group_stride_scales. */
typedef struct {
    const int8_t *codes;
    const uint8_t *scales;
    size_t group_stride, col_stride, group_stride_scales;
} mote_column_map;

static inline mote_column_map mote_columns_of(const mote_tensor *w, uint32_t group)
{
    mote_column_map c;
    if (w->layout == MOTE_LAYOUT_BUNDLED) {
        const size_t dim = w->rows, n_groups_dim = (w->rows + group - 1u) / group;
        const size_t bundle = 2u * dim + 2u * n_groups_dim; /* up row, up scales, down column */
        c.group_stride = 2u * dim + group * bundle;        /* down scales, then the bundles */
        c.col_stride = bundle;
        c.codes = (const int8_t *)w->data + 2u * dim + dim + 2u * n_groups_dim;
        c.scales = (const uint8_t *)w->data;
        c.group_stride_scales = c.group_stride;
    } else {
        c.group_stride = (size_t)group * w->rows;
        c.col_stride = w->rows;
        c.codes = (const int8_t *)w->data;
        c.scales = (const uint8_t *)w->scales;
        c.group_stride_scales = 2u * (size_t)w->rows;
    }
    return c;
}

/* ---------------------------------------------------------------- reference kernels */

/* Activation quantization of x (n,) per group: xq (n,) int8, xs (ceil(n/group),). */
void mote_ref_quantize_act(int8_t *xq, float *xs, const float *x, uint32_t n, uint32_t group);
/* One KV vector: q (n,) int8 and its f16 scale. */
void mote_ref_quantize_kv(int8_t *q, uint16_t *scale, const float *x, uint32_t n);

/* y[r] for r in [row_begin, row_end) of y = W x, W a q8, q4 or q4a tensor (cols == n),
 * x given as its quantized form (xq, xs) with the same group size:
 * y[r] = sum over groups g in order of (float)(int32 sum of w*xq) * (f16(ws[r,g]) * xs[g]);
 * a q4a group (codes 0..15, scale s and offset m) adds two terms to the sum, in order:
 * (float)(int32 sum of w*xq) * (f16(s) * xs[g]), then (float)asum[g] * (f16(m) * xs[g]),
 * asum[g] = mote_ref_act_sum over the group (the same for every row).
 * Optimized versions may read the 2 bytes before w->scales (inside the blob: the
 * tensor's data). */
void mote_ref_matvec(float *y, const mote_tensor *w, const int8_t *xq, const float *xs,
                     uint32_t group, uint32_t row_begin, uint32_t row_end);

/* The int32 sum of xq[begin..end): a q4a group's activation sum. */
int32_t mote_ref_act_sum(const int8_t *xq, uint32_t begin, uint32_t end);

/* Y = W X for n_pos positions at once (a prompt's prefill): for b < n_pos and r in
 * [row_begin, row_end), y[b * y_stride + r] is mote_ref_matvec's y[r] for position b's
 * activations, codes at xq + b * cols and scales at xs + b * ceil(cols / group), bit
 * for bit. Optimized versions read each weight once for several positions. */
void mote_ref_matmat(float *y, uint32_t y_stride, const mote_tensor *w, const int8_t *xq,
                     const float *xs, uint32_t n_pos, uint32_t group, uint32_t row_begin,
                     uint32_t row_end);

/* Sparse kernels (docs/blob-format.md, "Sparsity section"), q8 only. They skip the
 * weights of every zero activation code and the scales of every input group whose
 * codes are all zero, and give exactly mote_ref_matvec's floats: the integer group
 * sums are the same, and a skipped group's term would have been an exact +0 in the
 * same in-order float sum. */

/* y[r] for r in [row_begin, row_end) of y = W x, W stored input-major (layout
 * COLUMNS) or a bundled w_down (layout BUNDLED: w->data is the w_up/w_down region). */
void mote_ref_matvec_cols(float *y, const mote_tensor *w, const int8_t *xq, const float *xs,
                          uint32_t group, uint32_t row_begin, uint32_t row_end);
/* CATS up projection from a bundled w_up: u[j] = row j of W_up x for the neurons j in
 * [begin, end) with gate[j] != 0; u[j] is left untouched for the others. */
void mote_ref_matvec_bundled_rows(float *u, const mote_tensor *w_up, const float *gate,
                                  const int8_t *xq, const float *xs, uint32_t group,
                                  uint32_t begin, uint32_t end);

/* What a column kernel reads of its input xq (n,): *kept = the nonzero codes,
 * *active = the input groups holding one (the runtime's read counters). */
void mote_ref_count_codes(uint32_t *kept, uint32_t *active, const int8_t *xq, uint32_t n,
                          uint32_t group);
/* Dynamic sparsity at one point: v[i] = 0 where |v[i]| <= threshold (NaN kept).
 * Returns how many v[i] != 0 remain (NaN counted): CATS' kept neurons, which the
 * runtime's read counters need. A threshold below 0 drops nothing and only counts. */
uint32_t mote_ref_drop_small(float *v, uint32_t n, float threshold);
/* CATS' product of the kept neurons: h[i] = h[i] != 0 ? h[i] * u[i] : +0. A dropped
 * neuron's u[i] (left unset by mote_k_matvec_bundled_rows) never reaches h. */
void mote_ref_gate_mul(float *h, const float *u, uint32_t n);

/* Plain float y = W x for an f32 matrix (a tied classifier of an f32 embedding). */
void mote_ref_matvec_f32(float *y, const mote_tensor *w, const float *x, uint32_t row_begin,
                         uint32_t row_end);
/* x (cols,) = row `row` of an embedding tensor (q8, q4, q4a or f32), dequantized:
 * x[i] = (float)code * f16(s), for q4a (float)code * f16(s) + f16(m). */
void mote_ref_embedding_row(float *x, const mote_tensor *e, uint32_t row, uint32_t group);

/* Attention over positions 0..n_pos-1 of one layer's int8 cache for n_q query heads
 * (1 .. MOTE_ATTN_HEADS) that share one kv head, in the reference's order of float
 * operations (host/mote/reference/forward.py, attention), for each head h, its query at
 * q + h * head_dim:
 * scores: att[h][t] = ((sum_i q[h][i] * kq[t, i]) * f16(ks[t])) / sqrt_hd, i in order;
 * mix:    out[h * head_dim + i] = sum_t (att[h][t] * f16(vs[t])) * vq[t, i], t in order.
 * Row t of a cache starts at t * stride. A set may convert each key and value once for
 * all n_q heads. */
#define MOTE_ATTN_HEADS 2u
void mote_ref_attn_scores(float *const att[], const float *q, uint32_t n_q, const int8_t *kq,
                          const uint16_t *ks, uint32_t stride, uint32_t head_dim, uint32_t n_pos,
                          float sqrt_hd);
void mote_ref_attn_mix(float *out, const float *const att[], uint32_t n_q, const int8_t *vq,
                       const uint16_t *vs, uint32_t stride, uint32_t head_dim, uint32_t n_pos);

/* out = x * (1 / sqrtf(sum(x^2)/n + eps)) * w */
void mote_ref_rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps);
/* cos/sin (head_dim/2,) of pair i at `pos`: angle pos * theta^(-2i/head_dim),
 * computed in double and rounded. */
void mote_ref_rope_table(float *cos_out, float *sin_out, uint32_t pos, uint32_t head_dim,
                         float theta);
/* Rotate pairs (2i, 2i+1) of each head of x (n_heads * head_dim,). */
void mote_ref_rope_apply(float *x, const float *cos_t, const float *sin_t, uint32_t n_heads,
                         uint32_t head_dim);
/* In place: x = mote_expf(x - max) / sum, sum in index order. */
void mote_ref_softmax(float *x, uint32_t n);
/* Greedy sampling's pick: the first i (n >= 1) whose x[i] is greater than every earlier
 * x[best] (`x[i] > x[best]` in index order: ties go to the lowest index, a NaN is never
 * picked unless it is x[0], which then stays). */
int32_t mote_ref_argmax(const float *x, uint32_t n);
/* SwiGLU's gate in place: h = h / (1 + mote_expf(-h)) * u. */
void mote_ref_silu_mul(float *h, const float *u, uint32_t n);
/* SiLU alone in place, h = h / (1 + mote_expf(-h)): CATS drops on it before w_up runs
 * (silu_mul's first two operations, so the same bits after the multiply by u). */
void mote_ref_silu(float *h, uint32_t n);
/* ReGLU's gate in place: h = (h > 0 ? h : 0) * u. */
void mote_ref_relu_mul(float *h, const float *u, uint32_t n);

/* ---------------------------------------------------------------- dispatch */

/* The chosen set's header: -DMOTE_KERNELS=x86 includes "kernels_x86.h". */
#if defined(MOTE_KERNELS)
#define MOTE_KERNELS_STR_(x) #x
#define MOTE_KERNELS_STR(x) MOTE_KERNELS_STR_(x)
#define MOTE_KERNELS_HEADER_(set) MOTE_KERNELS_STR(kernels_##set.h)
#define MOTE_KERNELS_HEADER(set) MOTE_KERNELS_HEADER_(set)
#include MOTE_KERNELS_HEADER(MOTE_KERNELS)
#endif

/* Every op the set does not override is the reference. */
#ifndef mote_k_quantize_act
#define mote_k_quantize_act mote_ref_quantize_act
#endif
#ifndef mote_k_quantize_kv
#define mote_k_quantize_kv mote_ref_quantize_kv
#endif
#ifndef mote_k_matvec
#define mote_k_matvec mote_ref_matvec
#endif
#ifndef mote_k_matmat
#define mote_k_matmat mote_ref_matmat
#endif
#ifndef mote_k_matvec_cols
#define mote_k_matvec_cols mote_ref_matvec_cols
#endif
#ifndef mote_k_matvec_bundled_rows
#define mote_k_matvec_bundled_rows mote_ref_matvec_bundled_rows
#endif
#ifndef mote_k_count_codes
#define mote_k_count_codes mote_ref_count_codes
#endif
#ifndef mote_k_drop_small
#define mote_k_drop_small mote_ref_drop_small
#endif
#ifndef mote_k_gate_mul
#define mote_k_gate_mul mote_ref_gate_mul
#endif
#ifndef mote_k_matvec_f32
#define mote_k_matvec_f32 mote_ref_matvec_f32
#endif
#ifndef mote_k_embedding_row
#define mote_k_embedding_row mote_ref_embedding_row
#endif
#ifndef mote_k_attn_scores
#define mote_k_attn_scores mote_ref_attn_scores
#endif
#ifndef mote_k_attn_mix
#define mote_k_attn_mix mote_ref_attn_mix
#endif
#ifndef mote_k_rmsnorm
#define mote_k_rmsnorm mote_ref_rmsnorm
#endif
#ifndef mote_k_rope_table
#define mote_k_rope_table mote_ref_rope_table
#endif
#ifndef mote_k_rope_apply
#define mote_k_rope_apply mote_ref_rope_apply
#endif
#ifndef mote_k_softmax
#define mote_k_softmax mote_ref_softmax
#endif
#ifndef mote_k_argmax
#define mote_k_argmax mote_ref_argmax
#endif
#ifndef mote_k_silu_mul
#define mote_k_silu_mul mote_ref_silu_mul
#endif
#ifndef mote_k_silu
#define mote_k_silu mote_ref_silu
#endif
#ifndef mote_k_relu_mul
#define mote_k_relu_mul mote_ref_relu_mul
#endif

#endif /* MOTE_KERNELS_H */
