import CKernels
import XCTest

/// bs_bn_forward_train / bs_bn_forward_infer / bs_bn_backward against Double, under every
/// supported ISA with 1 and 2 threads. Tolerances follow the implementation: the per-channel
/// sums may be float partial sums (error <= 70u * sum|t|, see batchnorm_avx2.c), the variance is
/// E[x^2] - mean^2 in double, and the per-channel coefficients are rounded to float before one
/// FMA-or-multiply-add pass.
final class BatchNormTests: XCTestCase {
  static let rowCounts = [1, 2, 7, 64, 1000, 5000]   // 5000 rows: two row tasks with 2 threads
  static let channels = [1, 3, 16, 17, 64]
  static let sumError = 70 * floatU   // relative to the sum of magnitudes (see batchnorm_avx2.c)

  func testForwardTrainMatchesDoubleIncludingRunningStatistics() {
    var rng = TestRNG(seed: 201)
    let eps: Float = 1e-5, momentum: Float = 0.1
    for rows in Self.rowCounts {
      for C in Self.channels {
        let x = rng.floats(rows * C, -1, 3)
        let gamma = rng.floats(C, 0.5, 1.5), beta = rng.floats(C, -0.5, 0.5)
        let rm0 = rng.floats(C, -0.5, 0.5), rv0 = rng.floats(C, 0.5, 2)
        for relu in [0, 1] {
          for isa in supportedISAs {
            for threads in [1, 2] {
              var mm = Mismatches("bn train rows\(rows) C\(C) relu\(relu) \(isa) threads \(threads)")
              var rm = rm0, rv = rv0
              var mean = [Float](repeating: .nan, count: C), invstd = mean
              var y = [Float](repeating: .nan, count: x.count)
              withKernels(isa: isa, threads: threads) { ctx in
                bs_bn_forward_train(ctx, x, rows, Int32(C), gamma, beta, eps, momentum, Int32(relu),
                                    &rm, &rv, &mean, &invstd, &y)
              }
              let n = Double(rows)
              for c in 0..<C {
                var s = 0.0, sAbs = 0.0, sq = 0.0
                for r in 0..<rows {
                  let v = Double(x[r * C + c])
                  s += v
                  sAbs += abs(v)
                  sq += v * v
                }
                let m = s / n
                var v2 = 0.0
                for r in 0..<rows { v2 += (Double(x[r * C + c]) - m) * (Double(x[r * C + c]) - m) }
                let variance = v2 / n, unbiased = rows > 1 ? v2 / (n - 1) : variance
                let isd = 1 / (variance + Double(eps)).squareRoot()
                // Absolute error of the mean and of E[x^2] - mean^2 from the sums.
                let dMean = Self.sumError * sAbs / n + floatU * abs(m)
                let dVar = Self.sumError * (sq / n + 2 * abs(m) * sAbs / n)
                let relIs = dVar / (2 * (variance + Double(eps))) + 4 * floatU
                mm.check(abs(Double(mean[c]) - m) <= dMean, "mean[\(c)] = \(mean[c]), want \(m)")
                mm.check(abs(Double(invstd[c]) - isd) <= isd * relIs,
                         "invstd[\(c)] = \(invstd[c]), want \(isd)")
                let g = Double(gamma[c]), b = Double(beta[c]), mo = Double(momentum)
                let wantRm = (1 - mo) * Double(rm0[c]) + mo * m
                let wantRv = (1 - mo) * Double(rv0[c]) + mo * unbiased
                mm.check(abs(Double(rm[c]) - wantRm) <= 3 * floatU * (abs(Double(rm0[c])) + abs(m)) + mo * dMean,
                         "run_mean[\(c)] = \(rm[c]), want \(wantRm)")
                mm.check(abs(Double(rv[c]) - wantRv) <= 3 * floatU * (Double(rv0[c]) + unbiased) + mo * dVar * n / max(n - 1, 1),
                         "run_var[\(c)] = \(rv[c]), want \(wantRv)")
                for r in 0..<rows {
                  let xv = Double(x[r * C + c]), xhat = (xv - m) * isd
                  var want = g * xhat + b
                  if relu != 0 { want = max(want, 0) }
                  let tol = abs(g * xhat) * relIs + abs(g) * isd * dMean
                    + 4 * floatU * (abs(g * isd * xv) + abs(b - m * g * isd)) + 2 * floatU * abs(want) + 1e-30
                  mm.check(abs(Double(y[r * C + c]) - want) <= tol,
                           "y[\(r)][\(c)] = \(y[r * C + c]), want \(want) ± \(tol)")
                }
              }
              mm.report()
            }
          }
        }
      }
    }
  }

