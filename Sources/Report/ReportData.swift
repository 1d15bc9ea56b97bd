// What a study report page shows: the data embedded in it as one JSON object (keys in
// snake_case: `ReportData.encoded()` converts). Built from a study's results (Wire documents)
// by `StudyReportBuilder`; drawn by the page's script (ReportScript.swift). Full-precision
// values stay in the .npy/.csv files the page links to; the page carries heatmaps quantised
// for display.

/// The whole page's data.
public struct ReportData: Codable, Sendable, Equatable {
  public var format = 1
  public var study: StudySummary
  /// RFC 3339 UTC.
  public var generated: String
  /// Representation name lists, shared by heatmaps of the same architecture.
  public var nameLists: [String: NameList]
  /// One entry per model of the grid, in grid order (also the ones not yet trained).
  public var models: [ModelEntry]
  /// Cross-model heatmaps: rows model_a's representations, columns model_b's.
  public var crossSeed: [CrossHeatmap]
  public var crossArchitecture: [CrossHeatmap]
  /// Output comparisons between architecture groups (each with its seed-vs-seed null).
  public var populations: [PopulationComparison]
  /// Caveats for the whole study (an analysis that could not run, missing results).
  public var notes: [String]

  public init(study: StudySummary, generated: String, nameLists: [String: NameList],
              models: [ModelEntry], crossSeed: [CrossHeatmap], crossArchitecture: [CrossHeatmap],
              populations: [PopulationComparison], notes: [String]) {
    self.study = study
    self.generated = generated
    self.nameLists = nameLists
    self.models = models
    self.crossSeed = crossSeed
    self.crossArchitecture = crossArchitecture
    self.populations = populations
    self.notes = notes
  }
}

/// The study's declaration as the report needs it.
public struct StudySummary: Codable, Sendable, Equatable {
  public var name: String
  public var dataset: String
  public var classes: Int
  /// The grid's axes, sorted ascending (the sliders' stops).
  public var depths: [Int]
  public var widths: [Double]
  public var fractions: [Double]
  public var seeds: [UInt64]
  /// Widths trained as plain (non-residual) nets too; empty: no plain models.
  public var plainWidths: [Double]
  public var epochs: Int
  /// Epochs with a kept snapshot (heatmap and PC1 per snapshot); empty: none.
  public var snapshotEpochs: [Int]
  /// The declaration as the daemon stored it (JSON text), shown verbatim.
  public var declaration: String

  public init(name: String, dataset: String, classes: Int, depths: [Int], widths: [Double],
              fractions: [Double], seeds: [UInt64], plainWidths: [Double], epochs: Int,
              snapshotEpochs: [Int], declaration: String) {
    self.name = name
    self.dataset = dataset
    self.classes = classes
    self.depths = depths
    self.widths = widths
    self.fractions = fractions
    self.seeds = seeds
    self.plainWidths = plainWidths
    self.epochs = epochs
    self.snapshotEpochs = snapshotEpochs
    self.declaration = declaration
  }
}

/// Representation names from input to output, with the stage of each: 0 for `input` and the
/// stem, 1...3 for the blocks of stages 1-3, 4 for `pool`, `logits`, `probs`.
public struct NameList: Codable, Sendable, Equatable {
  public var names: [String]
  public var stages: [Int]
  public init(names: [String], stages: [Int]) {
    self.names = names
    self.stages = stages
  }
}

/// A heatmap quantised for display. `values` is base64 of `rows * columns` little-endian
/// unsigned integers of `bits` (8 or 16) bits, row-major; code `2^bits - 1` is an undefined
/// cell; a defined cell's value is `lo + code * (hi - lo) / (2^bits - 2)`.
/// `standard_errors` (when computed) is base64 of `rows * columns` u8: `code * se_max / 254`,
/// 255 undefined.
public struct QuantisedHeatmap: Codable, Sendable, Equatable {
  /// Keys into `ReportData.nameLists`.
  public var rowNames: String
  public var columnNames: String
  public var rows: Int
  public var columns: Int
  public var bits: Int
  public var lo: Double
  public var hi: Double
  public var values: String
  public var standardErrors: String?
  public var seMax: Double?
  /// Full-precision copies beside the page, relative paths (`data/NAME.npy`).
  public var npy: String?
  public var csv: String?

