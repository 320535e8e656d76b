/* kernels_x86.h - the x86 kernel set (kernels_x86.c): AVX2 + F16C, with VNNI and
 * AVX-512 variants chosen by the compiler's feature macros. Included by kernels.h
 * when built with -DMOTE_KERNELS=x86; the ops not named here are the reference. */
#ifndef MOTE_KERNELS_X86_H
#define MOTE_KERNELS_X86_H

void mote_x86_quantize_act(int8_t *xq, float *xs, const float *x, uint32_t n, uint32_t group);
void mote_x86_quantize_kv(int8_t *q, uint16_t *scale, const float *x, uint32_t n);
void mote_x86_matvec(float *y, const mote_tensor *w, const int8_t *xq, const float *xs,
                     uint32_t group, uint32_t row_begin, uint32_t row_end);
void mote_x86_matmat(float *y, uint32_t y_stride, const mote_tensor *w, const int8_t *xq,
                     const float *xs, uint32_t n_pos, uint32_t group, uint32_t row_begin,
                     uint32_t row_end);
void mote_x86_attn_scores(float *const att[], const float *q, uint32_t n_q, const int8_t *kq,
                          const uint16_t *ks, uint32_t stride, uint32_t head_dim, uint32_t n_pos,
                          float sqrt_hd);
void mote_x86_attn_mix(float *out, const float *const att[], uint32_t n_q, const int8_t *vq,
                       const uint16_t *vs, uint32_t stride, uint32_t head_dim, uint32_t n_pos);
void mote_x86_rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps);
void mote_x86_softmax(float *x, uint32_t n);
int32_t mote_x86_argmax(const float *x, uint32_t n);
void mote_x86_silu_mul(float *h, const float *u, uint32_t n);
void mote_x86_silu(float *h, uint32_t n);
void mote_x86_matvec_cols(float *y, const mote_tensor *w, const int8_t *xq, const float *xs,
                          uint32_t group, uint32_t row_begin, uint32_t row_end);
void mote_x86_matvec_bundled_rows(float *u, const mote_tensor *w_up, const float *gate,
                                  const int8_t *xq, const float *xs, uint32_t group,
                                  uint32_t begin, uint32_t end);
void mote_x86_count_codes(uint32_t *kept, uint32_t *active, const int8_t *xq, uint32_t n,
                          uint32_t group);
uint32_t mote_x86_drop_small(float *v, uint32_t n, float threshold);
void mote_x86_gate_mul(float *h, const float *u, uint32_t n);

#define mote_k_quantize_act mote_x86_quantize_act
#define mote_k_quantize_kv mote_x86_quantize_kv
#define mote_k_matvec mote_x86_matvec
#define mote_k_matmat mote_x86_matmat
#define mote_k_attn_scores mote_x86_attn_scores
#define mote_k_attn_mix mote_x86_attn_mix
#define mote_k_rmsnorm mote_x86_rmsnorm
#define mote_k_softmax mote_x86_softmax
#define mote_k_argmax mote_x86_argmax
#define mote_k_silu_mul mote_x86_silu_mul
#define mote_k_silu mote_x86_silu
#define mote_k_matvec_cols mote_x86_matvec_cols
#define mote_k_matvec_bundled_rows mote_x86_matvec_bundled_rows
#define mote_k_count_codes mote_x86_count_codes
#define mote_k_drop_small mote_x86_drop_small
#define mote_k_gate_mul mote_x86_gate_mul

#endif /* MOTE_KERNELS_X86_H */
