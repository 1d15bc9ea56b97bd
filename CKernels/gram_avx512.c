// Gram-matrix kernels for CKA, AVX-512: the plain 16-lane translation of gram_ref.c with
// masked tails (see simd_avx512.h). Same contracts; bs_exp_scaled uses a polynomial expf
// (within a few ulp). The centrings (bs_center_columns, bs_ucenter, bs_hcenter) have no
// AVX-512 entry: they accumulate in double and are memory-bound (the U/H centrings touch
// m^2 = 65536 floats per Gram next to the m^2 d flops of the Gram), so their AVX2 variants
// serve; bs_gram's AVX2 entry is cblas_ssyrk, which picks its own kernel.
#include <math.h>
#include "ckernels.h"
#include "simd_avx512.h"

// A symmetric [m][m] -> out: [m(m+1)/2] (see bs_pack_upper_ref).
BS_AVX512 void bs_pack_upper_avx512(const float *A, int m, float scale, float *out) {
  const float dscale = scale * (float)M_SQRT1_2;
  const __m512 s = _mm512_set1_ps(scale);
  for (int i = 0; i < m; i++) {
    const float *row = A + (size_t)i * m;
    *out++ = dscale * row[i];
    for (int j = i + 1; j < m; j += 16) {
      const __mmask16 k = bs_avx512_mask((size_t)(m - j));
      _mm512_mask_storeu_ps(out + (j - i - 1), k, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(k, row + j)));
    }
    out += m - i - 1;
  }
}

// D_ij = max(K_ii + K_jj - 2 K_ij, 0) (see bs_gram_sqdist_ref).
BS_AVX512 void bs_gram_sqdist_avx512(const float *K, int m, float *D) {
  const __m512 two = _mm512_set1_ps(2.0f), zero = _mm512_setzero_ps();
  float diag[m];
  for (int j = 0; j < m; j++) diag[j] = K[(size_t)j * m + j];
  for (int i = 0; i < m; i++) {
    const float *row = K + (size_t)i * m;
    float *out = D + (size_t)i * m;
    const __m512 di = _mm512_set1_ps(diag[i]);
    for (int j = 0; j < m; j += 16) {
      const __mmask16 k = bs_avx512_mask((size_t)(m - j));
      const __m512 sum = _mm512_add_ps(di, _mm512_maskz_loadu_ps(k, diag + j));
      const __m512 v = _mm512_sub_ps(sum, _mm512_mul_ps(two, _mm512_maskz_loadu_ps(k, row + j)));
      _mm512_mask_storeu_ps(out + j, k, _mm512_max_ps(v, zero));
    }
  }
}

// exp(v) for 16 lanes: the Cephes expf of gram_avx2.c, with the 2^n scaling by vscalefps,
// which also produces the denormal results below -87.3 (inputs below -104 give 0).
BS_AVX512_INLINE __m512 exp_ps(__m512 v) {
  v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(88.3762626647949f));
  const __m512 n = _mm512_roundscale_ps(_mm512_fmadd_ps(v, _mm512_set1_ps(1.44269504088896341f),
                                                        _mm512_set1_ps(0.5f)),
                                        _MM_FROUND_TO_NEG_INF);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), v);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 e = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(e, n);
}

// y[i] = exp(a * x[i]); y may alias x.
BS_AVX512 void bs_exp_scaled_avx512(const float *x, size_t n, float a, float *y) {
  const __m512 av = _mm512_set1_ps(a);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 k = bs_avx512_mask(n - i);
    _mm512_mask_storeu_ps(y + i, k, exp_ps(_mm512_mul_ps(av, _mm512_maskz_loadu_ps(k, x + i))));
  }
}
