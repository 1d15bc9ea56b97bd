import Wire
import XCTest

/// SessionBatchRequest.sharedRanges: the check that stands between a client's memfd doc and the
/// daemon's reads (SPEC.md section 7, "Shared-memory batches").
final class SharedRangesTests: XCTestCase {
  typealias Shared = SessionBatchRequest.SharedTensor

  func testRangesOfAWellFormedDocAndEachRefusal() throws {
    let a = Shared(name: "a", dtype: .f32, shape: [4, 2, 2], offset: 0)
    let b = Shared(name: "b", dtype: .f16, shape: [4, 3], offset: 128)
    XCTAssertEqual(try SessionBatchRequest.sharedRanges([a, b], fileSize: 152), [0..<64, 128..<152])
    func refusal(_ t: Shared, size: Int) -> String {
      do {
        _ = try SessionBatchRequest.sharedRanges([a, t], fileSize: size)
        return "accepted"
      } catch {
        XCTAssertEqual(error.code, .invalidArgument)
        return error.message
      }
    }
    XCTAssertTrue(refusal(Shared(name: "b", dtype: .f16, shape: [4, 3], offset: 129), size: 200).contains("memfd[1].offset"))
    XCTAssertTrue(refusal(Shared(name: "b", dtype: .f32, shape: [4, 3], offset: -4), size: 200).contains("non-negative multiple of 4"))
    XCTAssertTrue(refusal(b, size: 151).contains("does not fit in the memfd, which holds 151 bytes"))
    XCTAssertTrue(refusal(Shared(name: "b", dtype: .f32, shape: [1], offset: Int.max - 3), size: 200).contains("does not fit"))
    XCTAssertTrue(refusal(Shared(name: "b", dtype: .f32, shape: [Int.max, 2], offset: 0), size: 200).contains("too large"))
    XCTAssertTrue(refusal(Shared(name: "b", dtype: .f32, shape: [-1], offset: 0), size: 200).contains("memfd[1].shape"))
  }

  /// Random docs, many with values near the limits of Int: whatever comes back lies inside the
  /// file and has the tensor's exact size; whatever is refused breaks a rule, checked here
  /// independently in 128-bit arithmetic (a size whose running product passes Int.max is too
  /// large, even when a later dimension is 0, as for any tensor descriptor).
  func testRandomDocsNeverGiveARangeOutsideTheFile() {
    var rng = SystemRandomNumberGenerator()
    let edges = [0, 1, 2, 3, 4, 63, 64, 4096, Int.max / 4, Int.max / 2, Int.max - 1, Int.max, -1, Int.min]
    func value(_ limit: Int) -> Int {
      Bool.random(using: &rng) ? edges.randomElement(using: &rng)! : Int.random(in: 0...limit, using: &rng)
    }
    let dtypes = WireTensor.DType.allCases
    for _ in 0..<20_000 {
      let size = max(0, value(1 << 20))
      let tensors = (0..<Int.random(in: 1...3, using: &rng)).map { i in
        Shared(name: "t\(i)", dtype: dtypes.randomElement(using: &rng)!,
               shape: (0..<Int.random(in: 0...3, using: &rng)).map { _ in value(300) }, offset: value(1 << 20))
      }
      let legal = tensors.allSatisfy { t in
        guard !t.shape.contains(where: { $0 < 0 }), t.offset >= 0, t.offset % t.dtype.byteWidth == 0 else { return false }
        var bytes = Int128(t.dtype.byteWidth)
        for d in t.shape {
          bytes *= Int128(d)
          if bytes > Int128(Int.max) { return false }
        }
        return Int128(t.offset) + bytes <= Int128(size)
      }
      do {
        let ranges = try SessionBatchRequest.sharedRanges(tensors, fileSize: size)
        XCTAssertTrue(legal, "accepted \(tensors) in \(size) bytes")
        for (t, r) in zip(tensors, ranges) {
          XCTAssertTrue(r.lowerBound >= 0 && r.upperBound <= size, "\(r) outside \(size)")
          XCTAssertEqual(r.count, WireTensor.byteCount(dtype: t.dtype, shape: t.shape))
        }
      } catch {
        XCTAssertFalse(legal, "refused \(tensors) in \(size) bytes: \(error.message)")
      }
    }
  }
}
