import CKernels
import XCTest

/// bs_conv_forward / bs_conv_backward against a naive direct convolution in Double, under
/// every convolution algorithm (gemm, direct, winograd, auto), every ISA the CPU supports and with 1 and
/// 2 threads, plus run-to-run determinism.
final class ConvTests: XCTestCase {
  struct Shape: CustomStringConvertible {
    var N, H, W, Ci, Co, K, stride, pad: Int
    var OH: Int { (H + 2 * pad - K) / stride + 1 }
    var OW: Int { (W + 2 * pad - K) / stride + 1 }
    var c: bs_conv_shape {
      var s = bs_conv_shape(N: Int32(N), H: Int32(H), W: Int32(W), Ci: Int32(Ci), Co: Int32(Co),
                            KH: Int32(K), KW: Int32(K), stride: Int32(stride), pad: Int32(pad),
                            OH: 0, OW: 0)
      precondition(bs_conv_shape_init(&s) == BS_OK, "invalid shape \(self)")
      return s
    }
    var description: String {
      "N\(N) \(H)x\(W)x\(Ci) -> Co\(Co) k\(K) s\(stride) p\(pad)"
    }
  }

  /// Strides 1/2, pads 0/1, kernels 1x1 and 3x3, channel counts 1, 3, 16, 17 (in and out),
  /// batch sizes 1...5 and odd, non-square spatial sizes; one shape large enough that an image
  /// chunk holds several images and a task several chunks.
  static var shapes: [Shape] {
    var out: [Shape] = []
    let channels = [1, 3, 16, 17], sizes = [1, 3, 5, 7, 9]
    var i = 0
    for K in [1, 3] {
      for stride in [1, 2] {
        for pad in [0, 1] {
          for Ci in channels {
            for Co in channels {
              i += 1
              var H = sizes[i % 5], W = sizes[(i * 3 + 1) % 5]
              if H + 2 * pad < K { H += 2 }
              if W + 2 * pad < K { W += 2 }
              out.append(Shape(N: 1 + i % 5, H: H, W: W, Ci: Ci, Co: Co, K: K, stride: stride,
                               pad: pad))
            }
          }
        }
      }
    }
    out.append(Shape(N: 5, H: 17, W: 15, Ci: 16, Co: 16, K: 3, stride: 1, pad: 1))
    out.append(Shape(N: 4, H: 9, W: 11, Ci: 16, Co: 32, K: 3, stride: 2, pad: 1))
    // For bs_conv3x3_direct (3x3, pad 1): output channels in 8-wide blocks (8, 24, 40), odd
    // tails after 16- and 8-wide blocks (9, 25, 13 as the backward-data's Co = Ci), several
    // 16-channel blocks, tiles spanning output rows, 1-pixel-wide images, odd sizes.
    out.append(Shape(N: 2, H: 8, W: 8, Ci: 8, Co: 24, K: 3, stride: 1, pad: 1))
    out.append(Shape(N: 3, H: 10, W: 7, Ci: 5, Co: 40, K: 3, stride: 2, pad: 1))
    out.append(Shape(N: 2, H: 6, W: 13, Ci: 24, Co: 9, K: 3, stride: 1, pad: 1))
    out.append(Shape(N: 2, H: 7, W: 5, Ci: 13, Co: 25, K: 3, stride: 1, pad: 1))
    out.append(Shape(N: 3, H: 12, W: 1, Ci: 8, Co: 8, K: 3, stride: 1, pad: 1))
    out.append(Shape(N: 2, H: 16, W: 16, Ci: 32, Co: 64, K: 3, stride: 2, pad: 1))
    out.append(Shape(N: 2, H: 8, W: 8, Ci: 64, Co: 48, K: 3, stride: 1, pad: 1))
    return out
  }

  /// Exact results in Double and, for each, the sum of the magnitudes of its terms: a float
  /// computation that sums k terms in any order is within (k - 1)u * sum|terms| (+ O(u^2)).
  struct Reference {
    var y, yAbs, dx, dxAbs, dw, dwAbs, db, dbAbs: [Double]
  }

