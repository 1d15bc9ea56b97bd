#include "emulation.h"
#include "../../CKernels/dots_avx512.c"
