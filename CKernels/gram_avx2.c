// Gram-matrix kernels for CKA, AVX2 + FMA. Same contracts as gram_ref.c. The column centring
// and the U/H centrings accumulate in double in the reference's order, so they match it
// bit for bit; bs_exp_scaled uses a polynomial expf (within a few ulp of the reference).
#include <math.h>
#include "ckernels.h"
#include "simd_avx2.h"
#include <cblas.h>

// Columns are processed in blocks so that the block (m rows) stays in L2 between the sum
// pass and the subtract pass, and both passes run along rows.
//
// When the block is a slice of wider rows (ld > d: bs_gram_centered's panels of a 16384-wide
// activation), each row is a separate 2 KB run that the hardware prefetcher meets too late, so
// the sum pass asks for the row PREFETCH_ROWS ahead into L2 itself (T1 and 4 rows ahead
// measured best; ~40 % less time on uncached 256 x 16384 activations). On a
// contiguous block (ld == d, gram_channels.c's buffers) the same prefetches cost time, so they
// are issued only when ld > d (docs/PERFORMANCE.md, "Column-centring prefetch").
enum { CENTER_BLOCK = 512, PREFETCH_ROWS = 4 };

// x: [m][ld] (first d columns) -> y: [m][ldy] = x - column mean (means accumulated in double).
BS_AVX2 void bs_center_columns_avx2(const float *x, int m, size_t d, size_t ld, float *y,
                                    size_t ldy) {
  double sums[CENTER_BLOCK] __attribute__((aligned(32)));
  float means[CENTER_BLOCK] __attribute__((aligned(32)));
  const int prefetch = ld > d;
  for (size_t j0 = 0; j0 < d; j0 += CENTER_BLOCK) {
    const size_t nb = d - j0 < CENTER_BLOCK ? d - j0 : CENTER_BLOCK;
    const size_t nv = nb & ~(size_t)7;
    for (size_t j = 0; j < nb; j++) sums[j] = 0;
    for (int i = 0; i < m; i++) {
      const float *row = x + (size_t)i * ld + j0;
      if (prefetch && i + PREFETCH_ROWS < m)
        for (size_t j = 0; j < nb; j += 16)   // one per 64-byte line
          _mm_prefetch((const char *)(row + PREFETCH_ROWS * ld + j), _MM_HINT_T1);
      size_t j = 0;
      for (; j < nv; j += 8) bs_avx2_add_to_doubles(sums + j, _mm256_loadu_ps(row + j));
      for (; j < nb; j++) sums[j] += row[j];
    }
    for (size_t j = 0; j < nb; j++) means[j] = (float)(sums[j] / m);
    for (int i = 0; i < m; i++) {
      const float *row = x + (size_t)i * ld + j0;
      float *out = y + (size_t)i * ldy + j0;
      size_t j = 0;
      for (; j < nv; j += 8)
        _mm256_storeu_ps(out + j, _mm256_sub_ps(_mm256_loadu_ps(row + j),
                                                _mm256_load_ps(means + j)));
      for (; j < nb; j++) out[j] = row[j] - means[j];
    }
  }
}

// x: [m][ld] (first d columns) -> K = x x^T: the BLAS variant (single-threaded cblas_ssyrk,
// upper triangle, then mirrored). OpenBLAS picks its own SIMD kernel.
void bs_gram_avx2(const float *x, int m, size_t d, size_t ld, float *K) {
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, m, (int)d, 1.0f, x, (int)ld, 0.0f, K, m);
  for (int i = 0; i < m; i++)
    for (int j = i + 1; j < m; j++) K[(size_t)j * m + i] = K[(size_t)i * m + j];
}

// (double)K[i][j0..j0+8) - a - r[j0..j0+8), rounded to float: the reference's expression.
BS_AVX2_INLINE __m256 sub_two_doubles(const float *k, __m256d a, const double *r) {
  const __m256 v = _mm256_loadu_ps(k);
  const __m256d lo = _mm256_sub_pd(_mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), a),
                                   _mm256_loadu_pd(r));
  const __m256d hi = _mm256_sub_pd(_mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), a),
                                   _mm256_loadu_pd(r + 4));
  return _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo));
}

// Column sums of K without the diagonal, in the reference's order (rows ascending), into r.
BS_AVX2_INLINE void column_sums_off_diagonal(const float *K, int m, double *r) {
  for (int j = 0; j < m; j++) r[j] = 0;
  for (int i = 0; i < m; i++) {
    const float *row = K + (size_t)i * m;
    int j = 0;
    for (; j + 8 <= m; j += 8) {
      if (i >= j && i < j + 8) {   // the vector holding the diagonal: scalar, skipping it
        for (int k = j; k < j + 8; k++)
          if (k != i) r[k] += row[k];
      } else {
        bs_avx2_add_to_doubles(r + j, _mm256_loadu_ps(row + j));
      }
    }
    for (; j < m; j++)
      if (j != i) r[j] += row[j];
  }
}

