// Private helper of the bs_conv3x3_direct variants (conv_direct_*.c).
#ifndef BLOCKSCOPE_CONV_DIRECT_H
#define BLOCKSCOPE_CONV_DIRECT_H

// x: [H][W][Ci] -> xp: [H+2][W+2][Ci], x surrounded by a border of one zero pixel. Writes every
// float of xp (no assumption about its previous contents).
void bs_conv3x3_pad_copy(const float *x, int H, int W, int Ci, float *xp);

// The padded image's floats, rounded up to a whole cache line (what follows it in the scratch
// buffer stays 64-byte aligned).
static inline size_t bs_conv3x3_padded_floats(int H, int W, int Ci) {
  return ((size_t)(H + 2) * (W + 2) * Ci + 15) / 16 * 16;
}
#endif
