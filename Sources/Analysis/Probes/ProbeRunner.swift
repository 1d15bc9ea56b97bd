import Engine

/// Settings of a linear-probe run (the linear probes of Nguyen et al. 2021; docs/ANALYSIS.md,
/// "Probes, deletion, block structure, populations"). Defaults: batch 256, 10 epochs, learning
/// rate 0.01 cosine-decayed per step to 0, momentum 0.9, weight decay 5e-4, no pooling.
public struct ProbeConfig: Codable, Equatable, Sendable {
  public var batchSize: Int
  public var epochs: Int
  public var learningRate: Double
  public var momentum: Double
  public var weightDecay: Double
  /// 2x2 spatial average pooling of the activation before flattening (see SpatialPooling for
  /// odd sizes).
  public var pool2x2: Bool
  /// Seed of the minibatch order (epoch e shuffles with stream 2000 + e). Probe weights start
  /// at zero, so this is the only seed of a run.
  public var seed: UInt64
  /// Layers to probe, by representation name; nil: `ProbeRunner.defaultLayers`.
  public var layers: [String]?

  public init(batchSize: Int = 256, epochs: Int = 10, learningRate: Double = 0.01,
              momentum: Double = 0.9, weightDecay: Double = 5e-4, pool2x2: Bool = false,
              seed: UInt64 = 0, layers: [String]? = nil) {
    self.batchSize = batchSize
    self.epochs = epochs
    self.learningRate = learningRate
    self.momentum = momentum
    self.weightDecay = weightDecay
    self.pool2x2 = pool2x2
    self.seed = seed
    self.layers = layers
  }

  public func validate() throws {
    guard batchSize >= 1, epochs >= 1, learningRate > 0, learningRate.isFinite,
          momentum >= 0, momentum < 1, weightDecay >= 0, weightDecay.isFinite else {
      throw ProbeError.invalidConfig("probe config \(self) has a value out of range")
    }
  }
}

/// One probed layer.
public struct ProbeLayerResult: Codable, Equatable, Sendable {
  public var name: String
  public var kind: Representation.Kind
  public var block: String?
  /// Shape of the probe's input (after pooling, if any); features = height * width * channels.
  public var height: Int
  public var width: Int
  public var channels: Int
  public var features: Int
  /// Features constant over the training set (standardized to 0).
  public var constantFeatures: Int
  /// Running accuracy and mean loss over the last training epoch (each minibatch measured just
  /// before its update).
  public var trainAccuracy: Double
  public var trainLoss: Double
  public var testAccuracy: Double
}

/// Everything a probe run produced, with what is needed to rerun it.
public struct ProbeReport: Codable, Equatable, Sendable {
  public var model: String
  public var modelConfig: ResNetConfig
  public var config: ProbeConfig
  public var numClasses: Int
  public var trainCount: Int
  public var testCount: Int
  /// In forward order.
  public var layers: [ProbeLayerResult]
}

/// Examples pushed through the network so far, over all phases and independent of the number
/// of layers: total = train * (1 + epochs) + test.
public struct ProbeProgress: Sendable {
  public enum Phase: String, Sendable { case statistics, training, testing }
  public var phase: Phase
  /// 1-based training epoch; 0 in the statistics and testing phases.
  public var epoch: Int
  public var processed: Int
  public var total: Int
  public var fraction: Double { total == 0 ? 1 : Double(processed) / Double(total) }
}

public enum ProbeError: Error, CustomStringConvertible, Equatable {
  case invalidConfig(String)
  case dataMismatch(String)
  case unknownLayers([String])
  case cancelled(processed: Int, total: Int)

  public var description: String {
    switch self {
    case .invalidConfig(let s), .dataMismatch(let s): return s
    case .unknownLayers(let n): return "no representation named \(n.joined(separator: ", "))"
    case .cancelled(let p, let t): return "probe run cancelled after \(p) of \(t) examples"
    }
  }
}

