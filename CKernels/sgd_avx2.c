// SGD with momentum and L2 weight decay (PyTorch semantics), AVX2/FMA.
// Each of the three updates is one FMA, so results differ from the reference (separate
// multiply and add) by rounding only: at most a few ulps of the terms involved.
#include "ckernels.h"
#include "simd_avx2.h"

// w, v, g: [n]; g' = g + wd*w; v = momentum*v + g'; w -= lr*v
BS_AVX2 void bs_sgd_momentum_avx2(float *w, float *v, const float *g, size_t n, float lr,
                                  float momentum, float wd) {
  const __m256 vlr = _mm256_set1_ps(lr), vm = _mm256_set1_ps(momentum), vwd = _mm256_set1_ps(wd);
  size_t i = 0;
  // Two vectors per iteration: the three FMAs of one element form a dependent chain, so a
  // second independent chain hides their latency.
  for (; i + 16 <= n; i += 16) {
    __m256 w0 = _mm256_loadu_ps(w + i), w1 = _mm256_loadu_ps(w + i + 8);
    const __m256 g0 = _mm256_fmadd_ps(vwd, w0, _mm256_loadu_ps(g + i));
    const __m256 g1 = _mm256_fmadd_ps(vwd, w1, _mm256_loadu_ps(g + i + 8));
    const __m256 v0 = _mm256_fmadd_ps(vm, _mm256_loadu_ps(v + i), g0);
    const __m256 v1 = _mm256_fmadd_ps(vm, _mm256_loadu_ps(v + i + 8), g1);
    w0 = _mm256_fnmadd_ps(vlr, v0, w0);
    w1 = _mm256_fnmadd_ps(vlr, v1, w1);
    _mm256_storeu_ps(v + i, v0);
    _mm256_storeu_ps(v + i + 8, v1);
    _mm256_storeu_ps(w + i, w0);
    _mm256_storeu_ps(w + i + 8, w1);
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 w0 = _mm256_loadu_ps(w + i);
    const __m256 g0 = _mm256_fmadd_ps(vwd, w0, _mm256_loadu_ps(g + i));
    const __m256 v0 = _mm256_fmadd_ps(vm, _mm256_loadu_ps(v + i), g0);
    _mm256_storeu_ps(v + i, v0);
    _mm256_storeu_ps(w + i, _mm256_fnmadd_ps(vlr, v0, w0));
  }
  for (; i < n; i++) {
    const float gi = g[i] + wd * w[i];
    v[i] = momentum * v[i] + gi;
    w[i] -= lr * v[i];
  }
}
