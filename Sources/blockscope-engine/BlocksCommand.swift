import Analysis
import ArgumentParser
import Foundation

/// Block-structure detection on saved within-model heatmaps (heatmap.json from `analyze`),
/// with the calibration table: per heatmap and threshold, the longest range (in blocks) whose
/// mean CKA reaches the threshold (and contrast the minimum contrast), the fraction of blocks
/// detection would cover, and the largest contrast of a range reaching the threshold over at
/// least --min-blocks blocks.
struct BlocksCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "blocks",
    abstract: "Block structure and its calibration table from saved heatmaps.")

  @Argument(help: "Within-model heatmaps: heatmap.json written by `analyze`, or heatmap.csv written by `blockscope heatmap --out`.")
  var heatmaps: [String]
  @Option(help: "Comma-separated thresholds for the calibration table.")
  var thresholds = "0.8,0.85,0.9,0.93,0.95,0.97"
  @Option(help: "Detection threshold (mean CKA).") var threshold = BlockStructureParameters.defaultThreshold
  @Option(name: .customLong("min-blocks")) var minBlocks = BlockStructureParameters.defaultMinBlocks
  @Option(name: .customLong("min-contrast"), help: "Detection: how far a range's mean CKA must exceed its mean CKA to the other blocks' representations (0: no condition).")
  var minContrast = BlockStructureParameters.defaultMinContrast

  func validate() throws {
    guard !heatmaps.isEmpty else { throw ValidationError("give at least one heatmap.json") }
    guard threshold.isFinite, minContrast.isFinite else { throw ValidationError("--threshold and --min-contrast must be numbers") }
    guard minBlocks >= 1 else { throw ValidationError("--min-blocks must be at least 1") }
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

  struct NotWithinModel: Error, CustomStringConvertible {
    var description: String { "a cross-model heatmap; block structure needs a within-model one" }
  }

  /// Names and heatmap from `analyze`'s heatmap.json or the CLI's heatmap.csv (a header row of
  /// column names, then one row per representation: its name and the values, empty where
  /// undefined).
  static func read(_ path: String) throws -> ([String], CKAHeatmap) {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    if path.hasSuffix(".csv") {
      guard let text = String(data: data, encoding: .utf8) else { throw ValidationError("not UTF-8") }
      let lines = text.split(whereSeparator: \.isNewline).map { $0.split(separator: ",", omittingEmptySubsequences: false) }
      guard let header = lines.first, header.count >= 2 else { throw ValidationError("no header row") }
      let columns = header.dropFirst().map(String.init)
      var rows: [String] = [], values: [Double] = [], defined: [Bool] = []
      for (n, line) in lines.dropFirst().enumerated() {
        guard line.count == columns.count + 1 else {
          throw ValidationError("row \(n + 1) has \(line.count - 1) values, expected \(columns.count)")
        }
        rows.append(String(line[0]))
        for cell in line.dropFirst() {
          if cell.isEmpty {
            values.append(0); defined.append(false)
          } else if let v = Double(cell) {
            values.append(v); defined.append(true)
          } else {
            throw ValidationError("row \(n + 1): \"\(cell)\" is not a number")
          }
        }
      }
      guard rows == columns else { throw NotWithinModel() }
      return (rows, try CKAHeatmap(size: rows.count, values: values, defined: defined))
    }
    let h = try JSONDecoder().decode(CKAHeatmapResult.self, from: data)
    guard h.rowNames == h.columnNames else { throw NotWithinModel() }
    return (h.rowNames, try CKAHeatmap(size: h.rowNames.count, values: h.values, defined: h.defined))
  }

  func run() throws {
    let ts = thresholds.split(separator: ",").compactMap { Double($0) }
    print("heatmap".padding(toLength: 40, withPad: " ", startingAt: 0)
          + " detected (t=\(threshold), min \(minBlocks) blocks, contrast \(minContrast))  | "
          + ts.map { String(format: "t=%.2f span,cover,contrast", $0) }.joined(separator: " | "))
    for path in heatmaps {
      let names: [String], map: CKAHeatmap
      do {
        (names, map) = try Self.read(path)
      } catch {
        printError("error: cannot read \(path): \(error)")
        throw ExitCode.failure
      }
      let detector = try BlockStructureDetector(heatmap: map, layout: try Self.layout(names))
      let report = try detector.detect(BlockStructureParameters(threshold: threshold, minBlocks: minBlocks,
                                                                minContrast: minContrast))
      let curve = try detector.calibrationCurve(thresholds: ts, minBlocks: minBlocks, minContrast: minContrast)
      let found = report.ranges.map { "\($0.firstName)..\($0.lastName)" }.joined(separator: " ")
      print(String(path.suffix(40)).padding(toLength: 40, withPad: " ", startingAt: 0)
            + String(format: " score %.2f %@ | ", report.blockScore, found.isEmpty ? "none" : found)
            + curve.map {
              String(format: "%2d, %.2f, ", $0.maxSpanBlocks, $0.coveredFraction)
                + ($0.maxContrast.map { String(format: "%.3f", $0) } ?? "-")
            }.joined(separator: " | "))
    }
  }
}
