// Per-thread scratch memory for the layer ops. Pool threads live for the whole process, so a
// thread-local buffer that only grows is allocated a handful of times in total instead of on
// every call (large mallocs are mmaps: fresh pages would fault on every step).
#ifndef BLOCKSCOPE_SCRATCH_H
#define BLOCKSCOPE_SCRATCH_H
#include <stddef.h>

// A 64-byte aligned buffer of at least `floats` floats, private to the calling thread and
// valid until its next call with the same slot. Slots 0..3 are independent buffers: 0 and 1
// are used by conv_ops.c, 2 and 3 by the bs_conv3x3_direct* micro-kernels (which conv_ops.c
// calls while holding pointers into 0 and 1).
float *bs_scratch(int slot, size_t floats);

// Row range [begin, end) of task t when `rows` rows are split into ntasks near-equal parts.
static inline void bs_split(size_t rows, int t, int ntasks, size_t *begin, size_t *end) {
  *begin = rows * (size_t)t / (size_t)ntasks;
  *end = rows * (size_t)(t + 1) / (size_t)ntasks;
}
#endif
