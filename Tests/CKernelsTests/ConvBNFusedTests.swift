import CKernels
import XCTest

/// bs_conv_bn_forward_infer against the Double composition conv -> BN (running statistics) ->
/// + residual -> ReLU, under every algorithm, with and without residual and ReLU, the
/// residual in place of y; and against the unfused float ops.
final class ConvBNFusedTests: XCTestCase {
  func testFusedConvBNMatchesTheComposition() {
    var rng = TestRNG(seed: 191)
    let shapes = [
      ConvTests.Shape(N: 3, H: 9, W: 7, Ci: 16, Co: 16, K: 3, stride: 1, pad: 1),
      ConvTests.Shape(N: 2, H: 8, W: 8, Ci: 3, Co: 16, K: 3, stride: 1, pad: 1),
      ConvTests.Shape(N: 2, H: 8, W: 8, Ci: 16, Co: 32, K: 3, stride: 2, pad: 1),
      ConvTests.Shape(N: 17, H: 4, W: 4, Ci: 32, Co: 32, K: 3, stride: 1, pad: 1),
    ]
    for s in shapes {
      let x = rng.floats(s.N * s.H * s.W * s.Ci), w = rng.floats(s.Co * 9 * s.Ci)
      let gamma = rng.floats(s.Co, 0.5, 2), beta = rng.floats(s.Co)
      let mean = rng.floats(s.Co), variance = rng.floats(s.Co, 0.1, 3)
      let count = s.N * s.OH * s.OW * s.Co
      let residual = rng.floats(count)
      let eps: Float = 1e-5
      // Double reference: BN(conv) = scale * conv + shift, scale = gamma / sqrt(var + eps)
      let scale = (0..<s.Co).map { Double(gamma[$0]) / (Double(variance[$0]) + Double(eps)).squareRoot() }
      let shift = (0..<s.Co).map { Double(beta[$0]) - Double(mean[$0]) * scale[$0] }
      let ref = ConvTests.reference(s, x: x, w: w, bias: [Float](repeating: 0, count: s.Co),
                                    dy: [Float](repeating: 0, count: count))
      for algorithm in convAlgorithms {
        for (withResidual, relu, inPlace) in [(false, false, false), (false, true, false),
                                             (true, true, false), (true, false, false),
                                             (true, true, true)] {
          var c = s.c
          var y = inPlace ? residual : [Float](repeating: .nan, count: count)
          var passes: [(algorithm: Int32, tile: Int32)] = []
          withKernels(isa: defaultISA, convAlgorithm: algorithm) { ctx in
            if inPlace {
              y.withUnsafeMutableBufferPointer { yp in
                bs_conv_bn_forward_infer(ctx, &c, x, w, gamma, beta, mean, variance, eps,
                                         yp.baseAddress, relu ? 1 : 0, yp.baseAddress)
              }
            } else {
              bs_conv_bn_forward_infer(ctx, &c, x, w, gamma, beta, mean, variance, eps,
                                       withResidual ? residual : nil, relu ? 1 : 0, &y)
            }
            passes = ConvTests.passAlgorithms(ctx, c)
          }
          let label = "\(s) \(algorithmName(algorithm)) residual \(withResidual) relu \(relu) in place \(inPlace)"
          var mm = Mismatches(label)
          // The convolution's own bound on the scaled weights, plus the scale's and shift's
          // roundings (a few u of |scale * conv| + |shift|) and the residual's add.
          var wScaled = w
          for co in 0..<s.Co { for k in 0..<(9 * s.Ci) { wScaled[co * 9 * s.Ci + k] *= Float(scale[co]) } }
          var convMag: [Double]
          var k: Int
          if passes[0].algorithm == Int32(BS_CONV_WINOGRAD) {
            let b = WinogradReference.forwardBound(m: Int(passes[0].tile), N: s.N, H: s.H, W: s.W,
                                                   Ci: s.Ci, Co: s.Co, x: x, w: wScaled, bias: nil)
            (convMag, k) = (b.magnitude, b.k)
          } else {
            convMag = ref.yAbs.enumerated().map { $0.element * abs(scale[$0.offset % s.Co]) }
            k = 9 * s.Ci + 2
          }
          for i in 0..<count {
            let co = i % s.Co
            var want = scale[co] * ref.y[i] + shift[co]
            if withResidual || inPlace { want += Double(residual[i]) }
            if relu { want = max(want, 0) }
            let mag = convMag[i] + abs(shift[co]) + ((withResidual || inPlace) ? abs(Double(residual[i])) : 0)
            let tol = 2 * Double(k + 4) * floatU * mag + 1e-30
            mm.check(abs(Double(y[i]) - want) <= tol, "y[\(i)] = \(y[i]), want \(want) ± \(tol)")
          }
          mm.report()
        }
      }
    }
  }
}
