/* kernels_mve.h - the Helium kernel set (kernels_mve.c): Cortex-M55 and any core with
 * MVE integer and floating point. Included by kernels.h when built with
 * -DMOTE_KERNELS=mve. It builds on the dsp set (these cores have the DSP extension;
 * firmware/core/sources.mk adds kernels_dsp.c): the ops not named here are the dsp
 * set's, or the reference's. */
#ifndef MOTE_KERNELS_MVE_H
#define MOTE_KERNELS_MVE_H

void mote_mve_matvec(float *y, const mote_tensor *w, const int8_t *xq, const float *xs,
                     uint32_t group, uint32_t row_begin, uint32_t row_end);

void mote_mve_matvec_cols(float *y, const mote_tensor *w, const int8_t *xq, const float *xs,
                          uint32_t group, uint32_t row_begin, uint32_t row_end);
void mote_mve_matvec_bundled_rows(float *u, const mote_tensor *w_up, const float *gate,
                                  const int8_t *xq, const float *xs, uint32_t group,
                                  uint32_t begin, uint32_t end);
void mote_mve_softmax(float *x, uint32_t n);
void mote_mve_silu_mul(float *h, const float *u, uint32_t n);

#define mote_k_matvec mote_mve_matvec
#define mote_k_matvec_cols mote_mve_matvec_cols
#define mote_k_matvec_bundled_rows mote_mve_matvec_bundled_rows
#define mote_k_softmax mote_mve_softmax
#define mote_k_silu_mul mote_mve_silu_mul

#include "kernels_dsp.h"

#endif /* MOTE_KERNELS_MVE_H */
