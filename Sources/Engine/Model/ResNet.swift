import CKernels

/// One post-activation basic block: conv3x3(s) -> BN -> ReLU -> conv3x3 -> BN, then
/// ReLU(shortcut + branch) (residual) or ReLU(branch) (plain).
final class BasicBlock: @unchecked Sendable {
  let spec: BlockSpec
  let residual: Bool
  let conv1: Conv2D, bn1: BatchNorm, conv2: Conv2D, bn2: BatchNorm
  let shortcut: Conv2D?

  // Training activations, kept from forward for backward ([capacity][outH][outW][outC]).
  var c1 = Tensor([0]), r1 = Tensor([0]), c2 = Tensor([0]), out = Tensor([0]), sc = Tensor([0])

  init(_ spec: BlockSpec, residual: Bool) {
    self.spec = spec
    self.residual = residual
    let p = spec.name
    conv1 = Conv2D("\(p).conv1", inChannels: spec.inChannels, outChannels: spec.outChannels,
                   kernel: 3, stride: spec.stride, bias: false)
    bn1 = BatchNorm("\(p).bn1", channels: spec.outChannels)
    conv2 = Conv2D("\(p).conv2", inChannels: spec.outChannels, outChannels: spec.outChannels,
                   kernel: 3, stride: 1, bias: false)
    bn2 = BatchNorm("\(p).bn2", channels: spec.outChannels)
    shortcut = spec.projection
      ? Conv2D("\(p).shortcut", inChannels: spec.inChannels, outChannels: spec.outChannels,
               kernel: 1, stride: spec.stride, bias: true)
      : nil
  }

  var outPerExample: Int { spec.outHeight * spec.outWidth * spec.outChannels }
  var inPerExample: Int { spec.inHeight * spec.inWidth * spec.inChannels }

  func allocateTraining(capacity n: Int) {
    let shape = [n, spec.outHeight, spec.outWidth, spec.outChannels]
    c1 = Tensor(shape); r1 = Tensor(shape); c2 = Tensor(shape); out = Tensor(shape)
    sc = shortcut != nil ? Tensor(shape) : Tensor([0])
  }

  /// Training forward. x: [n][inH][inW][inC]; result in `out`. `scratch` holds >= n*out floats.
  func forwardTrain(_ ctx: OpaquePointer, _ x: UnsafePointer<Float>, n: Int,
                    scratch: UnsafeMutablePointer<Float>) {
    let rows = n * spec.outHeight * spec.outWidth, count = rows * spec.outChannels
    conv1.forward(ctx, x, n: n, h: spec.inHeight, w: spec.inWidth, into: c1.data)
    bn1.forwardTrain(ctx, c1.data, rows: rows, relu: true, into: r1.data)
    conv2.forward(ctx, r1.data, n: n, h: spec.outHeight, w: spec.outWidth, into: c2.data)
    if residual {
      bn2.forwardTrain(ctx, c2.data, rows: rows, relu: false, into: scratch)
      var shortcutOut = x
      if let shortcut {
        shortcut.forward(ctx, x, n: n, h: spec.inHeight, w: spec.inWidth, into: sc.data)
        shortcutOut = UnsafePointer(sc.data)
      }
      bs_op_add_relu(ctx, scratch, shortcutOut, count, out.data)
    } else {
      bn2.forwardTrain(ctx, c2.data, rows: rows, relu: true, into: out.data)
    }
  }

  /// Training backward. dout: gradient at the block output (overwritten); dx: gradient at the
  /// block input (written); s1, s2: scratch of the largest activation size. Sets all grads.
  func backward(_ ctx: OpaquePointer, _ x: UnsafePointer<Float>, n: Int,
                dout: UnsafeMutablePointer<Float>,
                dx: UnsafeMutablePointer<Float>, s1: UnsafeMutablePointer<Float>,
                s2: UnsafeMutablePointer<Float>) {
    let rows = n * spec.outHeight * spec.outWidth, count = rows * spec.outChannels
    // Through the final ReLU: dout becomes the gradient at the add (= at bn2 and shortcut).
    bs_op_relu_backward(ctx, out.data, dout, count, dout)
    bn2.backward(ctx, dout, x: c2.data, rows: rows, dx: s1)                 // s1 = d conv2 out
    conv2.backward(ctx, r1.data, n: n, h: spec.outHeight, w: spec.outWidth, dy: s1, dx: s2)
    bs_op_relu_backward(ctx, r1.data, s2, count, s2)
    bn1.backward(ctx, s2, x: c1.data, rows: rows, dx: s2)                   // s2 = d conv1 out
    conv1.backward(ctx, x, n: n, h: spec.inHeight, w: spec.inWidth, dy: s2, dx: dx)
    guard residual else { return }
    let inCount = n * inPerExample
    if let shortcut {
      shortcut.backward(ctx, x, n: n, h: spec.inHeight, w: spec.inWidth, dy: dout, dx: s1)
      bs_op_add(ctx, dx, s1, inCount, dx)
    } else {
      bs_op_add(ctx, dx, dout, inCount, dx)
    }
  }

