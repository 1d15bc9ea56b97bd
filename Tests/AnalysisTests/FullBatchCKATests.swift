import CKernels
import XCTest
@testable import Analysis

/// Full-batch CKA: the 2019 reference values, the U-centring identity, and the invariances.
final class FullBatchCKATests: XCTestCase {
  static func demoInputs() -> (FeatureMatrix, FeatureMatrix) {
    var rs = NumpyRandomState(seed: 1337)
    let x = rs.randn(100, 10)
    let noise = rs.randn(100, 10)
    let y = zip(noise, x).map { $0 + $1 }
    return (try! FeatureMatrix(rows: 100, columns: 10, values: x),
            try! FeatureMatrix(rows: 100, columns: 10, values: y))
  }

  func testNumpyGeneratorMatchesNumpy() {
    let (x, _) = Self.demoInputs()
    // np.random.seed(1337); np.random.randn(100, 10)[0, :3] and [99, 9].
    XCTAssertEqual(x[0, 0], -0.70318731, accuracy: 1e-8)
    XCTAssertEqual(x[0, 1], -0.49028236, accuracy: 1e-8)
    XCTAssertEqual(x[0, 2], -0.32181433, accuracy: 1e-8)
    XCTAssertEqual(x[99, 9], -0.6779133551736201, accuracy: 1e-15)
  }

  /// PAPER.md section 3: linear 0.55761, debiased linear 0.51346, RBF 0.65483 (to 1e-4).
  func testReferenceValues2019() throws {
    let (x, y) = Self.demoInputs()
    XCTAssertEqual(try FullBatchCKA.linear(x, y).value!, 0.55761, accuracy: 1e-4)
    XCTAssertEqual(try FullBatchCKA.linearFeatureSpace(x, y).value!, 0.55761, accuracy: 1e-4)
    XCTAssertEqual(try FullBatchCKA.debiasedLinear(x, y).value!, 0.51346, accuracy: 1e-4)
    XCTAssertEqual(try FullBatchCKA.rbf(x, y).value!, 0.65483, accuracy: 1e-4)
  }

  /// <vec U(K), vec U(L)> from bs_ucenter (float) = m(m-3) HSIC1(K, L) of the explicit
  /// formula (Double), on random Grams of several sizes.
  func testUCentredDotEqualsScaledHSIC1() {
    var rs = NumpyRandomState(seed: 7)
    for m in [4, 5, 8, 17, 64, 100] {
      let d = 12
      let x = try! FeatureMatrix(rows: m, columns: d, values: rs.randn(m, d))
      let y = try! FeatureMatrix(rows: m, columns: d, values: rs.randn(m, d).map { $0 * 3 + 1 })
      let k = x.gram, l = y.gram
      var kf = k.map(Float.init), lf = l.map(Float.init)
      var r = [Double](repeating: 0, count: m)
      testKernels.kernels.bs_ucenter(kf, Int32(m), &kf, &r)
      testKernels.kernels.bs_ucenter(lf, Int32(m), &lf, &r)
      var dot = 0.0, mag = 0.0
      for i in 0..<(m * m) {
        dot += Double(kf[i]) * Double(lf[i])
        mag += abs(Double(kf[i]) * Double(lf[i]))
      }
      let want = Double(m * (m - 3)) * FullBatchCKA.hsic1(k, l, n: m)
      // Float Grams and centring: relative error of a few u per term.
      XCTAssertEqual(dot, want, accuracy: 1e-5 * mag + 1e-9, "m=\(m)")
      // And the diagonal really is zero, rows really sum to zero (U-centred).
      for i in 0..<m { XCTAssertEqual(kf[i * m + i], 0) }
    }
  }

