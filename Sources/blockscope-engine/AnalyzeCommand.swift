import Analysis
import ArgumentParser
import CKernels
import Engine
import Foundation

/// Every within-model analysis of Nguyen et al. 2021 (docs/ANALYSIS.md) on one trained model,
/// written to a directory: the CKA heatmap (JSON, CSV), block structure, first principal
/// components, linear probes and block deletion, plus a summary on stdout.
struct AnalyzeCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "analyze",
    abstract: "CKA heatmap, block structure, first PCs, linear probes and block deletion of one model.")

  @OptionGroup var source: ModelSource
  @Option(help: "Output directory.") var out: String
  @Option(help: "Representations: all, blocks, adds, or glob patterns (\"s2.*.out,pool\").") var layers = "all"
  @Option(help: "Test examples used for CKA (the first N).") var examples = 10_000
  @Option(name: .customLong("batch-size")) var batchSize = 256
  @Option var passes = 10
  @Option var seed: UInt64 = 0
  @Option(help: "unbiased, biased or rbf.") var estimator = "unbiased"
  @Option(help: "Bootstrap resamples for standard errors (0: none).") var bootstrap = 0
  @Option(name: .customLong("pc-examples"), help: "Test examples for the first principal components.")
  var pcExamples = 1024
  @Option(name: .customLong("probe-epochs")) var probeEpochs = 10
  @Flag(name: .customLong("probe-pool"), help: "2x2-pool features before the probes.") var probePool = false
  @Option(name: .customLong("eval-examples"), help: "Test examples for probe accuracy and block deletion (the first N).")
  var evalExamples = 10_000
  @Flag(name: .customLong("no-probes")) var noProbes = false
  @Flag(name: .customLong("no-deletion")) var noDeletion = false
  @Flag(name: .customLong("no-pc")) var noPC = false
  @Option(help: "Block-structure threshold (mean CKA).") var threshold = BlockStructureParameters.defaultThreshold
  @Option(name: .customLong("min-blocks")) var minBlocks = BlockStructureParameters.defaultMinBlocks
  @Option(name: .customLong("min-contrast"), help: "Block structure: how far a range's mean CKA must exceed its mean CKA to the other blocks (0: no condition).")
  var minContrast = BlockStructureParameters.defaultMinContrast
  @Option(help: "Threads (default: all cores).") var threads: Int?

  func validate() throws {
    guard CKAEstimator(rawValue: estimator) != nil else {
      throw ValidationError("--estimator must be unbiased, biased or rbf")
    }
    guard examples >= 4, batchSize >= 4, passes >= 1 else {
      throw ValidationError("--examples and --batch-size must be at least 4, --passes at least 1")
    }
    guard pcExamples >= 2 else { throw ValidationError("--pc-examples must be at least 2") }
  }

  func run() throws {
    let context = KernelContext(threads: threads)
    let (model, ckpt, splits) = try source.load()
    try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
    let test = splits.test.selecting(Array(0..<min(examples, splits.test.count)))
    let accuracy = ckpt.history.last?.testAccuracy
    let evalSet = splits.test.selecting(Array(0..<min(evalExamples, splits.test.count)))
    print("model \(model.network.config.name) from \(source.checkpoint): \(ckpt.epochsCompleted) epochs, "
          + "test accuracy \(accuracy.map { String(format: "%.2f%%", $0 * 100) } ?? "?"), "
          + "\(ckpt.data.dataset) fraction \(ckpt.data.fraction)")
    if let a = accuracy, a < 1.5 / Double(model.network.config.numClasses) {
      print("WARNING: accuracy is near chance: high CKA in this model means it failed to train, not block structure (docs/ANALYSIS.md, 'What counts as reproduced at laptop scale')")
    }

    // CKA heatmap.
    let request = HeatmapRequest(estimator: CKAEstimator(rawValue: estimator)!,
                                 plan: MinibatchPlan(batchSize: batchSize, passes: passes, seed: seed),
                                 bootstrap: bootstrap)
    let engine = MinibatchCKA(cache: GramCache(budgetBytes: 2 << 30), context: context)
    let sel = selector(layers)
    let heatmap = try engine.heatmap(rows: model, sel, data: test, request: request) { done, total in
      if done == total || done % 10 == 0 { print("  heatmap: batch \(done)/\(total)"); fflush(nil) }
    }
    try writeJSON(heatmap, to: out + "/heatmap.json")
    try heatmapCSV(heatmap).write(toFile: out + "/heatmap.csv", atomically: true, encoding: .utf8)
    print(String(format: "heatmap: %d representations, %d batches of %d, %.1f s", heatmap.rowNames.count,
                 heatmap.stats.batches, batchSize, heatmap.stats.seconds))
    for d in heatmap.diagnostics { print("  note: \(d.message)") }
    print(asciiHeatmap(heatmap))

    // Block structure.
    let reps = try sel.select(from: model.network.config)
    let layout = try RepresentationLayout(config: model.network.config, representations: reps)
    let map = try CKAHeatmap(size: reps.count, values: heatmap.values, defined: heatmap.defined)
    let detector = try BlockStructureDetector(heatmap: map, layout: layout)
    let blocks = try detector.detect(BlockStructureParameters(threshold: threshold, minBlocks: minBlocks,
                                                              minContrast: minContrast))
    let curve = try detector.calibrationCurve(thresholds: [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95],
                                              minBlocks: minBlocks, minContrast: minContrast)
    try writeJSON(BlockOutput(report: blocks, calibration: curve), to: out + "/blocks.json")
    print("block structure (threshold \(threshold), min \(minBlocks) blocks, contrast \(minContrast)): "
          + (blocks.hasBlockStructure ? "found" : "none") + String(format: ", score %.3f", blocks.blockScore))
    for r in blocks.ranges {
      print(String(format: "  %@ .. %@: %d representations, %d blocks, mean CKA %.3f (min %.3f), contrast %@",
                   r.firstName, r.lastName, r.representationCount, r.blocksSpanned, r.meanCKA, r.minCKA,
                   r.contrast.map { String(format: "%.3f", $0) } ?? "-"))
    }
    print("  calibration (threshold: longest span in blocks, covered fraction, largest contrast): "
          + curve.map {
            String(format: "%.2f: %d, %.2f, ", $0.threshold, $0.maxSpanBlocks, $0.coveredFraction)
              + ($0.maxContrast.map { String(format: "%.3f", $0) } ?? "-")
          }
            .joined(separator: " | "))
    let inBlock = Set(blocks.ranges.flatMap { Array($0.firstIndex...$0.lastIndex) }.map { reps[$0].name })

    // First principal components.
    if !noPC {
      let pcData = splits.test.selecting(Array(0..<min(pcExamples, splits.test.count)))
      let pc = try FirstPrincipalComponents.run(model, sel, data: pcData, context: context)
      try writeJSON(pc, to: out + "/pc.json")
      func mean(_ xs: [Double]) -> String { xs.isEmpty ? "-" : String(format: "%.3f", xs.reduce(0, +) / Double(xs.count)) }
      let inside = pc.layers.filter { inBlock.contains($0.name) }.compactMap(\.pc1Fraction)
      let outside = pc.layers.filter { !inBlock.contains($0.name) }.compactMap(\.pc1Fraction)
      print("first PC (\(pc.examples) examples, \(String(format: "%.1f", pc.seconds)) s): mean variance fraction inside blocks \(mean(inside)) (\(inside.count) layers), outside \(mean(outside)) (\(outside.count) layers)")
      let outs = pc.layers.filter { $0.name.hasSuffix(".out") || $0.name == "pool" }
      print("  block outputs: " + outs.map { "\($0.name) \($0.pc1Fraction.map { String(format: "%.2f", $0) } ?? "-")" }.joined(separator: ", "))
    }

    // Linear probes.
    if !noProbes {
      var pconf = ProbeConfig()
      pconf.epochs = probeEpochs
      pconf.pool2x2 = probePool
      let report = try ProbeRunner.run(model.network, train: splits.train, test: evalSet,
                                       config: pconf, context: context)
      try writeJSON(report, to: out + "/probes.json")
      print("linear probes (\(report.trainCount) train, \(report.testCount) test, \(probeEpochs) epochs):")
      print("  " + report.layers.map { "\($0.name) \(String(format: "%.1f%%", $0.testAccuracy * 100))" }.joined(separator: ", "))
    }

    // Block deletion.
    if !noDeletion {
      let del = try BlockDeletion.run(model.network, test: evalSet, context: context)
      try writeJSON(del, to: out + "/deletion.json")
      print(String(format: "block deletion (intact %.2f%%):", del.intactAccuracy * 100))
      print("  single: " + del.blocks.map { b in
        b.removable ? "\(b.block) \(String(format: "%+.1f", -(b.drop ?? 0) * 100))" : "\(b.block) n/a"
      }.joined(separator: ", "))
      print("  last j of a stage: " + del.stageTails.map {
        "s\($0.stage) j=\($0.removed) \(String(format: "%.1f%%", $0.accuracy * 100))"
      }.joined(separator: ", "))
    }
    print("written to \(out)/")
  }
}

struct BlockOutput: Codable {
  var report: BlockStructureReport
  var calibration: [CalibrationPoint]
}