  var parameters: [Parameter] {
    [conv1.weight, bn1.gamma, bn1.beta, conv2.weight, bn2.gamma, bn2.beta]
      + (shortcut.map { [$0.weight, $0.bias!] } ?? [])
  }
  var batchNorms: [BatchNorm] { [bn1, bn2] }
}

extension ResNetConfig {
  /// The floats of a network's weights and batch-norm running statistics (what a checkpoint
  /// must hold to restore it), from the configuration alone: `ResNet` and `BasicBlock` above,
  /// counted without allocating them. Requires `validate()` to pass (the count then fits).
  public var stateFloatCount: Int {
    let ch = stageChannels
    // A batch norm: gamma, beta, running mean, running variance.
    var count = 9 * inputChannels * ch[0] + 4 * ch[0]
    for block in blocks {
      let (cin, cout) = (block.inChannels, block.outChannels)
      count += 9 * cin * cout + 9 * cout * cout + 2 * 4 * cout
      if block.projection { count += cin * cout + cout }
    }
    return count + ch[2] * numClasses + numClasses
  }
}

/// The CIFAR ResNet family of Nguyen et al. 2021 (README.md, "The model family") on NHWC fp32
/// activations.
///
/// Training: `forwardTrain` keeps what `backward` needs (conv outputs, ReLU outputs, block
/// outputs) in buffers sized for the largest batch seen. Inference: `infer` runs with the
/// running statistics and can hand every representation to a callback as it is produced, so
/// no caller ever holds all layers at once.
public final class ResNet: @unchecked Sendable {
  public let config: ResNetConfig
  let stemConv: Conv2D
  let stemBN: BatchNorm
  let blocks: [BasicBlock]
  let fc: Linear
  /// Every trainable tensor in a stable order.
  public let parameters: [Parameter]
  let batchNorms: [BatchNorm]

  private var trainCapacity = 0
  private var input = Tensor([0]), c0 = Tensor([0]), r0 = Tensor([0]), pooled = Tensor([0])
  private var logits = Tensor([0]), dlogits = Tensor([0]), dpooled = Tensor([0])
  private var g = [Tensor]()          // 4 gradient/scratch buffers of the largest activation
  private var lastN = 0

  public init(config: ResNetConfig, seed: UInt64) throws {
    try config.validate()
    self.config = config
    let ch = config.stageChannels
    stemConv = Conv2D("stem.conv", inChannels: config.inputChannels, outChannels: ch[0],
                      kernel: 3, stride: 1, bias: false)
    stemBN = BatchNorm("stem.bn", channels: ch[0])
    blocks = config.blocks.map { BasicBlock($0, residual: config.residual) }
    fc = Linear("fc", inFeatures: ch[2], outFeatures: config.numClasses)
    parameters = [stemConv.weight, stemBN.gamma, stemBN.beta]
      + blocks.flatMap { $0.parameters } + [fc.weight, fc.bias]
    batchNorms = [stemBN] + blocks.flatMap { $0.batchNorms }
    var rng = RandomSource(seed: seed, stream: 1)
    stemConv.initialize(&rng)
    for b in blocks {
      b.conv1.initialize(&rng)
      b.conv2.initialize(&rng)
      b.shortcut?.initialize(&rng)
    }
    fc.initialize(&rng)
  }

  /// Running statistics of every batch norm: (name, tensor), stable order.
  public var buffers: [(String, Tensor)] {
    batchNorms.flatMap { [($0.runningMeanName, $0.runningMean), ($0.runningVarName, $0.runningVar)] }
  }

  /// Every block's geometry, in order.
  public var blockSpecs: [BlockSpec] { blocks.map { $0.spec } }

  var inputPerExample: Int { config.inputHeight * config.inputWidth * config.inputChannels }
  var stemPerExample: Int { config.inputHeight * config.inputWidth * config.stageChannels[0] }

