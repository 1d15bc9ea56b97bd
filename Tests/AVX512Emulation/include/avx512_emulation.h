#ifndef BLOCKSCOPE_AVX512_EMULATION_TABLE_H
#define BLOCKSCOPE_AVX512_EMULATION_TABLE_H
#include "ckernels.h"
// The AVX512 entries of kernels.inc, each compiled against SIMDe (see emulation.h): same op
// names and isa as bs_kernel_table(), functions that run on any x86-64 CPU.
const bs_kernel_entry *bs_avx512_emulated_table(int *count);
#endif
