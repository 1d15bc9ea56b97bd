// Compiles CKernels' *_avx512.c variants against SIMDe's portable implementation of the
// AVX-512 intrinsics, so that the AVX-512 code paths are checked against the references on
// CPUs that lack AVX-512 (like the CI machines). Every function is renamed with an _emulated
// suffix so that it links beside the real variants; the rename list below must name every
// AVX512 entry of kernels.inc (a test checks that no emulated entry is the real function).
#ifndef BLOCKSCOPE_AVX512_EMULATION_H
#define BLOCKSCOPE_AVX512_EMULATION_H

// Portable code only: SIMDe's native paths would pull in the compiler's own intrinsics
// headers, whose newer types clash with SIMDe 0.7's aliases.
#define SIMDE_NO_NATIVE
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>

#define BS_AVX512_EMULATED 1

#ifndef __mmask16
typedef simde__mmask16 __mmask16;
#endif

// Masked loads and stores that SIMDe 0.7 lacks, with the hardware's semantics: masked-out
// lanes are neither read nor written.
#ifndef _mm512_maskz_loadu_ps
static inline simde__m512 bs_emulated_maskz_loadu_ps(simde__mmask16 k, const void *p) {
  float t[16];
  for (int i = 0; i < 16; i++) t[i] = ((k >> i) & 1) ? ((const float *)p)[i] : 0.0f;
  return simde_mm512_loadu_ps(t);
}
#define _mm512_maskz_loadu_ps(k, p) bs_emulated_maskz_loadu_ps((k), (p))
#endif
#ifndef _mm512_mask_storeu_ps
static inline void bs_emulated_mask_storeu_ps(void *p, simde__mmask16 k, simde__m512 v) {
  float t[16];
  simde_mm512_storeu_ps(t, v);
  for (int i = 0; i < 16; i++)
    if ((k >> i) & 1) ((float *)p)[i] = t[i];
}
#define _mm512_mask_storeu_ps(p, k, v) bs_emulated_mask_storeu_ps((p), (k), (v))
#endif

#define bs_im2col_avx512 bs_im2col_avx512_emulated
#define bs_col2im_avx512 bs_col2im_avx512_emulated
#define bs_channel_sums_avx512 bs_channel_sums_avx512_emulated
#define bs_scale_shift_avx512 bs_scale_shift_avx512_emulated
#define bs_bn_backward_sums_avx512 bs_bn_backward_sums_avx512_emulated
#define bs_channel_axpby_avx512 bs_channel_axpby_avx512_emulated
#define bs_relu_avx512 bs_relu_avx512_emulated
#define bs_relu_backward_avx512 bs_relu_backward_avx512_emulated
#define bs_add_relu_avx512 bs_add_relu_avx512_emulated
#define bs_add_avx512 bs_add_avx512_emulated
#define bs_sgd_momentum_avx512 bs_sgd_momentum_avx512_emulated
#define bs_avgpool_avx512 bs_avgpool_avx512_emulated
#define bs_avgpool_backward_avx512 bs_avgpool_backward_avx512_emulated
#define bs_augment_avx512 bs_augment_avx512_emulated
#define bs_conv3x3_direct_avx512 bs_conv3x3_direct_avx512_emulated
#define bs_conv3x3_direct_dw_avx512 bs_conv3x3_direct_dw_avx512_emulated
#define bs_pack_upper_avx512 bs_pack_upper_avx512_emulated
#define bs_gram_sqdist_avx512 bs_gram_sqdist_avx512_emulated
#define bs_exp_scaled_avx512 bs_exp_scaled_avx512_emulated
#define bs_dots_acc_avx512 bs_dots_acc_avx512_emulated
#define bs_find_nonfinite_avx512 bs_find_nonfinite_avx512_emulated

#include "ckernels.h"
#endif
