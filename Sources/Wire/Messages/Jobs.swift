// SPEC.md section 7: TRAIN (0x0004), JOBS (0x0005), WATCH (0x0006), PROGRESS (0x4001),
// CANCEL (0x0007), RESUME (0x0008).

/// `TRAIN`: the recipe of a training job; every key is optional. Also `DESCRIBE`'s `recipe`.
public struct TrainRequest: Codable, Hashable, Sendable {
  /// nil: derived from the recipe by the daemon (`r20-k1-fashion-mnist-f0.1-s0`).
  public var model: String?
  public var depth: Int
  public var width: Double
  public var plain: Bool
  public var dataset: String
  public var fraction: Double
  public var stratified: Bool
  public var epochs: Int
  public var batchSize: Int
  public var lr: Double
  public var weightDecay: Double
  public var warmupEpochs: Double
  public var augment: Bool
  public var seed: UInt64
  /// nil: evaluate on the whole test split.
  public var testExamples: Int?
  /// nil: the daemon's worker width.
  public var threads: Int?
  /// Epochs after which a copy of the model is kept as `MODEL.eN` (a model of its own).
  public var snapshotEpochs: [Int]

  /// The spec's defaults.
  public init(model: String? = nil, depth: Int = 20, width: Double = 1.0, plain: Bool = false,
              dataset: String = "fashion-mnist", fraction: Double = 1.0, stratified: Bool = false,
              epochs: Int = 30, batchSize: Int = 128, lr: Double = 0.05, weightDecay: Double = 5e-4,
              warmupEpochs: Double = 0, augment: Bool = true, seed: UInt64 = 0,
              testExamples: Int? = nil, threads: Int? = nil, snapshotEpochs: [Int] = []) {
    self.model = model
    self.depth = depth
    self.width = width
    self.plain = plain
    self.dataset = dataset
    self.fraction = fraction
    self.stratified = stratified
    self.epochs = epochs
    self.batchSize = batchSize
    self.lr = lr
    self.weightDecay = weightDecay
    self.warmupEpochs = warmupEpochs
    self.augment = augment
    self.seed = seed
    self.testExamples = testExamples
    self.threads = threads
    self.snapshotEpochs = snapshotEpochs
  }

  enum CodingKeys: String, CodingKey {
    case model, depth, width, plain, dataset, fraction, stratified, epochs,
         batchSize = "batch_size", lr, weightDecay = "weight_decay",
         warmupEpochs = "warmup_epochs", augment, seed, testExamples = "test_examples", threads,
         snapshotEpochs = "snapshot_epochs"
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init()
    model = try c.ifPresent(.model)
    depth = try c.value(.depth, default: depth)
    width = try c.value(.width, default: width)
    plain = try c.value(.plain, default: plain)
    dataset = try c.value(.dataset, default: dataset)
    fraction = try c.value(.fraction, default: fraction)
    stratified = try c.value(.stratified, default: stratified)
    epochs = try c.value(.epochs, default: epochs)
    batchSize = try c.value(.batchSize, default: batchSize)
    lr = try c.value(.lr, default: lr)
    weightDecay = try c.value(.weightDecay, default: weightDecay)
    warmupEpochs = try c.value(.warmupEpochs, default: warmupEpochs)
    augment = try c.value(.augment, default: augment)
    seed = try c.value(.seed, default: seed)
    testExamples = try c.ifPresent(.testExamples)
    threads = try c.ifPresent(.threads)
    snapshotEpochs = try c.value(.snapshotEpochs, default: [])
  }

  /// Absent optional keys are left out, and so is an empty `snapshot_epochs` (so a recipe
  /// without snapshots encodes as it did before the key existed).
  public func encode(to encoder: Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encodeIfPresent(model, forKey: .model)
    try c.encode(depth, forKey: .depth)
    try c.encode(width, forKey: .width)
    try c.encode(plain, forKey: .plain)
    try c.encode(dataset, forKey: .dataset)
    try c.encode(fraction, forKey: .fraction)
    try c.encode(stratified, forKey: .stratified)
    try c.encode(epochs, forKey: .epochs)
    try c.encode(batchSize, forKey: .batchSize)
    try c.encode(lr, forKey: .lr)
    try c.encode(weightDecay, forKey: .weightDecay)
    try c.encode(warmupEpochs, forKey: .warmupEpochs)
    try c.encode(augment, forKey: .augment)
    try c.encode(seed, forKey: .seed)
    try c.encodeIfPresent(testExamples, forKey: .testExamples)
    try c.encodeIfPresent(threads, forKey: .threads)
    if !snapshotEpochs.isEmpty { try c.encode(snapshotEpochs, forKey: .snapshotEpochs) }
  }
}

/// `TRAIN_OK`, sent at once, before training starts.
public struct TrainResponse: Codable, Hashable, Sendable {
  public var job: UInt64
  public var model: String
  public var state: JobState

  public init(job: UInt64, model: String, state: JobState) {
    self.job = job
    self.model = model
    self.state = state
  }

  enum CodingKeys: String, CodingKey { case job, model, state }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(job: try c.value(.job), model: try c.value(.model), state: try c.value(.state))
  }
}

