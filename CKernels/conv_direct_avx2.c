// Direct 3x3 convolution (pad 1, stride 1 or 2) of one NHWC image, AVX2 + FMA: an "implicit
// GEMM" with no im2col buffer.
//
// The image is first copied into a zero-bordered [H+2][W+2][Ci] buffer (the caller's
// scratch), so that every output pixel reads all 9 taps unconditionally. Then, for each block
// of 16 output channels (2 vectors; the last block may be 8 = 1 vector), the OH*OW output
// pixels, in row-major order, are cut into tiles of P consecutive pixels (P <= 6 with 2
// vectors, <= 12 with 1, split evenly: 1024 -> 171 tiles of 6 or 5, 64 -> 6*9 + 5*2; a tile
// may span output rows, each pixel has its own input pointer) and one register tile of
// P x 8*NV accumulators is computed over the 9*Ci products: for each kernel row ky, the taps
// kx = 0, 1, 2 over all input channels are 3*Ci consecutive floats of the padded input row
// (and 3*Ci consecutive rows of the packed weights), so the inner loop is one straight run of
// j < 3*Ci: two vector loads of weights, P broadcasts of x, 2P FMAs.
//
// Rounding: each output is bias (or 0) plus its products accumulated in the reference's
// (ky, kx, ci) order, one FMA each, except that padding taps are multiplied by zero instead of
// skipped (adding +-0 changes nothing but the sign of a zero result). Against the exact sum
// the error is at most 9*Ci*u * (|bias| + sum |x*w|), like the reference's.
#include "ckernels.h"
#include "conv_direct.h"
#include "simd_avx2.h"
#include <string.h>

#define PMAX2 6    // pixels per tile with 16 channels: 12 accumulators
#define PMAX1 12   // pixels per tile with 8 channels: 12 accumulators

// P consecutive output pixels (in row-major order, possibly spanning rows) times 8*NV output
// channels. xs[p]: pixel p's top-left tap in the padded input; xrow: floats per padded input
// row; n = 3*Ci; wb: the block's packed weights [3][n][8*NV]; b: the block's bias, 8*NV
// floats (zero padded); y: the first pixel's outputs, ystep = Co floats apart; nco: channels
// to store (< 8*NV only at a tail).
BS_AVX2_INLINE void tile(const float *const *xs, size_t xrow, int n, const float *wb,
                         const float *b, float *y, size_t ystep, int nco, const int NV,
                         const int P) {
  const int bw = 8 * NV;
  __m256 acc[PMAX1][2];
  const float *xv[PMAX1];
  const __m256 b0 = _mm256_loadu_ps(b), b1 = NV == 2 ? _mm256_loadu_ps(b + 8) : b0;
  for (int p = 0; p < P; p++) {
    acc[p][0] = b0;
    acc[p][1] = b1;
    xv[p] = xs[p];
  }
  for (int ky = 0; ky < 3; ky++) {
    const float *wr = wb + (size_t)ky * n * bw;
    for (int j = 0; j < n; j++) {
      const __m256 w0 = _mm256_loadu_ps(wr + (size_t)j * bw);
      const __m256 w1 = NV == 2 ? _mm256_loadu_ps(wr + (size_t)j * bw + 8) : w0;
      for (int p = 0; p < P; p++) {
        const __m256 x = _mm256_broadcast_ss(xv[p] + j);
        acc[p][0] = _mm256_fmadd_ps(x, w0, acc[p][0]);
        if (NV == 2) acc[p][1] = _mm256_fmadd_ps(x, w1, acc[p][1]);
      }
    }
    for (int p = 0; p < P; p++) xv[p] += xrow;
  }
  if (nco == bw) {
    for (int p = 0; p < P; p++) {
      _mm256_storeu_ps(y + p * ystep, acc[p][0]);
      if (NV == 2) _mm256_storeu_ps(y + p * ystep + 8, acc[p][1]);
    }
  } else {   // channel tail: scalar stores (masked stores are slow on AMD Zen)
    float t[16];
    for (int p = 0; p < P; p++) {
      _mm256_storeu_ps(t, acc[p][0]);
      if (NV == 2) _mm256_storeu_ps(t + 8, acc[p][1]);
      for (int c = 0; c < nco; c++) y[p * ystep + c] = t[c];
    }
  }
}

