import CKernels
import Engine
import XCTest
@testable import Analysis

/// Minibatch CKA heatmaps of real (tiny) networks against a plain Double reference on the same
/// batches and the same fp32 activations, plus the cache behaviour and the diagnostics.
final class MinibatchCKATests: XCTestCase {
  static let config = ResNetConfig(depth: 8, widthMultiplier: 0.5, inputHeight: 8, inputWidth: 8,
                                   inputChannels: 1, numClasses: 3)
  static let data = Dataset.synthetic(count: 70, height: 8, width: 8, channels: 1, numClasses: 3, seed: 5)
  static let plan = MinibatchPlan(batchSize: 16, passes: 2, seed: 9)

  /// A fresh network with every BatchNorm made a non-trivial affine map (a new network's BNs
  /// are near identities in inference mode, which would hide a wrong BN Gram).
  static func model(_ seed: UInt64, _ name: String = "m") throws -> AnalysisModel {
    let network = try ResNet(config: config, seed: seed)
    var rng = RandomSource(seed: seed, stream: 0xB4)
    for p in network.parameters where p.name.contains("bn") {
      let bias = p.name.hasSuffix(".bias")
      for i in 0..<p.value.count { p.value.data[i] = Float(bias ? rng.uniform() * 2 - 1 : 0.5 + rng.uniform() * 1.5) }
    }
    for (name, t) in network.buffers {
      let variance = name.hasSuffix("running_var")
      for i in 0..<t.count { t.data[i] = Float(variance ? 0.2 + rng.uniform() * 3 : rng.uniform() - 0.5) }
    }
    return AnalysisModel(name: name, network: network)
  }

  /// Per batch, per representation, the fp32 activations as Double matrices.
  static func activations(_ m: AnalysisModel, reps: [Representation], batches: [[Int]]) throws
    -> [[String: FeatureMatrix]] {
    var out = [[String: FeatureMatrix]](repeating: [:], count: batches.count)
    try ActivationStream.run(model: m.network, data: data, batches: batches, representations: reps, context: testKernels) { b, rep, p in
      let n = b.count * rep.features
      out[b.index][rep.name] = try FeatureMatrix(
        rows: b.count, columns: rep.features,
        floats: Array(UnsafeBufferPointer(start: p, count: n)))
    }
    return out
  }

  /// Double top eigenpair of a symmetric matrix by power iteration (deflation-free; the Grams
  /// here have a clear gap).
  static func topEigen(_ k: [Double], n: Int, iterations: Int = 3000) -> (Double, [Double]) {
    var v = (0..<n).map { 1 + Double($0 % 5) * 0.1 }
    var lambda = 0.0, previous = -1.0
    var w = [Double](repeating: 0, count: n)
    for _ in 0..<iterations {
      k.withUnsafeBufferPointer { kp in
        for i in 0..<n {
          var s = 0.0
          for j in 0..<n { s += kp[i * n + j] * v[j] }
          w[i] = s
        }
      }
      let norm = w.reduce(0) { $0 + $1 * $1 }.squareRoot()
      guard norm > 0 else { return (0, v) }
      lambda = zip(v, w).reduce(0) { $0 + $1.0 * $1.1 }
      v = w.map { $0 / norm }
      // Converged to Double precision (the Rayleigh quotient converges twice as fast as v).
      if abs(lambda - previous) <= 1e-15 * abs(lambda) { break }
      previous = lambda
    }
    return (lambda, v)
  }

  /// The per-batch kernel of the Double reference for each request.
  static func referenceKernel(_ x: FeatureMatrix, _ request: HeatmapRequest) -> [Double]? {
    let n = x.rows
    switch request.estimator {
    case .rbf: return FullBatchCKA.rbfGram(x)
    case .unbiased, .biased:
      var k = FullBatchCKA.centre(x.gram, n: n)
      if request.removePC1 {
        let (lambda, u) = topEigen(k, n: n)
        for i in 0..<n { for j in 0..<n { k[i * n + j] -= lambda * u[i] * u[j] } }
      }
      return k
    }
  }

