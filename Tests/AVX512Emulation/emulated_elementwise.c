#include "emulation.h"
#include "../../CKernels/elementwise_avx512.c"
