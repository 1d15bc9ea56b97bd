import Foundation
import CKernels

/// Inference-mode accuracy and loss of a model on a dataset.
public struct EvaluationResult: Sendable {
  public var loss: Double
  public var accuracy: Double
  public var correct: Int
  public var count: Int
  /// argmax class per example, in dataset order.
  public var predictions: [Int32]
}

/// Loss, hits and predictions summed over batches of logits, in dataset order.
public struct EvaluationAccumulator: Sendable {
  public let classes: Int
  private var lossSum = 0.0, correct = 0, count = 0
  private var predictions: [Int32] = []

  public init(classes: Int) { self.classes = classes }

  /// logits: [n][classes] of the n examples whose labels these are.
  public mutating func add(logits: [Float], labels: ArraySlice<Int32>) {
    let n = labels.count, k = classes
    var hits: Int32 = 0
    lossSum += Double(n) * bs_softmax_xent(logits, Array(labels), Int32(n), Int32(k), nil, nil, &hits)
    correct += Int(hits)
    count += n
    for i in 0..<n {
      var best = 0
      for j in 1..<k where logits[i * k + j] > logits[i * k + best] { best = j }
      predictions.append(Int32(best))
    }
  }

  public var result: EvaluationResult {
    let denominator = max(1, count)
    return EvaluationResult(loss: lossSum / Double(denominator),
                            accuracy: Double(correct) / Double(denominator),
                            correct: correct, count: count, predictions: predictions)
  }
}

public enum Evaluation {
  public static func run(_ model: ResNet, on data: Dataset, batchSize: Int = 256,
                         skip: Set<String> = [], context: KernelContext) throws -> EvaluationResult {
    let input = Tensor([batchSize, data.height, data.width, data.channels])
    var rng = RandomSource(seed: 0)
    var sums = EvaluationAccumulator(classes: model.config.numClasses)
    var start = 0
    while start < data.count {
      let n = min(batchSize, data.count - start)
      BatchLoader.fill(input.data, from: data, positions: Array(start..<(start + n))[...],
                       augment: false, rng: &rng, context: context)
      let logits = try model.infer(input.data, n: n, context: context, skip: skip)
      sums.add(logits: logits, labels: data.labels[start..<(start + n)])
      start += n
    }
    return sums.result
  }
}
