// Threaded drivers for CKA: the Gram matrix of column-centred features, all pairwise dot
// products of packed Gram vectors (a heatmap is one such product), and the top eigenpair /
// singular triplet through LAPACKE. The micro-kernels they call are in gram_{ref,avx2,avx512}.c
// and dots_{ref,avx2,avx512}.c (bs_dots_acc, in place of cblas_ssyrk / cblas_sgemm: faster
// on these short, wide shapes, see dots_avx2.c and dots_avx512.c).
//
// Determinism: work is split into the context's thread count of tasks by fixed ranges, each task accumulates
// privately, and the partials are summed in task order, so results depend on the thread count
// but not on scheduling.
#include "context_internal.h"
#include "task_partials.h"
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

// Columns per panel: m x 512 floats (512 KB for m = 256) stay in L2 from centring to the
// product.
enum { GRAM_PANEL = 512, DOTS_CHUNK = 4096, MAX_TASKS = 64 };

typedef struct {
  const float *x;
  int m;
  size_t d;
  float *partials;   // [ntasks][m][m], one per task (a thread may run several tasks)
  double mean_sq[MAX_TASKS];
  atomic_int failed;   // a task could not get its scratch
} gram_ctx;

static void gram_task(void *p, int t, int ntasks, bs_worker *wk) {
  gram_ctx *c = p;
  const bs_kernels *k = bs_worker_kernels(wk);
  size_t j0, j1;
  bs_split(c->d, t, ntasks, &j0, &j1);
  const int m = c->m;
  float *panel = bs_worker_scratch(wk, BS_SCRATCH_GRAM_PANEL, (size_t)m * GRAM_PANEL);
  if (!panel) {
    atomic_store(&c->failed, 1);
    return;
  }
  float *K = c->partials + (size_t)t * m * m;
  memset(K, 0, sizeof(float) * m * m);
  for (size_t j = j0; j < j1; j += GRAM_PANEL) {
    const size_t w = j1 - j < GRAM_PANEL ? j1 - j : GRAM_PANEL;
    // This panel's columns, centred, copied into the compact panel in the same pass.
    k->bs_center_columns(c->x + j, m, w, c->d, panel, w);
    // The column means, recovered from row 0 (x - (x - mean)), for the variance check.
    double ms = 0;
    for (size_t k = 0; k < w; k++) {
      const double mean = (double)c->x[j + k] - (double)panel[k];
      ms += mean * mean;
    }
    c->mean_sq[t] += ms;
    // K += panel panel^T, upper triangle only (the reduction below reads j >= i).
    k->bs_dots_acc(panel, m, (int)w, panel, m, (int)w, (int)w, 1, K, m);
  }
}

bs_status bs_gram_centered(bs_context *ctx, const float *x, int m, size_t d, float *K,
                           double *mean_sq) {
  BS_ASSERT(!bs_overlaps(x, sizeof(float) * m * d, K, sizeof(float) * m * m),
            "bs_gram_centered: K overlaps x");
  gram_ctx c = {.x = x, .m = m, .d = d};
  int ntasks = ctx->threads;
  if (ntasks > MAX_TASKS) ntasks = MAX_TASKS;
  // Below a few panels per task the split costs more than it saves.
  if ((size_t)ntasks * GRAM_PANEL > d) ntasks = (int)((d + GRAM_PANEL - 1) / GRAM_PANEL);
  if (ntasks < 1) ntasks = 1;
  // The caller's partials buffer: grows once per context, no mmap per call.
  c.partials = bs_worker_scratch(bs_context_caller(ctx), BS_SCRATCH_TASK_PARTIALS,
                                 (size_t)ntasks * m * m);
  if (!c.partials) return BS_ERR_NO_MEMORY;
  bs_parallel_for(ctx, ntasks, gram_task, &c);
  if (atomic_load(&c.failed)) return BS_ERR_NO_MEMORY;
  bs_reduce_task_partials(c.partials, (size_t)m * m, ntasks, m, K);
  if (mean_sq) {
    *mean_sq = 0;
    for (int t = 0; t < ntasks; t++) *mean_sq += c.mean_sq[t];
  }
  return BS_OK;
}

