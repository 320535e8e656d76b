/* kernels_cm.h - the plain-C Cortex-M kernel set (kernels_cm.c), for cores without the
 * DSP extension (M0/M0+, M3), blocked for cores that run one instruction after another.
 * Included by kernels.h when built with -DMOTE_KERNELS=cm; the ops not named here are
 * the reference. */
#ifndef MOTE_KERNELS_CM_H
#define MOTE_KERNELS_CM_H

void mote_cm_matvec(float *y, const mote_tensor *w, const int8_t *xq, const float *xs,
                    uint32_t group, uint32_t row_begin, uint32_t row_end);
void mote_cm_matmat(float *y, uint32_t y_stride, const mote_tensor *w, const int8_t *xq,
                    const float *xs, uint32_t n_pos, uint32_t group, uint32_t row_begin,
                    uint32_t row_end);
void mote_cm_matvec_cols(float *y, const mote_tensor *w, const int8_t *xq, const float *xs,
                         uint32_t group, uint32_t row_begin, uint32_t row_end);
void mote_cm_matvec_bundled_rows(float *u, const mote_tensor *w_up, const float *gate,
                                 const int8_t *xq, const float *xs, uint32_t group,
                                 uint32_t begin, uint32_t end);
void mote_cm_attn_scores(float *const att[], const float *q, uint32_t n_q, const int8_t *kq,
                         const uint16_t *ks, uint32_t stride, uint32_t head_dim, uint32_t n_pos,
                         float sqrt_hd);
void mote_cm_attn_mix(float *out, const float *const att[], uint32_t n_q, const int8_t *vq,
                      const uint16_t *vs, uint32_t stride, uint32_t head_dim, uint32_t n_pos);

#define mote_k_matvec mote_cm_matvec
#define mote_k_matmat mote_cm_matmat
#define mote_k_matvec_cols mote_cm_matvec_cols
#define mote_k_matvec_bundled_rows mote_cm_matvec_bundled_rows
#define mote_k_attn_scores mote_cm_attn_scores
#define mote_k_attn_mix mote_cm_attn_mix

#endif /* MOTE_KERNELS_CM_H */
