/* kernels_dsp.h - the Cortex-M DSP kernel set (kernels_dsp.c): Cortex-M4, M7, M33 and
 * any core with the DSP extension and a single-precision FPU. Included by kernels.h
 * when built with -DMOTE_KERNELS=dsp, and by kernels_mve.h (the mve set builds on
 * this one: an op it defines first stays its own); the ops not named here are the
 * reference. */
#ifndef MOTE_KERNELS_DSP_H
#define MOTE_KERNELS_DSP_H

void mote_dsp_quantize_act(int8_t *xq, float *xs, const float *x, uint32_t n, uint32_t group);
void mote_dsp_quantize_kv(int8_t *q, uint16_t *scale, const float *x, uint32_t n);
void mote_dsp_matvec(float *y, const mote_tensor *w, const int8_t *xq, const float *xs,
                     uint32_t group, uint32_t row_begin, uint32_t row_end);
void mote_dsp_matmat(float *y, uint32_t y_stride, const mote_tensor *w, const int8_t *xq,
                     const float *xs, uint32_t n_pos, uint32_t group, uint32_t row_begin,
                     uint32_t row_end);
void mote_dsp_matvec_cols(float *y, const mote_tensor *w, const int8_t *xq, const float *xs,
                          uint32_t group, uint32_t row_begin, uint32_t row_end);
void mote_dsp_matvec_bundled_rows(float *u, const mote_tensor *w_up, const float *gate,
                                  const int8_t *xq, const float *xs, uint32_t group,
                                  uint32_t begin, uint32_t end);
void mote_dsp_attn_scores(float *const att[], const float *q, uint32_t n_q, const int8_t *kq,
                          const uint16_t *ks, uint32_t stride, uint32_t head_dim, uint32_t n_pos,
                          float sqrt_hd);
void mote_dsp_attn_mix(float *out, const float *const att[], uint32_t n_q, const int8_t *vq,
                       const uint16_t *vs, uint32_t stride, uint32_t head_dim, uint32_t n_pos);
void mote_dsp_softmax(float *x, uint32_t n);
void mote_dsp_silu_mul(float *h, const float *u, uint32_t n);
void mote_dsp_silu(float *h, uint32_t n);
void mote_dsp_rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps);
void mote_dsp_rope_apply(float *x, const float *cos_t, const float *sin_t, uint32_t n_heads,
                         uint32_t head_dim);

#ifndef mote_k_quantize_act
#define mote_k_quantize_act mote_dsp_quantize_act
#endif
#ifndef mote_k_quantize_kv
#define mote_k_quantize_kv mote_dsp_quantize_kv
#endif
#ifndef mote_k_matvec
#define mote_k_matvec mote_dsp_matvec
#endif
#ifndef mote_k_matmat
#define mote_k_matmat mote_dsp_matmat
#endif
#ifndef mote_k_matvec_cols
#define mote_k_matvec_cols mote_dsp_matvec_cols
#endif
#ifndef mote_k_matvec_bundled_rows
#define mote_k_matvec_bundled_rows mote_dsp_matvec_bundled_rows
#endif
#ifndef mote_k_attn_scores
#define mote_k_attn_scores mote_dsp_attn_scores
#endif
#ifndef mote_k_attn_mix
#define mote_k_attn_mix mote_dsp_attn_mix
#endif
#ifndef mote_k_softmax
#define mote_k_softmax mote_dsp_softmax
#endif
#ifndef mote_k_rmsnorm
#define mote_k_rmsnorm mote_dsp_rmsnorm
#endif
#ifndef mote_k_rope_apply
#define mote_k_rope_apply mote_dsp_rope_apply
#endif
#ifndef mote_k_silu_mul
#define mote_k_silu_mul mote_dsp_silu_mul
#endif
#ifndef mote_k_silu
#define mote_k_silu mote_dsp_silu
#endif

#endif /* MOTE_KERNELS_DSP_H */
