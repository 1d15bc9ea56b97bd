import Engine
import Foundation

// Nguyen et al. 2021 ask whether wide and deep models make the same errors. Each architecture
// group's per-example and per-class accuracies are compared with another group's, and the same
// comparison between two disjoint halves of one group (other seeds, same architecture) is the
// null that the wide-versus-deep numbers are read against.

/// The per-example test on (correct count in A out of |A|, correct count in B out of |B|).
public enum ExampleTest: String, Codable, Sendable {
  /// Fisher exact: right for the small counts of a population of tens of models.
  case fisher
  /// Pooled two-proportion z-test: the normal approximation, for large populations.
  case twoProportion
}

public struct OutputComparisonOptions: Codable, Sendable, Equatable {
  public var test: ExampleTest
  /// Significance level applied to Benjamini-Hochberg adjusted p-values (a false discovery rate).
  public var alpha: Double
  /// Keep per-example arrays (accuracies, p-values) in the results; they are |test set| long
  /// each, so a daemon sending many comparisons may want only the summaries.
  public var includePerExample: Bool

  public init(test: ExampleTest = .fisher, alpha: Double = 0.05, includePerExample: Bool = true) {
    self.test = test
    self.alpha = alpha
    self.includePerExample = includePerExample
  }
}

public struct ClassAccuracy: Codable, Sendable, Equatable {
  public var classIndex: Int
  /// Test examples with this label.
  public var exampleCount: Int
  public var meanAccuracy: Double
  /// In the group's model order.
  public var modelAccuracies: [Double]
}

public struct GroupAccuracy: Codable, Sendable, Equatable {
  public var group: String
  public var models: [String]
  public var modelAccuracies: [Double]
  public var meanAccuracy: Double
  /// Per test example, the fraction of the group's models that classify it correctly; nil when
  /// per-example output was not requested.
  public var exampleAccuracies: [Double]?
  /// Only classes that occur in the labels, ascending.
  public var classes: [ClassAccuracy]
}

public struct ExampleLevelComparison: Codable, Sendable, Equatable {
  public var test: ExampleTest
  public var alpha: Double
  public var exampleCount: Int
  /// Examples whose BH-adjusted p-value is below alpha.
  public var significantCount: Int
  public var significantFraction: Double
  /// Of the significant examples, those that A gets right more often than B, and the reverse.
  public var significantFavoringA: Int
  public var significantFavoringB: Int
  /// Examples where the test is undefined (every model of both groups right, or every one
  /// wrong); they enter the BH correction with p = 1.
  public var undefinedCount: Int
  public var pValues: [Double]?
  public var adjustedPValues: [Double]?
}

public struct ClassComparison: Codable, Sendable, Equatable {
  public var classIndex: Int
  public var exampleCount: Int
  public var meanAccuracyA: Double
  public var meanAccuracyB: Double
  /// Welch t-test on the per-model accuracies of this class.
  public var test: TestOutcome
  /// Benjamini-Hochberg over the classes.
  public var adjustedPValue: Double
  public var significant: Bool
}

/// The distances of the authors' released code, between the two groups' predictions.
public struct PredictionDistances: Codable, Sendable, Equatable {
  /// Per example, the Hellinger distance H(p, q) = ||sqrt p - sqrt q||_2 / sqrt 2 between the
  /// histograms of the two groups' argmax predictions (normalised over each group's models);
  /// the mean over examples. 0 when both groups predict alike, 1 when they never share a class.
  public var meanHellinger: Double
  /// Over every pair (model of A, model of B), the fraction of examples with the same argmax;
  /// the mean over pairs.
  public var argmaxAgreement: Double
  /// Per example, KL(mean probabilities of A || mean probabilities of B) in nats; the mean over
  /// examples. nil when a model of either group has only argmax predictions.
  public var meanKL: Double?
  /// Why meanKL is nil, or how it treats zeros.
  public var klNote: String?
}

