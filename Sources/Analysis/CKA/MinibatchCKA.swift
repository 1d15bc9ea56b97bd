import CKernels
import Engine
import Foundation

/// The minibatch CKA estimators (Nguyen et al. 2021; docs/ANALYSIS.md, "CKA estimators").
public enum CKAEstimator: String, Codable, Sendable, CaseIterable {
  /// The paper's: unbiased HSIC1 per batch (U-centred Grams), mean over batches.
  case unbiased
  /// Biased HSIC0 per batch (HKH-centred linear Grams).
  case biased
  /// RBF kernel (median bandwidth, threshold 0.5) with the biased HSIC.
  case rbf
}

/// A model under analysis: the network and its identity in the Gram cache.
public struct AnalysisModel: @unchecked Sendable {
  public let name: String
  public let network: ResNet
  public let fingerprint: UInt64
  public init(name: String, network: ResNet, fingerprint: UInt64? = nil) {
    self.name = name
    self.network = network
    self.fingerprint = fingerprint ?? Fingerprint.of(network)
  }
}

public struct HeatmapRequest: Codable, Sendable, Equatable {
  public var estimator: CKAEstimator
  /// Remove each batch's first principal component before the (linear) kernel.
  public var removePC1: Bool
  public var plan: MinibatchPlan
  /// Bootstrap resamples of the batches for per-cell standard errors (0: none).
  public var bootstrap: Int
  public var bootstrapSeed: UInt64

  public init(estimator: CKAEstimator = .unbiased, removePC1: Bool = false,
              plan: MinibatchPlan = MinibatchPlan(), bootstrap: Int = 0, bootstrapSeed: UInt64 = 0) {
    self.estimator = estimator
    self.removePC1 = removePC1
    self.plan = plan
    self.bootstrap = bootstrap
    self.bootstrapSeed = bootstrapSeed
  }

  public var form: GramForm {
    switch (estimator, removePC1) {
    case (.unbiased, false): return .unbiased
    case (.unbiased, true): return .unbiasedWithoutPC1
    case (.biased, false): return .biased
    case (.biased, true): return .biasedWithoutPC1
    case (.rbf, _): return .rbf
    }
  }

  public func validate() throws {
    try plan.validate()
    if removePC1 && estimator == .rbf {
      throw HeatmapError.invalid("PC1 removal applies to the linear estimators, not rbf")
    }
    if bootstrap < 0 || bootstrap > 100_000 {
      throw HeatmapError.invalid("bootstrap resamples must be in 0...100000, got \(bootstrap)")
    }
  }
}

public enum HeatmapError: Error, CustomStringConvertible {
  case invalid(String)
  public var description: String {
    switch self { case .invalid(let s): return s }
  }
}

/// Something the user should know about a heatmap: a representation without a defined CKA,
/// negative estimates, degenerate batches. Values are never clamped or replaced by NaN.
public struct CKADiagnostic: Codable, Sendable, Equatable {
  public enum Kind: String, Codable, Sendable {
    /// Zero self-similarity over every batch (dead or constant layer): its row/column is
    /// undefined.
    case constantRepresentation
    /// Unbiased estimates below zero (possible when the true value is near 0).
    case negativeEstimates
    /// Batches whose RBF bandwidth was zero for a representation (skipped for it).
    case rbfBandwidthZero
    /// Examples left out by the batch plan (incomplete last batches).
    case droppedExamples
  }
  public var kind: Kind
  public var message: String
  public var representations: [String]
}

public struct HeatmapProvenance: Codable, Sendable, Equatable {
  public var estimator: CKAEstimator
  public var removePC1: Bool
  public var plan: MinibatchPlan
  public var rowModel: String
  public var rowModelFingerprint: String
  public var columnModel: String
  public var columnModelFingerprint: String
  /// The example ids of every batch, in order.
  public var batchExampleIds: [[Int32]]
  public var bootstrap: Int
  public var bootstrapSeed: UInt64
}

public struct HeatmapStats: Codable, Sendable, Equatable {
  public var batches: Int
  /// Forward passes actually run (a model's batch already fully cached needs none).
  public var forwardPasses: Int
  public var gramsComputed: Int
  public var formsDerived: Int
  public var cacheHits: Int
  public var seconds: Double
  /// Where the time went: inference passes (without the Gram work done in their taps),
  /// centred Grams, derived forms, and the pairwise products.
  public var secondsForward: Double = 0
  public var secondsGrams: Double = 0
  public var secondsForms: Double = 0
  public var secondsProducts: Double = 0

