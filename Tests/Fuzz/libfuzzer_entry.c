// libFuzzer's entry point for one harness of the FuzzHarnesses module. `tools/fuzz TARGET`
// compiles this with -DBLOCKSCOPE_FUZZ_FUNCTION=blockscope_fuzz_TARGET and links it with the
// instrumented Swift modules; libFuzzer supplies main. Not part of the SwiftPM build.
#include <stddef.h>
#include <stdint.h>

#ifndef BLOCKSCOPE_FUZZ_FUNCTION
#error "compile with -DBLOCKSCOPE_FUZZ_FUNCTION=blockscope_fuzz_<target>"
#endif

int BLOCKSCOPE_FUZZ_FUNCTION(const uint8_t *data, ptrdiff_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return BLOCKSCOPE_FUZZ_FUNCTION(data, (ptrdiff_t)size);
}
