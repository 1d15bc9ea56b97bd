// Winograd F(m x m, 3 x 3) tile kernels, AVX2 + FMA (the scalar references and the matrices
// are in winograd_ref.c). NHWC puts 8 consecutive channels of a pixel in one vector, so every
// transform works on 8 channels at once with the matrices' coefficients written out (no
// multiplication by 0 or 1); a channel tail of 1-7 loads with a mask and stores through a
// small buffer. The products are a register-tiled matrix product per transform point, as
// bs_conv3x3_direct's inner loop: P tiles x 16 (or 8) output channels of accumulators, one
// broadcast of v and two weight vectors per input channel.
//
// Rounding: the transforms' terms are grouped differently from the references' index-order
// sums (and 4*d0 - 5*d2 + d4 is one FMA), so they agree within a few units of the terms'
// magnitudes; the products add the same Ci terms in the same order, one FMA each.
#include "ckernels.h"
#include "simd_avx2.h"
#include "winograd.h"
#include <string.h>

// ---------------------------------------------------------------------------------------------
// One-dimensional transforms of vectors (s: stride between the a inputs / outputs)
// ---------------------------------------------------------------------------------------------

// B^T of F(2x2, 3x3): (d0 - d2, d1 + d2, d2 - d1, d1 - d3)
BS_AVX2_INLINE void bt2(const __m256 *d, int s, __m256 *o, int os) {
  o[0] = _mm256_sub_ps(d[0], d[2 * s]);
  o[os] = _mm256_add_ps(d[s], d[2 * s]);
  o[2 * os] = _mm256_sub_ps(d[2 * s], d[s]);
  o[3 * os] = _mm256_sub_ps(d[s], d[3 * s]);
}

// B^T of F(4x4, 3x3), rows as in winograd_ref.c
BS_AVX2_INLINE void bt4(const __m256 *d, int s, __m256 *o, int os) {
  const __m256 d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s];
  const __m256 four = _mm256_set1_ps(4), five = _mm256_set1_ps(5), two = _mm256_set1_ps(2);
  o[0] = _mm256_fnmadd_ps(five, d2, _mm256_fmadd_ps(four, d0, d4));
  const __m256 a = _mm256_fnmadd_ps(four, d2, d4);   // d4 - 4 d2
  const __m256 b = _mm256_fnmadd_ps(four, d1, d3);   // d3 - 4 d1
  o[os] = _mm256_add_ps(a, b);                        // -4d1 - 4d2 + d3 + d4
  o[2 * os] = _mm256_sub_ps(a, b);                    //  4d1 - 4d2 - d3 + d4
  const __m256 c = _mm256_sub_ps(d4, d2);             // d4 - d2
  const __m256 e = _mm256_mul_ps(two, _mm256_sub_ps(d3, d1));   // 2 (d3 - d1)
  o[3 * os] = _mm256_add_ps(c, e);                    // -2d1 - d2 + 2d3 + d4
  o[4 * os] = _mm256_sub_ps(c, e);                    //  2d1 - d2 - 2d3 + d4
  o[5 * os] = _mm256_fnmadd_ps(five, d3, _mm256_fmadd_ps(four, d1, d5));
}

// A^T of F(2x2, 3x3): (m0 + m1 + m2, m1 - m2 - m3)
BS_AVX2_INLINE void at2(const __m256 *d, int s, __m256 *o, int os) {
  o[0] = _mm256_add_ps(_mm256_add_ps(d[0], d[s]), d[2 * s]);
  o[os] = _mm256_sub_ps(_mm256_sub_ps(d[s], d[2 * s]), d[3 * s]);
}

// A^T of F(4x4, 3x3)
BS_AVX2_INLINE void at4(const __m256 *d, int s, __m256 *o, int os) {
  const __m256 p12 = _mm256_add_ps(d[s], d[2 * s]), m12 = _mm256_sub_ps(d[s], d[2 * s]);
  const __m256 p34 = _mm256_add_ps(d[3 * s], d[4 * s]), m34 = _mm256_sub_ps(d[3 * s], d[4 * s]);
  o[0] = _mm256_add_ps(_mm256_add_ps(d[0], p12), p34);
  o[os] = _mm256_fmadd_ps(_mm256_set1_ps(2), m34, m12);
  o[2 * os] = _mm256_fmadd_ps(_mm256_set1_ps(4), p34, p12);
  o[3 * os] = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8), m34, m12), d[5 * s]);
}

