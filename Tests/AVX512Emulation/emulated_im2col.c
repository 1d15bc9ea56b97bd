#include "emulation.h"
#include "../../CKernels/im2col_avx512.c"