public struct GroupComparison: Codable, Sendable, Equatable {
  public var groupA: String
  public var groupB: String
  public var modelsA: [String]
  public var modelsB: [String]
  public var meanAccuracyA: Double
  public var meanAccuracyB: Double
  public var examples: ExampleLevelComparison
  public var classes: [ClassComparison]
  public var significantClassCount: Int
  public var distances: PredictionDistances
}

/// A same-architecture comparison: one group split at random into two disjoint halves.
public struct NullComparison: Codable, Sendable, Equatable {
  public var group: String
  public var seed: UInt64
  public var comparison: GroupComparison
}

/// Which two groups to compare ("wide" against "deep").
public struct GroupPair: Codable, Sendable, Equatable {
  public var a: String
  public var b: String
  public init(_ a: String, _ b: String) { self.a = a; self.b = b }
}

/// One null split: the group and the seed of its shuffle.
public struct NullSplit: Codable, Sendable, Equatable {
  public var group: String
  public var seed: UInt64
  public init(_ group: String, seed: UInt64) { self.group = group; self.seed = seed }
}

public struct PopulationReport: Codable, Sendable, Equatable {
  public var exampleCount: Int
  public var classCount: Int
  public var options: OutputComparisonOptions
  /// Sorted by group name.
  public var groups: [GroupAccuracy]
  /// In the order of the requested pairs.
  public var comparisons: [GroupComparison]
  /// In the order of the requested splits.
  public var nulls: [NullComparison]
}

public enum OutputComparison {

  /// KL divergence floor: only inside the logarithm, so a class that group B never gives any
  /// probability costs log(p_A / 1e-12) instead of infinity. A class with p_A = 0 contributes 0
  /// (the limit of p log p), whatever B gives it.
  public static let klEpsilon = 1e-12

  /// The stream tag that keeps null-split shuffles independent of every other use of a seed.
  static let nullSplitStream: UInt64 = 0x6E75_6C6C  // "null"

  // MARK: Entry points

  /// Everything at once: every group's accuracies, the requested group pairs, and the null
  /// splits. All models of all groups must share the test set (same n, same K).
  public static func report(populations: [String: [ModelOutputs]], labels: [Int32],
                            pairs: [GroupPair], nullSplits: [NullSplit],
                            options: OutputComparisonOptions = .init()) throws -> PopulationReport {
    let groups = populations.keys.sorted().map { ModelGroup(name: $0, models: populations[$0]!) }
    let (n, k) = try validate(groups, labels: labels, options: options)
    func group(_ name: String) throws -> ModelGroup {
      guard let models = populations[name] else { throw PopulationError.unknownGroup(name) }
      return ModelGroup(name: name, models: models)
    }
    let accuracies = try groups.map {
      try accuracy(of: $0, labels: labels, includePerExample: options.includePerExample)
    }
    let comparisons = try pairs.map { try compare(group($0.a), group($0.b), labels: labels, options: options) }
    let nulls = try nullSplits.map {
      try nullComparison(group($0.group), seed: $0.seed, labels: labels, options: options)
    }
    return PopulationReport(exampleCount: n, classCount: k, options: options, groups: accuracies,
                            comparisons: comparisons, nulls: nulls)
  }

  /// Per-model, per-example and per-class accuracy of one group.
  public static func accuracy(of group: ModelGroup, labels: [Int32],
                              includePerExample: Bool = true) throws -> GroupAccuracy {
    _ = try validate([group], labels: labels, options: .init())
    let summary = GroupSummary(group, labels: labels)
    return GroupAccuracy(
      group: group.name, models: group.models.map(\.name),
      modelAccuracies: summary.modelAccuracies, meanAccuracy: summary.meanAccuracy,
      exampleAccuracies: includePerExample ? summary.correctCounts.map { Double($0) / Double(summary.modelCount) } : nil,
      classes: summary.classes)
  }

