// CPU detection once, the variant table from kernels.inc, and the dispatched entry points.
// BLOCKSCOPE_ISA=ref|avx2|avx512 forces a variant (falling back, with a recorded reason, when
// the CPU cannot run it).
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

static bs_isa active_isa = BS_ISA_REF;
static char override_error[160];
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

int bs_isa_supported(bs_isa isa) {
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
}

const char *bs_isa_name(bs_isa isa) {
  switch (isa) {
  case BS_ISA_REF: return "ref";
  case BS_ISA_AVX2: return "avx2";
  case BS_ISA_AVX512: return "avx512";
  default: return "?";
  }
}

// For each op: the pointer to its active variant, chosen by select_variants().
#define BS_DEFINE_PTR(name, params, args) static name##_t *name##_impl;
BS_OPS(BS_DEFINE_PTR)
#undef BS_DEFINE_PTR

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

static void select_variants(bs_isa isa) {
#define BS_SELECT(name, params, args) name##_impl = (name##_t *)best_variant(#name, isa);
  BS_OPS(BS_SELECT)
#undef BS_SELECT
  active_isa = isa;
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
  select_variants(isa);
}

void bs_init(void) { pthread_once(&init_once, detect); }

bs_isa bs_active_isa(void) {
  bs_init();
  return active_isa;
}

const char *bs_isa_override_error(void) {
  bs_init();
  return override_error[0] ? override_error : NULL;
}

int bs_set_isa(bs_isa isa) {
  bs_init();
  if ((int)isa < 0 || isa >= BS_ISA_COUNT || !bs_isa_supported(isa)) return -1;
  select_variants(isa);
  return 0;
}

// The dispatched entry points.
#define BS_DEFINE_ENTRY(name, params, args)                                                      \
  void name params {                                                                             \
    if (__builtin_expect(name##_impl == NULL, 0)) bs_init();                                     \
    name##_impl args;                                                                            \
  }
BS_OPS(BS_DEFINE_ENTRY)
#undef BS_DEFINE_ENTRY