  static func reference(_ s: Shape, x: [Float], w: [Float], bias: [Float], dy: [Float])
    -> Reference
  {
    let (OH, OW) = (s.OH, s.OW)
    var r = Reference(
      y: [Double](repeating: 0, count: s.N * OH * OW * s.Co), yAbs: [], dx: [], dxAbs: [],
      dw: [Double](repeating: 0, count: s.Co * s.K * s.K * s.Ci), dwAbs: [], db: [], dbAbs: [])
    r.yAbs = r.y
    r.dx = [Double](repeating: 0, count: s.N * s.H * s.W * s.Ci)
    r.dxAbs = r.dx
    r.dwAbs = r.dw
    r.db = [Double](repeating: 0, count: s.Co)
    r.dbAbs = r.db
    for n in 0..<s.N {
      for oy in 0..<OH {
        for ox in 0..<OW {
          let orow = (n * OH + oy) * OW + ox
          for co in 0..<s.Co {
            let g = Double(dy[orow * s.Co + co])
            var acc = Double(bias[co]), accAbs = abs(Double(bias[co]))
            for ky in 0..<s.K {
              let iy = oy * s.stride - s.pad + ky
              if iy < 0 || iy >= s.H { continue }
              for kx in 0..<s.K {
                let ix = ox * s.stride - s.pad + kx
                if ix < 0 || ix >= s.W { continue }
                let xo = ((n * s.H + iy) * s.W + ix) * s.Ci, wo = ((co * s.K + ky) * s.K + kx) * s.Ci
                for ci in 0..<s.Ci {
                  let xv = Double(x[xo + ci]), wv = Double(w[wo + ci])
                  acc += xv * wv
                  accAbs += abs(xv * wv)
                  r.dw[wo + ci] += g * xv
                  r.dwAbs[wo + ci] += abs(g * xv)
                  r.dx[xo + ci] += g * wv
                  r.dxAbs[xo + ci] += abs(g * wv)
                }
              }
            }
            r.y[orow * s.Co + co] = acc
            r.yAbs[orow * s.Co + co] = accAbs
            r.db[co] += g
            r.dbAbs[co] += abs(g)
          }
        }
      }
    }
    return r
  }

  /// Compares float results with exact ones: |got - want| <= (terms + 2) * u * sum|terms|.
  static func compare(_ label: String, _ got: [Float], _ want: [Double], _ absSum: [Double],
                      terms: Int, into mm: inout Mismatches)
  {
    for i in 0..<want.count {
      let tol = Double(terms + 2) * floatU * absSum[i] + 1e-30
      mm.check(abs(Double(got[i]) - want[i]) <= tol,
               "\(label)[\(i)] = \(got[i]), want \(want[i]) ± \(tol)")
    }
  }

  func testConvMatchesDirectConvolutionUnderEveryAlgorithmISAAndThreadCount() {
    var rng = TestRNG(seed: 101)
    for s in Self.shapes {
      let x = rng.floats(s.N * s.H * s.W * s.Ci), w = rng.floats(s.Co * s.K * s.K * s.Ci)
      let bias = rng.floats(s.Co), dy = rng.floats(s.N * s.OH * s.OW * s.Co)
      let ref = Self.reference(s, x: x, w: w, bias: bias, dy: dy)
      for algorithm in convAlgorithms {
        for isa in supportedISAs {
          for threads in [1, 2] {
            var mm = Mismatches("conv \(s) \(algorithmName(algorithm)) \(isa) threads \(threads)")
            var c = s.c
            var y = [Float](repeating: .nan, count: ref.y.count)
            var dx = [Float](repeating: .nan, count: ref.dx.count)
            var dw = [Float](repeating: .nan, count: ref.dw.count)
            var db = [Float](repeating: .nan, count: s.Co)
            var passes: [(algorithm: Int32, tile: Int32)] = []
            withKernels(isa: isa, threads: threads, convAlgorithm: algorithm) { ctx in
              bs_conv_forward(ctx, &c, x, w, bias, &y)
              bs_conv_backward(ctx, &c, x, w, dy, &dw, &db, &dx)
              passes = Self.passAlgorithms(ctx, c)
            }
            Self.compareY(s, y, ref, x: x, w: w, bias: bias, pass: passes[0], into: &mm)
            Self.compareDx(s, dx, ref, dy: dy, w: w, pass: passes[1], into: &mm)
            Self.compareDw(s, dw, ref, x: x, dy: dy, pass: passes[2], partials: threads, into: &mm)
            Self.compare("dbias", db, ref.db, ref.dbAbs, terms: s.N * s.OH * s.OW + threads,
                         into: &mm)
            mm.report()
          }
        }
      }
    }
  }

  func testConvAlgorithmSettingBelongsToOneContext() {
    withKernels(isa: defaultISA) { ctx in
      withKernels(isa: defaultISA) { other in
        let untouched = bs_context_conv_algorithm(other)
        for a in convAlgorithms {
          bs_context_set_conv_algorithm(ctx, a)
          XCTAssertEqual(bs_context_conv_algorithm(ctx), a)
          XCTAssertEqual(bs_context_conv_algorithm(other), untouched, "another context changed")
        }
        bs_context_set_conv_algorithm(ctx, Int32(BS_CONV_GEMM))
        bs_context_set_conv_algorithm(ctx, -1)
        bs_context_set_conv_algorithm(ctx, Int32(BS_CONV_ALGORITHM_COUNT))
        XCTAssertEqual(bs_context_conv_algorithm(ctx), Int32(BS_CONV_GEMM),
                       "out-of-range values are ignored")
      }
    }
    XCTAssertEqual(convAlgorithms.map(algorithmName), ["gemm", "direct", "winograd", "auto"])
  }

