import Wire

/// A declaration that cannot run: `field` is the declaration's key (`depths`, `fractions`, ...).
public struct StudyValidationError: Error, Equatable, CustomStringConvertible, Sendable {
  public var field: String
  public var message: String
  public init(_ field: String, _ message: String) {
    self.field = field
    self.message = message
  }
  public var description: String { "\(field): \(message)" }
}

/// Bounds of a declaration (beyond them a study is a typo, not an experiment).
public enum StudyLimits {
  public static let maxModels = 10_000
  public static let maxDepth = 1202
  public static let maxWidth = 64.0
  public static let maxEpochs = 100_000
}

extension StudyDeclaration {
  /// Checks every key that does not need the machine (the daemon then checks the dataset's
  /// availability and each model's memory). Throws on the first problem, naming its key.
  public func validate() throws(StudyValidationError) {
    if let key = unknownKeys.first {
      let known = StudyDeclaration.keys.sorted().joined(separator: ", ")
      throw StudyValidationError(key, "is not a key of a study declaration (known keys: \(known))")
    }
    if dataset.isEmpty { throw StudyValidationError("dataset", "is empty") }
    try axis("depths", depths) { d in
      d >= 8 && (d - 2) % 6 == 0 && d <= StudyLimits.maxDepth
        ? nil : "\(d) is not 6n+2 with n >= 1 (8, 14, 20, 26, ..., \(StudyLimits.maxDepth))"
    }
    try axis("widths", widths) { w in
      w > 0 && w.isFinite && w <= StudyLimits.maxWidth ? nil : "\(w) is outside (0, \(Int(StudyLimits.maxWidth))]"
    }
    try axis("fractions", fractions) { f in
      f > 0 && f <= 1 ? nil : "\(f) is outside (0, 1]"
    }
    try axis("seeds", seeds) { s in s < (1 << 53) ? nil : "\(s) is not below 2^53" }
    if !plainWidths.isEmpty {
      try axis("plain_widths", plainWidths) { w in
        w > 0 && w.isFinite && w <= StudyLimits.maxWidth ? nil : "\(w) is outside (0, \(Int(StudyLimits.maxWidth))]"
      }
    }
    guard (1...StudyLimits.maxEpochs).contains(epochs) else {
      throw StudyValidationError("epochs", "\(epochs) is outside 1...\(StudyLimits.maxEpochs)")
    }
    guard (1...8192).contains(batchSize) else {
      throw StudyValidationError("batch_size", "\(batchSize) is outside 1...8192")
    }
    guard lr > 0, lr.isFinite else { throw StudyValidationError("lr", "\(lr) must be a positive number") }
    guard weightDecay >= 0, weightDecay.isFinite else {
      throw StudyValidationError("weight_decay", "\(weightDecay) must be a number >= 0")
    }
    guard warmupEpochs >= 0, warmupEpochs <= Double(epochs) else {
      throw StudyValidationError("warmup_epochs", "\(warmupEpochs) is outside 0...epochs (\(epochs))")
    }
    if let n = testExamples, n < 1 { throw StudyValidationError("test_examples", "\(n) must be at least 1") }
    if !snapshotEpochs.isEmpty {
      try axis("snapshot_epochs", snapshotEpochs) { e in
        (1..<epochs).contains(e) ? nil : "\(e) is outside 1...\(epochs - 1) (the last epoch is the model itself)"
      }
    }
    if analyses.isEmpty { throw StudyValidationError("analyses", "is empty (omit it to run every analysis)") }
    if Set(analyses).count != analyses.count { throw StudyValidationError("analyses", "lists an analysis twice") }
    guard heatmapBatch >= 4, heatmapBatch <= 2048 else {
      throw StudyValidationError("heatmap_batch", "\(heatmapBatch) is outside 4...2048")
    }
    guard heatmapExamples >= heatmapBatch else {
      throw StudyValidationError("heatmap_examples", "\(heatmapExamples) is fewer than one batch (heatmap_batch \(heatmapBatch))")
    }
    guard (1...1000).contains(heatmapPasses) else {
      throw StudyValidationError("heatmap_passes", "\(heatmapPasses) is outside 1...1000")
    }
    guard (0...100_000).contains(bootstrap) else {
      throw StudyValidationError("bootstrap", "\(bootstrap) is outside 0...100000")
    }
    guard (2...8192).contains(pcExamples) else {
      throw StudyValidationError("pc_examples", "\(pcExamples) is outside 2...8192")
    }
    guard (1...1000).contains(probeEpochs) else {
      throw StudyValidationError("probe_epochs", "\(probeEpochs) is outside 1...1000")
    }
    guard probeTrainExamples >= 1 else {
      throw StudyValidationError("probe_train_examples", "\(probeTrainExamples) must be at least 1")
    }
    for (key, value) in [("probe_test_examples", probeTestExamples),
                         ("deletion_test_examples", deletionTestExamples),
                         ("population_test_examples", populationTestExamples)] {
      if let n = value, n < 1 { throw StudyValidationError(key, "\(n) must be at least 1") }
    }
    guard nearChanceMargin >= 0, nearChanceMargin < 1 else {
      throw StudyValidationError("near_chance_margin", "\(nearChanceMargin) is outside [0, 1)")
    }
    guard similarAccuracy >= 0, similarAccuracy <= 1 else {
      throw StudyValidationError("similar_accuracy", "\(similarAccuracy) is outside [0, 1]")
    }
    let count = modelCount
    guard count <= StudyLimits.maxModels else {
      throw StudyValidationError("depths", "the grid has \(count) models; at most \(StudyLimits.maxModels)")
    }
  }

  /// Models in the grid: residual nets at every width, plain nets at `plain_widths`, each at
  /// every depth, fraction and seed.
  public var modelCount: Int {
    depths.count * (widths.count + plainWidths.count) * fractions.count * seeds.count
  }

  private func axis<T: Hashable>(_ key: String, _ values: [T],
                                 _ problem: (T) -> String?) throws(StudyValidationError) {
    if values.isEmpty { throw StudyValidationError(key, "is empty") }
    for v in values {
      if let p = problem(v) { throw StudyValidationError(key, p) }
    }
    if Set(values).count != values.count {
      throw StudyValidationError(key, "lists a value twice")
    }
  }
}
