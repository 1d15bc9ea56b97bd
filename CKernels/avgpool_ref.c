// Global average pooling, scalar reference.
#include "ckernels.h"

// x: [N][HW][C] -> y: [N][C]
void bs_avgpool_ref(const float *x, int N, int HW, int C, float *y) {
  const float inv = 1.0f / (float)HW;
  for (int n = 0; n < N; n++) {
    float *yn = y + (size_t)n * C;
    for (int c = 0; c < C; c++) yn[c] = 0.0f;
    const float *xn = x + (size_t)n * HW * C;
    for (int p = 0; p < HW; p++)
      for (int c = 0; c < C; c++) yn[c] += xn[(size_t)p * C + c];
    for (int c = 0; c < C; c++) yn[c] *= inv;
  }
}

// dy: [N][C] -> dx: [N][HW][C] = dy / HW
void bs_avgpool_backward_ref(const float *dy, int N, int HW, int C, float *dx) {
  const float inv = 1.0f / (float)HW;
  for (int n = 0; n < N; n++)
    for (int p = 0; p < HW; p++)
      for (int c = 0; c < C; c++)
        dx[((size_t)n * HW + p) * C + c] = dy[(size_t)n * C + c] * inv;
}