  private func largestActivation() -> Int {
    var m = max(stemPerExample, inputPerExample)
    for b in blocks { m = max(m, b.outPerExample, b.inPerExample) }
    return m
  }

  private func allocateTraining(capacity n: Int) {
    guard n > trainCapacity else { return }
    trainCapacity = n
    let h = config.inputHeight, w = config.inputWidth, c = config.stageChannels[0]
    input = Tensor([n, h, w, config.inputChannels])
    c0 = Tensor([n, h, w, c]); r0 = Tensor([n, h, w, c])
    pooled = Tensor([n, config.stageChannels[2]]); dpooled = Tensor([n, config.stageChannels[2]])
    logits = Tensor([n, config.numClasses]); dlogits = Tensor([n, config.numClasses])
    g = (0..<4).map { _ in Tensor([n * largestActivation()]) }
    for b in blocks { b.allocateTraining(capacity: n) }
  }

  /// The input buffer of the next training step: fill [n][H][W][C] floats, then call
  /// `forwardTrain(n:)`.
  public func trainingInput(capacity n: Int) -> UnsafeMutablePointer<Float> {
    allocateTraining(capacity: n)
    return input.data
  }

  /// Training-mode forward over the first n examples of `trainingInput`. Returns logits [n][K],
  /// valid until the next call.
  @discardableResult
  public func forwardTrain(n: Int, context: KernelContext) -> UnsafeMutablePointer<Float> {
    let ctx = context.pointer
    precondition(n >= 1 && n <= trainCapacity, "batch \(n) outside 1...\(trainCapacity)")
    lastN = n
    let h = config.inputHeight, w = config.inputWidth
    stemConv.forward(ctx, input.data, n: n, h: h, w: w, into: c0.data)
    stemBN.forwardTrain(ctx, c0.data, rows: n * h * w, relu: true, into: r0.data)
    var x = UnsafePointer(r0.data)
    for b in blocks {
      b.forwardTrain(ctx, x, n: n, scratch: g[0].data)
      x = UnsafePointer(b.out.data)
    }
    let last = blocks.last!.spec
    context.kernels.bs_avgpool(x, Int32(n), Int32(last.outHeight * last.outWidth), Int32(last.outChannels),
               pooled.data)
    fc.forward(pooled.data, n: n, into: logits.data)
    return logits.data
  }

  /// Where the caller writes d loss / d logits [n][K] before `backward()`.
  public var logitGradient: UnsafeMutablePointer<Float> { dlogits.data }

  /// Backward through the last forwardTrain; sets every parameter's grad.
  public func backward(context: KernelContext) {
    let ctx = context.pointer
    let n = lastN
    fc.backward(pooled.data, n: n, dy: dlogits.data, dx: dpooled.data)
    let last = blocks.last!.spec
    var dout = g[0].data, dx = g[1].data
    context.kernels.bs_avgpool_backward(dpooled.data, Int32(n), Int32(last.outHeight * last.outWidth),
                        Int32(last.outChannels), dout)
    for i in stride(from: blocks.count - 1, through: 0, by: -1) {
      let x = i == 0 ? UnsafePointer(r0.data) : UnsafePointer(blocks[i - 1].out.data)
      blocks[i].backward(ctx, x, n: n, dout: dout, dx: dx, s1: g[2].data, s2: g[3].data)
      swap(&dout, &dx)
    }
    let h = config.inputHeight, w = config.inputWidth
    bs_op_relu_backward(ctx, r0.data, dout, n * stemPerExample, dout)
    stemBN.backward(ctx, dout, x: c0.data, rows: n * h * w, dx: dout)
    stemConv.backward(ctx, input.data, n: n, h: h, w: w, dy: dout, dx: nil)
  }

  /// Frees the training buffers (inference keeps its own, smaller set).
  public func releaseTrainingBuffers() {
    trainCapacity = 0
    input = Tensor([0]); c0 = Tensor([0]); r0 = Tensor([0]); g = []
    for b in blocks { b.allocateTraining(capacity: 0) }
  }

  // MARK: Inference

  public enum InferenceError: Error, CustomStringConvertible {
    case notRemovable(String, String)
    case unknownBlock(String)
    public var description: String {
      switch self {
      case .notRemovable(let b, let why): return "block \(b) cannot be removed: \(why)"
      case .unknownBlock(let b): return "no block named \(b)"
      }
    }
  }

  private var inferCapacity = 0
  private var ib = [Tensor]()      // 5 activation buffers
  private var iPooled = Tensor([0]), iLogits = Tensor([0]), iProbs = Tensor([0])

