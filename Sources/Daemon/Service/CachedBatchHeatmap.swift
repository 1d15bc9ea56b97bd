import Analysis
import Engine
import Foundation
import Wire

/// HEATMAP over cached batches (SPEC.md section 7, "Foreign models"): foreign models, whose
/// Grams arrived with SESSION_BATCH, within themselves, against each other, or against stored
/// models on dataset-reference batches (the daemon computes the stored model's Grams for those
/// examples, keyed as its own batches). The pairing is CachedHeatmap's, from the cache alone.
extension DaemonService {
  /// One side of a heatmap.
  enum HeatmapSide {
    case stored(LoadedModel)
    case foreign(name: String, SessionManager.Definition)

    var name: String {
      switch self {
      case .stored(let m): return m.name
      case .foreign(let name, _): return name
      }
    }

    var isForeign: Bool {
      if case .foreign = self { return true }
      return false
    }

    /// The model's key in the Gram cache.
    var cacheKey: UInt64 {
      switch self {
      case .stored(let m): return m.header.fingerprint
      case .foreign(_, let d): return d.model.key
      }
    }
  }

  /// One batch of the heatmap: its name as the request gave it and its cache key.
  struct CachedBatch {
    var name: String
    var key: UInt64
    var reference: DatasetReference?
  }

  /// Whether HEATMAP takes this path: `batches` given, a side asked to be foreign, or a name
  /// only a foreign model has (a stored model of the name wins unless `foreign` says otherwise).
  func needsCachedBatches(_ r: Wire.HeatmapRequest) throws(WireError) -> Bool {
    if r.batches != nil || r.foreign == true || r.otherForeign == true { return true }
    func foreignOnly(_ name: String, _ flag: Bool?) throws(WireError) -> Bool {
      guard flag == nil else { return false }
      let stored = try store.status(of: name)
      return stored == nil && sessions.model(named: name) != nil
    }
    if try foreignOnly(r.model, r.foreign) { return true }
    if let other = r.other, try foreignOnly(other, r.otherForeign) { return true }
    return false
  }

  func resolveSide(_ name: String, foreign: Bool?, key: String) throws(WireError) -> HeatmapSide {
    let stored = foreign == nil ? try store.status(of: name) : nil
    if foreign == false || stored != nil {
      return .stored(try store.load(name))
    }
    guard let definition = sessions.model(named: name) else {
      throw notFound("key '\(key)': no foreign model named \"\(name)\"" + (foreign == true ? "" : " and no stored one")
                     + " (FOREIGN_MODELS lists the foreign ones)")
    }
    return .foreign(name: name, definition)
  }

