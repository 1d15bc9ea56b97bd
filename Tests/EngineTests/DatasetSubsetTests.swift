import Foundation
import XCTest

@testable import Engine

final class DatasetSubsetTests: XCTestCase {
  /// A tiny dataset (1x1x1 images whose pixel is the position) with the given labels and ids.
  static func tiny(labels: [Int32], ids: [Int32]? = nil, numClasses: Int = 3) -> Dataset {
    Dataset(name: "tiny", height: 1, width: 1, channels: 1, numClasses: numClasses,
            pixels: (0..<labels.count).map { UInt8($0 & 0xFF) }, labels: labels, ids: ids)
  }

  // MARK: - First fraction

  func testFirstFractionExactIds() throws {
    let ds = Self.tiny(labels: (0..<10).map { Int32($0 % 3) })
    XCTAssertEqual(try ds.firstFraction(0.25).ids, [0, 1, 2])  // round(2.5) = 3
    XCTAssertEqual(try ds.firstFraction(0.24).ids, [0, 1])
    let half = try ds.firstFraction(0.5)
    XCTAssertEqual(half.ids, [0, 1, 2, 3, 4])
    XCTAssertEqual(half.pixels, [0, 1, 2, 3, 4])
    XCTAssertEqual(half.labels, [0, 1, 2, 0, 1])
    XCTAssertEqual(try ds.firstFraction(1).ids, ds.ids)
    XCTAssertEqual(try ds.firstFraction(0.05).ids, [0])  // round(0.5) = 1
  }

  func testFirstFractionKeepsIds() throws {
    // A dataset that is already a reordered subset: ids travel with the examples.
    let ds = Self.tiny(labels: [2, 1, 0, 2, 1, 0], ids: [50, 40, 30, 20, 10, 0])
    let sub = try ds.firstFraction(0.5)
    XCTAssertEqual(sub.ids, [50, 40, 30])
    XCTAssertEqual(sub.labels, [2, 1, 0])
  }

  func testBadFractions() {
    let ds = Self.tiny(labels: [0, 1, 2, 0])
    for f in [0, -1, 1.5, .nan, -.infinity] {
      assertDatasetError(try ds.firstFraction(f), path: nil, "subset fraction \(f) is outside (0, 1]")
      assertDatasetError(try ds.stratifiedFraction(f, seed: 1), path: nil, "is outside (0, 1]")
    }
    assertDatasetError(try ds.firstFraction(0.1), path: nil, "subset fraction 0.1 of 4 examples selects no example")
    assertDatasetError(try ds.stratifiedFraction(0.1, seed: 0), path: nil, "selects no example")
  }

  // MARK: - Stratified fraction

  /// Class 0: 10 examples, class 1: 20, class 2: 5, interleaved.
  static func unbalanced() -> Dataset {
    var labels = [Int32]()
    labels += Array(repeating: 1, count: 20)
    labels += Array(repeating: 0, count: 10)
    labels += Array(repeating: 2, count: 5)
    var rng = RandomSource(seed: 99)
    for i in stride(from: labels.count - 1, to: 0, by: -1) { labels.swapAt(i, rng.below(i + 1)) }
    return tiny(labels: labels, ids: (0..<Int32(labels.count)).map { 1000 + $0 })
  }

  func testStratifiedCountsOrderAndIds() throws {
    let ds = Self.unbalanced()
    XCTAssertEqual(ds.classCounts(), [10, 20, 5])
    let sub = try ds.stratifiedFraction(0.5, seed: 7)
    XCTAssertEqual(sub.classCounts(), [5, 10, 3])  // round(2.5) = 3
    XCTAssertEqual(sub.count, 18)
    XCTAssertEqual(sub.ids, sub.ids.sorted(), "original order")
    XCTAssertEqual(Set(sub.ids).count, sub.count)
    // Every selected example is the original one (label, pixel, id agree).
    for (k, id) in sub.ids.enumerated() {
      let position = Int(id) - 1000
      XCTAssertEqual(sub.labels[k], ds.labels[position])
      XCTAssertEqual(sub.pixels[k], ds.pixels[position])
    }
    XCTAssertEqual(try ds.stratifiedFraction(0.2, seed: 7).classCounts(), [2, 4, 1])
    XCTAssertEqual(try ds.stratifiedFraction(1, seed: 7).ids, ds.ids)
  }

