#include "emulation.h"
#include "../../CKernels/conv_direct_avx512.c"