// G' of F(3x3, 2x2): (g0, (g0 + g1)/2, (g0 - g1)/2, -g1)
BS_AVX2_INLINE void gw(const __m256 *d, int s, __m256 *o, int os) {
  const __m256 h = _mm256_set1_ps(0.5f);
  o[0] = d[0];
  o[os] = _mm256_mul_ps(h, _mm256_add_ps(d[0], d[s]));
  o[2 * os] = _mm256_mul_ps(h, _mm256_sub_ps(d[0], d[s]));
  o[3 * os] = _mm256_sub_ps(_mm256_setzero_ps(), d[s]);
}

// nc (1..8) channels at p: a full vector, or a masked load of the first nc.
BS_AVX2_INLINE __m256 load_channels(const float *p, int nc) {
  return nc == 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, bs_avx2_tail_mask(nc));
}

BS_AVX2_INLINE void store_channels(float *p, __m256 v, int nc) {
  if (nc == 8) {
    _mm256_storeu_ps(p, v);
  } else {
    float t[8];
    _mm256_storeu_ps(t, v);
    for (int i = 0; i < nc; i++) p[i] = t[i];
  }
}

// ---------------------------------------------------------------------------------------------
// Input transform
// ---------------------------------------------------------------------------------------------

// The a x a window at src (pixels ps floats apart, rows rs apart; nc channels, the rest of the
// vector zero) -> v[k] for the a*a points k, vstride floats apart: B^T d B, rows first.
BS_AVX2_INLINE void input_transform(const float *src, size_t ps, size_t rs, int nc, float *v,
                                    size_t vstride, const int a) {
  __m256 u[36];
  for (int i = 0; i < a; i++) {   // u = d B, row by row
    __m256 d[6];
    for (int j = 0; j < a; j++) d[j] = load_channels(src + i * rs + j * ps, nc);
    if (a == 4) bt2(d, 1, u + i * a, 1);
    else bt4(d, 1, u + i * a, 1);
  }
  for (int j = 0; j < a; j++) {   // v = B^T u, column by column
    __m256 r[6];
    if (a == 4) bt2(u + j, a, r, 1);
    else bt4(u + j, a, r, 1);
    for (int i = 0; i < a; i++) store_channels(v + (size_t)(i * a + j) * vstride, r[i], nc);
  }
}

BS_AVX2_INLINE void input_tiles(const float *x, int H, int W, int C, int m, size_t t0, int nt,
                                float *v, const int a) {
  const bs_winograd_grid g = bs_winograd_grid_of(H, W, m);
  const size_t vstride = (size_t)nt * C;
  float window[36 * 8];   // a border tile's window of 8 channels, zero outside the image
  bs_winograd_tile tl = bs_winograd_tile_at(&g, t0);
  for (int t = 0; t < nt; t++, bs_winograd_tile_next(&g, &tl)) {
    const float *img = x + tl.image * (size_t)H * W * C;
    const int inside = tl.y0 >= 1 && tl.x0 >= 1 && tl.y0 - 1 + a <= H && tl.x0 - 1 + a <= W;
    for (int c = 0; c < C; c += 8) {
      const int nc = C - c < 8 ? C - c : 8;
      float *vt = v + (size_t)t * C + c;
      if (inside) {
        input_transform(img + ((size_t)(tl.y0 - 1) * W + tl.x0 - 1) * C + c, (size_t)C,
                        (size_t)W * C, nc, vt, vstride, a);
        continue;
      }
      for (int i = 0; i < a; i++) {
        const int iy = tl.y0 - 1 + i;
        for (int j = 0; j < a; j++) {
          const int ix = tl.x0 - 1 + j;
          const __m256 d = iy >= 0 && iy < H && ix >= 0 && ix < W
                               ? load_channels(img + ((size_t)iy * W + ix) * C + c, nc)
                               : _mm256_setzero_ps();
          _mm256_storeu_ps(window + (i * a + j) * 8, d);
        }
      }
      input_transform(window, 8, (size_t)a * 8, nc, vt, vstride, a);
    }
  }
}

BS_AVX2 void bs_winograd_input_avx2(const float *x, int H, int W, int C, int m, size_t t0,
                                    int nt, float *v) {
  if (m == 2) input_tiles(x, H, W, C, m, t0, nt, v, 4);
  else input_tiles(x, H, W, C, m, t0, nt, v, 6);
}