/// Linear probes on a frozen network (Nguyen et al. 2021), streamed: every probe trains from
/// the same forward pass of each minibatch, inside the `infer` tap, so no layer's activations
/// of the training set are ever stored (they would be gigabytes).
///
/// Phases, each one pass of the network over a dataset in inference mode, no augmentation:
/// 1. the training set in order: per-feature standardization statistics of every probe;
/// 2. `epochs` passes over the training set in a seeded shuffled order: one SGD step of every
///    probe per minibatch, learning rate cosine-decayed per step to 0;
/// 3. the test set: test accuracy of every probe.
public enum ProbeRunner {
  /// The layers of the paper: each residual add and the BN just before it (sX.bY.bn2,
  /// sX.bY.add). A plain net has no add: its probes are on bn2 and the block output
  /// (sX.bY.out = ReLU(bn2)), the nearest equivalent.
  public static func defaultLayers(for config: ResNetConfig) -> [String] {
    config.representations.filter { r in
      guard r.block != nil else { return false }
      if r.name.hasSuffix(".bn2") { return true }
      return config.residual ? r.kind == .add : r.kind == .blockOutput
    }.map(\.name)
  }

  /// The selected representations in forward order (explicit names: duplicates ignored,
  /// unknown names an error).
  public static func layers(of model: ResNetConfig, config: ProbeConfig) throws -> [Representation] {
    let reps = model.representations
    guard let names = config.layers else {
      let wanted = Set(defaultLayers(for: model))
      return reps.filter { wanted.contains($0.name) }
    }
    let known = Set(reps.map(\.name))
    let unknown = names.filter { !known.contains($0) }
    if !unknown.isEmpty { throw ProbeError.unknownLayers(unknown) }
    if names.isEmpty { throw ProbeError.invalidConfig("no layers to probe") }
    let wanted = Set(names)
    return reps.filter { wanted.contains($0.name) }
  }

  private final class Slot {
    let rep: Representation
    let height: Int, width: Int, features: Int
    let probe: SoftmaxProbe
    var trainCorrect = 0, trainLossSum = 0.0, trainSeen = 0, testCorrect = 0
    init(rep: Representation, pool: Bool, classes: Int, config: ProbeConfig,
         workspace: ProbeWorkspace, context: KernelContext) {
      self.rep = rep
      (height, width) = pool ? SpatialPooling.pooledSize(height: rep.height, width: rep.width)
        : (rep.height, rep.width)
      features = height * width * rep.channels
      probe = SoftmaxProbe(features: features, classes: classes,
                           weightDecay: Float(config.weightDecay), momentum: Float(config.momentum),
                           workspace: workspace, context: context)
    }
  }

