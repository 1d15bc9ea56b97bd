import CKernels
import XCTest

// Shared helpers for the CKernels tests: a seeded RNG, guarded buffers, C function types for
// the micro-kernels, ISA / thread-count scoping and a mismatch collector that reports the first
// few failures of a large comparison instead of asserting element by element.

/// Unit roundoff of Float (2^-24): the error bound of one correctly rounded float operation.
let floatU = Double(Float.ulpOfOne) / 2

/// SplitMix64: small, seeded, identical on every platform, so failures reproduce.
struct TestRNG {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
  /// Uniform in [lo, hi).
  mutating func float(_ lo: Float = -2, _ hi: Float = 2) -> Float {
    lo + (hi - lo) * Float(next() >> 40) / Float(1 << 24)
  }
  mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }
  /// Like float(), but about one value in 4 is one of the IEEE special cases the elementwise
  /// kernels must treat exactly like the reference (signed zeros, NaN, infinities, subnormals).
  mutating func floatWithSpecials() -> Float {
    if int(4) != 0 { return float() }
    let specials: [Float] = [0, -0.0, .nan, .infinity, -.infinity, .leastNonzeroMagnitude,
                             -.leastNonzeroMagnitude, .greatestFiniteMagnitude]
    return specials[int(specials.count)]
  }
  mutating func floats(_ n: Int, _ lo: Float = -2, _ hi: Float = 2) -> [Float] {
    (0..<n).map { _ in float(lo, hi) }
  }
}

/// A float buffer with guard zones on both sides, to catch a kernel writing out of bounds.
/// A micro-kernel's working memory as its contract states it (64-byte aligned, `floats`
/// long), followed by a guard that tells whether the kernel wrote past it.
final class ScratchBuffer {
  static let guardCount = 64
  let floats: Int
  let ptr: UnsafeMutablePointer<Float>
  init(floats: Int) {
    self.floats = floats
    let raw = UnsafeMutableRawPointer.allocate(byteCount: (floats + Self.guardCount) * 4,
                                               alignment: 64)
    ptr = raw.bindMemory(to: Float.self, capacity: floats + Self.guardCount)
    ptr.initialize(repeating: .nan, count: floats)
    (ptr + floats).initialize(repeating: Float(bitPattern: GuardedBuffer.guardBits),
                              count: Self.guardCount)
  }
  deinit { UnsafeMutableRawPointer(ptr).deallocate() }
  var guardIntact: Bool {
    (0..<Self.guardCount).allSatisfy { ptr[floats + $0].bitPattern == GuardedBuffer.guardBits }
  }
}

final class GuardedBuffer {
  static let guardCount = 64
  static let guardBits: UInt32 = 0x7FA5_A5A5   // a signalling-NaN pattern no kernel produces
  let count: Int
  private let base: UnsafeMutablePointer<Float>
  var ptr: UnsafeMutablePointer<Float> { base + GuardedBuffer.guardCount }

  init(count: Int, fill: Float = 0) {
    self.count = count
    base = .allocate(capacity: count + 2 * GuardedBuffer.guardCount)
    base.initialize(repeating: Float(bitPattern: GuardedBuffer.guardBits),
                    count: count + 2 * GuardedBuffer.guardCount)
    ptr.update(repeating: fill, count: count)
  }
  convenience init(_ values: [Float]) {
    self.init(count: values.count)
    for (i, v) in values.enumerated() { ptr[i] = v }
  }
  deinit { base.deallocate() }

  var array: [Float] { Array(UnsafeBufferPointer(start: ptr, count: count)) }
  func set(_ values: [Float]) {
    precondition(values.count == count)
    for (i, v) in values.enumerated() { ptr[i] = v }
  }
  var guardsIntact: Bool {
    for i in 0..<GuardedBuffer.guardCount {
      if base[i].bitPattern != GuardedBuffer.guardBits { return false }
      if ptr[count + i].bitPattern != GuardedBuffer.guardBits { return false }
    }
    return true
  }
}

/// Collects mismatches of one comparison and reports the total and the first few at the end.
struct Mismatches {
  let label: String
  private(set) var count = 0
  private var first: [String] = []
  init(_ label: String) { self.label = label }

  mutating func fail(_ detail: @autoclosure () -> String) {
    count += 1
    if first.count < 6 { first.append(detail()) }
  }
  mutating func check(_ ok: Bool, _ detail: @autoclosure () -> String) {
    if !ok { fail(detail()) }
  }
  func report(file: StaticString = #filePath, line: UInt = #line) {
    if count > 0 {
      XCTFail("\(label): \(count) mismatches; first: \(first.joined(separator: " | "))",
              file: file, line: line)
    }
  }
}

/// Bitwise equality, except that any NaN equals any NaN (payload propagation is not part of
/// the contract).
func sameFloat(_ a: Float, _ b: Float) -> Bool {
  a.bitPattern == b.bitPattern || (a.isNaN && b.isNaN)
}

