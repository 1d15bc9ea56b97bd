// Direct 3x3 convolution (pad 1, stride 1 or 2) of one NHWC image, AVX-512. The AVX2
// variant's scheme (see conv_direct_avx2.c) with one 16-lane vector per block of 16 output
// channels instead of two 8-lane ones: zero-bordered copy of the input, then for each block
// and output row, tiles of P <= 12 consecutive pixels (split evenly) accumulated over the
// 3*Ci consecutive floats of each kernel row. A block narrower than 16 (the last one, when
// Co8 % 16 == 8) loads its weight rows under a mask; channels past Co are masked off at the
// store. BLOCKSCOPE_CONV=auto takes these variants for Ci <= 64, where they measured faster
// than im2col + sgemm inside whole networks (conv_ops.c, auto_direct; docs/PERFORMANCE.md,
// "Direct convolution thresholds").
#include "ckernels.h"
#include "conv_direct.h"
#include "simd_avx512.h"
#include <string.h>

#define PMAX 12

// P output pixels of one row times one block: see tile() in conv_direct_avx2.c. bw: the
// block's packed width (8 or 16), wmask its lanes; smask: the lanes to store.
BS_AVX512_INLINE void tile(const float *xp, size_t xstep, size_t xrow, int n, const float *wb,
                           int bw, __mmask16 wmask, __m512 b, float *y, size_t ystep,
                           __mmask16 smask, const int P) {
  __m512 acc[PMAX];
  for (int p = 0; p < P; p++) acc[p] = b;
  for (int ky = 0; ky < 3; ky++) {
    const float *xr = xp + ky * xrow;
    const float *wr = wb + (size_t)ky * n * bw;
    for (int j = 0; j < n; j++) {
      const __m512 w = _mm512_maskz_loadu_ps(wmask, wr + (size_t)j * bw);
      for (int p = 0; p < P; p++)
        acc[p] = _mm512_fmadd_ps(_mm512_set1_ps(xr[p * xstep + j]), w, acc[p]);
    }
  }
  for (int p = 0; p < P; p++) _mm512_mask_storeu_ps(y + p * ystep, smask, acc[p]);
}

#define TILE_CASE(P)                                                                             \
  case P: tile(xp, xstep, xrow, n, wb, bw, wmask, b, y, ystep, smask, P); break;

static BS_AVX512 void tile_p(int P, const float *xp, size_t xstep, size_t xrow, int n,
                             const float *wb, int bw, __mmask16 wmask, __m512 b, float *y,
                             size_t ystep, __mmask16 smask) {
  switch (P) {
    TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4) TILE_CASE(5) TILE_CASE(6)
    TILE_CASE(7) TILE_CASE(8) TILE_CASE(9) TILE_CASE(10) TILE_CASE(11) TILE_CASE(12)
  }
}
#undef TILE_CASE

// x: [H][W][Ci], wp packed (bs_conv3x3_direct_pack), bias: [Co] or NULL -> y: [OH][OW][Co]
BS_AVX512 void bs_conv3x3_direct_avx512(const float *x, int H, int W, int Ci, int Co,
                                        int stride, const float *wp, const float *bias,
                                        float *y, float *scratch) {
  const int OH = (H - 1) / stride + 1, OW = (W - 1) / stride + 1, Co8 = (Co + 7) / 8 * 8;
  const size_t xrow = (size_t)(W + 2) * Ci, xstep = (size_t)stride * Ci, ystep = (size_t)Co;
  float *xp = scratch;   // [H + 2][W + 2][Ci]
  bs_conv3x3_pad_copy(x, H, W, Ci, xp);
  const int n = 3 * Ci, ntiles = (OW + PMAX - 1) / PMAX;
  for (int c0 = 0; c0 < Co8; c0 += 16) {
    const int bw = Co8 - c0 < 16 ? Co8 - c0 : 16, nco = Co - c0 < 16 ? Co - c0 : 16;
    const __mmask16 wmask = bs_avx512_mask((size_t)bw), smask = bs_avx512_mask((size_t)nco);
    const __m512 b = bias ? _mm512_maskz_loadu_ps(smask, bias + c0) : _mm512_setzero_ps();
    const float *wb = wp + (size_t)c0 * 9 * Ci;
    for (int oy = 0; oy < OH; oy++) {
      const float *xr = xp + (size_t)oy * stride * xrow;
      float *yr = y + (size_t)oy * OW * ystep + c0;
      for (int t = 0; t < ntiles; t++) {
        const int ox = OW * t / ntiles, P = OW * (t + 1) / ntiles - ox;
        tile_p(P, xr + ox * xstep, xstep, xrow, n, wb, bw, wmask, b, yr + ox * ystep, ystep,
               smask);
      }
    }
  }
}