  public init(batches: Int, forwardPasses: Int, gramsComputed: Int, formsDerived: Int,
              cacheHits: Int, seconds: Double) {
    self.batches = batches
    self.forwardPasses = forwardPasses
    self.gramsComputed = gramsComputed
    self.formsDerived = formsDerived
    self.cacheHits = cacheHits
    self.seconds = seconds
  }

  // The time breakdown came later: results saved without it still decode.
  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    batches = try c.decode(Int.self, forKey: .batches)
    forwardPasses = try c.decode(Int.self, forKey: .forwardPasses)
    gramsComputed = try c.decode(Int.self, forKey: .gramsComputed)
    formsDerived = try c.decode(Int.self, forKey: .formsDerived)
    cacheHits = try c.decode(Int.self, forKey: .cacheHits)
    seconds = try c.decode(Double.self, forKey: .seconds)
    secondsForward = try c.decodeIfPresent(Double.self, forKey: .secondsForward) ?? 0
    secondsGrams = try c.decodeIfPresent(Double.self, forKey: .secondsGrams) ?? 0
    secondsForms = try c.decodeIfPresent(Double.self, forKey: .secondsForms) ?? 0
    secondsProducts = try c.decodeIfPresent(Double.self, forKey: .secondsProducts) ?? 0
  }
}

/// A CKA heatmap: rows are the first model's representations, columns the second's (the same
/// model for a within-model heatmap). values/defined/standardErrors are row-major.
public struct CKAHeatmapResult: Codable, Sendable {
  public var rowNames: [String]
  public var columnNames: [String]
  public var values: [Double]
  /// false where CKA is undefined (a constant representation): the value there is 0 and a
  /// diagnostic names it.
  public var defined: [Bool]
  /// Bootstrap standard error per cell (0 where undefined), when requested.
  public var standardErrors: [Double]?
  public var diagnostics: [CKADiagnostic]
  public var provenance: HeatmapProvenance
  public var stats: HeatmapStats

  public func value(_ i: Int, _ j: Int) -> Double? {
    defined[i * columnNames.count + j] ? values[i * columnNames.count + j] : nil
  }
}

/// Minibatch CKA heatmaps over the Gram cache. For each batch of the plan it finds (or
/// computes, with one forward pass per model and batch) the dot-ready Gram vector of every
/// selected representation, takes all pairwise dot products at once (bs_pairwise_dots:
/// fp32 within chunks, double across chunks and batches) and finally divides by the
/// self-similarities.
public final class MinibatchCKA: @unchecked Sendable {
  public let cache: GramCache
  /// Take an inference BatchNorm's Gram from the per-channel Grams of the conv output it
  /// normalises (GramForms.centredWithAffine) when both are computed: one Gram computation for
  /// two, and the BN is not tapped. Off only to compare against direct computation.
  public var deriveBatchNormGrams = true
  /// The threads, kernels and scratch of this engine's computations (one thread at a time).
  public let context: KernelContext

  public init(cache: GramCache, context: KernelContext) {
    self.cache = cache
    self.context = context
  }

