// SPEC.md section 7, "Study declaration": what STUDY_CREATE carries and a study file holds.

/// A study: a grid of models over depth x width x training fraction x seeds (plus plain nets at
/// some widths), one training recipe, and the analyses to run on them. Every key but `dataset`
/// and `depths` is optional. Unlike request docs, a declaration is written by hand, so keys this
/// version does not know are kept in `unknownKeys` and refused by validation (a misspelt key
/// would otherwise silently take its default).
public struct StudyDeclaration: Codable, Hashable, Sendable {
  /// The analyses a study can run (default: all).
  public enum AnalysisKind: String, WireStringEnum {
    /// Within-model CKA heatmap over all representations, with block-structure detection.
    case heatmap
    /// PC1 variance fraction per layer, PC1 cosine matrix, and the heatmap with PC1 removed.
    case pc
    /// Linear probes on every residual add (block output) and the BN before it.
    case probe
    /// Block deletion: single blocks and stage tails.
    case deletion
    /// Cross-seed heatmaps for every architecture with 2+ seeds.
    case crossSeed = "cross_seed"
    /// Cross-architecture heatmaps between grid neighbours.
    case crossArchitecture = "cross_architecture"
    /// Output comparison between architectures of similar accuracy, with the seed-vs-seed null.
    case populations
  }

  public var dataset: String
  public var depths: [Int]
  public var widths: [Double]
  public var fractions: [Double]
  public var seeds: [UInt64]
  /// Plain (non-residual) nets at these widths, for every depth, fraction and seed.
  public var plainWidths: [Double]
  // The training recipe, as TRAIN's keys.
  public var epochs: Int
  public var batchSize: Int
  public var lr: Double
  public var weightDecay: Double
  public var warmupEpochs: Double
  public var augment: Bool
  public var stratified: Bool
  /// nil: the whole test split.
  public var testExamples: Int?
  /// Epochs after which a copy of the model is kept (`MODEL.eN`) and analysed.
  public var snapshotEpochs: [Int]
  public var analyses: [AnalysisKind]
  // Example counts and estimator settings of the analyses.
  public var heatmapExamples: Int
  public var heatmapBatch: Int
  public var heatmapPasses: Int
  public var bootstrap: Int
  public var pcExamples: Int
  public var probeEpochs: Int
  /// Clamped to the training split.
  public var probeTrainExamples: Int
  public var probeTestExamples: Int?
  public var deletionTestExamples: Int?
  public var populationTestExamples: Int?
  /// A model whose test accuracy is below chance + this margin is flagged near chance.
  public var nearChanceMargin: Double
  /// Architectures whose mean test accuracies differ by at most this are compared as
  /// populations.
  public var similarAccuracy: Double
  /// Keys of the declaration this version does not know (refused by validation).
  public var unknownKeys: [String]

  public init(dataset: String, depths: [Int]) {
    self.dataset = dataset
    self.depths = depths
    widths = [1]
    fractions = [1]
    seeds = [0]
    plainWidths = []
    epochs = 30
    batchSize = 128
    lr = 0.05
    weightDecay = 5e-4
    warmupEpochs = 0
    augment = true
    stratified = false
    testExamples = nil
    snapshotEpochs = []
    analyses = AnalysisKind.allCases
    heatmapExamples = 2560
    heatmapBatch = 256
    heatmapPasses = 1
    bootstrap = 0
    pcExamples = 1024
    probeEpochs = 10
    probeTrainExamples = 5000
    probeTestExamples = nil
    deletionTestExamples = nil
    populationTestExamples = nil
    nearChanceMargin = 0.05
    similarAccuracy = 0.02
    unknownKeys = []
  }

  enum CodingKeys: String, CodingKey, CaseIterable {
    case dataset, depths, widths, fractions, seeds, plainWidths = "plain_widths", epochs,
         batchSize = "batch_size", lr, weightDecay = "weight_decay",
         warmupEpochs = "warmup_epochs", augment, stratified, testExamples = "test_examples",
         snapshotEpochs = "snapshot_epochs", analyses, heatmapExamples = "heatmap_examples",
         heatmapBatch = "heatmap_batch", heatmapPasses = "heatmap_passes", bootstrap,
         pcExamples = "pc_examples", probeEpochs = "probe_epochs",
         probeTrainExamples = "probe_train_examples", probeTestExamples = "probe_test_examples",
         deletionTestExamples = "deletion_test_examples",
         populationTestExamples = "population_test_examples",
         nearChanceMargin = "near_chance_margin", similarAccuracy = "similar_accuracy"
  }

