import Engine

/// Test accuracy with one block bypassed (or why it cannot be).
public struct BlockRemovalResult: Codable, Equatable, Sendable {
  public var block: String
  public var stage: Int
  public var index: Int
  public var removable: Bool
  /// Why the block cannot be bypassed (nil when removable).
  public var reason: String?
  /// nil when not removable.
  public var accuracy: Double?
  public var loss: Double?
  /// intact accuracy - accuracy (positive: the deletion costs accuracy).
  public var drop: Double?
  /// Test examples whose predicted class differs from the intact model's.
  public var changedPredictions: Int?
}

/// Test accuracy with the last j removable blocks of a stage bypassed together.
public struct StageTailRemovalResult: Codable, Equatable, Sendable {
  public var stage: Int
  /// j: how many blocks, counted from the end of the stage, are removed.
  public var removed: Int
  /// Their names, in forward order.
  public var blocks: [String]
  public var accuracy: Double
  public var loss: Double
  public var drop: Double
  public var changedPredictions: Int
}

public struct BlockDeletionReport: Codable, Equatable, Sendable {
  public var model: String
  public var modelConfig: ResNetConfig
  public var testCount: Int
  public var intactAccuracy: Double
  public var intactLoss: Double
  /// Every examined block in forward order.
  public var blocks: [BlockRemovalResult]
  /// Per stage, j = 1 ... (number of removable blocks at the end of the stage), in order of
  /// stage then j. A stage without a removable last block has no entries.
  public var stageTails: [StageTailRemovalResult]
}

/// After each batch of each evaluation: `completed` of `total` (evaluations x test batches),
/// `current` the blocks removed in the one just computed (empty: intact).
public struct BlockDeletionProgress: Sendable {
  public var completed: Int
  public var total: Int
  public var current: [String]
  public var fraction: Double { total == 0 ? 1 : Double(completed) / Double(total) }
}

public enum BlockDeletionError: Error, CustomStringConvertible, Equatable {
  case invalid(String)
  case cancelled(completed: Int, total: Int)
  public var description: String {
    switch self {
    case .invalid(let s): return s
    case .cancelled(let c, let t): return "block deletion cancelled after \(c) of \(t) batch evaluations"
    }
  }
}

/// Block deletion without retraining (Nguyen et al. 2021): a bypassed block's output is its
/// input (its identity shortcut is kept, the residual branch dropped). Projection blocks (first
/// block of stages 2 and 3 of the residual net) cannot be removed. For a plain net the engine
/// treats every block whose input and output shapes agree as removable (output := input).
public enum BlockDeletion {
  /// Why `spec` cannot be bypassed, nil if it can.
  public static func reasonNotRemovable(_ spec: BlockSpec) -> String? {
    if spec.removable { return nil }
    if spec.projection {
      return "its shortcut is a projection (1x1 conv, stride \(spec.stride), \(spec.inChannels) -> \(spec.outChannels) channels), so there is no identity path to keep"
    }
    return "its input (\(spec.inHeight)x\(spec.inWidth)x\(spec.inChannels)) and output (\(spec.outHeight)x\(spec.outWidth)x\(spec.outChannels)) shapes differ"
  }

  /// The last j removable blocks of every stage, for j = 1...: per stage, the maximal run of
  /// removable blocks that ends the stage, in forward order.
  public static func stageTails(_ specs: [BlockSpec]) -> [(stage: Int, blocks: [String])] {
    let stages = Array(Set(specs.map(\.stage))).sorted()
    return stages.map { stage in
      var tail = [String]()
      for s in specs.filter({ $0.stage == stage }).reversed() {
        guard s.removable else { break }
        tail.insert(s.name, at: 0)
      }
      return (stage, tail)
    }
  }

  /// Test accuracy of the model with the given blocks bypassed (unknown or projection blocks
  /// are errors, from `ResNet.validateRemoval`).
  public static func evaluate(_ model: ResNet, test: Dataset, removing blocks: Set<String>,
                              batchSize: Int = 256, context: KernelContext) throws -> EvaluationResult {
    try model.validateRemoval(blocks)
    return try Evaluation.run(model, on: test, batchSize: batchSize, skip: blocks, context: context)
  }