  public init(rowNames: String, columnNames: String, rows: Int, columns: Int, bits: Int,
              lo: Double, hi: Double, values: String, standardErrors: String? = nil,
              seMax: Double? = nil, npy: String? = nil, csv: String? = nil) {
    self.rowNames = rowNames
    self.columnNames = columnNames
    self.rows = rows
    self.columns = columns
    self.bits = bits
    self.lo = lo
    self.hi = hi
    self.values = values
    self.standardErrors = standardErrors
    self.seMax = seMax
    self.npy = npy
    self.csv = csv
  }
}

/// One block-structure range, by representation index into the heatmap's names.
public struct BlockRange: Codable, Sendable, Equatable {
  public var first: Int
  public var last: Int
  public var firstName: String
  public var lastName: String
  public var blocksSpanned: Int
  public var meanCka: Double
  public var contrast: Double?
  public init(first: Int, last: Int, firstName: String, lastName: String, blocksSpanned: Int,
              meanCka: Double, contrast: Double?) {
    self.first = first
    self.last = last
    self.firstName = firstName
    self.lastName = lastName
    self.blocksSpanned = blocksSpanned
    self.meanCka = meanCka
    self.contrast = contrast
  }
}

/// One model of the grid and every within-model result the study has for it.
public struct ModelEntry: Codable, Sendable, Equatable {
  /// The stored model's name (content-addressed by its recipe).
  public var model: String
  public var depth: Int
  public var width: Double
  public var fraction: Double
  public var seed: UInt64
  public var plain: Bool
  /// "done", "training", "queued", "analysing", "failed", "cancelled", "interrupted".
  public var state: String
  /// nil until trained.
  public var testAccuracy: Double?
  /// Test accuracy within a margin of chance (1/classes): its heatmap's "blocks" are not the
  /// paper's block structure (docs/ANALYSIS.md, "What counts as reproduced at laptop scale").
  public var nearChance: Bool
  public var epochsTrained: Int
  /// The block-structure verdict of the within-model heatmap.
  public var hasBlockStructure: Bool?
  public var blockScore: Double?
  public var blockRanges: [BlockRange]
  /// Mean PC1 variance fraction over the representations inside / outside the block ranges.
  public var pc1Inside: Double?
  public var pc1Outside: Double?
  public var heatmap: QuantisedHeatmap?
  public var heatmapNoPC1: QuantisedHeatmap?
  /// PC1 variance fraction per representation of `pcNames` (nil: constant representation).
  public var pcNames: String?
  public var pc1Fraction: [Double?]?
  public var pc1Cosine: QuantisedHeatmap?
  public var probes: [ProbePoint]?
  public var deletion: Deletion?
  public var snapshots: [Snapshot]
  /// Caveats for this model (an analysis that failed, near-chance accuracy).
  public var notes: [String]

  public init(model: String, depth: Int, width: Double, fraction: Double, seed: UInt64,
              plain: Bool, state: String) {
    self.model = model
    self.depth = depth
    self.width = width
    self.fraction = fraction
    self.seed = seed
    self.plain = plain
    self.state = state
    self.nearChance = false
    self.epochsTrained = 0
    self.blockRanges = []
    self.snapshots = []
    self.notes = []
  }
}

/// A linear probe's test accuracy at one representation (`index` into the heatmap's names).
public struct ProbePoint: Codable, Sendable, Equatable {
  public var name: String
  public var index: Int
  public var testAccuracy: Double
  public init(name: String, index: Int, testAccuracy: Double) {
    self.name = name
    self.index = index
    self.testAccuracy = testAccuracy
  }
}

