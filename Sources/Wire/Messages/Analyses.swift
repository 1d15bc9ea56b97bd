// SPEC.md section 7: PC (0x000D), PROBE (0x000E), DELETE_BLOCKS (0x000F), EXPORT (0x0012).

/// `PC`: first principal components of representations.
public struct PCRequest: Codable, Hashable, Sendable {
  public enum Method: String, WireStringEnum {
    case auto, gram, svd
  }

  public var model: String
  public var layers: LayerSelector
  public var examples: ExampleSelection
  public var method: Method
  /// Also send the PC1 directions (`directions: f32[L, n]`).
  public var directions: Bool

  /// The spec's defaults.
  public init(model: String, layers: LayerSelector = .all,
              examples: ExampleSelection = ExampleSelection(split: .test, count: 1024),
              method: Method = .auto, directions: Bool = false) {
    self.model = model
    self.layers = layers
    self.examples = examples
    self.method = method
    self.directions = directions
  }

  enum CodingKeys: String, CodingKey { case model, layers, examples, method, directions }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(model: try c.value(.model))
    layers = try c.value(.layers, default: layers)
    examples = try c.value(.examples, default: examples)
    method = try c.value(.method, default: method)
    directions = try c.value(.directions, default: directions)
  }
}

/// `PC_OK`'s doc. Its tensors: `cosine: f64[L, L]` (|cosine| of the PC1 directions),
/// `example_ids: i32[n]` and, when asked for, `directions: f32[L, n]` (unit vectors).
public struct PCResponse: Codable, Hashable, Sendable {
  public static let cosineTensor = "cosine"
  public static let exampleIDsTensor = "example_ids"
  public static let directionsTensor = "directions"

  public struct Layer: Codable, Hashable, Sendable {
    public var name: String
    public var features: Int
    /// nil (sent as JSON null) when the representation is constant.
    public var pc1Fraction: Double?
    public var totalVariance: Double
    /// The method used (`gram` or `svd`).
    public var method: String
    public var note: String?

    public init(name: String, features: Int, pc1Fraction: Double?, totalVariance: Double,
                method: String, note: String? = nil) {
      self.name = name
      self.features = features
      self.pc1Fraction = pc1Fraction
      self.totalVariance = totalVariance
      self.method = method
      self.note = note
    }

    enum CodingKeys: String, CodingKey {
      case name, features, pc1Fraction = "pc1_fraction", totalVariance = "total_variance",
           method, note
    }

    public init(from decoder: Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      self.init(name: try c.value(.name), features: try c.value(.features),
                pc1Fraction: try c.ifPresent(.pc1Fraction),
                totalVariance: try c.value(.totalVariance), method: try c.value(.method),
                note: try c.ifPresent(.note))
    }

    public func encode(to encoder: Encoder) throws {
      var c = encoder.container(keyedBy: CodingKeys.self)
      try c.encode(name, forKey: .name)
      try c.encode(features, forKey: .features)
      // The key is always present: null says "constant", absence would say nothing.
      try c.encode(pc1Fraction, forKey: .pc1Fraction)
      try c.encode(totalVariance, forKey: .totalVariance)
      try c.encode(method, forKey: .method)
      try c.encodeIfPresent(note, forKey: .note)
    }
  }

  public var layers: [Layer]

  public init(layers: [Layer]) { self.layers = layers }

  enum CodingKeys: String, CodingKey { case layers }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(layers: try c.value(.layers))
  }
}

/// `PROBE`: linear probes on representations.
public struct ProbeRequest: Codable, Hashable, Sendable {
  public var model: String
  /// Representation names; nil: every `bn2` and `add`.
  public var layers: [String]?
  public var epochs: Int
  public var batchSize: Int
  public var lr: Double
  public var pool2x2: Bool
  public var seed: UInt64
  /// nil: all.
  public var trainExamples: Int?
  /// nil: all.
  public var testExamples: Int?

  /// The spec's defaults.
  public init(model: String, layers: [String]? = nil, epochs: Int = 10, batchSize: Int = 256,
              lr: Double = 0.01, pool2x2: Bool = false, seed: UInt64 = 0,
              trainExamples: Int? = nil, testExamples: Int? = nil) {
    self.model = model
    self.layers = layers
    self.epochs = epochs
    self.batchSize = batchSize
    self.lr = lr
    self.pool2x2 = pool2x2
    self.seed = seed
    self.trainExamples = trainExamples
    self.testExamples = testExamples
  }

