// What a context is made of, for the ops in this directory (callers see only ckernels.h).
#ifndef BLOCKSCOPE_CONTEXT_INTERNAL_H
#define BLOCKSCOPE_CONTEXT_INTERNAL_H
#include "ckernels.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

// Contract checks that cost nothing measurable; on in every build (a broken contract here is
// memory corruption later).
#define BS_CHECK(cond, msg)                                                                     \
  do {                                                                                          \
    if (__builtin_expect(!(cond), 0)) {                                                         \
      fprintf(stderr, "blockscope: %s (%s:%d)\n", msg, __FILE__, __LINE__);                     \
      abort();                                                                                  \
    }                                                                                           \
  } while (0)

// Contracts a caller must keep (shapes filled in, outputs not overlapping inputs), checked in
// debug builds (SwiftPM defines DEBUG for them, C targets included) and compiled away in
// release builds, where they would cost a branch per call on the hot path.
#if defined(DEBUG) || defined(BS_ENABLE_ASSERTS)
#define BS_ASSERT(cond, msg) BS_CHECK(cond, msg)
#else
#define BS_ASSERT(cond, msg) ((void)0)
#endif

// Whether [a, a + abytes) and [b, b + bbytes) share a byte.
static inline int bs_overlaps(const void *a, size_t abytes, const void *b, size_t bbytes) {
  const char *pa = a, *pb = b;
  return abytes && bbytes && pa < pb + bbytes && pb < pa + abytes;
}

// Per-op wall-clock accounting of the layer ops: where a training step spends its time,
// without a sampling profiler.
enum { BS_PROF_CONV_FWD, BS_PROF_CONV_BWD, BS_PROF_BN_FWD, BS_PROF_BN_BWD, BS_PROF_ELTWISE,
       BS_PROF_HEAD, BS_PROF_COUNT };

struct bs_worker {
  bs_context *ctx;
  int index;   // 0: the thread that called bs_parallel_for
  float *scratch[BS_SCRATCH_OWNER_COUNT];
  size_t capacity[BS_SCRATCH_OWNER_COUNT];
};

struct bs_context {
  int threads;
  bs_isa isa;
  bs_kernels kernels;
  int conv_algorithm;
  int winograd_tile;   // 2 or 4: F(m x m, 3 x 3) for every Winograd layer; 0: per layer shape
  int profile_on;
  double profile_seconds[BS_PROF_COUNT];
  long profile_calls[BS_PROF_COUNT];
  bs_worker *workers;   // [threads]; workers[0] is the caller's
  // The pool: threads - 1 pthreads, started on the first parallel section that needs them.
  atomic_int entered;   // a parallel section is running (one at a time per context)
  int started;          // pthreads started
  pthread_t *pthreads;
  pthread_mutex_t mu;
  pthread_cond_t work_cv, done_cv;
  // Written under mu; read without it only by the spins (the sleeping paths re-check under mu).
  atomic_ulong generation;
  atomic_int stop;
  bs_task_fn *job_fn;
  void *job_arg;
  int job_ntasks;
  atomic_int next_task;
  atomic_int busy_workers;
};

static inline double bs_prof_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}
// Usage: BS_PROF_BEGIN(ctx); ...; BS_PROF_END(ctx, BS_PROF_CONV_FWD);
#define BS_PROF_BEGIN(ctx) const double bs_prof_t0 = (ctx)->profile_on ? bs_prof_now() : 0.0
#define BS_PROF_END(ctx, op)                                                                    \
  do {                                                                                          \
    if ((ctx)->profile_on) {                                                                    \
      (ctx)->profile_seconds[op] += bs_prof_now() - bs_prof_t0;                                 \
      (ctx)->profile_calls[op]++;                                                               \
    }                                                                                           \
  } while (0)

// Batch norm with running statistics as y = scale * x + shift per channel (batchnorm_ops.c;
// the one formula of bs_bn_forward_infer and of the BN folded into a convolution).
void bs_bn_infer_affine(const float *gamma, const float *beta, const float *run_mean,
                        const float *run_var, float eps, int C, float *scale, float *shift);

// A worker's scratch for a layer op, which cannot recover mid-step: aborts with `what` when out
// of memory (the convolutions' shared policy).
static inline float *bs_worker_scratch_or_abort(bs_worker *w, bs_scratch_owner owner,
                                                size_t floats, const char *what) {
  float *p = bs_worker_scratch(w, owner, floats);
  BS_CHECK(p, what);
  return p;
}

// Row range [begin, end) of task t when `rows` rows are split into ntasks near-equal parts.
static inline void bs_split(size_t rows, int t, int ntasks, size_t *begin, size_t *end) {
  *begin = rows * (size_t)t / (size_t)ntasks;
  *end = rows * (size_t)(t + 1) / (size_t)ntasks;
}

// The convolutions and the batch-norm reductions split their work into this many tasks
// whatever the thread count, so that their results do not depend on it: a model trained on 1
// thread or on 8 gets the same weights bit for bit. (A reduction's partial sums obviously
// depend on the partition; less obviously, so does an sgemm over a chunk of images, whose
// edge rows OpenBLAS may accumulate in another order.) 16 keeps up to 16 threads busy; the
// partial buffers it costs are small (at most 16 copies of one layer's weight gradient).
enum { BS_PARTITION_TASKS = 16 };

#endif
