// Training augmentation, AVX2: reflect-pad, random crop, horizontal flip, u8 -> [0,1].
// The output columns whose source column is inside the image form one contiguous byte run per
// row (a crop is a shift), converted 8 bytes at a time; the reflected border pixels go pixel by
// pixel, and a flip mirrors the finished row. Each value is (float)u8 * (1/255), the
// reference's exact operations, so the output is bit-identical to it.
#include "ckernels.h"
#include "simd_avx2.h"

// Reflect (no edge repeat, like numpy/PyTorch 'reflect'): -1 -> 1, H -> H-2.
static inline int reflect(int i, int n) {
  if (n == 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
  return i;
}

// dst[i] = src[i] * inv for n bytes
BS_AVX2_INLINE void convert_run(float *dst, const uint8_t *src, size_t n, float inv) {
  const __m256 vinv = _mm256_set1_ps(inv);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i w = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(src + i)));
    _mm256_storeu_ps(dst + i, _mm256_mul_ps(_mm256_cvtepi32_ps(w), vinv));
  }
  for (; i < n; i++) dst[i] = (float)src[i] * inv;
}

// src: [H][W][C] u8 -> dst: [H][W][C] f32; crop of the padded image at (oy, ox)
BS_AVX2 void bs_augment_avx2(const uint8_t *src, int H, int W, int C, int pad, int oy, int ox,
                             int flip, float *dst) {
  const float inv = 1.0f / 255.0f;
  const size_t Cs = (size_t)C;
  // Unflipped, output column x reads source column x + ox - pad: inside for x in [xa, xb).
  int xa = pad - ox, xb = W + pad - ox;
  if (xa < 0) xa = 0;
  if (xa > W) xa = W;
  if (xb > W) xb = W;
  if (xb < xa) xb = xa;
  for (int y = 0; y < H; y++) {
    const uint8_t *srow = src + (size_t)reflect(y + oy - pad, H) * W * Cs;
    float *drow = dst + (size_t)y * W * Cs;
    for (int x = 0; x < xa; x++)
      convert_run(drow + x * Cs, srow + (size_t)reflect(x + ox - pad, W) * Cs, Cs, inv);
    if (xb > xa)
      convert_run(drow + xa * Cs, srow + (size_t)(xa + ox - pad) * Cs, (size_t)(xb - xa) * Cs,
                  inv);
    for (int x = xb; x < W; x++)
      convert_run(drow + x * Cs, srow + (size_t)reflect(x + ox - pad, W) * Cs, Cs, inv);
    // Flip = crop, then mirror: swap whole pixels of the finished row in place (converting
    // pixel by pixel in mirrored order instead is slower for C = 3).
    if (flip)
      for (int a = 0, b = W - 1; a < b; a++, b--)
        for (size_t c = 0; c < Cs; c++) {
          const float t = drow[a * Cs + c];
          drow[a * Cs + c] = drow[b * Cs + c];
          drow[b * Cs + c] = t;
        }
  }
}
