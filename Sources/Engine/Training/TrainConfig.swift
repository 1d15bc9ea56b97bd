/// The training recipe of Nguyen et al. 2021 (their released code): SGD with momentum, batch
/// 128, cosine learning rate over all steps, L2 weight decay on conv and linear weights only
/// (none on batch-norm parameters or biases), reflect-pad-4 random crop and horizontal flip.
public struct TrainConfig: Codable, Equatable, Sendable {
  public var epochs: Int
  public var batchSize: Int
  public var learningRate: Double
  public var momentum: Double
  public var weightDecay: Double
  /// Linear warm-up from 0 over this many epochs (0: none); then cosine decay to 0.
  public var warmupEpochs: Double
  public var augment: Bool
  public var seed: UInt64

  public init(epochs: Int = 30, batchSize: Int = 128, learningRate: Double = 0.05,
              momentum: Double = 0.9, weightDecay: Double = 5e-4, warmupEpochs: Double = 0,
              augment: Bool = true, seed: UInt64 = 0) {
    self.epochs = epochs
    self.batchSize = batchSize
    self.learningRate = learningRate
    self.momentum = momentum
    self.weightDecay = weightDecay
    self.warmupEpochs = warmupEpochs
    self.augment = augment
    self.seed = seed
  }
}

/// What the data of a training run was: which dataset, which subset, from where.
public struct DataSpec: Codable, Equatable, Sendable {
  public enum Subset: String, Codable, Sendable { case first, stratified }
  public var dataset: String      // "cifar10", "cifar100", "fashion-mnist", "synthetic"
  public var fraction: Double     // of the training set, in (0, 1]
  public var subset: Subset
  public var path: String?        // the directory it was read from, if any

  public init(dataset: String, fraction: Double = 1, subset: Subset = .first, path: String? = nil) {
    self.dataset = dataset
    self.fraction = fraction
    self.subset = subset
    self.path = path
  }
}

/// One finished epoch.
public struct EpochRecord: Codable, Equatable, Sendable {
  public var epoch: Int               // 1-based
  public var trainLoss: Double
  public var trainAccuracy: Double
  public var testLoss: Double
  public var testAccuracy: Double
  public var learningRate: Double     // at the end of the epoch
  public var seconds: Double
  public var imagesPerSecond: Double

  public init(epoch: Int, trainLoss: Double, trainAccuracy: Double, testLoss: Double,
              testAccuracy: Double, learningRate: Double, seconds: Double,
              imagesPerSecond: Double) {
    self.epoch = epoch
    self.trainLoss = trainLoss
    self.trainAccuracy = trainAccuracy
    self.testLoss = testLoss
    self.testAccuracy = testAccuracy
    self.learningRate = learningRate
    self.seconds = seconds
    self.imagesPerSecond = imagesPerSecond
  }
}