#define TILE_CASE(NV, P)                                                                         \
  case P: tile(xs, xrow, n, wb, b, y, ystep, nco, NV, P); break;

static BS_AVX2 void tile_nv2(int P, const float *const *xs, size_t xrow, int n, const float *wb,
                             const float *b, float *y, size_t ystep, int nco) {
  switch (P) {
    TILE_CASE(2, 1) TILE_CASE(2, 2) TILE_CASE(2, 3) TILE_CASE(2, 4) TILE_CASE(2, 5)
    TILE_CASE(2, 6)
  }
}

static BS_AVX2 void tile_nv1(int P, const float *const *xs, size_t xrow, int n, const float *wb,
                             const float *b, float *y, size_t ystep, int nco) {
  switch (P) {
    TILE_CASE(1, 1) TILE_CASE(1, 2) TILE_CASE(1, 3) TILE_CASE(1, 4) TILE_CASE(1, 5)
    TILE_CASE(1, 6) TILE_CASE(1, 7) TILE_CASE(1, 8) TILE_CASE(1, 9) TILE_CASE(1, 10)
    TILE_CASE(1, 11) TILE_CASE(1, 12)
  }
}
#undef TILE_CASE

// x: [H][W][Ci], wp packed (bs_conv3x3_direct_pack), bias: [Co] or NULL -> y: [OH][OW][Co]
BS_AVX2 void bs_conv3x3_direct_avx2(const float *x, int H, int W, int Ci, int Co, int stride,
                                    const float *wp, const float *bias, float *y,
                                    float *scratch) {
  const int OH = (H - 1) / stride + 1, OW = (W - 1) / stride + 1, Co8 = (Co + 7) / 8 * 8;
  const size_t xrow = (size_t)(W + 2) * Ci, xstep = (size_t)stride * Ci, ystep = (size_t)Co;
  float *xp = scratch;   // [H + 2][W + 2][Ci]
  bs_conv3x3_pad_copy(x, H, W, Ci, xp);
  const int n = 3 * Ci;
  const size_t npix = (size_t)OH * OW;
  for (int c0 = 0; c0 < Co8; c0 += 16) {
    const int NV = Co8 - c0 >= 16 ? 2 : 1, nco = Co - c0 < 8 * NV ? Co - c0 : 8 * NV;
    float b[16] = {0};
    if (bias) memcpy(b, bias + c0, (size_t)nco * sizeof(float));
    const float *wb = wp + (size_t)c0 * 9 * Ci;
    const size_t pmax = NV == 2 ? PMAX2 : PMAX1, ntiles = (npix + pmax - 1) / pmax;
    int oy = 0, ox = 0;   // the next tile's first pixel
    for (size_t t = 0; t < ntiles; t++) {
      const size_t q = npix * t / ntiles;
      const int P = (int)(npix * (t + 1) / ntiles - q);
      const float *xs[PMAX1];
      for (int p = 0; p < P; p++) {
        xs[p] = xp + (size_t)oy * stride * xrow + (size_t)ox * xstep;
        if (++ox == OW) ox = 0, oy++;
      }
      float *yt = y + q * ystep + c0;
      if (NV == 2)
        tile_nv2(P, xs, xrow, n, wb, b, yt, ystep, nco);
      else
        tile_nv1(P, xs, xrow, n, wb, b, yt, ystep, nco);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Weight gradient: dwt[ky][kx][ci][co] += sum over output pixels p of dy[p][co] * x[tap of p].
// The transposed problem of the forward pass: for one kernel row ky, the 3*Ci taps
// j = kx*Ci + ci of pixel p are again 3*Ci consecutive floats of a padded input row, so a
// register tile is J consecutive j (J <= 6 with 16 channels, <= 12 with 8) times 8*NV output
// channels, accumulated over pixels: per pixel two vector loads of dy, J broadcasts of x,
// 2J FMAs. Pixels are taken in chunks of whole output rows (about 128 pixels) so that the
// chunk's dy and input rows stay in L1 while every (channel block, ky, j tile) sweeps them;
// the accumulators are loaded from and stored back to dwt once per chunk. With Co > 16 the
// chunk's dy columns of one channel block are first copied to a dense [pixels][16] buffer
// (in the scratch after the padded image): read in place, they are Co floats apart, and with Co*4 bytes a multiple of
// 512 a chunk's rows all fall into 8 of L1's 64 sets and keep evicting each other (8x8x128 ->
// 128: 47 GFLOP/s in place, 58 copied; copying costs more than it saves at Co = 16).
//
// Rounding: each dwt element adds its products in the reference's (oy, ox) order, one FMA
// each, padding taps as products with zero.
#define JMAX2 6
#define JMAX1 12

// J taps (j0 .. j0+J-1 of kernel row ky) times 8*NV channels over the pixels of `rows` output
// rows. xr: the padded input at the first row's first pixel's tap j0; xrstep: floats between
// the input rows of consecutive output rows (stride * padded row); xstep: between consecutive
// pixels (stride*Ci); g: dy at the first row's first pixel, channel c0, gs floats between
// pixels; d: dwt at (ky, j0), channel c0; Co: dwt's row length. TAIL: the last vector holds
// only `nlast` channels (masked loads, scalar stores).
BS_AVX2_INLINE void dw_tile(const float *xr, size_t xrstep, size_t xstep, const float *g,
                            size_t gs, int rows, int OW, size_t Co, float *d, __m256i mask,
                            int nlast, const int NV, const int J, const int TAIL) {
  __m256 acc[JMAX1][2];
  for (int jj = 0; jj < J; jj++)
    for (int v = 0; v < NV; v++)
      acc[jj][v] = (TAIL && v == NV - 1) ? _mm256_maskload_ps(d + jj * Co + 8 * v, mask)
                                         : _mm256_loadu_ps(d + jj * Co + 8 * v);
  for (int r = 0; r < rows; r++) {
    const float *xq = xr + r * xrstep, *gq = g + (size_t)r * OW * gs;
    for (int ox = 0; ox < OW; ox++, xq += xstep, gq += gs) {
      const __m256 g0 = (TAIL && NV == 1) ? _mm256_maskload_ps(gq, mask) : _mm256_loadu_ps(gq);
      const __m256 g1 = NV == 1 ? g0
                        : TAIL  ? _mm256_maskload_ps(gq + 8, mask)
                                : _mm256_loadu_ps(gq + 8);
      for (int jj = 0; jj < J; jj++) {
        const __m256 xb = _mm256_broadcast_ss(xq + jj);
        acc[jj][0] = _mm256_fmadd_ps(xb, g0, acc[jj][0]);
        if (NV == 2) acc[jj][1] = _mm256_fmadd_ps(xb, g1, acc[jj][1]);
      }
    }
  }
  for (int jj = 0; jj < J; jj++)
    for (int v = 0; v < NV; v++) {
      if (TAIL && v == NV - 1) {
        float t[8];
        _mm256_storeu_ps(t, acc[jj][v]);
        for (int c = 0; c < nlast; c++) d[jj * Co + 8 * v + c] = t[c];
      } else {
        _mm256_storeu_ps(d + jj * Co + 8 * v, acc[jj][v]);
      }
    }
}

#define DW_CASE(NV, J, TAIL)                                                                     \
  case J: dw_tile(xr, xrstep, xstep, g, gs, rows, OW, Co, d, mask, nlast, NV, J, TAIL); break;
#define DW_ARGS                                                                                  \
  int J, const float *xr, size_t xrstep, size_t xstep, const float *g, size_t gs, int rows,    \
      int OW, size_t Co, float *d, __m256i mask, int nlast

static BS_AVX2 void dw_nv2(DW_ARGS) {
  switch (J) {
    DW_CASE(2, 1, 0) DW_CASE(2, 2, 0) DW_CASE(2, 3, 0) DW_CASE(2, 4, 0) DW_CASE(2, 5, 0)
    DW_CASE(2, 6, 0)
  }
}
static BS_AVX2 void dw_nv2_tail(DW_ARGS) {
  switch (J) {
    DW_CASE(2, 1, 1) DW_CASE(2, 2, 1) DW_CASE(2, 3, 1) DW_CASE(2, 4, 1) DW_CASE(2, 5, 1)
    DW_CASE(2, 6, 1)
  }
}
static BS_AVX2 void dw_nv1(DW_ARGS) {
  switch (J) {
    DW_CASE(1, 1, 0) DW_CASE(1, 2, 0) DW_CASE(1, 3, 0) DW_CASE(1, 4, 0) DW_CASE(1, 5, 0)
    DW_CASE(1, 6, 0) DW_CASE(1, 7, 0) DW_CASE(1, 8, 0) DW_CASE(1, 9, 0) DW_CASE(1, 10, 0)
    DW_CASE(1, 11, 0) DW_CASE(1, 12, 0)
  }
}
static BS_AVX2 void dw_nv1_tail(DW_ARGS) {
  switch (J) {
    DW_CASE(1, 1, 1) DW_CASE(1, 2, 1) DW_CASE(1, 3, 1) DW_CASE(1, 4, 1) DW_CASE(1, 5, 1)
    DW_CASE(1, 6, 1) DW_CASE(1, 7, 1) DW_CASE(1, 8, 1) DW_CASE(1, 9, 1) DW_CASE(1, 10, 1)
    DW_CASE(1, 11, 1) DW_CASE(1, 12, 1)
  }
}
#undef DW_CASE
#undef DW_ARGS

// x: [H][W][Ci], dy: [OH][OW][Co] -> dwt: [3][3][Ci][Co] (+=)
BS_AVX2 void bs_conv3x3_direct_dw_avx2(const float *x, const float *dy, int H, int W, int Ci,
                                       int Co, int stride, float *dwt, float *scratch) {
  const int OH = (H - 1) / stride + 1, OW = (W - 1) / stride + 1, Co8 = (Co + 7) / 8 * 8;
  const size_t xrow = (size_t)(W + 2) * Ci, xstep = (size_t)stride * Ci, Cs = (size_t)Co;
  float *xp = scratch;   // [H + 2][W + 2][Ci]
  bs_conv3x3_pad_copy(x, H, W, Ci, xp);
  const int n = 3 * Ci, chunk = OW >= 128 ? 1 : 128 / OW, copy = Co > 16;
  float *gbuf = copy ? scratch + bs_conv3x3_padded_floats(H, W, Ci) : NULL;
  for (int oy0 = 0; oy0 < OH; oy0 += chunk) {
    const int rows = OH - oy0 < chunk ? OH - oy0 : chunk;
    for (int c0 = 0; c0 < Co8; c0 += 16) {
      const int NV = Co8 - c0 >= 16 ? 2 : 1, nco = Co - c0 < 8 * NV ? Co - c0 : 8 * NV;
      const int tail = nco < 8 * NV, nlast = nco - 8 * (NV - 1);
      const __m256i mask = bs_avx2_tail_mask(tail ? nlast : 8);
      const int jmax = NV == 2 ? JMAX2 : JMAX1, ntiles = (n + jmax - 1) / jmax;
      const float *g = dy + (size_t)oy0 * OW * Cs + c0;
      size_t gs = Cs;
      if (copy) {
        for (int p = 0; p < rows * OW; p++) {
          float *dst = gbuf + (size_t)p * 16;
          const float *src = g + p * Cs;
          if (nco == 16) {
            _mm256_storeu_ps(dst, _mm256_loadu_ps(src));
            _mm256_storeu_ps(dst + 8, _mm256_loadu_ps(src + 8));
          } else {
            memcpy(dst, src, (size_t)nco * sizeof(float));
          }
        }
        g = gbuf;
        gs = 16;
      }
      for (int ky = 0; ky < 3; ky++) {
        const float *xr = xp + (size_t)(oy0 * stride + ky) * xrow;
        for (int t = 0; t < ntiles; t++) {
          const int j0 = n * t / ntiles, J = n * (t + 1) / ntiles - j0;
          float *d = dwt + ((size_t)ky * n + j0) * Cs + c0;
          if (NV == 2)
            (tail ? dw_nv2_tail : dw_nv2)(J, xr + j0, stride * xrow, xstep, g, gs, rows, OW, Cs,
                                          d, mask, nlast);
          else
            (tail ? dw_nv1_tail : dw_nv1)(J, xr + j0, stride * xrow, xstep, g, gs, rows, OW, Cs,
                                          d, mask, nlast);
        }
      }
    }
  }
}
