import Analysis
import ArgumentParser
import Engine
import Foundation

/// Loading what the analysis commands work on: a trained model from its checkpoint and the
/// data it was trained on (or another directory of the same dataset).
struct ModelSource: ParsableArguments {
  @Option(help: "A checkpoint written by `train` (BSCKPT).") var checkpoint: String
  @Option(name: .customLong("data-path"), help: "Dataset directory (default: the one recorded in the checkpoint).")
  var dataPath: String?

  func load() throws -> (AnalysisModel, Checkpoint, DatasetSplits) {
    let ckpt: Checkpoint
    do { ckpt = try Checkpoint.load(from: checkpoint) } catch {
      printError("cannot use \(checkpoint): \(error)")
      throw ExitCode.failure
    }
    let network = try ModelState.model(from: ckpt, source: checkpoint)
    var spec = ckpt.data
    if let dataPath { spec.path = dataPath }
    let splits: DatasetSplits
    do { splits = try DatasetLoader.load(spec) } catch {
      printError("cannot load the data of \(checkpoint): \(error)")
      throw ExitCode.failure
    }
    let name = (checkpoint as NSString).lastPathComponent.replacingOccurrences(of: ".bsckpt", with: "")
    return (AnalysisModel(name: name, network: network), ckpt, splits)
  }
}

/// Parses --layers: all, blocks (block outputs), adds, or glob patterns.
func selector(_ s: String) -> RepresentationSelector {
  switch s {
  case "all": return .all
  case "blocks", "block-outputs": return .blockOutputs
  case "adds": return .adds
  default: return .pattern(s)
  }
}

func writeJSON<T: Encodable>(_ value: T, to path: String) throws {
  let enc = JSONEncoder()
  enc.outputFormatting = [.prettyPrinted, .sortedKeys]
  try enc.encode(value).write(to: URL(fileURLWithPath: path), options: .atomic)
}

func jsonLine<T: Encodable>(_ value: T) -> String {
  let enc = JSONEncoder()
  enc.outputFormatting = [.sortedKeys]
  return String(decoding: try! enc.encode(value), as: UTF8.self)
}

/// A heatmap as CSV: a header of column names, then one row per row name.
func heatmapCSV(_ h: CKAHeatmapResult) -> String {
  var s = "representation," + h.columnNames.joined(separator: ",") + "\n"
  for (i, r) in h.rowNames.enumerated() {
    s += r
    for j in 0..<h.columnNames.count {
      s += "," + (h.value(i, j).map { String(format: "%.6f", $0) } ?? "")
    }
    s += "\n"
  }
  return s
}

/// Peak resident set size of this process in MiB (VmHWM).
func peakRSSMiB() -> Double {
  guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
  for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
    let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
    return kb / 1024
  }
  return 0
}

/// A small text rendering of a heatmap: one character per cell, darker = more similar.
func asciiHeatmap(_ h: CKAHeatmapResult, maxSide: Int = 72) -> String {
  let ramp = Array(" .:-=+*#%@")
  let l = h.rowNames.count, c = h.columnNames.count
  let step = max(1, (max(l, c) + maxSide - 1) / maxSide)
  var s = ""
  for i in stride(from: 0, to: l, by: step) {
    var line = ""
    for j in stride(from: 0, to: c, by: step) {
      if let v = h.value(i, j) {
        let k = Int((max(0, min(1, v)) * Double(ramp.count - 1)).rounded())
        line.append(ramp[k])
      } else {
        line.append("?")
      }
    }
    s += line + "  " + h.rowNames[i] + "\n"
  }
  return s
}
