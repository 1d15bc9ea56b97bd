// A convolution and the inference-mode batch norm after it as one op (bs_conv_bn_forward_infer):
// the BN is folded into the weights and bias, and, on the Winograd path, the residual add and
// the ReLU run in the output transform while each tile is in registers, so the activations
// are written once instead of three times (conv, BN, add + ReLU).
#include "context_internal.h"
#include "conv_winograd.h"
#include <string.h>

void bs_conv_bn_forward_infer(bs_context *ctx, const bs_conv_shape *s, const float *x,
                              const float *w, const float *gamma, const float *beta,
                              const float *run_mean, const float *run_var, float eps,
                              const float *residual, int relu, float *y) {
  const size_t K = (size_t)s->KH * s->KW * s->Ci, out = (size_t)s->N * s->OH * s->OW * s->Co;
  float *affine = malloc(2 * (size_t)s->Co * sizeof(float));
  float *wf = malloc((size_t)s->Co * K * sizeof(float));
  BS_CHECK(affine && wf, "out of memory folding a batch norm into a convolution");
  float *scale = affine, *shift = affine + s->Co;
  bs_bn_infer_affine(gamma, beta, run_mean, run_var, eps, s->Co, scale, shift);
  for (int co = 0; co < s->Co; co++)
    for (size_t k = 0; k < K; k++) wf[co * K + k] = w[co * K + k] * scale[co];
  int tile = 0;
  if (bs_conv_pass_algorithm(ctx, s, BS_CONV_PASS_FORWARD, &tile) == BS_CONV_WINOGRAD) {
    BS_PROF_BEGIN(ctx);
    bs_conv_winograd_forward(ctx, s->N, s->H, s->W, s->Ci, s->Co, x, wf, shift, residual, relu,
                             y, tile);
    BS_PROF_END(ctx, BS_PROF_CONV_FWD);
  } else {
    // The convolution may not write y in place of the residual it still has to add.
    BS_CHECK(!residual || !bs_overlaps(residual, out * sizeof(float), y, out * sizeof(float)) ||
                 residual == y,
             "bs_conv_bn_forward_infer: residual partly overlaps y");
    if (residual == y) {
      float *t = malloc(out * sizeof(float));
      BS_CHECK(t, "out of memory in bs_conv_bn_forward_infer");
      bs_conv_forward(ctx, s, x, wf, shift, t);
      if (relu) bs_op_add_relu(ctx, t, residual, out, y);
      else bs_op_add(ctx, t, residual, out, y);
      free(t);
    } else {
      bs_conv_forward(ctx, s, x, wf, shift, y);
      if (residual && relu) bs_op_add_relu(ctx, y, residual, out, y);
      else if (residual) bs_op_add(ctx, y, residual, out, y);
      else if (relu) bs_op_relu(ctx, y, out, y);
    }
  }
  free(wf);
  free(affine);
}
