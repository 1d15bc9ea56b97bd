#include "emulation.h"
#include "../../CKernels/finite_avx512.c"