// U-centring (see bs_ucenter_ref). K, U: [m][m]; U may alias K; r: [m] scratch.
BS_AVX2 void bs_ucenter_avx2(const float *K, int m, float *U, double *r) {
  column_sums_off_diagonal(K, m, r);
  double total = 0;
  for (int j = 0; j < m; j++) {
    r[j] /= (m - 2);
    total += r[j];
  }
  const double shift = total / (2.0 * (m - 1));
  for (int j = 0; j < m; j++) r[j] -= shift;
  const int mv = m & ~7;
  for (int i = 0; i < m; i++) {
    const float *row = K + (size_t)i * m;
    float *out = U + (size_t)i * m;
    const __m256d ri = _mm256_set1_pd(r[i]);
    int j = 0;
    for (; j < mv; j += 8) _mm256_storeu_ps(out + j, sub_two_doubles(row + j, ri, r + j));
    for (; j < m; j++) out[j] = (float)(row[j] - r[i] - r[j]);
    out[i] = 0.0f;
  }
}

// HKH centring (see bs_hcenter_ref). K, C: [m][m]; C may alias K; r: [m] scratch.
BS_AVX2 void bs_hcenter_avx2(const float *K, int m, float *C, double *r) {
  const int mv = m & ~7;
  double total = 0;
  for (int i = 0; i < m; i++) {
    // Row sums in the reference's order (columns ascending): sequential, in double.
    const float *row = K + (size_t)i * m;
    double s = 0;
    for (int j = 0; j < m; j++) s += row[j];
    r[i] = s / m;
    total += s;
  }
  const double g = total / ((double)m * m);
  for (int i = 0; i < m; i++) {
    const float *row = K + (size_t)i * m;
    float *out = C + (size_t)i * m;
    const __m256d ri = _mm256_set1_pd(r[i]);
    const __m256d gv = _mm256_set1_pd(g);
    int j = 0;
    for (; j < mv; j += 8) {
      const __m256 v = _mm256_loadu_ps(row + j);
      const __m256d lo = _mm256_add_pd(
          _mm256_sub_pd(_mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), ri),
                        _mm256_loadu_pd(r + j)), gv);
      const __m256d hi = _mm256_add_pd(
          _mm256_sub_pd(_mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), ri),
                        _mm256_loadu_pd(r + j + 4)), gv);
      _mm256_storeu_ps(out + j, _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo)));
    }
    for (; j < m; j++) out[j] = (float)(row[j] - r[i] - r[j] + g);
  }
}

// A symmetric [m][m] -> out: [m(m+1)/2] (see bs_pack_upper_ref).
BS_AVX2 void bs_pack_upper_avx2(const float *A, int m, float scale, float *out) {
  const float dscale = scale * (float)M_SQRT1_2;
  const __m256 s = _mm256_set1_ps(scale);
  for (int i = 0; i < m; i++) {
    const float *row = A + (size_t)i * m;
    *out++ = dscale * row[i];
    int j = i + 1;
    for (; j + 8 <= m; j += 8, out += 8) _mm256_storeu_ps(out, _mm256_mul_ps(s, _mm256_loadu_ps(row + j)));
    for (; j < m; j++) *out++ = scale * row[j];
  }
}

// D_ij = max(K_ii + K_jj - 2 K_ij, 0) (see bs_gram_sqdist_ref).
BS_AVX2 void bs_gram_sqdist_avx2(const float *K, int m, float *D) {
  const int mv = m & ~7;
  const __m256 two = _mm256_set1_ps(2.0f), zero = _mm256_setzero_ps();
  float diag[m];
  for (int j = 0; j < m; j++) diag[j] = K[(size_t)j * m + j];
  for (int i = 0; i < m; i++) {
    const float *row = K + (size_t)i * m;
    float *out = D + (size_t)i * m;
    const __m256 di = _mm256_set1_ps(diag[i]);
    int j = 0;
    for (; j < mv; j += 8) {
      // (K_ii + K_jj) - 2 K_ij, rounded like the reference (no FMA contraction).
      const __m256 sum = _mm256_add_ps(di, _mm256_loadu_ps(diag + j));
      const __m256 v = _mm256_sub_ps(sum, _mm256_mul_ps(two, _mm256_loadu_ps(row + j)));
      _mm256_storeu_ps(out + j, _mm256_max_ps(v, zero));
    }
    for (; j < m; j++) {
      const float v = diag[i] + diag[j] - 2.0f * row[j];
      out[j] = v > 0.0f ? v : 0.0f;
    }
  }
}

// exp(v) for 8 lanes: Cephes' expf. v = n ln2 + r, |r| <= ln2/2, degree-5 polynomial for
// e^r, times 2^n through the exponent bits. Inputs below -87.33 (where 2^n would need a
// denormal) give 0; the reference's denormal results there are below 1.2e-38.
BS_AVX2_INLINE __m256 exp_ps(__m256 v) {
  const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-87.3365447504f);
  const __m256 under = _mm256_cmp_ps(v, lo, _CMP_LT_OQ);
  v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
  const __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(v, _mm256_set1_ps(1.44269504088896341f),
                                                   _mm256_set1_ps(0.5f)));
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), v);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 e = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n),
                                                          _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(under, _mm256_mul_ps(e, _mm256_castsi256_ps(bits)));
}

// y[i] = exp(a * x[i]); y may alias x.
BS_AVX2 void bs_exp_scaled_avx2(const float *x, size_t n, float a, float *y) {
  const __m256 av = _mm256_set1_ps(a);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp_ps(_mm256_mul_ps(av, _mm256_loadu_ps(x + i))));
  if (i < n) {
    float t[8] = {0};
    for (size_t k = i; k < n; k++) t[k - i] = x[k];
    float o[8];
    _mm256_storeu_ps(o, exp_ps(_mm256_mul_ps(av, _mm256_loadu_ps(t))));
    for (size_t k = i; k < n; k++) y[k] = o[k - i];
  }
}
