import CKernels
import CKernelsAVX512Emulation
import XCTest

/// The AVX-512 variants, compiled against SIMDe's portable intrinsics (Tests/AVX512Emulation),
/// checked against the references with the same checkers as the native variants. This is what
/// covers the AVX-512 code on CPUs without AVX-512 (testAVX512VariantsMatchReference then skips);
/// on CPUs with it, both run.
extension KernelVariantTests {
  static var emulated: [KernelVariant] {
    var count: Int32 = 0
    guard let table = bs_avx512_emulated_table(&count) else { return [] }
    return (0..<Int(count)).map { i in
      KernelVariant(op: String(cString: table[i].op), isa: table[i].isa, fn: table[i].fn)
    }
  }

  /// Same ops as kernels.inc's AVX512 entries, and none of them the native function (a missing
  /// rename in emulation.h would leave the native, possibly unrunnable, variant in the table).
  func testEmulatedTableMirrorsKernelsInc() {
    let native = KernelVariant.all.filter { $0.isa == BS_ISA_AVX512 }
    let emulated = Self.emulated
    XCTAssertFalse(emulated.isEmpty)
    XCTAssertEqual(emulated.map(\.op), native.map(\.op))
    for (e, n) in zip(emulated, native) {
      XCTAssertNotEqual(e.fn, n.fn, "\(e.op): the emulated table holds the native AVX-512 function")
    }
  }

  func testEmulatedAVX512VariantsMatchReference() {
    for v in Self.emulated {
      guard let ref = KernelVariant.reference(for: v.op) else {
        XCTFail("\(v.op) has no REF entry")
        continue
      }
      check(v, against: ref)
    }
  }
}
