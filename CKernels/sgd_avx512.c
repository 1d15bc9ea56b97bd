// SGD with momentum and L2 weight decay (PyTorch semantics), AVX-512: one FMA per update, as
// in the AVX2 variant (rounding differs from the reference's separate multiply and add).
#include "ckernels.h"
#include "simd_avx512.h"

// w, v, g: [n]; g' = g + wd*w; v = momentum*v + g'; w -= lr*v
BS_AVX512 void bs_sgd_momentum_avx512(float *w, float *v, const float *g, size_t n, float lr,
                                      float momentum, float wd) {
  const __m512 vlr = _mm512_set1_ps(lr), vm = _mm512_set1_ps(momentum), vwd = _mm512_set1_ps(wd);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = bs_avx512_mask(n - i);
    const __m512 w0 = _mm512_maskz_loadu_ps(m, w + i);
    const __m512 g0 = _mm512_fmadd_ps(vwd, w0, _mm512_maskz_loadu_ps(m, g + i));
    const __m512 v0 = _mm512_fmadd_ps(vm, _mm512_maskz_loadu_ps(m, v + i), g0);
    _mm512_mask_storeu_ps(v + i, m, v0);
    _mm512_mask_storeu_ps(w + i, m, _mm512_fnmadd_ps(vlr, v0, w0));
  }
}
