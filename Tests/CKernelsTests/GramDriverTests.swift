import CKernels
import Foundation
import XCTest

/// The threaded CKA drivers of gram_ops.c against Double computations of their definitions,
/// under every ISA and 1 and 2 threads; eigen and singular results checked algebraically.
final class GramDriverTests: XCTestCase {
  /// Centred Gram H X X^T H in Double.
  static func centredGram(_ x: [Float], m: Int, d: Int) -> [Double] {
    var mean = [Double](repeating: 0, count: d)
    for i in 0..<m { for k in 0..<d { mean[k] += Double(x[i * d + k]) } }
    for k in 0..<d { mean[k] /= Double(m) }
    var g = [Double](repeating: 0, count: m * m)
    for i in 0..<m {
      for j in 0..<m {
        var s = 0.0
        for k in 0..<d { s += (Double(x[i * d + k]) - mean[k]) * (Double(x[j * d + k]) - mean[k]) }
        g[i * m + j] = s
      }
    }
    return g
  }

  func testChannelGramsGiveTheGramAndTheAffineMapsGram() {
    // x: [m][positions][channels]; K = centred Gram of x, Kw = sum_c w_c Kc, which with
    // w_c = a_c^2 is the centred Gram of y = a_c x + b_c: checked against y's Double Gram.
    var rng = TestRNG(seed: 93)
    for isa in supportedISAs {
      for threads in [1, 2, 3] {
        withKernels(isa: isa, threads: threads) { ctx in
          for (m, positions, channels) in [(4, 1, 1), (5, 7, 3), (9, 33, 16), (17, 16, 64), (6, 64, 2)] {
            let d = positions * channels
            let x = (0..<(m * d)).map { _ in 3 + rng.float(0, 1) }
            let a = (0..<channels).map { _ in rng.float(0.2, 2) }
            let b = (0..<channels).map { _ in rng.float(-1, 1) }
            let weights = a.map { $0 * $0 }
            var k = [Float](repeating: .nan, count: m * m), kw = k
            var sums = [Double](repeating: .nan, count: 2 * channels)
            XCTAssertEqual(bs_gram_centered_channels(ctx, x, Int32(m), positions, Int32(channels), weights,
                                                     &k, &kw, &sums), BS_OK)
            // The same activations laid out NCHW ([m][channels][positions]): each channel's
            // values reach the same kernels in the same order, so the results are the same bits.
            var nchw = [Float](repeating: 0, count: m * d)
            for i in 0..<m { for q in 0..<positions { for c in 0..<channels {
              nchw[i * d + c * positions + q] = x[i * d + q * channels + c]
            } } }
            var kN = [Float](repeating: .nan, count: m * m), kwN = kN
            var sumsN = [Double](repeating: .nan, count: 2 * channels)
            XCTAssertEqual(bs_gram_centered_channels_nchw(ctx, nchw, Int32(m), positions, Int32(channels), weights,
                                                          &kN, &kwN, &sumsN), BS_OK)
            XCTAssertEqual(kN, k, "\(isa) t=\(threads) m=\(m) P=\(positions) C=\(channels) NCHW K")
            XCTAssertEqual(kwN, kw, "NCHW Kw")
            XCTAssertEqual(sumsN, sums, "NCHW mean sums")
            var y = [Float](repeating: 0, count: m * d)
            for i in 0..<(m * d) { y[i] = Float(Double(a[i % channels]) * Double(x[i]) + Double(b[i % channels])) }
            let wantK = Self.centredGram(x, m: m, d: d), wantKw = Self.centredGram(y, m: m, d: d)
            var mean = [Double](repeating: 0, count: d)
            for i in 0..<m { for f in 0..<d { mean[f] += Double(x[i * d + f]) / Double(m) } }
            for c in 0..<channels {
              var s1 = 0.0, s2 = 0.0
              for q in 0..<positions { s1 += mean[q * channels + c]; s2 += mean[q * channels + c] * mean[q * channels + c] }
              // Means recovered from row 0 after centring (x - (x - mean)): a few float
              // roundings of values below 4 each.
              XCTAssertEqual(sums[2 * c], s1, accuracy: Double(positions) * 16 * floatU)
              XCTAssertEqual(sums[2 * c + 1], s2, accuracy: Double(positions) * 128 * floatU)
            }
            for i in 0..<m {
              for j in 0..<m {
                // As for bs_gram_centered (centring 2u |mean|, products (P + 2) u per channel),
                // plus the float y, the weights and the sum over channels (C u) for Kw.
                var tol = 1e-30, tolW = 1e-30
                for f in 0..<d {
                  let w = Double(weights[f % channels])
                  let ac = abs(Double(a[f % channels])), bc = abs(Double(b[f % channels]))
                  let xi = abs(Double(x[i * d + f]) - mean[f]), xj = abs(Double(x[j * d + f]) - mean[f])
                  let t = 2 * floatU * abs(mean[f]) * (xi + xj) + Double(positions + channels + 2) * floatU * xi * xj
                  tol += t
                  // y's own rounding, u |y|, times the other side's |a xc|.
                  tolW += w * t + 4 * floatU * (ac * (abs(mean[f]) + 1) + bc) * ac * (xi + xj)
                }
                XCTAssertEqual(Double(k[i * m + j]), wantK[i * m + j], accuracy: tol,
                               "\(isa) t=\(threads) m=\(m) P=\(positions) C=\(channels) K(\(i),\(j))")
                XCTAssertEqual(Double(kw[i * m + j]), wantKw[i * m + j], accuracy: tolW,
                               "\(isa) t=\(threads) m=\(m) P=\(positions) C=\(channels) Kw(\(i),\(j))")
              }
            }
            XCTAssertEqual(k[1], k[m])
            XCTAssertEqual(kw[1], kw[m])
          }
        }
      }
    }
  }

