// C entry points for libFuzzer: Tests/Fuzz/libfuzzer_entry.c defines LLVMFuzzerTestOneInput
// as a call to one of these (chosen when `tools/fuzz` compiles it), so this module needs no
// second, fuzzer-only copy of the harnesses. A violation traps: libFuzzer then saves the
// input as a crasher and prints the message.

private func fuzzOne(_ target: FuzzTarget, _ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
  let bytes = size > 0 && data != nil ? Array(UnsafeBufferPointer(start: data, count: size)) : []
  do {
    try target.run(bytes)
  } catch {
    fatalError("fuzz \(target.rawValue): \(error)")
  }
  return 0
}

@_cdecl("blockscope_fuzz_frame")
public func blockscopeFuzzFrame(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
  fuzzOne(.frame, data, size)
}

@_cdecl("blockscope_fuzz_checkpoint")
public func blockscopeFuzzCheckpoint(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
  fuzzOne(.checkpoint, data, size)
}

@_cdecl("blockscope_fuzz_cifar")
public func blockscopeFuzzCIFAR(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
  fuzzOne(.cifar, data, size)
}

@_cdecl("blockscope_fuzz_idx")
public func blockscopeFuzzIDX(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
  fuzzOne(.idx, data, size)
}
