// Winograd convolutions of whole batches (conv_winograd.c), for conv_ops.c: 3x3, pad 1,
// stride 1 only.
#ifndef BLOCKSCOPE_CONV_WINOGRAD_H
#define BLOCKSCOPE_CONV_WINOGRAD_H
#include "context_internal.h"

// x [N][H][W][Ci], w [Co][3][3][Ci], bias [Co] or NULL -> y [N][H][W][Co] (overwritten), with
// F(m x m, 3 x 3), m = 2 or 4; the epilogue adds residual [N][H][W][Co] (if not NULL; may alias
// y) and applies max(0, .) (if relu) while the tile is in registers.
void bs_conv_winograd_forward(bs_context *ctx, int N, int H, int W, int Ci, int Co,
                              const float *x, const float *w, const float *bias,
                              const float *residual, int relu, float *y, int m);
// x [N][H][W][Ci], dy [N][H][W][Co] -> dw [Co][3][3][Ci] (overwritten), with F(3 x 3, 2 x 2).
void bs_conv_winograd_weight_grad(bs_context *ctx, int N, int H, int W, int Ci, int Co,
                                  const float *x, const float *dy, float *dw);
#endif
