// OpenBLAS (built with DYNAMIC_ARCH, as Debian ships it) picks its kernels from cpuid once,
// when the library loads. A CPU newer than the library is not recognised and gets a generic
// fallback: OpenBLAS 0.3.21 calls this machine's Zen 4 "Prescott" and runs SSE3 kernels,
// 2.5-3.5x slower than its Haswell (AVX2) or SkylakeX (AVX-512) ones (every convolution is an
// sgemm). The choice can only be overridden through OPENBLAS_CORETYPE before the library
// loads, so an executable that finds a weaker core than the CPU supports re-executes itself
// once with the variable set. Setting OPENBLAS_CORETYPE yourself disables all of this.
#define _GNU_SOURCE
#include "ckernels.h"
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

extern char *openblas_get_corename(void);

const char *bs_blas_core_name(void) {
  const char *name = openblas_get_corename();
  return name ? name : "unknown";
}

static int any_of(const char *name, const char *const *list) {
  for (; *list; list++)
    if (strcasecmp(name, *list) == 0) return 1;
  return 0;
}

const char *bs_blas_core_suggestion(void) {
  if (getenv("OPENBLAS_CORETYPE")) return NULL;
  __builtin_cpu_init();
  const int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                     __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const char *core = bs_blas_core_name();
  static const char *const avx512_cores[] = {"SkylakeX", "CooperLake", "SapphireRapids", NULL};
  static const char *const avx2_cores[] = {"Haswell", "Zen", "SkylakeX", "CooperLake",
                                           "SapphireRapids", NULL};
  if (avx512) return any_of(core, avx512_cores) ? NULL : "SkylakeX";
  if (avx2) return any_of(core, avx2_cores) ? NULL : "Haswell";
  return NULL;
}

int bs_blas_reexec_if_untuned(char *const *argv) {
  // Once only: a library that ignores the variable must not make us loop.
  if (getenv("BLOCKSCOPE_BLAS_REEXEC")) return 0;
  const char *core = bs_blas_core_suggestion();
  if (!core) return 0;
  if (setenv("OPENBLAS_CORETYPE", core, 1) != 0) return -1;
  if (setenv("BLOCKSCOPE_BLAS_REEXEC", "1", 1) != 0) return -1;
  execv("/proc/self/exe", argv);
  // exec failed: carry on with the slow kernels rather than not at all.
  unsetenv("OPENBLAS_CORETYPE");
  return -1;
}
