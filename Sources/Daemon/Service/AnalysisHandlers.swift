import Analysis
import Engine
import Foundation
import Wire

/// Bounds on analysis requests (beyond them the work would only exhaust memory).
enum AnalysisLimits {
  /// HEATMAP: each batch's Grams are batch^2 floats per representation.
  static let maxHeatmapBatch = 2048
  static let maxPasses = 1000
  static let maxBootstrap = 100_000
  /// PC: the Gram method holds an n x n matrix per representation.
  static let maxPCExamples = 8192
  static let maxProbeBatch = 2048
  static let maxProbeEpochs = 1000
}

/// A number JSON can carry: non-finite values become the largest finite one of their sign
/// (NaN: the largest positive). Used for losses of broken models, never for accuracies.
func jsonSafe(_ x: Double) -> Double {
  if x.isFinite { return x }
  return x < 0 ? -Double.greatestFiniteMagnitude : Double.greatestFiniteMagnitude
}

extension DaemonService {
  // MARK: Shared

  /// The whole dataset a model was trained on (its split sizes are the example ids' range).
  func modelData(_ model: LoadedModel) throws(WireError) -> DatasetSplits {
    let splits = try datasets.splits(model.header.data.dataset, recorded: model.header.data.path)
    let c = model.header.config, d = splits.test
    guard d.height == c.inputHeight, d.width == c.inputWidth, d.channels == c.inputChannels else {
      throw WireError(.dataUnavailable, "model \"\(model.name)\" takes \(c.inputHeight)x\(c.inputWidth)x"
                      + "\(c.inputChannels) images but \(model.header.data.dataset) is "
                      + "\(d.height)x\(d.width)x\(d.channels)")
    }
    return splits
  }

  /// The examples a request selects: the first `count` (clamped to the split) or explicit ids
  /// (NOT_FOUND for one outside the split).
  func examples(_ selection: ExampleSelection, of splits: DatasetSplits, dataset: String,
                key: String = "examples", maxCount: Int? = nil) throws(WireError) -> Dataset {
    let split = selection.split == .test ? splits.test : splits.train
    let splitName = "the \(selection.split.rawValue) split of \(dataset)"
    if let ids = selection.ids {
      if selection.count != nil { throw invalid(key, "give either count or ids, not both") }
      guard !ids.isEmpty else { throw invalid("\(key).ids", "the list is empty") }
      if let maxCount, ids.count > maxCount {
        throw invalid("\(key).ids", "\(ids.count) examples; at most \(maxCount)")
      }
      if let bad = ids.first(where: { $0 < 0 || $0 >= split.count }) {
        throw notFound("example \(bad) is not in \(splitName) (ids 0..<\(split.count))")
      }
      return split.selecting(ids)
    }
    var n = split.count
    if let count = selection.count {
      guard count >= 1 else { throw invalid("\(key).count", "\(count) must be at least 1") }
      n = min(count, split.count)
    }
    if let maxCount, n > maxCount {
      throw invalid("\(key).count", "\(n) examples; at most \(maxCount)")
    }
    guard n > 0 else { throw WireError(.dataUnavailable, "\(splitName) is empty") }
    return n == split.count ? split : split.selecting(Array(0..<n))
  }

  func representationSelector(_ s: LayerSelector) -> RepresentationSelector {
    switch s {
    case .all: return .all
    case .blocks: return .blockOutputs
    case .adds: return .adds
    case .patterns(let p): return .pattern(p)
    case .names(let n): return .names(n)
    }
  }

  /// The selected representations, NOT_FOUND / INVALID_ARGUMENT naming `key`.
  func select(_ selector: RepresentationSelector, in model: LoadedModel,
              key: String) throws(WireError) -> [Representation] {
    do {
      return try selector.select(from: model.header.config)
    } catch let e as RepresentationSelector.SelectionError {
      switch e {
      case .unknown: throw notFound("key '\(key)': \(e.description) in model \"\(model.name)\"")
      case .empty: throw invalid(key, "\(e.description) in model \"\(model.name)\"")
      }
    } catch {
      throw wireError(error)
    }
  }