  static func referenceHSIC(_ k: [Double], _ l: [Double], n: Int, _ e: CKAEstimator) -> Double {
    e == .unbiased ? FullBatchCKA.hsic1(k, l, n: n) : FullBatchCKA.hsic0(k, l, n: n)
  }

  /// CKA_mb = mean_b HSIC(K_b, L_b) / sqrt(mean_b HSIC(K_b, K_b) mean_b HSIC(L_b, L_b)).
  static func reference(_ acts: [[String: FeatureMatrix]], _ actsB: [[String: FeatureMatrix]],
                        rows: [String], cols: [String], _ request: HeatmapRequest) -> [Double?] {
    var out: [Double?] = []
    var kernelsA: [[String: [Double]]] = acts.map { b in b.mapValues { referenceKernel($0, request)! } }
    let kernelsB: [[String: [Double]]] = actsB.map { b in b.mapValues { referenceKernel($0, request)! } }
    if rows.isEmpty { kernelsA = [] }
    for r in rows {
      for c in cols {
        var kl = 0.0, kk = 0.0, ll = 0.0
        for b in 0..<acts.count {
          let n = acts[b][r]!.rows
          let k = kernelsA[b][r]!, l = kernelsB[b][c]!
          kl += referenceHSIC(k, l, n: n, request.estimator)
          kk += referenceHSIC(k, k, n: n, request.estimator)
          ll += referenceHSIC(l, l, n: n, request.estimator)
        }
        out.append(kk > 0 && ll > 0 ? kl / (kk * ll).squareRoot() : nil)
      }
    }
    return out
  }

  func checkAgainstReference(_ request: HeatmapRequest, selector: RepresentationSelector,
                             tolerance: Double, file: StaticString = #filePath, line: UInt = #line) throws {
    let a = try Self.model(1)
    let engine = MinibatchCKA(cache: GramCache(budgetBytes: 64 << 20), context: testKernels)
    let result = try engine.heatmap(rows: a, selector, data: Self.data, request: request)
    let reps = try selector.select(from: Self.config)
    let batches = try request.plan.batches(count: Self.data.count)
    let acts = try Self.activations(a, reps: reps, batches: batches)
    let want = Self.reference(acts, acts, rows: reps.map(\.name), cols: reps.map(\.name), request)
    XCTAssertEqual(result.rowNames, reps.map(\.name), file: file, line: line)
    var worst = 0.0
    for (i, w) in want.enumerated() {
      guard let w else {
        XCTAssertFalse(result.defined[i], "cell \(i) should be undefined", file: file, line: line)
        continue
      }
      XCTAssertTrue(result.defined[i], file: file, line: line)
      worst = max(worst, abs(result.values[i] - w))
      XCTAssertFalse(result.values[i].isNaN, file: file, line: line)
    }
    XCTAssertLessThanOrEqual(worst, tolerance, "\(request.estimator) removePC1=\(request.removePC1): worst |diff| \(worst)",
                             file: file, line: line)
    for i in 0..<reps.count {
      XCTAssertEqual(result.values[i * reps.count + i], 1, accuracy: 1e-6, "diagonal", file: file, line: line)
    }
  }

  func testUnbiasedMatchesDoubleReferenceOnEveryRepresentation() throws {
    try checkAgainstReference(HeatmapRequest(estimator: .unbiased, plan: Self.plan), selector: .all, tolerance: 1e-5)
  }

