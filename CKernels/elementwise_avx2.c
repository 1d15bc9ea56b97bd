// Elementwise kernels (ReLU, residual add), AVX2. n is any length: 32 floats per iteration (four
// independent vectors keep both load ports and the store port busy), then 8 at a time, then a
// scalar remainder written exactly like the reference so every variant is bit-identical to it.
// In-place use (y == x, y == a, ...) is fine: each vector is loaded before it is stored.
#include "ckernels.h"
#include "simd_avx2.h"

// x: [n] -> y = max(x, 0). vmaxps returns its second operand when either is NaN and for
// (-0, +0), so max(x, 0) maps NaN and -0 to +0 exactly like the reference's x > 0 ? x : 0.
BS_AVX2 void bs_relu_avx2(const float *x, size_t n, float *y) {
  const __m256 z = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
    const __m256 c = _mm256_loadu_ps(x + i + 16), d = _mm256_loadu_ps(x + i + 24);
    _mm256_storeu_ps(y + i, _mm256_max_ps(a, z));
    _mm256_storeu_ps(y + i + 8, _mm256_max_ps(b, z));
    _mm256_storeu_ps(y + i + 16, _mm256_max_ps(c, z));
    _mm256_storeu_ps(y + i + 24, _mm256_max_ps(d, z));
  }
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_max_ps(_mm256_loadu_ps(x + i), z));
  for (; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

// y, dy: [n] -> dx = y > 0 ? dy : 0. The ordered compare is false for NaN, and AND with an
// all-zero mask gives +0, as in the reference.
BS_AVX2 void bs_relu_backward_avx2(const float *y, const float *dy, size_t n, float *dx) {
  const __m256 z = _mm256_setzero_ps();
#define BS_RELU_BWD(off)                                                                         \
  _mm256_storeu_ps(dx + i + (off),                                                               \
                   _mm256_and_ps(_mm256_cmp_ps(_mm256_loadu_ps(y + i + (off)), z, _CMP_GT_OQ),   \
                                 _mm256_loadu_ps(dy + i + (off))))
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    BS_RELU_BWD(0);
    BS_RELU_BWD(8);
    BS_RELU_BWD(16);
    BS_RELU_BWD(24);
  }
  for (; i + 8 <= n; i += 8) BS_RELU_BWD(0);
#undef BS_RELU_BWD
  for (; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

// a, b: [n] -> y = max(a + b, 0)
BS_AVX2 void bs_add_relu_avx2(const float *a, const float *b, size_t n, float *y) {
  const __m256 z = _mm256_setzero_ps();
#define BS_ADD_RELU(off)                                                                         \
  _mm256_storeu_ps(                                                                              \
      y + i + (off),                                                                             \
      _mm256_max_ps(_mm256_add_ps(_mm256_loadu_ps(a + i + (off)), _mm256_loadu_ps(b + i + (off))), \
                    z))
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    BS_ADD_RELU(0);
    BS_ADD_RELU(8);
    BS_ADD_RELU(16);
    BS_ADD_RELU(24);
  }
  for (; i + 8 <= n; i += 8) BS_ADD_RELU(0);
#undef BS_ADD_RELU
  for (; i < n; i++) {
    const float s = a[i] + b[i];
    y[i] = s > 0.0f ? s : 0.0f;
  }
}

// a, b: [n] -> y = a + b
BS_AVX2 void bs_add_avx2(const float *a, const float *b, size_t n, float *y) {
#define BS_ADD(off)                                                                              \
  _mm256_storeu_ps(y + i + (off),                                                                \
                   _mm256_add_ps(_mm256_loadu_ps(a + i + (off)), _mm256_loadu_ps(b + i + (off))))
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    BS_ADD(0);
    BS_ADD(8);
    BS_ADD(16);
    BS_ADD(24);
  }
  for (; i + 8 <= n; i += 8) BS_ADD(0);
#undef BS_ADD
  for (; i < n; i++) y[i] = a[i] + b[i];
}