  /// Runs `body` holding every distinct model's lock, in a fixed order.
  func exclusive<R>(_ models: [LoadedModel], _ body: () throws -> R) throws -> R {
    var distinct: [LoadedModel] = []
    for m in models where !distinct.contains(where: { $0 === m }) { distinct.append(m) }
    distinct.sort { ObjectIdentifier($0) < ObjectIdentifier($1) }
    func locked(_ i: Int) throws -> R {
      if i == distinct.count { return try body() }
      return try distinct[i].exclusive { try locked(i + 1) }
    }
    return try locked(0)
  }

  // MARK: HEATMAP

  func heatmap(_ request: IncomingRequest, _ reply: ReplyChannel) throws {
    let r = try request.decode(Wire.HeatmapRequest.self)
    try ModelStore.validateName(r.model)
    if let other = r.other { try ModelStore.validateName(other, key: "other") }
    guard (4...AnalysisLimits.maxHeatmapBatch).contains(r.batchSize) else {
      throw invalid("batch_size", "\(r.batchSize) is outside 4...\(AnalysisLimits.maxHeatmapBatch)")
    }
    guard (1...AnalysisLimits.maxPasses).contains(r.passes) else {
      throw invalid("passes", "\(r.passes) is outside 1...\(AnalysisLimits.maxPasses)")
    }
    guard (0...AnalysisLimits.maxBootstrap).contains(r.bootstrap) else {
      throw invalid("bootstrap", "\(r.bootstrap) is outside 0...\(AnalysisLimits.maxBootstrap)")
    }
    if r.removePC1 && r.estimator == .rbf {
      throw invalid("remove_pc1", "PC1 removal applies to the linear estimators, not rbf")
    }
    if let t = r.blockThreshold, !t.isFinite { throw invalid("block_threshold", "must be a number") }
    if let m = r.blockMinBlocks, m < 1 { throw invalid("block_min_blocks", "\(m) must be at least 1") }
    if let c = r.blockMinContrast, !c.isFinite { throw invalid("block_min_contrast", "must be a number") }

    // Foreign models and cached batches (SPEC.md "Foreign models") take their own path.
    if try needsCachedBatches(r) { return try cachedBatchHeatmap(r, reply) }
    let a = try store.load(r.model)
    let b: LoadedModel? = try r.other.map { try store.load($0) }
    if let b, b.header.config.inputHeight != a.header.config.inputHeight
      || b.header.config.inputWidth != a.header.config.inputWidth
      || b.header.config.inputChannels != a.header.config.inputChannels {
      throw invalid("other", "\"\(b.name)\" takes other images than \"\(a.name)\"")
    }
    let splits = try modelData(a)
    let data = try examples(r.examples, of: splits, dataset: a.header.data.dataset)
    let rows = representationSelector(r.layers)
    let columns = r.otherLayers.map(representationSelector)
    _ = try select(rows, in: a, key: "layers")
    if let columns { _ = try select(columns, in: b ?? a, key: "other_layers") }
    let within = b == nil && (columns == nil || columns == rows)

    let plan = MinibatchPlan(batchSize: r.batchSize, passes: r.passes, seed: r.seed,
                             keepIncomplete: r.keepIncomplete)
    let estimator: CKAEstimator = switch r.estimator {
    case .unbiased: .unbiased
    case .biased: .biased
    case .rbf: .rbf
    }
    let analysis = Analysis.HeatmapRequest(estimator: estimator, removePC1: r.removePC1, plan: plan,
                                           bootstrap: r.bootstrap, bootstrapSeed: r.bootstrapSeed)
    let engine = MinibatchCKA(cache: grams, context: analysisContext())
    let sender = progress(reply)
    let result = try exclusive([a] + (b.map { [$0] } ?? [])) {
      try engine.heatmap(rows: a.analysisModel, rows, columns: b?.analysisModel, columns,
                         data: data, request: analysis, progress: { done, total in
                           sender.send(phase: "grams", done: done, total: total)
                         }, shouldStop: shouldStop(reply))
    }

    let tensors = heatmapTensors(result, batchIDs: result.provenance.batchExampleIds, width: r.batchSize,
                                 bootstrap: r.bootstrap > 0)
    var diagnostics = responseDiagnostics(result)
    var blockStructure: HeatmapResponse.BlockStructure?
    if within {
      blockStructure = detectBlocks(r, result, diagnostics: &diagnostics) {
        try RepresentationLayout(config: a.header.config, representations: try rows.select(from: a.header.config))
      }
    }
    let s = result.stats
    let doc = HeatmapResponse(
      rowNames: result.rowNames, columnNames: result.columnNames, estimator: r.estimator,
      removePC1: r.removePC1, diagnostics: diagnostics,
      provenance: HeatmapResponse.Provenance(
        model: a.name, modelFingerprint: hex16(a.header.fingerprint), other: b?.name,
        otherFingerprint: b.map { hex16($0.header.fingerprint) }, split: r.examples.split,
        batchSize: r.batchSize, passes: r.passes, seed: r.seed, bootstrap: r.bootstrap,
        bootstrapSeed: r.bootstrapSeed, droppedExamples: plan.droppedPerPass(count: data.count)),
      stats: HeatmapResponse.Stats(batches: s.batches, forwardPasses: s.forwardPasses,
                                   gramsComputed: s.gramsComputed, formsDerived: s.formsDerived,
                                   cacheHits: s.cacheHits, seconds: s.seconds),
      blockStructure: blockStructure)
    try respond(reply, .heatmapOK, doc, tensors: tensors)
  }

