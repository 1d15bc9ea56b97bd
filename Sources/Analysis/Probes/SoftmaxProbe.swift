import CKernels
import Engine

/// Scratch floats shared by probes that run one after another (the standardized copy of a
/// minibatch, the pooled activation). One per runner, so 50 probes on 16k-feature layers do not
/// each keep a 256 x 16k buffer. Not for concurrent use.
final class ProbeWorkspace {
  private var standardized = Tensor([0])
  private var pooled = Tensor([0])

  func standardizedBuffer(_ count: Int) -> UnsafeMutablePointer<Float> {
    if standardized.capacity < count { standardized = Tensor([count]) }
    return standardized.data
  }

  func pooledBuffer(_ count: Int) -> UnsafeMutablePointer<Float> {
    if pooled.capacity < count { pooled = Tensor([count]) }
    return pooled.data
  }
}

/// A linear softmax classifier on `features` inputs and `classes` outputs (a linear probe of
/// Nguyen et al. 2021): logits = W z + b with z the standardized features, trained by minibatch
/// SGD with momentum (PyTorch semantics, `bs_sgd_momentum`) and L2 weight decay on W only (not
/// on b).
///
/// Standardization. Every feature is shifted and scaled by its mean and standard deviation over
/// the training set (`accumulateStatistics` over all training examples, then
/// `finishStatistics`). Raw activations have wildly different scales across layers and across
/// units (a BN output is O(1), a residual add grows with depth, a ReLU'd layer has a mean far
/// from 0), and the stable SGD step of a linear model scales with 1 / (feature scale)^2, so one
/// learning rate fits all probes of a network only after standardizing. Constant features
/// (e.g. dead ReLU units) get std 1: they standardize to exactly 0 and never move W.
/// Before `finishStatistics` the standardization is the identity (mean 0, std 1).
///
/// Weights start at zero (the problem is convex; no initialization seed is needed).
public final class SoftmaxProbe: @unchecked Sendable {
  public let features: Int
  public let classes: Int
  public var momentum: Float
  public var weightDecay: Float
  /// [classes][features] and [classes], on the standardized features.
  public let weight: Tensor
  public let bias: Tensor
  /// Gradients of the last `step` / `lossAndGradient` (data loss only, no weight decay).
  public let weightGrad: Tensor
  public let biasGrad: Tensor
  let weightVelocity: Tensor
  let biasVelocity: Tensor

  /// Per-feature standardization (identity until `finishStatistics`).
  public private(set) var mean: [Float]
  public private(set) var std: [Float]
  private var invStd: [Float]
  /// Number of features found constant by `finishStatistics` (given std 1).
  public private(set) var constantFeatures = 0
  /// Examples seen by `accumulateStatistics` since the last `finishStatistics`.
  public private(set) var statisticsCount = 0
  private var shift: [Double] = []   // first example's values: sums are of (x - shift)
  private var sum: [Double] = []
  private var sumSq: [Double] = []

  let workspace: ProbeWorkspace
  private var logitBuffer = [Float]()
  private var dlogitBuffer = [Float]()

  /// The micro-kernels of the context the probe was made for (SGD).
  let kernels: bs_kernels

  public convenience init(features: Int, classes: Int, weightDecay: Float = 5e-4,
                          momentum: Float = 0.9, context: KernelContext) {
    self.init(features: features, classes: classes, weightDecay: weightDecay,
              momentum: momentum, workspace: ProbeWorkspace(), context: context)
  }

  init(features: Int, classes: Int, weightDecay: Float, momentum: Float,
       workspace: ProbeWorkspace, context: KernelContext) {
    kernels = context.kernels
    precondition(features >= 1 && classes >= 2, "probe needs >= 1 feature and >= 2 classes")
    self.features = features
    self.classes = classes
    self.weightDecay = weightDecay
    self.momentum = momentum
    self.workspace = workspace
    weight = Tensor([classes, features])
    bias = Tensor([classes])
    weightGrad = Tensor([classes, features])
    biasGrad = Tensor([classes])
    weightVelocity = Tensor([classes, features])
    biasVelocity = Tensor([classes])
    mean = [Float](repeating: 0, count: features)
    std = [Float](repeating: 1, count: features)
    invStd = std
  }

  // MARK: Standardization

  /// Adds n examples x: [n][features] to the running sums (Double, shifted by the first
  /// example seen to avoid cancellation in sum(x^2) - n mean^2).
  public func accumulateStatistics(_ x: UnsafePointer<Float>, n: Int) {
    guard n > 0 else { return }
    let d = features
    if statisticsCount == 0 {
      shift = (0..<d).map { Double(x[$0]) }
      sum = [Double](repeating: 0, count: d)
      sumSq = [Double](repeating: 0, count: d)
    }
    shift.withUnsafeBufferPointer { sh in
      sum.withUnsafeMutableBufferPointer { s in
        sumSq.withUnsafeMutableBufferPointer { q in
          for i in 0..<n {
            let row = x + i * d
            for j in 0..<d {
              let v = Double(row[j]) - sh[j]
              s[j] += v
              q[j] += v * v
            }
          }
        }
      }
    }
    statisticsCount += n
  }

  /// Turns the accumulated sums into the per-feature mean and std (population variance).
  /// A feature whose std is below 1e-6 * max(1, |mean|) is treated as constant: std 1.
  public func finishStatistics() {
    guard statisticsCount > 0 else { return }
    let count = Double(statisticsCount)
    var constant = 0
    for j in 0..<features {
      let m = sum[j] / count
      let variance = max(0, sumSq[j] / count - m * m)
      let mu = shift[j] + m
      var sd = variance.squareRoot()
      if !(sd > 1e-6 * max(1, abs(mu))) {
        sd = 1
        constant += 1
      }
      mean[j] = Float(mu)
      std[j] = Float(sd)
      invStd[j] = Float(1 / sd)
    }
    constantFeatures = constant
    statisticsCount = 0
    shift = []; sum = []; sumSq = []
  }

