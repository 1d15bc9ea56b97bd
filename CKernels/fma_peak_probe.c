// The machine's fp32 FMA peak as the context's threads see it: every thread runs a loop of
// independent FMAs on registers (no memory traffic) of the widest vectors its ISA has, all
// threads at once. Benchmarks report their effective GFLOP/s as a fraction of this figure,
// measured in the same run (the machine is shared: its peak moves with its neighbours).
#include "ckernels.h"
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

// 12 chains: enough to cover the FMA latency (4 cycles) on two pipes.
enum { CHAINS = 12 };

typedef struct {
  long iterations;
  bs_isa isa;
  volatile float sink;   // keeps the loops' results alive
} peak_job;

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2,fma"))) static float fma_loop_avx2(long n) {
  __m256 acc[CHAINS];
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_set1_ps((float)i);
  for (long k = 0; k < n; k++)
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  float s = 0, t[8];
  for (int i = 0; i < CHAINS; i++) {
    _mm256_storeu_ps(t, acc[i]);
    s += t[0];
  }
  return s;
}

__attribute__((target("avx512f,avx2,fma"))) static float fma_loop_avx512(long n) {
  __m512 acc[CHAINS];
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
  for (long k = 0; k < n; k++)
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  float s = 0;
  for (int i = 0; i < CHAINS; i++) s += _mm512_reduce_add_ps(acc[i]);
  return s;
}
#endif

static float fma_loop_scalar(long n) {
  float acc[CHAINS];
  for (int i = 0; i < CHAINS; i++) acc[i] = (float)i;
  for (long k = 0; k < n; k++)
    for (int i = 0; i < CHAINS; i++) acc[i] = acc[i] * 0.999999f + 1e-7f;
  float s = 0;
  for (int i = 0; i < CHAINS; i++) s += acc[i];
  return s;
}

// Floats per vector of the loop `isa` runs.
static int lanes(bs_isa isa) {
  return isa == BS_ISA_AVX512 ? 16 : isa == BS_ISA_AVX2 ? 8 : 1;
}

static void peak_task(void *p, int t, int ntasks, bs_worker *w) {
  (void)t, (void)ntasks, (void)w;
  peak_job *j = p;
  float s;
#if defined(__x86_64__) || defined(__i386__)
  if (j->isa == BS_ISA_AVX512) s = fma_loop_avx512(j->iterations);
  else if (j->isa == BS_ISA_AVX2) s = fma_loop_avx2(j->iterations);
  else s = fma_loop_scalar(j->iterations);
#else
  s = fma_loop_scalar(j->iterations);
#endif
  j->sink = s;
}

static double seconds_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double bs_fma_peak_probe_gflops(bs_context *ctx, long iterations) {
  const int threads = bs_context_threads(ctx);
  peak_job warm = {iterations / 10 + 1, bs_context_isa(ctx), 0};
  bs_parallel_for(ctx, threads, peak_task, &warm);
  peak_job j = {iterations, bs_context_isa(ctx), 0};
  const double t0 = seconds_now();
  bs_parallel_for(ctx, threads, peak_task, &j);
  const double dt = seconds_now() - t0;
  return 2.0 * CHAINS * lanes(j.isa) * (double)iterations * threads / dt * 1e-9;
}