  // MARK: PC

  func principalComponents(_ request: IncomingRequest, _ reply: ReplyChannel) throws {
    let r = try request.decode(PCRequest.self)
    try ModelStore.validateName(r.model)
    let model = try store.load(r.model)
    let splits = try modelData(model)
    let data = try examples(r.examples, of: splits, dataset: model.header.data.dataset,
                            maxCount: AnalysisLimits.maxPCExamples)
    guard data.count >= 2 else { throw invalid("examples", "first principal components need at least 2 examples") }
    let selector = representationSelector(r.layers)
    _ = try select(selector, in: model, key: "layers")
    let method: PCMethod = switch r.method {
    case .auto: .auto
    case .gram: .gram
    case .svd: .svd
    }
    let sender = progress(reply)
    let report = try model.exclusive {
      try FirstPrincipalComponents.run(model.analysisModel, selector, data: data, method: method,
                                       context: analysisContext(), progress: { done, total in
                                         sender.send(phase: "pc", done: done, total: total)
                                       }, shouldStop: shouldStop(reply))
    }
    let layers = report.layers.map { l -> PCResponse.Layer in
      guard l.totalVariance.isFinite else {
        return PCResponse.Layer(name: l.name, features: l.features, pc1Fraction: nil, totalVariance: 0,
                                method: l.method.rawValue, note: "the activations are not finite")
      }
      return PCResponse.Layer(name: l.name, features: l.features,
                              pc1Fraction: l.pc1Fraction.flatMap { $0.isFinite ? $0 : nil },
                              totalVariance: l.totalVariance, method: l.method.rawValue, note: l.note)
    }
    let l = report.layers.count, n = report.examples
    var tensors = [
      WireTensor(name: PCResponse.cosineTensor, doubles: report.cosine, shape: [l, l]),
      WireTensor(name: PCResponse.exampleIDsTensor, int32s: report.exampleIds, shape: [n]),
    ]
    if r.directions {
      tensors.append(WireTensor(name: PCResponse.directionsTensor,
                                floats: report.directions.flatMap { $0 }, shape: [l, n]))
    }
    try respond(reply, .pcOK, PCResponse(layers: layers), tensors: tensors)
  }

  // MARK: PROBE

