import ArgumentParser
import Foundation
import Wire

extension HeatmapRequest.Estimator: ExpressibleByArgument {}
extension ExampleSelection.Split: ExpressibleByArgument {}

struct HeatmapCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "heatmap",
    abstract: "Minibatch CKA between the representations of a model (or of two models).",
    discussion: """
      With --out DIR, writes heatmap.png (the picture), heatmap.npy (float64 [rows, columns], \
      NaN where undefined), heatmap.csv (the representation names as header row and first \
      column, empty where undefined), heatmap.json (the response: names, provenance, \
      diagnostics, block structure, and the request) and, with --bootstrap, \
      heatmap_standard_errors.npy. Selectors: all, blocks (block outputs), adds, or a comma \
      list of glob patterns such as 's2.*.out,pool'.
      """)

  @OptionGroup var global: GlobalOptions
  @OptionGroup var model: ModelArgument

  @Option(help: ArgumentHelp("A second model: rows are MODEL's representations, columns M's.", valueName: "M"))
  var other: String?
  @Option(help: ArgumentHelp("Representations of the rows.", valueName: "sel"))
  var layers = "all"
  @Option(name: .customLong("other-layers"), help: ArgumentHelp("Representations of the columns (default: --layers).", valueName: "sel"))
  var otherLayers: String?
  @Option(help: "CKA estimator.")
  var estimator: HeatmapRequest.Estimator = .unbiased
  @Flag(name: .customLong("remove-pc1"), help: "Remove each representation's first principal component first.")
  var removePC1 = false
  @Option(help: ArgumentHelp("Examples: the first N of the split.", valueName: "n"))
  var examples = 2560
  @Option(help: "Dataset split.")
  var split: ExampleSelection.Split = .test
  @Option(name: .customLong("batch-size"), help: "Examples per minibatch.")
  var batchSize = 256
  @Option(help: "Passes over the examples, each in a new batch order.")
  var passes = 10
  @Option(help: "Seed of the batch order.")
  var seed: UInt64 = 0
  @Option(help: "Bootstrap replicates for standard errors (0: none).")
  var bootstrap = 0
  @Option(name: .customLong("bootstrap-seed"), help: "Seed of the bootstrap.")
  var bootstrapSeed: UInt64 = 0
  @Flag(name: .customLong("keep-incomplete"), help: "Keep a short last batch instead of dropping it.")
  var keepIncomplete = false
  @Option(name: .customLong("block-threshold"), help: "Block-structure detection: the mean CKA a block must reach (default: docs/ANALYSIS.md).")
  var blockThreshold: Double?
  @Option(name: .customLong("block-min-blocks"), help: "Block-structure detection: the residual blocks a block must span.")
  var blockMinBlocks: Int?
  @Option(name: .customLong("block-min-contrast"), help: "Block-structure detection: how far a block's mean CKA must exceed its mean CKA to the rest of the network (0: no condition).")
  var blockMinContrast: Double?
  @Option(help: ArgumentHelp("Write heatmap.png, .npy, .csv and .json into this directory (created if needed).", valueName: "dir"))
  var out: String?
  @Option(name: .customLong("batch"), help: ArgumentHelp(
    "A cached batch (a foreign model's client key, or DATASET:SPLIT[a:b]); repeat for more. The heatmap is computed from these instead of --examples (see 'blockscope foreign').",
    valueName: "name"))
  var batches: [String] = []
  @Flag(help: "MODEL names a foreign model (default: a stored model of that name if there is one, else a foreign one).")
  var foreign = false
  @Flag(name: .customLong("other-foreign"), help: "--other names a foreign model.")
  var otherForeign = false

  func validate() throws {
    if let other { try validateModelName(other, what: "--other") }
    if layers.isEmpty { throw ValidationError("--layers must not be empty") }
    if let otherLayers, otherLayers.isEmpty { throw ValidationError("--other-layers must not be empty") }
    if examples < 1 { throw ValidationError("--examples must be at least 1") }
    if batchSize < 2 { throw ValidationError("--batch-size must be at least 2") }
    if passes < 1 { throw ValidationError("--passes must be at least 1") }
    if bootstrap < 0 { throw ValidationError("--bootstrap must not be negative") }
    if let blockThreshold, !blockThreshold.isFinite { throw ValidationError("--block-threshold must be a number") }
    if let blockMinBlocks, blockMinBlocks < 1 { throw ValidationError("--block-min-blocks must be at least 1") }
    if let blockMinContrast, !blockMinContrast.isFinite { throw ValidationError("--block-min-contrast must be a number") }
    if let out, out.isEmpty { throw ValidationError("--out must not be empty") }
    if batches.contains(where: \.isEmpty) { throw ValidationError("--batch must not be empty") }
    if otherForeign && other == nil { throw ValidationError("--other-foreign needs --other") }
  }

  var request: HeatmapRequest {
    HeatmapRequest(model: model.model, other: other, layers: LayerSelector(layers),
                   otherLayers: otherLayers.map(LayerSelector.init), estimator: estimator,
                   removePC1: removePC1, examples: ExampleSelection(split: split, count: examples),
                   batchSize: batchSize, passes: passes, seed: seed, bootstrap: bootstrap,
                   bootstrapSeed: bootstrapSeed, keepIncomplete: keepIncomplete,
                   blockThreshold: blockThreshold, blockMinBlocks: blockMinBlocks,
                   blockMinContrast: blockMinContrast, batches: batches.isEmpty ? nil : batches,
                   foreign: foreign ? true : nil, otherForeign: otherForeign ? true : nil)
  }

  func run() throws {
    try global.withDaemon { client in
      let request = self.request
      var display = ProgressDisplay.automatic(json: global.json)
      let response = try client.request(.heatmap, request, quiet: !display.isEnabled,
                                        onProgress: { display.handle($0) })
      display.finish()
      let result = try HeatmapResult(response)
      var files: [String: String] = [:]
      if let out {
        files = try result.write(to: out, request: request)
      }
      if global.json {
        var object = try response.jsonOutput(files: files)
        if out == nil {
          object["cka"] = JSONOutput.matrix(result.values, rows: result.rows, columns: result.columns)
        } else {
          object["files"] = files
        }
        try JSONOutput.print(object)
        return
      }
      print(result.summary())
      if !files.isEmpty {
        print("wrote:")
        for key in ["png", "npy", "csv", "json", "standard_errors"] {
          if let path = files[key] { print("  \(path)") }
        }
      } else {
        print("(--out DIR writes heatmap.png, .npy, .csv and .json)")
      }
    }
  }
}