  private func allocateInference(capacity n: Int) {
    guard n > inferCapacity else { return }
    inferCapacity = n
    ib = (0..<5).map { _ in Tensor([n * largestActivation()]) }
    iPooled = Tensor([n, config.stageChannels[2]])
    iLogits = Tensor([n, config.numClasses])
    iProbs = Tensor([n, config.numClasses])
  }

  /// Checks a set of blocks to bypass; projection blocks and unknown names are errors.
  public func validateRemoval(_ skip: Set<String>) throws {
    for name in skip {
      guard let b = blocks.first(where: { $0.spec.name == name }) else {
        throw InferenceError.unknownBlock(name)
      }
      if !b.spec.removable {
        throw InferenceError.notRemovable(
          name, b.spec.projection ? "its shortcut is a projection (stride 2, channels change)"
            : "its input and output shapes differ")
      }
    }
  }

  /// Inference-mode forward of n examples x: [n][H][W][C] in [0, 1].
  /// - tap: called with (representation, pointer to [n][features]) for every representation
  ///   whose name `wants` accepts, in forward order; the pointer is valid during the call only.
  /// - skip: blocks to bypass (output := input), for block deletion; must be removable.
  /// - blockInput: called with (block index, pointer to that block's input [n][inH][inW][inC])
  ///   before each block, bypassed or not; valid during the call only.
  /// - resume: start at block `index` with `input` as its input (what `blockInput` gave for it
  ///   in an earlier forward of the same examples): the stem and the blocks before it are not
  ///   computed and nothing before them is tapped. Every value from there on is the full
  ///   forward's, bit for bit (block deletion re-runs only what follows the first bypassed block).
  /// Returns logits [n][K] (a copy).
  /// A BatchNorm representation in inference mode as a per-channel affine map of the
  /// representation it normalises (stem.bn of stem.conv, sX.bY.bnK of sX.bY.convK):
  /// representation = scale_c * input + shift_c. nil for every other representation.
  public func batchNormAffine(of representation: String) -> (input: String, scale: [Float], shift: [Float])? {
    if representation == "stem.bn" {
      let (scale, shift) = stemBN.inferenceAffine()
      return ("stem.conv", scale, shift)
    }
    for b in blocks {
      let p = b.spec.name
      for (bn, k) in [(b.bn1, 1), (b.bn2, 2)] where representation == "\(p).bn\(k)" {
        let (scale, shift) = bn.inferenceAffine()
        return ("\(p).conv\(k)", scale, shift)
      }
    }
    return nil
  }