  func probe(_ request: IncomingRequest, _ reply: ReplyChannel) throws {
    let r = try request.decode(ProbeRequest.self)
    try ModelStore.validateName(r.model)
    guard (1...AnalysisLimits.maxProbeEpochs).contains(r.epochs) else {
      throw invalid("epochs", "\(r.epochs) is outside 1...\(AnalysisLimits.maxProbeEpochs)")
    }
    guard (1...AnalysisLimits.maxProbeBatch).contains(r.batchSize) else {
      throw invalid("batch_size", "\(r.batchSize) is outside 1...\(AnalysisLimits.maxProbeBatch)")
    }
    guard r.lr > 0, r.lr.isFinite else { throw invalid("lr", "\(r.lr) must be a positive number") }
    if let layers = r.layers, layers.isEmpty { throw invalid("layers", "the list is empty") }
    if let n = r.trainExamples, n < 1 { throw invalid("train_examples", "\(n) must be at least 1") }
    if let n = r.testExamples, n < 1 { throw invalid("test_examples", "\(n) must be at least 1") }
    let model = try store.load(r.model)
    let splits = try modelData(model)
    let dataset = model.header.data.dataset
    let train = try examples(ExampleSelection(split: .train, count: r.trainExamples), of: splits,
                             dataset: dataset, key: "train_examples")
    let test = try examples(ExampleSelection(split: .test, count: r.testExamples), of: splits,
                            dataset: dataset, key: "test_examples")
    let config = ProbeConfig(batchSize: r.batchSize, epochs: r.epochs, learningRate: r.lr,
                             pool2x2: r.pool2x2, seed: r.seed, layers: r.layers)
    _ = try ProbeRunner.layers(of: model.header.config, config: config)
    let sender = progress(reply)
    let report = try model.exclusive {
      try ProbeRunner.run(model.network, train: train, test: test, config: config,
                          context: analysisContext(), progress: { p in
                            sender.send(ProgressEvent(phase: "probe", done: p.processed, total: p.total,
                                                      epoch: p.epoch, epochs: r.epochs,
                                                      message: p.phase.rawValue))
                          }, shouldStop: shouldStop(reply))
    }
    let layers = report.layers.map {
      ProbeResponse.Layer(name: $0.name, kind: kindName($0.kind.rawValue), block: $0.block,
                          features: $0.features, constantFeatures: $0.constantFeatures,
                          trainAccuracy: $0.trainAccuracy, trainLoss: jsonSafe($0.trainLoss),
                          testAccuracy: $0.testAccuracy)
    }
    try respond(reply, .probeOK, ProbeResponse(layers: layers, trainCount: report.trainCount,
                                               testCount: report.testCount, classes: report.numClasses))
  }

  // MARK: DELETE_BLOCKS

  func deleteBlocks(_ request: IncomingRequest, _ reply: ReplyChannel) throws {
    let r = try request.decode(DeleteBlocksRequest.self)
    try ModelStore.validateName(r.model)
    if let n = r.testExamples, n < 1 { throw invalid("test_examples", "\(n) must be at least 1") }
    let model = try store.load(r.model)
    if let blocks = r.blocks {
      guard !blocks.isEmpty else { throw invalid("blocks", "the list is empty") }
      let known = Set(model.header.config.blocks.map(\.name))
      if let unknown = blocks.first(where: { !known.contains($0) }) {
        throw notFound("key 'blocks': model \"\(model.name)\" has no block \"\(unknown)\" "
                       + "(blocks: \(model.header.config.blocks.map(\.name).joined(separator: ", ")))")
      }
    }
    let splits = try modelData(model)
    let test = try examples(ExampleSelection(split: .test, count: r.testExamples), of: splits,
                            dataset: model.header.data.dataset, key: "test_examples")
    let sender = progress(reply)
    let report = try model.exclusive {
      try BlockDeletion.run(model.network, test: test, blocks: r.blocks,
                            context: analysisContext(), progress: { p in
        sender.send(ProgressEvent(phase: "delete", done: p.completed, total: p.total,
                                  message: p.current.isEmpty ? "intact" : p.current.joined(separator: ",")))
      }, shouldStop: shouldStop(reply))
    }
    let blocks = report.blocks.map {
      DeleteBlocksResponse.Block(block: $0.block, stage: $0.stage, index: $0.index,
                                 removable: $0.removable, reason: $0.reason, accuracy: $0.accuracy,
                                 loss: $0.loss.map(jsonSafe), drop: $0.drop,
                                 changedPredictions: $0.changedPredictions)
    }
    let tails = report.stageTails.map {
      DeleteBlocksResponse.StageTail(stage: $0.stage, removed: $0.removed, blocks: $0.blocks,
                                     accuracy: $0.accuracy, loss: jsonSafe($0.loss), drop: $0.drop,
                                     changedPredictions: $0.changedPredictions)
    }
    try respond(reply, .deleteBlocksOK, DeleteBlocksResponse(
      intactAccuracy: report.intactAccuracy, intactLoss: jsonSafe(report.intactLoss),
      testCount: report.testCount, blocks: blocks, stageTails: tails))
  }

