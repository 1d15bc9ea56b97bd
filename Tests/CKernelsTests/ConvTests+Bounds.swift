import CKernels

/// The error bound of each pass follows the algorithm that ran it (bs_conv_pass_algorithm):
/// direct summation (im2col + sgemm, direct kernels) is within (terms + 2) u sum|terms|;
/// Winograd within its chain length times u times the absolute-value evaluation of its
/// transforms (WinogradReference).
extension ConvTests {
  static func passAlgorithms(_ ctx: OpaquePointer, _ c: bs_conv_shape) -> [(algorithm: Int32, tile: Int32)] {
    var shape = c
    return [BS_CONV_PASS_FORWARD, BS_CONV_PASS_DATA, BS_CONV_PASS_WEIGHTS].map { pass in
      var tile: Int32 = 0
      let a = bs_conv_pass_algorithm(ctx, &shape, Int32(pass), &tile)
      return (a, tile)
    }
  }

  static func compareWinograd(_ label: String, _ got: [Float], _ want: [Double],
                              _ bound: (magnitude: [Double], k: Int), into mm: inout Mismatches) {
    for i in 0..<want.count {
      let tol = 2 * Double(bound.k) * floatU * bound.magnitude[i] + 1e-30
      mm.check(abs(Double(got[i]) - want[i]) <= tol,
               "\(label)[\(i)] = \(got[i]), want \(want[i]) ± \(tol) (Winograd)")
    }
  }

  static func compareY(_ s: Shape, _ y: [Float], _ ref: Reference, x: [Float], w: [Float],
                       bias: [Float]?, pass: (algorithm: Int32, tile: Int32),
                       into mm: inout Mismatches) {
    if pass.algorithm == Int32(BS_CONV_WINOGRAD) {
      let b = WinogradReference.forwardBound(m: Int(pass.tile), N: s.N, H: s.H, W: s.W,
                                             Ci: s.Ci, Co: s.Co, x: x, w: w, bias: bias)
      compareWinograd("y", y, ref.y, b, into: &mm)
    } else {
      compare("y", y, ref.y, ref.yAbs, terms: s.K * s.K * s.Ci, into: &mm)
    }
  }

  static func compareDx(_ s: Shape, _ dx: [Float], _ ref: Reference, dy: [Float], w: [Float],
                        pass: (algorithm: Int32, tile: Int32), into mm: inout Mismatches) {
    if pass.algorithm == Int32(BS_CONV_WINOGRAD) {
      // dx is the "same" convolution of dy with the flipped kernel, Co -> Ci
      let b = WinogradReference.forwardBound(
        m: Int(pass.tile), N: s.N, H: s.OH, W: s.OW, Ci: s.Co, Co: s.Ci, x: dy,
        w: WinogradReference.flipped(w, Ci: s.Ci, Co: s.Co), bias: nil)
      compareWinograd("dx", dx, ref.dx, b, into: &mm)
    } else {
      // K*K*Co products per element in one chain (backward-data as a forward convolution,
      // sgemm or direct) or Co per tap then K*K (col2im).
      compare("dx", dx, ref.dx, ref.dxAbs, terms: s.K * s.K * s.Co, into: &mm)
    }
  }

  static func compareDw(_ s: Shape, _ dw: [Float], _ ref: Reference, x: [Float], dy: [Float],
                        pass: (algorithm: Int32, tile: Int32), partials: Int,
                        into mm: inout Mismatches) {
    if pass.algorithm == Int32(BS_CONV_WINOGRAD) {
      let b = WinogradReference.weightGradBound(N: s.N, H: s.H, W: s.W, Ci: s.Ci, Co: s.Co,
                                                x: x, dy: dy, partials: 16)
      compareWinograd("dw", dw, ref.dw, b, into: &mm)
    } else {
      compare("dw", dw, ref.dw, ref.dwAbs, terms: s.N * s.OH * s.OW + partials, into: &mm)
    }
  }
}
