// Direct 3x3 convolution (pad 1, stride 1 or 2) of one NHWC image: the packed weight layout,
// its pack function (shared by every variant), the zero-padded copy the SIMD variants work
// on, and the scalar references of the forward kernel and of the weight-gradient kernel.
//
// Packed layout. Output channels are rounded up to Co8 = a multiple of 8 (the extra channels
// have zero weights) and cut into blocks of 16; the last block is 8 wide when Co8 % 16 == 8.
// Block b (channels [16b, 16b + bw)) starts at wp + 16*b*9*Ci and holds [ky][kx][ci][bw]:
//   wp[16*b*9*Ci + ((ky*3 + kx)*Ci + ci)*bw + j] = w[16*b + j][ky][kx][ci]   (0 past Co).
// For one block and one kernel row ky, the taps kx = 0, 1, 2 over all ci are 3*Ci consecutive
// rows of bw floats, matching the 3*Ci consecutive input floats x[iy][ix-1 .. ix+1][0 .. Ci).
#include "ckernels.h"
#include "conv_direct.h"
#include <string.h>

size_t bs_conv3x3_direct_packed_floats(int Ci, int Co) {
  return (size_t)((Co + 7) / 8 * 8) * 9 * (size_t)Ci;
}

// The padded image, then the AVX2 weight gradient's gather buffer (chunk * OW <= max(W, 128)
// pixels of 16 floats).
size_t bs_conv3x3_direct_scratch_floats(int H, int W, int Ci) {
  return bs_conv3x3_padded_floats(H, W, Ci) + (size_t)(W > 128 ? W : 128) * 16;
}

void bs_conv3x3_direct_pack(const float *w, int Ci, int Co, float *wp) {
  const int Co8 = (Co + 7) / 8 * 8;
  memset(wp, 0, bs_conv3x3_direct_packed_floats(Ci, Co) * sizeof(float));
  for (int b0 = 0; b0 < Co8; b0 += 16) {
    const int bw = Co8 - b0 < 16 ? Co8 - b0 : 16;
    float *blk = wp + (size_t)b0 * 9 * Ci;
    for (int j = 0; j < bw && b0 + j < Co; j++)
      for (int t = 0; t < 9; t++)
        for (int ci = 0; ci < Ci; ci++)
          blk[((size_t)t * Ci + ci) * bw + j] = w[((size_t)(b0 + j) * 9 + t) * Ci + ci];
  }
}

// x: [H][W][Ci], wp packed, bias: [Co] or NULL -> y: [OH][OW][Co]
// Each output is bias (or 0) plus the products in (ky, kx, ci) order, padding taps skipped.
void bs_conv3x3_direct_ref(const float *x, int H, int W, int Ci, int Co, int stride,
                           const float *wp, const float *bias, float *y, float *scratch) {
  (void)scratch;   // reads x in place
  const int OH = (H - 1) / stride + 1, OW = (W - 1) / stride + 1, Co8 = (Co + 7) / 8 * 8;
  for (int oy = 0; oy < OH; oy++)
    for (int ox = 0; ox < OW; ox++)
      for (int co = 0; co < Co; co++) {
        const int b0 = co / 16 * 16, bw = Co8 - b0 < 16 ? Co8 - b0 : 16;
        const float *blk = wp + (size_t)b0 * 9 * Ci + (co - b0);
        float acc = bias ? bias[co] : 0.0f;
        for (int ky = 0; ky < 3; ky++) {
          const int iy = oy * stride - 1 + ky;
          if (iy < 0 || iy >= H) continue;
          for (int kx = 0; kx < 3; kx++) {
            const int ix = ox * stride - 1 + kx;
            if (ix < 0 || ix >= W) continue;
            const float *xs = x + ((size_t)iy * W + ix) * Ci;
            const float *ws = blk + (size_t)(ky * 3 + kx) * Ci * bw;
            for (int ci = 0; ci < Ci; ci++) acc += xs[ci] * ws[(size_t)ci * bw];
          }
        }
        y[((size_t)oy * OW + ox) * Co + co] = acc;
      }
}

// x: [H][W][Ci] -> xp: [H+2][W+2][Ci] with a zero border (for the SIMD variants).
void bs_conv3x3_pad_copy(const float *x, int H, int W, int Ci, float *xp) {
  const size_t c = (size_t)Ci, prow = (size_t)(W + 2) * c;
  memset(xp, 0, (prow + c) * sizeof(float));   // top row and the left border of row 1
  for (int iy = 0; iy < H; iy++) {
    float *d = xp + (size_t)(iy + 1) * prow + c;
    memcpy(d, x + (size_t)iy * W * c, (size_t)W * c * sizeof(float));
    memset(d + (size_t)W * c, 0, 2 * c * sizeof(float));   // right border, next left border
  }
  memset(xp + (size_t)(H + 1) * prow + c, 0, (prow - c) * sizeof(float));   // bottom row
}

// x: [H][W][Ci], dy: [OH][OW][Co] -> dwt: [3][3][Ci][Co] (+=)
// Each dwt element adds its products in (oy, ox) order to its previous value, padding taps
// skipped.
void bs_conv3x3_direct_dw_ref(const float *x, const float *dy, int H, int W, int Ci, int Co,
                              int stride, float *dwt, float *scratch) {
  (void)scratch;
  const int OH = (H - 1) / stride + 1, OW = (W - 1) / stride + 1;
  for (int ky = 0; ky < 3; ky++)
    for (int kx = 0; kx < 3; kx++)
      for (int ci = 0; ci < Ci; ci++)
        for (int co = 0; co < Co; co++) {
          float *d = dwt + ((size_t)(ky * 3 + kx) * Ci + ci) * Co + co;
          float acc = *d;
          for (int oy = 0; oy < OH; oy++) {
            const int iy = oy * stride - 1 + ky;
            if (iy < 0 || iy >= H) continue;
            for (int ox = 0; ox < OW; ox++) {
              const int ix = ox * stride - 1 + kx;
              if (ix < 0 || ix >= W) continue;
              acc += dy[((size_t)oy * OW + ox) * Co + co] * x[((size_t)iy * W + ix) * Ci + ci];
            }
          }
          *d = acc;
        }
}