  /// Group A against group B: per-example tests with BH, per-class Welch tests with BH, and the
  /// prediction distances.
  public static func compare(_ a: ModelGroup, _ b: ModelGroup, labels: [Int32],
                             options: OutputComparisonOptions = .init()) throws -> GroupComparison {
    if a.name == b.name { throw PopulationError.sameGroup(a.name) }
    _ = try validate([a, b], labels: labels, options: options)
    return try compareValidated(a, b, labels: labels, options: options)
  }

  /// The paper's null: the group's models shuffled with `seed` and split into two disjoint
  /// halves (the first floor(m/2) against the other ceil(m/2)), compared exactly like two
  /// architectures. Its halves hold half the models of the group, so it has less power than a
  /// comparison of two full groups; compare against nulls of groups of twice the size when
  /// that matters. The halves are named "<group>/null-A" and "<group>/null-B".
  public static func nullComparison(_ group: ModelGroup, seed: UInt64, labels: [Int32],
                                    options: OutputComparisonOptions = .init()) throws -> NullComparison {
    _ = try validate([group], labels: labels, options: options)
    guard group.models.count >= 2 else {
      throw PopulationError.tooFewModelsForNull(group: group.name, count: group.models.count)
    }
    let order = shuffledIndices(group.models.count, seed: seed)
    let half = group.models.count / 2
    let a = ModelGroup(name: group.name + "/null-A", models: order[..<half].map { group.models[$0] })
    let b = ModelGroup(name: group.name + "/null-B", models: order[half...].map { group.models[$0] })
    return NullComparison(group: group.name, seed: seed,
                          comparison: try compareValidated(a, b, labels: labels, options: options))
  }

  /// Fisher-Yates over 0..<count with the engine's seeded generator, so a split is reproducible
  /// from (group, seed) alone.
  public static func shuffledIndices(_ count: Int, seed: UInt64) -> [Int] {
    var rng = RandomSource(seed: seed, stream: nullSplitStream)
    var order = Array(0..<count)
    if count > 1 {
      for i in stride(from: count - 1, through: 1, by: -1) {
        order.swapAt(i, rng.below(i + 1))
      }
    }
    return order
  }

  // MARK: Validation

  /// Throws on empty groups, models that disagree on n or K, labels of the wrong length or out of
  /// range, and alpha outside (0, 1). Returns (n, K).
  static func validate(_ groups: [ModelGroup], labels: [Int32],
                       options: OutputComparisonOptions) throws -> (Int, Int) {
    guard options.alpha > 0 && options.alpha < 1 else { throw PopulationError.invalidAlpha(options.alpha) }
    let (n, k) = try validateShapes(groups)
    guard labels.count == n else {
      throw PopulationError.shapeMismatch("\(labels.count) labels for \(n) examples")
    }
    if let i = labels.firstIndex(where: { $0 < 0 || Int($0) >= k }) {
      throw PopulationError.labelOutOfRange(example: i, label: labels[i], classCount: k)
    }
    return (n, k)
  }

  /// Throws on empty groups and on models that disagree on n or K. Returns (n, K).
  static func validateShapes(_ groups: [ModelGroup]) throws -> (Int, Int) {
    if let empty = groups.first(where: { $0.models.isEmpty }) { throw PopulationError.emptyGroup(empty.name) }
    guard let first = groups.first?.models.first else {
      throw PopulationError.shapeMismatch("no groups")
    }
    let n = first.exampleCount, k = first.classCount
    for g in groups {
      for m in g.models {
        if m.exampleCount != n {
          throw PopulationError.shapeMismatch(
            "model \(m.name) in group \(g.name) has \(m.exampleCount) examples; model \(first.name) has \(n)")
        }
        if m.classCount != k {
          throw PopulationError.shapeMismatch(
            "model \(m.name) in group \(g.name) has \(m.classCount) classes; model \(first.name) has \(k)")
        }
      }
    }
    return (n, k)
  }

  // MARK: Computation

