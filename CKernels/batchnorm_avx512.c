// Per-channel kernels behind batch norm, AVX-512: the reference's loops with the channel loop
// 16 lanes at a time (last group masked).
//
// The reductions accumulate in float over blocks of at most 64 rows (one chain per group of 16
// channels), then add the block sums into the caller's doubles. Error bound per channel, as
// for the AVX2 variant: a block's float sum of m <= 64 terms is within gamma_64 * sum|t| of
// exact (u = 2^-24, products rounded once inside the FMA, x - mean rounded once more), so
//   |error| <= 66 * 2^-24 * sum_r |t_r|   (~3.9e-6 relative to the sum of magnitudes),
// t_r = x, x^2, dy, dy*(x-mean). The tests allow 70 * 2^-24 * sum|t|.
#include "ckernels.h"
#include "simd_avx512.h"

#define BS_SUM_BLOCK 64

// acc[0..n) += the first n lanes of v, widened to double
BS_AVX512_INLINE void add_to_doubles(double *acc, __m512 v, int n) {
  float t[16];
  _mm512_storeu_ps(t, v);
  for (int i = 0; i < n; i++) acc[i] += (double)t[i];
}

// x: [rows][C] -> sum[c] += sum_r x, sumsq[c] += sum_r x^2
BS_AVX512 void bs_channel_sums_avx512(const float *x, size_t rows, int C, double *sum,
                                      double *sumsq) {
  for (size_t r0 = 0; r0 < rows; r0 += BS_SUM_BLOCK) {
    const size_t nr = rows - r0 < BS_SUM_BLOCK ? rows - r0 : BS_SUM_BLOCK;
    for (int c = 0; c < C; c += 16) {
      const int nc = C - c < 16 ? C - c : 16;
      const __mmask16 m = bs_avx512_mask((size_t)nc);
      __m512 s = _mm512_setzero_ps(), q = _mm512_setzero_ps();
      for (size_t r = r0; r < r0 + nr; r++) {
        const __m512 v = _mm512_maskz_loadu_ps(m, x + r * C + c);
        s = _mm512_add_ps(s, v);
        q = _mm512_fmadd_ps(v, v, q);
      }
      add_to_doubles(sum + c, s, nc);
      add_to_doubles(sumsq + c, q, nc);
    }
  }
}

// x: [rows][C] -> y = scale[c]*x + shift[c], optional ReLU (max(., 0): NaN -> 0); y may alias x
BS_AVX512 void bs_scale_shift_avx512(const float *x, size_t rows, int C, const float *scale,
                                     const float *shift, int relu, float *y) {
  const __m512 z = _mm512_setzero_ps();
  for (size_t r = 0; r < rows; r++)
    for (int c = 0; c < C; c += 16) {
      const __mmask16 m = bs_avx512_mask((size_t)(C - c));
      __m512 t = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, scale + c),
                                 _mm512_maskz_loadu_ps(m, x + r * C + c),
                                 _mm512_maskz_loadu_ps(m, shift + c));
      if (relu) t = _mm512_max_ps(t, z);
      _mm512_mask_storeu_ps(y + r * C + c, m, t);
    }
}

// dy, x: [rows][C] -> sum_dy[c] += sum dy, sum_dy_xc[c] += sum dy*(x-mean[c])
BS_AVX512 void bs_bn_backward_sums_avx512(const float *dy, const float *x, size_t rows, int C,
                                          const float *mean, double *sum_dy, double *sum_dy_xc) {
  for (size_t r0 = 0; r0 < rows; r0 += BS_SUM_BLOCK) {
    const size_t nr = rows - r0 < BS_SUM_BLOCK ? rows - r0 : BS_SUM_BLOCK;
    for (int c = 0; c < C; c += 16) {
      const int nc = C - c < 16 ? C - c : 16;
      const __mmask16 m = bs_avx512_mask((size_t)nc);
      const __m512 mu = _mm512_maskz_loadu_ps(m, mean + c);
      __m512 s = _mm512_setzero_ps(), q = _mm512_setzero_ps();
      for (size_t r = r0; r < r0 + nr; r++) {
        const __m512 g = _mm512_maskz_loadu_ps(m, dy + r * C + c);
        const __m512 xc = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + r * C + c), mu);
        s = _mm512_add_ps(s, g);
        q = _mm512_fmadd_ps(g, xc, q);
      }
      add_to_doubles(sum_dy + c, s, nc);
      add_to_doubles(sum_dy_xc + c, q, nc);
    }
  }
}

// dy, x: [rows][C] -> dx = k1[c]*dy + k2[c]*x + k3[c] as fma(k1, dy, fma(k2, x, k3));
// dx may alias dy
BS_AVX512 void bs_channel_axpby_avx512(const float *dy, const float *x, size_t rows, int C,
                                       const float *k1, const float *k2, const float *k3,
                                       float *dx) {
  for (size_t r = 0; r < rows; r++)
    for (int c = 0; c < C; c += 16) {
      const __mmask16 m = bs_avx512_mask((size_t)(C - c));
      const __m512 t = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, k2 + c),
                                       _mm512_maskz_loadu_ps(m, x + r * C + c),
                                       _mm512_maskz_loadu_ps(m, k3 + c));
      _mm512_mask_storeu_ps(dx + r * C + c, m,
                            _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, k1 + c),
                                            _mm512_maskz_loadu_ps(m, dy + r * C + c), t));
    }
}
