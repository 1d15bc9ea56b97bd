// Gram-matrix kernels for CKA, scalar references. Every SIMD variant (gram_avx2.c,
// gram_avx512.c) is checked against these; the threaded drivers live in gram_ops.c.
#include <math.h>
#include "ckernels.h"

// x: [m][ld] (first d columns used) -> y: [m][ldy] (first d columns) = x - column mean.
// The means are accumulated in double.
void bs_center_columns_ref(const float *x, int m, size_t d, size_t ld, float *y, size_t ldy) {
  for (size_t j = 0; j < d; j++) {
    double s = 0;
    for (int i = 0; i < m; i++) s += x[(size_t)i * ld + j];
    const float mean = (float)(s / m);
    for (int i = 0; i < m; i++) y[(size_t)i * ldy + j] = x[(size_t)i * ld + j] - mean;
  }
}

// x: [m][ld] (first d columns) -> K: [m][m] = x x^T, full symmetric, accumulated in double.
void bs_gram_ref(const float *x, int m, size_t d, size_t ld, float *K) {
  for (int i = 0; i < m; i++)
    for (int j = i; j < m; j++) {
      double s = 0;
      for (size_t k = 0; k < d; k++) s += (double)x[(size_t)i * ld + k] * x[(size_t)j * ld + k];
      K[(size_t)i * m + j] = K[(size_t)j * m + i] = (float)s;
    }
}

// U-centring (Song et al. 2012; docs/ANALYSIS.md, "CKA estimators"), m >= 4, K symmetric:
//   K~ = K with zero diagonal; r = column sums of K~ / (m-2); r -= sum(r) / (2(m-1));
//   U = K~ - r 1^T - 1 r^T with zero diagonal.  K, U: [m][m]; U may alias K.
// Then <vec U(K), vec U(L)> = m(m-3) HSIC1(K, L).
void bs_ucenter_ref(const float *K, int m, float *U, double *r) {
  double total = 0;
  for (int j = 0; j < m; j++) {
    double s = 0;
    for (int i = 0; i < m; i++)
      if (i != j) s += K[(size_t)i * m + j];
    r[j] = s / (m - 2);
    total += r[j];
  }
  const double shift = total / (2.0 * (m - 1));
  for (int j = 0; j < m; j++) r[j] -= shift;
  for (int i = 0; i < m; i++)
    for (int j = 0; j < m; j++)
      U[(size_t)i * m + j] = i == j ? 0.0f : (float)(K[(size_t)i * m + j] - r[i] - r[j]);
}

// HKH centring, H = I - 11^T/m:  C_ij = K_ij - mean_i - mean_j + grand mean (K symmetric, so
// row and column means agree).  K, C: [m][m]; C may alias K. r: [m] scratch (row means).
void bs_hcenter_ref(const float *K, int m, float *C, double *r) {
  double total = 0;
  for (int i = 0; i < m; i++) {
    double s = 0;
    for (int j = 0; j < m; j++) s += K[(size_t)i * m + j];
    r[i] = s / m;
    total += s;
  }
  const double g = total / ((double)m * m);
  for (int i = 0; i < m; i++)
    for (int j = 0; j < m; j++)
      C[(size_t)i * m + j] = (float)(K[(size_t)i * m + j] - r[i] - r[j] + g);
}

// A symmetric [m][m] -> out: [m(m+1)/2], row i = scale * (A_ii / sqrt 2, A_i,i+1, ..., A_i,m-1).
// Then <vec A, vec B> = 2 <pack A, pack B> (the strict upper triangle counted twice, the
// diagonal once), so a heatmap is one product of packed vectors at half the length.
void bs_pack_upper_ref(const float *A, int m, float scale, float *out) {
  const float dscale = scale * (float)M_SQRT1_2;
  for (int i = 0; i < m; i++) {
    *out++ = dscale * A[(size_t)i * m + i];
    for (int j = i + 1; j < m; j++) *out++ = scale * A[(size_t)i * m + j];
  }
}

// Squared distances from a Gram matrix: D_ij = max(K_ii + K_jj - 2 K_ij, 0). K, D: [m][m]
// (D must not alias K). The clamp removes rounding negatives only (exact distances are >= 0).
void bs_gram_sqdist_ref(const float *K, int m, float *D) {
  for (int i = 0; i < m; i++)
    for (int j = 0; j < m; j++) {
      const float v = K[(size_t)i * m + i] + K[(size_t)j * m + j] - 2.0f * K[(size_t)i * m + j];
      D[(size_t)i * m + j] = v > 0.0f ? v : 0.0f;
    }
}

// y[i] = exp(a * x[i]) for n floats; y may alias x.
void bs_exp_scaled_ref(const float *x, size_t n, float a, float *y) {
  for (size_t i = 0; i < n; i++) y[i] = expf(a * x[i]);
}
