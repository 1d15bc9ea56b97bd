import Engine
import Foundation
import XCTest
@testable import Analysis

final class BlockStructureTests: XCTestCase {
  let blocks = 10, perBlock = 3
  /// The algorithm is tested at fixed parameters; the defaults are a calibration (docs/ANALYSIS.md).
  let params = BlockStructureParameters(threshold: 0.9, minBlocks: 3, minContrast: 0)

  /// "input", then 3 representations per block (b<k>.r<j>), then "pool" and "logits".
  func layout() throws -> RepresentationLayout {
    var names = ["input"], indices = [-1]
    for b in 0..<blocks {
      for r in 0..<perBlock { names.append("b\(b).r\(r)"); indices.append(b) }
    }
    names += ["pool", "logits"]
    indices += [blocks, blocks]
    return try RepresentationLayout(names: names, blockIndices: indices, blockCount: blocks)
  }

  /// Position of representation r of block b.
  func position(_ b: Int, _ r: Int = 0) -> Int { 1 + perBlock * b + r }

  var size: Int { 1 + blocks * perBlock + 2 }

  /// Background 0.8^|i-j| (similar neighbours, decaying with distance), with `value` on every
  /// pair inside each of the given ranges of blocks.
  func heatmap(high: [(ClosedRange<Int>, Double)], mask: [Bool]? = nil) throws -> CKAHeatmap {
    let l = size
    var v = [Double](repeating: 0, count: l * l)
    for i in 0..<l {
      for j in 0..<l { v[i * l + j] = pow(0.8, Double(abs(i - j))) }
    }
    for (range, value) in high {
      let lo = position(range.lowerBound), hi = position(range.upperBound, perBlock - 1)
      for i in lo...hi {
        for j in lo...hi where i != j { v[i * l + j] = value }
      }
    }
    return try CKAHeatmap(size: l, values: v, defined: mask)
  }

  func testFindsBlockOverBlocks3To8Exactly() throws {
    let report = try BlockStructureDetector.detect(heatmap: heatmap(high: [(3...8, 0.95)]), layout: layout(), parameters: params)
    XCTAssertTrue(report.hasBlockStructure)
    XCTAssertEqual(report.ranges.count, 1)
    let r = report.ranges[0]
    XCTAssertEqual(r.firstIndex, position(3))
    XCTAssertEqual(r.lastIndex, position(8, 2))
    XCTAssertEqual(r.firstName, "b3.r0")
    XCTAssertEqual(r.lastName, "b8.r2")
    XCTAssertEqual(r.representationCount, 18)
    XCTAssertEqual(r.blocksSpanned, 6)
    XCTAssertEqual(r.firstBlock, 3)
    XCTAssertEqual(r.lastBlock, 8)
    XCTAssertEqual(r.meanCKA, 0.95, accuracy: 1e-12)
    XCTAssertEqual(r.minCKA, 0.95, accuracy: 1e-12)
    XCTAssertEqual(report.coveredBlocks, Array(3...8))
    XCTAssertEqual(report.blocksPresent, 10)
    XCTAssertEqual(report.blockScore, 0.6, accuracy: 1e-12)
    XCTAssertEqual(report.parameters, params)
  }

  func testDecayingHeatmapHasNoBlockStructure() throws {
    let report = try BlockStructureDetector.detect(heatmap: heatmap(high: []), layout: layout(), parameters: params)
    XCTAssertFalse(report.hasBlockStructure)
    XCTAssertEqual(report.ranges, [])
    XCTAssertEqual(report.blockScore, 0)
  }

  func testHighRangeOverTooFewBlocksIsRejected() throws {
    let map = try heatmap(high: [(4...5, 0.99)])
    let detector = try BlockStructureDetector(heatmap: map, layout: layout())
    XCTAssertFalse(try detector.detect(params).hasBlockStructure)
    let two = try detector.detect(BlockStructureParameters(threshold: 0.9, minBlocks: 2, minContrast: 0))
    XCTAssertEqual(two.ranges.map(\.firstIndex), [position(4)])
    XCTAssertEqual(two.ranges.map(\.lastIndex), [position(5, 2)])
    XCTAssertEqual(two.blockScore, 0.2, accuracy: 1e-12)
  }

  func testTwoSeparateBlocksAreBothFound() throws {
    let report = try BlockStructureDetector.detect(
      heatmap: heatmap(high: [(1...3, 0.97), (6...9, 0.93)]), layout: layout(), parameters: params)
    XCTAssertEqual(report.ranges.map(\.firstIndex), [position(1), position(6)])
    XCTAssertEqual(report.ranges.map(\.lastIndex), [position(3, 2), position(9, 2)])
    XCTAssertEqual(report.ranges.map(\.blocksSpanned), [3, 4])
    XCTAssertEqual(report.ranges[0].meanCKA, 0.97, accuracy: 1e-12)
    XCTAssertEqual(report.blockScore, 0.7, accuracy: 1e-12)
  }

