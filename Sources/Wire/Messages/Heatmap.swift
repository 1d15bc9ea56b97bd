// SPEC.md section 7: HEATMAP (0x000C), minibatch CKA of one model or two.

/// `HEATMAP`: rows are representations of `model`, columns of `other` (or `model` again).
public struct HeatmapRequest: Codable, Hashable, Sendable {
  public enum Estimator: String, WireStringEnum {
    case unbiased, biased, rbf
  }

  public var model: String
  /// A second model: a cross-model heatmap.
  public var other: String?
  /// Rows.
  public var layers: LayerSelector
  /// Columns; nil: the same as `layers`.
  public var otherLayers: LayerSelector?
  public var estimator: Estimator
  public var removePC1: Bool
  public var examples: ExampleSelection
  public var batchSize: Int
  public var passes: Int
  /// Batch order.
  public var seed: UInt64
  /// Bootstrap replicates for standard errors (0: none).
  public var bootstrap: Int
  public var bootstrapSeed: UInt64
  /// Keep a short last batch (its ids padded with -1).
  public var keepIncomplete: Bool
  /// Block-structure detection; nil: the analysis defaults (docs/ANALYSIS.md).
  public var blockThreshold: Double?
  public var blockMinBlocks: Int?
  public var blockMinContrast: Double?
  /// Cached batches instead of `examples` (foreign models; SPEC.md "Foreign models"): client
  /// batch keys or dataset references `DATASET:SPLIT[a:b]`. When given, `examples`,
  /// `batch_size`, `passes`, `seed` and `keep_incomplete` are not used (an encoder that writes
  /// every key still sends them).
  public var batches: [String]?
  /// `model` (`other`) names a foreign model (true) or a stored one (false); nil: a stored
  /// model of that name if there is one, else a foreign one.
  public var foreign: Bool?
  public var otherForeign: Bool?

  /// The spec's defaults.
  public init(model: String, other: String? = nil, layers: LayerSelector = .all,
              otherLayers: LayerSelector? = nil, estimator: Estimator = .unbiased,
              removePC1: Bool = false,
              examples: ExampleSelection = ExampleSelection(split: .test, count: 2560),
              batchSize: Int = 256, passes: Int = 10, seed: UInt64 = 0, bootstrap: Int = 0,
              bootstrapSeed: UInt64 = 0, keepIncomplete: Bool = false,
              blockThreshold: Double? = nil, blockMinBlocks: Int? = nil,
              blockMinContrast: Double? = nil, batches: [String]? = nil, foreign: Bool? = nil,
              otherForeign: Bool? = nil) {
    self.model = model
    self.other = other
    self.layers = layers
    self.otherLayers = otherLayers
    self.estimator = estimator
    self.removePC1 = removePC1
    self.examples = examples
    self.batchSize = batchSize
    self.passes = passes
    self.seed = seed
    self.bootstrap = bootstrap
    self.bootstrapSeed = bootstrapSeed
    self.keepIncomplete = keepIncomplete
    self.blockThreshold = blockThreshold
    self.blockMinBlocks = blockMinBlocks
    self.blockMinContrast = blockMinContrast
    self.batches = batches
    self.foreign = foreign
    self.otherForeign = otherForeign
  }

  /// The columns' selector.
  public var columnLayers: LayerSelector { otherLayers ?? layers }

  enum CodingKeys: String, CodingKey {
    case model, other, layers, otherLayers = "other_layers", estimator, removePC1 = "remove_pc1",
         examples, batchSize = "batch_size", passes, seed, bootstrap,
         bootstrapSeed = "bootstrap_seed", keepIncomplete = "keep_incomplete",
         blockThreshold = "block_threshold", blockMinBlocks = "block_min_blocks",
         blockMinContrast = "block_min_contrast", batches, foreign, otherForeign = "other_foreign"
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(model: try c.value(.model))
    other = try c.ifPresent(.other)
    layers = try c.value(.layers, default: layers)
    otherLayers = try c.ifPresent(.otherLayers)
    estimator = try c.value(.estimator, default: estimator)
    removePC1 = try c.value(.removePC1, default: removePC1)
    examples = try c.value(.examples, default: examples)
    batchSize = try c.value(.batchSize, default: batchSize)
    passes = try c.value(.passes, default: passes)
    seed = try c.value(.seed, default: seed)
    bootstrap = try c.value(.bootstrap, default: bootstrap)
    bootstrapSeed = try c.value(.bootstrapSeed, default: bootstrapSeed)
    keepIncomplete = try c.value(.keepIncomplete, default: keepIncomplete)
    blockThreshold = try c.ifPresent(.blockThreshold)
    blockMinBlocks = try c.ifPresent(.blockMinBlocks)
    blockMinContrast = try c.ifPresent(.blockMinContrast)
    batches = try c.ifPresent(.batches)
    foreign = try c.ifPresent(.foreign)
    otherForeign = try c.ifPresent(.otherForeign)
  }
}

