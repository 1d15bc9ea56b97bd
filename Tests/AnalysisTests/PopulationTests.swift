import Foundation
import XCTest
import Engine
@testable import Analysis

final class PopulationTests: XCTestCase {

  func predictions(_ name: String, _ p: [Int32], classes: Int = 3) throws -> ModelOutputs {
    try ModelOutputs(name: name, predictions: p, classCount: classes)
  }

  func probabilities(_ name: String, _ rows: [[Float]]) throws -> ModelOutputs {
    try ModelOutputs(name: name, probabilities: rows.flatMap { $0 }, classCount: rows[0].count)
  }

  /// Three examples, three classes; argmax A = (0,1,2) for both models, B1 = (0,2,2), B2 = (1,1,2).
  func toyGroups() throws -> (ModelGroup, ModelGroup) {
    let a = ModelGroup(name: "wide", models: [
      try probabilities("a1", [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.3, 0.5]]),
      try probabilities("a2", [[0.6, 0.3, 0.1], [0.3, 0.4, 0.3], [0.1, 0.1, 0.8]]),
    ])
    let b = ModelGroup(name: "deep", models: [
      try probabilities("b1", [[0.5, 0.4, 0.1], [0.2, 0.2, 0.6], [0.1, 0.1, 0.8]]),
      try probabilities("b2", [[0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]]),
    ])
    return (a, b)
  }

  func testArgmaxTakesFirstMaximum() throws {
    let m = try probabilities("m", [[0.4, 0.4, 0.2], [0.1, 0.45, 0.45]])
    XCTAssertEqual(m.predictions, [0, 1])
  }

  func testPerExampleAndPerClassAccuracy() throws {
    let labels: [Int32] = [0, 1, 1, 2]
    let g = ModelGroup(name: "g", models: [try predictions("m1", [0, 1, 0, 2]), try predictions("m2", [0, 1, 1, 1])])
    let acc = try OutputComparison.accuracy(of: g, labels: labels)
    XCTAssertEqual(acc.exampleAccuracies, [1, 1, 0.5, 0.5])
    XCTAssertEqual(acc.modelAccuracies, [0.75, 0.75])
    XCTAssertEqual(acc.meanAccuracy, 0.75)
    XCTAssertEqual(acc.classes.map(\.classIndex), [0, 1, 2])
    XCTAssertEqual(acc.classes.map(\.exampleCount), [1, 2, 1])
    XCTAssertEqual(acc.classes.map(\.modelAccuracies), [[1, 1], [0.5, 1], [1, 0]])
    XCTAssertEqual(acc.classes.map(\.meanAccuracy), [1, 0.75, 0.5])
    XCTAssertNil(try OutputComparison.accuracy(of: g, labels: labels, includePerExample: false).exampleAccuracies)
  }

  func testDistancesOnToyByHand() throws {
    let (a, b) = try toyGroups()
    let d = try OutputComparison.distances(a, b)
    // Examples 0 and 1: histograms (1,0,0) vs (.5,.5,0): H = sqrt(1 - sqrt(.5)); example 2: 0.
    XCTAssertEqual(d.meanHellinger, 2 * (1 - 0.5.squareRoot()).squareRoot() / 3, accuracy: 1e-12)
    // Each (A, B) pair agrees on 2 of 3 examples.
    XCTAssertEqual(d.argmaxAgreement, 2.0 / 3, accuracy: 1e-12)
    // Mean probabilities: A = (.65,.25,.1), (.2,.6,.2), (.15,.2,.65); B = (.35,.55,.1), (.15,.5,.35), (.2,.2,.6).
    let kl0 = 0.65 * log(0.65 / 0.35) + 0.25 * log(0.25 / 0.55) + 0.1 * log(0.1 / 0.1)
    let kl1 = 0.2 * log(0.2 / 0.15) + 0.6 * log(0.6 / 0.5) + 0.2 * log(0.2 / 0.35)
    let kl2 = 0.15 * log(0.15 / 0.2) + 0.2 * log(0.2 / 0.2) + 0.65 * log(0.65 / 0.6)
    XCTAssertEqual(d.meanKL!, (kl0 + kl1 + kl2) / 3, accuracy: 1e-6)  // float inputs
    XCTAssertEqual(d.meanKL!, 0.08971426182421799, accuracy: 1e-6)
  }

  func testHellingerIdenticalIsZeroAndDisjointIsOne() throws {
    let a = ModelGroup(name: "a", models: [try predictions("a1", [0, 1, 2]), try predictions("a2", [1, 1, 2])])
    let same = ModelGroup(name: "same", models: [try predictions("s1", [1, 1, 2]), try predictions("s2", [0, 1, 2])])
    let d0 = try OutputComparison.distances(a, same)
    XCTAssertEqual(d0.meanHellinger, 0, accuracy: 1e-15)
    // Not 1: on example 0 the pairs (a1,s1) and (a2,s2) disagree.
    XCTAssertEqual(d0.argmaxAgreement, (0.5 + 1 + 1) / 3, accuracy: 1e-15)
    let other = ModelGroup(name: "other", models: [try predictions("o", [2, 0, 1])])
    let d1 = try OutputComparison.distances(a, other)
    XCTAssertEqual(d1.meanHellinger, 1, accuracy: 1e-15)
    XCTAssertEqual(d1.argmaxAgreement, 0)
  }

  func testKLNeedsProbabilities() throws {
    let (a, b) = try toyGroups()
    let argmaxOnly = ModelGroup(name: "deep", models: b.models + [try predictions("b3", [0, 1, 2])])
    let d = try OutputComparison.distances(a, argmaxOnly)
    XCTAssertNil(d.meanKL)
    XCTAssertTrue(d.klNote!.contains("needs probabilities"))
    XCTAssertTrue(d.klNote!.contains("b3"))
    XCTAssertNotNil(try OutputComparison.distances(a, b).meanKL)
  }

  func testKLFloorsZeroProbabilitiesInsideTheLog() throws {
    let a = ModelGroup(name: "a", models: [try probabilities("a", [[0.5, 0.5]])])
    let b = ModelGroup(name: "b", models: [try probabilities("b", [[1, 0]])])
    let ab = try OutputComparison.distances(a, b).meanKL!
    XCTAssertEqual(ab, 0.5 * log(0.5) + 0.5 * log(0.5 / OutputComparison.klEpsilon), accuracy: 1e-9)
    // p_A = 0 contributes nothing: KL(b || a) = 1 log(1 / 0.5).
    XCTAssertEqual(try OutputComparison.distances(b, a).meanKL!, log(2), accuracy: 1e-9)
  }

  /// A: 10 models right on all 20 examples; B: 10 models wrong on the first 5.
  func separatedGroups() throws -> (ModelGroup, ModelGroup, [Int32]) {
    let labels = (0..<20).map { Int32($0 % 2) }
    let a = ModelGroup(name: "A", models: try (0..<10).map { try predictions("a\($0)", labels, classes: 2) })
    let wrong = labels.enumerated().map { $0.offset < 5 ? 1 - $0.element : $0.element }
    let b = ModelGroup(name: "B", models: try (0..<10).map { try predictions("b\($0)", wrong, classes: 2) })
    return (a, b, labels)
  }

  func testCompareFindsSeparatedExamples() throws {
    let (a, b, labels) = try separatedGroups()
    let fisher = try OutputComparison.compare(a, b, labels: labels)
    XCTAssertEqual(fisher.examples.significantCount, 5)
    XCTAssertEqual(fisher.examples.significantFraction, 0.25)
    XCTAssertEqual(fisher.examples.significantFavoringA, 5)
    XCTAssertEqual(fisher.examples.significantFavoringB, 0)
    XCTAssertEqual(fisher.examples.undefinedCount, 15)
    // Raw 2/184756 for the five; BH: 2/184756 * 20 / 5.
    XCTAssertEqual(fisher.examples.pValues![0], 2.0 / 184_756, accuracy: 1e-16)
    XCTAssertEqual(fisher.examples.adjustedPValues![0], 2.0 / 184_756 * 4, accuracy: 1e-15)
    XCTAssertEqual(fisher.examples.adjustedPValues![7], 1)
    let z = try OutputComparison.compare(a, b, labels: labels, options: .init(test: .twoProportion))
    XCTAssertEqual(z.examples.significantCount, 5)
    XCTAssertEqual(z.examples.pValues![0], Statistics.normalTwoSidedP(1 / (0.25 * 0.2).squareRoot()), accuracy: 1e-15)
    XCTAssertEqual(fisher.meanAccuracyA, 1)
    XCTAssertEqual(fisher.meanAccuracyB, 0.75)
    let summary = try OutputComparison.compare(a, b, labels: labels, options: .init(includePerExample: false))
    XCTAssertNil(summary.examples.pValues)
    XCTAssertEqual(summary.examples.significantCount, 5)
  }

  func testPerClassWelchUsesPerModelClassAccuracies() throws {
    let labels: [Int32] = [0, 0, 1, 1]
    let a = ModelGroup(name: "A", models: [try predictions("a1", [0, 0, 1, 1], classes: 2),
                                           try predictions("a2", [0, 1, 1, 1], classes: 2),
                                           try predictions("a3", [0, 0, 1, 0], classes: 2)])
    let b = ModelGroup(name: "B", models: [try predictions("b1", [1, 1, 1, 1], classes: 2),
                                           try predictions("b2", [0, 1, 1, 1], classes: 2)])
    let c = try OutputComparison.compare(a, b, labels: labels)
    // Class 0: A (1, .5, 1) vs B (0, .5); class 1: A (1, 1, .5) vs B (1, 1).
    let expected0 = Statistics.welchT([1, 0.5, 1], [0, 0.5])
    let expected1 = Statistics.welchT([1, 1, 0.5], [1, 1])
    XCTAssertEqual(c.classes.map(\.test), [expected0, expected1])
    XCTAssertEqual(c.classes[0].meanAccuracyA, 2.5 / 3, accuracy: 1e-15)
    XCTAssertEqual(c.classes[0].meanAccuracyB, 0.25, accuracy: 1e-15)
    let adjusted = try Statistics.benjaminiHochberg([expected0.pValue, expected1.pValue])
    XCTAssertEqual(c.classes.map(\.adjustedPValue), adjusted)
  }

  func testNullOfIdenticalModelsFindsNothing() throws {
    var rng = RandomSource(seed: 144)
    let n = 300, k = 4
    let labels = (0..<n).map { _ in Int32.random(in: 0..<Int32(k), using: &rng) }
    var rows: [Float] = []
    for _ in 0..<n {
      let raw = (0..<k).map { _ in Float.random(in: 0.01...1, using: &rng) }
      let s = raw.reduce(0, +)
      rows += raw.map { $0 / s }
    }
    let model = try ModelOutputs(name: "m", probabilities: rows, classCount: k)
    let group = ModelGroup(name: "resnet20-k1", models: Array(repeating: model, count: 10))
    for test in [ExampleTest.fisher, .twoProportion] {
      let null = try OutputComparison.nullComparison(group, seed: 7, labels: labels, options: .init(test: test))
      XCTAssertEqual(null.comparison.examples.significantCount, 0)
      XCTAssertEqual(null.comparison.significantClassCount, 0)
      XCTAssertEqual(null.comparison.distances.meanHellinger, 0, accuracy: 1e-12)
      XCTAssertEqual(null.comparison.distances.argmaxAgreement, 1, accuracy: 1e-12)
      XCTAssertEqual(null.comparison.distances.meanKL!, 0, accuracy: 1e-9)
    }
  }

  func testNullSplitIsSeededAndDisjoint() throws {
    let (a, _, labels) = try separatedGroups()
    let first = try OutputComparison.nullComparison(a, seed: 3, labels: labels)
    let again = try OutputComparison.nullComparison(a, seed: 3, labels: labels)
    let other = try OutputComparison.nullComparison(a, seed: 4, labels: labels)
    XCTAssertEqual(first, again)
    let c = first.comparison
    XCTAssertEqual(c.modelsA.count, 5)
    XCTAssertEqual(c.modelsB.count, 5)
    XCTAssertEqual(Set(c.modelsA + c.modelsB), Set(a.models.map(\.name)))
    XCTAssertNotEqual(c.modelsA, other.comparison.modelsA)
    XCTAssertEqual(c.groupA, "A/null-A")
    let odd = OutputComparison.shuffledIndices(7, seed: 1)
    XCTAssertEqual(odd.sorted(), Array(0..<7))
  }

  func testNullNeedsTwoModels() throws {
    let g = ModelGroup(name: "solo", models: [try predictions("m", [0, 1])])
    XCTAssertThrowsError(try OutputComparison.nullComparison(g, seed: 0, labels: [0, 1])) {
      XCTAssertEqual($0 as? PopulationError, .tooFewModelsForNull(group: "solo", count: 1))
    }
  }

  func testValidationErrors() throws {
    XCTAssertThrowsError(try ModelOutputs(name: "neg", probabilities: [1.2, -0.2], classCount: 2)) {
      XCTAssertEqual($0 as? PopulationError, .invalidProbability(model: "neg", example: 0, classIndex: 1, value: -0.2))
    }
    XCTAssertThrowsError(try ModelOutputs(name: "nan", probabilities: [0.5, 0.5, .nan, 0.5], classCount: 2)) {
      guard case .invalidProbability(_, 1, 0, _)? = $0 as? PopulationError else { return XCTFail("\($0)") }
    }
    XCTAssertThrowsError(try ModelOutputs(name: "inf", probabilities: [.infinity, 0], classCount: 2))
    XCTAssertThrowsError(try ModelOutputs(name: "logits", probabilities: [2.5, 0.3], classCount: 2)) {
      guard case .probabilitiesNotNormalised? = $0 as? PopulationError else { return XCTFail("\($0)") }
    }
    XCTAssertThrowsError(try ModelOutputs(name: "ragged", probabilities: [0.5, 0.5, 1], classCount: 2))
    XCTAssertThrowsError(try predictions("p", [0, 3]))

    let two = ModelGroup(name: "two", models: [try predictions("a", [0, 1]), try predictions("b", [1, 1])])
    let longer = ModelGroup(name: "longer", models: [try predictions("c", [0, 1, 2])])
    XCTAssertThrowsError(try OutputComparison.compare(two, longer, labels: [0, 1])) {
      guard case .shapeMismatch(let why)? = $0 as? PopulationError else { return XCTFail("\($0)") }
      XCTAssertTrue(why.contains("model c"))
    }
    let moreClasses = ModelGroup(name: "k4", models: [try predictions("d", [0, 1], classes: 4)])
    XCTAssertThrowsError(try OutputComparison.compare(two, moreClasses, labels: [0, 1])) {
      guard case .shapeMismatch(let why)? = $0 as? PopulationError else { return XCTFail("\($0)") }
      XCTAssertTrue(why.contains("classes"))
    }
    XCTAssertThrowsError(try OutputComparison.compare(two, ModelGroup(name: "none", models: []), labels: [0, 1])) {
      XCTAssertEqual($0 as? PopulationError, .emptyGroup("none"))
    }
    XCTAssertThrowsError(try OutputComparison.accuracy(of: two, labels: [0, 3])) {
      XCTAssertEqual($0 as? PopulationError, .labelOutOfRange(example: 1, label: 3, classCount: 3))
    }
    XCTAssertThrowsError(try OutputComparison.accuracy(of: two, labels: [0]))
    XCTAssertThrowsError(try OutputComparison.compare(two, two, labels: [0, 1])) {
      XCTAssertEqual($0 as? PopulationError, .sameGroup("two"))
    }
    XCTAssertThrowsError(try OutputComparison.compare(two, longer, labels: [0, 1], options: .init(alpha: 0)))
    XCTAssertThrowsError(try OutputComparison.report(populations: ["two": two.models], labels: [0, 1],
                                                     pairs: [GroupPair("two", "three")], nullSplits: [])) {
      XCTAssertEqual($0 as? PopulationError, .unknownGroup("three"))
    }
  }

  func testReportRoundTripsThroughJSON() throws {
    let (a, b, labels) = try separatedGroups()
    let report = try OutputComparison.report(
      populations: ["resnet20-k4": a.models, "resnet56-k1": b.models], labels: labels,
      pairs: [GroupPair("resnet20-k4", "resnet56-k1")],
      nullSplits: [NullSplit("resnet20-k4", seed: 0), NullSplit("resnet56-k1", seed: 1)])
    XCTAssertEqual(report.groups.map(\.group), ["resnet20-k4", "resnet56-k1"])
    XCTAssertEqual(report.exampleCount, 20)
    XCTAssertEqual(report.classCount, 2)
    XCTAssertEqual(report.comparisons.count, 1)
    XCTAssertEqual(report.comparisons[0].examples.significantCount, 5)
    XCTAssertEqual(report.nulls.map(\.group), ["resnet20-k4", "resnet56-k1"])
    XCTAssertEqual(report.nulls.map(\.comparison.examples.significantCount), [0, 0])
    // Predictions only: KL explains itself instead of failing the encoding.
    XCTAssertNil(report.comparisons[0].distances.meanKL)
    let data = try JSONEncoder().encode(report)
    XCTAssertEqual(try JSONDecoder().decode(PopulationReport.self, from: data), report)
  }
}
