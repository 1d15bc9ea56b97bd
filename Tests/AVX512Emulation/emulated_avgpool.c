#include "emulation.h"
#include "../../CKernels/avgpool_avx512.c"
