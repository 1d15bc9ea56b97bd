// Blocks of dot products, AVX2 + FMA: C += A B^T with a BLIS-style register tile, in place of
// cblas_ssyrk / cblas_sgemm(NoTrans, Trans) for the CKA drivers (gram_ops.c). Same contract as
// bs_dots_acc_ref; the sums are in float (blocks of KC products in registers, then added to
// C), so results differ from the reference's double sums by rounding only.
//
// Why not BLAS: the shapes here are short and wide (m = 100..300 rows, k in the thousands).
// On them this kernel measured a little faster than OpenBLAS 0.3.21's AVX2 (Haswell) ssyrk
// and several times faster than what that OpenBLAS actually runs on CPUs its DYNAMIC_ARCH
// build does not recognise (its SSE3 Prescott fallback). Its AVX-512 (SkylakeX) ssyrk beats
// this kernel; on AVX-512 CPUs dots_avx512.c's variant runs instead (docs/PERFORMANCE.md,
// "Dot-product kernels").
//
// Layout of the work, per block of KC columns of k:
//  * for each block of 16 rows of B: B^T packed into a stack buffer bp[KC][16] (8x8
//    transposes; rows past nb are zeros), so the micro-kernel reads 16 B values per p with two
//    aligned loads, and the block (16 KB) stays in L1 for all the i-tiles that use it;
//  * for each tile of 6 rows of A: a 6x16 tile of C in 12 ymm accumulators; A is not packed,
//    each A element is broadcast straight from its row (6 row pointers), since one A row is
//    read sequentially and the 6 rows x KC floats (6 KB) are reused from L1/L2;
//  * the tile is added into C once per k-block (partial rows / columns at the edges).
// 12 accumulators + 2 B vectors + 1 broadcast = 15 of the 16 ymm registers; 12 independent
// FMA chains cover the FMA latency (4 cycles x 2 ports).
#include "ckernels.h"
#include "simd_avx2.h"

enum { KC = 256, NR = 16, MR = 6 };

// b: [nr][ldb] (first kc columns), nr in 1..16, kc in 1..KC -> bp: [kc][16],
// bp[p][c] = b[c][p] for c < nr and 0 for c >= nr (zero columns give zero products, so the
// micro-kernel never needs a column tail; they are simply not stored to C).
BS_AVX2_INLINE void pack_bt(const float *b, size_t ldb, int nr, int kc, float (*bp)[NR]) {
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
      bs_avx2_transpose8x8(r);
      for (int q = 0; q < 8; q++) _mm256_store_ps(&bp[p + q][c0], r[q]);
    }
    for (; p < kc; p++)   // k tail (kc % 8 columns): scalar
      for (int q = 0; q < 8; q++) bp[p][c0 + q] = q < rows ? b[(size_t)(c0 + q) * ldb + p] : 0.0f;
  }
}

// The micro-kernel. a: [mr][lda] (kc columns), bp: [kc][16] packed B^T, C: [mr][ldc]
// (first nr columns) -> C[r][c] += sum_p a[r][p] bp[p][c], r < mr, c < nr. Force-inlined
// and called with a constant mr (1..6), so each row count gets its own fully unrolled copy
// with the accumulators in registers.
BS_AVX2_INLINE void tile(const float *a, size_t lda, const float (*bp)[NR], int kc, int mr,
                         float *C, size_t ldc, int nr) {
  __m256 c0[MR], c1[MR];
  const float *ar[MR];
  for (int r = 0; r < mr; r++) {
    c0[r] = c1[r] = _mm256_setzero_ps();
    ar[r] = a + (size_t)r * lda;
  }
  for (int p = 0; p < kc; p++) {
    const __m256 b0 = _mm256_load_ps(bp[p]), b1 = _mm256_load_ps(bp[p] + 8);
    for (int r = 0; r < mr; r++) {
      const __m256 x = _mm256_broadcast_ss(ar[r] + p);
      c0[r] = _mm256_fmadd_ps(x, b0, c0[r]);
      c1[r] = _mm256_fmadd_ps(x, b1, c1[r]);
    }
  }
  for (int r = 0; r < mr; r++) {
    float *cr = C + (size_t)r * ldc;
    if (nr == NR) {
      _mm256_storeu_ps(cr, _mm256_add_ps(_mm256_loadu_ps(cr), c0[r]));
      _mm256_storeu_ps(cr + 8, _mm256_add_ps(_mm256_loadu_ps(cr + 8), c1[r]));
    } else {
      // Column tail: scalar adds (masked stores are slow on AMD, see simd_avx2.h) so that
      // nothing past column nb is touched.
      float t[NR] __attribute__((aligned(32)));
      _mm256_store_ps(t, c0[r]);
      _mm256_store_ps(t + 8, c1[r]);
      for (int c = 0; c < nr; c++) cr[c] += t[c];
    }
  }
}

// a: [na][lda], b: [nb][ldb] (first k columns of each), C: [na][ldc] (first nb columns) ->
// C[i][j] += sum_p a[i][p] b[j][p]. upper != 0 (a == b, na == nb): only j >= i is needed, so
// 6-row tiles entirely below the diagonal of a 16-column block are skipped; the ones that
// straddle it also write some entries below the diagonal (with their dots: harmless).
BS_AVX2 void bs_dots_acc_avx2(const float *a, int na, int lda, const float *b, int nb, int ldb,
                              int k, int upper, float *C, int ldc) {
  float bp[KC][NR] __attribute__((aligned(32)));
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
