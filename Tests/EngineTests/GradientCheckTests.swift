import CKernels
import XCTest

@testable import Engine

/// Finite-difference checks of every layer's backward pass and of a whole ResNet-8.
///
/// Each check takes a scalar loss L = sum_i r_i * y_i with fixed random r (computed in Double
/// from the fp32 outputs), compares the analytic gradient with the central difference
/// (L(x + e) - L(x - e)) / 2e, and allows
///   |fd - analytic| <= 1e-2 * max(|fd|, |analytic|) + atol,
/// where atol bounds the fp32 rounding noise of the difference quotient: each output carries
/// a relative error of about 2^-24 per accumulated term, so L's error is about
/// 2^-24 * sqrt(terms) * sum|r_i y_i| and the quotient's is that divided by e.
final class GradientCheckTests: XCTestCase {
  struct Rng {
    var r: RandomSource
    init(_ seed: UInt64) { r = RandomSource(seed: seed) }
    mutating func normal(_ n: Int, scale: Double = 1) -> [Float] { (0..<n).map { _ in Float(r.normal() * scale) } }
    /// Normal values bounded away from zero, so that a ReLU kink is never crossed by +-eps.
    mutating func awayFromZero(_ n: Int, margin: Float) -> [Float] {
      (0..<n).map { _ in
        var v = Float(r.normal())
        if abs(v) < margin { v = v < 0 ? -margin - Float(r.uniform()) : margin + Float(r.uniform()) }
        return v
      }
    }
  }

  static func dot(_ r: [Float], _ y: [Float]) -> Double {
    zip(r, y).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
  }

  /// Checks d loss / d values at `samples` coordinates. `loss` recomputes the loss from the
  /// current values; `analytic` is the gradient computed once.
  func check(_ name: String, values: inout [Float], analytic: [Float], samples: Int = 40,
             eps: Float = 1e-2, terms: Int, lossMagnitude: Double, seed: UInt64 = 3,
             file: StaticString = #filePath, line: UInt = #line,
             loss: ([Float]) -> Double) {
    XCTAssertEqual(values.count, analytic.count, name, file: file, line: line)
    var rng = RandomSource(seed: seed)
    let atol = 8 * pow(2.0, -24) * Double(terms).squareRoot() * lossMagnitude / Double(eps) + 1e-6
    let idx = values.count <= samples ? Array(0..<values.count) : (0..<samples).map { _ in rng.below(values.count) }
    var nonzero = 0
    for i in idx {
      let saved = values[i]
      values[i] = saved + eps
      let lp = loss(values)
      values[i] = saved - eps
      let lm = loss(values)
      values[i] = saved
      let fd = (lp - lm) / (2 * Double(eps))
      let an = Double(analytic[i])
      if an != 0 { nonzero += 1 }
      let tol = 1e-2 * max(abs(fd), abs(an)) + atol
      XCTAssertLessThanOrEqual(abs(fd - an), tol, "\(name)[\(i)]: finite difference \(fd), analytic \(an)",
                               file: file, line: line)
    }
    XCTAssertGreaterThan(nonzero, 0, "\(name): analytic gradient is all zero at the sampled points",
                         file: file, line: line)
  }

  func testConvolutionGradients() {
    for (k, stride, bias) in [(3, 1, false), (3, 2, false), (1, 2, true), (1, 1, true)] {
      let (n, h, w, ci, co) = (2, 5, 6, 3, 4)
      var s = bs_conv_shape(N: Int32(n), H: Int32(h), W: Int32(w), Ci: Int32(ci), Co: Int32(co),
                            KH: Int32(k), KW: Int32(k), stride: Int32(stride), pad: Int32(k / 2), OH: 0, OW: 0)
      XCTAssertEqual(bs_conv_shape_init(&s), BS_OK)
      let outCount = n * Int(s.OH) * Int(s.OW) * co
      var rng = Rng(11)
      var x = rng.normal(n * h * w * ci), wt = rng.normal(co * k * k * ci, scale: 0.5)
      var b = rng.normal(co)
      let r = rng.normal(outCount)
      func forward(_ x: [Float], _ wt: [Float], _ b: [Float]) -> [Float] {
        var y = [Float](repeating: 0, count: outCount)
        bs_conv_forward(testKernels.pointer, &s, x, wt, bias ? b : nil, &y)
        return y
      }
      let y0 = forward(x, wt, b)
      let mag = zip(r, y0).reduce(0.0) { $0 + abs(Double($1.0 * $1.1)) }
      var dx = [Float](repeating: 0, count: x.count), dw = [Float](repeating: 0, count: wt.count)
      var db = [Float](repeating: 0, count: co)
      if bias { bs_conv_backward(testKernels.pointer, &s, x, wt, r, &dw, &db, &dx) } else { bs_conv_backward(testKernels.pointer, &s, x, wt, r, &dw, nil, &dx) }
      let terms = k * k * ci
      let tag = "conv\(k)x\(k)/s\(stride)"
      check("\(tag) dx", values: &x, analytic: dx, terms: terms, lossMagnitude: mag) { Self.dot(r, forward($0, wt, b)) }
      check("\(tag) dw", values: &wt, analytic: dw, terms: terms, lossMagnitude: mag) { Self.dot(r, forward(x, $0, b)) }
      if bias {
        check("\(tag) dbias", values: &b, analytic: db, terms: terms, lossMagnitude: mag) { Self.dot(r, forward(x, wt, $0)) }
      }
    }
  }

