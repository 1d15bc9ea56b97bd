import ArgumentParser
import Foundation
import Wire

extension PCRequest.Method: ExpressibleByArgument {}
extension CompareOutputsRequest.Test: ExpressibleByArgument {}

/// `a,b,c` -> `["a", "b", "c"]` (empty items dropped).
func commaList(_ text: String) -> [String] {
  text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
}

struct PCCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "pc",
    abstract: "First principal components of a model's representations: PC1's share of the variance, and how PC1 directions align across layers.",
    discussion: "With --out DIR, writes pc.json, pc_cosine.npy (|cosine| of the PC1 directions, [L, L]), pc_example_ids.npy and, with --directions, pc_directions.npy ([L, n], float32).")

  @OptionGroup var global: GlobalOptions
  @OptionGroup var model: ModelArgument
  @Option(help: ArgumentHelp("Representations (all, blocks, adds, or glob patterns).", valueName: "sel"))
  var layers = "all"
  @Option(help: ArgumentHelp("Examples: the first N of the split.", valueName: "n"))
  var examples = 1024
  @Option(help: "Dataset split.")
  var split: ExampleSelection.Split = .test
  @Option(help: "How PC1 is found.")
  var method: PCRequest.Method = .auto
  @Flag(help: "Also fetch the PC1 directions (unit vectors in example space).")
  var directions = false
  @Option(help: ArgumentHelp("Write the results into this directory.", valueName: "dir"))
  var out: String?

  func validate() throws {
    if layers.isEmpty { throw ValidationError("--layers must not be empty") }
    if examples < 2 { throw ValidationError("--examples must be at least 2") }
    if let out, out.isEmpty { throw ValidationError("--out must not be empty") }
  }

  func run() throws {
    try global.withDaemon { client in
      let request = PCRequest(model: model.model, layers: LayerSelector(layers),
                              examples: ExampleSelection(split: split, count: examples), method: method,
                              directions: directions)
      var display = ProgressDisplay.automatic(json: global.json)
      let response = try client.request(.pc, request, quiet: !display.isEnabled, onProgress: { display.handle($0) })
      display.finish()
      let doc = try response.decode(PCResponse.self)
      var files: [String: String] = [:]
      if let out {
        try Files.makeDirectory(out)
        let names = [PCResponse.cosineTensor: "pc_cosine.npy", PCResponse.exampleIDsTensor: "pc_example_ids.npy",
                     PCResponse.directionsTensor: "pc_directions.npy"]
        for tensor in response.payload.tensors {
          guard let name = names[tensor.name] else { continue }
          let path = Files.join(out, name)
          try Npy.write(NpyArray(tensor), to: path)
          files[tensor.name] = path
        }
        var object = try response.jsonOutput(files: files)
        object["request"] = try JSONOutput.object(request)
        let jsonPath = Files.join(out, "pc.json")
        try Files.write(try JSONOutput.text(object) + "\n", to: jsonPath)
        files["json"] = jsonPath
      }
      if global.json {
        var object = try response.jsonOutput(files: files)
        if out == nil, let cosine = response.tensor(PCResponse.cosineTensor), cosine.shape.count == 2 {
          object["cosine"] = JSONOutput.matrix(cosine.valuesAsDoubles.map { Optional($0) }, rows: cosine.shape[0],
                                               columns: cosine.shape[1])
        }
        return try JSONOutput.print(object)
      }
      var table = TextTable(["REPRESENTATION", "FEATURES", "PC1 SHARE", "TOTAL VARIANCE", "METHOD", "NOTE"],
                            rightAligned: [1, 2, 3])
      for layer in doc.layers {
        table.add([layer.name, "\(layer.features)",
                   layer.pc1Fraction.map { Format.percent($0, digits: 1) } ?? "constant",
                   String(format: "%.4g", layer.totalVariance), layer.method, layer.note ?? ""])
      }
      print(table.render())
      for key in [PCResponse.cosineTensor, PCResponse.exampleIDsTensor, PCResponse.directionsTensor, "json"] {
        if let path = files[key] { print("wrote \(path)") }
      }
    }
  }
}

