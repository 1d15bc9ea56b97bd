// CPU detection once, the variant table from kernels.inc, and kernel tables per ISA (each
// context holds one). BLOCKSCOPE_ISA=ref|avx2|avx512 chooses the default ISA (falling back,
// with a recorded reason, when the CPU cannot run it).
#include "ckernels.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const bs_kernel_entry kernel_table[] = {
#define BS_KERNEL(op, isa, fn) {#op, BS_ISA_##isa, (void *)fn},
#include "kernels.inc"
#undef BS_KERNEL
};

const bs_kernel_entry *bs_kernel_table(int *count) {
  *count = (int)(sizeof kernel_table / sizeof kernel_table[0]);
  return kernel_table;
}

static bs_isa default_isa = BS_ISA_REF;
static char override_error[160];
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

int bs_isa_supported(bs_isa isa) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  switch (isa) {
  case BS_ISA_REF: return 1;
  case BS_ISA_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  case BS_ISA_AVX512:
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2") &&
           __builtin_cpu_supports("fma");
  default: return 0;
  }
#else
  return isa == BS_ISA_REF;   // the SIMD variants are x86 only
#endif
}

const char *bs_isa_name(bs_isa isa) {
  switch (isa) {
  case BS_ISA_REF: return "ref";
  case BS_ISA_AVX2: return "avx2";
  case BS_ISA_AVX512: return "avx512";
  default: return "?";
  }
}

static void *best_variant(const char *op, bs_isa isa) {
  void *best = NULL;
  int best_isa = -1;
  for (size_t i = 0; i < sizeof kernel_table / sizeof kernel_table[0]; i++) {
    const bs_kernel_entry *e = &kernel_table[i];
    if (strcmp(e->op, op) == 0 && (int)e->isa <= (int)isa && (int)e->isa > best_isa) {
      best = e->fn;
      best_isa = (int)e->isa;
    }
  }
  return best;
}

const char *bs_status_message(bs_status s) {
  switch (s) {
  case BS_OK: return "ok";
  case BS_ERR_NO_MEMORY: return "out of memory";
  case BS_ERR_INVALID: return "invalid argument";
  case BS_ERR_UNSUPPORTED: return "this CPU cannot run the requested ISA";
  case BS_ERR_LAPACK: return "LAPACK reported a failure";
  case BS_ERR_NO_SOLUTION: return "the solver found no eigen or singular value";
  }
  return "unknown status";
}

bs_status bs_kernels_select(bs_isa isa, bs_kernels *k) {
  if ((int)isa < 0 || isa >= BS_ISA_COUNT || !bs_isa_supported(isa)) return BS_ERR_UNSUPPORTED;
#define BS_SELECT(name, params, args) k->name = (name##_t *)best_variant(#name, isa);
  BS_OPS(BS_SELECT)
#undef BS_SELECT
  return BS_OK;
}

static void detect(void) {
  bs_isa isa = bs_isa_supported(BS_ISA_AVX512) ? BS_ISA_AVX512
               : bs_isa_supported(BS_ISA_AVX2) ? BS_ISA_AVX2
                                               : BS_ISA_REF;
  const char *forced = getenv("BLOCKSCOPE_ISA");
  if (forced && *forced) {
    int want = -1;
    for (int i = 0; i < BS_ISA_COUNT; i++)
      if (strcmp(forced, bs_isa_name((bs_isa)i)) == 0) want = i;
    if (want < 0)
      snprintf(override_error, sizeof override_error,
               "BLOCKSCOPE_ISA=%s is not one of ref, avx2, avx512; using %s", forced,
               bs_isa_name(isa));
    else if (!bs_isa_supported((bs_isa)want))
      snprintf(override_error, sizeof override_error,
               "BLOCKSCOPE_ISA=%s: this CPU cannot run it; using %s", forced, bs_isa_name(isa));
    else
      isa = (bs_isa)want;
  }
  default_isa = isa;
}

bs_isa bs_default_isa(void) {
  pthread_once(&init_once, detect);
  return default_isa;
}

const char *bs_isa_override_error(void) {
  pthread_once(&init_once, detect);
  return override_error[0] ? override_error : NULL;
}
