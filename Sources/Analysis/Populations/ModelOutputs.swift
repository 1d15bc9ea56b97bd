import Foundation

/// One trained model's outputs on the fixed test set: its softmax probabilities, or only its
/// argmax predictions when the probabilities were not kept. Validated on construction, so every
/// later computation can assume finite, non-negative, normalised rows and in-range classes.
public struct ModelOutputs: Sendable {
  /// Identifies the model in reports and errors, e.g. "resnet20-k4/seed3".
  public let name: String
  public let exampleCount: Int
  public let classCount: Int
  /// [exampleCount][classCount] row-major, or nil when only predictions are known.
  public let probabilities: [Float]?
  /// The argmax class per example (the first maximum on ties, like numpy).
  public let predictions: [Int32]

  /// How far a probability row may sum from 1. Float softmax rows sum within ~1e-6 of 1; the
  /// looser bound only exists to catch logits or unnormalised scores passed by mistake.
  public static let rowSumTolerance: Float = 1e-3

  public init(name: String, probabilities: [Float], classCount: Int) throws {
    guard classCount >= 1 else { throw PopulationError.invalidClassCount(model: name, classCount) }
    guard !probabilities.isEmpty, probabilities.count % classCount == 0 else {
      throw PopulationError.shapeMismatch(
        "model \(name): \(probabilities.count) probabilities is not a positive multiple of \(classCount) classes")
    }
    let n = probabilities.count / classCount
    var predictions = [Int32](repeating: 0, count: n)
    for i in 0..<n {
      var best = 0, bestValue = -Float.infinity, sum: Float = 0
      for c in 0..<classCount {
        let v = probabilities[i * classCount + c]
        guard v.isFinite, v >= 0 else {
          throw PopulationError.invalidProbability(model: name, example: i, classIndex: c, value: v)
        }
        sum += v
        if v > bestValue { bestValue = v; best = c }
      }
      guard abs(sum - 1) <= Self.rowSumTolerance else {
        throw PopulationError.probabilitiesNotNormalised(model: name, example: i, sum: sum)
      }
      predictions[i] = Int32(best)
    }
    self.name = name
    self.exampleCount = n
    self.classCount = classCount
    self.probabilities = probabilities
    self.predictions = predictions
  }

  public init(name: String, predictions: [Int32], classCount: Int) throws {
    guard classCount >= 1 else { throw PopulationError.invalidClassCount(model: name, classCount) }
    guard !predictions.isEmpty else {
      throw PopulationError.shapeMismatch("model \(name): no predictions")
    }
    if let i = predictions.firstIndex(where: { $0 < 0 || Int($0) >= classCount }) {
      throw PopulationError.predictionOutOfRange(model: name, example: i, value: predictions[i],
                                                 classCount: classCount)
    }
    self.name = name
    self.exampleCount = predictions.count
    self.classCount = classCount
    self.probabilities = nil
    self.predictions = predictions
  }
}

/// An architecture group: the models of one configuration trained from different seeds.
public struct ModelGroup: Sendable {
  /// E.g. "resnet20-k4".
  public var name: String
  public var models: [ModelOutputs]

  public init(name: String, models: [ModelOutputs]) {
    self.name = name
    self.models = models
  }
}

public enum PopulationError: Error, CustomStringConvertible, Equatable {
  case invalidClassCount(model: String, Int)
  case shapeMismatch(String)
  case invalidProbability(model: String, example: Int, classIndex: Int, value: Float)
  case probabilitiesNotNormalised(model: String, example: Int, sum: Float)
  case predictionOutOfRange(model: String, example: Int, value: Int32, classCount: Int)
  case labelOutOfRange(example: Int, label: Int32, classCount: Int)
  case emptyGroup(String)
  case unknownGroup(String)
  case sameGroup(String)
  case tooFewModelsForNull(group: String, count: Int)
  case invalidAlpha(Double)

  public var description: String {
    switch self {
    case .invalidClassCount(let m, let k):
      return "model \(m): class count \(k), expected at least 1"
    case .shapeMismatch(let why):
      return "shape mismatch: \(why)"
    case .invalidProbability(let m, let i, let c, let v):
      return "model \(m): probability of class \(c) on example \(i) is \(v); expected a finite value >= 0"
    case .probabilitiesNotNormalised(let m, let i, let s):
      return "model \(m): probabilities of example \(i) sum to \(s), not 1 (logits passed as probabilities?)"
    case .predictionOutOfRange(let m, let i, let v, let k):
      return "model \(m): prediction \(v) on example \(i) is outside 0..<\(k)"
    case .labelOutOfRange(let i, let l, let k):
      return "label \(l) of example \(i) is outside 0..<\(k)"
    case .emptyGroup(let g):
      return "group \(g) has no models"
    case .unknownGroup(let g):
      return "no group named \(g)"
    case .sameGroup(let g):
      return "group \(g) compared with itself; use a null split for same-architecture comparisons"
    case .tooFewModelsForNull(let g, let n):
      return "group \(g) has \(n) model(s); a null split into two disjoint halves needs at least 2"
    case .invalidAlpha(let a):
      return "significance level \(a) is outside (0, 1)"
    }
  }
}