  /// Batch norm (training mode) against finite differences. The fused BN+ReLU is covered
  /// without finite differences through its kinks (normalised values sit near zero by
  /// construction): testFusedBatchNormReLUIsReLUOfBatchNorm shows its output is exactly ReLU of
  /// this BN's, and testElementwiseGradients checks the ReLU backward that precedes this one.
  func testBatchNormGradients() {
    let (rows, c) = (37, 5)
    var rng = Rng(5)
    var x = rng.normal(rows * c, scale: 2)
    for i in 0..<x.count { x[i] += Float(i % c) }   // per-channel offsets
    var gamma = rng.normal(c), beta = rng.normal(c)
    let r = rng.normal(rows * c)
    func forward(_ x: [Float], _ g: [Float], _ b: [Float]) -> ([Float], [Float], [Float]) {
      var y = [Float](repeating: 0, count: rows * c)
      var rm = [Float](repeating: 0, count: c), rv = [Float](repeating: 1, count: c)
      var mean = [Float](repeating: 0, count: c), istd = [Float](repeating: 0, count: c)
      bs_bn_forward_train(testKernels.pointer, x, rows, Int32(c), g, b, 1e-5, 0.1, 0, &rm, &rv, &mean, &istd, &y)
      return (y, mean, istd)
    }
    let (y0, mean, istd) = forward(x, gamma, beta)
    var dx = [Float](repeating: 0, count: x.count), dg = [Float](repeating: 0, count: c), dbeta = [Float](repeating: 0, count: c)
    bs_bn_backward(testKernels.pointer, r, x, rows, Int32(c), gamma, mean, istd, &dg, &dbeta, &dx)
    let mag = zip(r, y0).reduce(0.0) { $0 + abs(Double($1.0 * $1.1)) }
    // Smaller eps: the normalised output is smooth but curved in x through mean and var.
    check("bn dx", values: &x, analytic: dx, eps: 1e-2, terms: rows, lossMagnitude: mag) { Self.dot(r, forward($0, gamma, beta).0) }
    check("bn dgamma", values: &gamma, analytic: dg, eps: 1e-2, terms: rows, lossMagnitude: mag) { Self.dot(r, forward(x, $0, beta).0) }
    check("bn dbeta", values: &beta, analytic: dbeta, eps: 1e-2, terms: rows, lossMagnitude: mag) { Self.dot(r, forward(x, gamma, $0).0) }
  }

  func testFusedBatchNormReLUIsReLUOfBatchNorm() {
    let (rows, c) = (50, 7)
    var rng = Rng(6)
    let x = rng.normal(rows * c), g = rng.normal(c), b = rng.normal(c)
    var outs: [[Float]] = []
    for relu in [0, 1] {
      var y = [Float](repeating: 0, count: rows * c)
      var rm = [Float](repeating: 0, count: c), rv = [Float](repeating: 1, count: c)
      var mean = [Float](repeating: 0, count: c), istd = [Float](repeating: 0, count: c)
      bs_bn_forward_train(testKernels.pointer, x, rows, Int32(c), g, b, 1e-5, 0.1, Int32(relu), &rm, &rv, &mean, &istd, &y)
      outs.append(y)
    }
    XCTAssertEqual(outs[1], outs[0].map { $0 > 0 ? $0 : 0 })
  }

  func testElementwiseGradients() {
    let n = 300
    var rng = Rng(9)
    var a = rng.awayFromZero(n, margin: 0.1), b = rng.normal(n, scale: 0.01)
    let r = rng.normal(n)
    // ReLU: gradient from the output.
    var y = [Float](repeating: 0, count: n), dx = [Float](repeating: 0, count: n)
    testKernels.kernels.bs_relu(a, n, &y)
    testKernels.kernels.bs_relu_backward(y, r, n, &dx)
    check("relu", values: &a, analytic: dx, eps: 1e-2, terms: 1, lossMagnitude: 1) { v in
      var out = [Float](repeating: 0, count: n); testKernels.kernels.bs_relu(v, n, &out); return Self.dot(r, out)
    }
    // Residual add + ReLU: both inputs receive the masked gradient.
    var s = [Float](repeating: 0, count: n)
    testKernels.kernels.bs_add_relu(a, b, n, &s)
    var ds = [Float](repeating: 0, count: n)
    testKernels.kernels.bs_relu_backward(s, r, n, &ds)
    check("add_relu a", values: &a, analytic: ds, eps: 1e-2, terms: 1, lossMagnitude: 1) { v in
      var out = [Float](repeating: 0, count: n); testKernels.kernels.bs_add_relu(v, b, n, &out); return Self.dot(r, out)
    }
    check("add_relu b", values: &b, analytic: ds, eps: 1e-3, terms: 1, lossMagnitude: 1) { v in
      var out = [Float](repeating: 0, count: n); testKernels.kernels.bs_add_relu(a, v, n, &out); return Self.dot(r, out)
    }
  }

