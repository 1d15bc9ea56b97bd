// Training augmentation, scalar reference: reflect-pad, random crop, horizontal flip, u8->[0,1].
#include "ckernels.h"

// Reflect (no edge repeat, like numpy/PyTorch 'reflect'): -1 -> 1, H -> H-2.
static inline int reflect(int i, int n) {
  if (n == 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
  return i;
}

// src: [H][W][C] u8 -> dst: [H][W][C] f32; crop of the padded image at (oy, ox)
void bs_augment_ref(const uint8_t *src, int H, int W, int C, int pad, int oy, int ox, int flip,
                    float *dst) {
  const float inv = 1.0f / 255.0f;
  for (int y = 0; y < H; y++) {
    const int sy = reflect(y + oy - pad, H);
    for (int x = 0; x < W; x++) {
      const int cx = flip ? W - 1 - x : x;
      const int sx = reflect(cx + ox - pad, W);
      for (int c = 0; c < C; c++)
        dst[((size_t)y * W + x) * C + c] = (float)src[((size_t)sy * W + sx) * C + c] * inv;
    }
  }
}