  func testConvWithoutBiasAndWithoutDx() {
    var rng = TestRNG(seed: 102)
    for s in [Shape(N: 3, H: 5, W: 7, Ci: 3, Co: 16, K: 3, stride: 2, pad: 1),
              Shape(N: 3, H: 5, W: 7, Ci: 3, Co: 19, K: 3, stride: 1, pad: 1)] {
      let x = rng.floats(s.N * s.H * s.W * s.Ci), w = rng.floats(s.Co * s.K * s.K * s.Ci)
      let dy = rng.floats(s.N * s.OH * s.OW * s.Co)
      let ref = Self.reference(s, x: x, w: w, bias: [Float](repeating: 0, count: s.Co), dy: dy)
      for algorithm in convAlgorithms {
        var c = s.c
        var y = [Float](repeating: .nan, count: ref.y.count)
        var dw = [Float](repeating: .nan, count: ref.dw.count)
        var passes: [(algorithm: Int32, tile: Int32)] = []
        withKernels(isa: defaultISA, convAlgorithm: algorithm) { ctx in
          bs_conv_forward(ctx, &c, x, w, nil, &y)
          bs_conv_backward(ctx, &c, x, w, dy, &dw, nil, nil)
          passes = Self.passAlgorithms(ctx, c)
        }
        var mm = Mismatches("conv \(s) without bias/dx \(algorithmName(algorithm))")
        Self.compareY(s, y, ref, x: x, w: w, bias: nil, pass: passes[0], into: &mm)
        Self.compareDw(s, dw, ref, x: x, dy: dy, pass: passes[2], partials: 2, into: &mm)
        mm.report()
      }
    }
  }

  func testConvBackwardOfAnEmptyBatchZeroesTheGradients() {
    var c = Shape(N: 0, H: 3, W: 3, Ci: 2, Co: 4, K: 3, stride: 1, pad: 1).c
    var dw = [Float](repeating: .nan, count: 4 * 9 * 2), db = [Float](repeating: .nan, count: 4)
    withKernels(isa: defaultISA) { ctx in bs_conv_backward(ctx, &c, nil, nil, nil, &dw, &db, nil) }
    XCTAssertEqual(dw, [Float](repeating: 0, count: dw.count))
    XCTAssertEqual(db, [0, 0, 0, 0])
  }

  func testConvShapeInitRejectsInvalidShapes() {
    var ok = bs_conv_shape(N: 2, H: 5, W: 4, Ci: 3, Co: 8, KH: 3, KW: 3, stride: 2, pad: 1,
                           OH: 0, OW: 0)
    XCTAssertEqual(bs_conv_shape_init(&ok), BS_OK)
    XCTAssertEqual([ok.OH, ok.OW], [3, 2])
    for bad in [
      bs_conv_shape(N: 1, H: 2, W: 5, Ci: 1, Co: 1, KH: 3, KW: 3, stride: 1, pad: 0, OH: 0, OW: 0),
      bs_conv_shape(N: 1, H: 5, W: 5, Ci: 0, Co: 1, KH: 3, KW: 3, stride: 1, pad: 0, OH: 0, OW: 0),
      bs_conv_shape(N: 1, H: 5, W: 5, Ci: 1, Co: 1, KH: 3, KW: 3, stride: 0, pad: 0, OH: 0, OW: 0),
      bs_conv_shape(N: -1, H: 5, W: 5, Ci: 1, Co: 1, KH: 1, KW: 1, stride: 1, pad: 0, OH: 0, OW: 0),
    ] {
      var s = bad
      XCTAssertEqual(bs_conv_shape_init(&s), BS_ERR_INVALID, "accepted \(bad)")
    }
  }

  /// With a fixed thread count the ops promise bit-identical results run to run: fixed
  /// partitions, per-task partial sums reduced in task order.
  func testConvBackwardIsDeterministicWithTwoThreads() {
    var rng = TestRNG(seed: 103)
    let s = Shape(N: 5, H: 9, W: 9, Ci: 16, Co: 16, K: 3, stride: 1, pad: 1)
    let x = rng.floats(s.N * s.H * s.W * s.Ci), w = rng.floats(s.Co * s.K * s.K * s.Ci)
    let dy = rng.floats(s.N * s.OH * s.OW * s.Co)
    for algorithm in convAlgorithms {
      for isa in supportedISAs {
        var results: [([Float], [Float], [Float], [Float])] = []
        for _ in 0..<2 {
          var c = s.c
          var y = [Float](repeating: .nan, count: dy.count)
          var dw = [Float](repeating: .nan, count: s.Co * s.K * s.K * s.Ci)
          var db = [Float](repeating: .nan, count: s.Co)
          var dx = [Float](repeating: .nan, count: x.count)
          withKernels(isa: isa, threads: 2, convAlgorithm: algorithm) { ctx in
            bs_conv_forward(ctx, &c, x, w, nil, &y)
            bs_conv_backward(ctx, &c, x, w, dy, &dw, &db, &dx)
          }
          results.append((y, dw, db, dx))
        }
        let label = "\(algorithmName(algorithm)) \(isa)"
        XCTAssertEqual(results[0].0.map(\.bitPattern), results[1].0.map(\.bitPattern), "y \(label)")
        XCTAssertEqual(results[0].1.map(\.bitPattern), results[1].1.map(\.bitPattern), "dw \(label)")
        XCTAssertEqual(results[0].2.map(\.bitPattern), results[1].2.map(\.bitPattern), "db \(label)")
        XCTAssertEqual(results[0].3.map(\.bitPattern), results[1].3.map(\.bitPattern), "dx \(label)")
      }
    }
  }
}