  /// Intact accuracy; every block (or only `blocks`, by name; unknown names are an error)
  /// bypassed alone; and per stage the last j removable blocks bypassed together, j = 1...
  /// (the j = 1 entry reuses the single-block result of the stage's last block).
  /// Evaluated batch by batch, each deletion from its first bypassed block on
  /// (`evaluateSharingPrefixes`). `progress` is called after each batch of each evaluation;
  /// `shouldStop` is polled before each and, when true, ends the run with
  /// `BlockDeletionError.cancelled`.
  public static func run(_ model: ResNet, test: Dataset, blocks: [String]? = nil,
                         stageTails includeTails: Bool = true, batchSize: Int = 256,
                         context: KernelContext,
                         progress: ((BlockDeletionProgress) -> Void)? = nil,
                         shouldStop: () -> Bool = { false }) throws -> BlockDeletionReport {
    let m = model.config, specs = model.blockSpecs
    guard test.height == m.inputHeight, test.width == m.inputWidth,
          test.channels == m.inputChannels else {
      throw BlockDeletionError.invalid(
        "test set \(test.name) is \(test.height)x\(test.width)x\(test.channels); the model expects \(m.inputHeight)x\(m.inputWidth)x\(m.inputChannels)")
    }
    guard test.count > 0 else { throw BlockDeletionError.invalid("the test set is empty") }
    guard batchSize >= 1 else { throw BlockDeletionError.invalid("batch size \(batchSize) < 1") }
    var chosen = specs
    if let blocks {
      let known = Set(specs.map(\.name))
      if let unknown = blocks.first(where: { !known.contains($0) }) {
        throw ResNet.InferenceError.unknownBlock(unknown)
      }
      let wanted = Set(blocks)
      chosen = specs.filter { wanted.contains($0.name) }
    }
    let tails = includeTails ? stageTails(specs) : []
    // Every evaluation, as the blocks it bypasses: intact, each removable chosen block alone,
    // then per stage its last j blocks (j = 1 only when that block was not evaluated alone).
    let removableChosen = chosen.filter(\.removable).map(\.name)
    var configs: [[String]] = [[]] + removableChosen.map { [$0] }
    for t in tails where !t.blocks.isEmpty {
      for j in 1...t.blocks.count where j > 1 || !removableChosen.contains(t.blocks.last!) {
        configs.append(Array(t.blocks.suffix(j)))
      }
    }
    let results = try evaluateSharingPrefixes(model, test: test, configs: configs, batchSize: batchSize,
                                              context: context, progress: progress, shouldStop: shouldStop)
    let byConfig = Dictionary(uniqueKeysWithValues: zip(configs, results))
    let intact = results[0]
    func changed(_ r: EvaluationResult) -> Int {
      zip(r.predictions, intact.predictions).reduce(0) { $0 + ($1.0 != $1.1 ? 1 : 0) }
    }
    var blockResults = [BlockRemovalResult]()
    for s in chosen {
      var entry = BlockRemovalResult(block: s.name, stage: s.stage, index: s.index,
                                     removable: s.removable, reason: reasonNotRemovable(s))
      if let r = byConfig[[s.name]] {
        entry.accuracy = r.accuracy
        entry.loss = r.loss
        entry.drop = intact.accuracy - r.accuracy
        entry.changedPredictions = changed(r)
      }
      blockResults.append(entry)
    }
    var tailResults = [StageTailRemovalResult]()
    for t in tails where !t.blocks.isEmpty {
      for j in 1...t.blocks.count {
        let removed = Array(t.blocks.suffix(j))
        let r = byConfig[removed]!
        tailResults.append(StageTailRemovalResult(
          stage: t.stage, removed: j, blocks: removed, accuracy: r.accuracy, loss: r.loss,
          drop: intact.accuracy - r.accuracy, changedPredictions: changed(r)))
      }
    }
    return BlockDeletionReport(model: m.name, modelConfig: m, testCount: test.count,
                               intactAccuracy: intact.accuracy, intactLoss: intact.loss,
                               blocks: blockResults, stageTails: tailResults)
  }

  /// Bytes of block inputs kept per batch (every block's input, for the bypassed blocks' runs);
  /// batches shrink below `batchSize` to stay within it.
  static let blockInputBudget = 256 << 20

  /// Each configuration's evaluation over the test set, computed batch by batch: one intact
  /// forward keeps every block's input, and a configuration's forward starts at its first
  /// bypassed block from that input (`ResNet.infer(resume:)`: the values are the full
  /// forward's, bit for bit), so a deletion costs only the blocks after it. configs[0] must be
  /// the intact model ([]).
  static func evaluateSharingPrefixes(_ model: ResNet, test: Dataset, configs: [[String]],
                                      batchSize: Int, context: KernelContext,
                                      progress: ((BlockDeletionProgress) -> Void)?,
                                      shouldStop: () -> Bool) throws -> [EvaluationResult] {
    precondition(configs.first == [], "configs[0] must be the intact model")
    let specs = model.blockSpecs
    let index = Dictionary(uniqueKeysWithValues: specs.enumerated().map { ($1.name, $0) })
    for c in configs { try model.validateRemoval(Set(c)) }
    let first = configs.map { $0.compactMap { index[$0] }.min() }
    let needed = Set(first.compactMap { $0 })
    let perExample = needed.reduce(0) { $0 + specs[$1].inHeight * specs[$1].inWidth * specs[$1].inChannels } * 4
    let batch = max(1, min(batchSize, perExample == 0 ? batchSize : blockInputBudget / perExample))
    var kept = [Int: Tensor]()
    for i in needed {
      kept[i] = Tensor([batch * specs[i].inHeight * specs[i].inWidth * specs[i].inChannels])
    }
    let input = Tensor([batch, test.height, test.width, test.channels])
    var rng = RandomSource(seed: 0)
    var sums = configs.map { _ in EvaluationAccumulator(classes: model.config.numClasses) }
    let batches = (test.count + batch - 1) / batch
    let total = configs.count * batches
    var completed = 0
    var start = 0
    while start < test.count {
      let n = min(batch, test.count - start)
      let labels = test.labels[start..<(start + n)]
      BatchLoader.fill(input.data, from: test, positions: Array(start..<(start + n))[...],
                       augment: false, rng: &rng, context: context)
      for (c, skip) in configs.enumerated() {
        if shouldStop() { throw BlockDeletionError.cancelled(completed: completed, total: total) }
        let logits: [Float]
        if let f = first[c] {
          logits = try model.infer(input.data, n: n, context: context, skip: Set(skip),
                                   resume: (f, UnsafePointer(kept[f]!.data)))
        } else {
          logits = try model.infer(input.data, n: n, context: context, blockInput: { i, p in
            guard let buffer = kept[i] else { return }
            let s = specs[i]
            buffer.data.update(from: p, count: n * s.inHeight * s.inWidth * s.inChannels)
          })
        }
        sums[c].add(logits: logits, labels: labels)
        completed += 1
        progress?(BlockDeletionProgress(completed: completed, total: total, current: skip))
      }
      start += n
    }
    return sums.map(\.result)
  }
}
