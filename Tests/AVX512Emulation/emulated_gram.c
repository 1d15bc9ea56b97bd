#include "emulation.h"
#include "../../CKernels/gram_avx512.c"
