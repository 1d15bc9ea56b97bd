import CKernels
import XCTest

typealias WinogradInputFn = @convention(c) (
  UnsafePointer<Float>?, Int32, Int32, Int32, Int32, Int, Int32, UnsafeMutablePointer<Float>?
) -> Void
typealias WinogradProductsFn = @convention(c) (
  UnsafePointer<Float>?, Int32, Int32, Int32, Int32, UnsafePointer<Float>?,
  UnsafeMutablePointer<Float>?
) -> Void
typealias WinogradOutputFn = @convention(c) (
  UnsafePointer<Float>?, Int32, Int32, Int32, Int32, Int, Int32, UnsafePointer<Float>?,
  UnsafePointer<Float>?, Int32, UnsafeMutablePointer<Float>?
) -> Void
typealias WinogradDyFn = @convention(c) (
  UnsafePointer<Float>?, Int32, Int32, Int32, Int, Int32, UnsafeMutablePointer<Float>?
) -> Void
typealias WinogradDwProductsFn = @convention(c) (
  UnsafePointer<Float>?, UnsafePointer<Float>?, Int32, Int32, Int32, UnsafeMutablePointer<Float>?
) -> Void

/// The Winograd tile kernels composed (input transform, products, output transform) against
/// the Double convolution, for F(2x2, 3x3) and F(4x4, 3x3), every ISA the CPU runs, tiles cut
/// into chunks at odd places; and the errors on the ResNet family's layer shapes, stated.
final class WinogradTests: XCTestCase {
  /// Forward y [N][H][W][Co] through the kernels of `isa`, the tiles in chunks of `chunk`.
  static func forward(isa: bs_isa, m: Int, N: Int, H: Int, W: Int, Ci: Int, Co: Int,
                      x: [Float], w: [Float], bias: [Float]?, chunk: Int) -> [Float] {
    var k = bs_kernels()
    precondition(bs_kernels_select(isa, &k) == BS_OK)
    let a2 = (m + 2) * (m + 2)
    let tiles = N * ((H + m - 1) / m) * ((W + m - 1) / m)
    var up = [Float](repeating: .nan, count: bs_winograd_packed_floats(Int32(m), Int32(Ci), Int32(Co)))
    bs_winograd_pack(w, Int32(m), Int32(Ci), Int32(Co), &up)
    var y = [Float](repeating: .nan, count: N * H * W * Co)
    var v = [Float](repeating: .nan, count: a2 * chunk * Ci)
    var mo = [Float](repeating: .nan, count: a2 * chunk * Co)
    for t0 in stride(from: 0, to: tiles, by: chunk) {
      let nt = Int32(min(chunk, tiles - t0))
      k.bs_winograd_input(x, Int32(H), Int32(W), Int32(Ci), Int32(m), t0, nt, &v)
      k.bs_winograd_products(v, nt, Int32(Ci), Int32(Co), Int32(a2), up, &mo)
      k.bs_winograd_output(mo, Int32(H), Int32(W), Int32(Co), Int32(m), t0, nt, bias, nil, 0, &y)
    }
    return y
  }

  func testKernelsComposeToTheConvolutionForBothTileSizes() {
    var rng = TestRNG(seed: 171)
    // (N, H, W, Ci, Co): 1-pixel and odd sizes (partial tiles), channel tails below, at and
    // above 8 and 16, several 16-wide output blocks.
    let shapes = [(1, 1, 1, 1, 1), (2, 3, 5, 3, 8), (2, 5, 4, 8, 9), (1, 8, 8, 16, 16),
                  (2, 7, 9, 17, 25), (1, 6, 11, 9, 40), (3, 4, 4, 24, 7)]
    for (N, H, W, Ci, Co) in shapes {
      let x = rng.floats(N * H * W * Ci), w = rng.floats(Co * 9 * Ci), bias = rng.floats(Co)
      let s = ConvTests.Shape(N: N, H: H, W: W, Ci: Ci, Co: Co, K: 3, stride: 1, pad: 1)
      let ref = ConvTests.reference(s, x: x, w: w, bias: bias,
                                    dy: [Float](repeating: 0, count: N * H * W * Co))
      for m in [2, 4] {
        let bound = WinogradReference.forwardBound(m: m, N: N, H: H, W: W, Ci: Ci, Co: Co,
                                                   x: x, w: w, bias: bias)
        let tiles = N * ((H + m - 1) / m) * ((W + m - 1) / m)
        for isa in supportedISAs {
          for chunk in Set([1, 5, max(1, tiles / 2 + 1), tiles]) {
            let y = Self.forward(isa: isa, m: m, N: N, H: H, W: W, Ci: Ci, Co: Co, x: x, w: w,
                                 bias: bias, chunk: chunk)
            var mm = Mismatches("F(\(m)x\(m),3x3) \(s) \(isa) chunk \(chunk)")
            for i in 0..<y.count {
              let tol = 2 * Double(bound.k) * floatU * bound.magnitude[i] + 1e-30
              mm.check(abs(Double(y[i]) - ref.y[i]) <= tol, "y[\(i)] = \(y[i]), want \(ref.y[i]) ± \(tol)")
            }
            mm.report()
          }
        }
      }
    }
  }

