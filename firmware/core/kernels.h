/* kernels.h - the numeric kernels of the forward pass (docs/blob-format.md,
 * "Numerics"). The reference set (mote_ref_*, kernels_ref.c) is plain C99, always
 * compiled, and is the oracle. An optimized set (mote_<isa>_*, kernels_<isa>.c) has
 * the same signatures; the build picks one set with MOTE_KERNELS_<ISA> and the
 * forward pass calls it through the mote_k_* names below. Output first, sizes last. */
#ifndef MOTE_KERNELS_H
#define MOTE_KERNELS_H

#include <stdint.h>

#include "mote.h"

/* ---------------------------------------------------------------- f16 */

/* IEEE binary16 <-> binary32: exact widening; narrowing rounds to nearest even,
 * with subnormals, infinities and NaN (quieted) handled. */
float mote_f16_to_f32(uint16_t h);
uint16_t mote_f32_to_f16(float f);

/* ---------------------------------------------------------------- reference set */

/* Activation quantization of x (n,) per group: xq (n,) int8, xs (ceil(n/group),). */
void mote_ref_quantize_act(int8_t *xq, float *xs, const float *x, uint32_t n, uint32_t group);

/* y[r] for r in [row_begin, row_end) of y = W x, W a q8 or q4 tensor (cols == n),
 * x given as its quantized form (xq, xs) with the same group size. Optimized versions
 * may read the 2 bytes before w->scales (inside the blob: the tensor's data). */
void mote_ref_matvec(float *y, const mote_tensor *w, const int8_t *xq, const float *xs,
                     uint32_t group, uint32_t row_begin, uint32_t row_end);

/* Plain float y = W x for an f32 matrix (a tied classifier of an f32 embedding). */
void mote_ref_matvec_f32(float *y, const mote_tensor *w, const float *x, uint32_t row_begin,
                         uint32_t row_end);

/* Attention of one head over positions 0..n_pos-1 of one layer's int8 cache, in the
 * reference's order of float operations (host/mote/reference.py, attention):
 * scores: att[t] = ((sum_i q[i] * kq[t, i]) * f16(ks[t])) / sqrt_hd, i in order;
 * mix:    out[i] = sum_t (att[t] * f16(vs[t])) * vq[t, i], t in order.
 * Row t of a cache starts at t * stride. */
void mote_ref_attn_scores(float *att, const float *q, const int8_t *kq, const uint16_t *ks,
                          uint32_t stride, uint32_t head_dim, uint32_t n_pos, float sqrt_hd);
void mote_ref_attn_mix(float *out, const float *att, const int8_t *vq, const uint16_t *vs,
                       uint32_t stride, uint32_t head_dim, uint32_t n_pos);

/* Sparse kernels (docs/blob-format.md, "Sparsity section"), q8 only, one version on
 * every port. They skip the weights of every zero activation code and the scales of
 * every input group whose codes are all zero, and give exactly mote_ref_matvec's
 * floats: the integer group sums are the same, and a skipped group's term would have
 * been an exact +0 in the same in-order float sum. */

/* y[r] for r in [row_begin, row_end) of y = W x, W stored input-major (layout
 * COLUMNS) or a bundled w_down (layout BUNDLED: w->data is the w_up/w_down region). */
void mote_ref_matvec_cols(float *y, const mote_tensor *w, const int8_t *xq, const float *xs,
                          uint32_t group, uint32_t row_begin, uint32_t row_end);
/* CATS up projection from a bundled w_up: u[j] = row j of W_up x for the neurons j in
 * [begin, end) with gate[j] != 0; u[j] is left untouched for the others. */
void mote_ref_matvec_bundled_rows(float *u, const mote_tensor *w_up, const float *gate,
                                  const int8_t *xq, const float *xs, uint32_t group,
                                  uint32_t begin, uint32_t end);

/* Cheap O(n) kernels: a reference version here; rmsnorm, softmax, silu_mul and
 * quantize_kv also have optimized twins (mote_k_* below). */

/* x (cols,) = row `row` of an embedding tensor (q8, q4 or f32), dequantized. */
void mote_embedding_row(float *x, const mote_tensor *e, uint32_t row, uint32_t group);
/* out = x * (1 / sqrtf(sum(x^2)/n + eps)) * w */
void mote_rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps);
/* cos/sin (head_dim/2,) of pair i at `pos`: angle pos * theta^(-2i/head_dim),
 * computed in double and rounded. */
void mote_rope_table(float *cos_out, float *sin_out, uint32_t pos, uint32_t head_dim,
                     float theta);
/* Rotate pairs (2i, 2i+1) of each head of x (n_heads * head_dim,). */
void mote_rope_apply(float *x, const float *cos_t, const float *sin_t, uint32_t n_heads,
                     uint32_t head_dim);
/* exp from IEEE float operations only: the same bits on every platform and in the
 * reference (host/mote/mathf.py, expf_mote). */
float mote_expf(float x);
/* In place: x = mote_expf(x - max) / sum, sum in index order. */
void mote_softmax(float *x, uint32_t n);
/* SwiGLU's gate in place: h = h / (1 + mote_expf(-h)) * u. */
void mote_silu_mul(float *h, const float *u, uint32_t n);
/* One KV vector: q (n,) int8 and its f16 scale. */
void mote_quantize_kv(int8_t *q, uint16_t *scale, const float *x, uint32_t n);

/* ---------------------------------------------------------------- optimized sets */

#if defined(MOTE_KERNELS_X86)
void mote_x86_quantize_act(int8_t *xq, float *xs, const float *x, uint32_t n, uint32_t group);
void mote_x86_matvec(float *y, const mote_tensor *w, const int8_t *xq, const float *xs,
                     uint32_t group, uint32_t row_begin, uint32_t row_end);
void mote_x86_attn_scores(float *att, const float *q, const int8_t *kq, const uint16_t *ks,
                          uint32_t stride, uint32_t head_dim, uint32_t n_pos, float sqrt_hd);
void mote_x86_attn_mix(float *out, const float *att, const int8_t *vq, const uint16_t *vs,
                       uint32_t stride, uint32_t head_dim, uint32_t n_pos);
void mote_x86_softmax(float *x, uint32_t n);
void mote_x86_silu_mul(float *h, const float *u, uint32_t n);
void mote_x86_rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps);
void mote_x86_quantize_kv(int8_t *q, uint16_t *scale, const float *x, uint32_t n);
#define MOTE_KERNELS_NAME "x86"
#define mote_k_softmax mote_x86_softmax
#define mote_k_silu_mul mote_x86_silu_mul
#define mote_k_rmsnorm mote_x86_rmsnorm
#define mote_k_quantize_kv mote_x86_quantize_kv
#define mote_k_quantize_act mote_x86_quantize_act
#define mote_k_matvec mote_x86_matvec
#define mote_k_attn_scores mote_x86_attn_scores
#define mote_k_attn_mix mote_x86_attn_mix
#else
#define MOTE_KERNELS_NAME "ref"
#define mote_k_softmax mote_softmax
#define mote_k_silu_mul mote_silu_mul
#define mote_k_rmsnorm mote_rmsnorm
#define mote_k_quantize_kv mote_quantize_kv
#define mote_k_quantize_act mote_ref_quantize_act
#define mote_k_matvec mote_ref_matvec
#define mote_k_attn_scores mote_ref_attn_scores
#define mote_k_attn_mix mote_ref_attn_mix
#endif

#endif /* MOTE_KERNELS_H */
