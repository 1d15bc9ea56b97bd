import Engine
import Foundation

// Nguyen et al. 2021: the "block structure" of an over-parameterized network is a large
// contiguous range of layers whose representations are all nearly the same (within-model CKA
// near 1), spanning many residual blocks. This file finds such ranges in one model's CKA
// heatmap.

/// A within-model CKA heatmap: L x L, symmetric, row-major. Cells whose CKA is undefined (a
/// constant representation has zero HSIC with itself) are marked in `defined`.
public struct CKAHeatmap: Codable, Sendable, Equatable {
  public let size: Int
  public let values: [Double]
  /// Row-major like `values`; nil means every cell is defined.
  public let defined: [Bool]?

  /// How far h[i][j] and h[j][i] may differ. Both come from the same accumulated dot products,
  /// so anything beyond rounding means the matrix is not a within-model heatmap.
  public static let symmetryTolerance = 1e-6

  /// Checks the shape, symmetry (of values and mask) and finiteness of the defined cells. The
  /// diagonal is not checked and never used: only pairs of distinct representations count.
  public init(size: Int, values: [Double], defined: [Bool]? = nil) throws {
    guard size >= 1 else { throw BlockStructureError.sizeMismatch("heatmap size \(size), expected at least 1") }
    guard values.count == size * size else {
      throw BlockStructureError.sizeMismatch("\(values.count) heatmap values for a \(size) x \(size) heatmap")
    }
    if let defined, defined.count != size * size {
      throw BlockStructureError.sizeMismatch("\(defined.count) mask cells for a \(size) x \(size) heatmap")
    }
    for i in 0..<size {
      for j in (i + 1)..<max(i + 1, size) {
        let dij = defined?[i * size + j] ?? true, dji = defined?[j * size + i] ?? true
        if dij != dji { throw BlockStructureError.maskNotSymmetric(row: i, column: j) }
        guard dij else { continue }
        let a = values[i * size + j], b = values[j * size + i]
        guard a.isFinite else { throw BlockStructureError.nonFinite(row: i, column: j, value: a) }
        guard b.isFinite else { throw BlockStructureError.nonFinite(row: j, column: i, value: b) }
        if abs(a - b) > Self.symmetryTolerance {
          throw BlockStructureError.notSymmetric(row: i, column: j, value: a, mirrored: b)
        }
      }
    }
    self.size = size
    self.values = values
    self.defined = defined
  }

  /// From nested rows; NaN cells count as undefined when no mask is given.
  public init(rows: [[Double]], defined: [[Bool]]? = nil) throws {
    let l = rows.count
    if let bad = rows.firstIndex(where: { $0.count != l }) {
      throw BlockStructureError.sizeMismatch("row \(bad) has \(rows[bad].count) values, expected \(l)")
    }
    if let defined, defined.count != l || defined.contains(where: { $0.count != l }) {
      throw BlockStructureError.sizeMismatch("the mask is not \(l) x \(l)")
    }
    let flat = rows.flatMap { $0 }
    let mask = defined.map { $0.flatMap { $0 } }
      ?? (flat.contains(where: \.isNaN) ? flat.map { !$0.isNaN } : nil)
    try self.init(size: l, values: flat, defined: mask)
  }

  public func isDefined(_ i: Int, _ j: Int) -> Bool { defined?[i * size + j] ?? true }
  public subscript(i: Int, j: Int) -> Double { values[i * size + j] }
}

/// Which block each representation belongs to, in forward order.
///
/// Blocks are numbered 0..<blockCount in forward order. A representation outside every block
/// gets the index of the nearest block boundary: -1 before the first block (input, stem.*),
/// blockCount after the last (pool, logits, probs). Those two values never count as blocks.
/// Indices must be non-decreasing, which is what forward order gives; that makes "how many
/// blocks does a contiguous range span" an O(1) question.
public struct RepresentationLayout: Codable, Sendable, Equatable {
  public let names: [String]
  public let blockIndices: [Int]
  /// Blocks of the model, whether or not every one has a representation in this layout.
  public let blockCount: Int