  /// Correctness counts of one group, computed once per comparison.
  struct GroupSummary {
    let modelCount: Int
    /// Per example, how many models classify it correctly.
    var correctCounts: [Int]
    var modelAccuracies: [Double]
    var meanAccuracy: Double
    var classes: [ClassAccuracy]

    init(_ group: ModelGroup, labels: [Int32]) {
      let n = labels.count, k = group.models[0].classCount
      modelCount = group.models.count
      var classSizes = [Int](repeating: 0, count: k)
      for l in labels { classSizes[Int(l)] += 1 }
      let present = (0..<k).filter { classSizes[$0] > 0 }
      correctCounts = [Int](repeating: 0, count: n)
      modelAccuracies = []
      var perClass = [[Double]](repeating: [], count: k)
      for m in group.models {
        var total = 0
        var classCorrect = [Int](repeating: 0, count: k)
        for i in 0..<n where m.predictions[i] == labels[i] {
          correctCounts[i] += 1
          total += 1
          classCorrect[Int(labels[i])] += 1
        }
        modelAccuracies.append(Double(total) / Double(n))
        for c in present { perClass[c].append(Double(classCorrect[c]) / Double(classSizes[c])) }
      }
      let count = Double(modelCount)
      meanAccuracy = modelAccuracies.reduce(0, +) / count
      classes = present.map { c in
        ClassAccuracy(classIndex: c, exampleCount: classSizes[c],
                      meanAccuracy: perClass[c].reduce(0, +) / count,
                      modelAccuracies: perClass[c])
      }
    }
  }

  static func compareValidated(_ a: ModelGroup, _ b: ModelGroup, labels: [Int32],
                               options: OutputComparisonOptions) throws -> GroupComparison {
    let sa = GroupSummary(a, labels: labels), sb = GroupSummary(b, labels: labels)
    let n = labels.count, na = sa.modelCount, nb = sb.modelCount

    // Per example. The outcome depends only on the two counts, so it is computed once per pair.
    var cache: [Int: TestOutcome] = [:]
    var pValues = [Double](repeating: 1, count: n)
    var undefined = 0
    for i in 0..<n {
      let ca = sa.correctCounts[i], cb = sb.correctCounts[i]
      let key = ca * (nb + 1) + cb
      let outcome: TestOutcome
      if let cached = cache[key] {
        outcome = cached
      } else {
        switch options.test {
        case .fisher: outcome = try Statistics.fisherExact(ca, na - ca, cb, nb - cb)
        case .twoProportion:
          outcome = try Statistics.twoProportionZ(successes: ca, trials: na, successes: cb, trials: nb)
        }
        cache[key] = outcome
      }
      pValues[i] = outcome.pValue
      if !outcome.defined { undefined += 1 }
    }
    let adjusted = try Statistics.benjaminiHochberg(pValues)
    var significant = 0, favoringA = 0, favoringB = 0
    for i in 0..<n where adjusted[i] < options.alpha {
      significant += 1
      // Compare the accuracies ca/na and cb/nb without division.
      if sa.correctCounts[i] * nb > sb.correctCounts[i] * na { favoringA += 1 } else { favoringB += 1 }
    }
    let examples = ExampleLevelComparison(
      test: options.test, alpha: options.alpha, exampleCount: n, significantCount: significant,
      significantFraction: Double(significant) / Double(n), significantFavoringA: favoringA,
      significantFavoringB: favoringB, undefinedCount: undefined,
      pValues: options.includePerExample ? pValues : nil,
      adjustedPValues: options.includePerExample ? adjusted : nil)

    // Per class: both summaries list the same classes, those present in the labels.
    let classTests = zip(sa.classes, sb.classes).map { Statistics.welchT($0.modelAccuracies, $1.modelAccuracies) }
    let classAdjusted = try Statistics.benjaminiHochberg(classTests.map(\.pValue))
    var classes: [ClassComparison] = []
    for (j, (ca, cb)) in zip(sa.classes, sb.classes).enumerated() {
      classes.append(ClassComparison(
        classIndex: ca.classIndex, exampleCount: ca.exampleCount, meanAccuracyA: ca.meanAccuracy,
        meanAccuracyB: cb.meanAccuracy, test: classTests[j], adjustedPValue: classAdjusted[j],
        significant: classAdjusted[j] < options.alpha))
    }

    return GroupComparison(
      groupA: a.name, groupB: b.name, modelsA: a.models.map(\.name), modelsB: b.models.map(\.name),
      meanAccuracyA: sa.meanAccuracy, meanAccuracyB: sb.meanAccuracy, examples: examples,
      classes: classes, significantClassCount: classes.filter(\.significant).count,
      distances: distancesValidated(a, b))
  }

