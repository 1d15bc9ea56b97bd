import CKernels

/// 2-D convolution on NHWC activations; weights [Co][KH][KW][Ci]. Bias only where no batch
/// norm follows (the projection shortcut): a bias before BN is cancelled by the mean.
public final class Conv2D: @unchecked Sendable {
  public let inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int
  public let weight: Parameter
  public let bias: Parameter?

  init(_ name: String, inChannels: Int, outChannels: Int, kernel: Int, stride: Int,
       bias: Bool) {
    self.inChannels = inChannels
    self.outChannels = outChannels
    self.kernel = kernel
    self.stride = stride
    self.padding = kernel / 2
    weight = Parameter("\(name).weight", [outChannels, kernel, kernel, inChannels], decay: true)
    self.bias = bias ? Parameter("\(name).bias", [outChannels], decay: false) : nil
  }

  /// He normal (fan-in) initialisation, as the reference Keras ResNets.
  func initialize(_ rng: inout RandomSource) {
    let std = (2.0 / Double(kernel * kernel * inChannels)).squareRoot()
    for i in 0..<weight.value.count { weight.value[i] = Float(rng.normal() * std) }
    bias?.value.zero()
  }

  func outputSize(_ h: Int, _ w: Int) -> (Int, Int) {
    ((h + 2 * padding - kernel) / stride + 1, (w + 2 * padding - kernel) / stride + 1)
  }

  private func shape(_ n: Int, _ h: Int, _ w: Int) -> bs_conv_shape {
    var s = bs_conv_shape(N: Int32(n), H: Int32(h), W: Int32(w), Ci: Int32(inChannels),
                          Co: Int32(outChannels), KH: Int32(kernel), KW: Int32(kernel),
                          stride: Int32(stride), pad: Int32(padding), OH: 0, OW: 0)
    let ok = bs_conv_shape_init(&s)
    precondition(ok == BS_OK, "invalid convolution shape \(n)x\(h)x\(w)x\(inChannels)")
    return s
  }

  /// x [n][h][w][Ci] -> y [n][oh][ow][Co]
  func forward(_ ctx: OpaquePointer, _ x: UnsafePointer<Float>, n: Int, h: Int, w: Int,
               into y: UnsafeMutablePointer<Float>) {
    var s = shape(n, h, w)
    bs_conv_forward(ctx, &s, x, weight.value.data, bias?.value.data, y)
  }

  /// Inference: y = relu?(bn(conv(x)) + residual?), the BN's running statistics folded into
  /// this convolution (bs_conv_bn_forward_infer). This convolution must have no bias.
  func forwardBNInfer(_ ctx: OpaquePointer, _ x: UnsafePointer<Float>, n: Int, h: Int, w: Int,
                      bn: BatchNorm, residual: UnsafePointer<Float>?, relu: Bool,
                      into y: UnsafeMutablePointer<Float>) {
    precondition(bias == nil, "a convolution with a bias before its batch norm")
    var s = shape(n, h, w)
    bs_conv_bn_forward_infer(ctx, &s, x, weight.value.data, bn.gamma.value.data, bn.beta.value.data,
                             bn.runningMean.data, bn.runningVar.data, BatchNorm.eps, residual,
                             relu ? 1 : 0, y)
  }

  /// Sets weight.grad (and bias.grad); writes dx when given.
  func backward(_ ctx: OpaquePointer, _ x: UnsafePointer<Float>, n: Int, h: Int, w: Int,
                dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?) {
    var s = shape(n, h, w)
    bs_conv_backward(ctx, &s, x, weight.value.data, dy, weight.grad.data, bias?.grad.data, dx)
  }
}