  public init(names: [String], blockIndices: [Int], blockCount: Int) throws {
    guard names.count == blockIndices.count else {
      throw BlockStructureError.sizeMismatch("\(names.count) names but \(blockIndices.count) block indices")
    }
    guard blockCount >= 1 else { throw BlockStructureError.invalidParameter("blockCount \(blockCount), expected at least 1") }
    for (i, b) in blockIndices.enumerated() {
      guard b >= -1 && b <= blockCount else {
        throw BlockStructureError.blockIndexOutOfRange(representation: i, value: b, blockCount: blockCount)
      }
      if i > 0 && b < blockIndices[i - 1] { throw BlockStructureError.blockIndicesNotOrdered(representation: i) }
    }
    self.names = names
    self.blockIndices = blockIndices
    self.blockCount = blockCount
  }

  /// The layout of a subset (or all, when nil) of a model's representations, in forward order.
  public init(config: ResNetConfig, representations: [Representation]? = nil) throws {
    let all = config.representations
    let chosen = representations ?? all
    let blockNames = config.blocks.map(\.name)
    let blockOf = Dictionary(uniqueKeysWithValues: blockNames.enumerated().map { ($1, $0) })
    let position = Dictionary(uniqueKeysWithValues: all.enumerated().map { ($1.name, $0) })
    let firstBlockRep = all.firstIndex { $0.block != nil } ?? all.count
    var indices: [Int] = []
    for r in chosen {
      guard let p = position[r.name] else {
        throw BlockStructureError.sizeMismatch("representation \(r.name) is not one of \(config.name)")
      }
      if let b = all[p].block {
        guard let index = blockOf[b] else {
          throw BlockStructureError.sizeMismatch("block \(b) of \(r.name) is not one of \(config.name)")
        }
        indices.append(index)
      } else {
        indices.append(p < firstBlockRep ? -1 : blockNames.count)
      }
    }
    try self.init(names: chosen.map(\.name), blockIndices: indices, blockCount: blockNames.count)
  }

  public var count: Int { names.count }
}

public struct BlockStructureParameters: Codable, Sendable, Equatable {
  /// Calibrated on real heatmaps (docs/ANALYSIS.md, "Block structure: calibration"): at 0.95
  /// the longest qualifying range of the models without block structure spans at most 3
  /// blocks, that of the model with it 18; 5 blocks leaves a margin on both sides, and over
  /// thresholds 0.93 to 0.97. Every default in this module reads these constants.
  public static let defaultThreshold = 0.95
  public static let defaultMinBlocks = 5
  /// A high mean CKA alone does not make a block: small nets trained on easy data (Fashion-MNIST)
  /// have CKA above 0.9 between almost all layers, which is no structure at all. The paper's
  /// block is a square that stands out from the rest of the heatmap, so a range must also exceed
  /// the mean CKA between itself and the other block representations by this much. Calibrated
  /// at threshold 0.95 (docs/ANALYSIS.md): the largest contrast of a 5-block range in the small
  /// Fashion-MNIST nets is 0.08, in the models with visible block structure 0.25 to 0.51.
  public static let defaultMinContrast = 0.15

  /// A range qualifies when the mean CKA over its pairs of distinct representations is at least
  /// this.
  public var threshold: Double
  /// ... and its representations belong to at least this many distinct blocks.
  public var minBlocks: Int
  /// ... and its mean CKA exceeds its contrast reference (`BlockRange.outsideCKA`) by at least
  /// this. 0 or less: no contrast condition (a range covering every block then qualifies too).
  public var minContrast: Double

  public init(threshold: Double = Self.defaultThreshold, minBlocks: Int = Self.defaultMinBlocks,
              minContrast: Double = Self.defaultMinContrast) {
    self.threshold = threshold
    self.minBlocks = minBlocks
    self.minContrast = minContrast
  }
}

