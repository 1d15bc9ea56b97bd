// bs_find_nonfinite, AVX2: a float is NaN or infinite exactly when its exponent bits are all
// ones, so (bits & 0x7f800000) == 0x7f800000 tests 8 values with two integer instructions.
// 32 values per step (four vectors OR-ed) keep the loads streaming; a step that holds a
// non-finite value is rescanned in scalar to name the first one, as the reference does.
#include <math.h>

#include "ckernels.h"
#include "simd_avx2.h"

// x: [n] -> *first = the index of the first NaN or infinity in x, or n if every value is finite.
BS_AVX2 void bs_find_nonfinite_avx2(const float *x, size_t n, size_t *first) {
  const __m256i exponent = _mm256_set1_epi32(0x7f800000);
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
#define BS_NONFINITE8(off)                                                                       \
  _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + i + (off))),     \
                                      exponent), exponent)
    const __m256i any = _mm256_or_si256(_mm256_or_si256(BS_NONFINITE8(0), BS_NONFINITE8(8)),
                                        _mm256_or_si256(BS_NONFINITE8(16), BS_NONFINITE8(24)));
#undef BS_NONFINITE8
    if (!_mm256_testz_si256(any, any)) break;
  }
  for (; i < n; i++) {
    if (!isfinite(x[i])) {
      *first = i;
      return;
    }
  }
  *first = n;
}