  func testPoolLinearSoftmaxGradients() {
    let (n, hw, c, k) = (3, 10, 6, 4)
    var rng = Rng(21)
    var x = rng.normal(n * hw * c)
    let r = rng.normal(n * c)
    var dx = [Float](repeating: 0, count: x.count)
    testKernels.kernels.bs_avgpool_backward(r, Int32(n), Int32(hw), Int32(c), &dx)
    check("avgpool", values: &x, analytic: dx, terms: hw, lossMagnitude: 10) { v in
      var y = [Float](repeating: 0, count: n * c); testKernels.kernels.bs_avgpool(v, Int32(n), Int32(hw), Int32(c), &y); return Self.dot(r, y)
    }
    var f = rng.normal(n * c), w = rng.normal(k * c, scale: 0.5), b = rng.normal(k)
    let labels: [Int32] = [0, 3, 1]
    func loss(_ f: [Float], _ w: [Float], _ b: [Float]) -> Double {
      var z = [Float](repeating: 0, count: n * k)
      bs_linear_forward(f, Int32(n), Int32(c), Int32(k), w, b, &z)
      return bs_softmax_xent(z, labels, Int32(n), Int32(k), nil, nil, nil)
    }
    var z = [Float](repeating: 0, count: n * k), dz = [Float](repeating: 0, count: n * k)
    bs_linear_forward(f, Int32(n), Int32(c), Int32(k), w, b, &z)
    _ = bs_softmax_xent(z, labels, Int32(n), Int32(k), nil, &dz, nil)
    var dw = [Float](repeating: 0, count: w.count), db = [Float](repeating: 0, count: k), df = [Float](repeating: 0, count: f.count)
    bs_linear_backward(f, Int32(n), Int32(c), Int32(k), w, dz, &dw, &db, &df)
    check("linear+xent dx", values: &f, analytic: df, eps: 1e-2, terms: c, lossMagnitude: 3) { loss($0, w, b) }
    check("linear+xent dw", values: &w, analytic: dw, eps: 1e-2, terms: c, lossMagnitude: 3) { loss(f, $0, b) }
    check("linear+xent db", values: &b, analytic: db, eps: 1e-2, terms: c, lossMagnitude: 3) { loss(f, w, $0) }
  }

  /// The whole network, residual and plain: analytic parameter gradients of the training-mode
  /// cross-entropy against central differences. A perturbation can occasionally cross a ReLU
  /// kink somewhere in the net, so this check is norm-wise per parameter tensor
  /// (||fd - an|| <= 5e-2 ||an||) over a sample of coordinates, plus the per-layer exact checks above.
  func testWholeResNet8Gradients() throws {
    for residual in [true, false] {
      let cfg = ResNetConfig(depth: 8, widthMultiplier: 0.5, residual: residual, inputHeight: 8,
                             inputWidth: 8, inputChannels: 3, numClasses: 5)
      let net = try ResNet(config: cfg, seed: 42)
      let n = 6
      let input = net.trainingInput(capacity: n)
      var rng = RandomSource(seed: 8)
      for i in 0..<(n * 8 * 8 * 3) { input[i] = Float(rng.uniform()) }
      let labels: [Int32] = (0..<n).map { Int32($0 % 5) }
      func loss() -> Double {
        let z = net.forwardTrain(n: n, context: testKernels)
        return bs_softmax_xent(z, labels, Int32(n), 5, nil, nil, nil)
      }
      let z = net.forwardTrain(n: n, context: testKernels)
      _ = bs_softmax_xent(z, labels, Int32(n), 5, nil, net.logitGradient, nil)
      net.backward(context: testKernels)
      var checked = 0
      for p in net.parameters {
        let analytic = p.grad.array
        var fdv: [Double] = [], anv: [Double] = []
        var prng = RandomSource(seed: UInt64(p.name.utf8.count))
        let picks = p.value.count <= 8 ? Array(0..<p.value.count) : (0..<8).map { _ in prng.below(p.value.count) }
        let eps: Float = 5e-4
        for i in picks {
          let saved = p.value[i]
          p.value[i] = saved + eps
          let lp = loss()
          p.value[i] = saved - eps
          let lm = loss()
          p.value[i] = saved
          fdv.append((lp - lm) / (2 * Double(eps)))
          anv.append(Double(analytic[i]))
        }
        let diff = zip(fdv, anv).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
        let norm = anv.reduce(0.0) { $0 + $1 * $1 }.squareRoot()
        // The fp32 loss carries ~1e-7 relative noise; divided by 2*eps that is ~1e-4 absolute.
        XCTAssertLessThanOrEqual(diff, 5e-2 * norm + 5e-4,
                                 "\(cfg.name) \(p.name): fd \(fdv) vs analytic \(anv)")
        checked += 1
      }
      XCTAssertEqual(checked, net.parameters.count)
    }
  }
}
