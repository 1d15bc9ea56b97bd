#include "scratch.h"
#include <stdio.h>
#include <stdlib.h>

static _Thread_local float *buffers[4];
static _Thread_local size_t capacity[4];

float *bs_scratch(int slot, size_t floats) {
  if (floats > capacity[slot]) {
    free(buffers[slot]);
    size_t bytes = (floats * sizeof(float) + 63) & ~(size_t)63;
    buffers[slot] = aligned_alloc(64, bytes);
    if (!buffers[slot]) {
      fprintf(stderr, "blockscope: out of memory allocating %zu bytes of scratch\n", bytes);
      abort();
    }
    capacity[slot] = floats;
  }
  return buffers[slot];
}
