// Threaded elementwise ops, the linear layer and softmax cross-entropy.
#include "context_internal.h"
#include <cblas.h>
#include <math.h>
#include <string.h>

typedef struct {
  const float *a, *b;
  float *y;
  size_t n;
  int kind;
} elt_ctx;

enum { ELT_RELU, ELT_RELU_BACKWARD, ELT_ADD_RELU, ELT_ADD };

static void elt_task(void *p, int t, int ntasks, bs_worker *w) {
  const elt_ctx *c = p;
  const bs_kernels *k = bs_worker_kernels(w);
  size_t i0, i1;
  bs_split(c->n / 16, t, ntasks, &i0, &i1);   // 16-float aligned splits, tail to the last task
  i0 *= 16;
  i1 = (t == ntasks - 1) ? c->n : i1 * 16;
  const size_t n = i1 - i0;
  switch (c->kind) {
  case ELT_RELU: k->bs_relu(c->a + i0, n, c->y + i0); break;
  case ELT_RELU_BACKWARD: k->bs_relu_backward(c->a + i0, c->b + i0, n, c->y + i0); break;
  case ELT_ADD_RELU: k->bs_add_relu(c->a + i0, c->b + i0, n, c->y + i0); break;
  case ELT_ADD: k->bs_add(c->a + i0, c->b + i0, n, c->y + i0); break;
  }
}

static void elt(bs_context *ctx, int kind, const float *a, const float *b, size_t n, float *y) {
  BS_PROF_BEGIN(ctx);
  elt_ctx c = {.a = a, .b = b, .y = y, .n = n, .kind = kind};
  const int nt = n < 65536 ? 1 : ctx->threads;
  bs_parallel_for(ctx, nt, elt_task, &c);
  BS_PROF_END(ctx, BS_PROF_ELTWISE);
}

void bs_op_relu(bs_context *ctx, const float *x, size_t n, float *y) {
  elt(ctx, ELT_RELU, x, NULL, n, y);
}
void bs_op_relu_backward(bs_context *ctx, const float *y, const float *dy, size_t n, float *dx) {
  elt(ctx, ELT_RELU_BACKWARD, y, dy, n, dx);
}
void bs_op_add_relu(bs_context *ctx, const float *a, const float *b, size_t n, float *y) {
  elt(ctx, ELT_ADD_RELU, a, b, n, y);
}
void bs_op_add(bs_context *ctx, const float *a, const float *b, size_t n, float *y) {
  elt(ctx, ELT_ADD, a, b, n, y);
}

// x [N][In], w [Out][In], b [Out] -> y [N][Out]
void bs_linear_forward(const float *x, int N, int In, int Out, const float *w, const float *b,
                       float *y) {
  for (int n = 0; n < N; n++) memcpy(y + (size_t)n * Out, b, (size_t)Out * sizeof(float));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, Out, In, 1.0f, x, In, w, In, 1.0f, y,
              Out);
}

// dy [N][Out] -> dw = dy^T x [Out][In], db = sum_n dy, dx = dy w [N][In]
void bs_linear_backward(const float *x, int N, int In, int Out, const float *w, const float *dy,
                        float *dw, float *db, float *dx) {
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Out, In, N, 1.0f, dy, Out, x, In, 0.0f,
              dw, In);
  for (int o = 0; o < Out; o++) db[o] = 0.0f;
  for (int n = 0; n < N; n++)
    for (int o = 0; o < Out; o++) db[o] += dy[(size_t)n * Out + o];
  if (dx)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, In, Out, 1.0f, dy, Out, w, In,
                0.0f, dx, In);
}

// logits [N][K], labels [N] -> mean loss; probs, dlogits = (probs - onehot)/N
double bs_softmax_xent(const float *logits, const int32_t *labels, int N, int K, float *probs,
                       float *dlogits, int *correct) {
  double loss = 0.0;
  int hits = 0;
  for (int n = 0; n < N; n++) {
    const float *z = logits + (size_t)n * K;
    int arg = 0;
    for (int k = 1; k < K; k++)
      if (z[k] > z[arg]) arg = k;
    const double zmax = z[arg];
    double denom = 0.0;
    for (int k = 0; k < K; k++) denom += exp((double)z[k] - zmax);
    const int label = labels[n];
    loss += log(denom) - ((double)z[label] - zmax);
    hits += arg == label;
    for (int k = 0; k < K; k++) {
      const double p = exp((double)z[k] - zmax) / denom;
      if (probs) probs[(size_t)n * K + k] = (float)p;
      if (dlogits) dlogits[(size_t)n * K + k] = (float)((p - (k == label)) / N);
    }
  }
  if (correct) *correct = hits;
  return N > 0 ? loss / N : 0.0;
}