  /// (x - mean) / std into the workspace; returns it.
  private func standardize(_ x: UnsafePointer<Float>, n: Int) -> UnsafeMutablePointer<Float> {
    let d = features
    let z = workspace.standardizedBuffer(n * d)
    mean.withUnsafeBufferPointer { m in
      invStd.withUnsafeBufferPointer { s in
        for i in 0..<n {
          let row = x + i * d, out = z + i * d
          for j in 0..<d { out[j] = (row[j] - m[j]) * s[j] }
        }
      }
    }
    return z
  }

  // MARK: Forward, loss, training

  private func forward(_ z: UnsafePointer<Float>, n: Int) {
    if logitBuffer.count < n * classes { logitBuffer = [Float](repeating: 0, count: n * classes) }
    logitBuffer.withUnsafeMutableBufferPointer { y in
      bs_linear_forward(z, Int32(n), Int32(features), Int32(classes), weight.data, bias.data,
                        y.baseAddress!)
    }
  }

  /// Logits [n][classes] of raw (unstandardized) features x: [n][features].
  public func logits(features x: UnsafePointer<Float>, n: Int) -> [Float] {
    guard n > 0 else { return [] }
    forward(standardize(x, n: n), n: n)
    return Array(logitBuffer[0..<(n * classes)])
  }

  /// Argmax class per example (ties: the lowest class).
  public func predict(features x: UnsafePointer<Float>, n: Int) -> [Int32] {
    let z = logits(features: x, n: n), k = classes
    return (0..<n).map { i in
      var best = 0
      for j in 1..<k where z[i * k + j] > z[i * k + best] { best = j }
      return Int32(best)
    }
  }

  /// Number of correct argmax predictions.
  public func correct(features x: UnsafePointer<Float>, n: Int, labels: [Int32]) -> Int {
    precondition(labels.count >= n, "\(labels.count) labels for \(n) examples")
    let p = predict(features: x, n: n)
    return (0..<n).reduce(0) { $0 + (p[$1] == labels[$1] ? 1 : 0) }
  }

  public func accuracy(features x: UnsafePointer<Float>, n: Int, labels: [Int32]) -> Double {
    n == 0 ? 0 : Double(correct(features: x, n: n, labels: labels)) / Double(n)
  }

  /// Mean softmax cross-entropy of the batch and its gradient with respect to W and b (into
  /// `weightGrad`, `biasGrad`; data loss only, weight decay is added by the SGD step). Also
  /// returns the number of correct argmax predictions (before any update).
  @discardableResult
  public func lossAndGradient(features x: UnsafePointer<Float>, n: Int,
                              labels: [Int32]) -> (loss: Double, correct: Int) {
    precondition(n > 0 && labels.count >= n, "\(labels.count) labels for \(n) examples")
    for i in 0..<n {
      precondition(labels[i] >= 0 && Int(labels[i]) < classes,
                   "label \(labels[i]) outside 0..<\(classes)")
    }
    let z = standardize(x, n: n)
    forward(z, n: n)
    if dlogitBuffer.count < n * classes { dlogitBuffer = [Float](repeating: 0, count: n * classes) }
    var hits: Int32 = 0
    let loss = logitBuffer.withUnsafeBufferPointer { y in
      dlogitBuffer.withUnsafeMutableBufferPointer { dy in
        labels.withUnsafeBufferPointer { l in
          bs_softmax_xent(y.baseAddress!, l.baseAddress!, Int32(n), Int32(classes), nil,
                          dy.baseAddress!, &hits)
        }
      }
    }
    dlogitBuffer.withUnsafeBufferPointer { dy in
      bs_linear_backward(z, Int32(n), Int32(features), Int32(classes), weight.data,
                         dy.baseAddress!, weightGrad.data, biasGrad.data, nil)
    }
    return (loss, Int(hits))
  }

  /// One SGD-momentum step on a minibatch of raw features x: [n][features].
  /// Returns the batch loss and correct count measured before the update.
  @discardableResult
  public func step(features x: UnsafePointer<Float>, n: Int, labels: [Int32],
                   lr: Float) -> (loss: Double, correct: Int) {
    guard n > 0 else { return (0, 0) }
    let r = lossAndGradient(features: x, n: n, labels: labels)
    kernels.bs_sgd_momentum(weight.data, weightVelocity.data, weightGrad.data, weight.count, lr,
                    momentum, weightDecay)
    kernels.bs_sgd_momentum(bias.data, biasVelocity.data, biasGrad.data, bias.count, lr, momentum, 0)
    return r
  }

  /// Array conveniences (x: n * features floats).
  @discardableResult
  public func step(features x: [Float], labels: [Int32], lr: Float) -> (loss: Double, correct: Int) {
    precondition(x.count == labels.count * features, "feature count mismatch")
    return x.withUnsafeBufferPointer { step(features: $0.baseAddress!, n: labels.count, labels: labels, lr: lr) }
  }

  public func accuracy(features x: [Float], labels: [Int32]) -> Double {
    precondition(x.count == labels.count * features, "feature count mismatch")
    guard !labels.isEmpty else { return 0 }
    return x.withUnsafeBufferPointer { accuracy(features: $0.baseAddress!, n: labels.count, labels: labels) }
  }

  public func accumulateStatistics(_ x: [Float]) {
    precondition(x.count % features == 0, "feature count mismatch")
    guard !x.isEmpty else { return }
    x.withUnsafeBufferPointer { accumulateStatistics($0.baseAddress!, n: x.count / features) }
  }
}