  func testBatchNormGramsFromConvChannelsMatchDirectComputation() throws {
    // The BN Grams derived from the conv outputs' per-channel Grams against computing them from
    // the BN outputs: the same heatmap up to fp32 summation order, and two Grams per conv call.
    let a = try Self.model(3)
    let request = HeatmapRequest(estimator: .unbiased, plan: Self.plan)
    let derived = MinibatchCKA(cache: GramCache(budgetBytes: 64 << 20), context: testKernels)
    let direct = MinibatchCKA(cache: GramCache(budgetBytes: 64 << 20), context: testKernels)
    direct.deriveBatchNormGrams = false
    let x = try derived.heatmap(rows: a, .all, data: Self.data, request: request)
    let y = try direct.heatmap(rows: a, .all, data: Self.data, request: request)
    XCTAssertEqual(x.defined, y.defined)
    var worst = 0.0
    for i in 0..<x.values.count { worst = max(worst, abs(x.values[i] - y.values[i])) }
    XCTAssertLessThanOrEqual(worst, 1e-5, "worst |derived - direct| \(worst)")
    XCTAssertEqual(x.stats.gramsComputed, y.stats.gramsComputed)
    // Only BNs whose conv is selected too are derived: BN alone still works.
    let bnOnly = try derived.heatmap(rows: try Self.model(4), .pattern("*.bn1"), data: Self.data, request: request)
    let bnOnlyDirect = try direct.heatmap(rows: try Self.model(4), .pattern("*.bn1"), data: Self.data, request: request)
    for i in 0..<bnOnly.values.count { XCTAssertEqual(bnOnly.values[i], bnOnlyDirect.values[i], accuracy: 1e-12) }
  }

  func testBiasedAndRBFMatchDoubleReference() throws {
    try checkAgainstReference(HeatmapRequest(estimator: .biased, plan: Self.plan), selector: .all, tolerance: 1e-5)
    try checkAgainstReference(HeatmapRequest(estimator: .rbf, plan: Self.plan), selector: .all, tolerance: 1e-5)
  }

  func testPC1RemovedMatchesDoubleReference() throws {
    // Representations past the input (the input's Gram can have a repeated top eigenvalue).
    let sel = RepresentationSelector.pattern("s*.out,s*.add,pool,logits")
    try checkAgainstReference(HeatmapRequest(estimator: .unbiased, removePC1: true, plan: Self.plan),
                              selector: sel, tolerance: 1e-4)
    try checkAgainstReference(HeatmapRequest(estimator: .biased, removePC1: true, plan: Self.plan),
                              selector: sel, tolerance: 1e-4)
  }

  func testCrossModelMatchesReferenceAndSelfCrossEqualsWithin() throws {
    let a = try Self.model(1, "a"), b = try Self.model(2, "b")
    let engine = MinibatchCKA(cache: GramCache(budgetBytes: 64 << 20), context: testKernels)
    let request = HeatmapRequest(plan: Self.plan)
    let within = try engine.heatmap(rows: a, .all, data: Self.data, request: request)
    let selfCross = try engine.heatmap(rows: a, .all, columns: a, .all, data: Self.data, request: request)
    for i in 0..<within.values.count {
      XCTAssertEqual(selfCross.values[i], within.values[i], accuracy: 1e-6)
    }
    let sel = RepresentationSelector.blockOutputs, selB = RepresentationSelector.pattern("stem.relu,s*.out,logits")
    let cross = try engine.heatmap(rows: a, sel, columns: b, selB, data: Self.data, request: request)
    XCTAssertEqual(cross.rowNames.count, 3)
    XCTAssertEqual(cross.columnNames.count, 5)
    let batches = try Self.plan.batches(count: Self.data.count)
    let actsA = try Self.activations(a, reps: try sel.select(from: Self.config), batches: batches)
    let actsB = try Self.activations(b, reps: try selB.select(from: Self.config), batches: batches)
    let want = Self.reference(actsA, actsB, rows: cross.rowNames, cols: cross.columnNames, request)
    for (i, w) in want.enumerated() { XCTAssertEqual(cross.values[i], w!, accuracy: 1e-5) }
    // Same batches for both models, recorded in the provenance.
    XCTAssertEqual(cross.provenance.batchExampleIds.count, batches.count)
    XCTAssertEqual(cross.provenance.batchExampleIds[0], batches[0].map { Self.data.ids[$0] })
  }