/// `HEATMAP_OK`'s doc. Its tensors: `cka: f64[R, C]` (an undefined cell holds 0),
/// `defined: u8[R, C]`, `standard_errors: f64[R, C]` (when `bootstrap > 0`) and
/// `batch_example_ids: i32[B, batch_size]`.
public struct HeatmapResponse: Codable, Hashable, Sendable {
  public static let ckaTensor = "cka"
  public static let definedTensor = "defined"
  public static let standardErrorsTensor = "standard_errors"
  public static let batchExampleIDsTensor = "batch_example_ids"

  /// Why some cells are undefined, or other caveats.
  public struct Diagnostic: Codable, Hashable, Sendable {
    public var kind: String
    public var message: String
    public var representations: [String]

    public init(kind: String, message: String, representations: [String]) {
      self.kind = kind
      self.message = message
      self.representations = representations
    }

    enum CodingKeys: String, CodingKey { case kind, message, representations }

    public init(from decoder: Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      self.init(kind: try c.value(.kind), message: try c.value(.message),
                representations: try c.value(.representations))
    }
  }

  /// What the heatmap was computed from.
  public struct Provenance: Codable, Hashable, Sendable {
    public var model: String
    public var modelFingerprint: String
    /// Cross-model heatmaps only.
    public var other: String?
    public var otherFingerprint: String?
    public var split: ExampleSelection.Split
    public var batchSize: Int
    public var passes: Int
    public var seed: UInt64
    public var bootstrap: Int
    public var bootstrapSeed: UInt64
    /// Examples left out of the incomplete last batch.
    public var droppedExamples: Int
    /// Heatmaps over cached batches (the request's `batches`): their names, in order.
    public var batches: [String]?
    /// Set (true) when `model` (`other`) is a foreign model; absent otherwise.
    public var foreign: Bool?
    public var otherForeign: Bool?

    public init(model: String, modelFingerprint: String, other: String? = nil,
                otherFingerprint: String? = nil, split: ExampleSelection.Split, batchSize: Int,
                passes: Int, seed: UInt64, bootstrap: Int, bootstrapSeed: UInt64,
                droppedExamples: Int, batches: [String]? = nil, foreign: Bool? = nil,
                otherForeign: Bool? = nil) {
      self.model = model
      self.modelFingerprint = modelFingerprint
      self.other = other
      self.otherFingerprint = otherFingerprint
      self.split = split
      self.batchSize = batchSize
      self.passes = passes
      self.seed = seed
      self.bootstrap = bootstrap
      self.bootstrapSeed = bootstrapSeed
      self.droppedExamples = droppedExamples
      self.batches = batches
      self.foreign = foreign
      self.otherForeign = otherForeign
    }

    enum CodingKeys: String, CodingKey {
      case model, modelFingerprint = "model_fingerprint", other,
           otherFingerprint = "other_fingerprint", split, batchSize = "batch_size", passes, seed,
           bootstrap, bootstrapSeed = "bootstrap_seed", droppedExamples = "dropped_examples",
           batches, foreign, otherForeign = "other_foreign"
    }

    public init(from decoder: Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      self.init(model: try c.value(.model), modelFingerprint: try c.value(.modelFingerprint),
                other: try c.ifPresent(.other), otherFingerprint: try c.ifPresent(.otherFingerprint),
                split: try c.value(.split), batchSize: try c.value(.batchSize),
                passes: try c.value(.passes), seed: try c.value(.seed),
                bootstrap: try c.value(.bootstrap), bootstrapSeed: try c.value(.bootstrapSeed),
                droppedExamples: try c.value(.droppedExamples), batches: try c.ifPresent(.batches),
                foreign: try c.ifPresent(.foreign), otherForeign: try c.ifPresent(.otherForeign))
    }
  }

  /// Work done.
  public struct Stats: Codable, Hashable, Sendable {
    public var batches: Int
    public var forwardPasses: Int
    public var gramsComputed: Int
    public var formsDerived: Int
    public var cacheHits: Int
    public var seconds: Double

    public init(batches: Int, forwardPasses: Int, gramsComputed: Int, formsDerived: Int,
                cacheHits: Int, seconds: Double) {
      self.batches = batches
      self.forwardPasses = forwardPasses
      self.gramsComputed = gramsComputed
      self.formsDerived = formsDerived
      self.cacheHits = cacheHits
      self.seconds = seconds
    }