/// A HEATMAP_OK response, checked: the matrix matches the names.
struct HeatmapResult {
  var doc: HeatmapResponse
  var response: DaemonResponse
  var rows: Int
  var columns: Int
  /// Row-major; nil where the cell is undefined.
  var values: [Double?]
  var standardErrors: [Double]?

  init(_ response: DaemonResponse) throws {
    self.response = response
    doc = try response.decode(HeatmapResponse.self)
    rows = doc.rowNames.count
    columns = doc.columnNames.count
    let cka = try response.requiredTensor(HeatmapResponse.ckaTensor)
    let defined = try response.requiredTensor(HeatmapResponse.definedTensor)
    guard cka.dtype == .f64, cka.shape == [rows, columns] else {
      throw ClientError.protocolViolation(WireError(.invalidArgument,
        "HEATMAP_OK: cka is \(cka.dtype.rawValue)\(cka.shape), expected f64[\(rows), \(columns)] for the names"))
    }
    guard defined.dtype == .u8, defined.shape == [rows, columns] else {
      throw ClientError.protocolViolation(WireError(.invalidArgument,
        "HEATMAP_OK: defined is \(defined.dtype.rawValue)\(defined.shape), expected u8[\(rows), \(columns)]"))
    }
    let ckaValues = cka.doubles!
    let definedValues = defined.uint8s!
    values = zip(ckaValues, definedValues).map { $1 != 0 ? $0 : nil }
    if let se = response.tensor(HeatmapResponse.standardErrorsTensor), se.dtype == .f64, se.shape == [rows, columns] {
      standardErrors = se.doubles
    }
  }

  var title: String {
    let p = doc.provenance
    return p.other.map { "\(p.model) vs \($0)" } ?? p.model
  }

  var subtitle: String {
    let p = doc.provenance
    var text = "\(doc.estimator.rawValue) CKA"
    if doc.removePC1 { text += ", PC1 removed" }
    text += ", \(p.split.rawValue) split, batch \(p.batchSize) x \(p.passes) pass\(p.passes == 1 ? "" : "es")"
    if p.bootstrap > 0 { text += ", \(p.bootstrap) bootstrap replicates" }
    return text
  }

