// bs_find_nonfinite, AVX-512: as the AVX2 variant (exponent bits all ones <=> NaN or
// infinity), 64 values per step as four compare masks; the step holding a non-finite value is
// rescanned in scalar to name the first one.
#include <math.h>

#include "ckernels.h"
#include "simd_avx512.h"

// x: [n] -> *first = the index of the first NaN or infinity in x, or n if every value is finite.
BS_AVX512 void bs_find_nonfinite_avx512(const float *x, size_t n, size_t *first) {
  const __m512i exponent = _mm512_set1_epi32(0x7f800000);
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
#define BS_NONFINITE16(off)                                                                      \
  _mm512_cmpeq_epi32_mask(_mm512_and_si512(_mm512_loadu_si512((const void *)(x + i + (off))),   \
                                           exponent), exponent)
    if (BS_NONFINITE16(0) | BS_NONFINITE16(16) | BS_NONFINITE16(32) | BS_NONFINITE16(48)) break;
#undef BS_NONFINITE16
  }
  for (; i < n; i++) {
    if (!isfinite(x[i])) {
      *first = i;
      return;
    }
  }
  *first = n;
}
