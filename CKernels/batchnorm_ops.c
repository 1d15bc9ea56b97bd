// Batch norm over NHWC rows, threaded: per-task double partial sums reduced in task order,
// then one elementwise pass. ReLU can be fused into the output pass.
#include "context_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

// Row tasks: at most one per thread, and at least ~1024 rows each (smaller ones cost more to
// hand out than they save).
// Tasks for a pass over rows: at most `cap`, at least 1024 rows each.
static int row_tasks(size_t rows, int cap) {
  const size_t max_t = rows / 1024 + 1;
  return (size_t)cap > max_t ? (int)max_t : (cap < 1 ? 1 : cap);
}

static void *checked_malloc(size_t bytes) {
  void *p = malloc(bytes ? bytes : 1);
  BS_CHECK(p, "out of memory in a batch norm");
  return p;
}

typedef struct {
  const float *x, *dy, *scale, *shift, *k1, *k2, *k3, *mean;
  size_t rows;
  int C, relu;
  double *partial;   // [ntasks][2][C]
  float *y;
} bn_ctx;

static void sums_task(void *p, int t, int ntasks, bs_worker *w) {
  const bn_ctx *c = p;
  const bs_kernels *k = bs_worker_kernels(w);
  size_t r0, r1;
  bs_split(c->rows, t, ntasks, &r0, &r1);
  double *s = c->partial + (size_t)t * 2 * c->C;
  memset(s, 0, 2 * (size_t)c->C * sizeof(double));
  if (c->dy)
    k->bs_bn_backward_sums(c->dy + r0 * c->C, c->x + r0 * c->C, r1 - r0, c->C, c->mean, s,
                        s + c->C);
  else
    k->bs_channel_sums(c->x + r0 * c->C, r1 - r0, c->C, s, s + c->C);
}

static void scale_shift_task(void *p, int t, int ntasks, bs_worker *w) {
  const bn_ctx *c = p;
  size_t r0, r1;
  bs_split(c->rows, t, ntasks, &r0, &r1);
  bs_worker_kernels(w)->bs_scale_shift(c->x + r0 * c->C, r1 - r0, c->C, c->scale, c->shift, c->relu,
                 c->y + r0 * c->C);
}

static void axpby_task(void *p, int t, int ntasks, bs_worker *w) {
  const bn_ctx *c = p;
  size_t r0, r1;
  bs_split(c->rows, t, ntasks, &r0, &r1);
  bs_worker_kernels(w)->bs_channel_axpby(c->dy + r0 * c->C, c->x + r0 * c->C, r1 - r0, c->C, c->k1, c->k2, c->k3,
                   c->y + r0 * c->C);
}

// Runs the reduction (sums of x, or of dy and dy*(x-mean) when dy is set) into out[2][C].
// Per-channel sums in BS_PARTITION_TASKS (or fewer) partials whatever the thread count,
// reduced in task order.
static void reduce(bs_context *ctx, bn_ctx *c, double *out) {
  const int nt = row_tasks(c->rows, BS_PARTITION_TASKS);
  c->partial = checked_malloc((size_t)nt * 2 * c->C * sizeof(double));
  bs_parallel_for(ctx, nt, sums_task, c);
  memset(out, 0, 2 * (size_t)c->C * sizeof(double));
  for (int t = 0; t < nt; t++)
    for (int i = 0; i < 2 * c->C; i++) out[i] += c->partial[(size_t)t * 2 * c->C + i];
  free(c->partial);
}

