// Global average pooling, AVX-512: vectorised across 16 channels (last group masked); each
// channel is summed over p in order and scaled by 1/HW as in the reference: bit-identical.
#include "ckernels.h"
#include "simd_avx512.h"

// x: [N][HW][C] -> y: [N][C]
BS_AVX512 void bs_avgpool_avx512(const float *x, int N, int HW, int C, float *y) {
  const __m512 vinv = _mm512_set1_ps(1.0f / (float)HW);
  for (int n = 0; n < N; n++) {
    const float *xn = x + (size_t)n * HW * C;
    for (int c = 0; c < C; c += 16) {
      const __mmask16 m = bs_avx512_mask((size_t)(C - c));
      __m512 acc = _mm512_setzero_ps();
      for (int p = 0; p < HW; p++)
        acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, xn + (size_t)p * C + c));
      _mm512_mask_storeu_ps(y + (size_t)n * C + c, m, _mm512_mul_ps(acc, vinv));
    }
  }
}
