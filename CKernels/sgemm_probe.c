// The machine's sgemm throughput as this library uses it: every pool thread runs its own
// single-threaded cblas_sgemm on an n x n x n problem at once. Benchmarks report achieved
// GFLOP/s as a share of this figure, measured in the same run.
#include "ckernels.h"
#include <cblas.h>
#include <stdlib.h>
#include <time.h>

typedef struct {
  int n, reps;
} probe_ctx;

static void probe_task(void *p, int t, int ntasks, bs_worker *w) {
  (void)t;
  (void)ntasks;
  (void)w;
  const probe_ctx *c = p;
  const size_t nn = (size_t)c->n * c->n;
  float *a = aligned_alloc(64, nn * 3 * sizeof(float));
  if (!a) return;
  float *b = a + nn, *out = b + nn;
  for (size_t i = 0; i < nn; i++) {
    a[i] = (float)(i % 13) * 0.01f;
    b[i] = (float)(i % 7) * 0.02f;
  }
  for (int r = 0; r < c->reps; r++)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c->n, c->n, c->n, 1.0f, a, c->n, b,
                c->n, 0.0f, out, c->n);
  free(a);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double bs_sgemm_probe_gflops(bs_context *ctx, int n, int reps) {
  const int threads = bs_context_threads(ctx);
  probe_ctx warm = {n, 1};
  bs_parallel_for(ctx, threads, probe_task, &warm);
  probe_ctx c = {n, reps};
  const double t0 = now();
  bs_parallel_for(ctx, threads, probe_task, &c);
  const double dt = now() - t0;
  return 2.0 * n * n * (double)n * reps * threads / dt * 1e-9;
}