/// One job as `JOBS` lists it; also the response of `WATCH`, `CANCEL` and `RESUME`.
public struct JobEntry: Codable, Hashable, Sendable {
  /// The metrics of the last finished epoch.
  public struct Metrics: Codable, Hashable, Sendable {
    public var trainLoss: Double
    public var trainAccuracy: Double
    public var testLoss: Double
    public var testAccuracy: Double

    public init(trainLoss: Double, trainAccuracy: Double, testLoss: Double, testAccuracy: Double) {
      self.trainLoss = trainLoss
      self.trainAccuracy = trainAccuracy
      self.testLoss = testLoss
      self.testAccuracy = testAccuracy
    }

    enum CodingKeys: String, CodingKey {
      case trainLoss = "train_loss", trainAccuracy = "train_accuracy", testLoss = "test_loss",
           testAccuracy = "test_accuracy"
    }

    public init(from decoder: Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      self.init(trainLoss: try c.value(.trainLoss), trainAccuracy: try c.value(.trainAccuracy),
                testLoss: try c.value(.testLoss), testAccuracy: try c.value(.testAccuracy))
    }
  }

  public var job: UInt64
  /// `"train"` (the only kind of version 1).
  public var kind: String
  public var model: String
  public var state: JobState
  /// Finished epochs.
  public var epoch: Int
  public var epochs: Int
  /// RFC 3339 UTC times.
  public var created: String
  public var started: String?
  public var ended: String?
  public var error: String?
  public var last: Metrics?

  public init(job: UInt64, kind: String = "train", model: String, state: JobState, epoch: Int,
              epochs: Int, created: String, started: String? = nil, ended: String? = nil,
              error: String? = nil, last: Metrics? = nil) {
    self.job = job
    self.kind = kind
    self.model = model
    self.state = state
    self.epoch = epoch
    self.epochs = epochs
    self.created = created
    self.started = started
    self.ended = ended
    self.error = error
    self.last = last
  }

  enum CodingKeys: String, CodingKey {
    case job, kind, model, state, epoch, epochs, created, started, ended, error, last
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(job: try c.value(.job), kind: try c.value(.kind), model: try c.value(.model),
              state: try c.value(.state), epoch: try c.value(.epoch), epochs: try c.value(.epochs),
              created: try c.value(.created), started: try c.ifPresent(.started),
              ended: try c.ifPresent(.ended), error: try c.ifPresent(.error),
              last: try c.ifPresent(.last))
  }
}

/// `JOBS`: doc `{}`.
public typealias JobsRequest = EmptyDoc

/// `JOBS_OK`: every job, also unfinished ones from before a restart.
public struct JobsResponse: Codable, Hashable, Sendable {
  public var jobs: [JobEntry]

  public init(jobs: [JobEntry]) { self.jobs = jobs }

  enum CodingKeys: String, CodingKey { case jobs }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(jobs: try c.value(.jobs))
  }
}

/// `WATCH`: doc `job`.
public typealias WatchRequest = JobRequest
/// `WATCH_OK`: the job's entry once it has ended.
public typealias WatchResponse = JobEntry
/// `CANCEL`: doc `job`.
public typealias CancelRequest = JobRequest
/// `CANCEL_OK`: the job's entry.
public typealias CancelResponse = JobEntry
/// `RESUME_OK`: the job's entry.
public typealias ResumeResponse = JobEntry

/// `RESUME`: continue an `interrupted` or `cancelled` job from its checkpoint.
public struct ResumeRequest: Codable, Hashable, Sendable {
  public var job: UInt64
  /// A new total of epochs (extends the job); nil keeps the job's.
  public var epochs: Int?

  public init(job: UInt64, epochs: Int? = nil) {
    self.job = job
    self.epochs = epochs
  }

  enum CodingKeys: String, CodingKey { case job, epochs }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(job: try c.value(.job), epochs: try c.ifPresent(.epochs))
  }
}

/// `PROGRESS` (event): zero or more per request, before its final frame.
public struct ProgressEvent: Codable, Hashable, Sendable {
  /// `"epoch"`, `"step"`, `"evaluate"`, `"forward"`, `"grams"`, `"products"`, `"probe"`,
  /// `"delete"`, ... (open-ended: a client shows unknown phases as they are).
  public var phase: String
  /// Units of the phase done so far, of `total`.
  public var done: Int
  public var total: Int
  /// Training events: the job, its current epoch and total epochs.
  public var job: UInt64?
  public var epoch: Int?
  public var epochs: Int?
  /// Numbers such as `loss`, `accuracy`, `test_accuracy`, `images_per_second`.
  public var metrics: [String: Double]?
  public var message: String?

  public init(phase: String, done: Int, total: Int, job: UInt64? = nil, epoch: Int? = nil,
              epochs: Int? = nil, metrics: [String: Double]? = nil, message: String? = nil) {
    self.phase = phase
    self.done = done
    self.total = total
    self.job = job
    self.epoch = epoch
    self.epochs = epochs
    self.metrics = metrics
    self.message = message
  }

  enum CodingKeys: String, CodingKey { case phase, done, total, job, epoch, epochs, metrics, message }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(phase: try c.value(.phase), done: try c.value(.done), total: try c.value(.total),
              job: try c.ifPresent(.job), epoch: try c.ifPresent(.epoch),
              epochs: try c.ifPresent(.epochs), metrics: try c.ifPresent(.metrics),
              message: try c.ifPresent(.message))
  }
}