  func testStratifiedDeterministicBySeed() throws {
    let ds = Self.unbalanced()
    let a = try ds.stratifiedFraction(0.3, seed: 11)
    let b = try ds.stratifiedFraction(0.3, seed: 11)
    XCTAssertEqual(a.ids, b.ids)
    XCTAssertEqual(a.pixels, b.pixels)
    let others = try (12..<20).map { try ds.stratifiedFraction(0.3, seed: UInt64($0)).ids }
    XCTAssertTrue(others.contains { $0 != a.ids }, "different seeds should give different subsets")
    for ids in others { XCTAssertEqual(ids.count, a.count) }
  }

  func testStratifiedSelectionIsSpreadOut() throws {
    // Over many seeds every example of a class gets picked sometimes (not always the first).
    let ds = Self.unbalanced()
    var seen = Set<Int32>()
    for seed in 0..<200 { seen.formUnion(try ds.stratifiedFraction(0.2, seed: UInt64(seed)).ids) }
    XCTAssertEqual(seen, Set(ds.ids))
  }

  // MARK: - Synthetic

  func testSyntheticDeterministicAndBalanced() {
    let a = Dataset.synthetic(count: 53, height: 6, width: 5, channels: 3, numClasses: 4, seed: 3)
    let b = Dataset.synthetic(count: 53, height: 6, width: 5, channels: 3, numClasses: 4, seed: 3)
    let c = Dataset.synthetic(count: 53, height: 6, width: 5, channels: 3, numClasses: 4, seed: 4)
    XCTAssertEqual(a.pixels, b.pixels)
    XCTAssertEqual(a.labels, b.labels)
    XCTAssertNotEqual(a.pixels, c.pixels)
    XCTAssertEqual(a.name, "synthetic")
    XCTAssertEqual([a.height, a.width, a.channels, a.numClasses], [6, 5, 3, 4])
    XCTAssertEqual(a.pixels.count, 53 * 90)
    XCTAssertEqual(a.ids, Array(0..<53))
    XCTAssertEqual(a.classCounts(), [14, 13, 13, 13])
    XCTAssertNotEqual(a.labels, a.labels.sorted(), "labels are shuffled")
    XCTAssertTrue(a.pixels.contains { $0 > 200 } || a.pixels.contains { $0 < 50 }, "pixels use the range")
  }

  /// Nearest class mean (fit on the training split) classifies the test split almost
  /// perfectly: the task is learnable, and train and test share their prototypes.
  func testSyntheticIsLearnable() {
    let splits = DatasetSplits.synthetic(trainCount: 400, testCount: 200, height: 8, width: 8,
                                         channels: 3, numClasses: 10, seed: 5)
    let again = DatasetSplits.synthetic(trainCount: 400, testCount: 200, height: 8, width: 8,
                                        channels: 3, numClasses: 10, seed: 5)
    XCTAssertEqual(splits.test.pixels, again.test.pixels)
    XCTAssertNotEqual(Array(splits.train.pixels.prefix(192 * 10)), Array(splits.test.pixels.prefix(192 * 10)))
    let size = splits.train.imageSize
    var means = [Double](repeating: 0, count: 10 * size)
    let counts = splits.train.classCounts()
    for n in 0..<splits.train.count {
      let k = Int(splits.train.labels[n])
      for i in 0..<size { means[k * size + i] += Double(splits.train.pixels[n * size + i]) / Double(counts[k]) }
    }
    var correct = 0
    for n in 0..<splits.test.count {
      var best = 0, bestDistance = Double.infinity
      for k in 0..<10 {
        var d = 0.0
        for i in 0..<size {
          let e = Double(splits.test.pixels[n * size + i]) - means[k * size + i]
          d += e * e
        }
        if d < bestDistance { bestDistance = d; best = k }
      }
      if best == Int(splits.test.labels[n]) { correct += 1 }
    }
    XCTAssertGreaterThan(Double(correct) / Double(splits.test.count), 0.95)
    // ... while a single example is noisy (it is not just the prototype).
    XCTAssertNotEqual(Array(splits.train.pixels[0..<size]), Array(splits.train.pixels[size..<(2 * size)]))
  }
}