void bs_bn_forward_train(bs_context *ctx, const float *x, size_t rows, int C, const float *gamma,
                         const float *beta, float eps, float momentum, int relu,
                         float *run_mean, float *run_var, float *mean, float *invstd, float *y) {
  BS_PROF_BEGIN(ctx);
  double *sums = checked_malloc(2 * (size_t)C * sizeof(double));
  float *scale = checked_malloc(2 * (size_t)C * sizeof(float)), *shift = scale + C;
  bn_ctx c = {.x = x, .rows = rows, .C = C};
  reduce(ctx, &c, sums);
  const double n = rows > 0 ? (double)rows : 1.0;
  for (int ch = 0; ch < C; ch++) {
    const double m = sums[ch] / n;
    double var = sums[C + ch] / n - m * m;   // biased, for normalising
    if (var < 0) var = 0;
    const double is = 1.0 / sqrt(var + eps);
    mean[ch] = (float)m;
    invstd[ch] = (float)is;
    scale[ch] = (float)(gamma[ch] * is);
    shift[ch] = (float)(beta[ch] - m * gamma[ch] * is);
    const double unbiased = rows > 1 ? var * n / (n - 1) : var;
    run_mean[ch] = (float)((1.0 - momentum) * run_mean[ch] + momentum * m);
    run_var[ch] = (float)((1.0 - momentum) * run_var[ch] + momentum * unbiased);
  }
  c.scale = scale;
  c.shift = shift;
  c.relu = relu;
  c.y = y;
  bs_parallel_for(ctx, row_tasks(rows, ctx->threads), scale_shift_task, &c);
  free(sums);
  free(scale);
  BS_PROF_END(ctx, BS_PROF_BN_FWD);
}

void bs_bn_infer_affine(const float *gamma, const float *beta, const float *run_mean,
                        const float *run_var, float eps, int C, float *scale, float *shift) {
  for (int ch = 0; ch < C; ch++) {
    const double is = 1.0 / sqrt((double)run_var[ch] + eps);
    scale[ch] = (float)(gamma[ch] * is);
    shift[ch] = (float)(beta[ch] - (double)run_mean[ch] * gamma[ch] * is);
  }
}

void bs_bn_forward_infer(bs_context *ctx, const float *x, size_t rows, int C, const float *gamma,
                         const float *beta, const float *run_mean, const float *run_var,
                         float eps, int relu, float *y) {
  BS_PROF_BEGIN(ctx);
  float *scale = checked_malloc(2 * (size_t)C * sizeof(float)), *shift = scale + C;
  bs_bn_infer_affine(gamma, beta, run_mean, run_var, eps, C, scale, shift);
  bn_ctx c = {.x = x, .rows = rows, .C = C, .scale = scale, .shift = shift, .relu = relu, .y = y};
  bs_parallel_for(ctx, row_tasks(rows, ctx->threads), scale_shift_task, &c);
  free(scale);
  BS_PROF_END(ctx, BS_PROF_BN_FWD);
}

// With xc = x - mean, xhat = xc*invstd, y = gamma*xhat + beta:
//   dbeta = sum dy, dgamma = invstd * sum dy*xc,
//   dx = gamma*invstd * (dy - dbeta/n - xc * invstd^2 * sum(dy*xc)/n)
//      = k1*dy + k2*x + k3 with k1 = gamma*invstd, k2 = -k1*invstd^2*S/n,
//        k3 = -k1*dbeta/n - k2*mean.
void bs_bn_backward(bs_context *ctx, const float *dy, const float *x, size_t rows, int C, const float *gamma,
                    const float *mean, const float *invstd, float *dgamma, float *dbeta,
                    float *dx) {
  BS_PROF_BEGIN(ctx);
  double *sums = checked_malloc(2 * (size_t)C * sizeof(double));
  float *k = checked_malloc(3 * (size_t)C * sizeof(float));
  bn_ctx c = {.x = x, .dy = dy, .mean = mean, .rows = rows, .C = C};
  reduce(ctx, &c, sums);
  const double n = rows > 0 ? (double)rows : 1.0;
  for (int ch = 0; ch < C; ch++) {
    const double is = invstd[ch], sdy = sums[ch], sdyxc = sums[C + ch];
    dbeta[ch] = (float)sdy;
    dgamma[ch] = (float)(sdyxc * is);
    const double k1 = gamma[ch] * is;
    const double k2 = -k1 * is * is * sdyxc / n;
    k[ch] = (float)k1;
    k[C + ch] = (float)k2;
    k[2 * C + ch] = (float)(-k1 * sdy / n - k2 * mean[ch]);
  }
  c.k1 = k;
  c.k2 = k + C;
  c.k3 = k + 2 * C;
  c.y = dx;
  bs_parallel_for(ctx, row_tasks(rows, ctx->threads), axpby_task, &c);
  free(sums);
  free(k);
  BS_PROF_END(ctx, BS_PROF_BN_BWD);
}