  /// Every key a declaration may hold.
  public static var keys: [String] { CodingKeys.allCases.map(\.rawValue) }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(dataset: try c.value(.dataset), depths: try c.value(.depths))
    widths = try c.value(.widths, default: widths)
    fractions = try c.value(.fractions, default: fractions)
    seeds = try c.value(.seeds, default: seeds)
    plainWidths = try c.value(.plainWidths, default: plainWidths)
    epochs = try c.value(.epochs, default: epochs)
    batchSize = try c.value(.batchSize, default: batchSize)
    lr = try c.value(.lr, default: lr)
    weightDecay = try c.value(.weightDecay, default: weightDecay)
    warmupEpochs = try c.value(.warmupEpochs, default: warmupEpochs)
    augment = try c.value(.augment, default: augment)
    stratified = try c.value(.stratified, default: stratified)
    testExamples = try c.ifPresent(.testExamples)
    snapshotEpochs = try c.value(.snapshotEpochs, default: snapshotEpochs)
    analyses = try c.value(.analyses, default: analyses)
    heatmapExamples = try c.value(.heatmapExamples, default: heatmapExamples)
    heatmapBatch = try c.value(.heatmapBatch, default: heatmapBatch)
    heatmapPasses = try c.value(.heatmapPasses, default: heatmapPasses)
    bootstrap = try c.value(.bootstrap, default: bootstrap)
    pcExamples = try c.value(.pcExamples, default: pcExamples)
    probeEpochs = try c.value(.probeEpochs, default: probeEpochs)
    probeTrainExamples = try c.value(.probeTrainExamples, default: probeTrainExamples)
    probeTestExamples = try c.ifPresent(.probeTestExamples)
    deletionTestExamples = try c.ifPresent(.deletionTestExamples)
    populationTestExamples = try c.ifPresent(.populationTestExamples)
    nearChanceMargin = try c.value(.nearChanceMargin, default: nearChanceMargin)
    similarAccuracy = try c.value(.similarAccuracy, default: similarAccuracy)
    let known = Set(CodingKeys.allCases.map(\.rawValue))
    unknownKeys = try decoder.container(keyedBy: AnyKey.self).allKeys.map(\.stringValue)
      .filter { !known.contains($0) }.sorted()
  }

  public func encode(to encoder: Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(dataset, forKey: .dataset)
    try c.encode(depths, forKey: .depths)
    try c.encode(widths, forKey: .widths)
    try c.encode(fractions, forKey: .fractions)
    try c.encode(seeds, forKey: .seeds)
    try c.encode(plainWidths, forKey: .plainWidths)
    try c.encode(epochs, forKey: .epochs)
    try c.encode(batchSize, forKey: .batchSize)
    try c.encode(lr, forKey: .lr)
    try c.encode(weightDecay, forKey: .weightDecay)
    try c.encode(warmupEpochs, forKey: .warmupEpochs)
    try c.encode(augment, forKey: .augment)
    try c.encode(stratified, forKey: .stratified)
    try c.encodeIfPresent(testExamples, forKey: .testExamples)
    try c.encode(snapshotEpochs, forKey: .snapshotEpochs)
    try c.encode(analyses, forKey: .analyses)
    try c.encode(heatmapExamples, forKey: .heatmapExamples)
    try c.encode(heatmapBatch, forKey: .heatmapBatch)
    try c.encode(heatmapPasses, forKey: .heatmapPasses)
    try c.encode(bootstrap, forKey: .bootstrap)
    try c.encode(pcExamples, forKey: .pcExamples)
    try c.encode(probeEpochs, forKey: .probeEpochs)
    try c.encode(probeTrainExamples, forKey: .probeTrainExamples)
    try c.encodeIfPresent(probeTestExamples, forKey: .probeTestExamples)
    try c.encodeIfPresent(deletionTestExamples, forKey: .deletionTestExamples)
    try c.encodeIfPresent(populationTestExamples, forKey: .populationTestExamples)
    try c.encode(nearChanceMargin, forKey: .nearChanceMargin)
    try c.encode(similarAccuracy, forKey: .similarAccuracy)
  }
}
