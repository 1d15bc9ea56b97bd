import CKernels
import XCTest
@testable import Engine

/// Pooled kernel contexts come back when dropped, with their settings reset, and are reused.
final class KernelContextPoolTests: XCTestCase {
  func testContextsAreReusedPerThreadCountAndReset() {
    let pool = KernelContextPool(idleLimit: 1)
    var first: KernelContext? = pool.context(threads: 2)
    let pointer = first!.pointer
    first!.convAlgorithm = Int32(BS_CONV_GEMM)
    first!.setISA(BS_ISA_REF)
    XCTAssertEqual(pool.idleCount, 0)
    first = nil
    XCTAssertEqual(pool.idleCount, 1)
    let again = pool.context(threads: 2)
    XCTAssertEqual(again.pointer, pointer, "the idle context is reused")
    XCTAssertEqual(again.convAlgorithm, bs_default_conv_algorithm(), "settings reset")
    XCTAssertEqual(again.isa, bs_default_isa())
    let other = pool.context(threads: 1)
    XCTAssertNotEqual(other.pointer, pointer, "another thread count, another context")
    XCTAssertEqual(other.threads, 1)
    var extra: [KernelContext]? = [pool.context(threads: 3), pool.context(threads: 3)]
    extra = nil
    _ = extra
    XCTAssertEqual(pool.idleCount, 1, "at most idleLimit idle contexts of a size are kept")
  }
}
