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

  /// Kornblith et al. 2019 demo (docs/ANALYSIS.md, "CKA estimators"): linear 0.55761, debiased
  /// linear 0.51346, RBF 0.65483 (to 1e-4).
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

  /// Column means of 100 to 1e6 against a spread of ~1 change no estimator (all are
  /// translation invariant): every value within 1e-9 of the offset-free one, which the data's
  /// construction makes exact (multiples of 1/64 plus integers: no rounding in x + offset).
  /// A constant matrix with a large offset, or one whose rows differ by an ulp, is undefined.
  func testLargeColumnOffsetsChangeNoEstimator() throws {
    let (n, d) = (40, 6)
    var rs = NumpyRandomState(seed: 21)
    let base = rs.randn(n, d).map { ($0 * 64).rounded() / 64 }
    let other = zip(base, rs.randn(n, d)).map { (($0 + 0.7 * $1) * 64).rounded() / 64 }
    let estimators: [(String, (FeatureMatrix, FeatureMatrix) throws -> CKAValue)] = [
      ("linear", FullBatchCKA.linear), ("debiased", FullBatchCKA.debiasedLinear),
      ("rbf", { try FullBatchCKA.rbf($0, $1) }), ("feature", FullBatchCKA.linearFeatureSpace),
    ]
    let x0 = try FeatureMatrix(rows: n, columns: d, values: base)
    let y0 = try FeatureMatrix(rows: n, columns: d, values: other)
    for offset in [100.0, 1e3, 1e4, 1e6] {
      // A different offset per column (offset, 2 offset, ...), and the negative for y.
      let x = try FeatureMatrix(rows: n, columns: d, values: base.enumerated().map { $1 + offset * Double($0 % d + 1) })
      let y = try FeatureMatrix(rows: n, columns: d, values: other.enumerated().map { $1 - offset * Double($0 % d + 1) })
      for (name, f) in estimators {
        let want = try XCTUnwrap(f(x0, y0).value, name)
        let got = try XCTUnwrap(f(x, y).value, "\(name) offset \(offset)")
        XCTAssertEqual(got, want, accuracy: 1e-9, "\(name) offset \(offset)")
        XCTAssertEqual(try XCTUnwrap(f(x, x).value), 1, accuracy: 1e-9, "\(name) self, offset \(offset)")
      }
      let constant = try FeatureMatrix(rows: n, columns: d, values: [Double](repeating: offset, count: n * d))
      var ulps = constant.values
      for i in stride(from: 0, to: ulps.count, by: 3) { ulps[i] = ulps[i].nextUp }
      let nearlyConstant = try FeatureMatrix(rows: n, columns: d, values: ulps)
      for (name, f) in estimators {
        XCTAssertNil(try f(x, constant).value, "\(name): constant at \(offset)")
        XCTAssertNil(try f(nearlyConstant, y).value, "\(name): an ulp apart at \(offset)")
        XCTAssertNotNil(try f(x, constant).note)
      }
    }
  }

  /// The minibatch path's Gram forms (fp32, centred before the product) and the cached path
  /// (forms derived later from the stored centred entry) against the Double reference with
  /// column means up to 1e4: within 1e-4 for every estimator.
  func testGramFormsWithLargeOffsetsMatchTheDoubleReference() throws {
    let (m, d) = (64, 48)
    var rs = NumpyRandomState(seed: 22)
    let base = rs.randn(m, d).map { ($0 * 64).rounded() / 64 }
    let other = zip(base, rs.randn(m, d)).map { (max($0, 0) + 0.5 * $1) }.map { ($0 * 64).rounded() / 64 }
    let x0 = try FeatureMatrix(rows: m, columns: d, values: base)
    let y0 = try FeatureMatrix(rows: m, columns: d, values: other)
    let reference: [(GramForm, Double)] = [
      (.unbiased, try XCTUnwrap(FullBatchCKA.debiasedLinear(x0, y0).value)),
      (.biased, try XCTUnwrap(FullBatchCKA.linear(x0, y0).value)),
      (.rbf, try XCTUnwrap(FullBatchCKA.rbf(x0, y0).value)),
    ]
    func dot(_ a: GramEntry, _ b: GramEntry) -> Double {
      var s = 0.0
      for i in 0..<a.count { s += Double(a.pointer[i]) * Double(b.pointer[i]) }
      return s
    }
    for offset in [0.0, 100, 1e3, 1e4] {
      let xf = base.enumerated().map { Float($1 + offset * Double($0 % 3 + 1)) }
      let yf = other.enumerated().map { Float($1 + offset) }
      let cx = try GramForms.centred(xf, m: m, d: d, context: testKernels)
      let cy = try GramForms.centred(yf, m: m, d: d, context: testKernels)
      for (form, want) in reference {
        // Fresh, and again from the "cached" centred entries (derive after the fact).
        for pass in ["minibatch", "cached"] {
          let a = try GramForms.derive(form, from: cx, context: testKernels)
          let b = try GramForms.derive(form, from: cy, context: testKernels)
          let got = dot(a, b) / (dot(a, a) * dot(b, b)).squareRoot()
          XCTAssertEqual(got, want, accuracy: 1e-4, "\(form) \(pass) offset \(offset)")
        }
      }
      XCTAssertFalse(cx.isConstant)
      let constant = try GramForms.centred([Float](repeating: Float(offset + 3), count: m * d), m: m, d: d,
                                           context: testKernels)
      XCTAssertTrue(constant.isConstant, "a constant at \(offset + 3) is constant")
    }
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
