// Private helpers for the *_avx2.c kernels. Everything here is compiled per function with
// target("avx2,fma") so the rest of the library stays baseline x86-64 and the dispatcher decides
// at run time whether these paths may execute.
#ifndef BLOCKSCOPE_SIMD_AVX2_H
#define BLOCKSCOPE_SIMD_AVX2_H
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#define BS_AVX2 __attribute__((target("avx2,fma")))
// Helpers are force-inlined so each caller gets them specialised on its constant arguments.
#define BS_AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma")))

// Lane mask with the first n (1..8) lanes set, for maskload on a channel tail. Only loads use
// masks: vmaskmovps stores are microcoded and very slow on AMD Zen, so tails that store are
// finished with scalar code instead.
static const int32_t bs_avx2_mask_src[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                             0,  0,  0,  0,  0,  0,  0,  0};
BS_AVX2_INLINE __m256i bs_avx2_tail_mask(int n) {
  return _mm256_loadu_si256((const __m256i *)(bs_avx2_mask_src + 8 - n));
}

// acc[0..8) += the 8 lanes of v, widened to double (exact: every float is a double).
BS_AVX2_INLINE void bs_avx2_add_to_doubles(double *acc, __m256 v) {
  const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
  const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
  _mm256_storeu_pd(acc, _mm256_add_pd(_mm256_loadu_pd(acc), lo));
  _mm256_storeu_pd(acc + 4, _mm256_add_pd(_mm256_loadu_pd(acc + 4), hi));
}

// acc[0..n) += the first n lanes of v (n in 1..8), widened to double.
BS_AVX2_INLINE void bs_avx2_add_to_doubles_n(double *acc, __m256 v, int n) {
  float t[8];
  _mm256_storeu_ps(t, v);
  for (int i = 0; i < n; i++) acc[i] += (double)t[i];
}
#endif
