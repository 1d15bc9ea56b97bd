// Global average pooling, AVX2. Vectorised across channels only: every channel is still summed
// over p = 0..HW-1 in order and then multiplied by 1/HW, exactly the reference's operations,
// so the result is bit-identical to it. Independent chains come from 4 channel vectors at once.
#include "ckernels.h"
#include "simd_avx2.h"

// x: [N][HW][C] -> y: [N][C]
BS_AVX2 void bs_avgpool_avx2(const float *x, int N, int HW, int C, float *y) {
  const float inv = 1.0f / (float)HW;
  const __m256 vinv = _mm256_set1_ps(inv);
  for (int n = 0; n < N; n++) {
    const float *xn = x + (size_t)n * HW * C;
    float *yn = y + (size_t)n * C;
    int c = 0;
    for (; c + 32 <= C; c += 32) {
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (int p = 0; p < HW; p++) {
        const float *xp = xn + (size_t)p * C + c;
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(xp));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(xp + 8));
        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(xp + 16));
        a3 = _mm256_add_ps(a3, _mm256_loadu_ps(xp + 24));
      }
      _mm256_storeu_ps(yn + c, _mm256_mul_ps(a0, vinv));
      _mm256_storeu_ps(yn + c + 8, _mm256_mul_ps(a1, vinv));
      _mm256_storeu_ps(yn + c + 16, _mm256_mul_ps(a2, vinv));
      _mm256_storeu_ps(yn + c + 24, _mm256_mul_ps(a3, vinv));
    }
    for (; c + 8 <= C; c += 8) {
      __m256 a0 = _mm256_setzero_ps();
      for (int p = 0; p < HW; p++) a0 = _mm256_add_ps(a0, _mm256_loadu_ps(xn + (size_t)p * C + c));
      _mm256_storeu_ps(yn + c, _mm256_mul_ps(a0, vinv));
    }
    for (; c < C; c++) {
      float s = 0.0f;
      for (int p = 0; p < HW; p++) s += xn[(size_t)p * C + c];
      yn[c] = s * inv;
    }
  }
}

// dy: [N][C] -> dx: [N][HW][C] = dy / HW (multiplied by 1/HW, as in the reference)
BS_AVX2 void bs_avgpool_backward_avx2(const float *dy, int N, int HW, int C, float *dx) {
  const float inv = 1.0f / (float)HW;
  const __m256 vinv = _mm256_set1_ps(inv);
  for (int n = 0; n < N; n++) {
    const float *g = dy + (size_t)n * C;
    float *d = dx + (size_t)n * HW * C;
    for (int p = 0; p < HW; p++, d += C) {
      int c = 0;
      for (; c + 8 <= C; c += 8) _mm256_storeu_ps(d + c, _mm256_mul_ps(_mm256_loadu_ps(g + c), vinv));
      for (; c < C; c++) d[c] = g[c] * inv;
    }
  }
}