  enum CodingKeys: String, CodingKey {
    case model, layers, epochs, batchSize = "batch_size", lr, pool2x2, seed,
         trainExamples = "train_examples", testExamples = "test_examples"
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(model: try c.value(.model))
    layers = try c.ifPresent(.layers)
    epochs = try c.value(.epochs, default: epochs)
    batchSize = try c.value(.batchSize, default: batchSize)
    lr = try c.value(.lr, default: lr)
    pool2x2 = try c.value(.pool2x2, default: pool2x2)
    seed = try c.value(.seed, default: seed)
    trainExamples = try c.ifPresent(.trainExamples)
    testExamples = try c.ifPresent(.testExamples)
  }
}

/// `PROBE_OK`.
public struct ProbeResponse: Codable, Hashable, Sendable {
  public struct Layer: Codable, Hashable, Sendable {
    public var name: String
    public var kind: String
    public var block: String?
    public var features: Int
    public var constantFeatures: Int
    public var trainAccuracy: Double
    public var trainLoss: Double
    public var testAccuracy: Double

    public init(name: String, kind: String, block: String? = nil, features: Int,
                constantFeatures: Int, trainAccuracy: Double, trainLoss: Double,
                testAccuracy: Double) {
      self.name = name
      self.kind = kind
      self.block = block
      self.features = features
      self.constantFeatures = constantFeatures
      self.trainAccuracy = trainAccuracy
      self.trainLoss = trainLoss
      self.testAccuracy = testAccuracy
    }

    enum CodingKeys: String, CodingKey {
      case name, kind, block, features, constantFeatures = "constant_features",
           trainAccuracy = "train_accuracy", trainLoss = "train_loss",
           testAccuracy = "test_accuracy"
    }

    public init(from decoder: Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      self.init(name: try c.value(.name), kind: try c.value(.kind), block: try c.ifPresent(.block),
                features: try c.value(.features), constantFeatures: try c.value(.constantFeatures),
                trainAccuracy: try c.value(.trainAccuracy), trainLoss: try c.value(.trainLoss),
                testAccuracy: try c.value(.testAccuracy))
    }
  }

  public var layers: [Layer]
  public var trainCount: Int
  public var testCount: Int
  public var classes: Int

  public init(layers: [Layer], trainCount: Int, testCount: Int, classes: Int) {
    self.layers = layers
    self.trainCount = trainCount
    self.testCount = testCount
    self.classes = classes
  }

  enum CodingKeys: String, CodingKey {
    case layers, trainCount = "train_count", testCount = "test_count", classes
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(layers: try c.value(.layers), trainCount: try c.value(.trainCount),
              testCount: try c.value(.testCount), classes: try c.value(.classes))
  }
}

/// `DELETE_BLOCKS`: test accuracy with blocks bypassed, without retraining.
public struct DeleteBlocksRequest: Codable, Hashable, Sendable {
  public var model: String
  /// Block names; nil: all.
  public var blocks: [String]?
  /// nil: all.
  public var testExamples: Int?

  public init(model: String, blocks: [String]? = nil, testExamples: Int? = nil) {
    self.model = model
    self.blocks = blocks
    self.testExamples = testExamples
  }

  enum CodingKeys: String, CodingKey { case model, blocks, testExamples = "test_examples" }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(model: try c.value(.model), blocks: try c.ifPresent(.blocks),
              testExamples: try c.ifPresent(.testExamples))
  }
}

/// `DELETE_BLOCKS_OK`.
public struct DeleteBlocksResponse: Codable, Hashable, Sendable {
  /// One block bypassed.
  public struct Block: Codable, Hashable, Sendable {
    public var block: String
    public var stage: Int
    public var index: Int
    public var removable: Bool
    /// Why not removable (a projection block).
    public var reason: String?
    public var accuracy: Double?
    public var loss: Double?
    public var drop: Double?
    public var changedPredictions: Int?

