// Finding non-finite values (NaN, +-Inf) in activations that arrive from outside (foreign
// models' SESSION_BATCH tensors): one streaming pass, so the check costs a fraction of the Gram
// that follows. Scalar reference.
#include <math.h>

#include "ckernels.h"

// x: [n] -> *first = the index of the first NaN or infinity in x, or n if every value is finite.
void bs_find_nonfinite_ref(const float *x, size_t n, size_t *first) {
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(x[i])) {
      *first = i;
      return;
    }
  }
  *first = n;
}