  func testInvariancesSymmetryAndDiagonal() throws {
    var rs = NumpyRandomState(seed: 11)
    let n = 40, d = 6
    let x = try FeatureMatrix(rows: n, columns: d, values: rs.randn(n, d))
    let y = try FeatureMatrix(rows: n, columns: 9, values: rs.randn(n, 9).enumerated().map {
      $0.element + x.values[($0.offset / 9) * d + ($0.offset % 9) % d] })
    // A random orthogonal d x d matrix (Gram-Schmidt on Gaussian columns).
    var q = rs.randn(d, d)
    for c in 0..<d {
      for p in 0..<c {
        var dot = 0.0
        for r in 0..<d { dot += q[r * d + c] * q[r * d + p] }
        for r in 0..<d { q[r * d + c] -= dot * q[r * d + p] }
      }
      var norm = 0.0
      for r in 0..<d { norm += q[r * d + c] * q[r * d + c] }
      for r in 0..<d { q[r * d + c] /= norm.squareRoot() }
    }
    var rotated = [Double](repeating: 0, count: n * d)
    for i in 0..<n { for j in 0..<d { for t in 0..<d { rotated[i * d + j] += x.values[i * d + t] * q[t * d + j] } } }
    let xr = try FeatureMatrix(rows: n, columns: d, values: rotated.map { $0 * 3.7 })   // rotate and scale
    let estimators: [(String, (FeatureMatrix, FeatureMatrix) throws -> CKAValue)] = [
      ("linear", FullBatchCKA.linear), ("debiased", FullBatchCKA.debiasedLinear),
      ("rbf", { try FullBatchCKA.rbf($0, $1) }), ("feature", FullBatchCKA.linearFeatureSpace),
    ]
    for (name, f) in estimators {
      let base = try f(x, y).value!
      XCTAssertEqual(try f(xr, y).value!, base, accuracy: 1e-10, "\(name): orthogonal + scaling")
      XCTAssertEqual(try f(y, x).value!, base, accuracy: 1e-12, "\(name): symmetry")
      XCTAssertEqual(try f(x, x).value!, 1, accuracy: 1e-12, "\(name): diagonal")
      XCTAssertEqual(try f(x, xr).value!, 1, accuracy: 1e-10, "\(name): 1 between X and 3.7 X Q")
      XCTAssertGreaterThan(base, 0.1, name)
    }
  }

  func testConstantAndMismatchedInputsAreReportedNotNaN() throws {
    let x = try FeatureMatrix(rows: 5, columns: 2, values: [1, 2, 3, 4, 5, 6, 7, 8, 9, 1])
    let c = try FeatureMatrix(rows: 5, columns: 2, values: [Double](repeating: 3, count: 10))
    for v in [try FullBatchCKA.linear(x, c), try FullBatchCKA.debiasedLinear(x, c),
              try FullBatchCKA.rbf(x, c), try FullBatchCKA.linearFeatureSpace(c, x)] {
      XCTAssertNil(v.value)
      XCTAssertNotNil(v.note)
    }
    let short = try FeatureMatrix(rows: 3, columns: 2, values: [1, 2, 3, 4, 5, 6])
    XCTAssertThrowsError(try FullBatchCKA.linear(x, short))
    XCTAssertThrowsError(try FullBatchCKA.debiasedLinear(short, short))
    XCTAssertThrowsError(try FeatureMatrix(rows: 2, columns: 2, values: [1, .nan, 2, 3]))
    XCTAssertThrowsError(try FeatureMatrix(rows: 2, columns: 2, values: [1, 2, 3]))
  }

  func testMedianMatchesSorting() {
    var rs = NumpyRandomState(seed: 3)
    for count in [1, 2, 3, 4, 9, 10, 100, 101] {
      for _ in 0..<5 {
        var v = rs.randn(count, 1).map { Float($0.rounded(.toNearestOrEven) / 2) }   // with ties
        let want = FullBatchCKA.median(v.map(Double.init))
        let got = v.withUnsafeMutableBufferPointer { GramForms.medianOf($0.baseAddress!, count: count) }
        XCTAssertEqual(Double(got), want, accuracy: 1e-7, "count=\(count)")
      }
    }
  }
}