// Weight gradient, the AVX2 variant's scheme (conv_direct_avx2.c) with one 16-lane vector per
// block of 16 output channels: tiles of J <= 12 consecutive taps of one kernel row, accumulated
// over chunks of about 128 output pixels; channels past Co are masked off everywhere.
#define JMAX 12

BS_AVX512_INLINE void dw_tile(const float *xr, size_t xrstep, size_t xstep, const float *g,
                              int rows, int OW, size_t Co, float *d, __mmask16 m, const int J) {
  __m512 acc[JMAX];
  for (int jj = 0; jj < J; jj++) acc[jj] = _mm512_maskz_loadu_ps(m, d + jj * Co);
  for (int r = 0; r < rows; r++) {
    const float *xq = xr + r * xrstep, *gq = g + (size_t)r * OW * Co;
    for (int ox = 0; ox < OW; ox++, xq += xstep, gq += Co) {
      const __m512 gv = _mm512_maskz_loadu_ps(m, gq);
      for (int jj = 0; jj < J; jj++) acc[jj] = _mm512_fmadd_ps(_mm512_set1_ps(xq[jj]), gv, acc[jj]);
    }
  }
  for (int jj = 0; jj < J; jj++) _mm512_mask_storeu_ps(d + jj * Co, m, acc[jj]);
}

#define DW_CASE(J) case J: dw_tile(xr, xrstep, xstep, g, rows, OW, Co, d, m, J); break;

static BS_AVX512 void dw_j(int J, const float *xr, size_t xrstep, size_t xstep, const float *g,
                           int rows, int OW, size_t Co, float *d, __mmask16 m) {
  switch (J) {
    DW_CASE(1) DW_CASE(2) DW_CASE(3) DW_CASE(4) DW_CASE(5) DW_CASE(6)
    DW_CASE(7) DW_CASE(8) DW_CASE(9) DW_CASE(10) DW_CASE(11) DW_CASE(12)
  }
}
#undef DW_CASE

// x: [H][W][Ci], dy: [OH][OW][Co] -> dwt: [3][3][Ci][Co] (+=)
BS_AVX512 void bs_conv3x3_direct_dw_avx512(const float *x, const float *dy, int H, int W,
                                           int Ci, int Co, int stride, float *dwt, float *scratch) {
  const int OH = (H - 1) / stride + 1, OW = (W - 1) / stride + 1;
  const size_t xrow = (size_t)(W + 2) * Ci, xstep = (size_t)stride * Ci, Cs = (size_t)Co;
  float *xp = scratch;   // [H + 2][W + 2][Ci]
  bs_conv3x3_pad_copy(x, H, W, Ci, xp);
  const int n = 3 * Ci, chunk = OW >= 128 ? 1 : 128 / OW, ntiles = (n + JMAX - 1) / JMAX;
  for (int oy0 = 0; oy0 < OH; oy0 += chunk) {
    const int rows = OH - oy0 < chunk ? OH - oy0 : chunk;
    for (int c0 = 0; c0 < Co; c0 += 16) {
      const __mmask16 m = bs_avx512_mask((size_t)(Co - c0));
      const float *g = dy + (size_t)oy0 * OW * Cs + c0;
      for (int ky = 0; ky < 3; ky++) {
        const float *xr = xp + (size_t)(oy0 * stride + ky) * xrow;
        for (int t = 0; t < ntiles; t++) {
          const int j0 = n * t / ntiles, J = n * (t + 1) / ntiles - j0;
          dw_j(J, xr + j0, stride * xrow, xstep, g, rows, OW, Cs,
               dwt + ((size_t)ky * n + j0) * Cs + c0, m);
        }
      }
    }
  }
}