  // MARK: EXPORT

  func export(_ request: IncomingRequest, _ reply: ReplyChannel) throws {
    let r = try request.decode(ExportRequest.self)
    try ModelStore.validateName(r.model)
    let model = try store.load(r.model)
    guard let rep = model.header.config.representations.first(where: { $0.name == r.representation }) else {
      throw notFound("key 'representation': model \"\(model.name)\" has no representation "
                     + "\"\(r.representation)\" (DESCRIBE lists them)")
    }
    if r.examples.ids == nil && r.examples.count == nil {
      throw invalid("examples", "give count or ids")
    }
    let splits = try modelData(model)
    let data = try examples(r.examples, of: splits, dataset: model.header.data.dataset,
                            maxCount: ExportRequest.maxExamples)
    let n = data.count, c = rep.channels, h = rep.height, w = rep.width
    let (bytes, overflow) = n.multipliedReportingOverflow(by: rep.features * 4)
    let limit = MessageType.exportOK.limit - (1 << 20)   // room for the doc and the ids
    guard !overflow, bytes <= limit else {
      throw WireError(.resultTooLarge, "\(n) examples x \(rep.features) values of \(rep.name) are "
                      + "\(bytes) bytes, more than EXPORT_OK can carry (\(MessageType.exportOK.limit)); "
                      + "ask for at most \(limit / (rep.features * 4)) examples")
    }
    var out = [Float](repeating: 0, count: n * rep.features)
    let batchSize = 256
    let batches = stride(from: 0, to: n, by: batchSize).map { Array($0..<min($0 + batchSize, n)) }
    let sender = progress(reply)
    try model.exclusive {
      try out.withUnsafeMutableBufferPointer { buffer in
        let dst = buffer.baseAddress!
        try ActivationStream.run(model: model.network, data: data, batches: batches,
                                 representations: [rep], context: analysisContext(),
                                 shouldStop: shouldStop(reply)) { batch, _, p in
          // NHWC per example -> NCHW.
          let hw = h * w
          for (i, position) in batch.positions.enumerated() {
            let src = p + i * rep.features
            let base = dst + position * rep.features
            for pixel in 0..<hw {
              for channel in 0..<c { base[channel * hw + pixel] = src[pixel * c + channel] }
            }
          }
          sender.send(phase: "forward", done: batch.index + 1, total: batches.count)
        }
      }
    }
    let tensors = [
      WireTensor(name: ExportResponse.activationsTensor, floats: out, shape: [n, c, h, w]),
      WireTensor(name: ExportResponse.exampleIDsTensor, int32s: data.ids, shape: [n]),
      WireTensor(name: ExportResponse.labelsTensor, int32s: data.labels, shape: [n]),
    ]
    try respond(reply, .exportOK, ExportResponse(representation: rep.name), tensors: tensors)
  }
}
