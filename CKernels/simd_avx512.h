// Private helpers for the *_avx512.c kernels, compiled per function with the AVX-512 target so
// the rest of the library stays baseline x86-64; the dispatcher only selects these variants on
// CPUs with avx512f/bw/vl (and avx2, fma).
//
// The AVX-512 variants are deliberately the plainest possible translation of the reference
// loops: the inner loop over 16 consecutive floats, with a lane mask (not a scalar remainder)
// for the last partial vector. Masked-out lanes are neither read (no fault past the end) nor
// written, so the tail needs no separate code path.
#ifndef BLOCKSCOPE_SIMD_AVX512_H
#define BLOCKSCOPE_SIMD_AVX512_H
#include <stddef.h>
#include <stdint.h>

#ifdef BS_AVX512_EMULATED
// Built by Tests/AVX512Emulation: the intrinsics come from SIMDe, no target attributes.
#define BS_AVX512
#define BS_AVX512_INLINE static inline
#else
#include <immintrin.h>
#define BS_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))
#define BS_AVX512_INLINE                                                                         \
  static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl,avx2,fma")))
#endif

// Mask of the first min(n, 16) lanes.
static inline __mmask16 bs_avx512_mask(size_t n) {
  return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
}
#endif
