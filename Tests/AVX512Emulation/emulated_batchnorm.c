#include "emulation.h"
#include "../../CKernels/batchnorm_avx512.c"