struct ProbeCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "probe", abstract: "Train linear probes on a model's representations and report their accuracy.")

  @OptionGroup var global: GlobalOptions
  @OptionGroup var model: ModelArgument
  @Option(help: ArgumentHelp("Representation names, comma separated (default: every bn2 and add).", valueName: "names"))
  var layers: String?
  @Option(help: "Probe training epochs.")
  var epochs = 10
  @Option(name: .customLong("batch-size"), help: "Probe minibatch size.")
  var batchSize = 256
  @Option(help: "Probe learning rate.")
  var lr = 0.01
  @Flag(help: "Average-pool 2x2 before the probe (fewer features).")
  var pool2x2 = false
  @Option(help: "Seed of the probes.")
  var seed: UInt64 = 0
  @Option(name: .customLong("train-examples"), help: "Train on the first N training images (default all).")
  var trainExamples: Int?
  @Option(name: .customLong("test-examples"), help: "Test on the first N test images (default all).")
  var testExamples: Int?

  func validate() throws {
    if let layers, commaList(layers).isEmpty { throw ValidationError("--layers names no representation") }
    if epochs < 1 { throw ValidationError("--epochs must be at least 1") }
    if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
    if !(lr > 0) { throw ValidationError("--lr must be positive") }
    if let trainExamples, trainExamples < 1 { throw ValidationError("--train-examples must be at least 1") }
    if let testExamples, testExamples < 1 { throw ValidationError("--test-examples must be at least 1") }
  }

  func run() throws {
    try global.withDaemon { client in
      let request = ProbeRequest(model: model.model, layers: layers.map(commaList), epochs: epochs,
                                 batchSize: batchSize, lr: lr, pool2x2: pool2x2, seed: seed,
                                 trainExamples: trainExamples, testExamples: testExamples)
      var display = ProgressDisplay.automatic(json: global.json)
      let response = try client.request(.probe, request, quiet: !display.isEnabled, onProgress: { display.handle($0) })
      display.finish()
      if global.json { return try JSONOutput.print(response.jsonOutput()) }
      let doc = try response.decode(ProbeResponse.self)
      print("\(model.model): linear probes, \(doc.trainCount) training / \(doc.testCount) test examples, \(doc.classes) classes")
      var table = TextTable(["REPRESENTATION", "KIND", "FEATURES", "CONSTANT", "TRAIN LOSS", "TRAIN ACC", "TEST ACC"],
                            rightAligned: [2, 3, 4, 5, 6])
      for l in doc.layers {
        table.add([l.name, l.kind, "\(l.features)", "\(l.constantFeatures)", Format.number(l.trainLoss),
                   Format.percent(l.trainAccuracy), Format.percent(l.testAccuracy)])
      }
      print(table.render())
    }
  }
}

struct DeleteBlocksCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "delete-blocks",
    abstract: "Test accuracy with residual blocks bypassed one at a time and stage tails removed, without retraining.")

  @OptionGroup var global: GlobalOptions
  @OptionGroup var model: ModelArgument
  @Option(help: ArgumentHelp("Block names, comma separated (default all).", valueName: "names"))
  var blocks: String?
  @Option(name: .customLong("test-examples"), help: "Evaluate on the first N test images (default all).")
  var testExamples: Int?

  func validate() throws {
    if let blocks, commaList(blocks).isEmpty { throw ValidationError("--blocks names no block") }
    if let testExamples, testExamples < 1 { throw ValidationError("--test-examples must be at least 1") }
  }

  func run() throws {
    try global.withDaemon { client in
      let request = DeleteBlocksRequest(model: model.model, blocks: blocks.map(commaList), testExamples: testExamples)
      var display = ProgressDisplay.automatic(json: global.json)
      let response = try client.request(.deleteBlocks, request, quiet: !display.isEnabled,
                                        onProgress: { display.handle($0) })
      display.finish()
      if global.json { return try JSONOutput.print(response.jsonOutput()) }
      let doc = try response.decode(DeleteBlocksResponse.self)
      print("\(model.model): intact test accuracy \(Format.percent(doc.intactAccuracy)), loss "
            + "\(Format.number(doc.intactLoss)) on \(doc.testCount) examples")
      var table = TextTable(["BLOCK", "ACCURACY", "DROP", "LOSS", "CHANGED", "NOTE"], rightAligned: [1, 2, 3, 4])
      for b in doc.blocks {
        if b.removable {
          table.add([b.block, Format.percent(b.accuracy), Format.percent(b.drop), Format.number(b.loss),
                     b.changedPredictions.map { "\($0)" } ?? "-", ""])
        } else {
          table.add([b.block, "-", "-", "-", "-", "not removable: \(b.reason ?? "projection block")"])
        }
      }
      print(table.render())
      if !doc.stageTails.isEmpty {
        print("")
        var tails = TextTable(["STAGE", "REMOVED", "ACCURACY", "DROP", "LOSS", "CHANGED", "BLOCKS"],
                              rightAligned: [0, 1, 2, 3, 4, 5])
        for t in doc.stageTails {
          tails.add(["\(t.stage)", "\(t.removed)", Format.percent(t.accuracy), Format.percent(t.drop),
                     Format.number(t.loss), "\(t.changedPredictions)", t.blocks.joined(separator: ",")])
        }
        print(tails.render())
      }
    }
  }
}