  func testCachedModelsNeedNoForwardPass() throws {
    let a = try Self.model(1, "a"), b = try Self.model(2, "b")
    let cache = GramCache(budgetBytes: 64 << 20)
    let engine = MinibatchCKA(cache: cache, context: testKernels)
    let request = HeatmapRequest(plan: Self.plan)
    let first = try engine.heatmap(rows: a, .all, data: Self.data, request: request)
    XCTAssertEqual(first.stats.forwardPasses, first.stats.batches)
    let again = try engine.heatmap(rows: a, .all, data: Self.data, request: request)
    XCTAssertEqual(again.stats.forwardPasses, 0)
    XCTAssertEqual(again.values, first.values)
    // Another layer subset, another estimator, PC1 removal: derived from cached Grams.
    for r in [HeatmapRequest(estimator: .biased, plan: Self.plan), HeatmapRequest(estimator: .rbf, plan: Self.plan),
              HeatmapRequest(removePC1: true, plan: Self.plan)] {
      let h = try engine.heatmap(rows: a, .blockOutputs, data: Self.data, request: r)
      XCTAssertEqual(h.stats.forwardPasses, 0, "\(r.estimator)")
      XCTAssertGreaterThan(h.stats.formsDerived, 0)
    }
    // Cross-model against a new model: forward passes of the new model only.
    let cross = try engine.heatmap(rows: a, .all, columns: b, .all, data: Self.data, request: request)
    XCTAssertEqual(cross.stats.forwardPasses, cross.stats.batches)
    // A different plan (other batches) is a miss.
    let other = try engine.heatmap(rows: a, .all, data: Self.data,
                                   request: HeatmapRequest(plan: MinibatchPlan(batchSize: 16, passes: 1, seed: 10)))
    XCTAssertEqual(other.stats.forwardPasses, other.stats.batches)
  }

  func testCacheBudgetEvictsLeastRecentlyUsed() throws {
    let e = { GramEntry(m: 16, form: .centred) }
    let one = e().bytes
    let cache = GramCache(budgetBytes: 3 * one)
    let keys = (0..<4).map { GramKey(model: 1, representation: "r\($0)", batch: 7, form: .centred) }
    for k in keys.prefix(3) { cache.insert(e(), for: k) }
    XCTAssertNotNil(cache.entry(keys[0]))          // r0 becomes most recent
    cache.insert(e(), for: keys[3])                 // evicts r1, the least recent
    XCTAssertTrue(cache.contains(keys[0]))
    XCTAssertFalse(cache.contains(keys[1]))
    XCTAssertTrue(cache.contains(keys[2]))
    XCTAssertTrue(cache.contains(keys[3]))
    var s = cache.currentStats
    XCTAssertEqual(s.entries, 3)
    XCTAssertEqual(s.evictions, 1)
    XCTAssertLessThanOrEqual(s.bytes, s.budgetBytes)
    cache.insert(GramEntry(m: 200, form: .centred), for: GramKey(model: 2, representation: "big", batch: 1, form: .centred))
    s = cache.currentStats
    XCTAssertEqual(s.rejected, 1)
    XCTAssertEqual(s.entries, 3)
    cache.budgetBytes = one
    XCTAssertEqual(cache.currentStats.entries, 1)
    XCTAssertTrue(cache.contains(keys[3]))
    cache.removeAll(model: 1)
    XCTAssertEqual(cache.currentStats.entries, 0)
    XCTAssertEqual(cache.currentStats.bytes, 0)
  }

  func testHeatmapWithATinyCacheStillCorrect() throws {
    let a = try Self.model(1)
    let big = try MinibatchCKA(cache: GramCache(budgetBytes: 64 << 20), context: testKernels).heatmap(rows: a, .all, data: Self.data, request: HeatmapRequest(plan: Self.plan))
    let tiny = try MinibatchCKA(cache: GramCache(budgetBytes: 1000), context: testKernels).heatmap(rows: a, .all, data: Self.data, request: HeatmapRequest(plan: Self.plan))
    XCTAssertEqual(tiny.values, big.values)
  }

