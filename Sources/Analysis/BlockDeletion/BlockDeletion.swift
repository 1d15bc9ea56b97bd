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

/// After each model evaluation: `completed` of `total` evaluations (each one a pass over the
/// test set), `current` the blocks removed in the one just finished (empty: intact).
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
    case .cancelled(let c, let t): return "block deletion cancelled after \(c) of \(t) evaluations"
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
  /// `progress` is called after each evaluation; `shouldStop` is polled before each and, when
  /// true, ends the run with `BlockDeletionError.cancelled`.
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
    let total = 1 + chosen.filter(\.removable).count
      + tails.reduce(0) { $0 + max(0, $1.blocks.count - 1) }
      + tails.filter { t in !t.blocks.isEmpty && !chosen.contains { $0.name == t.blocks.last! } }.count
    var completed = 0
    func evaluate(_ skip: [String]) throws -> EvaluationResult {
      if shouldStop() { throw BlockDeletionError.cancelled(completed: completed, total: total) }
      let r = try Evaluation.run(model, on: test, batchSize: batchSize, skip: Set(skip),
                                 context: context)
      completed += 1
      progress?(BlockDeletionProgress(completed: completed, total: total, current: skip))
      return r
    }

    let intact = try evaluate([])
    func changed(_ r: EvaluationResult) -> Int {
      zip(r.predictions, intact.predictions).reduce(0) { $0 + ($1.0 != $1.1 ? 1 : 0) }
    }
    var single = [String: EvaluationResult]()
    var results = [BlockRemovalResult]()
    for s in chosen {
      var entry = BlockRemovalResult(block: s.name, stage: s.stage, index: s.index,
                                     removable: s.removable, reason: reasonNotRemovable(s))
      if s.removable {
        let r = try evaluate([s.name])
        single[s.name] = r
        entry.accuracy = r.accuracy
        entry.loss = r.loss
        entry.drop = intact.accuracy - r.accuracy
        entry.changedPredictions = changed(r)
      }
      results.append(entry)
    }

    var tailResults = [StageTailRemovalResult]()
    for t in tails where !t.blocks.isEmpty {
      for j in 1...t.blocks.count {
        let removed = Array(t.blocks.suffix(j))
        let r: EvaluationResult
        if j == 1, let known = single[removed[0]] { r = known } else { r = try evaluate(removed) }
        tailResults.append(StageTailRemovalResult(
          stage: t.stage, removed: j, blocks: removed, accuracy: r.accuracy, loss: r.loss,
          drop: intact.accuracy - r.accuracy, changedPredictions: changed(r)))
      }
    }
    return BlockDeletionReport(model: m.name, modelConfig: m, testCount: test.count,
                               intactAccuracy: intact.accuracy, intactLoss: intact.loss,
                               blocks: results, stageTails: tailResults)
  }
}
