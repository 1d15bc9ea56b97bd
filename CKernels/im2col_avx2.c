// im2col / col2im, AVX2. Both are pure data movement (col2im: one add per element in the
// reference's order), so results are bit-identical to the reference.
//
// Why it is faster than the reference: for one output pixel and one kernel row ky, the KW taps
// read x[iy][ix0 .. ix0+KW-1] — KW*C contiguous floats, whatever the stride — and write KW*C
// contiguous floats of the col row. So instead of KH*KW runs of C floats there are KH runs of
// KW*C floats (48 for C = 16, 3x3), split only at the image border into zero | copy | zero.
// Runs are moved 32 then 8 floats at a time; a remainder (C % 8 != 0) is scalar, because
// masked stores are microcoded and slow on AMD Zen.
#include "ckernels.h"
#include "simd_avx2.h"

BS_AVX2_INLINE void copy_run(float *dst, const float *src, size_t n) {
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256 a = _mm256_loadu_ps(src + i), b = _mm256_loadu_ps(src + i + 8);
    const __m256 c = _mm256_loadu_ps(src + i + 16), d = _mm256_loadu_ps(src + i + 24);
    _mm256_storeu_ps(dst + i, a);
    _mm256_storeu_ps(dst + i + 8, b);
    _mm256_storeu_ps(dst + i + 16, c);
    _mm256_storeu_ps(dst + i + 24, d);
  }
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_loadu_ps(src + i));
  for (; i < n; i++) dst[i] = src[i];
}

BS_AVX2_INLINE void zero_run(float *dst, size_t n) {
  const __m256 z = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, z);
  for (; i < n; i++) dst[i] = 0.0f;
}

// dst[i] += src[i]
BS_AVX2_INLINE void add_run(float *dst, const float *src, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 a = _mm256_add_ps(_mm256_loadu_ps(dst + i), _mm256_loadu_ps(src + i));
    const __m256 b = _mm256_add_ps(_mm256_loadu_ps(dst + i + 8), _mm256_loadu_ps(src + i + 8));
    _mm256_storeu_ps(dst + i, a);
    _mm256_storeu_ps(dst + i + 8, b);
  }
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_add_ps(_mm256_loadu_ps(dst + i), _mm256_loadu_ps(src + i)));
  for (; i < n; i++) dst[i] += src[i];
}

// The taps kx in [*k0, *k1) of an output column whose first tap is input column ix0 fall
// inside [0, W); the others are padding. Both ends are clamped to [0, KW], so k0 == k1 when
// the whole kernel row is padding (possible only when pad >= KW).
static inline void valid_taps(int ix0, int W, int KW, int *k0, int *k1) {
  int a = ix0 < 0 ? -ix0 : 0, b = W - ix0;
  if (a > KW) a = KW;
  if (b > KW) b = KW;
  if (b < a) b = a;
  *k0 = a;
  *k1 = b;
}

// x: [H][W][C] -> col: [OH*OW][KH*KW*C]
// Loop order (oy, ky, ox): for a fixed input row iy, the output columns [oxa, oxb) whose KW
// taps are all inside the image need no border logic at all — one straight copy of KW*C floats
// each, which is most of the work — and the few border columns take the general path.
BS_AVX2 void bs_im2col_avx2(const float *x, int H, int W, int C, int KH, int KW, int stride,
                            int pad, float *col) {
  const int OH = (H + 2 * pad - KH) / stride + 1, OW = (W + 2 * pad - KW) / stride + 1;
  const size_t Cs = (size_t)C, run = (size_t)KW * Cs, rowlen = (size_t)KH * run;
  // Interior columns: ox * stride - pad >= 0 and ox * stride - pad + KW <= W.
  int oxa = (pad + stride - 1) / stride;
  int oxb = W - KW + pad >= 0 ? (W - KW + pad) / stride + 1 : 0;
  if (oxa > OW) oxa = OW;
  if (oxb > OW) oxb = OW;
  if (oxb < oxa) oxb = oxa;
  for (int oy = 0; oy < OH; oy++) {
    float *crow = col + (size_t)oy * OW * rowlen;
    for (int ky = 0; ky < KH; ky++) {
      const int iy = oy * stride - pad + ky;
      float *dst = crow + (size_t)ky * run;
      if (iy < 0 || iy >= H) {
        for (int ox = 0; ox < OW; ox++) zero_run(dst + (size_t)ox * rowlen, run);
        continue;
      }
      const float *xrow = x + (size_t)iy * W * Cs;
      for (int ox = oxa; ox < oxb; ox++)
        copy_run(dst + (size_t)ox * rowlen, xrow + (size_t)(ox * stride - pad) * Cs, run);
      for (int ox = 0; ox < OW; ox++) {
        if (ox == oxa) ox = oxb;   // skip the interior, done above
        if (ox >= OW) break;
        const int ix0 = ox * stride - pad;
        int k0, k1;
        valid_taps(ix0, W, KW, &k0, &k1);
        float *d = dst + (size_t)ox * rowlen;
        zero_run(d, (size_t)k0 * Cs);
        if (k1 > k0)
          copy_run(d + (size_t)k0 * Cs, xrow + (size_t)(ix0 + k0) * Cs, (size_t)(k1 - k0) * Cs);
        zero_run(d + (size_t)k1 * Cs, (size_t)(KW - k1) * Cs);
      }
    }
  }
}

// col: [OH*OW][KH*KW*C] -> dx: [H][W][C] (+=). Every dx element receives its contributions in
// the reference's (oy, ox, ky, kx) order, one float add each: bit-identical.
BS_AVX2 void bs_col2im_avx2(const float *col, int H, int W, int C, int KH, int KW, int stride,
                            int pad, float *dx) {
  const int OH = (H + 2 * pad - KH) / stride + 1, OW = (W + 2 * pad - KW) / stride + 1;
  const size_t Cs = (size_t)C, run = (size_t)KW * Cs;
  const float *src = col;
  for (int oy = 0; oy < OH; oy++)
    for (int ox = 0; ox < OW; ox++) {
      const int ix0 = ox * stride - pad;
      int k0, k1;
      valid_taps(ix0, W, KW, &k0, &k1);
      for (int ky = 0; ky < KH; ky++, src += run) {
        const int iy = oy * stride - pad + ky;
        if (iy < 0 || iy >= H || k0 == k1) continue;
        add_run(dx + ((size_t)iy * W + ix0 + k0) * Cs, src + (size_t)k0 * Cs,
                (size_t)(k1 - k0) * Cs);
      }
    }
}