  func testForwardInferMatchesDouble() {
    var rng = TestRNG(seed: 202)
    let eps: Float = 1e-5
    for rows in Self.rowCounts {
      for C in Self.channels {
        let x = rng.floats(rows * C, -1, 3)
        let gamma = rng.floats(C, 0.5, 1.5), beta = rng.floats(C, -0.5, 0.5)
        let rm = rng.floats(C, 0, 2), rv = rng.floats(C, 0.5, 2)
        for relu in [0, 1] {
          for isa in supportedISAs {
            var mm = Mismatches("bn infer rows\(rows) C\(C) relu\(relu) \(isa)")
            var y = [Float](repeating: .nan, count: x.count)
            withKernels(isa: isa, threads: 2) { ctx in
              bs_bn_forward_infer(ctx, x, rows, Int32(C), gamma, beta, rm, rv, eps, Int32(relu), &y)
            }
            for i in 0..<x.count {
              let c = i % C
              let isd = 1 / (Double(rv[c]) + Double(eps)).squareRoot()
              let scale = Double(gamma[c]) * isd, shift = Double(beta[c]) - Double(rm[c]) * scale
              var want = scale * Double(x[i]) + shift
              if relu != 0 { want = max(want, 0) }
              // scale and shift rounded to float, then one FMA or multiply-add; batchnorm_ops.c
              // also forms run_mean * gamma in float (one more rounding of |rm * scale|).
              let tol = 4 * floatU * (abs(scale * Double(x[i])) + abs(shift)
                + abs(Double(rm[c]) * scale)) + 1e-30
              mm.check(abs(Double(y[i]) - want) <= tol, "y[\(i)] = \(y[i]), want \(want)")
            }
            mm.report()
          }
        }
      }
    }
  }

  func testBackwardMatchesDouble() {
    var rng = TestRNG(seed: 203)
    for rows in Self.rowCounts {
      for C in Self.channels {
        let x = rng.floats(rows * C, -1, 3), dy = rng.floats(rows * C)
        let gamma = rng.floats(C, 0.5, 1.5)
        let mean = rng.floats(C, 0.5, 1.5), invstd = rng.floats(C, 0.5, 2)
        let n = Double(rows)
        // Exact results and the coefficients dx = k1 dy + k2 x + k3 (see batchnorm_ops.c).
        var sdy = [Double](repeating: 0, count: C), sdyAbs = sdy, S = sdy, SAbs = sdy
        for r in 0..<rows {
          for c in 0..<C {
            let g = Double(dy[r * C + c]), xc = Double(x[r * C + c]) - Double(mean[c])
            sdy[c] += g
            sdyAbs[c] += abs(g)
            S[c] += g * xc
            SAbs[c] += abs(g * xc)
          }
        }
        for isa in supportedISAs {
          for threads in [1, 2] {
            for inPlace in [false, true] {
              var mm = Mismatches("bn backward rows\(rows) C\(C) \(isa) threads \(threads) inPlace \(inPlace)")
              var dgamma = [Float](repeating: .nan, count: C), dbeta = dgamma
              var dx = inPlace ? dy : [Float](repeating: .nan, count: x.count)
              withKernels(isa: isa, threads: threads) { ctx in
                if inPlace {
                  dx.withUnsafeMutableBufferPointer { d in
                    bs_bn_backward(ctx, d.baseAddress, x, rows, Int32(C), gamma, mean, invstd, &dgamma,
                                   &dbeta, d.baseAddress)
                  }
                } else {
                  bs_bn_backward(ctx, dy, x, rows, Int32(C), gamma, mean, invstd, &dgamma, &dbeta, &dx)
                }
              }
              for c in 0..<C {
                let isd = Double(invstd[c])
                mm.check(abs(Double(dbeta[c]) - sdy[c]) <= Self.sumError * sdyAbs[c] + floatU * abs(sdy[c]),
                         "dbeta[\(c)] = \(dbeta[c]), want \(sdy[c])")
                mm.check(abs(Double(dgamma[c]) - S[c] * isd) <= isd * Self.sumError * SAbs[c] + 2 * floatU * abs(S[c] * isd),
                         "dgamma[\(c)] = \(dgamma[c]), want \(S[c] * isd)")
              }
              for i in 0..<x.count {
                let c = i % C, isd = Double(invstd[c])
                let k1 = Double(gamma[c]) * isd, k2 = -k1 * isd * isd * S[c] / n
                let k3 = -k1 * sdy[c] / n - k2 * Double(mean[c])
                let xc = Double(x[i]) - Double(mean[c])
                let want = k1 * Double(dy[i]) + k2 * Double(x[i]) + k3
                // Sum errors carried through k3 and k2, plus rounding the k's to float and
                // evaluating with up to four roundings.
                let terms = abs(k1 * Double(dy[i])) + abs(k2 * Double(x[i])) + abs(k3)
                let tol = abs(k1) * Self.sumError * sdyAbs[c] / n
                  + abs(k1) * isd * isd * abs(xc) * Self.sumError * SAbs[c] / n
                  + 5 * floatU * terms + 1e-30
                mm.check(abs(Double(dx[i]) - want) <= tol, "dx[\(i)] = \(dx[i]), want \(want) ± \(tol)")
              }
              mm.report()
            }
          }
        }
      }
    }
  }
}