/// One detected block-structure range [firstIndex, lastIndex] of representations.
public struct BlockRange: Codable, Sendable, Equatable {
  public var firstIndex: Int
  public var lastIndex: Int
  public var firstName: String
  public var lastName: String
  public var representationCount: Int
  /// Distinct blocks (0..<blockCount) with a representation in the range.
  public var blocksSpanned: Int
  /// The first and last block touched, nil when the range touches no block.
  public var firstBlock: Int?
  public var lastBlock: Int?
  /// Over the pairs of distinct representations in the range.
  public var meanCKA: Double
  public var minCKA: Double
  /// Mean CKA between the range's representations and the block representations outside it
  /// (defined pairs only); nil when every block representation is inside the range.
  public var outsideCKA: Double?
  /// meanCKA - outsideCKA: how far the range stands out from the rest of the network.
  public var contrast: Double? { outsideCKA.map { meanCKA - $0 } }
}

public struct BlockStructureReport: Codable, Sendable, Equatable {
  public var parameters: BlockStructureParameters
  public var representationCount: Int
  /// Blocks with at least one representation in the layout: the denominator of `blockScore`.
  public var blocksPresent: Int
  /// Non-overlapping, in forward order.
  public var ranges: [BlockRange]
  /// Blocks with at least one representation inside a detected range.
  public var coveredBlocks: [Int]
  /// The fraction of the model's blocks (those present in the layout) covered by detected
  /// ranges, in [0, 1]: 0 without block structure, 1 when it takes the whole network.
  public var blockScore: Double
  public var hasBlockStructure: Bool
}

/// One row of a calibration table: what a threshold would find in one model.
public struct CalibrationPoint: Codable, Sendable, Equatable {
  public var threshold: Double
  /// The most blocks any contiguous range with mean CKA >= threshold (and contrast >=
  /// minContrast) spans, minBlocks ignored; 0 when no range of two or more representations
  /// qualifies.
  public var maxSpanBlocks: Int
  /// `blockScore` of detection at this threshold (with minBlocks and minContrast applied).
  public var coveredFraction: Double
  /// The largest contrast (mean CKA minus the mean CKA to the block representations outside)
  /// of any range with mean CKA >= threshold spanning >= minBlocks blocks; nil when none.
  public var maxContrast: Double?
}

public enum BlockStructureError: Error, CustomStringConvertible, Equatable {
  case sizeMismatch(String)
  case notSymmetric(row: Int, column: Int, value: Double, mirrored: Double)
  case maskNotSymmetric(row: Int, column: Int)
  case nonFinite(row: Int, column: Int, value: Double)
  case blockIndexOutOfRange(representation: Int, value: Int, blockCount: Int)
  case blockIndicesNotOrdered(representation: Int)
  case invalidParameter(String)

  public var description: String {
    switch self {
    case .sizeMismatch(let why): return "size mismatch: \(why)"
    case .notSymmetric(let i, let j, let a, let b):
      return "heatmap is not symmetric: [\(i)][\(j)] = \(a) but [\(j)][\(i)] = \(b)"
    case .maskNotSymmetric(let i, let j):
      return "definedness mask is not symmetric at [\(i)][\(j)]"
    case .nonFinite(let i, let j, let v):
      return "heatmap cell [\(i)][\(j)] is \(v) but marked defined"
    case .blockIndexOutOfRange(let r, let v, let b):
      return "representation \(r) has block index \(v), expected -1...\(b)"
    case .blockIndicesNotOrdered(let r):
      return "block indices decrease at representation \(r); representations must be in forward order"
    case .invalidParameter(let why): return why
    }
  }
}

/// Finds block structure in one model's within-model CKA heatmap.
///
/// 2-D prefix sums of the heatmap (and of the undefined cells) make the mean CKA of any
/// contiguous range O(1), so all O(L^2) ranges can be tried (L <= ~600 representations).
public struct BlockStructureDetector: Sendable {
  public let heatmap: CKAHeatmap
  public let layout: RepresentationLayout

  /// Mean CKA is compared with the threshold allowing for the rounding of the prefix sums, so
  /// that a range whose every pair is exactly at the threshold still qualifies.
  static let meanTolerance = 1e-9

