// Strided matrix transpose, AVX2: 8x8 blocks transposed in registers (8 row loads, 24
// shuffles, 8 row stores), the edges that do not fill a block scalar. Same contract as
// bs_transpose_ref; AVX-512 runs this variant too (a 16x16 zmm transpose needs more shuffles
// per element, and the loads and stores, not the shuffles, bound it).
//
// Its user is gram_channels.c; the measured gain over the scalar loop it replaced is in
// docs/PERFORMANCE.md, "Gram phase: transpose, centring, page mapping".
#include "ckernels.h"
#include "simd_avx2.h"

// src: [rows][lds] (first cols columns) -> dst: [cols][ldd] (first rows columns),
// dst[c][r] = src[r][c].
BS_AVX2 void bs_transpose_avx2(const float *src, size_t rows, size_t cols, size_t lds,
                               float *dst, size_t ldd) {
  const size_t rv = rows & ~(size_t)7, cv = cols & ~(size_t)7;
  for (size_t c = 0; c < cv; c += 8) {
    for (size_t r = 0; r < rv; r += 8) {
      __m256 v[8];
      for (int q = 0; q < 8; q++) v[q] = _mm256_loadu_ps(src + (r + q) * lds + c);
      bs_avx2_transpose8x8(v);
      for (int q = 0; q < 8; q++) _mm256_storeu_ps(dst + (c + q) * ldd + r, v[q]);
    }
    for (size_t r = rv; r < rows; r++)   // row tail
      for (size_t q = 0; q < 8; q++) dst[(c + q) * ldd + r] = src[r * lds + c + q];
  }
  for (size_t c = cv; c < cols; c++)   // column tail
    for (size_t r = 0; r < rows; r++) dst[c * ldd + r] = src[r * lds + c];
}