  /// Progress: (batches done, batches total).
  public func heatmap(rows a: AnalysisModel, _ rowSelector: RepresentationSelector = .all,
                      columns b: AnalysisModel? = nil, _ columnSelector: RepresentationSelector? = nil,
                      data: Dataset, request: HeatmapRequest,
                      progress: ((Int, Int) -> Void)? = nil,
                      shouldStop: () -> Bool = { false }) throws -> CKAHeatmapResult {
    let start = Date()
    try request.validate()
    let repsA = try rowSelector.select(from: a.network.config)
    let colModel = b ?? a
    let repsB = try (columnSelector ?? rowSelector).select(from: colModel.network.config)
    let within = b == nil && (columnSelector == nil || columnSelector == rowSelector)
    let batches = try request.plan.batches(count: data.count)
    let batchKeys = batches.map { Fingerprint.of(batch: $0, in: data) }
    let form = request.form
    let la = repsA.count, lb = repsB.count
    var stats = HeatmapStats(batches: batches.count, forwardPasses: 0, gramsComputed: 0,
                             formsDerived: 0, cacheHits: 0, seconds: 0)
    var accumulator = HeatmapAccumulator(rows: la, columns: lb, keepsBatches: request.bootstrap > 0)
    var rbfZero = Set<String>()

    for (bi, positions) in batches.enumerated() {
      if shouldStop() { throw ActivationStream.Cancelled() }
      let vecA = try vectors(a, repsA, data: data, positions: positions, batchKey: batchKeys[bi],
                             form: form, stats: &stats, rbfZero: &rbfZero)
      let vecB = within ? vecA
        : try vectors(colModel, repsB, data: data, positions: positions, batchKey: batchKeys[bi],
                      form: form, stats: &stats, rbfZero: &rbfZero)
      let productStart = Date()
      accumulator.add(try BatchProducts.of(rows: vecA, columns: vecB, within: within,
                                           m: positions.count, context: context))
      stats.secondsProducts += Date().timeIntervalSince(productStart)
      progress?(bi + 1, batches.count)
    }

    let (values, defined) = accumulator.values()
    var diagnostics = accumulator.diagnostics(rowNames: repsA.map(\.name), columnNames: repsB.map(\.name),
                                              within: within, values: values, defined: defined,
                                              rbfZero: rbfZero)
    let dropped = request.plan.droppedPerPass(count: data.count)
    if dropped > 0 {
      diagnostics.append(CKADiagnostic(
        kind: .droppedExamples,
        message: "\(dropped) of \(data.count) examples per pass fall in an incomplete last batch "
          + "and are not used (keepIncomplete uses them)",
        representations: []))
    }
    var errors: [Double]? = nil
    if request.bootstrap > 0 {
      errors = accumulator.bootstrapErrors(resamples: request.bootstrap, seed: request.bootstrapSeed,
                                           defined: defined)
    }
    stats.seconds = Date().timeIntervalSince(start)
    let provenance = HeatmapProvenance(
      estimator: request.estimator, removePC1: request.removePC1, plan: request.plan,
      rowModel: a.name, rowModelFingerprint: String(a.fingerprint, radix: 16),
      columnModel: colModel.name, columnModelFingerprint: String(colModel.fingerprint, radix: 16),
      batchExampleIds: batches.map { $0.map { data.ids[$0] } },
      bootstrap: request.bootstrap, bootstrapSeed: request.bootstrapSeed)
    return CKAHeatmapResult(rowNames: repsA.map(\.name), columnNames: repsB.map(\.name),
                            values: values, defined: defined, standardErrors: errors,
                            diagnostics: diagnostics, provenance: provenance, stats: stats)
  }

  /// Puts one model's centred Grams for one batch of `data` (its positions, in order) in the
  /// cache, keyed as `heatmap` keys its batches (`Fingerprint.of(batch:in:)`): one forward pass
  /// when any is missing. A foreign model's Grams of the same examples (a dataset reference)
  /// then pair with them in CachedHeatmap. Returns the work done (forward passes, Grams).
  @discardableResult
  public func cacheGrams(of model: AnalysisModel, _ reps: [Representation], data: Dataset,
                         positions: [Int]) throws -> HeatmapStats {
    var stats = HeatmapStats(batches: 1, forwardPasses: 0, gramsComputed: 0, formsDerived: 0,
                             cacheHits: 0, seconds: 0)
    var rbfZero = Set<String>()
    let start = Date()
    _ = try vectors(model, reps, data: data, positions: positions,
                    batchKey: Fingerprint.of(batch: positions, in: data), form: .centred,
                    stats: &stats, rbfZero: &rbfZero)
    stats.seconds = Date().timeIntervalSince(start)
    return stats
  }

