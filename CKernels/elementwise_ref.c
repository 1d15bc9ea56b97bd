// Elementwise kernels (ReLU, residual add), scalar reference. n is any length.
#include "ckernels.h"

// x: [n] -> y = max(x, 0). NaN maps to 0 like the SIMD max(x, 0) with x as first operand.
void bs_relu_ref(const float *x, size_t n, float *y) {
  for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

// y, dy: [n] -> dx = y > 0 ? dy : 0
void bs_relu_backward_ref(const float *y, const float *dy, size_t n, float *dx) {
  for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

// a, b: [n] -> y = max(a + b, 0)
void bs_add_relu_ref(const float *a, const float *b, size_t n, float *y) {
  for (size_t i = 0; i < n; i++) {
    const float s = a[i] + b[i];
    y[i] = s > 0.0f ? s : 0.0f;
  }
}

// a, b: [n] -> y = a + b
void bs_add_ref(const float *a, const float *b, size_t n, float *y) {
  for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}