  /// Trains and evaluates the probes. `progress` is called after every minibatch;
  /// `shouldStop` is polled before every minibatch and, when true, ends the run with
  /// `ProbeError.cancelled`. The model is only read (inference mode).
  public static func run(_ model: ResNet, train: Dataset, test: Dataset,
                         config: ProbeConfig = ProbeConfig(), context: KernelContext,
                         progress: ((ProbeProgress) -> Void)? = nil,
                         shouldStop: () -> Bool = { false }) throws -> ProbeReport {
    try config.validate()
    let m = model.config, k = train.numClasses
    for (what, d) in [("training", train), ("test", test)] {
      guard d.height == m.inputHeight, d.width == m.inputWidth, d.channels == m.inputChannels else {
        throw ProbeError.dataMismatch(
          "\(what) set \(d.name) is \(d.height)x\(d.width)x\(d.channels); the model expects \(m.inputHeight)x\(m.inputWidth)x\(m.inputChannels)")
      }
      guard d.count > 0 else { throw ProbeError.dataMismatch("the \(what) set is empty") }
      guard d.numClasses == k, k >= 2 else {
        throw ProbeError.dataMismatch("the training set has \(k) classes, the \(what) set \(d.numClasses)")
      }
      if let bad = d.labels.first(where: { $0 < 0 || Int($0) >= k }) {
        throw ProbeError.dataMismatch("\(what) label \(bad) outside 0..<\(k)")
      }
    }
    let workspace = ProbeWorkspace()
    let slots = try layers(of: m, config: config).map {
      Slot(rep: $0, pool: config.pool2x2, classes: k, config: config, workspace: workspace,
           context: context)
    }
    var index = [String: Int]()
    for (i, s) in slots.enumerated() { index[s.rep.name] = i }

    let bs = config.batchSize
    let input = Tensor([min(bs, max(train.count, test.count)), m.inputHeight, m.inputWidth,
                        m.inputChannels])
    var fillRng = RandomSource(seed: 0)   // unused without augmentation
    let total = train.count * (1 + config.epochs) + test.count
    var processed = 0

    // One pass of `data` in `order` through the network; `body(slot, features, n, labels)`
    // runs for every probed layer of every minibatch, in forward order; `after` once per batch.
    func pass(_ data: Dataset, order: [Int], phase: ProbeProgress.Phase, epoch: Int,
              body: @escaping (Slot, UnsafePointer<Float>, Int, [Int32]) -> Void,
              after: () -> Void = {}) throws {
      var start = 0
      while start < order.count {
        if shouldStop() { throw ProbeError.cancelled(processed: processed, total: total) }
        let n = min(bs, order.count - start)
        let positions = order[start..<(start + n)]
        BatchLoader.fill(input.data, from: data, positions: positions, augment: false,
                         rng: &fillRng, context: context)
        let labels = positions.map { data.labels[$0] }
        _ = try model.infer(input.data, n: n, context: context, wants: { index[$0.name] != nil }, tap: { rep, p in
          guard let i = index[rep.name] else { return }
          let slot = slots[i]
          var x = p
          if config.pool2x2 {
            let y = workspace.pooledBuffer(n * slot.features)
            SpatialPooling.average2x2(p, n: n, height: rep.height, width: rep.width,
                                      channels: rep.channels, into: y)
            x = UnsafePointer(y)
          }
          body(slot, x, n, labels)
        })
        after()
        start += n
        processed += n
        progress?(ProbeProgress(phase: phase, epoch: epoch, processed: processed, total: total))
      }
    }

    // 1. Standardization statistics.
    try pass(train, order: Array(0..<train.count), phase: .statistics, epoch: 0,
             body: { slot, x, n, _ in slot.probe.accumulateStatistics(x, n: n) })
    for s in slots { s.probe.finishStatistics() }

    // 2. Training.
    let stepsPerEpoch = (train.count + bs - 1) / bs
    let schedule = LearningRateSchedule(base: config.learningRate,
                                        totalSteps: stepsPerEpoch * config.epochs)
    var step = 0
    for epoch in 1...config.epochs {
      var rng = RandomSource(seed: config.seed, stream: 2000 + UInt64(epoch))
      var order = Array(0..<train.count)
      if order.count > 1 {
        for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, rng.below(i + 1)) }
      }
      let last = epoch == config.epochs
      try pass(train, order: order, phase: .training, epoch: epoch, body: { slot, x, n, labels in
        let lr = Float(schedule.rate(at: step))
        let r = slot.probe.step(features: x, n: n, labels: labels, lr: lr)
        if last {
          slot.trainCorrect += r.correct
          slot.trainLossSum += r.loss * Double(n)
          slot.trainSeen += n
        }
      }, after: { step += 1 })
    }

    // 3. Test accuracy.
    try pass(test, order: Array(0..<test.count), phase: .testing, epoch: 0,
             body: { slot, x, n, labels in
               slot.testCorrect += slot.probe.correct(features: x, n: n, labels: labels)
             })

    let results = slots.map { s in
      ProbeLayerResult(name: s.rep.name, kind: s.rep.kind, block: s.rep.block, height: s.height,
                       width: s.width, channels: s.rep.channels, features: s.features,
                       constantFeatures: s.probe.constantFeatures,
                       trainAccuracy: Double(s.trainCorrect) / Double(max(1, s.trainSeen)),
                       trainLoss: s.trainLossSum / Double(max(1, s.trainSeen)),
                       testAccuracy: Double(s.testCorrect) / Double(test.count))
    }
    return ProbeReport(model: m.name, modelConfig: m, config: config, numClasses: k,
                       trainCount: train.count, testCount: test.count, layers: results)
  }
}
