// The C library allocator's policy for long-running processes (the daemon).
#include <malloc.h>

#include "ckernels.h"

// glibc serves a block of at least M_MMAP_THRESHOLD bytes with its own mmap (returned to the
// system when freed), but raises that threshold to the size of each such block freed, up to
// 32 MiB: after the first Gram slab or frame buffer is freed, blocks of that size come from the
// heap arenas, where a cache that evicts and refills them leaves holes the heap cannot give back.
// In the daemon that grew RSS without bound under a 64 MiB Gram cache (45 -> 372 MiB over 60
// heatmaps; 137 MiB and flat with a fixed 256 KiB threshold). Setting it fixes it.
bs_status bs_allocator_fix_mmap_threshold(size_t bytes) {
  if (bytes == 0 || bytes > (size_t)32 << 20) return BS_ERR_INVALID;
  return mallopt(M_MMAP_THRESHOLD, (int)bytes) == 1 ? BS_OK : BS_ERR_INVALID;
}

// Returns the free pages of every arena (not only the heap's top) to the system. Blocks below
// the mmap threshold (Gram entries of small batches, the cache's index) still churn in the
// arenas; in the soak the daemon held 550 MiB of RSS of which malloc_trim gave back 372.
int bs_allocator_trim(void) { return malloc_trim(0); }
