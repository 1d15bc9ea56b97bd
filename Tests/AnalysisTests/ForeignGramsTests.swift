import CKernels
import Engine
import XCTest
@testable import Analysis

/// Foreign models (issue 14): activations that arrive from outside become cached Grams, and a
/// heatmap from the cache alone equals the native heatmap of the same activations.
final class ForeignGramsTests: XCTestCase {
  typealias Native = MinibatchCKATests

  /// A stored model's own activations, streamed in as if a client had sent them (in NCHW, as
  /// PyTorch would, and under client batch keys), give the native heatmap to 1e-6 for every
  /// estimator; the foreign model against itself as two sides equals its within heatmap.
  func testStreamedActivationsGiveTheNativeHeatmap() throws {
    let model = try Native.model(3)
    let reps = Native.config.representations
    let batches = try Native.plan.batches(count: Native.data.count)
    let cache = GramCache(budgetBytes: 256 << 20)
    let foreign = ForeignModel(name: "torch-resnet8", fingerprint: "ckpt-sha-1234",
                               representations: reps.map { .init(name: $0.name, features: $0.features) })
    let grams = ForeignGrams(cache: cache)
    let names = batches.indices.map { "batch-\($0)" }
    try ActivationStream.run(model: model.network, data: Native.data, batches: batches,
                             representations: reps, context: testKernels) { b, rep, p in
      // NHWC -> NCHW: another order of the features, the same Gram.
      let (h, w, c) = (rep.height, rep.width, rep.channels)
      var nchw = [Float](repeating: 0, count: b.count * rep.features)
      for i in 0..<b.count {
        for y in 0..<h { for x in 0..<w { for k in 0..<c {
          nchw[i * rep.features + (k * h + y) * w + x] = p[i * rep.features + (y * w + x) * c + k]
        } } }
      }
      try grams.ingest(foreign, representation: rep.name, batchKey: ForeignModel.batchKey(names[b.index]),
                       batchName: names[b.index], activations: nchw, examples: b.count,
                       features: rep.features, context: testKernels)
    }
    let side = CachedHeatmap.Side(name: foreign.name, key: foreign.key, representations: reps.map(\.name))
    let keys = names.map(ForeignModel.batchKey)
    for (estimator, removePC1) in [(CKAEstimator.unbiased, false), (.biased, false), (.rbf, false),
                                   (.unbiased, true)] {
      let request = HeatmapRequest(estimator: estimator, removePC1: removePC1, plan: Native.plan)
      let engine = MinibatchCKA(cache: GramCache(budgetBytes: 256 << 20), context: testKernels)
      let native = try engine.heatmap(rows: model, data: Native.data, request: request)
      let streamed = try CachedHeatmap(cache: cache, context: testKernels)
        .heatmap(rows: side, batches: keys, batchNames: names, request: request)
      XCTAssertEqual(streamed.rowNames, native.rowNames)
      XCTAssertEqual(streamed.defined, native.defined, "\(estimator) \(removePC1)")
      XCTAssertEqual(streamed.stats.forwardPasses, 0)
      for (s, n) in zip(streamed.values, native.values) {
        XCTAssertEqual(s, n, accuracy: 1e-6, "\(estimator) removePC1 \(removePC1)")
      }
      let twoSides = try CachedHeatmap(cache: cache, context: testKernels)
        .heatmap(rows: side, columns: side, batches: keys, batchNames: names, request: request)
      for (c, s) in zip(twoSides.values, streamed.values) { XCTAssertEqual(c, s, accuracy: 1e-12) }
    }
    // Asking again with another estimator: every form from the cache, nothing resent.
    let again = try CachedHeatmap(cache: cache, context: testKernels)
      .heatmap(rows: side, batches: keys, batchNames: names,
               request: HeatmapRequest(estimator: .biased, plan: Native.plan))
    XCTAssertEqual(again.stats.formsDerived, 0)
    XCTAssertGreaterThan(again.stats.cacheHits, 0)
  }