  /// The ResNet family's 3x3 stride-1 layers (k = 1 and 2), one image, inputs and weights of
  /// the scale a trained network has (unit-variance activations, He-initialised weights):
  /// the largest error relative to the largest output, for direct summation in float (the
  /// bound's scale) and for both Winograd tile sizes. Printed for docs/PERFORMANCE.md; the
  /// assertion is the derived bound, and that F(2x2) stays within 10x direct summation's
  /// worst error scale.
  func testErrorsOnResNetLayerShapes() {
    var rng = TestRNG(seed: 172)
    for (H, C) in [(32, 16), (16, 32), (8, 64), (32, 32), (16, 64), (8, 128)] {
      let x = rng.floats(H * H * C, -1.7, 1.7)
      let scale = Float(sqrt(2.0 / Double(9 * C)) * sqrt(3.0))
      let w = rng.floats(C * 9 * C, -scale, scale)
      let s = ConvTests.Shape(N: 1, H: H, W: H, Ci: C, Co: C, K: 3, stride: 1, pad: 1)
      let ref = ConvTests.reference(s, x: x, w: w, bias: [Float](repeating: 0, count: C),
                                    dy: [Float](repeating: 0, count: H * H * C))
      let yMax = ref.y.map(abs).max()!
      var c = s.c
      var direct = [Float](repeating: .nan, count: ref.y.count)
      withKernels(isa: defaultISA, convAlgorithm: Int32(BS_CONV_DIRECT)) { ctx in
        bs_conv_forward(ctx, &c, x, w, nil, &direct)
      }
      let directWorst = zip(direct, ref.y).map { abs(Double($0) - $1) }.max()!
      var line = "winograd error \(H)x\(H)x\(C) -> \(C), largest error / largest output: direct \(String(format: "%.1e", directWorst / yMax))"
      for m in [2, 4] {
        let bound = WinogradReference.forwardBound(m: m, N: 1, H: H, W: H, Ci: C, Co: C, x: x,
                                                   w: w, bias: nil)
        let y = Self.forward(isa: defaultISA, m: m, N: 1, H: H, W: H, Ci: C, Co: C, x: x, w: w,
                             bias: nil, chunk: 37)
        var worst = 0.0
        var mm = Mismatches("F(\(m)x\(m),3x3) \(s)")
        for i in 0..<y.count {
          let err = abs(Double(y[i]) - ref.y[i])
          worst = max(worst, err)
          let tol = 2 * Double(bound.k) * floatU * bound.magnitude[i] + 1e-30
          mm.check(err <= tol, "y[\(i)] = \(y[i]), want \(ref.y[i]) ± \(tol)")
        }
        mm.report()
        line += String(format: ", F(%dx%d) %.1e", m, m, worst / yMax)
        if m == 2 {
          XCTAssertLessThan(worst / yMax, 10 * 9 * Double(C) * floatU * ref.yAbs.max()! / yMax,
                            "F(2x2) error on \(s)")
        }
      }
      print(line)
    }
  }

  /// bs_conv_forward / bs_conv_backward under BS_CONV_WINOGRAD with each tile size forced,
  /// every ISA, 1 and 2 threads: every pass ran Winograd and is within its bound.
  func testConvolutionPassesUnderWinogradWithEachTileSize() {
    var rng = TestRNG(seed: 178)
    let shapes = [
      ConvTests.Shape(N: 3, H: 9, W: 7, Ci: 16, Co: 16, K: 3, stride: 1, pad: 1),
      ConvTests.Shape(N: 2, H: 6, W: 13, Ci: 24, Co: 9, K: 3, stride: 1, pad: 1),
      ConvTests.Shape(N: 2, H: 7, W: 5, Ci: 13, Co: 25, K: 3, stride: 1, pad: 1),
      ConvTests.Shape(N: 3, H: 12, W: 1, Ci: 8, Co: 8, K: 3, stride: 1, pad: 1),
      ConvTests.Shape(N: 17, H: 4, W: 4, Ci: 17, Co: 16, K: 3, stride: 1, pad: 1),
    ]
    for s in shapes {
      let x = rng.floats(s.N * s.H * s.W * s.Ci), w = rng.floats(s.Co * 9 * s.Ci)
      let bias = rng.floats(s.Co), dy = rng.floats(s.N * s.H * s.W * s.Co)
      let ref = ConvTests.reference(s, x: x, w: w, bias: bias, dy: dy)
      for tile in [2, 4] as [Int32] {
        for isa in supportedISAs {
          for threads in [1, 2] {
            var c = s.c
            var y = [Float](repeating: .nan, count: ref.y.count)
            var dx = [Float](repeating: .nan, count: ref.dx.count)
            var dw = [Float](repeating: .nan, count: ref.dw.count)
            var db = [Float](repeating: .nan, count: s.Co)
            var passes: [(algorithm: Int32, tile: Int32)] = []
            withKernels(isa: isa, threads: threads, convAlgorithm: Int32(BS_CONV_WINOGRAD)) { ctx in
              bs_context_set_winograd_tile(ctx, tile)
              bs_conv_forward(ctx, &c, x, w, bias, &y)
              bs_conv_backward(ctx, &c, x, w, dy, &dw, &db, &dx)
              passes = ConvTests.passAlgorithms(ctx, c)
            }
            var mm = Mismatches("winograd F(\(tile)) \(s) \(isa) threads \(threads)")
            XCTAssertEqual(passes.map(\.algorithm), [Int32](repeating: Int32(BS_CONV_WINOGRAD), count: 3))
            XCTAssertEqual(passes.map(\.tile), [tile, tile, 2])
            ConvTests.compareY(s, y, ref, x: x, w: w, bias: bias, pass: passes[0], into: &mm)
            ConvTests.compareDx(s, dx, ref, dy: dy, w: w, pass: passes[1], into: &mm)
            ConvTests.compareDw(s, dw, ref, x: x, dy: dy, pass: passes[2], partials: threads, into: &mm)
            ConvTests.compare("dbias", db, ref.db, ref.dbAbs, terms: s.N * s.OH * s.OW + threads, into: &mm)
            mm.report()
          }
        }
      }
    }
  }
}