  /// (L+1) x (L+1) prefix sums over off-diagonal cells: of defined values, and of undefined cells.
  let valueSums: [Double]
  let undefinedSums: [Int]
  /// The same over cells whose column is a block representation (the contrast reference), and
  /// prefix sums over rows of those cells' row totals.
  let blockColumnSums: [Double]
  let blockColumnCounts: [Int]
  let blockRowTotals: [Double]
  let blockRowCounts: [Int]
  /// blockStarts[p] = number of positions q < p that begin a new block (0..<blockCount).
  let blockStarts: [Int]
  let blocksPresent: [Int]

  public init(heatmap: CKAHeatmap, layout: RepresentationLayout) throws {
    guard heatmap.size == layout.count else {
      throw BlockStructureError.sizeMismatch(
        "heatmap is \(heatmap.size) x \(heatmap.size) but the layout has \(layout.count) representations")
    }
    self.heatmap = heatmap
    self.layout = layout
    let l = heatmap.size, w = l + 1
    var sums = [Double](repeating: 0, count: w * w)
    var undefined = [Int](repeating: 0, count: w * w)
    for i in 0..<l {
      for j in 0..<l {
        var v = 0.0, u = 0
        if i != j {
          if heatmap.isDefined(i, j) { v = heatmap[i, j] } else { u = 1 }
        }
        sums[(i + 1) * w + j + 1] = v + sums[i * w + j + 1] + sums[(i + 1) * w + j] - sums[i * w + j]
        undefined[(i + 1) * w + j + 1] = u + undefined[i * w + j + 1] + undefined[(i + 1) * w + j] - undefined[i * w + j]
      }
    }
    valueSums = sums
    undefinedSums = undefined
    let b = layout.blockIndices, isBlock = { (x: Int) in x >= 0 && x < layout.blockCount }
    var columnSums = [Double](repeating: 0, count: w * w), columnCounts = [Int](repeating: 0, count: w * w)
    var rowTotals = [Double](repeating: 0, count: w), rowCounts = [Int](repeating: 0, count: w)
    for i in 0..<l {
      var rowTotal = 0.0, rowCount = 0
      for j in 0..<l {
        var v = 0.0, u = 0
        if i != j && isBlock(b[j]) && heatmap.isDefined(i, j) { v = heatmap[i, j]; u = 1 }
        rowTotal += v
        rowCount += u
        columnSums[(i + 1) * w + j + 1] = v + columnSums[i * w + j + 1] + columnSums[(i + 1) * w + j] - columnSums[i * w + j]
        columnCounts[(i + 1) * w + j + 1] = u + columnCounts[i * w + j + 1] + columnCounts[(i + 1) * w + j] - columnCounts[i * w + j]
      }
      rowTotals[i + 1] = rowTotals[i] + rowTotal
      rowCounts[i + 1] = rowCounts[i] + rowCount
    }
    blockColumnSums = columnSums
    blockColumnCounts = columnCounts
    blockRowTotals = rowTotals
    blockRowCounts = rowCounts
    var starts = [Int](repeating: 0, count: l + 1)
    for p in 0..<l {
      let begins = isBlock(b[p]) && (p == 0 || b[p - 1] != b[p])
      starts[p + 1] = starts[p] + (begins ? 1 : 0)
    }
    blockStarts = starts
    blocksPresent = Array(Set(b.filter(isBlock))).sorted()
  }

  /// Convenience: detection in one call.
  public static func detect(heatmap: CKAHeatmap, layout: RepresentationLayout,
                            parameters: BlockStructureParameters = .init()) throws -> BlockStructureReport {
    try BlockStructureDetector(heatmap: heatmap, layout: layout).detect(parameters)
  }

  // MARK: O(1) range statistics

  /// Mean CKA over the pairs of distinct representations in first...last (needs two or more).
  public func meanCKA(_ first: Int, _ last: Int) -> Double {
    let n = last - first + 1
    precondition(first >= 0 && last < heatmap.size && n >= 2, "meanCKA needs a range of 2 or more")
    return rectangle(valueSums, first, last) / Double(n * (n - 1))
  }

  /// Whether every pair in first...last has a defined CKA.
  public func isFullyDefined(_ first: Int, _ last: Int) -> Bool {
    rectangle(undefinedSums, first, last) == 0
  }