    enum CodingKeys: String, CodingKey {
      case batches, forwardPasses = "forward_passes", gramsComputed = "grams_computed",
           formsDerived = "forms_derived", cacheHits = "cache_hits", seconds
    }

    public init(from decoder: Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      self.init(batches: try c.value(.batches), forwardPasses: try c.value(.forwardPasses),
                gramsComputed: try c.value(.gramsComputed), formsDerived: try c.value(.formsDerived),
                cacheHits: try c.value(.cacheHits), seconds: try c.value(.seconds))
    }
  }

  /// Block-structure detection on a within-model heatmap.
  public struct BlockStructure: Codable, Hashable, Sendable {
    /// Rows `first...last` (indices into `row_names`) whose mean pairwise CKA is at least the
    /// threshold.
    public struct Range: Codable, Hashable, Sendable {
      public var first: Int
      public var last: Int
      public var blocksSpanned: Int
      public var meanCka: Double
      public var minCka: Double
      /// Mean CKA between the range and the block representations outside it (nil: none).
      public var outsideCka: Double?
      /// meanCka - outsideCka.
      public var contrast: Double?

      public init(first: Int, last: Int, blocksSpanned: Int, meanCka: Double, minCka: Double,
                  outsideCka: Double? = nil, contrast: Double? = nil) {
        self.first = first
        self.last = last
        self.blocksSpanned = blocksSpanned
        self.meanCka = meanCka
        self.minCka = minCka
        self.outsideCka = outsideCka
        self.contrast = contrast
      }

      enum CodingKeys: String, CodingKey {
        case first, last, blocksSpanned = "blocks_spanned", meanCka = "mean_cka", minCka = "min_cka",
             outsideCka = "outside_cka", contrast
      }

      public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(first: try c.value(.first), last: try c.value(.last),
                  blocksSpanned: try c.value(.blocksSpanned), meanCka: try c.value(.meanCka),
                  minCka: try c.value(.minCka), outsideCka: try c.ifPresent(.outsideCka),
                  contrast: try c.ifPresent(.contrast))
      }
    }

    public var threshold: Double
    public var minBlocks: Int
    /// Absent in answers of servers before 2026-12-05 (no contrast condition then).
    public var minContrast: Double?
    public var blockScore: Double
    public var hasBlockStructure: Bool
    public var ranges: [Range]

    public init(threshold: Double, minBlocks: Int, minContrast: Double? = nil, blockScore: Double,
                hasBlockStructure: Bool, ranges: [Range]) {
      self.threshold = threshold
      self.minBlocks = minBlocks
      self.minContrast = minContrast
      self.blockScore = blockScore
      self.hasBlockStructure = hasBlockStructure
      self.ranges = ranges
    }

    enum CodingKeys: String, CodingKey {
      case threshold, minBlocks = "min_blocks", minContrast = "min_contrast", blockScore = "block_score",
           hasBlockStructure = "has_block_structure", ranges
    }

    public init(from decoder: Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      self.init(threshold: try c.value(.threshold), minBlocks: try c.value(.minBlocks),
                minContrast: try c.ifPresent(.minContrast), blockScore: try c.value(.blockScore),
                hasBlockStructure: try c.value(.hasBlockStructure), ranges: try c.value(.ranges))
    }
  }

  public var rowNames: [String]
  public var columnNames: [String]
  public var estimator: HeatmapRequest.Estimator
  public var removePC1: Bool
  public var diagnostics: [Diagnostic]
  public var provenance: Provenance
  public var stats: Stats
  /// Within-model heatmaps only.
  public var blockStructure: BlockStructure?

  public init(rowNames: [String], columnNames: [String], estimator: HeatmapRequest.Estimator,
              removePC1: Bool, diagnostics: [Diagnostic], provenance: Provenance, stats: Stats,
              blockStructure: BlockStructure? = nil) {
    self.rowNames = rowNames
    self.columnNames = columnNames
    self.estimator = estimator
    self.removePC1 = removePC1
    self.diagnostics = diagnostics
    self.provenance = provenance
    self.stats = stats
    self.blockStructure = blockStructure
  }

  enum CodingKeys: String, CodingKey {
    case rowNames = "row_names", columnNames = "column_names", estimator,
         removePC1 = "remove_pc1", diagnostics, provenance, stats,
         blockStructure = "block_structure"
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(rowNames: try c.value(.rowNames), columnNames: try c.value(.columnNames),
              estimator: try c.value(.estimator), removePC1: try c.value(.removePC1),
              diagnostics: try c.value(.diagnostics), provenance: try c.value(.provenance),
              stats: try c.value(.stats), blockStructure: try c.ifPresent(.blockStructure))
  }
}