// ---------------------------------------------------------------------------------------------
// Products
// ---------------------------------------------------------------------------------------------
#define PMAX2 6    // tiles per register tile with 16 channels: 12 accumulators
#define PMAX1 12   // with 8 channels

// mo[p][0 .. nco) = sum over ci of vt[p][ci] * u[ci][0 .. 8*NV), for P tiles p (rows Ci floats
// apart in v, Co in mo).
BS_AVX2_INLINE void product_tile(const float *vt, int Ci, const float *u, float *mo, int Co,
                                 int nco, const int NV, const int P) {
  const int bw = 8 * NV;
  __m256 acc[PMAX1][2];
  for (int p = 0; p < P; p++) acc[p][0] = acc[p][1] = _mm256_setzero_ps();
  for (int ci = 0; ci < Ci; ci++) {
    const __m256 w0 = _mm256_loadu_ps(u + (size_t)ci * bw);
    const __m256 w1 = NV == 2 ? _mm256_loadu_ps(u + (size_t)ci * bw + 8) : w0;
    for (int p = 0; p < P; p++) {
      const __m256 xv = _mm256_broadcast_ss(vt + (size_t)p * Ci + ci);
      acc[p][0] = _mm256_fmadd_ps(xv, w0, acc[p][0]);
      if (NV == 2) acc[p][1] = _mm256_fmadd_ps(xv, w1, acc[p][1]);
    }
  }
  for (int p = 0; p < P; p++) {
    float *o = mo + (size_t)p * Co;
    if (nco == bw) {
      _mm256_storeu_ps(o, acc[p][0]);
      if (NV == 2) _mm256_storeu_ps(o + 8, acc[p][1]);
    } else {
      store_channels(o, acc[p][0], nco < 8 ? nco : 8);
      if (NV == 2 && nco > 8) store_channels(o + 8, acc[p][1], nco - 8);
    }
  }
}

#define PRODUCT_CASE(NV, P)                                                                      \
  case P: product_tile(vt, Ci, u, mo, Co, nco, NV, P); break;

static BS_AVX2 void product_nv2(int P, const float *vt, int Ci, const float *u, float *mo,
                                int Co, int nco) {
  switch (P) {
    PRODUCT_CASE(2, 1) PRODUCT_CASE(2, 2) PRODUCT_CASE(2, 3) PRODUCT_CASE(2, 4)
    PRODUCT_CASE(2, 5) PRODUCT_CASE(2, 6)
  }
}

static BS_AVX2 void product_nv1(int P, const float *vt, int Ci, const float *u, float *mo,
                                int Co, int nco) {
  switch (P) {
    PRODUCT_CASE(1, 1) PRODUCT_CASE(1, 2) PRODUCT_CASE(1, 3) PRODUCT_CASE(1, 4)
    PRODUCT_CASE(1, 5) PRODUCT_CASE(1, 6) PRODUCT_CASE(1, 7) PRODUCT_CASE(1, 8)
    PRODUCT_CASE(1, 9) PRODUCT_CASE(1, 10) PRODUCT_CASE(1, 11) PRODUCT_CASE(1, 12)
  }
}