typedef struct {
  const float *const *a;
  const float *const *b;   // NULL: a against itself
  int na, nb;
  size_t len;
  ptrdiff_t stride_a, stride_b;   // > 0: the vectors sit at this constant stride (no gather)
  double *accs;   // [ntasks][na][nb or na], one per task
  atomic_int failed;   // a task could not get its scratch
} dots_ctx;

static void dots_task(void *p, int t, int ntasks, bs_worker *wk) {
  dots_ctx *c = p;
  const bs_kernels *kn = bs_worker_kernels(wk);
  const size_t nchunks = (c->len + DOTS_CHUNK - 1) / DOTS_CHUNK;
  size_t k0, k1;
  bs_split(nchunks, t, ntasks, &k0, &k1);
  const int na = c->na, nb = c->b ? c->nb : c->na;
  float *pa = bs_worker_scratch(wk, BS_SCRATCH_DOTS_A, (size_t)na * DOTS_CHUNK);
  float *pb = c->b ? bs_worker_scratch(wk, BS_SCRATCH_DOTS_B, (size_t)nb * DOTS_CHUNK) : pa;
  float *prod = bs_worker_scratch(wk, BS_SCRATCH_DOTS_PRODUCT, (size_t)na * nb);
  if (!pa || !pb || !prod) {
    atomic_store(&c->failed, 1);
    return;
  }
  double *acc = c->accs + (size_t)t * na * nb;
  memset(acc, 0, sizeof(double) * na * nb);
  for (size_t k = k0; k < k1; k++) {
    const size_t off = k * DOTS_CHUNK;
    const int w = (int)(c->len - off < DOTS_CHUNK ? c->len - off : DOTS_CHUNK);
    const float *A = pa, *B = pb;
    int lda = w, ldb = w;
    if (c->stride_a > 0) {
      A = c->a[0] + off;
      lda = (int)c->stride_a;
    } else {
      for (int i = 0; i < na; i++) memcpy(pa + (size_t)i * w, c->a[i] + off, (size_t)w * 4);
    }
    if (c->b) {
      if (c->stride_b > 0) {
        B = c->b[0] + off;
        ldb = (int)c->stride_b;
      } else {
        for (int i = 0; i < nb; i++) memcpy(pb + (size_t)i * w, c->b[i] + off, (size_t)w * 4);
      }
      memset(prod, 0, sizeof(float) * (size_t)na * nb);
      kn->bs_dots_acc(A, na, lda, B, nb, ldb, w, 0, prod, nb);
      for (size_t i = 0; i < (size_t)na * nb; i++) acc[i] += prod[i];
    } else {
      // Upper triangle only: the entries below the diagonal are neither needed nor read.
      memset(prod, 0, sizeof(float) * (size_t)na * na);
      kn->bs_dots_acc(A, na, lda, A, na, lda, w, 1, prod, na);
      for (int i = 0; i < na; i++)
        for (int j = i; j < na; j++) acc[(size_t)i * na + j] += prod[(size_t)i * na + j];
    }
  }
}

// The constant stride between consecutive vectors (>= len, fits an int), or 0.
static ptrdiff_t constant_stride(const float *const *v, int n, size_t len) {
  if (n < 2) return n == 1 ? (ptrdiff_t)len : 0;
  const ptrdiff_t s = v[1] - v[0];
  if (s < (ptrdiff_t)len || s > 0x7fffffff) return 0;
  for (int i = 2; i < n; i++)
    if (v[i] - v[i - 1] != s) return 0;
  return s;
}

