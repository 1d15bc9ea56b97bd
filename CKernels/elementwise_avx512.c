// Elementwise kernels (ReLU, residual add), AVX-512: 16 floats per step, the last step masked.
// Same instructions' semantics as the AVX2 variants (vmaxps returns its second operand for NaN
// and for -0 vs +0), so results are bit-identical to the reference.
#include "ckernels.h"
#include "simd_avx512.h"

// x: [n] -> y = max(x, 0); y may alias x
BS_AVX512 void bs_relu_avx512(const float *x, size_t n, float *y) {
  const __m512 z = _mm512_setzero_ps();
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = bs_avx512_mask(n - i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_max_ps(_mm512_maskz_loadu_ps(m, x + i), z));
  }
}

// y, dy: [n] -> dx = y > 0 ? dy : 0 (ordered compare: NaN -> 0); dx may alias dy
BS_AVX512 void bs_relu_backward_avx512(const float *y, const float *dy, size_t n, float *dx) {
  const __m512 z = _mm512_setzero_ps();
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = bs_avx512_mask(n - i);
    const __mmask16 pos = _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(m, y + i), z, _CMP_GT_OQ);
    _mm512_mask_storeu_ps(dx + i, m, _mm512_maskz_loadu_ps(pos & m, dy + i));
  }
}

// a, b: [n] -> y = max(a + b, 0); y may alias a or b
BS_AVX512 void bs_add_relu_avx512(const float *a, const float *b, size_t n, float *y) {
  const __m512 z = _mm512_setzero_ps();
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = bs_avx512_mask(n - i);
    const __m512 s = _mm512_add_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
    _mm512_mask_storeu_ps(y + i, m, _mm512_max_ps(s, z));
  }
}

// a, b: [n] -> y = a + b; y may alias a or b
BS_AVX512 void bs_add_avx512(const float *a, const float *b, size_t n, float *y) {
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = bs_avx512_mask(n - i);
    _mm512_mask_storeu_ps(y + i, m,
                          _mm512_add_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i)));
  }
}
