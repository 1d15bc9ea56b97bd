// SPEC.md section 7: MODELS (0x0009), DESCRIBE (0x000A), DELETE_MODEL (0x000B).

/// `MODELS`: doc `{}`.
public typealias ModelsRequest = EmptyDoc
/// `DESCRIBE`: doc `model`.
public typealias DescribeRequest = ModelRequest
/// `DELETE_MODEL`: doc `model`.
public typealias DeleteModelRequest = ModelRequest

/// One stored model as `MODELS` lists it.
public struct ModelEntry: Codable, Hashable, Sendable {
  public enum State: String, WireStringEnum {
    case ready, training, corrupt
  }

  public var model: String
  public var state: State
  /// For a corrupt checkpoint: what failed.
  public var error: String?
  // The recipe keys: absent when a corrupt file does not tell them (SPEC.md section 7, MODELS).
  public var depth: Int?
  public var width: Double?
  public var plain: Bool?
  public var dataset: String?
  public var fraction: Double?
  public var seed: UInt64?
  /// Finished epochs.
  public var epoch: Int?
  public var epochs: Int?
  public var testAccuracy: Double?
  /// 16 hex digits.
  public var fingerprint: String?
  public var bytes: Int
  /// RFC 3339 UTC.
  public var modified: String

  public init(model: String, state: State, error: String? = nil, depth: Int? = nil,
              width: Double? = nil, plain: Bool? = nil, dataset: String? = nil,
              fraction: Double? = nil, seed: UInt64? = nil, epoch: Int? = nil, epochs: Int? = nil,
              testAccuracy: Double? = nil, fingerprint: String? = nil, bytes: Int,
              modified: String) {
    self.model = model
    self.state = state
    self.error = error
    self.depth = depth
    self.width = width
    self.plain = plain
    self.dataset = dataset
    self.fraction = fraction
    self.seed = seed
    self.epoch = epoch
    self.epochs = epochs
    self.testAccuracy = testAccuracy
    self.fingerprint = fingerprint
    self.bytes = bytes
    self.modified = modified
  }

  enum CodingKeys: String, CodingKey {
    case model, state, error, depth, width, plain, dataset, fraction, seed, epoch, epochs,
         testAccuracy = "test_accuracy", fingerprint, bytes, modified
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(model: try c.value(.model), state: try c.value(.state), error: try c.ifPresent(.error),
              depth: try c.ifPresent(.depth), width: try c.ifPresent(.width),
              plain: try c.ifPresent(.plain), dataset: try c.ifPresent(.dataset),
              fraction: try c.ifPresent(.fraction), seed: try c.ifPresent(.seed),
              epoch: try c.ifPresent(.epoch), epochs: try c.ifPresent(.epochs),
              testAccuracy: try c.ifPresent(.testAccuracy), fingerprint: try c.ifPresent(.fingerprint),
              bytes: try c.value(.bytes), modified: try c.value(.modified))
  }
}

/// `MODELS_OK`.
public struct ModelsResponse: Codable, Hashable, Sendable {
  public var models: [ModelEntry]

  public init(models: [ModelEntry]) { self.models = models }

  enum CodingKeys: String, CodingKey { case models }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(models: try c.value(.models))
  }
}

/// `DESCRIBE_OK`: the `MODELS` entry's keys plus the recipe, history and structure.
public struct DescribeResponse: Codable, Hashable, Sendable {
  /// One finished epoch.
  public struct Epoch: Codable, Hashable, Sendable {
    public var epoch: Int
    public var trainLoss: Double
    public var trainAccuracy: Double
    public var testLoss: Double
    public var testAccuracy: Double
    public var lr: Double
    public var seconds: Double

    public init(epoch: Int, trainLoss: Double, trainAccuracy: Double, testLoss: Double,
                testAccuracy: Double, lr: Double, seconds: Double) {
      self.epoch = epoch
      self.trainLoss = trainLoss
      self.trainAccuracy = trainAccuracy
      self.testLoss = testLoss
      self.testAccuracy = testAccuracy
      self.lr = lr
      self.seconds = seconds
    }