  func cachedBatchHeatmap(_ r: Wire.HeatmapRequest, _ reply: ReplyChannel) throws {
    let a = try resolveSide(r.model, foreign: r.foreign, key: "model")
    let b = try r.other.map { try resolveSide($0, foreign: r.otherForeign, key: "other") }
    let columnSide = b ?? a
    let within = b == nil && (r.otherLayers == nil || r.otherLayers == r.layers)
    let rowReps = try representations(of: a, r.layers, key: "layers")
    let columnReps = within ? rowReps : try representations(of: columnSide, r.columnLayers,
                                                             key: r.otherLayers == nil ? "layers" : "other_layers")
    let batches = try heatmapBatches(r, a, rowReps.names, columnSide, columnReps.names)

    // Stored sides: their Grams for the referenced examples, computed where not cached.
    let context = analysisContext()
    let engine = MinibatchCKA(cache: grams, context: context)
    var work = HeatmapStats(batches: batches.count, forwardPasses: 0, gramsComputed: 0, formsDerived: 0,
                            cacheHits: 0, seconds: 0)
    let sender = progress(reply)
    let stop = shouldStop(reply)
    var storedSides: [(LoadedModel, [Representation])] = []
    if case .stored(let m) = a { storedSides.append((m, rowReps.stored)) }
    if !within, case .stored(let m) = columnSide { storedSides.append((m, columnReps.stored)) }
    for (index, (model, reps)) in storedSides.enumerated() {
      let c = model.header.config
      var examples: [(split: Dataset, positions: [Int])] = []
      for (i, batch) in batches.enumerated() {
        let key = r.batches == nil ? "batches" : "batches[\(i)]"
        guard let reference = batch.reference else {
          throw invalid(key, "\"\(batch.name)\" is a client key: the stored model \"\(model.name)\" is "
                        + "analysed on dataset references (DATASET:SPLIT[a:b]) only")
        }
        let e = try referencedExamples(reference, key: key)
        guard e.split.height == c.inputHeight, e.split.width == c.inputWidth, e.split.channels == c.inputChannels else {
          throw invalid(key, "\(reference.text): model \"\(model.name)\" takes \(c.inputHeight)x\(c.inputWidth)x"
                        + "\(c.inputChannels) images, \(reference.dataset) has \(e.split.height)x\(e.split.width)x\(e.split.channels)")
        }
        examples.append(e)
      }
      try model.exclusive {
        for (i, e) in examples.enumerated() {
          if stop() { throw WireError(.cancelled, "HEATMAP abandoned") }
          let s = try engine.cacheGrams(of: model.analysisModel, reps, data: e.split, positions: e.positions)
          work.forwardPasses += s.forwardPasses
          work.gramsComputed += s.gramsComputed
          work.cacheHits += s.cacheHits
          sender.send(phase: "grams", done: index * batches.count + i + 1, total: storedSides.count * batches.count)
        }
      }
    }

    let width = batches.map { examplesCount($0, a, columnSide) }.max() ?? 0
    let analysis = Analysis.HeatmapRequest(
      estimator: CKAEstimator(rawValue: r.estimator.rawValue)!, removePC1: r.removePC1,
      plan: MinibatchPlan(batchSize: max(width, 4), passes: 1, seed: 0, keepIncomplete: true),
      bootstrap: r.bootstrap, bootstrapSeed: r.bootstrapSeed)
    let rows = CachedHeatmap.Side(name: a.name, key: a.cacheKey, representations: rowReps.names)
    let columns = within ? nil
      : CachedHeatmap.Side(name: columnSide.name, key: columnSide.cacheKey, representations: columnReps.names)
    let result = try CachedHeatmap(cache: grams, context: context)
      .heatmap(rows: rows, columns: columns, batches: batches.map(\.key), batchNames: batches.map(\.name),
               request: analysis)

    let ids = try batches.map { batch -> [Int32] in
      guard let reference = batch.reference else { return [] }
      let e = try referencedExamples(reference, key: "batches")
      return e.positions.map { e.split.ids[$0] }
    }
    let tensors = heatmapTensors(result, batchIDs: ids, width: width, bootstrap: r.bootstrap > 0)
    var diagnostics = responseDiagnostics(result)
    var blockStructure: HeatmapResponse.BlockStructure?
    if within {
      blockStructure = detectBlocks(r, result, diagnostics: &diagnostics) {
        switch a {
        case .stored(let m): return try RepresentationLayout(config: m.header.config, representations: rowReps.stored)
        case .foreign(_, let d): return try Self.layout(of: d.declared, selected: rowReps.names)
        }
      }
    }
    let s = result.stats
    let doc = HeatmapResponse(
      rowNames: result.rowNames, columnNames: result.columnNames, estimator: r.estimator,
      removePC1: r.removePC1, diagnostics: diagnostics,
      provenance: HeatmapResponse.Provenance(
        model: a.name, modelFingerprint: hex16(a.cacheKey), other: b?.name, otherFingerprint: b.map { hex16($0.cacheKey) },
        split: batches.compactMap(\.reference).first?.split ?? .test, batchSize: width, passes: 1, seed: 0,
        bootstrap: r.bootstrap, bootstrapSeed: r.bootstrapSeed, droppedExamples: 0,
        batches: batches.map(\.name), foreign: a.isForeign ? true : nil,
        otherForeign: b.flatMap { $0.isForeign ? true : nil }),
      stats: HeatmapResponse.Stats(batches: batches.count, forwardPasses: work.forwardPasses,
                                   gramsComputed: work.gramsComputed + s.gramsComputed,
                                   formsDerived: s.formsDerived, cacheHits: work.cacheHits + s.cacheHits,
                                   seconds: s.seconds + work.seconds),
      blockStructure: blockStructure)
    try respond(reply, .heatmapOK, doc, tensors: tensors)
  }

