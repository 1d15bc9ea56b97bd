// Blocks of dot products (the product behind ssyrk / sgemm(N, T)), scalar reference. The SIMD
// variants (dots_avx2.c) are checked against it.
#include "ckernels.h"

// a: [na][lda] (first k columns), b: [nb][ldb] (first k columns), C: [na][ldc] (first nb
// columns) -> C[i][j] += sum_p a[i][p] b[j][p]. upper != 0 (a == b, na == nb): only the
// entries with j >= i are needed; the reference computes just those and leaves the rest alone.
// Each dot is accumulated in double and added to C with one rounding.
void bs_dots_acc_ref(const float *a, int na, int lda, const float *b, int nb, int ldb, int k,
                     int upper, float *C, int ldc) {
  for (int i = 0; i < na; i++) {
    const float *ai = a + (size_t)i * lda;
    float *ci = C + (size_t)i * ldc;
    for (int j = upper ? i : 0; j < nb; j++) {
      const float *bj = b + (size_t)j * ldb;
      double s = 0;
      for (int p = 0; p < k; p++) s += (double)ai[p] * bj[p];
      ci[j] = (float)(ci[j] + s);
    }
  }
}