bs_status bs_pairwise_dots(bs_context *ctx, const float *const *a, int na, const float *const *b,
                           int nb, size_t len, double *out) {
  const int cols = b ? nb : na;
  memset(out, 0, sizeof(double) * na * cols);
  if (na == 0 || cols == 0 || len == 0) return BS_OK;
  dots_ctx c = {.a = a, .b = b, .na = na, .nb = nb, .len = len,
               .stride_a = constant_stride(a, na, len), .stride_b = b ? constant_stride(b, nb, len) : 0};
  int ntasks = ctx->threads;
  if (ntasks > MAX_TASKS) ntasks = MAX_TASKS;
  const size_t nchunks = (len + DOTS_CHUNK - 1) / DOTS_CHUNK;
  if ((size_t)ntasks > nchunks) ntasks = (int)nchunks;
  // The caller's partials buffer: grows once per context, no mmap per call.
  c.accs = (double *)bs_worker_scratch(bs_context_caller(ctx), BS_SCRATCH_TASK_PARTIALS,
                                       2 * (size_t)ntasks * na * cols);
  if (!c.accs) return BS_ERR_NO_MEMORY;
  bs_parallel_for(ctx, ntasks, dots_task, &c);
  if (atomic_load(&c.failed)) return BS_ERR_NO_MEMORY;
  for (int t = 0; t < ntasks; t++)
    for (size_t i = 0; i < (size_t)na * cols; i++) out[i] += c.accs[(size_t)t * na * cols + i];
  if (!b)
    for (int i = 0; i < na; i++)
      for (int j = 0; j < i; j++) out[(size_t)i * na + j] = out[(size_t)j * na + i];
  return BS_OK;
}

bs_status bs_sym_top_eigen(const float *K, int m, float *lambda, float *u, int *lapack_info) {
  if (lapack_info) *lapack_info = 0;
  float *a = malloc(sizeof(float) * (size_t)m * m);
  if (!a) return BS_ERR_NO_MEMORY;
  memcpy(a, K, sizeof(float) * (size_t)m * m);
  lapack_int found = 0, isuppz[2];
  float w[1];
  // Only the largest eigenvalue (index m of m, ascending) and its vector.
  const lapack_int info = LAPACKE_ssyevr(LAPACK_ROW_MAJOR, 'V', 'I', 'U', m, a, m, 0.0f, 0.0f,
                                         m, m, 0.0f, &found, w, u, 1, isuppz);
  free(a);
  if (info != 0) {
    if (lapack_info) *lapack_info = (int)info;
    return BS_ERR_LAPACK;
  }
  if (found != 1) return BS_ERR_NO_SOLUTION;
  *lambda = w[0];
  return BS_OK;
}

bs_status bs_top_singular(const float *x, int n, size_t d, float *s1, float *u,
                          int *lapack_info) {
  if (lapack_info) *lapack_info = 0;
  float *a = malloc(sizeof(float) * (size_t)n * d);
  const size_t minnd = (size_t)n < d ? (size_t)n : d;
  float *s = malloc(sizeof(float) * minnd);
  float *vt = malloc(sizeof(float) * d);
  lapack_int *superb = malloc(sizeof(lapack_int) * 12 * minnd);
  bs_status st = BS_ERR_NO_MEMORY;
  if (a && s && vt && superb) {
    memcpy(a, x, sizeof(float) * (size_t)n * d);
    lapack_int ns = 0;
    const lapack_int info = LAPACKE_sgesvdx(LAPACK_ROW_MAJOR, 'V', 'N', 'I', n, (lapack_int)d, a,
                                            (lapack_int)d, 0.0f, 0.0f, 1, 1, &ns, s, u, 1, vt,
                                            (lapack_int)d, superb);
    if (info != 0) {
      if (lapack_info) *lapack_info = (int)info;
      st = BS_ERR_LAPACK;
    } else {
      st = ns != 1 ? BS_ERR_NO_SOLUTION : BS_OK;
    }
    if (st == BS_OK) *s1 = s[0];
  }
  free(a);
  free(s);
  free(vt);
  free(superb);
  return st;
}
