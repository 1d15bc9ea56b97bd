import CKernels

/// Fully connected layer: x [N][In] -> y [N][Out]; weight [Out][In].
public final class Linear: @unchecked Sendable {
  public let inFeatures: Int, outFeatures: Int
  public let weight: Parameter
  public let bias: Parameter

  init(_ name: String, inFeatures: Int, outFeatures: Int) {
    self.inFeatures = inFeatures
    self.outFeatures = outFeatures
    weight = Parameter("\(name).weight", [outFeatures, inFeatures], decay: true)
    bias = Parameter("\(name).bias", [outFeatures], decay: false)
  }

  /// PyTorch's default: uniform(-1/sqrt(In), 1/sqrt(In)) weights, zero bias.
  func initialize(_ rng: inout RandomSource) {
    let bound = 1.0 / Double(inFeatures).squareRoot()
    for i in 0..<weight.value.count { weight.value[i] = Float((rng.uniform() * 2 - 1) * bound) }
    bias.value.zero()
  }

  func forward(_ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>) {
    bs_linear_forward(x, Int32(n), Int32(inFeatures), Int32(outFeatures), weight.value.data,
                      bias.value.data, y)
  }

  func backward(_ x: UnsafePointer<Float>, n: Int, dy: UnsafePointer<Float>,
                dx: UnsafeMutablePointer<Float>?) {
    bs_linear_backward(x, Int32(n), Int32(inFeatures), Int32(outFeatures), weight.value.data, dy,
                       weight.grad.data, bias.grad.data, dx)
  }
}