BS_AVX2 void bs_winograd_products_avx2(const float *v, int nt, int Ci, int Co, int alpha2,
                                       const float *up, float *mo) {
  const int Co8 = (Co + 7) / 8 * 8;
  for (int k = 0; k < alpha2; k++) {
    const float *U = up + (size_t)k * Ci * Co8, *vk = v + (size_t)k * nt * Ci;
    float *mk = mo + (size_t)k * nt * Co;
    for (int b0 = 0; b0 < Co8; b0 += 16) {
      const int bw = Co8 - b0 < 16 ? Co8 - b0 : 16, nco = Co - b0 < bw ? Co - b0 : bw;
      const float *u = U + (size_t)b0 * Ci;
      const int pmax = bw == 16 ? PMAX2 : PMAX1;
      for (int t = 0; t < nt; t += pmax) {
        const int P = nt - t < pmax ? nt - t : pmax;
        if (bw == 16) product_nv2(P, vk + (size_t)t * Ci, Ci, u, mk + (size_t)t * Co + b0, Co, nco);
        else product_nv1(P, vk + (size_t)t * Ci, Ci, u, mk + (size_t)t * Co + b0, Co, nco);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Output transform
// ---------------------------------------------------------------------------------------------

// mo[k] (mstride floats apart, nc channels) -> A^T M A + b (+ res, the residual at the same
// offsets as out, if not NULL; then max(0, .) if relu), the pixels of rows < rows and columns <
// cols (fewer than m at the image's edge) stored to out (pixels ps floats apart, rows rs
// apart).
BS_AVX2_INLINE void output_transform(const float *mo, size_t mstride, int nc, __m256 b,
                                     const float *res, int relu, float *out, size_t ps,
                                     size_t rs, int rows, int cols, const int a) {
  const int m = a - 2;
  __m256 u[24];
  for (int j = 0; j < a; j++) {   // u = A^T M, column by column (m x a)
    __m256 d[6];
    for (int i = 0; i < a; i++) d[i] = load_channels(mo + (size_t)(i * a + j) * mstride, nc);
    if (a == 4) at2(d, 1, u + j, a);
    else at4(d, 1, u + j, a);
  }
  for (int i = 0; i < m; i++) {   // y = u A, row by row
    __m256 r[4];
    if (a == 4) at2(u + i * a, 1, r, 1);
    else at4(u + i * a, 1, r, 1);
    if (i >= rows) break;
    for (int j = 0; j < m && j < cols; j++) {
      __m256 o = _mm256_add_ps(r[j], b);
      if (res) o = _mm256_add_ps(o, load_channels(res + i * rs + j * ps, nc));
      if (relu) o = _mm256_max_ps(o, _mm256_setzero_ps());   // NaN -> 0, as bs_relu
      store_channels(out + i * rs + j * ps, o, nc);
    }
  }
}

BS_AVX2_INLINE void output_tiles(const float *mo, int H, int W, int Co, int m, size_t t0,
                                 int nt, const float *bias, const float *residual, int relu,
                                 float *y, const int a) {
  const bs_winograd_grid g = bs_winograd_grid_of(H, W, m);
  const size_t mstride = (size_t)nt * Co;
  bs_winograd_tile tl = bs_winograd_tile_at(&g, t0);
  for (int t = 0; t < nt; t++, bs_winograd_tile_next(&g, &tl)) {
    const size_t at = tl.image * (size_t)H * W * Co + ((size_t)tl.y0 * W + tl.x0) * Co;
    float *out = y + at;
    const float *res = residual ? residual + at : NULL;
    const int rows = H - tl.y0 < m ? H - tl.y0 : m, cols = W - tl.x0 < m ? W - tl.x0 : m;
    for (int c = 0; c < Co; c += 8) {
      const int nc = Co - c < 8 ? Co - c : 8;
      const __m256 b = bias ? load_channels(bias + c, nc) : _mm256_setzero_ps();
      output_transform(mo + (size_t)t * Co + c, mstride, nc, b, res ? res + c : NULL, relu,
                       out + c, (size_t)Co, (size_t)W * Co, rows, cols, a);
    }
  }
}

BS_AVX2 void bs_winograd_output_avx2(const float *mo, int H, int W, int Co, int m, size_t t0,
                                     int nt, const float *bias, const float *residual, int relu,
                                     float *y) {
  if (m == 2) output_tiles(mo, H, W, Co, m, t0, nt, bias, residual, relu, y, 4);
  else output_tiles(mo, H, W, Co, m, t0, nt, bias, residual, relu, y, 6);
}

// ---------------------------------------------------------------------------------------------
// dy transform of the weight gradient
// ---------------------------------------------------------------------------------------------

BS_AVX2 void bs_winograd_dy_avx2(const float *dy, int H, int W, int Co, size_t t0, int nt,
                                 float *gt) {
  const bs_winograd_grid g = bs_winograd_grid_of(H, W, 2);
  const size_t gstride = (size_t)nt * Co;
  bs_winograd_tile tl = bs_winograd_tile_at(&g, t0);
  for (int t = 0; t < nt; t++, bs_winograd_tile_next(&g, &tl)) {
    const float *p = dy + tl.image * (size_t)H * W * Co + ((size_t)tl.y0 * W + tl.x0) * Co;
    const int right = tl.x0 + 1 < W, below = tl.y0 + 1 < H;
    for (int c = 0; c < Co; c += 8) {
      const int nc = Co - c < 8 ? Co - c : 8;
      __m256 d[4], u[8];
      d[0] = load_channels(p + c, nc);
      d[1] = right ? load_channels(p + Co + c, nc) : _mm256_setzero_ps();
      d[2] = below ? load_channels(p + (size_t)W * Co + c, nc) : _mm256_setzero_ps();
      d[3] = right && below ? load_channels(p + (size_t)(W + 1) * Co + c, nc) : _mm256_setzero_ps();
      gw(d, 2, u, 2);           // u = G' d, column 0 (4 x 2)
      gw(d + 1, 2, u + 1, 2);   // column 1
      float *o = gt + (size_t)t * Co + c;
      for (int i = 0; i < 4; i++) {   // g = u G'^T, row by row
        __m256 r[4];
        gw(u + i * 2, 1, r, 1);
        for (int j = 0; j < 4; j++) store_channels(o + (size_t)(i * 4 + j) * gstride, r[j], nc);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Weight-gradient products: s[k] [Ci x Co] += v[k]^T g[k], over the chunk's tiles
// ---------------------------------------------------------------------------------------------

// P input channels x 8*NV output channels of s held in registers over the nt tiles: per tile,
// NV vectors of g and P broadcasts of v. nco < 8*NV at a channel tail (masked loads of g, the
// extra lanes stay zero and are not stored).
BS_AVX2_INLINE void dw_tile(const float *v, const float *g, int nt, int Ci, int Co, float *s,
                            int nco, const int NV, const int P) {
  __m256 acc[PMAX1][2];
  for (int p = 0; p < P; p++) {
    acc[p][0] = load_channels(s + (size_t)p * Co, nco < 8 ? nco : 8);
    acc[p][1] = NV == 2 ? load_channels(s + (size_t)p * Co + 8, nco - 8) : acc[p][0];
  }
  for (int t = 0; t < nt; t++) {
    const float *gt = g + (size_t)t * Co;
    const __m256 g0 = load_channels(gt, nco < 8 ? nco : 8);
    const __m256 g1 = NV == 2 ? load_channels(gt + 8, nco - 8) : g0;
    const float *vt = v + (size_t)t * Ci;
    for (int p = 0; p < P; p++) {
      const __m256 xv = _mm256_broadcast_ss(vt + p);
      acc[p][0] = _mm256_fmadd_ps(xv, g0, acc[p][0]);
      if (NV == 2) acc[p][1] = _mm256_fmadd_ps(xv, g1, acc[p][1]);
    }
  }
  for (int p = 0; p < P; p++) {
    store_channels(s + (size_t)p * Co, acc[p][0], nco < 8 ? nco : 8);
    if (NV == 2) store_channels(s + (size_t)p * Co + 8, acc[p][1], nco - 8);
  }
}

#define DW_CASE(NV, P)                                                                           \
  case P: dw_tile(v, g, nt, Ci, Co, s, nco, NV, P); break;

static BS_AVX2 void dw_nv2(int P, const float *v, const float *g, int nt, int Ci, int Co,
                           float *s, int nco) {
  switch (P) {
    DW_CASE(2, 1) DW_CASE(2, 2) DW_CASE(2, 3) DW_CASE(2, 4) DW_CASE(2, 5) DW_CASE(2, 6)
  }
}

static BS_AVX2 void dw_nv1(int P, const float *v, const float *g, int nt, int Ci, int Co,
                           float *s, int nco) {
  switch (P) {
    DW_CASE(1, 1) DW_CASE(1, 2) DW_CASE(1, 3) DW_CASE(1, 4) DW_CASE(1, 5) DW_CASE(1, 6)
    DW_CASE(1, 7) DW_CASE(1, 8) DW_CASE(1, 9) DW_CASE(1, 10) DW_CASE(1, 11) DW_CASE(1, 12)
  }
}

BS_AVX2 void bs_winograd_dw_products_avx2(const float *v, const float *g, int nt, int Ci,
                                          int Co, float *s) {
  for (int k = 0; k < 16; k++) {
    const float *vk = v + (size_t)k * nt * Ci, *gk = g + (size_t)k * nt * Co;
    float *sk = s + (size_t)k * Ci * Co;
    for (int c0 = 0; c0 < Co; c0 += 16) {
      const int nco = Co - c0 < 16 ? Co - c0 : 16, pmax = nco > 8 ? PMAX2 : PMAX1;
      for (int ci = 0; ci < Ci; ci += pmax) {
        const int P = Ci - ci < pmax ? Ci - ci : pmax;
        if (nco > 8) dw_nv2(P, vk + ci, gk + c0, nt, Ci, Co, sk + (size_t)ci * Co + c0, nco);
        else dw_nv1(P, vk + ci, gk + c0, nt, Ci, Co, sk + (size_t)ci * Co + c0, nco);
      }
    }
  }
}
