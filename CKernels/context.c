// Execution contexts: each owns its threads (the caller plus threads - 1 workers), its kernel
// table, its convolution algorithm, its scratch memory and its profile counters. Nothing here
// is shared between contexts, so two requests on two contexts neither wait for each other nor
// change each other's results.
//
// bs_parallel_for hands out task indices from an atomic counter; callers make results depend
// on the task index only (fixed partitions, per-task partial sums reduced in task order).
//
// Hand-off: a forward pass with its Grams calls bs_parallel_for ~600 times per 256-image
// batch (every conv, BN, ReLU, add, centring and Gram), a few hundred microseconds each. With
// condition variables alone, every call paid a futex wake of the sleeping worker and another
// of the waiting caller, on this VM tens of microseconds each. So both sides first spin for
// a bounded time (SPIN_ROUNDS pauses, ~0.25 ms) on the atomics, and only then sleep on the
// condition variables; an idle context (a daemon between requests) sleeps. (Measured:
// docs/PERFORMANCE.md, "Thread-pool hand-off".)
#include "context_internal.h"
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static inline void cpu_relax(void) { _mm_pause(); }
#else
static inline void cpu_relax(void) {}
#endif

extern void openblas_set_num_threads(int);

enum { SPIN_ROUNDS = 16384 };   // ~0.25 ms: a pause takes ~15 ns on this Zen 4

int bs_default_threads(void) {
  const char *env = getenv("BLOCKSCOPE_THREADS");
  if (env && atoi(env) > 0) return atoi(env) > BS_MAX_THREADS ? BS_MAX_THREADS : atoi(env);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : n > BS_MAX_THREADS ? BS_MAX_THREADS : (int)n;
}

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
// OpenBLAS stays single-threaded: parallelism is the contexts'. (A process-wide setting, but a
// constant one: no context changes it.)
static void blas_single_threaded(void) { openblas_set_num_threads(1); }

static int profile_default(void) {
  const char *e = getenv("BLOCKSCOPE_PROFILE");
  return e && *e && strcmp(e, "0") != 0;
}

bs_context *bs_context_create(int threads) {
  pthread_once(&blas_once, blas_single_threaded);
  if (threads < 1) threads = 1;
  if (threads > BS_MAX_THREADS) threads = BS_MAX_THREADS;
  bs_context *ctx = calloc(1, sizeof *ctx);
  if (!ctx) return NULL;
  ctx->workers = calloc((size_t)threads, sizeof *ctx->workers);
  ctx->pthreads = calloc((size_t)threads, sizeof *ctx->pthreads);
  if (!ctx->workers || !ctx->pthreads) {
    free(ctx->workers);
    free(ctx->pthreads);
    free(ctx);
    return NULL;
  }
  ctx->threads = threads;
  for (int i = 0; i < threads; i++) {
    ctx->workers[i].ctx = ctx;
    ctx->workers[i].index = i;
  }
  ctx->isa = bs_default_isa();
  BS_CHECK(bs_kernels_select(ctx->isa, &ctx->kernels) == BS_OK, "default ISA not runnable");
  ctx->conv_algorithm = bs_default_conv_algorithm();
  ctx->profile_on = profile_default();
  pthread_mutex_init(&ctx->mu, NULL);
  pthread_cond_init(&ctx->work_cv, NULL);
  pthread_cond_init(&ctx->done_cv, NULL);
  return ctx;
}

void bs_context_destroy(bs_context *ctx) {
  if (!ctx) return;
  BS_CHECK(atomic_load(&ctx->entered) == 0, "bs_context_destroy during a parallel section");
  pthread_mutex_lock(&ctx->mu);
  atomic_store(&ctx->stop, 1);
  atomic_fetch_add(&ctx->generation, 1);
  pthread_cond_broadcast(&ctx->work_cv);
  pthread_mutex_unlock(&ctx->mu);
  for (int i = 0; i < ctx->started; i++) pthread_join(ctx->pthreads[i], NULL);
  for (int i = 0; i < ctx->threads; i++)
    for (int o = 0; o < BS_SCRATCH_OWNER_COUNT; o++) free(ctx->workers[i].scratch[o]);
  pthread_mutex_destroy(&ctx->mu);
  pthread_cond_destroy(&ctx->work_cv);
  pthread_cond_destroy(&ctx->done_cv);
  free(ctx->workers);
  free(ctx->pthreads);
  free(ctx);
}

int bs_context_threads(const bs_context *ctx) { return ctx->threads; }
bs_isa bs_context_isa(const bs_context *ctx) { return ctx->isa; }
const bs_kernels *bs_context_kernels(const bs_context *ctx) { return &ctx->kernels; }
bs_worker *bs_context_caller(bs_context *ctx) { return &ctx->workers[0]; }

bs_status bs_context_set_isa(bs_context *ctx, bs_isa isa) {
  const bs_status st = bs_kernels_select(isa, &ctx->kernels);
  if (st == BS_OK) ctx->isa = isa;
  return st;
}

int bs_context_conv_algorithm(const bs_context *ctx) { return ctx->conv_algorithm; }

void bs_context_set_conv_algorithm(bs_context *ctx, int algorithm) {
  if (algorithm >= 0 && algorithm < BS_CONV_ALGORITHM_COUNT) ctx->conv_algorithm = algorithm;
}

int bs_context_winograd_tile(const bs_context *ctx) { return ctx->winograd_tile; }

void bs_context_set_winograd_tile(bs_context *ctx, int m) {
  if (m == 0 || m == 2 || m == 4) ctx->winograd_tile = m;
}