  func testCentredGramMatchesDoubleForLargeMeans() {
    var rng = TestRNG(seed: 91)
    for isa in supportedISAs {
      for threads in [1, 2] {
        withKernels(isa: isa, threads: threads) { ctx in
          for (m, d) in [(4, 1), (5, 511), (9, 513), (33, 1500), (64, 2048)] {
            // Features with a large common offset (like ReLU outputs): centring before the
            // product is what keeps fp32 accurate here.
            let x = (0..<(m * d)).map { _ in 10 + rng.float(0, 1) }
            var got = [Float](repeating: .nan, count: m * m)
            var meanSq = 0.0
            XCTAssertEqual(bs_gram_centered(ctx, x, Int32(m), d, &got, &meanSq), BS_OK)
            let want = Self.centredGram(x, m: m, d: d)
            // Each centred value is off by <= 2u |mean| (the float mean and the subtraction);
            // the product sums in float: (d + 2) u sum |xc_i xc_j| for any summation order.
            var mean = [Double](repeating: 0, count: d)
            for i in 0..<m { for k in 0..<d { mean[k] += Double(x[i * d + k]) / Double(m) } }
            let wantMeanSq = mean.reduce(0) { $0 + $1 * $1 }
            XCTAssertEqual(meanSq, wantMeanSq, accuracy: 1e-5 * wantMeanSq)
            for i in 0..<m {
              for j in 0..<m {
                var tol = 1e-30
                for k in 0..<d {
                  let xi = abs(Double(x[i * d + k]) - mean[k]), xj = abs(Double(x[j * d + k]) - mean[k])
                  tol += 2 * floatU * abs(mean[k]) * (xi + xj) + Double(d + 2) * floatU * xi * xj
                }
                XCTAssertEqual(Double(got[i * m + j]), want[i * m + j], accuracy: tol,
                               "\(isa) t=\(threads) m=\(m) d=\(d) (\(i),\(j))")
              }
            }
            XCTAssertEqual(got[1], got[m], "not symmetric")
          }
        }
      }
    }
  }

