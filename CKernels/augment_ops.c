// A whole training batch through the augmentation kernel, images split over the thread pool.
// The random choices are made by the caller beforehand, so the result does not depend on
// which thread handled which image.
#include "context_internal.h"

typedef struct {
  const uint8_t *base;
  const int64_t *positions;
  int H, W, C, pad;
  const int32_t *oy, *ox, *flip;
  float *dst;
  int n;
} augment_ctx;

static void augment_task(void *p, int t, int ntasks, bs_worker *w) {
  const augment_ctx *c = p;
  size_t i0, i1;
  bs_split((size_t)c->n, t, ntasks, &i0, &i1);
  const size_t img = (size_t)c->H * c->W * c->C;
  for (size_t i = i0; i < i1; i++)
    bs_worker_kernels(w)->bs_augment(c->base + (size_t)c->positions[i] * img, c->H, c->W, c->C, c->pad,
               c->oy ? c->oy[i] : 0, c->ox ? c->ox[i] : 0, c->flip ? c->flip[i] : 0,
               c->dst + i * img);
}

void bs_augment_batch(bs_context *ctx, const uint8_t *base, const int64_t *positions, int n, int H, int W, int C,
                      int pad, const int32_t *oy, const int32_t *ox, const int32_t *flip,
                      float *dst) {
  augment_ctx c = {base, positions, H, W, C, pad, oy, ox, flip, dst, n};
  int nt = ctx->threads;
  if (nt > n) nt = n;
  bs_parallel_for(ctx, nt, augment_task, &c);
}