static const char *profile_names[BS_PROF_COUNT] = {
    "conv forward", "conv backward", "bn forward", "bn backward", "elementwise",
    "linear+softmax"};

void bs_context_profile_enable(bs_context *ctx, int on) {
  ctx->profile_on = on != 0;
  memset(ctx->profile_seconds, 0, sizeof ctx->profile_seconds);
  memset(ctx->profile_calls, 0, sizeof ctx->profile_calls);
}

int bs_context_profile_read(const bs_context *ctx, int op, const char **name, double *seconds,
                            long *calls) {
  if (op < 0 || op >= BS_PROF_COUNT) return -1;
  *name = profile_names[op];
  *seconds = ctx->profile_seconds[op];
  *calls = ctx->profile_calls[op];
  return 0;
}

float *bs_worker_scratch(bs_worker *w, bs_scratch_owner owner, size_t floats) {
  BS_CHECK((int)owner >= 0 && owner < BS_SCRATCH_OWNER_COUNT, "unknown scratch owner");
  if (floats > w->capacity[owner] || !w->scratch[owner]) {
    free(w->scratch[owner]);
    w->capacity[owner] = 0;
    const size_t bytes = ((floats ? floats : 1) * sizeof(float) + 63) & ~(size_t)63;
    w->scratch[owner] = aligned_alloc(64, bytes);
    if (!w->scratch[owner]) return NULL;
    w->capacity[owner] = floats;
  }
  return w->scratch[owner];
}

int bs_worker_index(const bs_worker *w) { return w->index; }
const bs_kernels *bs_worker_kernels(const bs_worker *w) { return &w->ctx->kernels; }

static void run_tasks(bs_context *ctx, bs_worker *w) {
  for (;;) {
    const int t = atomic_fetch_add(&ctx->next_task, 1);
    if (t >= ctx->job_ntasks) break;
    ctx->job_fn(ctx->job_arg, t, ctx->job_ntasks, w);
  }
}

typedef struct {
  bs_context *ctx;
  int index;
  unsigned long seen;   // the generation current when the worker was started
} worker_start;

// A worker only runs jobs published after it exists: starting from 0 instead, one started
// after jobs have run would take the last, finished generation as new work.
static void *worker_main(void *arg) {
  worker_start start = *(worker_start *)arg;
  free(arg);
  bs_context *ctx = start.ctx;
  bs_worker *w = &ctx->workers[start.index];
  unsigned long seen = start.seen;
  for (;;) {
    for (int i = 0; i < SPIN_ROUNDS && atomic_load(&ctx->generation) == seen; i++) cpu_relax();
    pthread_mutex_lock(&ctx->mu);
    while (atomic_load(&ctx->generation) == seen) pthread_cond_wait(&ctx->work_cv, &ctx->mu);
    seen = atomic_load(&ctx->generation);
    pthread_mutex_unlock(&ctx->mu);
    if (atomic_load(&ctx->stop)) return NULL;
    run_tasks(ctx, w);
    pthread_mutex_lock(&ctx->mu);
    if (atomic_fetch_sub(&ctx->busy_workers, 1) == 1) pthread_cond_signal(&ctx->done_cv);
    pthread_mutex_unlock(&ctx->mu);
  }
}

// Starts the workers that are missing; on failure runs with fewer (results do not depend on
// how many threads run the tasks).
static void start_workers(bs_context *ctx) {
  while (ctx->started < ctx->threads - 1) {
    worker_start *s = malloc(sizeof *s);
    if (!s) return;
    *s = (worker_start){ctx, ctx->started + 1, atomic_load(&ctx->generation)};
    if (pthread_create(&ctx->pthreads[ctx->started], NULL, worker_main, s) != 0) {
      free(s);
      return;
    }
    ctx->started++;
  }
}

void bs_parallel_for(bs_context *ctx, int ntasks, bs_task_fn *fn, void *arg) {
  if (ntasks <= 0) return;
  BS_CHECK(atomic_exchange(&ctx->entered, 1) == 0,
           "bs_parallel_for: context already in a parallel section (shared between threads, "
           "or called from one of its own tasks)");
  const int want_workers = (ntasks < ctx->threads ? ntasks : ctx->threads) - 1;
  if (want_workers > 0) start_workers(ctx);
  if (want_workers <= 0 || ctx->started == 0) {
    for (int t = 0; t < ntasks; t++) fn(arg, t, ntasks, &ctx->workers[0]);
    atomic_store(&ctx->entered, 0);
    return;
  }
  pthread_mutex_lock(&ctx->mu);
  ctx->job_fn = fn;
  ctx->job_arg = arg;
  ctx->job_ntasks = ntasks;
  atomic_store(&ctx->next_task, 0);
  atomic_store(&ctx->busy_workers, ctx->started);
  atomic_fetch_add(&ctx->generation, 1);   // after the job fields: a spinning worker that sees
  pthread_cond_broadcast(&ctx->work_cv);   // it also sees them (seq_cst)
  pthread_mutex_unlock(&ctx->mu);
  run_tasks(ctx, &ctx->workers[0]);
  for (int i = 0; i < SPIN_ROUNDS && atomic_load(&ctx->busy_workers) > 0; i++) cpu_relax();
  if (atomic_load(&ctx->busy_workers) > 0) {
    pthread_mutex_lock(&ctx->mu);
    while (atomic_load(&ctx->busy_workers) > 0) pthread_cond_wait(&ctx->done_cv, &ctx->mu);
    pthread_mutex_unlock(&ctx->mu);
  }
  atomic_store(&ctx->entered, 0);
}