/// Block deletion without retraining.
public struct Deletion: Codable, Sendable, Equatable {
  public struct Block: Codable, Sendable, Equatable {
    public var block: String
    public var stage: Int
    public var index: Int
    public var removable: Bool
    public var accuracy: Double?
    public init(block: String, stage: Int, index: Int, removable: Bool, accuracy: Double?) {
      self.block = block
      self.stage = stage
      self.index = index
      self.removable = removable
      self.accuracy = accuracy
    }
  }
  /// Accuracy with the last `removed` blocks of `stage` deleted (1...blocks of the stage that
  /// can go).
  public struct StageTail: Codable, Sendable, Equatable {
    public var stage: Int
    public var removed: Int
    public var accuracy: Double
    public init(stage: Int, removed: Int, accuracy: Double) {
      self.stage = stage
      self.removed = removed
      self.accuracy = accuracy
    }
  }
  public var intactAccuracy: Double
  public var blocks: [Block]
  public var stageTails: [StageTail]
  public init(intactAccuracy: Double, blocks: [Block], stageTails: [StageTail]) {
    self.intactAccuracy = intactAccuracy
    self.blocks = blocks
    self.stageTails = stageTails
  }
}

/// The model as it was after `epoch` epochs.
public struct Snapshot: Codable, Sendable, Equatable {
  public var epoch: Int
  public var testAccuracy: Double?
  public var hasBlockStructure: Bool?
  public var heatmap: QuantisedHeatmap?
  public var pc1Fraction: [Double?]?
  public init(epoch: Int) { self.epoch = epoch }
}

/// A heatmap between two models (cross-seed: the same architecture; cross-architecture: grid
/// neighbours that differ along `axis`).
public struct CrossHeatmap: Codable, Sendable, Equatable {
  public var modelA: String
  public var modelB: String
  /// "seed", "depth", "width", "fraction" or "plain".
  public var axis: String
  public var heatmap: QuantisedHeatmap
  public init(modelA: String, modelB: String, axis: String, heatmap: QuantisedHeatmap) {
    self.modelA = modelA
    self.modelB = modelB
    self.axis = axis
    self.heatmap = heatmap
  }
}

/// Group A against group B (two architectures of similar accuracy, every seed of each), and
/// the null: two disjoint halves of one architecture's seeds.
public struct PopulationComparison: Codable, Sendable, Equatable {
  public struct Side: Codable, Sendable, Equatable {
    /// A label such as "R44 k1 f0.03" and its models.
    public var label: String
    public var models: [String]
    public var meanAccuracy: Double
    public init(label: String, models: [String], meanAccuracy: Double) {
      self.label = label
      self.models = models
      self.meanAccuracy = meanAccuracy
    }
  }
  /// Per-example accuracies as base64 u8: `round(accuracy * 254)`, one per test example (the
  /// same examples, in order, for x and y).
  public struct Scatter: Codable, Sendable, Equatable {
    public var x: Side
    public var y: Side
    public var examples: Int
    public var xAccuracy: String
    public var yAccuracy: String
    /// Fraction of examples whose difference is significant (BH-adjusted).
    public var significantFraction: Double
    public init(x: Side, y: Side, examples: Int, xAccuracy: String, yAccuracy: String,
                significantFraction: Double) {
      self.x = x
      self.y = y
      self.examples = examples
      self.xAccuracy = xAccuracy
      self.yAccuracy = yAccuracy
      self.significantFraction = significantFraction
    }
  }
  /// Per-class mean accuracy of each side.
  public struct ClassDifference: Codable, Sendable, Equatable {
    public var classIndex: Int
    public var accuracyA: Double
    public var accuracyB: Double
    public var nullAccuracyA: Double
    public var nullAccuracyB: Double
    public var significant: Bool
    public init(classIndex: Int, accuracyA: Double, accuracyB: Double, nullAccuracyA: Double,
                nullAccuracyB: Double, significant: Bool) {
      self.classIndex = classIndex
      self.accuracyA = accuracyA
      self.accuracyB = accuracyB
      self.nullAccuracyA = nullAccuracyA
      self.nullAccuracyB = nullAccuracyB
      self.significant = significant
    }
  }
  /// "R14 k2 vs R44 k1".
  public var title: String
  public var comparison: Scatter
  public var null: Scatter
  public var classes: [ClassDifference]
  public var notes: [String]
  public init(title: String, comparison: Scatter, null: Scatter, classes: [ClassDifference],
              notes: [String]) {
    self.title = title
    self.comparison = comparison
    self.null = null
    self.classes = classes
    self.notes = notes
  }
}
