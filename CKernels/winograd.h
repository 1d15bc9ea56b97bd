// Private helpers of the Winograd kernels (winograd_*.c) and their driver (conv_winograd.c):
// the tile grid and the transform matrices.
#ifndef BLOCKSCOPE_WINOGRAD_H
#define BLOCKSCOPE_WINOGRAD_H
#include <stddef.h>

// Row-major matrices (winograd_ref.c): B^T (alpha x alpha) and A^T (m x alpha) of F(2x2, 3x3)
// and F(4x4, 3x3); G' (4 x 2) of the weight gradient's F(3x3, 2x2).
extern const float bs_winograd_bt2[4 * 4], bs_winograd_at2[2 * 4];
extern const float bs_winograd_bt4[6 * 6], bs_winograd_at4[4 * 6];
extern const float bs_winograd_gw[4 * 2];

// The m x m output tiles of H x W images: TH x TW per image, row-major, images one after the
// other (ckernels.h, "Winograd").
typedef struct {
  int H, W, m, TH, TW;
} bs_winograd_grid;

typedef struct {
  size_t image;   // index of the tile's image
  int y0, x0;     // its first output pixel
} bs_winograd_tile;

static inline bs_winograd_grid bs_winograd_grid_of(int H, int W, int m) {
  return (bs_winograd_grid){H, W, m, (H + m - 1) / m, (W + m - 1) / m};
}

static inline size_t bs_winograd_tiles_per_image(const bs_winograd_grid *g) {
  return (size_t)g->TH * g->TW;
}

static inline bs_winograd_tile bs_winograd_tile_at(const bs_winograd_grid *g, size_t t) {
  const size_t per = bs_winograd_tiles_per_image(g), r = t % per;
  return (bs_winograd_tile){t / per, (int)(r / g->TW) * g->m, (int)(r % g->TW) * g->m};
}

// The tile after *tl (row-major, then the next image), without a division.
static inline void bs_winograd_tile_next(const bs_winograd_grid *g, bs_winograd_tile *tl) {
  tl->x0 += g->m;
  if (tl->x0 < g->W) return;
  tl->x0 = 0;
  tl->y0 += g->m;
  if (tl->y0 < g->H) return;
  tl->y0 = 0;
  tl->image++;
}
#endif
