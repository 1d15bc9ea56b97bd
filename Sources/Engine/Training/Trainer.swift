import CKernels
import Foundation

/// What the trainer reports while it runs.
public struct TrainingProgress: Sendable {
  public enum Phase: Sendable { case step, evaluating, epochEnd(EpochRecord) }
  public var phase: Phase
  public var epoch: Int            // 1-based
  public var epochs: Int
  public var step: Int             // 1-based within the epoch
  public var stepsPerEpoch: Int
  public var loss: Double          // running mean over this epoch
  public var accuracy: Double      // running train accuracy over this epoch
  public var learningRate: Double
  public var imagesPerSecond: Double
}

public struct TrainingCancelled: Error, CustomStringConvertible {
  public var epochsCompleted: Int
  public var description: String { "training cancelled after \(epochsCompleted) finished epochs" }
}

/// SGD training of a ResNet on a dataset (the recipe of Nguyen et al. 2021, see TrainConfig).
/// Deterministic: the shuffle and augmentation of epoch e come from streams derived from (seed,
/// e), so a run resumed at an epoch boundary continues exactly as an uninterrupted one, and the
/// weights are bit-identical whatever the context's thread count (the kernels' reductions have
/// fixed partitions).
public final class Trainer: @unchecked Sendable {
  public let model: ResNet
  public let config: TrainConfig
  public let data: DatasetSplits
  /// The threads, kernels and scratch this training runs with (its own: a job's numbers and
  /// speed do not depend on what else the process runs).
  public let context: KernelContext
  public private(set) var history: [EpochRecord] = []
  public var epochsCompleted: Int { history.count }

  public init(model: ResNet, config: TrainConfig, data: DatasetSplits,
              context: KernelContext) throws {
    guard config.epochs >= 1, config.batchSize >= 1, config.learningRate > 0,
          config.learningRate.isFinite, config.momentum >= 0, config.momentum < 1,
          config.weightDecay >= 0, config.warmupEpochs >= 0 else {
      throw TrainingSetupError.invalid("training config \(config) has a value out of range")
    }
    let m = model.config
    guard data.train.height == m.inputHeight, data.train.width == m.inputWidth,
          data.train.channels == m.inputChannels, data.train.numClasses == m.numClasses else {
      throw TrainingSetupError.invalid(
        "dataset \(data.train.name) is \(data.train.height)x\(data.train.width)x\(data.train.channels) with \(data.train.numClasses) classes; the model expects \(m.inputHeight)x\(m.inputWidth)x\(m.inputChannels) with \(m.numClasses)")
    }
    guard data.train.count > 0 else { throw TrainingSetupError.invalid("the training set is empty") }
    self.model = model
    self.config = config
    self.data = data
    self.context = context
  }

  /// Continue from a finished-epoch state (history restored; weights, running statistics and
  /// momentum buffers must already be in the model).
  public func restoreHistory(_ records: [EpochRecord]) { history = records }

  public var stepsPerEpoch: Int { (data.train.count + config.batchSize - 1) / config.batchSize }

  public var schedule: LearningRateSchedule {
    LearningRateSchedule(base: config.learningRate, totalSteps: stepsPerEpoch * config.epochs,
                         warmupSteps: Int((config.warmupEpochs * Double(stepsPerEpoch)).rounded()))
  }

  /// Trains the remaining epochs. `shouldStop` is polled before every step; when it returns
  /// true the current epoch is abandoned (the model keeps the state of the last finished
  /// epoch only if the caller checkpointed it) and TrainingCancelled is thrown.
  /// `onEpoch` runs after each finished epoch (e.g. to checkpoint).
  public func run(progress: ((TrainingProgress) -> Void)? = nil,
                  shouldStop: (() -> Bool)? = nil,
                  onEpoch: ((EpochRecord) throws -> Void)? = nil) throws {
    while epochsCompleted < config.epochs {
      let record = try runEpoch(epochsCompleted + 1, progress: progress, shouldStop: shouldStop)
      history.append(record)
      try onEpoch?(record)
    }
  }

