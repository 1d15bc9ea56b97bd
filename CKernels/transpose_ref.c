// Strided matrix transpose, scalar reference (transpose_avx2.c is checked against it).
// The CKA channel Grams (gram_channels.c) use it to pull channels out of NHWC rows.
#include "ckernels.h"

// src: [rows][lds] (first cols columns) -> dst: [cols][ldd] (first rows columns),
// dst[c][r] = src[r][c]. Nothing else in dst is touched.
void bs_transpose_ref(const float *src, size_t rows, size_t cols, size_t lds, float *dst,
                      size_t ldd) {
  for (size_t r = 0; r < rows; r++)
    for (size_t c = 0; c < cols; c++) dst[c * ldd + r] = src[r * lds + c];
}