  var image: HeatmapImage {
    HeatmapImage(values: values, rows: rows, columns: columns, rowNames: doc.rowNames,
                 columnNames: doc.columnNames, title: title, subtitle: subtitle)
  }

  /// The matrix as .npy (NaN where undefined) and as CSV with the representation names.
  func writeMatrix(npy: String, csv: String) throws {
    try Npy.write(NpyArray(doubles: values.map { $0 ?? .nan }, shape: [rows, columns]), to: npy)
    try Files.write(CSV.matrix(values, rowNames: doc.rowNames, columnNames: doc.columnNames), to: csv)
  }

  /// Writes the files; returns their paths by kind (png, npy, csv, json, standard_errors).
  func write(to directory: String, request: HeatmapRequest) throws -> [String: String] {
    try Files.makeDirectory(directory)
    var files: [String: String] = [
      "png": Files.join(directory, "heatmap.png"),
      "npy": Files.join(directory, "heatmap.npy"),
      "csv": Files.join(directory, "heatmap.csv"),
      "json": Files.join(directory, "heatmap.json"),
    ]
    if let standardErrors {
      let path = Files.join(directory, "heatmap_standard_errors.npy")
      try Npy.write(NpyArray(doubles: standardErrors, shape: [rows, columns]), to: path)
      files["standard_errors"] = path
    }
    try PNGWriter.write(image.render(), to: files["png"]!)
    try writeMatrix(npy: files["npy"]!, csv: files["csv"]!)

    var object = try response.jsonOutput(files: [
      HeatmapResponse.ckaTensor: files["npy"]!,
      HeatmapResponse.standardErrorsTensor: files["standard_errors"] ?? "",
    ].filter { !$0.value.isEmpty })
    object["request"] = try JSONOutput.object(request)
    object["files"] = files
    object["undefined_cells"] = values.filter { $0 == nil }.count
    try Files.write(try JSONOutput.text(object) + "\n", to: files["json"]!)
    return files
  }

  /// The text printed after a heatmap.
  func summary() -> String {
    let s = doc.stats
    var lines = ["\(title): \(rows) x \(columns) representations, \(subtitle)"]
    lines.append("computed in \(Format.duration(s.seconds)): \(s.batches) batches, \(s.forwardPasses) forward passes, "
                 + "\(s.gramsComputed) Grams computed, \(s.cacheHits) cache hits")
    if doc.provenance.droppedExamples > 0 {
      lines.append("\(doc.provenance.droppedExamples) examples of an incomplete last batch were left out")
    }
    let defined = values.compactMap { $0 }
    if let low = defined.min(), let high = defined.max() {
      lines.append("CKA from \(Format.number(low, digits: 3)) to \(Format.number(high, digits: 3))"
                   + (defined.count < values.count ? "; \(values.count - defined.count) cells undefined" : ""))
    } else {
      lines.append("no cell is defined")
    }
    if let b = doc.blockStructure {
      lines.append("block structure: \(b.hasBlockStructure ? "yes" : "no") (block score \(Format.number(b.blockScore, digits: 3)); "
                   + "threshold \(Format.exact(b.threshold)), at least \(b.minBlocks) blocks"
                   + (b.minContrast.map { ", contrast at least \(Format.exact($0))" } ?? "") + ")")
      for r in b.ranges {
        let first = r.first < doc.rowNames.count ? doc.rowNames[r.first] : "#\(r.first)"
        let last = r.last < doc.rowNames.count ? doc.rowNames[r.last] : "#\(r.last)"
        lines.append("  \(first) .. \(last)  (rows \(r.first)-\(r.last), \(r.blocksSpanned) blocks, "
                     + "mean CKA \(Format.number(r.meanCka, digits: 3)), min \(Format.number(r.minCka, digits: 3))"
                     + (r.contrast.map { ", contrast \(Format.number($0, digits: 3))" } ?? "") + ")")
      }
    }
    if !doc.diagnostics.isEmpty {
      lines.append("diagnostics:")
      for d in doc.diagnostics {
        let reps = d.representations.isEmpty ? "" : " [" + d.representations.joined(separator: ", ") + "]"
        lines.append("  \(d.kind): \(d.message)\(reps)")
      }
    }
    return lines.joined(separator: "\n")
  }
}
