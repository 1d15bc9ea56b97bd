import Engine
import Foundation

/// A CKA heatmap from Grams already in the cache (a foreign model's streamed batches, or any
/// model's cached ones): no forward pass. Each side names its cache key and representations;
/// `batches` are the cache batch keys both sides were sent for, in order. Forms other than the
/// centred one are derived from it and cached, as MinibatchCKA does, so asking again with
/// another estimator needs nothing resent.
public struct CachedHeatmap {
  public struct Side {
    public let name: String
    public let key: UInt64
    public let representations: [String]
    public init(name: String, key: UInt64, representations: [String]) {
      self.name = name
      self.key = key
      self.representations = representations
    }
  }

  public let cache: GramCache
  public let context: KernelContext

  public init(cache: GramCache, context: KernelContext) {
    self.cache = cache
    self.context = context
  }

  /// `batchNames` (for messages) parallel `batches`. `estimator`/`removePC1` as in
  /// HeatmapRequest; `plan` only describes the batches in the provenance.
  public func heatmap(rows: Side, columns: Side? = nil, batches: [UInt64], batchNames: [String],
                      request: HeatmapRequest) throws -> CKAHeatmapResult {
    let start = Date()
    guard !batches.isEmpty else { throw ForeignGramError.missing(["any batch (none was named)"]) }
    let cols = columns ?? rows
    let within = columns == nil
    let form = request.form
    // Every Gram must be there (in the form asked for, or centred to derive it from) before
    // anything is computed.
    var missing: [String] = []
    for side in within ? [rows] : [rows, cols] {
      for (b, batch) in batches.enumerated() {
        for rep in side.representations
        where !cache.contains(GramKey(model: side.key, representation: rep, batch: batch, form: form))
          && !cache.contains(GramKey(model: side.key, representation: rep, batch: batch, form: .centred)) {
          missing.append("\(side.name) \(rep) batch \(batchNames[b])")
        }
      }
    }
    guard missing.isEmpty else { throw ForeignGramError.missing(missing) }

    var stats = HeatmapStats(batches: batches.count, forwardPasses: 0, gramsComputed: 0,
                             formsDerived: 0, cacheHits: 0, seconds: 0)
    var rbfZero = Set<String>()
    func vectors(_ side: Side, batch: UInt64) throws -> [GramEntry?] {
      try side.representations.map { rep -> GramEntry? in
        let key = GramKey(model: side.key, representation: rep, batch: batch, form: form)
        if let e = cache.entry(key) {
          stats.cacheHits += 1
          return e
        }
        let base = GramKey(model: side.key, representation: rep, batch: batch, form: .centred)
        guard let centred = cache.entry(base) else {
          throw ForeignGramError.missing(["\(side.name) \(rep) (evicted while the heatmap ran)"])
        }
        do {
          let e = try GramForms.derive(form, from: centred, context: context)
          cache.insert(e, for: key)
          stats.formsDerived += 1
          return e
        } catch GramForms.Degenerate.rbfBandwidthZero {
          rbfZero.insert(rep)
          return nil
        }
      }
    }
    let la = rows.representations.count, lb = cols.representations.count
    var accumulator = HeatmapAccumulator(rows: la, columns: lb, keepsBatches: request.bootstrap > 0)
    for batch in batches {
      let a = try vectors(rows, batch: batch)
      let b = within ? a : try vectors(cols, batch: batch)
      guard let m = (a + b).compactMap({ $0?.m }).first else { continue }
      guard (a + b).allSatisfy({ $0 == nil || $0!.m == m }) else {
        throw ForeignGramError.shape("the two sides hold different example counts for one batch")
      }
      let t0 = Date()
      accumulator.add(try BatchProducts.of(rows: a, columns: b, within: within, m: m, context: context))
      stats.secondsProducts += Date().timeIntervalSince(t0)
    }
    let (values, defined) = accumulator.values()
    let diagnostics = accumulator.diagnostics(rowNames: rows.representations,
                                              columnNames: cols.representations, within: within,
                                              values: values, defined: defined, rbfZero: rbfZero)
    let errors = request.bootstrap > 0
      ? accumulator.bootstrapErrors(resamples: request.bootstrap, seed: request.bootstrapSeed, defined: defined)
      : nil
    stats.seconds = Date().timeIntervalSince(start)
    let provenance = HeatmapProvenance(
      estimator: request.estimator, removePC1: request.removePC1, plan: request.plan,
      rowModel: rows.name, rowModelFingerprint: String(rows.key, radix: 16),
      columnModel: cols.name, columnModelFingerprint: String(cols.key, radix: 16),
      batchExampleIds: [], bootstrap: request.bootstrap, bootstrapSeed: request.bootstrapSeed)
    return CKAHeatmapResult(rowNames: rows.representations, columnNames: cols.representations,
                            values: values, defined: defined, standardErrors: errors,
                            diagnostics: diagnostics, provenance: provenance, stats: stats)
  }
}