  func testUndefinedRowSplitsBlock() throws {
    // The first representation of block 6 is constant: its CKA with everything is undefined.
    let l = size, dead = position(6)
    var mask = [Bool](repeating: true, count: l * l)
    for k in 0..<l { mask[dead * l + k] = false; mask[k * l + dead] = false }
    let report = try BlockStructureDetector.detect(heatmap: heatmap(high: [(3...8, 0.95)], mask: mask),
                                                   layout: layout(), parameters: params)
    XCTAssertEqual(report.ranges.map(\.firstIndex), [position(3), dead + 1])
    XCTAssertEqual(report.ranges.map(\.lastIndex), [dead - 1, position(8, 2)])
    XCTAssertEqual(report.ranges.map(\.blocksSpanned), [3, 3])
  }

  func testSingleUndefinedCellBreaksRangeAndTiesGoToEarlierStart() throws {
    // Undefined pair (b3.r2, b8.r0): no range can hold both. [b3.r0, b7.r2] and [b4.r0, b8.r2]
    // are equally long; the earlier is kept, the other overlaps it and is dropped.
    let l = size, i = position(3, 2), j = position(8)
    var mask = [Bool](repeating: true, count: l * l)
    mask[i * l + j] = false; mask[j * l + i] = false
    let report = try BlockStructureDetector.detect(heatmap: heatmap(high: [(3...8, 0.95)], mask: mask),
                                                   layout: layout(), parameters: params)
    XCTAssertEqual(report.ranges.count, 1)
    XCTAssertEqual(report.ranges[0].firstIndex, position(3))
    XCTAssertEqual(report.ranges[0].lastIndex, position(7, 2))
    XCTAssertEqual(report.coveredBlocks, Array(3...7))
  }

  func testNaNCellsFromRowsAreUndefined() throws {
    var rows = [[1, 0.95, 0.95], [0.95, 1, 0.95], [0.95, 0.95, 1]]
    let layout = try RepresentationLayout(names: ["x", "y", "z"], blockIndices: [0, 1, 2], blockCount: 3)
    XCTAssertTrue(try BlockStructureDetector.detect(heatmap: CKAHeatmap(rows: rows), layout: layout, parameters: params).hasBlockStructure)
    rows[0][2] = .nan; rows[2][0] = .nan
    let map = try CKAHeatmap(rows: rows)
    XCTAssertFalse(map.isDefined(0, 2))
    XCTAssertFalse(try BlockStructureDetector.detect(heatmap: map, layout: layout, parameters: params).hasBlockStructure)
  }

  func testPrefixSumStatisticsMatchDirectComputation() throws {
    var rng = RandomSource(seed: 11)
    let l = size
    var v = [Double](repeating: 1, count: l * l)
    for i in 0..<l {
      for j in (i + 1)..<max(i + 1, l) {
        let x = rng.uniform()
        v[i * l + j] = x; v[j * l + i] = x
      }
    }
    let detector = try BlockStructureDetector(heatmap: CKAHeatmap(size: l, values: v), layout: layout())
    let blockOf = try layout().blockIndices
    for first in 0..<l {
      for last in (first + 1)..<l {
        var sum = 0.0, pairs = 0
        for i in first..<last {
          for j in (i + 1)...last { sum += v[i * l + j]; pairs += 1 }
        }
        XCTAssertEqual(detector.meanCKA(first, last), sum / Double(pairs), accuracy: 1e-12)
        let spanned = Set(blockOf[first...last].filter { $0 >= 0 && $0 < blocks }).count
        XCTAssertEqual(detector.blocksSpanned(first, last), spanned)
      }
    }
  }

  func testCalibrationCurve() throws {
    let curve = try BlockStructureDetector.calibrationCurve(
      heatmap: heatmap(high: [(3...8, 0.95)]), layout: layout(), thresholds: [0.5, 0.9, 0.96], minContrast: 0)
    XCTAssertEqual(curve.map(\.threshold), [0.5, 0.9, 0.96])
    XCTAssertEqual(curve[1].maxSpanBlocks, 6)
    XCTAssertEqual(curve[1].coveredFraction, 0.6, accuracy: 1e-12)
    // Nothing reaches 0.96: the block is 0.95 and neighbours outside it are 0.8.
    XCTAssertEqual(curve[2].maxSpanBlocks, 0)
    XCTAssertEqual(curve[2].coveredFraction, 0)
    XCTAssertGreaterThan(curve[0].maxSpanBlocks, 6)
    XCTAssertGreaterThanOrEqual(curve[0].coveredFraction, 0.6)
  }