    enum CodingKeys: String, CodingKey {
      case epoch, trainLoss = "train_loss", trainAccuracy = "train_accuracy",
           testLoss = "test_loss", testAccuracy = "test_accuracy", lr, seconds
    }

    public init(from decoder: Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      self.init(epoch: try c.value(.epoch), trainLoss: try c.value(.trainLoss),
                trainAccuracy: try c.value(.trainAccuracy), testLoss: try c.value(.testLoss),
                testAccuracy: try c.value(.testAccuracy), lr: try c.value(.lr),
                seconds: try c.value(.seconds))
    }
  }

  /// A representation an analysis can select (`stem.conv`, `s1.b0.add`, `pool`, ...).
  public struct Representation: Codable, Hashable, Sendable {
    public var name: String
    public var kind: String
    /// The block it belongs to, if any.
    public var block: String?
    public var channels: Int
    public var height: Int
    public var width: Int

    public init(name: String, kind: String, block: String? = nil, channels: Int, height: Int,
                width: Int) {
      self.name = name
      self.kind = kind
      self.block = block
      self.channels = channels
      self.height = height
      self.width = width
    }

    enum CodingKeys: String, CodingKey { case name, kind, block, channels, height, width }

    public init(from decoder: Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      self.init(name: try c.value(.name), kind: try c.value(.kind), block: try c.ifPresent(.block),
                channels: try c.value(.channels), height: try c.value(.height),
                width: try c.value(.width))
    }
  }

  /// A residual block.
  public struct Block: Codable, Hashable, Sendable {
    public var name: String
    public var stage: Int
    public var index: Int
    public var projection: Bool

    public init(name: String, stage: Int, index: Int, projection: Bool) {
      self.name = name
      self.stage = stage
      self.index = index
      self.projection = projection
    }

    enum CodingKeys: String, CodingKey { case name, stage, index, projection }

    public init(from decoder: Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      self.init(name: try c.value(.name), stage: try c.value(.stage), index: try c.value(.index),
                projection: try c.value(.projection))
    }
  }

  /// The keys shared with `MODELS` (encoded at the top level of the doc, not nested).
  public var entry: ModelEntry
  /// The training options.
  public var recipe: TrainRequest
  public var history: [Epoch]
  /// Trainable parameter count.
  public var parameters: Int
  public var representations: [Representation]
  public var blocks: [Block]

  public init(entry: ModelEntry, recipe: TrainRequest, history: [Epoch], parameters: Int,
              representations: [Representation], blocks: [Block]) {
    self.entry = entry
    self.recipe = recipe
    self.history = history
    self.parameters = parameters
    self.representations = representations
    self.blocks = blocks
  }

  enum CodingKeys: String, CodingKey { case recipe, history, parameters, representations, blocks }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(entry: try ModelEntry(from: decoder), recipe: try c.value(.recipe),
              history: try c.value(.history), parameters: try c.value(.parameters),
              representations: try c.value(.representations), blocks: try c.value(.blocks))
  }

  public func encode(to encoder: Encoder) throws {
    try entry.encode(to: encoder)
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(recipe, forKey: .recipe)
    try c.encode(history, forKey: .history)
    try c.encode(parameters, forKey: .parameters)
    try c.encode(representations, forKey: .representations)
    try c.encode(blocks, forKey: .blocks)
  }
}

/// `DELETE_MODEL_OK`.
public struct DeleteModelResponse: Codable, Hashable, Sendable {
  public var model: String
  public var bytesFreed: Int

  public init(model: String, bytesFreed: Int) {
    self.model = model
    self.bytesFreed = bytesFreed
  }

  enum CodingKeys: String, CodingKey { case model, bytesFreed = "bytes_freed" }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(model: try c.value(.model), bytesFreed: try c.value(.bytesFreed))
  }
}