struct CompareCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "compare",
    abstract: "Compare the outputs of populations of models: per-example and per-class accuracy tests between groups, with a within-group null.",
    discussion: "Example: blockscope compare --group wide=w1,w2,w3 --group deep=d1,d2,d3")

  @OptionGroup var global: GlobalOptions
  @Option(name: .customLong("group"), help: ArgumentHelp("A group of at least 2 models: NAME=M1,M2,... (repeat for more groups).", valueName: "name=models"))
  var groups: [String] = []
  @Option(name: .customLong("pair"), help: ArgumentHelp("Compare only these two groups: A,B (repeatable; default every pair).", valueName: "a,b"))
  var pairs: [String] = []
  @Option(help: "Dataset split.")
  var split: ExampleSelection.Split = .test
  @Option(help: ArgumentHelp("Examples: the first N of the split (default all).", valueName: "n"))
  var examples: Int?
  @Option(help: "The per-example test.")
  var test: CompareOutputsRequest.Test = .fisher
  @Option(help: "Significance level.")
  var alpha = 0.05
  @Flag(name: .customLong("per-example"), help: "Include per-example p-values and accuracies (with --json).")
  var perExample = false
  @Option(name: .customLong("null-seed"), help: "Seed of the within-group null split.")
  var nullSeed: UInt64 = 0

  /// `NAME=M1,M2` parsed.
  static func parseGroup(_ text: String) throws -> CompareOutputsRequest.Group {
    guard let equals = text.firstIndex(of: "=") else {
      throw ValidationError("--group '\(text)' is not NAME=M1,M2,...")
    }
    let name = String(text[..<equals]).trimmingCharacters(in: .whitespaces)
    let models = commaList(String(text[text.index(after: equals)...]))
    guard !name.isEmpty else { throw ValidationError("--group '\(text)' has no name before '='") }
    guard models.count >= 2 else {
      throw ValidationError("--group \(name) needs at least 2 models (for the within-group null), not \(models.count)")
    }
    for model in models { try validateModelName(model, what: "--group \(name): model") }
    return CompareOutputsRequest.Group(name: name, models: models)
  }

  func validate() throws {
    guard !groups.isEmpty else { throw ValidationError("give at least one --group NAME=M1,M2,...") }
    let parsed = try groups.map(Self.parseGroup)
    let names = parsed.map(\.name)
    if Set(names).count != names.count { throw ValidationError("--group names must be unique") }
    for pair in pairs {
      let items = commaList(pair)
      guard items.count == 2 else { throw ValidationError("--pair '\(pair)' is not A,B") }
      for item in items where !names.contains(item) {
        throw ValidationError("--pair '\(pair)': no --group named \(item)")
      }
    }
    if let examples, examples < 1 { throw ValidationError("--examples must be at least 1") }
    if !(alpha > 0 && alpha < 1) { throw ValidationError("--alpha must be in (0, 1)") }
  }

  func run() throws {
    let request = CompareOutputsRequest(
      groups: try groups.map(Self.parseGroup),
      pairs: pairs.isEmpty ? nil : pairs.map { text -> CompareOutputsRequest.Pair in
        let p = commaList(text)
        return CompareOutputsRequest.Pair(p[0], p[1])
      },
      examples: ExampleSelection(split: split, count: examples), test: test, alpha: alpha,
      perExample: perExample, nullSeed: nullSeed)
    try global.withDaemon { client in
      var display = ProgressDisplay.automatic(json: global.json)
      let response = try client.request(.compareOutputs, request, quiet: !display.isEnabled,
                                        onProgress: { display.handle($0) })
      display.finish()
      if global.json { return try JSONOutput.print(response.jsonOutput()) }
      let doc = try response.decode(CompareOutputsResponse.self)
      var groupsTable = TextTable(["GROUP", "MODELS", "MEAN ACC", "MODEL ACCURACIES"], rightAligned: [1, 2])
      for g in doc.groups {
        groupsTable.add([g.group, "\(g.models.count)", Format.percent(g.meanAccuracy),
                         g.modelAccuracies.map { Format.percent($0, digits: 1) }.joined(separator: " ")])
      }
      print(groupsTable.render())
      for (title, comparisons) in [("comparisons", doc.comparisons), ("within-group nulls", doc.nulls)] where !comparisons.isEmpty {
        print("")
        print("\(title):")
        var table = TextTable(["A", "B", "ACC A", "ACC B", "SIGNIFICANT EXAMPLES", "FAVOURING A/B", "CLASSES", "HELLINGER", "ARGMAX AGREE"],
                              rightAligned: [2, 3, 4, 5, 6, 7, 8])
        for c in comparisons {
          let e = c.examples
          table.add([c.groupA, c.groupB, Format.percent(c.meanAccuracyA), Format.percent(c.meanAccuracyB),
                     "\(e.significant)/\(e.count) (\(Format.percent(e.significantFraction, digits: 1)))",
                     "\(e.favoringA)/\(e.favoringB)", "\(c.significantClasses)/\(c.classes.count)",
                     Format.number(c.distances.meanHellinger), Format.percent(c.distances.argmaxAgreement, digits: 1)])
        }
        print(table.render())
      }
    }
  }
}