  func testBadBatchesAreRefusedByName() throws {
    let cache = GramCache(budgetBytes: 64 << 20)
    let grams = ForeignGrams(cache: cache)
    let model = ForeignModel(name: "f", fingerprint: "fp", representations: [.init(name: "a", features: 3)])
    var rng = RandomSource(seed: 4)
    let x = (0..<(8 * 3)).map { _ in Float(rng.uniform() * 2 - 1) }, y = (0..<(8 * 3)).map { _ in Float(rng.uniform() * 2 - 1) }
    func send(_ data: [Float], rep: String = "a", key: String = "k", n: Int = 8, d: Int = 3) throws {
      try grams.ingest(model, representation: rep, batchKey: ForeignModel.batchKey(key), batchName: key,
                       activations: data, examples: n, features: d, context: testKernels)
    }
    try send(x)
    try send(x)   // the same data again under the same key: accepted (a resend)
    XCTAssertThrowsError(try send(y)) { e in
      XCTAssertEqual(e as? ForeignGramError, .batchKeyReused(representation: "a", batch: "k"))
    }
    try send(y, key: "k2")
    XCTAssertThrowsError(try send(x, rep: "b")) { XCTAssertEqual($0 as? ForeignGramError, .unknownRepresentation("b")) }
    XCTAssertThrowsError(try send(Array(x.prefix(16)), n: 8, d: 2)) { e in
      guard case .shape(let s)? = e as? ForeignGramError else { return XCTFail("\(e)") }
      XCTAssertTrue(s.contains("3 features"), s)
    }
    XCTAssertThrowsError(try send(Array(x.prefix(9)), n: 3)) { e in
      guard case .shape(let s)? = e as? ForeignGramError else { return XCTFail("\(e)") }
      XCTAssertTrue(s.contains("at least 4"), s)
    }
    var nan = x
    nan[5] = .nan
    XCTAssertThrowsError(try send(nan, key: "k3")) { XCTAssertEqual($0 as? ForeignGramError, .nonFinite("a")) }
    var inf = x
    inf[23] = -.infinity
    XCTAssertThrowsError(try send(inf, key: "k3")) { XCTAssertEqual($0 as? ForeignGramError, .nonFinite("a")) }
    // Finite values whose Gram overflows f32.
    XCTAssertThrowsError(try send(x.map { $0 * 1e25 }, key: "k3")) { XCTAssertEqual($0 as? ForeignGramError, .nonFinite("a")) }
    try send(y, key: "k3")   // nothing of the refused batches was kept
    // `undo` takes back the keys a frame cached first, not those it sent again unchanged.
    let additions = ForeignGrams.Additions()
    try grams.ingest(model, representation: "a", batchKey: ForeignModel.batchKey("k4"), batchName: "k4",
                     activations: x, examples: 8, features: 3, additions: additions, context: testKernels)
    try grams.ingest(model, representation: "a", batchKey: ForeignModel.batchKey("k"), batchName: "k",
                     activations: x, examples: 8, features: 3, additions: additions, context: testKernels)
    grams.undo(additions)
    func cached(_ key: String) -> Bool {
      cache.contains(GramKey(model: model.key, representation: "a", batch: ForeignModel.batchKey(key), form: .centred))
    }
    XCTAssertFalse(cached("k4"))
    XCTAssertTrue(cached("k"))
    try send(y, key: "k4")
    XCTAssertThrowsError(try send(y, key: "k")) { XCTAssertEqual($0 as? ForeignGramError, .batchKeyReused(representation: "a", batch: "k")) }
    // A heatmap over a batch never sent names what is missing; nothing is computed.
    let side = CachedHeatmap.Side(name: "f", key: model.key, representations: ["a"])
    XCTAssertThrowsError(try CachedHeatmap(cache: cache, context: testKernels)
      .heatmap(rows: side, batches: ["k", "never"].map(ForeignModel.batchKey), batchNames: ["k", "never"],
               request: HeatmapRequest())) { e in
      guard case .missing(let keys)? = e as? ForeignGramError else { return XCTFail("\(e)") }
      XCTAssertEqual(keys, ["f a batch never"])
    }
    // Keys of foreign models and batches never collide with each other's names.
    XCTAssertNotEqual(ForeignModel.key(fingerprint: "x"), ForeignModel.batchKey("x"))
  }
}