  func runEpoch(_ epoch: Int, progress: ((TrainingProgress) -> Void)?,
                shouldStop: (() -> Bool)?) throws -> EpochRecord {
    let train = data.train, k = model.config.numClasses, bs = config.batchSize
    var orderRng = RandomSource(seed: config.seed, stream: 1000 + UInt64(epoch))
    var augRng = RandomSource(seed: config.seed, stream: 2_000_000 + UInt64(epoch))
    var order = Array(0..<train.count)
    order.shuffle(using: &orderRng)
    let input = model.trainingInput(capacity: bs)
    let schedule = self.schedule
    let steps = stepsPerEpoch
    var lossSum = 0.0, correct = 0, seen = 0
    let epochStart = Date()
    var lr = schedule.rate(at: (epoch - 1) * steps)
    var labels = [Int32](repeating: 0, count: bs)
    for step in 0..<steps {
      if shouldStop?() == true { throw TrainingCancelled(epochsCompleted: epoch - 1) }
      let lo = step * bs, n = min(bs, train.count - lo)
      let positions = order[lo..<(lo + n)]
      BatchLoader.fill(input, from: train, positions: positions, augment: config.augment,
                       rng: &augRng, context: context)
      for (i, p) in positions.enumerated() { labels[i] = train.labels[p] }
      let logits = model.forwardTrain(n: n, context: context)
      var hits: Int32 = 0
      let loss = bs_softmax_xent(logits, labels, Int32(n), Int32(k), nil, model.logitGradient, &hits)
      guard loss.isFinite else {
        throw TrainingSetupError.diverged("loss became \(loss) at epoch \(epoch), step \(step + 1); lower the learning rate or add warm-up")
      }
      model.backward(context: context)
      lr = schedule.rate(at: (epoch - 1) * steps + step)
      let sgd = context.kernels.bs_sgd_momentum!
      for p in model.parameters {
        sgd(p.value.data, p.momentum.data, p.grad.data, p.value.count, Float(lr),
                        Float(config.momentum), p.decay ? Float(config.weightDecay) : 0)
      }
      lossSum += loss * Double(n)
      correct += Int(hits)
      seen += n
      if let progress {
        let elapsed = Date().timeIntervalSince(epochStart)
        progress(TrainingProgress(phase: .step, epoch: epoch, epochs: config.epochs, step: step + 1,
                                  stepsPerEpoch: steps, loss: lossSum / Double(seen),
                                  accuracy: Double(correct) / Double(seen), learningRate: lr,
                                  imagesPerSecond: Double(seen) / max(elapsed, 1e-9)))
      }
    }
    let trainSeconds = Date().timeIntervalSince(epochStart)
    progress?(TrainingProgress(phase: .evaluating, epoch: epoch, epochs: config.epochs, step: steps,
                               stepsPerEpoch: steps, loss: lossSum / Double(seen),
                               accuracy: Double(correct) / Double(seen), learningRate: lr,
                               imagesPerSecond: Double(seen) / max(trainSeconds, 1e-9)))
    let eval = try Evaluation.run(model, on: data.test, context: context)
    let record = EpochRecord(epoch: epoch, trainLoss: lossSum / Double(seen),
                             trainAccuracy: Double(correct) / Double(seen), testLoss: eval.loss,
                             testAccuracy: eval.accuracy, learningRate: lr,
                             seconds: Date().timeIntervalSince(epochStart),
                             imagesPerSecond: Double(seen) / max(trainSeconds, 1e-9))
    progress?(TrainingProgress(phase: .epochEnd(record), epoch: epoch, epochs: config.epochs,
                               step: steps, stepsPerEpoch: steps, loss: record.trainLoss,
                               accuracy: record.trainAccuracy, learningRate: lr,
                               imagesPerSecond: record.imagesPerSecond))
    return record
  }
}

public enum TrainingSetupError: Error, CustomStringConvertible {
  case invalid(String)
  case diverged(String)
  public var description: String {
    switch self {
    case .invalid(let s): return s
    case .diverged(let s): return "training diverged: \(s)"
    }
  }
}
