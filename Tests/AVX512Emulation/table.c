#include "emulation.h"
#include "avx512_emulation.h"

#define BS_KERNEL(op, isa, fn) BS_KERNEL_##isa(op, fn)
#define BS_KERNEL_REF(op, fn)
#define BS_KERNEL_AVX2(op, fn)
#define BS_KERNEL_AVX512(op, fn) {#op, BS_ISA_AVX512, (void *)fn},
static const bs_kernel_entry table[] = {
#include "../../CKernels/kernels.inc"
};

const bs_kernel_entry *bs_avx512_emulated_table(int *count) {
  *count = (int)(sizeof table / sizeof table[0]);
  return table;
}
