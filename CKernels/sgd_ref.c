// SGD with momentum and L2 weight decay (PyTorch semantics), scalar reference.
#include "ckernels.h"

// w, v, g: [n]; g' = g + wd*w; v = momentum*v + g'; w -= lr*v
void bs_sgd_momentum_ref(float *w, float *v, const float *g, size_t n, float lr, float momentum,
                         float wd) {
  for (size_t i = 0; i < n; i++) {
    const float gi = g[i] + wd * w[i];
    v[i] = momentum * v[i] + gi;
    w[i] -= lr * v[i];
  }
}
