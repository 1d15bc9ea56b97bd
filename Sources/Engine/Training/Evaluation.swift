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

public enum Evaluation {
  public static func run(_ model: ResNet, on data: Dataset, batchSize: Int = 256,
                         skip: Set<String> = [], context: KernelContext) throws -> EvaluationResult {
    let k = model.config.numClasses
    let input = Tensor([batchSize, data.height, data.width, data.channels])
    var rng = RandomSource(seed: 0)
    var lossSum = 0.0, correct = 0
    var predictions = [Int32]()
    predictions.reserveCapacity(data.count)
    var start = 0
    while start < data.count {
      let n = min(batchSize, data.count - start)
      BatchLoader.fill(input.data, from: data, positions: Array(start..<(start + n))[...],
                       augment: false, rng: &rng, context: context)
      let logits = try model.infer(input.data, n: n, context: context, skip: skip)
      let labels = Array(data.labels[start..<(start + n)])
      var hits: Int32 = 0
      lossSum += Double(n) * bs_softmax_xent(logits, labels, Int32(n), Int32(k), nil, nil, &hits)
      correct += Int(hits)
      for i in 0..<n {
        var best = 0
        for j in 1..<k where logits[i * k + j] > logits[i * k + best] { best = j }
        predictions.append(Int32(best))
      }
      start += n
    }
    let count = max(1, data.count)
    return EvaluationResult(loss: lossSum / Double(count), accuracy: Double(correct) / Double(count),
                            correct: correct, count: data.count, predictions: predictions)
  }
}