  /// The dot-ready Gram vectors of one model for one batch (nil where the form is degenerate
  /// for that batch), from the cache where possible; one forward pass for the rest.
  private func vectors(_ model: AnalysisModel, _ reps: [Representation], data: Dataset,
                       positions: [Int], batchKey: UInt64, form: GramForm,
                       stats: inout HeatmapStats, rbfZero: inout Set<String>) throws -> [GramEntry?] {
    var out = [GramEntry?](repeating: nil, count: reps.count)
    var resolved = [Bool](repeating: false, count: reps.count)
    var missing: [String: Int] = [:]
    // One slab for the vectors built here, at their representation's index (see GramEntry).
    var slab: Tensor?, baseSlab: Tensor?
    func slot(_ i: Int) -> (Tensor, Int) {
      if slab == nil { slab = Tensor([GramEntry.stride(m: positions.count) * reps.count]) }
      return (slab!, i)
    }
    func baseSlot(_ i: Int) -> (Tensor, Int) {
      if baseSlab == nil { baseSlab = Tensor([GramEntry.stride(m: positions.count) * reps.count]) }
      return (baseSlab!, i)
    }
    func key(_ rep: String, _ f: GramForm) -> GramKey {
      GramKey(model: model.fingerprint, representation: rep, batch: batchKey, form: f)
    }
    func derive(_ i: Int, from base: GramEntry, full: Tensor? = nil) throws {
      let t0 = Date()
      defer { stats.secondsForms += Date().timeIntervalSince(t0) }
      do {
        let e = try GramForms.derive(form, from: base, full: full,
                                     slot: form == .centred ? nil : slot(i), context: context)
        if form != .centred {
          cache.insert(e, for: key(reps[i].name, form))
          stats.formsDerived += 1
        }
        out[i] = e
      } catch GramForms.Degenerate.rbfBandwidthZero {
        rbfZero.insert(reps[i].name)
      }
      resolved[i] = true
    }
    for (i, rep) in reps.enumerated() {
      if let e = cache.entry(key(rep.name, form)) {
        out[i] = e
        resolved[i] = true
        stats.cacheHits += 1
      } else if form != .centred, let base = cache.entry(key(rep.name, .centred)) {
        stats.cacheHits += 1
        try derive(i, from: base)
      } else {
        missing[rep.name] = i
      }
    }
    if !missing.isEmpty {
      stats.forwardPasses += 1
      let m = positions.count
      let streamStart = Date()
      let before = stats.secondsGrams + stats.secondsForms
      let full = Tensor([m * m])   // reused for every representation of the batch
      // BN outputs whose conv input is computed too, by the conv's name.
      var affineOf: [String: (bn: Int, scale: [Float], shift: [Float])] = [:]
      if deriveBatchNormGrams {
        for (name, i) in missing where reps[i].kind == .bn {
          if let a = model.network.batchNormAffine(of: name), missing[a.input] != nil {
            affineOf[a.input] = (i, a.scale, a.shift)
          }
        }
      }
      let derivedBN = Set(affineOf.values.map { reps[$0.bn].name })
      let affineFull = affineOf.isEmpty ? full : Tensor([m * m])
      let streamed = reps.filter { missing[$0.name] != nil && !derivedBN.contains($0.name) }
      try ActivationStream.run(model: model.network, data: data, batches: [positions],
                               representations: streamed, context: context) { _, rep, p in
        let t0 = Date()
        if let a = affineOf[rep.name] {
          let (base, bnBase) = try GramForms.centredWithAffine(
            p, m: m, positions: rep.height * rep.width, channels: rep.channels, scale: a.scale,
            shift: a.shift, full: full, affineFull: affineFull, slot: baseSlot(missing[rep.name]!),
            affineSlot: baseSlot(a.bn), context: context)
          stats.secondsGrams += Date().timeIntervalSince(t0)
          stats.gramsComputed += 2
          cache.insert(base, for: key(rep.name, .centred))
          cache.insert(bnBase, for: key(reps[a.bn].name, .centred))
          try derive(missing[rep.name]!, from: base, full: full)
          try derive(a.bn, from: bnBase, full: affineFull)
          return
        }
        let base = try GramForms.centred(p, m: m, d: rep.features, full: full,
                                         slot: baseSlot(missing[rep.name]!), context: context)
        stats.secondsGrams += Date().timeIntervalSince(t0)
        stats.gramsComputed += 1
        cache.insert(base, for: key(rep.name, .centred))
        try derive(missing[rep.name]!, from: base, full: full)
      }
      stats.secondsForward += Date().timeIntervalSince(streamStart) - (stats.secondsGrams + stats.secondsForms - before)
    }
    precondition(resolved.allSatisfy { $0 }, "a representation was not streamed")
    return out
  }
}
