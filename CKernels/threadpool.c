// The process-wide thread pool: (threads - 1) workers plus the calling thread.
// bs_parallel_for hands out task indices from an atomic counter; callers make results depend
// on the task index only (fixed partitions, per-task partial sums reduced in task order), so
// a fixed thread count gives bit-identical results run to run.
//
// Hand-off: a forward pass with its Grams calls bs_parallel_for ~600 times per 256-image
// batch (every conv, BN, ReLU, add, centring and Gram), a few hundred microseconds each. With
// condition variables alone, every call paid a futex wake of the sleeping worker and another
// of the waiting caller, on this VM tens of microseconds each. So both sides first spin for
// a bounded time (SPIN_ROUNDS pause instructions, ~0.25 ms) on the atomics, and only then
// sleep on the condition variables as before; an idle pool (the daemon between requests)
// sleeps. Measured 2026-12-06, old/new binaries alternated on this noisy VM: ResNet-56
// training 236/256, 217/228, 170/200, 230/241 images/s; inference 698/777, 599/489,
// 596/600, 607/708; bench-cka forward-only passes over 8 x 256 images 3.45/3.07, 3.46/3.03,
// 3.02/2.88 s.
#include "ckernels.h"
#include <immintrin.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

extern void openblas_set_num_threads(int);

#define BS_MAX_THREADS 64

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;   // one parallel_for at a time
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;
static int nthreads = 0;        // configured
static int nworkers = 0;        // started
// Written under mu; read without it only by the spins (the sleeping paths re-check under mu).
static atomic_ulong generation = 0;
static void (*job_fn)(void *, int, int);
static void *job_ctx;
static int job_ntasks;
static atomic_int next_task;
static atomic_int busy_workers;

enum { SPIN_ROUNDS = 16384 };   // ~0.25 ms: a pause takes ~15 ns on this Zen 4

static void run_tasks(void) {
  for (;;) {
    int t = atomic_fetch_add(&next_task, 1);
    if (t >= job_ntasks) break;
    job_fn(job_ctx, t, job_ntasks);
  }
}

// arg: the generation current when the worker was started. A worker must only run jobs
// published after it exists: starting from 0 instead, one started when the pool grows (after
// jobs have run) would take the last, finished generation as new work, and its extra
// --busy_workers could let bs_parallel_for return while another worker is still in a task.
static void *worker_main(void *arg) {
  unsigned long seen = (unsigned long)(uintptr_t)arg;
  for (;;) {
    for (int i = 0; i < SPIN_ROUNDS && atomic_load(&generation) == seen; i++) _mm_pause();
    pthread_mutex_lock(&mu);
    while (atomic_load(&generation) == seen) pthread_cond_wait(&work_cv, &mu);
    seen = atomic_load(&generation);
    pthread_mutex_unlock(&mu);
    run_tasks();
    pthread_mutex_lock(&mu);
    if (atomic_fetch_sub(&busy_workers, 1) == 1) pthread_cond_signal(&done_cv);
    pthread_mutex_unlock(&mu);
  }
  return NULL;
}

static int default_threads(void) {
  const char *env = getenv("BLOCKSCOPE_THREADS");
  if (env && atoi(env) > 0) return atoi(env);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

void bs_set_threads(int n) {
  if (n < 1) n = 1;
  if (n > BS_MAX_THREADS) n = BS_MAX_THREADS;
  pthread_mutex_lock(&pool_lock);
  nthreads = n;
  pthread_mutex_unlock(&pool_lock);
}

int bs_threads(void) {
  pthread_mutex_lock(&pool_lock);
  if (nthreads == 0) nthreads = default_threads();
  int n = nthreads;
  pthread_mutex_unlock(&pool_lock);
  return n;
}

void bs_parallel_for(int ntasks, void (*fn)(void *ctx, int task, int ntasks), void *ctx) {
  if (ntasks <= 0) return;
  pthread_mutex_lock(&pool_lock);
  if (nthreads == 0) nthreads = default_threads();
  static int blas_single = 0;
  if (!blas_single) {
    openblas_set_num_threads(1);
    blas_single = 1;
  }
  const int want_workers = (ntasks < nthreads ? ntasks : nthreads) - 1;
  if (want_workers <= 0) {
    for (int t = 0; t < ntasks; t++) fn(ctx, t, ntasks);
    pthread_mutex_unlock(&pool_lock);
    return;
  }
  while (nworkers < nthreads - 1) {   // workers are started once and live for the process
    pthread_t th;
    // generation only changes under pool_lock, which we hold.
    if (pthread_create(&th, NULL, worker_main, (void *)(uintptr_t)atomic_load(&generation)) != 0)
      break;
    pthread_detach(th);
    nworkers++;
  }
  pthread_mutex_lock(&mu);
  job_fn = fn;
  job_ctx = ctx;
  job_ntasks = ntasks;
  atomic_store(&next_task, 0);
  atomic_store(&busy_workers, nworkers);
  atomic_fetch_add(&generation, 1);   // after the job fields: a spinning worker that sees it
  pthread_cond_broadcast(&work_cv);   // also sees them (seq_cst)
  pthread_mutex_unlock(&mu);
  run_tasks();
  for (int i = 0; i < SPIN_ROUNDS && atomic_load(&busy_workers) > 0; i++) _mm_pause();
  if (atomic_load(&busy_workers) > 0) {
    pthread_mutex_lock(&mu);
    while (atomic_load(&busy_workers) > 0) pthread_cond_wait(&done_cv, &mu);
    pthread_mutex_unlock(&mu);
  }
  pthread_mutex_unlock(&pool_lock);
}
