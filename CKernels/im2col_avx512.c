// im2col / col2im, AVX-512: the reference's loops with each run of C floats moved 16 at a time
// (last group masked). Pure data movement / one add per element in the reference's order, so
// bit-identical to it. With C = 16, 32, 64 every run is whole vectors.
#include "ckernels.h"
#include "simd_avx512.h"

// x: [H][W][C] -> col: [OH*OW][KH*KW*C]
BS_AVX512 void bs_im2col_avx512(const float *x, int H, int W, int C, int KH, int KW, int stride,
                                int pad, float *col) {
  const int OH = (H + 2 * pad - KH) / stride + 1, OW = (W + 2 * pad - KW) / stride + 1;
  const __m512 z = _mm512_setzero_ps();
  for (int oy = 0; oy < OH; oy++)
    for (int ox = 0; ox < OW; ox++) {
      float *dst = col + ((size_t)oy * OW + ox) * KH * KW * C;
      for (int ky = 0; ky < KH; ky++) {
        const int iy = oy * stride - pad + ky;
        for (int kx = 0; kx < KW; kx++, dst += C) {
          const int ix = ox * stride - pad + kx;
          if (iy < 0 || iy >= H || ix < 0 || ix >= W) {
            for (int c = 0; c < C; c += 16)
              _mm512_mask_storeu_ps(dst + c, bs_avx512_mask((size_t)(C - c)), z);
          } else {
            const float *src = x + ((size_t)iy * W + ix) * C;
            for (int c = 0; c < C; c += 16) {
              const __mmask16 m = bs_avx512_mask((size_t)(C - c));
              _mm512_mask_storeu_ps(dst + c, m, _mm512_maskz_loadu_ps(m, src + c));
            }
          }
        }
      }
    }
}

// col: [OH*OW][KH*KW*C] -> dx: [H][W][C] (+=)
BS_AVX512 void bs_col2im_avx512(const float *col, int H, int W, int C, int KH, int KW, int stride,
                                int pad, float *dx) {
  const int OH = (H + 2 * pad - KH) / stride + 1, OW = (W + 2 * pad - KW) / stride + 1;
  for (int oy = 0; oy < OH; oy++)
    for (int ox = 0; ox < OW; ox++) {
      const float *src = col + ((size_t)oy * OW + ox) * KH * KW * C;
      for (int ky = 0; ky < KH; ky++) {
        const int iy = oy * stride - pad + ky;
        for (int kx = 0; kx < KW; kx++, src += C) {
          const int ix = ox * stride - pad + kx;
          if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
          float *dst = dx + ((size_t)iy * W + ix) * C;
          for (int c = 0; c < C; c += 16) {
            const __mmask16 m = bs_avx512_mask((size_t)(C - c));
            const __m512 s = _mm512_add_ps(_mm512_maskz_loadu_ps(m, dst + c),
                                           _mm512_maskz_loadu_ps(m, src + c));
            _mm512_mask_storeu_ps(dst + c, m, s);
          }
        }
      }
    }
}
