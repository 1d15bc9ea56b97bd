import Analysis
import ArgumentParser
import Foundation

/// Block-structure detection on saved within-model heatmaps (heatmap.json from `analyze`),
/// with the calibration table: per heatmap and threshold, the longest range (in blocks) whose
/// mean CKA reaches the threshold and the fraction of blocks detection would cover.
struct BlocksCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "blocks",
    abstract: "Block structure and its calibration table from saved heatmaps.")

  @Argument(help: "heatmap.json files written by `analyze` (within-model heatmaps).") var heatmaps: [String]
  @Option(help: "Comma-separated thresholds for the calibration table.")
  var thresholds = "0.8,0.85,0.9,0.93,0.95,0.97"
  @Option(help: "Detection threshold (mean CKA).") var threshold = BlockStructureParameters.defaultThreshold
  @Option(name: .customLong("min-blocks")) var minBlocks = BlockStructureParameters.defaultMinBlocks

  func validate() throws {
    guard !heatmaps.isEmpty else { throw ValidationError("give at least one heatmap.json") }
    guard thresholds.split(separator: ",").allSatisfy({ Double($0) != nil }) else {
      throw ValidationError("--thresholds must be comma-separated numbers")
    }
  }

  /// Block index of each representation from its name ("sX.bY.*"), -1 before the first block
  /// and B after the last.
  static func layout(_ names: [String]) throws -> RepresentationLayout {
    var order: [String: Int] = [:]
    var blockOf: [Int?] = []
    for n in names {
      let parts = n.split(separator: ".")
      if parts.count >= 3, parts[0].hasPrefix("s"), parts[1].hasPrefix("b") {
        let b = "\(parts[0]).\(parts[1])"
        if order[b] == nil { order[b] = order.count }
        blockOf.append(order[b])
      } else {
        blockOf.append(nil)
      }
    }
    let count = max(1, order.count)
    var seen = false
    let indices = blockOf.map { b -> Int in
      if let b { seen = true; return b }
      return seen ? count : -1
    }
    return try RepresentationLayout(names: names, blockIndices: indices, blockCount: count)
  }

  func run() throws {
    let ts = thresholds.split(separator: ",").compactMap { Double($0) }
    print("heatmap".padding(toLength: 40, withPad: " ", startingAt: 0) + " detected (t=\(threshold), min \(minBlocks))  | "
          + ts.map { String(format: "t=%.2f span,cover", $0) }.joined(separator: " | "))
    for path in heatmaps {
      let h: CKAHeatmapResult
      do {
        h = try JSONDecoder().decode(CKAHeatmapResult.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
      } catch {
        printError("error: cannot read \(path): \(error)")
        throw ExitCode.failure
      }
      guard h.rowNames == h.columnNames else {
        printError("error: \(path) is a cross-model heatmap; block structure needs a within-model one")
        throw ExitCode.failure
      }
      let map = try CKAHeatmap(size: h.rowNames.count, values: h.values, defined: h.defined)
      let detector = try BlockStructureDetector(heatmap: map, layout: try Self.layout(h.rowNames))
      let report = try detector.detect(BlockStructureParameters(threshold: threshold, minBlocks: minBlocks))
      let curve = try detector.calibrationCurve(thresholds: ts, minBlocks: minBlocks)
      let found = report.ranges.map { "\($0.firstName)..\($0.lastName)" }.joined(separator: " ")
      print(String(path.suffix(40)).padding(toLength: 40, withPad: " ", startingAt: 0)
            + String(format: " score %.2f %@ | ", report.blockScore, found.isEmpty ? "none" : found)
            + curve.map { String(format: "%2d, %.2f", $0.maxSpanBlocks, $0.coveredFraction) }.joined(separator: " | "))
    }
  }
}
