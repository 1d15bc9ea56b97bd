#include "emulation.h"
#include "../../CKernels/sgd_avx512.c"