  public func infer(_ x: UnsafePointer<Float>, n: Int, context: KernelContext,
                    skip: Set<String> = [], wants: ((Representation) -> Bool)? = nil,
                    tap: ((Representation, UnsafePointer<Float>) -> Void)? = nil,
                    blockInput: ((Int, UnsafePointer<Float>) -> Void)? = nil,
                    resume: (index: Int, input: UnsafePointer<Float>)? = nil) throws -> [Float] {
    let ctx = context.pointer
    try validateRemoval(skip)
    if let resume {
      guard blocks.indices.contains(resume.index) else { throw InferenceError.unknownBlock("#\(resume.index)") }
    }
    allocateInference(capacity: n)
    let reps = config.representations
    var repIndex = [String: Representation]()
    for r in reps { repIndex[r.name] = r }
    let tapping = tap != nil
    func emit(_ name: String, _ p: UnsafePointer<Float>) {
      guard let tap, let r = repIndex[name] else { return }
      if wants?(r) ?? true { tap(r, p) }
    }
    func wanted(_ name: String) -> Bool {
      guard tapping, let r = repIndex[name] else { return false }
      return wants?(r) ?? true
    }
    // BN then ReLU into y: fused, unless the BN output itself is tapped.
    func bnThenReLU(_ bn: BatchNorm, _ x: UnsafeMutablePointer<Float>, rows: Int,
                    tapping name: String, into y: UnsafeMutablePointer<Float>) {
      if wanted(name) {
        bn.forwardInfer(ctx, x, rows: rows, relu: false, into: y)
        emit(name, y)
        bs_op_relu(ctx, y, rows * bn.channels, y)
      } else {
        bn.forwardInfer(ctx, x, rows: rows, relu: true, into: y)
      }
    }
    let h = config.inputHeight, w = config.inputWidth
    var cur = ib[0].data
    let t1 = ib[1].data, t2 = ib[2].data, t3 = ib[3].data
    var spare = ib[4].data
    if let resume {
      let s = blocks[resume.index].spec
      cur.update(from: resume.input, count: n * s.inHeight * s.inWidth * s.inChannels)
    } else {
      emit("input", x)
      let stemRows = n * h * w
      if wanted("stem.conv") || wanted("stem.bn") {
        stemConv.forward(ctx, x, n: n, h: h, w: w, into: t1)
        emit("stem.conv", t1)
        bnThenReLU(stemBN, t1, rows: stemRows, tapping: "stem.bn", into: cur)
      } else {
        stemConv.forwardBNInfer(ctx, x, n: n, h: h, w: w, bn: stemBN, residual: nil, relu: true, into: cur)
      }
      emit("stem.relu", cur)
    }
    for (index, b) in blocks.enumerated() where index >= (resume?.index ?? 0) {
      let s = b.spec, p = s.name
      blockInput?(index, cur)
      if skip.contains(p) { continue }
      let rows = n * s.outHeight * s.outWidth, count = rows * s.outChannels
      let xin = UnsafePointer(cur)
      if wanted("\(p).conv1") || wanted("\(p).bn1") {
        b.conv1.forward(ctx, xin, n: n, h: s.inHeight, w: s.inWidth, into: t1)
        emit("\(p).conv1", t1)
        bnThenReLU(b.bn1, t1, rows: rows, tapping: "\(p).bn1", into: t2)
      } else {
        b.conv1.forwardBNInfer(ctx, xin, n: n, h: s.inHeight, w: s.inWidth, bn: b.bn1, residual: nil,
                               relu: true, into: t2)
      }
      emit("\(p).relu1", t2)
      if !wanted("\(p).conv2") && !wanted("\(p).bn2") && !(b.residual && wanted("\(p).add")) {
        // conv2, BN, the residual add and the ReLU as one op
        var shortcutOut: UnsafePointer<Float>? = nil
        if b.residual {
          shortcutOut = xin
          if let shortcut = b.shortcut {
            shortcut.forward(ctx, xin, n: n, h: s.inHeight, w: s.inWidth, into: t3)
            emit("\(p).shortcut", t3)
            shortcutOut = UnsafePointer(t3)
          }
        }
        b.conv2.forwardBNInfer(ctx, t2, n: n, h: s.outHeight, w: s.outWidth, bn: b.bn2,
                               residual: shortcutOut, relu: true, into: spare)
        emit("\(p).out", spare)
        swap(&cur, &spare)
        continue
      }
      b.conv2.forward(ctx, t2, n: n, h: s.outHeight, w: s.outWidth, into: t1)
      emit("\(p).conv2", t1)
      if b.residual {
        b.bn2.forwardInfer(ctx, t1, rows: rows, relu: false, into: t2)
        emit("\(p).bn2", t2)
        var shortcutOut = xin
        if let shortcut = b.shortcut {
          shortcut.forward(ctx, xin, n: n, h: s.inHeight, w: s.inWidth, into: t3)
          emit("\(p).shortcut", t3)
          shortcutOut = UnsafePointer(t3)
        }
        if wanted("\(p).add") {
          bs_op_add(ctx, t2, shortcutOut, count, t2)
          emit("\(p).add", t2)
          bs_op_relu(ctx, t2, count, spare)
        } else {
          bs_op_add_relu(ctx, t2, shortcutOut, count, spare)
        }
      } else {
        bnThenReLU(b.bn2, t1, rows: rows, tapping: "\(p).bn2", into: spare)
      }
      emit("\(p).out", spare)
      swap(&cur, &spare)
    }
    let last = blocks.last!.spec
    context.kernels.bs_avgpool(cur, Int32(n), Int32(last.outHeight * last.outWidth), Int32(last.outChannels),
               iPooled.data)
    emit("pool", iPooled.data)
    fc.forward(iPooled.data, n: n, into: iLogits.data)
    emit("logits", iLogits.data)
    if wanted("probs") {
      let k = config.numClasses
      for i in 0..<n {
        let z = iLogits.data + i * k, p = iProbs.data + i * k
        var m = z[0]
        for j in 1..<k { m = max(m, z[j]) }
        var s: Double = 0
        for j in 0..<k { s += Double(expf(z[j] - m)) }
        for j in 0..<k { p[j] = Float(Double(expf(z[j] - m)) / s) }
      }
      emit("probs", iProbs.data)
    }
    return Array(UnsafeBufferPointer(start: iLogits.data, count: n * config.numClasses))
  }
}

import Foundation