  /// Mean CKA between the representations of first...last and the block representations
  /// outside it (defined pairs only); nil when there are none.
  public func outsideCKA(_ first: Int, _ last: Int) -> Double? {
    precondition(first >= 0 && last < heatmap.size && first <= last, "outsideCKA needs a range")
    let count = blockRowCounts[last + 1] - blockRowCounts[first] - rectangle(blockColumnCounts, first, last)
    guard count > 0 else { return nil }
    let sum = blockRowTotals[last + 1] - blockRowTotals[first] - rectangle(blockColumnSums, first, last)
    return sum / Double(count)
  }

  /// Distinct blocks (0..<blockCount) with a representation in first...last.
  public func blocksSpanned(_ first: Int, _ last: Int) -> Int {
    let b = layout.blockIndices[first]
    let firstCounts = b >= 0 && b < layout.blockCount ? 1 : 0
    return firstCounts + blockStarts[last + 1] - blockStarts[first + 1]
  }

  func rectangle<T: AdditiveArithmetic>(_ s: [T], _ first: Int, _ last: Int) -> T {
    let w = heatmap.size + 1, a = first, b = last + 1
    return s[b * w + b] - s[a * w + b] - s[b * w + a] + s[a * w + a]
  }

  /// Whether first...last can be a block-structure range at `threshold`, minBlocks aside.
  /// An undefined pair disqualifies the whole range: undefined means "not similar", and one
  /// pair that cannot be called similar is enough to withhold the claim that the range is one
  /// representation. (Counting it as CKA 0 instead would let a long range absorb it.)
  ///
  /// With `minContrast` > 0 the range must also stand out: its mean CKA must exceed the mean CKA
  /// between it and the block representations outside it by `minContrast`. A range with no
  /// block representation outside it has nothing to stand out from and does not qualify.
  func qualifies(_ first: Int, _ last: Int, threshold: Double, minContrast: Double = 0) -> Bool {
    guard last > first && isFullyDefined(first, last) else { return false }
    let mean = meanCKA(first, last)
    guard mean >= threshold - Self.meanTolerance else { return false }
    if minContrast <= 0 { return true }
    guard let outside = outsideCKA(first, last) else { return false }
    return mean - outside >= minContrast - Self.meanTolerance
  }

  // MARK: Detection

  /// Maximal contiguous ranges of representations with mean pairwise CKA >= threshold that span
  /// >= minBlocks distinct blocks; among those, non-overlapping ones chosen greedily, longest
  /// first (ties: earlier first). Reported in forward order.
  public func detect(_ parameters: BlockStructureParameters = .init()) throws -> BlockStructureReport {
    guard parameters.threshold.isFinite else {
      throw BlockStructureError.invalidParameter("threshold \(parameters.threshold) is not finite")
    }
    guard parameters.minContrast.isFinite else {
      throw BlockStructureError.invalidParameter("minContrast \(parameters.minContrast) is not finite")
    }
    guard parameters.minBlocks >= 1 else {
      throw BlockStructureError.invalidParameter("minBlocks \(parameters.minBlocks), expected at least 1")
    }
    let chosen = select(maximalCandidates(parameters))
    let ranges = chosen.map(describe)
    var covered = Set<Int>()
    for r in chosen {
      for p in r.0...r.1 where layout.blockIndices[p] >= 0 && layout.blockIndices[p] < layout.blockCount {
        covered.insert(layout.blockIndices[p])
      }
    }
    let score = blocksPresent.isEmpty ? 0 : Double(covered.count) / Double(blocksPresent.count)
    return BlockStructureReport(
      parameters: parameters, representationCount: heatmap.size, blocksPresent: blocksPresent.count,
      ranges: ranges, coveredBlocks: covered.sorted(), blockScore: score,
      hasBlockStructure: !ranges.isEmpty)
  }

