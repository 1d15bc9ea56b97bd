// im2col / col2im, scalar reference. NHWC: each (output pixel, kernel tap) copies a run of C
// contiguous floats, so even the reference is a sequence of memcpy-sized runs.
#include "ckernels.h"
#include <string.h>

// x: [H][W][C] -> col: [OH*OW][KH*KW*C]
void bs_im2col_ref(const float *x, int H, int W, int C, int KH, int KW, int stride, int pad,
                   float *col) {
  const int OH = (H + 2 * pad - KH) / stride + 1, OW = (W + 2 * pad - KW) / stride + 1;
  for (int oy = 0; oy < OH; oy++)
    for (int ox = 0; ox < OW; ox++) {
      float *dst = col + ((size_t)oy * OW + ox) * KH * KW * C;
      for (int ky = 0; ky < KH; ky++) {
        const int iy = oy * stride - pad + ky;
        for (int kx = 0; kx < KW; kx++, dst += C) {
          const int ix = ox * stride - pad + kx;
          if (iy < 0 || iy >= H || ix < 0 || ix >= W) {
            for (int c = 0; c < C; c++) dst[c] = 0.0f;
          } else {
            const float *src = x + ((size_t)iy * W + ix) * C;
            for (int c = 0; c < C; c++) dst[c] = src[c];
          }
        }
      }
    }
}

// col: [OH*OW][KH*KW*C] -> dx: [H][W][C] (+=)
void bs_col2im_ref(const float *col, int H, int W, int C, int KH, int KW, int stride, int pad,
                   float *dx) {
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
          for (int c = 0; c < C; c++) dst[c] += src[c];
        }
      }
    }
}
