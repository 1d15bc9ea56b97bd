// Reducing the per-task partial Gram matrices of gram_ops.c and gram_channels.c, whose tasks
// fill only the upper triangle (j >= i), into one full symmetric matrix.
//
// The sum runs along rows (contiguous, vectorised) in task order: each entry is the same sum
// in the same order as an entry-by-entry loop over t ascending. The mirror copies 16 x 16
// blocks, so each block touches 16 destination cache lines instead of one line per entry.
// This runs on the calling thread, once or twice per representation, while the other cores
// wait, so the entry-by-entry loop it replaced was worth making ~4x faster
// (docs/PERFORMANCE.md, "Per-task partial Grams").
#ifndef BLOCKSCOPE_TASK_PARTIALS_H
#define BLOCKSCOPE_TASK_PARTIALS_H
#include <stddef.h>

// partials: ntasks matrices [m][m] at task_stride floats apart (upper triangles used) ->
// K: [m][m], K[i][j] = K[j][i] = sum_t partials[t][i][j] for j >= i.
static inline void bs_reduce_task_partials(const float *partials, size_t task_stride, int ntasks,
                                           int m, float *K) {
  for (int i = 0; i < m; i++) {
    float *k = K + (size_t)i * m;
    const float *p = partials + (size_t)i * m;
    for (int j = i; j < m; j++) k[j] = p[j];
    for (int t = 1; t < ntasks; t++) {
      p = partials + (size_t)t * task_stride + (size_t)i * m;
      for (int j = i; j < m; j++) k[j] += p[j];
    }
  }
  enum { B = 16 };
  for (int i0 = 0; i0 < m; i0 += B)
    for (int j0 = i0; j0 < m; j0 += B) {
      const int i1 = i0 + B < m ? i0 + B : m, j1 = j0 + B < m ? j0 + B : m;
      for (int i = i0; i < i1; i++)
        for (int j = j0 > i + 1 ? j0 : i + 1; j < j1; j++)
          K[(size_t)j * m + i] = K[(size_t)i * m + j];
    }
}
#endif
