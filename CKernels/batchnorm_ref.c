// Per-channel kernels behind batch norm, scalar reference. x is [rows][C] (NHWC flattened).
#include "ckernels.h"

// x: [rows][C] -> sum[c] += sum_r x, sumsq[c] += sum_r x^2 (double accumulation)
void bs_channel_sums_ref(const float *x, size_t rows, int C, double *sum, double *sumsq) {
  for (size_t r = 0; r < rows; r++)
    for (int c = 0; c < C; c++) {
      const double v = x[r * C + c];
      sum[c] += v;
      sumsq[c] += v * v;
    }
}

// x: [rows][C] -> y = scale[c]*x + shift[c], optional ReLU
void bs_scale_shift_ref(const float *x, size_t rows, int C, const float *scale,
                        const float *shift, int relu, float *y) {
  for (size_t r = 0; r < rows; r++)
    for (int c = 0; c < C; c++) {
      float v = scale[c] * x[r * C + c] + shift[c];
      if (relu && !(v > 0.0f)) v = 0.0f;
      y[r * C + c] = v;
    }
}

// dy, x: [rows][C] -> sum_dy[c] += sum dy, sum_dy_xc[c] += sum dy*(x-mean[c])
void bs_bn_backward_sums_ref(const float *dy, const float *x, size_t rows, int C,
                             const float *mean, double *sum_dy, double *sum_dy_xc) {
  for (size_t r = 0; r < rows; r++)
    for (int c = 0; c < C; c++) {
      const double g = dy[r * C + c];
      sum_dy[c] += g;
      sum_dy_xc[c] += g * ((double)x[r * C + c] - mean[c]);
    }
}

// dy, x: [rows][C] -> dx = k1[c]*dy + k2[c]*x + k3[c]
void bs_channel_axpby_ref(const float *dy, const float *x, size_t rows, int C, const float *k1,
                          const float *k2, const float *k3, float *dx) {
  for (size_t r = 0; r < rows; r++)
    for (int c = 0; c < C; c++)
      dx[r * C + c] = k1[c] * dy[r * C + c] + k2[c] * x[r * C + c] + k3[c];
}