  func testLayoutFromResNetConfig() throws {
    let config = ResNetConfig(depth: 20)
    let full = try RepresentationLayout(config: config)
    XCTAssertEqual(full.count, 72)
    XCTAssertEqual(full.blockCount, 9)
    XCTAssertEqual(Array(full.blockIndices.prefix(5)), [-1, -1, -1, -1, 0])
    XCTAssertEqual(Array(full.blockIndices.suffix(3)), [9, 9, 9])
    let outs = try RepresentationSelector.blockOutputs.select(from: config)
    XCTAssertEqual(try RepresentationLayout(config: config, representations: outs).blockIndices, Array(0..<9))
  }

  func testValidationErrors() throws {
    XCTAssertThrowsError(try CKAHeatmap(rows: [[1, 0.9], [0.5, 1]])) {
      guard case .notSymmetric(0, 1, _, _)? = $0 as? BlockStructureError else { return XCTFail("\($0)") }
    }
    XCTAssertNoThrow(try CKAHeatmap(rows: [[1, 0.9], [0.9 + 1e-9, 1]]))
    XCTAssertThrowsError(try CKAHeatmap(size: 2, values: [1, 0.9, 0.9], defined: nil)) {
      guard case .sizeMismatch? = $0 as? BlockStructureError else { return XCTFail("\($0)") }
    }
    XCTAssertThrowsError(try CKAHeatmap(rows: [[1, 0.9], [0.9]]))
    XCTAssertThrowsError(try CKAHeatmap(size: 2, values: [1, 0.9, 0.9, 1], defined: [true, false, true, true])) {
      XCTAssertEqual($0 as? BlockStructureError, .maskNotSymmetric(row: 0, column: 1))
    }
    XCTAssertThrowsError(try CKAHeatmap(size: 2, values: [1, .infinity, .infinity, 1], defined: nil)) {
      guard case .nonFinite? = $0 as? BlockStructureError else { return XCTFail("\($0)") }
    }
    let twoByTwo = try CKAHeatmap(rows: [[1, 0.9], [0.9, 1]])
    XCTAssertThrowsError(try BlockStructureDetector(heatmap: twoByTwo, layout: layout())) {
      guard case .sizeMismatch(let why)? = $0 as? BlockStructureError else { return XCTFail("\($0)") }
      XCTAssertTrue(why.contains("33"))
    }
    XCTAssertThrowsError(try RepresentationLayout(names: ["a", "b"], blockIndices: [1, 0], blockCount: 2)) {
      XCTAssertEqual($0 as? BlockStructureError, .blockIndicesNotOrdered(representation: 1))
    }
    XCTAssertThrowsError(try RepresentationLayout(names: ["a", "b"], blockIndices: [0, 3], blockCount: 2)) {
      XCTAssertEqual($0 as? BlockStructureError, .blockIndexOutOfRange(representation: 1, value: 3, blockCount: 2))
    }
    XCTAssertThrowsError(try RepresentationLayout(names: ["a"], blockIndices: [0, 1], blockCount: 2))
    let detector = try BlockStructureDetector(heatmap: heatmap(high: []), layout: layout())
    XCTAssertThrowsError(try detector.detect(BlockStructureParameters(minBlocks: 0)))
    XCTAssertThrowsError(try detector.detect(BlockStructureParameters(threshold: .nan)))
    XCTAssertThrowsError(try detector.detect(BlockStructureParameters(minContrast: .infinity)))
  }

  // MARK: Contrast

  /// Every block representation pair at `background`, the representations outside the blocks
  /// (input, pool, logits) at `unrelated` with everything, and `value` inside the given ranges.
  func flatHeatmap(background: Double, unrelated: Double,
                   high: [(ClosedRange<Int>, Double)] = []) throws -> CKAHeatmap {
    let l = size
    var v = [Double](repeating: background, count: l * l)
    let outside = [0, l - 2, l - 1]
    for o in outside {
      for j in 0..<l { v[o * l + j] = unrelated; v[j * l + o] = unrelated }
    }
    for (range, value) in high {
      let lo = position(range.lowerBound), hi = position(range.upperBound, perBlock - 1)
      for i in lo...hi {
        for j in lo...hi where i != j { v[i * l + j] = value }
      }
    }
    return try CKAHeatmap(size: l, values: v)
  }