    public init(block: String, stage: Int, index: Int, removable: Bool, reason: String? = nil,
                accuracy: Double? = nil, loss: Double? = nil, drop: Double? = nil,
                changedPredictions: Int? = nil) {
      self.block = block
      self.stage = stage
      self.index = index
      self.removable = removable
      self.reason = reason
      self.accuracy = accuracy
      self.loss = loss
      self.drop = drop
      self.changedPredictions = changedPredictions
    }

    enum CodingKeys: String, CodingKey {
      case block, stage, index, removable, reason, accuracy, loss, drop,
           changedPredictions = "changed_predictions"
    }

    public init(from decoder: Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      self.init(block: try c.value(.block), stage: try c.value(.stage), index: try c.value(.index),
                removable: try c.value(.removable), reason: try c.ifPresent(.reason),
                accuracy: try c.ifPresent(.accuracy), loss: try c.ifPresent(.loss),
                drop: try c.ifPresent(.drop), changedPredictions: try c.ifPresent(.changedPredictions))
    }
  }

  /// The last `removed` blocks of a stage bypassed together.
  public struct StageTail: Codable, Hashable, Sendable {
    public var stage: Int
    public var removed: Int
    public var blocks: [String]
    public var accuracy: Double
    public var loss: Double
    public var drop: Double
    public var changedPredictions: Int

    public init(stage: Int, removed: Int, blocks: [String], accuracy: Double, loss: Double,
                drop: Double, changedPredictions: Int) {
      self.stage = stage
      self.removed = removed
      self.blocks = blocks
      self.accuracy = accuracy
      self.loss = loss
      self.drop = drop
      self.changedPredictions = changedPredictions
    }

    enum CodingKeys: String, CodingKey {
      case stage, removed, blocks, accuracy, loss, drop, changedPredictions = "changed_predictions"
    }

    public init(from decoder: Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      self.init(stage: try c.value(.stage), removed: try c.value(.removed),
                blocks: try c.value(.blocks), accuracy: try c.value(.accuracy),
                loss: try c.value(.loss), drop: try c.value(.drop),
                changedPredictions: try c.value(.changedPredictions))
    }
  }

  public var intactAccuracy: Double
  public var intactLoss: Double
  public var testCount: Int
  public var blocks: [Block]
  public var stageTails: [StageTail]

  public init(intactAccuracy: Double, intactLoss: Double, testCount: Int, blocks: [Block],
              stageTails: [StageTail]) {
    self.intactAccuracy = intactAccuracy
    self.intactLoss = intactLoss
    self.testCount = testCount
    self.blocks = blocks
    self.stageTails = stageTails
  }

  enum CodingKeys: String, CodingKey {
    case intactAccuracy = "intact_accuracy", intactLoss = "intact_loss", testCount = "test_count",
         blocks, stageTails = "stage_tails"
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(intactAccuracy: try c.value(.intactAccuracy), intactLoss: try c.value(.intactLoss),
              testCount: try c.value(.testCount), blocks: try c.value(.blocks),
              stageTails: try c.value(.stageTails))
  }
}

/// `EXPORT`: activations of given examples at one representation.
public struct ExportRequest: Codable, Hashable, Sendable {
  /// At most this many examples per request.
  public static let maxExamples = 65536

  public var model: String
  public var representation: String
  /// `ids` or `count` (required: there is no default).
  public var examples: ExampleSelection

  public init(model: String, representation: String, examples: ExampleSelection) {
    self.model = model
    self.representation = representation
    self.examples = examples
  }

  enum CodingKeys: String, CodingKey { case model, representation, examples }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(model: try c.value(.model), representation: try c.value(.representation),
              examples: try c.value(.examples))
  }
}

/// `EXPORT_OK`'s doc. Its tensors: `activations: f32[n, c, h, w]`, `example_ids: i32[n]`,
/// `labels: i32[n]`.
public struct ExportResponse: Codable, Hashable, Sendable {
  public static let activationsTensor = "activations"
  public static let exampleIDsTensor = "example_ids"
  public static let labelsTensor = "labels"

  public var representation: String
  /// `"nchw"`.
  public var layout: String

  public init(representation: String, layout: String = "nchw") {
    self.representation = representation
    self.layout = layout
  }

  enum CodingKeys: String, CodingKey { case representation, layout }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(representation: try c.value(.representation), layout: try c.value(.layout))
  }
}