  func testConstantRepresentationsAreUndefinedWithDiagnostics() throws {
    // Every image identical: every representation is constant over every batch.
    var same = Self.data
    let size = same.imageSize
    for i in 0..<same.count { for p in 0..<size { same.pixels[i * size + p] = same.pixels[p] } }
    let a = try Self.model(1)
    let h = try MinibatchCKA(cache: GramCache(budgetBytes: 1 << 20), context: testKernels).heatmap(
      rows: a, .blockOutputs, data: same, request: HeatmapRequest(plan: Self.plan, bootstrap: 20))
    XCTAssertTrue(h.defined.allSatisfy { !$0 })
    XCTAssertTrue(h.values.allSatisfy { $0 == 0 })
    XCTAssertTrue(h.standardErrors!.allSatisfy { $0 == 0 && !$0.isNaN })
    XCTAssertEqual(h.diagnostics.first { $0.kind == .constantRepresentation }?.representations, h.rowNames)
    XCTAssertNotNil(h.diagnostics.first { $0.kind == .droppedExamples })   // 70 = 4 x 16 + 6
  }

  func testBootstrapStandardErrors() throws {
    let a = try Self.model(1)
    let h = try MinibatchCKA(cache: GramCache(budgetBytes: 64 << 20), context: testKernels).heatmap(
      rows: a, .blockOutputs, data: Self.data,
      request: HeatmapRequest(plan: MinibatchPlan(batchSize: 8, passes: 3, seed: 1), bootstrap: 200))
    let se = h.standardErrors!
    let l = h.rowNames.count
    for i in 0..<l {
      XCTAssertEqual(se[i * l + i], 0, accuracy: 1e-9, "the diagonal is 1 in every resample")
      for j in 0..<l where i != j {
        XCTAssertGreaterThan(se[i * l + j], 0)
        XCTAssertLessThan(se[i * l + j], 0.5)
        XCTAssertEqual(se[i * l + j], se[j * l + i], accuracy: 1e-12)
      }
    }
  }

  func testPlanIsSeededAndEveryPassIsAPermutation() throws {
    let p = MinibatchPlan(batchSize: 16, passes: 3, seed: 4)
    let b1 = try p.batches(count: 70), b2 = try p.batches(count: 70)
    XCTAssertEqual(b1, b2)
    XCTAssertEqual(b1.count, 12)
    for pass in 0..<3 {
      let used = b1[(pass * 4)..<(pass * 4 + 4)].flatMap { $0 }
      XCTAssertEqual(Set(used).count, 64)
    }
    XCTAssertNotEqual(b1[0], b1[4], "passes are reshuffled")
    XCTAssertNotEqual(try MinibatchPlan(batchSize: 16, passes: 1, seed: 5).batches(count: 70)[0], b1[0])
    let keep = try MinibatchPlan(batchSize: 16, passes: 1, keepIncomplete: true).batches(count: 70)
    XCTAssertEqual(keep.map(\.count), [16, 16, 16, 16, 6])
    XCTAssertThrowsError(try MinibatchPlan(batchSize: 3).batches(count: 70))
    XCTAssertThrowsError(try MinibatchPlan(batchSize: 100).batches(count: 70))
    XCTAssertThrowsError(try HeatmapRequest(estimator: .rbf, removePC1: true).validate())
  }

  func testStreamDeliversSelectedRepresentationsInForwardOrder() throws {
    let a = try Self.model(1)
    let reps = try RepresentationSelector.adds.select(from: Self.config)
    var seen: [String] = []
    try ActivationStream.run(model: a.network, data: Self.data, batches: [[0, 1, 2], [3, 4]],
                             representations: reps, context: testKernels) { b, rep, _ in seen.append("\(b.index):\(rep.name)") }
    XCTAssertEqual(seen, ["0:s1.b1.add", "0:s2.b1.add", "0:s3.b1.add", "1:s1.b1.add", "1:s2.b1.add", "1:s3.b1.add"])
    let wrong = Dataset.synthetic(count: 4, height: 6, width: 6, channels: 1, numClasses: 3, seed: 1)
    XCTAssertThrowsError(try ActivationStream.run(model: a.network, data: wrong, batches: [[0]], representations: reps, context: testKernels) { _, _, _ in })
  }
}