  /// The selected representations of a side: names, and for a stored model the engine's.
  private func representations(of side: HeatmapSide, _ selector: LayerSelector,
                               key: String) throws(WireError) -> (names: [String], stored: [Representation]) {
    switch side {
    case .stored(let m):
      let reps = try select(representationSelector(selector), in: m, key: key)
      return (reps.map(\.name), reps)
    case .foreign(let name, let d):
      do {
        return (try representationSelector(selector).select(names: d.declared.map(\.name)), [])
      } catch let e as RepresentationSelector.SelectionError {
        switch e {
        case .unknown: throw notFound("key '\(key)': \(e.description) in foreign model \"\(name)\"")
        case .empty: throw invalid(key, "\(e.description) in foreign model \"\(name)\"")
        }
      } catch {
        throw wireError(error)
      }
    }
  }

  /// The request's `batches`, or by default the batches the foreign side(s) hold with every
  /// selected representation (dataset references only when a side is stored), in the order
  /// they were first received.
  private func heatmapBatches(_ r: Wire.HeatmapRequest, _ a: HeatmapSide, _ rowNames: [String],
                              _ c: HeatmapSide, _ columnNames: [String]) throws(WireError) -> [CachedBatch] {
    if let names = r.batches {
      guard !names.isEmpty else { throw invalid("batches", "the list is empty") }
      var out: [CachedBatch] = []
      for (i, name) in names.enumerated() {
        let (key, reference) = try resolveBatch(name, key: "batches[\(i)]")
        out.append(CachedBatch(name: name, key: key, reference: reference))
      }
      return out
    }
    let anyStored = !a.isForeign || !c.isForeign
    var candidates: [(key: UInt64, record: SessionManager.BatchRecord)] = []
    if case .foreign(_, let d) = a {
      candidates = d.batches(holding: rowNames)
      if case .foreign(_, let e) = c {
        candidates = candidates.filter { e.batches[$0.key].map { r in columnNames.allSatisfy(r.received.contains) } ?? false }
      }
    } else if case .foreign(_, let e) = c {
      candidates = e.batches(holding: columnNames)
    }
    if anyStored { candidates = candidates.filter { $0.record.reference != nil } }
    guard !candidates.isEmpty else {
      throw invalid("batches", "none given, and no batch holds every selected representation"
                    + (anyStored ? " under a dataset reference" : "") + ": send batches, or name them")
    }
    return candidates.map { CachedBatch(name: $0.record.name, key: $0.key, reference: $0.record.reference) }
  }

  /// A batch's example count: a reference's, else what a foreign side recorded (0: unknown;
  /// the heatmap then names the batch as missing).
  private func examplesCount(_ batch: CachedBatch, _ sides: HeatmapSide...) -> Int {
    if let reference = batch.reference { return reference.count }
    for case .foreign(_, let d) in sides {
      if let n = d.batches[batch.key]?.examples { return n }
    }
    return 0
  }

  /// Block-structure detection's layout for a foreign model: its declared `block`s (a
  /// representation without one is outside every block, before or after them, or counts with
  /// the block before it when it lies between two); without any, each representation is a block.
  static func layout(of declared: [ForeignRepresentation], selected: [String]) throws -> RepresentationLayout {
    guard let last = declared.compactMap(\.block).max() else {
      return try RepresentationLayout(names: selected, blockIndices: Array(selected.indices),
                                      blockCount: max(1, selected.count))
    }
    let firstInBlock = declared.firstIndex { $0.block != nil }!
    let lastInBlock = declared.lastIndex { $0.block != nil }!
    var index: [String: Int] = [:]
    var current = -1
    for (i, rep) in declared.enumerated() {
      if let b = rep.block { current = b }
      index[rep.name] = rep.block ?? (i < firstInBlock ? -1 : i > lastInBlock ? last + 1 : current)
    }
    return try RepresentationLayout(names: selected, blockIndices: selected.map { index[$0]! },
                                    blockCount: last + 1)
  }
}
