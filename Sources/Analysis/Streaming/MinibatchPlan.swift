import Engine

/// The example order of a minibatch analysis (the minibatch CKA protocol of Nguyen et al. 2021;
/// docs/ANALYSIS.md, "CKA estimators"): `passes` passes over the examples, each in a fresh
/// seeded shuffle, cut into batches of `batchSize`. The incomplete last batch of a pass is
/// dropped unless `keepIncomplete` (every batch then weighs the same in the minibatch mean,
/// whatever its size). Two models fed the same plan see identical batches.
public struct MinibatchPlan: Codable, Sendable, Equatable {
  public var batchSize: Int
  public var passes: Int
  public var seed: UInt64
  public var keepIncomplete: Bool

  public init(batchSize: Int = 256, passes: Int = 10, seed: UInt64 = 0, keepIncomplete: Bool = false) {
    self.batchSize = batchSize
    self.passes = passes
    self.seed = seed
    self.keepIncomplete = keepIncomplete
  }

  public enum Invalid: Error, CustomStringConvertible, Equatable {
    case batchSize(Int), passes(Int), noBatches(examples: Int, batchSize: Int)
    public var description: String {
      switch self {
      case .batchSize(let b): return "batch size \(b) is below 4 (the unbiased estimator needs m >= 4)"
      case .passes(let p): return "passes must be at least 1, got \(p)"
      case .noBatches(let n, let b):
        return "\(n) examples make no complete batch of \(b); use a smaller batch or keep incomplete batches"
      }
    }
  }

  public func validate() throws {
    guard batchSize >= 4 else { throw Invalid.batchSize(batchSize) }
    guard passes >= 1 else { throw Invalid.passes(passes) }
  }

  /// Positions (0..<count) of every batch, pass after pass.
  public func batches(count: Int) throws -> [[Int]] {
    try validate()
    var out: [[Int]] = []
    for pass in 0..<passes {
      var order = Array(0..<count)
      var rng = RandomSource(seed: seed, stream: UInt64(pass))
      // Fisher-Yates with the engine's generator (stable across platforms, unlike shuffle()).
      if count > 1 {
        for i in stride(from: count - 1, to: 0, by: -1) {
          order.swapAt(i, rng.below(i + 1))
        }
      }
      var start = 0
      while start < count {
        let end = min(start + batchSize, count)
        if end - start == batchSize || (keepIncomplete && end - start >= 4) {
          out.append(Array(order[start..<end]))
        }
        start = end
      }
    }
    if out.isEmpty { throw Invalid.noBatches(examples: count, batchSize: batchSize) }
    return out
  }

  /// Examples left out per pass (the incomplete tail, or all of it under 4 examples).
  public func droppedPerPass(count: Int) -> Int {
    let tail = count % batchSize
    return keepIncomplete ? (tail < 4 ? tail : 0) : tail
  }
}