  func testUniformlyHighHeatmapHasNoBlockStructureWithContrast() throws {
    // Small nets on easy data look like this: CKA above the threshold everywhere, no square.
    let detector = try BlockStructureDetector(heatmap: flatHeatmap(background: 0.97, unrelated: 0.3), layout: layout())
    let without = try detector.detect(BlockStructureParameters(threshold: 0.95, minBlocks: 3, minContrast: 0))
    XCTAssertTrue(without.hasBlockStructure)
    XCTAssertEqual(without.blockScore, 1)
    // Every block representation is inside the range: nothing to stand out from.
    XCTAssertNil(without.ranges[0].outsideCKA)
    let with = try detector.detect(BlockStructureParameters(threshold: 0.95, minBlocks: 3, minContrast: 0.01))
    XCTAssertFalse(with.hasBlockStructure)
    XCTAssertEqual(with.blockScore, 0)
  }

  func testContrastIsMeanCKAMinusMeanCKAToOtherBlockRepresentations() throws {
    // Block 3...8 at 0.95 over a 0.6 background; input/pool/logits (0.1) are not blocks and
    // do not count, so the contrast is exactly 0.95 - 0.6.
    let map = try flatHeatmap(background: 0.6, unrelated: 0.1, high: [(3...8, 0.95)])
    let detector = try BlockStructureDetector(heatmap: map, layout: layout())
    let found = try detector.detect(BlockStructureParameters(threshold: 0.9, minBlocks: 3, minContrast: 0.35))
    XCTAssertEqual(found.ranges.count, 1)
    let r = found.ranges[0]
    XCTAssertEqual(r.firstIndex, position(3))
    XCTAssertEqual(r.lastIndex, position(8, 2))
    XCTAssertEqual(r.outsideCKA ?? -1, 0.6, accuracy: 1e-12)
    XCTAssertEqual(r.contrast ?? -1, 0.35, accuracy: 1e-12)
    XCTAssertEqual(found.parameters.minContrast, 0.35)
    XCTAssertFalse(try detector.detect(BlockStructureParameters(threshold: 0.9, minBlocks: 3, minContrast: 0.36)).hasBlockStructure)
    let curve = try detector.calibrationCurve(thresholds: [0.9, 0.96], minBlocks: 3, minContrast: 0.36)
    XCTAssertEqual(curve[0].maxContrast ?? -1, 0.35, accuracy: 1e-12)
    XCTAssertEqual(curve[0].maxSpanBlocks, 0)
    XCTAssertEqual(curve[0].coveredFraction, 0)
    XCTAssertNil(curve[1].maxContrast)
  }

  func testOutsideCKAMatchesDirectComputation() throws {
    var rng = RandomSource(seed: 12)
    let l = size
    var v = [Double](repeating: 1, count: l * l)
    var mask = [Bool](repeating: true, count: l * l)
    for i in 0..<l {
      for j in (i + 1)..<max(i + 1, l) {
        let x = rng.uniform()
        v[i * l + j] = x; v[j * l + i] = x
        if rng.uniform() < 0.05 { mask[i * l + j] = false; mask[j * l + i] = false }
      }
    }
    let lay = try layout()
    let detector = try BlockStructureDetector(heatmap: CKAHeatmap(size: l, values: v, defined: mask), layout: lay)
    let isBlock = lay.blockIndices.map { $0 >= 0 && $0 < blocks }
    for first in 0..<l {
      for last in first..<l {
        var sum = 0.0, count = 0
        for i in first...last {
          for j in 0..<l where !(first...last).contains(j) && isBlock[j] && mask[i * l + j] {
            sum += v[i * l + j]; count += 1
          }
        }
        if count == 0 {
          XCTAssertNil(detector.outsideCKA(first, last))
        } else {
          XCTAssertEqual(detector.outsideCKA(first, last) ?? -1, sum / Double(count), accuracy: 1e-12)
        }
      }
    }
  }

  func testDefaultsAreTheCalibratedOnes() {
    // Calibrated on CIFAR-10 heatmaps (docs/ANALYSIS.md, "Block structure: calibration"): at
    // 0.95 the no-block models' longest range spans at most 3 blocks, the block model's 18.
    let d = BlockStructureParameters()
    XCTAssertEqual(d.threshold, 0.95)
    XCTAssertEqual(d.minBlocks, 5)
    // Fashion-MNIST and CIFAR-10 heatmaps: the small nets' best 5-block contrast at 0.95 is
    // 0.08, the block-structured models' 0.25 to 0.51.
    XCTAssertEqual(d.minContrast, 0.15)
  }

  func testReportRoundTripsThroughJSON() throws {
    let report = try BlockStructureDetector.detect(heatmap: heatmap(high: [(3...8, 0.95)]), layout: layout(), parameters: params)
    let data = try JSONEncoder().encode(report)
    XCTAssertEqual(try JSONDecoder().decode(BlockStructureReport.self, from: data), report)
  }
}
