// Blocks of dot products, AVX-512: dots_avx2.c's design with a 6x32 register tile (two zmm
// per row), in place of cblas_ssyrk / cblas_sgemm(NoTrans, Trans) for the CKA drivers. Same
// contract as bs_dots_acc_ref; float sums (blocks of KC products, then added to C).
//
// Why 6x32: 12 zmm accumulators (FMA latency 4 x 2 ports needs >= 8 chains) with two B loads
// and six broadcasts per 12 FMAs. It measured faster than OpenBLAS 0.3.21's AVX-512
// (SkylakeX) ssyrk and than the AVX2 kernel on these shapes. A 14x16 tile (one zmm per row,
// the AVX2 packing) lost at long rows (256x16384, row stride 64 KB: 14 rows at one large
// power-of-two stride likely share one L1 set, which has 12 ways); 8x32 was no better than
// 6x32; 6x48 was slower (more waste on the diagonal). Figures: docs/PERFORMANCE.md,
// "Dot-product kernels".
//
// Layout of the work, per block of KC columns of k: for each block of 32 rows of B, B^T is
// packed into a stack buffer bp[KC][32] (32 KB, stays in L1; 8x8 transposes; rows past nb are
// zeros); then 6-row tiles of A, broadcast straight from the rows (no A packing), accumulate
// the 6x32 tile, which is added into C with lane masks for the column tail.
#include "ckernels.h"
#include "simd_avx512.h"

enum { KC = 256, NR = 32, MR = 6 };

// In-register 8x8 transpose: r[q][p] -> r[p][q] (the 256-bit one of simd_avx2.h: a 16x16
// zmm transpose costs more shuffles per element and the packing is a small part of the time).
// A copy, not an include: Tests/AVX512Emulation compiles this file on its own against SIMDe
// (no target attributes, no simd_avx2.h), so it must not depend on the AVX2 helpers.
BS_AVX512_INLINE void transpose8x8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// b: [nr][ldb] (first kc columns), nr in 1..32, kc in 1..KC -> bp: [kc][32],
// bp[p][c] = b[c][p] for c < nr and 0 for c >= nr (zero columns give zero products; they are
// masked off when the tile is added to C).
BS_AVX512_INLINE void pack_bt(const float *b, size_t ldb, int nr, int kc, float (*bp)[NR]) {
  for (int c0 = 0; c0 < NR; c0 += 8) {
    const int rows = nr - c0 < 0 ? 0 : nr - c0 > 8 ? 8 : nr - c0;
    int p = 0;
    if (rows == 0) {
      for (; p < kc; p++) _mm256_store_ps(&bp[p][c0], _mm256_setzero_ps());
      continue;
    }
    for (; p + 8 <= kc; p += 8) {
      __m256 r[8];
      for (int q = 0; q < 8; q++)
        r[q] = q < rows ? _mm256_loadu_ps(b + (size_t)(c0 + q) * ldb + p) : _mm256_setzero_ps();
      transpose8x8(r);
      for (int q = 0; q < 8; q++) _mm256_store_ps(&bp[p + q][c0], r[q]);
    }
    for (; p < kc; p++)   // k tail (kc % 8 columns): scalar
      for (int q = 0; q < 8; q++) bp[p][c0 + q] = q < rows ? b[(size_t)(c0 + q) * ldb + p] : 0.0f;
  }
}

// The micro-kernel. a: [mr][lda] (kc columns), bp: [kc][32] packed B^T, C: [mr][ldc]
// (first nr columns) -> C[r][c] += sum_p a[r][p] bp[p][c], r < mr, c < nr. Force-inlined
// and called with a constant mr (1..6): one unrolled copy per row count, accumulators in
// registers.
BS_AVX512_INLINE void tile(const float *a, size_t lda, const float (*bp)[NR], int kc, int mr,
                           float *C, size_t ldc, int nr) {
  __m512 c0[MR], c1[MR];
  const float *ar[MR];
  for (int r = 0; r < mr; r++) {
    c0[r] = c1[r] = _mm512_setzero_ps();
    ar[r] = a + (size_t)r * lda;
  }
  for (int p = 0; p < kc; p++) {
    const __m512 b0 = _mm512_load_ps(bp[p]), b1 = _mm512_load_ps(bp[p] + 16);
    for (int r = 0; r < mr; r++) {
      const __m512 x = _mm512_set1_ps(ar[r][p]);
      c0[r] = _mm512_fmadd_ps(x, b0, c0[r]);
      c1[r] = _mm512_fmadd_ps(x, b1, c1[r]);
    }
  }
  // Lane masks for the column tail: nothing past column nr is read or written.
  const __mmask16 m0 = bs_avx512_mask((size_t)nr);
  const __mmask16 m1 = bs_avx512_mask(nr > 16 ? (size_t)(nr - 16) : 0);
  for (int r = 0; r < mr; r++) {
    float *cr = C + (size_t)r * ldc;
    _mm512_mask_storeu_ps(cr, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, cr), c0[r]));
    _mm512_mask_storeu_ps(cr + 16, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, cr + 16), c1[r]));
  }
}

// a: [na][lda], b: [nb][ldb] (first k columns of each), C: [na][ldc] (first nb columns) ->
// C[i][j] += sum_p a[i][p] b[j][p]. upper != 0 (a == b, na == nb): only j >= i is needed, so
// 6-row tiles entirely below the diagonal of a 32-column block are skipped; the ones that
// straddle it also write some entries below the diagonal (with their dots: harmless).
BS_AVX512 void bs_dots_acc_avx512(const float *a, int na, int lda, const float *b, int nb,
                                  int ldb, int k, int upper, float *C, int ldc) {
  float bp[KC][NR] __attribute__((aligned(64)));
  for (int p0 = 0; p0 < k; p0 += KC) {
    const int kc = k - p0 < KC ? k - p0 : KC;
    for (int j0 = 0; j0 < nb; j0 += NR) {
      const int nr = nb - j0 < NR ? nb - j0 : NR;
      pack_bt(b + (size_t)j0 * ldb + p0, (size_t)ldb, nr, kc, bp);
      // upper: rows i >= j0 + nr have no entry with j >= i in this block.
      const int i_end = upper && j0 + nr < na ? j0 + nr : na;
      for (int i0 = 0; i0 < i_end; i0 += MR) {
        const float *ai = a + (size_t)i0 * lda + p0;
        float *ci = C + (size_t)i0 * ldc + j0;
        switch (na - i0 < MR ? na - i0 : MR) {
        case 6: tile(ai, (size_t)lda, (const float(*)[NR])bp, kc, 6, ci, (size_t)ldc, nr); break;
        case 5: tile(ai, (size_t)lda, (const float(*)[NR])bp, kc, 5, ci, (size_t)ldc, nr); break;
        case 4: tile(ai, (size_t)lda, (const float(*)[NR])bp, kc, 4, ci, (size_t)ldc, nr); break;
        case 3: tile(ai, (size_t)lda, (const float(*)[NR])bp, kc, 3, ci, (size_t)ldc, nr); break;
        case 2: tile(ai, (size_t)lda, (const float(*)[NR])bp, kc, 2, ci, (size_t)ldc, nr); break;
        default: tile(ai, (size_t)lda, (const float(*)[NR])bp, kc, 1, ci, (size_t)ldc, nr); break;
        }
      }
    }
  }
}