// The micro-kernels' C types (see BS_OPS in ckernels.h), for casting bs_kernel_table entries.
typealias Im2colFn = @convention(c) (
  UnsafePointer<Float>?, Int32, Int32, Int32, Int32, Int32, Int32, Int32,
  UnsafeMutablePointer<Float>?
) -> Void
typealias ChannelSumsFn = @convention(c) (
  UnsafePointer<Float>?, Int, Int32, UnsafeMutablePointer<Double>?, UnsafeMutablePointer<Double>?
) -> Void
typealias ScaleShiftFn = @convention(c) (
  UnsafePointer<Float>?, Int, Int32, UnsafePointer<Float>?, UnsafePointer<Float>?, Int32,
  UnsafeMutablePointer<Float>?
) -> Void
typealias BnBackwardSumsFn = @convention(c) (
  UnsafePointer<Float>?, UnsafePointer<Float>?, Int, Int32, UnsafePointer<Float>?,
  UnsafeMutablePointer<Double>?, UnsafeMutablePointer<Double>?
) -> Void
typealias ChannelAxpbyFn = @convention(c) (
  UnsafePointer<Float>?, UnsafePointer<Float>?, Int, Int32, UnsafePointer<Float>?,
  UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafeMutablePointer<Float>?
) -> Void
typealias UnaryFn = @convention(c) (UnsafePointer<Float>?, Int, UnsafeMutablePointer<Float>?) -> Void
/// bs_relu_backward (y, dy, n, dx), bs_add_relu and bs_add (a, b, n, y).
typealias BinaryFn = @convention(c) (
  UnsafePointer<Float>?, UnsafePointer<Float>?, Int, UnsafeMutablePointer<Float>?
) -> Void
typealias SgdFn = @convention(c) (
  UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?, UnsafePointer<Float>?, Int, Float,
  Float, Float
) -> Void
/// bs_avgpool (x, N, HW, C, y) and bs_avgpool_backward (dy, N, HW, C, dx).
typealias AvgpoolFn = @convention(c) (
  UnsafePointer<Float>?, Int32, Int32, Int32, UnsafeMutablePointer<Float>?
) -> Void
typealias ConvDirectFn = @convention(c) (
  UnsafePointer<Float>?, Int32, Int32, Int32, Int32, Int32, UnsafePointer<Float>?,
  UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?
) -> Void
typealias ConvDirectDwFn = @convention(c) (
  UnsafePointer<Float>?, UnsafePointer<Float>?, Int32, Int32, Int32, Int32, Int32,
  UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?
) -> Void
typealias AugmentFn = @convention(c) (
  UnsafePointer<UInt8>?, Int32, Int32, Int32, Int32, Int32, Int32, Int32,
  UnsafeMutablePointer<Float>?
) -> Void

/// One row of bs_kernel_table.
struct KernelVariant {
  let op: String
  let isa: bs_isa
  let fn: UnsafeMutableRawPointer

  var isaName: String { String(cString: bs_isa_name(isa)) }
  func cast<F>(_ type: F.Type) -> F { unsafeBitCast(fn, to: type) }

  static var all: [KernelVariant] {
    var count: Int32 = 0
    guard let table = bs_kernel_table(&count) else { return [] }
    return (0..<Int(count)).map { i in
      KernelVariant(op: String(cString: table[i].op), isa: table[i].isa, fn: table[i].fn)
    }
  }
  static func reference(for op: String) -> KernelVariant? {
    all.first { $0.op == op && $0.isa == BS_ISA_REF }
  }
}

/// Every ISA this CPU can run, REF first.
var supportedISAs: [bs_isa] {
  [BS_ISA_REF, BS_ISA_AVX2, BS_ISA_AVX512].filter { bs_isa_supported($0) != 0 }
}

/// Every convolution algorithm (bs_context_set_conv_algorithm): gemm, direct, auto.
let convAlgorithms: [Int32] = [
  Int32(BS_CONV_GEMM), Int32(BS_CONV_DIRECT), Int32(BS_CONV_WINOGRAD), Int32(BS_CONV_AUTO),
]
func algorithmName(_ a: Int32) -> String { String(cString: bs_conv_algorithm_name(a)) }

/// Runs body with a kernel context of its own: the variants of `isa`, `threads` threads
/// (default 2) and the convolution algorithm (default: the context's). Nothing process-wide is
/// touched, so tests may run side by side.
func withKernels<T>(isa: bs_isa, threads: Int? = nil, convAlgorithm: Int32? = nil,
                    _ body: (OpaquePointer) throws -> T) rethrows -> T {
  guard let ctx = bs_context_create(Int32(threads ?? 2)) else { fatalError("out of memory") }
  defer { bs_context_destroy(ctx) }
  precondition(bs_context_set_isa(ctx, isa) == BS_OK, "ISA \(isa) not supported")
  if let convAlgorithm { bs_context_set_conv_algorithm(ctx, convAlgorithm) }
  return try body(ctx)
}

/// The best ISA this CPU runs (or BLOCKSCOPE_ISA's).
var defaultISA: bs_isa { bs_default_isa() }

extension bs_isa: @retroactive CustomStringConvertible {
  public var description: String { String(cString: bs_isa_name(self)) }
}
