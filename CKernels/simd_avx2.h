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
// In-register 8x8 transpose: r[q][p] -> r[p][q] (dots_avx2.c, transpose_avx2.c).
BS_AVX2_INLINE void bs_avx2_transpose8x8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}
#endif