  func testPairwiseDotsMatchDouble() {
    var rng = TestRNG(seed: 92)
    for threads in [1, 2, 3] {
      withKernels(isa: defaultISA, threads: threads) { ctx in
        for (na, nb, len) in [(1, 1, 1), (3, 5, 4095), (7, 2, 4097), (12, 9, 9000)] {
          let a = (0..<na).map { _ in rng.floats(len) }, b = (0..<nb).map { _ in rng.floats(len) }
          let pa = a.map { v -> UnsafePointer<Float>? in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: len); p.initialize(from: v, count: len); return UnsafePointer(p) }
          let pb = b.map { v -> UnsafePointer<Float>? in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: len); p.initialize(from: v, count: len); return UnsafePointer(p) }
          defer { (pa + pb).forEach { UnsafeMutablePointer(mutating: $0!).deallocate() } }
          func check(_ out: [Double], _ x: [[Float]], _ y: [[Float]]) {
            for i in 0..<x.count {
              for j in 0..<y.count {
                var s = 0.0, abs = 0.0
                for k in 0..<len { s += Double(x[i][k]) * Double(y[j][k]); abs += Swift.abs(Double(x[i][k]) * Double(y[j][k])) }
                // fp32 within chunks of 4096, double across them.
                XCTAssertEqual(out[i * y.count + j], s, accuracy: 4100 * floatU * abs + 1e-12,
                               "t=\(threads) na=\(na) nb=\(nb) len=\(len) (\(i),\(j))")
              }
            }
          }
          var rect = [Double](repeating: .nan, count: na * nb)
          XCTAssertEqual(bs_pairwise_dots(ctx, pa, Int32(na), pb, Int32(nb), len, &rect), BS_OK)
          check(rect, a, b)
          var sym = [Double](repeating: .nan, count: na * na)
          XCTAssertEqual(bs_pairwise_dots(ctx, pa, Int32(na), nil, 0, len, &sym), BS_OK)
          check(sym, a, a)
          for i in 0..<na { for j in 0..<na { XCTAssertEqual(sym[i * na + j], sym[j * na + i]) } }
          // The same vectors side by side at a constant stride: read in place, same results.
          let stride = len + 5
          let slabA = UnsafeMutablePointer<Float>.allocate(capacity: stride * na)
          let slabB = UnsafeMutablePointer<Float>.allocate(capacity: stride * nb)
          defer { slabA.deallocate(); slabB.deallocate() }
          for i in 0..<na { (slabA + i * stride).update(from: a[i], count: len) }
          for i in 0..<nb { (slabB + i * stride).update(from: b[i], count: len) }
          let sa = (0..<na).map { Optional(UnsafePointer(slabA + $0 * stride)) }
          let sb = (0..<nb).map { Optional(UnsafePointer(slabB + $0 * stride)) }
          var rect2 = [Double](repeating: .nan, count: na * nb), sym2 = [Double](repeating: .nan, count: na * na)
          XCTAssertEqual(bs_pairwise_dots(ctx, sa, Int32(na), sb, Int32(nb), len, &rect2), BS_OK)
          XCTAssertEqual(bs_pairwise_dots(ctx, sa, Int32(na), nil, 0, len, &sym2), BS_OK)
          XCTAssertEqual(rect2, rect)
          XCTAssertEqual(sym2, sym)
        }
      }
    }
  }

  /// K u = lambda u with |u| = 1, and lambda is the largest eigenvalue: no unit vector found
  /// by a Double power iteration has a larger Rayleigh quotient, and the traces agree with a
  /// rank-one check on a matrix with a known spectrum.
  func testTopEigenpairAlgebraically() {
    var rng = TestRNG(seed: 93)
    for m in [1, 2, 5, 16, 37, 128] {
      // K = X X^T, positive semi-definite like every Gram.
      let d = m + 3
      let x = rng.floats(m * d)
      var k = [Float](repeating: 0, count: m * m)
      for i in 0..<m { for j in 0..<m { var s: Float = 0; for t in 0..<d { s += x[i * d + t] * x[j * d + t] }; k[i * m + j] = s } }
      for i in 0..<m { for j in 0..<i { k[i * m + j] = k[j * m + i] } }
      var lambda: Float = 0
      var u = [Float](repeating: 0, count: m)
      XCTAssertEqual(bs_sym_top_eigen(k, Int32(m), &lambda, &u, nil), BS_OK)
      let norm = sqrt(u.reduce(0.0) { $0 + Double($1) * Double($1) })
      XCTAssertEqual(norm, 1, accuracy: 1e-5)
      let scale = Double(lambda)
      for i in 0..<m {
        var ku = 0.0
        for j in 0..<m { ku += Double(k[i * m + j]) * Double(u[j]) }
        XCTAssertEqual(ku, Double(lambda) * Double(u[i]), accuracy: 1e-4 * scale, "m=\(m) row \(i)")
      }
      // Double power iteration from a fixed start.
      var v = (0..<m).map { Double($0 % 7) + 1 }
      var rayleigh = 0.0
      for _ in 0..<2000 {
        var w = [Double](repeating: 0, count: m)
        for i in 0..<m { for j in 0..<m { w[i] += Double(k[i * m + j]) * v[j] } }
        let n = sqrt(w.reduce(0) { $0 + $1 * $1 })
        rayleigh = zip(v, w).reduce(0) { $0 + $1.0 * $1.1 } / v.reduce(0) { $0 + $1 * $1 }
        v = w.map { $0 / n }
      }
      XCTAssertEqual(Double(lambda), rayleigh, accuracy: 1e-4 * scale, "m=\(m)")
      let cosine = abs(zip(v, u).reduce(0) { $0 + $1.0 * Double($1.1) })
      if m > 1 { XCTAssertGreaterThan(cosine, 0.999, "m=\(m): eigenvector differs from power iteration") }
    }
  }

  /// The top singular triplet of X equals the top eigenpair of X X^T: s1^2 = lambda, |<u, u'>| = 1.
  func testTopSingularAgreesWithGramEigen() {
    var rng = TestRNG(seed: 94)
    for (n, d) in [(3, 8), (20, 7), (40, 300)] {
      let x = rng.floats(n * d)
      var k = [Float](repeating: 0, count: n * n)
      for i in 0..<n { for j in 0..<n { var s = 0.0; for t in 0..<d { s += Double(x[i * d + t]) * Double(x[j * d + t]) }; k[i * n + j] = Float(s) } }
      var lambda: Float = 0, s1: Float = 0
      var u = [Float](repeating: 0, count: n), us = u
      XCTAssertEqual(bs_sym_top_eigen(k, Int32(n), &lambda, &u, nil), BS_OK)
      XCTAssertEqual(bs_top_singular(x, Int32(n), d, &s1, &us, nil), BS_OK)
      XCTAssertEqual(Double(s1 * s1), Double(lambda), accuracy: 1e-4 * Double(lambda))
      XCTAssertEqual(abs(zip(u, us).reduce(0) { $0 + Double($1.0) * Double($1.1) }), 1, accuracy: 1e-4)
    }
  }
}