  /// Hellinger distance, argmax agreement and mean KL between two groups on the same test set.
  public static func distances(_ a: ModelGroup, _ b: ModelGroup) throws -> PredictionDistances {
    _ = try validateShapes([a, b])
    return distancesValidated(a, b)
  }

  static func distancesValidated(_ a: ModelGroup, _ b: ModelGroup) -> PredictionDistances {
    let n = a.models[0].exampleCount, k = a.models[0].classCount
    let na = Double(a.models.count), nb = Double(b.models.count)
    var histA = [Double](repeating: 0, count: k), histB = histA
    var hellinger = 0.0, agreement = 0.0
    for i in 0..<n {
      for c in 0..<k { histA[c] = 0; histB[c] = 0 }
      for m in a.models { histA[Int(m.predictions[i])] += 1 }
      for m in b.models { histB[Int(m.predictions[i])] += 1 }
      var squared = 0.0, same = 0.0
      for c in 0..<k where histA[c] > 0 || histB[c] > 0 {
        let d = (histA[c] / na).squareRoot() - (histB[c] / nb).squareRoot()
        squared += d * d
        same += histA[c] * histB[c]
      }
      // Rounding can push a distance between identical histograms a hair from 0; clamp to [0, 1].
      hellinger += min(1, (squared / 2).squareRoot())
      agreement += same / (na * nb)
    }

    var meanKL: Double? = nil
    let note: String
    let missing = (a.models + b.models).filter { $0.probabilities == nil }.map(\.name)
    if missing.isEmpty {
      var total = 0.0
      var pa = [Double](repeating: 0, count: k), pb = pa
      for i in 0..<n {
        meanProbabilities(a.models, example: i, into: &pa)
        meanProbabilities(b.models, example: i, into: &pb)
        var kl = 0.0
        for c in 0..<k where pa[c] > 0 {
          kl += pa[c] * log(max(pa[c], klEpsilon) / max(pb[c], klEpsilon))
        }
        // Each mean row sums to 1 only within float rounding, so tiny negative values are noise.
        total += max(0, kl)
      }
      meanKL = total / Double(n)
      note = "KL(mean probabilities of \(a.name) || mean probabilities of \(b.name)) in nats; "
        + "probabilities floored at \(klEpsilon) inside the logarithm"
    } else {
      note = "KL needs probabilities; only argmax predictions are known for "
        + missing.prefix(5).joined(separator: ", ") + (missing.count > 5 ? ", ..." : "")
    }
    return PredictionDistances(meanHellinger: hellinger / Double(n),
                               argmaxAgreement: agreement / Double(n), meanKL: meanKL, klNote: note)
  }

  static func meanProbabilities(_ models: [ModelOutputs], example i: Int, into p: inout [Double]) {
    let k = p.count
    for c in 0..<k { p[c] = 0 }
    for m in models {
      m.probabilities!.withUnsafeBufferPointer { probs in
        for c in 0..<k { p[c] += Double(probs[i * k + c]) }
      }
    }
    let scale = 1 / Double(models.count)
    for c in 0..<k { p[c] *= scale }
  }
}