  /// For each start i, the longest qualifying range [i, J(i)]; it is maximal (inside no other
  /// qualifying range) exactly when J(i) exceeds J of every earlier start.
  func maximalCandidates(_ parameters: BlockStructureParameters) -> [(Int, Int)] {
    let l = heatmap.size
    var candidates: [(Int, Int)] = []
    var furthest = -1
    for i in 0..<l {
      var j = l - 1
      while j > furthest && j > i {
        if blocksSpanned(i, j) >= parameters.minBlocks && qualifies(i, j, threshold: parameters.threshold, minContrast: parameters.minContrast) {
          break
        }
        j -= 1
      }
      if j > furthest && j > i {
        candidates.append((i, j))
        furthest = j
      }
    }
    return candidates
  }

  /// Longest first, ties to the earlier start; a candidate overlapping a chosen one is dropped.
  func select(_ candidates: [(Int, Int)]) -> [(Int, Int)] {
    let ordered = candidates.sorted { a, b in
      let la = a.1 - a.0, lb = b.1 - b.0
      return la != lb ? la > lb : a.0 < b.0
    }
    var chosen: [(Int, Int)] = []
    for c in ordered where !chosen.contains(where: { c.0 <= $0.1 && $0.0 <= c.1 }) {
      chosen.append(c)
    }
    return chosen.sorted { $0.0 < $1.0 }
  }

  func describe(_ r: (Int, Int)) -> BlockRange {
    let (first, last) = r
    var minimum = Double.infinity
    for i in first..<last {
      for j in (i + 1)...last { minimum = min(minimum, heatmap[i, j]) }
    }
    let blocks = layout.blockIndices[first...last].filter { $0 >= 0 && $0 < layout.blockCount }
    return BlockRange(
      firstIndex: first, lastIndex: last, firstName: layout.names[first], lastName: layout.names[last],
      representationCount: last - first + 1, blocksSpanned: blocksSpanned(first, last),
      firstBlock: blocks.first, lastBlock: blocks.last, meanCKA: meanCKA(first, last), minCKA: minimum,
      outsideCKA: outsideCKA(first, last))
  }

  // MARK: Calibration

  /// Convenience: the calibration curve in one call.
  public static func calibrationCurve(heatmap: CKAHeatmap, layout: RepresentationLayout,
                                      thresholds: [Double],
                                      minBlocks: Int = BlockStructureParameters.defaultMinBlocks,
                                      minContrast: Double = BlockStructureParameters.defaultMinContrast) throws -> [CalibrationPoint] {
    try BlockStructureDetector(heatmap: heatmap, layout: layout)
      .calibrationCurve(thresholds: thresholds, minBlocks: minBlocks, minContrast: minContrast)
  }

  /// For each threshold: the most blocks any range qualifying at (threshold, minContrast) spans
  /// (minBlocks ignored), the largest contrast of a range reaching the threshold and spanning
  /// minBlocks (minContrast ignored), and the block score detection would report. Printed over
  /// many models, it shows which (threshold, contrast) pairs separate models with block
  /// structure from models without.
  public func calibrationCurve(thresholds: [Double],
                               minBlocks: Int = BlockStructureParameters.defaultMinBlocks,
                               minContrast: Double = BlockStructureParameters.defaultMinContrast) throws -> [CalibrationPoint] {
    try thresholds.map { t in
      let report = try detect(BlockStructureParameters(threshold: t, minBlocks: minBlocks, minContrast: minContrast))
      var best = 0
      var bestContrast: Double? = nil
      let l = heatmap.size
      for i in 0..<l {
        // Spans only grow with j, so stop at the first (longest) qualifying end.
        var j = l - 1
        while j > i && blocksSpanned(i, j) > best {
          if qualifies(i, j, threshold: t, minContrast: minContrast) { best = blocksSpanned(i, j); break }
          j -= 1
        }
        for j in stride(from: l - 1, to: i, by: -1) {
          if blocksSpanned(i, j) < minBlocks { break }
          guard qualifies(i, j, threshold: t), let outside = outsideCKA(i, j) else { continue }
          let c = meanCKA(i, j) - outside
          if bestContrast == nil || c > bestContrast! { bestContrast = c }
        }
      }
      return CalibrationPoint(threshold: t, maxSpanBlocks: best, coveredFraction: report.blockScore,
                              maxContrast: bestContrast)
    }
  }
}
