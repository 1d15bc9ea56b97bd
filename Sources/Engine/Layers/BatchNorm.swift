import CKernels

/// Batch normalisation over the channels of NHWC rows. Training mode normalises with the
/// batch statistics and updates the running averages (PyTorch conventions: momentum 0.1,
/// eps 1e-5, unbiased running variance); inference mode uses the running statistics.
public final class BatchNorm: @unchecked Sendable {
  public let channels: Int
  public let gamma: Parameter
  public let beta: Parameter
  public let runningMean: Tensor
  public let runningVar: Tensor
  public let runningMeanName: String
  public let runningVarName: String
  public static let eps: Float = 1e-5
  public static let momentum: Float = 0.1
  // Saved by forwardTrain for backward.
  let batchMean: Tensor
  let batchInvStd: Tensor

  init(_ name: String, channels: Int) {
    self.channels = channels
    gamma = Parameter("\(name).weight", [channels], decay: false)
    beta = Parameter("\(name).bias", [channels], decay: false)
    runningMean = Tensor([channels])
    runningVar = Tensor([channels])
    runningMeanName = "\(name).running_mean"
    runningVarName = "\(name).running_var"
    batchMean = Tensor([channels])
    batchInvStd = Tensor([channels])
    initialize()
  }

  func initialize() {
    for c in 0..<channels {
      gamma.value[c] = 1
      beta.value[c] = 0
      runningMean[c] = 0
      runningVar[c] = 1
    }
  }

  /// x, y: [rows][C]; y may alias x.
  func forwardTrain(_ ctx: OpaquePointer, _ x: UnsafePointer<Float>, rows: Int, relu: Bool,
                    into y: UnsafeMutablePointer<Float>) {
    bs_bn_forward_train(ctx, x, rows, Int32(channels), gamma.value.data, beta.value.data, Self.eps,
                        Self.momentum, relu ? 1 : 0, runningMean.data, runningVar.data,
                        batchMean.data, batchInvStd.data, y)
  }

  /// Inference mode as a per-channel affine map y = scale_c x + shift_c, with the scale and
  /// shift bs_bn_forward_infer computes (in double, rounded to float).
  public func inferenceAffine() -> (scale: [Float], shift: [Float]) {
    var scale = [Float](repeating: 0, count: channels), shift = scale
    for c in 0..<channels {
      let g = Double(gamma.value[c])
      let inverseStd = 1 / (Double(runningVar[c]) + Double(Self.eps)).squareRoot()
      scale[c] = Float(g * inverseStd)
      shift[c] = Float(Double(beta.value[c]) - Double(runningMean[c]) * g * inverseStd)
    }
    return (scale, shift)
  }

  func forwardInfer(_ ctx: OpaquePointer, _ x: UnsafePointer<Float>, rows: Int, relu: Bool,
                    into y: UnsafeMutablePointer<Float>) {
    bs_bn_forward_infer(ctx, x, rows, Int32(channels), gamma.value.data, beta.value.data,
                        runningMean.data, runningVar.data, Self.eps, relu ? 1 : 0, y)
  }

  /// dy: gradient at the BN output (before any fused ReLU); x: the BN input. dx may alias dy.
  func backward(_ ctx: OpaquePointer, _ dy: UnsafePointer<Float>, x: UnsafePointer<Float>, rows: Int,
                dx: UnsafeMutablePointer<Float>) {
    bs_bn_backward(ctx, dy, x, rows, Int32(channels), gamma.value.data, batchMean.data,
                   batchInvStd.data, gamma.grad.data, beta.grad.data, dx)
  }
}
