import Analysis
import Foundation
import XCTest

@testable import Daemon
@testable import Engine
import Wire

/// Foreign models through the service (issue 14): sessions, streamed batches, heatmaps over
/// cached batches, and every refusal leaving other sessions' data and the daemon intact.
final class ServiceForeignTests: ServiceTestCase {
  /// A stored model's activations as a client would hold them: EXPORT of every selected
  /// representation (NCHW, examples 0..<count of the test split).
  struct Exported {
    var names: [String]
    var shapes: [[Int]]
    var values: [[Float]]
    func features(_ i: Int) -> Int { shapes[i].reduce(1, *) }

    /// One tensor per representation (`indices` of `names`) of these examples, in order.
    func tensors(_ examples: [Int], _ indices: [Int]? = nil, dtype: WireTensor.DType = .f32) -> [WireTensor] {
      (indices ?? Array(names.indices)).map { i in
        let d = features(i)
        let rows = examples.flatMap { values[i][($0 * d)..<(($0 + 1) * d)] }
        return WireTensor(name: names[i], floats: rows, shape: [examples.count] + shapes[i])
      }
    }
  }

  func export(_ service: DaemonService, _ model: String, layers: LayerSelector = .all,
              count: Int = 64) throws -> Exported {
    let selected = Self.tinyConfig.representations.map(\.name).filter { name in
      if case .names(let wanted) = layers { return wanted.contains(name) }
      return true
    }
    var out = Exported(names: [], shapes: [], values: [])
    for name in selected {
      let payload = try XCTUnwrap(send(service, .export, ExportRequest(
        model: model, representation: name, examples: ExampleSelection(split: .test, count: count))).payload(.exportOK))
      let activations = try XCTUnwrap(payload.tensor(named: ExportResponse.activationsTensor))
      out.names.append(name)
      out.shapes.append(Array(activations.shape.dropFirst()))
      out.values.append(try XCTUnwrap(activations.floats))
    }
    return out
  }

  func open(_ service: DaemonService, _ model: String, fingerprint: String, _ exported: Exported,
            file: StaticString = #filePath, line: UInt = #line) throws -> UInt64 {
    let reps = zip(exported.names, exported.shapes).map { ForeignRepresentation(name: $0, shape: $1) }
    let reply = send(service, .sessionOpen, SessionOpenRequest(model: model, fingerprint: fingerprint, representations: reps))
    return try XCTUnwrap(reply.doc(.sessionOpenOK, as: SessionOpenResponse.self, file: file, line: line), file: file, line: line).session
  }

  func batch(_ service: DaemonService, _ session: UInt64, _ key: String, _ tensors: [WireTensor]) -> RecordingReply {
    send(service, .sessionBatch, SessionBatchRequest(session: session, batch: key), tensors: tensors)
  }

  func heatmap(_ service: DaemonService, _ request: Wire.HeatmapRequest,
               file: StaticString = #filePath, line: UInt = #line) throws -> (HeatmapResponse, [Double]) {
    let payload = try XCTUnwrap(send(service, .heatmap, request).payload(.heatmapOK, file: file, line: line), file: file, line: line)
    return (try payload.decode(HeatmapResponse.self), try XCTUnwrap(payload.tensor(named: "cka")?.doubles))
  }

  /// Acceptance: a stored model's own activations, exported and streamed back as a foreign
  /// model under client keys for the native plan's batches, give the native HEATMAP to 1e-6
  /// for every estimator and PC1 removal; half of each batch's representations come in a
  /// second frame.
  func testStreamedExportGivesTheNativeHeatmap() throws {
    let service = try makeService()
    try writeModel("a", seed: 1)
    var native = Wire.HeatmapRequest(model: "a", examples: ExampleSelection(split: .test, count: 64),
                                     batchSize: 16, passes: 2, seed: 3)
    let plan = try XCTUnwrap(send(service, .heatmap, native).payload(.heatmapOK))
    let ids = try XCTUnwrap(plan.tensor(named: "batch_example_ids")?.int32s).map(Int.init)
    let batches = stride(from: 0, to: ids.count, by: 16).map { Array(ids[$0..<($0 + 16)]) }
    XCTAssertEqual(batches.count, 8)

    let exported = try export(service, "a")
    let session = try open(service, "a-torch", fingerprint: "export-of-a", exported)
    let half = exported.names.count / 2
    for (b, examples) in batches.enumerated() {
      let first = batch(service, session, "plan-\(b)", exported.tensors(examples, Array(0..<half)))
      XCTAssertEqual(first.doc(.sessionBatchOK, as: SessionBatchResponse.self)?.pending.count, exported.names.count - half)
      let second = batch(service, session, "plan-\(b)", exported.tensors(examples, Array(half..<exported.names.count)))
      let done = try XCTUnwrap(second.doc(.sessionBatchOK, as: SessionBatchResponse.self))
      XCTAssertEqual(done.examples, 16)
      XCTAssertEqual(done.pending, [])
    }
    let keys = batches.indices.map { "plan-\($0)" }
    for (estimator, removePC1) in [(Wire.HeatmapRequest.Estimator.unbiased, false), (.biased, false), (.rbf, false),
                                   (.unbiased, true), (.biased, true)] {
      native.estimator = estimator
      native.removePC1 = removePC1
      let (nativeDoc, nativeValues) = try heatmap(service, native)
      var streamed = Wire.HeatmapRequest(model: "a-torch", estimator: estimator, removePC1: removePC1,
                                         bootstrap: 8, batches: keys)
      streamed.blockMinBlocks = 1
      let (doc, values) = try heatmap(service, streamed)
      XCTAssertEqual(doc.rowNames, nativeDoc.rowNames)
      XCTAssertEqual(doc.provenance.foreign, true)
      XCTAssertEqual(doc.provenance.batches, keys)
      XCTAssertEqual(doc.stats.forwardPasses, 0)
      XCTAssertNotNil(doc.blockStructure)
      for (s, n) in zip(values, nativeValues) {
        XCTAssertEqual(s, n, accuracy: 1e-6, "\(estimator) removePC1 \(removePC1)")
      }
    }
    // Without `batches`: every complete batch of the model, in the order received.
    let (all, allValues) = try heatmap(service, Wire.HeatmapRequest(model: "a-torch"))
    XCTAssertEqual(all.provenance.batches, keys)
    native.estimator = .unbiased
    native.removePC1 = false
    for (s, n) in zip(allValues, try heatmap(service, native).1) { XCTAssertEqual(s, n, accuracy: 1e-6) }
    // A stored model of the name wins; `foreign` says otherwise.
    XCTAssertEqual(send(service, .sessionOpen, SessionOpenRequest(
      model: "a", fingerprint: "export-of-a", representations: zip(exported.names, exported.shapes).map {
        ForeignRepresentation(name: $0, shape: $1) })).doc(.sessionOpenOK, as: SessionOpenResponse.self)?.reopened, true)
    XCTAssertNil(try heatmap(service, Wire.HeatmapRequest(model: "a", examples: ExampleSelection(split: .test, count: 64),
                                                          batchSize: 16, passes: 1)).0.provenance.foreign)
    XCTAssertEqual(try heatmap(service, Wire.HeatmapRequest(model: "a", foreign: true)).0.provenance.foreign, true)
  }

  /// Derived representations: the BatchNorms declared as channel_affine maps of their
  /// convolutions (with the trained model's inference scale and shift) and never sent give the
  /// native heatmap to 1e-6, as the full stream does; the frame's answer lists them as stored.
  /// A derived representation's tensor is refused, and bad declarations name their key.
  func testDerivedBatchNormsGiveTheNativeHeatmap() throws {
    let service = try makeService()
    guard let (_, watch) = trainAndWatch(service, recipe("a", epochs: 1)) else { return }
    XCTAssertEqual(watch.doc(.watchOK, as: JobEntry.self)?.state, .finished)
    let network = try service.store.load("a").network
    var native = Wire.HeatmapRequest(model: "a", examples: ExampleSelection(split: .test, count: 64),
                                     batchSize: 16, passes: 1, seed: 3)
    let plan = try XCTUnwrap(send(service, .heatmap, native).payload(.heatmapOK))
    let ids = try XCTUnwrap(plan.tensor(named: "batch_example_ids")?.int32s).map(Int.init)
    let batches = stride(from: 0, to: ids.count, by: 16).map { Array(ids[$0..<($0 + 16)]) }

    let exported = try export(service, "a")
    var reps: [ForeignRepresentation] = []
    var sent: [Int] = []
    for (i, name) in exported.names.enumerated() {
      var rep = ForeignRepresentation(name: name, shape: exported.shapes[i])
      if let (input, scale, shift) = network.batchNormAffine(of: name) {
        rep.channelAffine = ChannelAffine(of: input, scale: scale.map(Double.init), shift: shift.map(Double.init))
        // Trained: the maps are not the identity (the derivation is tested, not a copy).
        XCTAssertGreaterThan(scale.map { abs($0 - 1) }.max()!, 0.01, name)
      } else {
        sent.append(i)
      }
      reps.append(rep)
    }
    XCTAssertEqual(exported.names.count - sent.count, 7, "stem.bn and two per block of a ResNet-8")
    let reply = send(service, .sessionOpen, SessionOpenRequest(model: "a-derived", fingerprint: "derived", representations: reps))
    let session = try XCTUnwrap(reply.doc(.sessionOpenOK, as: SessionOpenResponse.self)).session
    for (b, examples) in batches.enumerated() {
      let done = try XCTUnwrap(batch(service, session, "plan-\(b)", exported.tensors(examples, sent))
        .doc(.sessionBatchOK, as: SessionBatchResponse.self))
      XCTAssertEqual(done.pending, [])
      XCTAssertEqual(Set(done.representations), Set(exported.names))
    }
    let keys = batches.indices.map { "plan-\($0)" }
    for (estimator, removePC1) in [(Wire.HeatmapRequest.Estimator.unbiased, false), (.biased, false), (.rbf, false),
                                   (.unbiased, true)] {
      native.estimator = estimator
      native.removePC1 = removePC1
      let (nativeDoc, nativeValues) = try heatmap(service, native)
      let (doc, values) = try heatmap(service, Wire.HeatmapRequest(model: "a-derived", estimator: estimator,
                                                                  removePC1: removePC1, batches: keys))
      XCTAssertEqual(doc.rowNames, nativeDoc.rowNames)
      // EXPORT's forward (one batch of 64) and HEATMAP's (batches of 16) may differ in a last
      // bit; removing PC1 (an eigenvector of each Gram) amplifies that to ~2e-6.
      let tolerance = removePC1 ? 1e-5 : 1e-6
      for (s, n) in zip(values, nativeValues) {
        XCTAssertEqual(s, n, accuracy: tolerance, "\(estimator) removePC1 \(removePC1)")
      }
    }
    // A derived representation is never sent.
    let bn = exported.names.firstIndex(of: "stem.bn")!
    expectError(batch(service, session, "plan-0", exported.tensors(batches[0], [bn])), .invalidArgument,
                mentioning: "channel_affine")
    // A NaN in a source refuses the frame (found in the source's per-channel Grams), and
    // nothing of it is stored: the batch is not listed.
    let poisoned = exported.tensors(batches[0], sent).map { t -> WireTensor in
      guard t.name == "s1.b1.conv2", var values = t.floats else { return t }
      values[values.count - 3] = .nan
      return WireTensor(name: t.name, floats: values, shape: t.shape)
    }
    expectError(batch(service, session, "poisoned", poisoned), .invalidArgument,
                mentioning: "tensor 's1.b1.conv2' holds a non-finite value (nan at example 15)")
    let listed = try XCTUnwrap(send(service, .foreignModels, EmptyDoc()).doc(.foreignModelsOK, as: ForeignModelsResponse.self))
    XCTAssertEqual(listed.models.first { $0.model == "a-derived" }?.batches.map(\.batch), keys)
    // Declarations that cannot hold.
    func refused(_ change: (inout [ForeignRepresentation]) -> Void, _ mention: String) {
      var bad = reps
      change(&bad)
      expectError(send(service, .sessionOpen, SessionOpenRequest(model: "bad", fingerprint: "bad-\(mention)",
                                                                 representations: bad)),
                  .invalidArgument, mentioning: mention)
    }
    let stemBN = reps.firstIndex { $0.name == "stem.bn" }!
    refused({ $0[stemBN].channelAffine?.of = "s1.b1.conv1" }, "channel_affine.of")   // declared after it
    refused({ $0[stemBN].channelAffine?.of = "nothing" }, "channel_affine.of")
    refused({ $0[stemBN].channelAffine?.of = "input" }, "channel_affine.of")          // another shape
    refused({ $0[stemBN].channelAffine?.scale.removeLast() }, "channel_affine.scale")
    refused({ $0[stemBN].channelAffine?.shift[0] = 1e300 }, "channel_affine.shift")   // not a float
    refused({ $0[stemBN + 1].channelAffine = $0[stemBN].channelAffine }, "channel_affine.of")  // a second from stem.conv
    XCTAssertNotNil(send(service, .status, EmptyDoc()).payload(.statusOK))
  }

  /// A foreign model against the stored model it was exported from, over dataset references:
  /// the daemon computes the stored side's Grams for the referenced examples, and the cross
  /// heatmap equals the foreign model's within heatmap (and the stored model's own over the
  /// same references).
  func testCrossForeignVersusStoredOverDatasetReferencesEqualsWithin() throws {
    let service = try makeService()
    try writeModel("a", seed: 2)
    let layers = ["stem.relu", "s1.b1.out", "s2.b1.out", "s3.b1.out", "pool"]
    let exported = try export(service, "a", layers: .names(layers))
    let session = try open(service, "fa", fingerprint: "fa-1", exported)
    let references = stride(from: 0, to: 64, by: 16).map { "synthetic:test[\($0):\($0 + 16)]" }
    for (i, reference) in references.enumerated() {
      let reply = batch(service, session, reference, exported.tensors(Array((16 * i)..<(16 * i + 16))))
      XCTAssertEqual(reply.doc(.sessionBatchOK, as: SessionBatchResponse.self)?.examples, 16)
    }
    let (within, withinValues) = try heatmap(service, Wire.HeatmapRequest(model: "fa"))
    XCTAssertEqual(within.provenance.batches, references)
    let cross = Wire.HeatmapRequest(model: "fa", other: "a", layers: .names(layers), batches: references)
    let (crossDoc, crossValues) = try heatmap(service, cross)
    XCTAssertEqual(crossDoc.provenance.otherForeign, nil)
    XCTAssertEqual(crossDoc.columnNames, layers)
    XCTAssertEqual(crossDoc.stats.forwardPasses, 4, "the stored side runs once per reference")
    XCTAssertNil(crossDoc.blockStructure)
    for (c, w) in zip(crossValues, withinValues) { XCTAssertEqual(c, w, accuracy: 1e-6) }
    let (again, _) = try heatmap(service, cross)
    XCTAssertEqual(again.stats.forwardPasses, 0, "the stored side's Grams are cached under the same batch keys")
    let (storedDoc, storedValues) = try heatmap(service, Wire.HeatmapRequest(model: "a", layers: .names(layers),
                                                                               batches: references))
    XCTAssertEqual(storedDoc.provenance.foreign, nil)
    for (s, w) in zip(storedValues, withinValues) { XCTAssertEqual(s, w, accuracy: 1e-6) }
    // The references' example ids come back; a client key cannot pair with a stored model.
    XCTAssertEqual(send(service, .heatmap, cross).payload(.heatmapOK)?.tensor(named: "batch_example_ids")?.int32s,
                   (0..<64).map(Int32.init))
    _ = batch(service, session, "mine", exported.tensors(Array(0..<8)))
    expectError(send(service, .heatmap, Wire.HeatmapRequest(model: "fa", other: "a", batches: ["mine"])),
                .invalidArgument, mentioning: "client key")
  }

  func testSessionErrorsLeaveOtherSessionsAndTheDaemonServing() throws {
    let service = try makeService()
    let reps = [ForeignRepresentation(name: "x", shape: [2, 3]), ForeignRepresentation(name: "y", shape: [5])]
    func openRaw(_ model: String, _ fingerprint: String, _ reps: [ForeignRepresentation]) -> RecordingReply {
      send(service, .sessionOpen, SessionOpenRequest(model: model, fingerprint: fingerprint, representations: reps))
    }
    var rng = RandomSource(seed: 9)
    func tensor(_ name: String, _ shape: [Int], values: [Float]? = nil) -> WireTensor {
      WireTensor(name: name, floats: values ?? (0..<shape.reduce(1, *)).map { _ in Float(rng.uniform() * 2 - 1) },
                 shape: shape)
    }
    // SESSION_OPEN's checks.
    expectError(openRaw("bad/name", "f", reps), .invalidArgument, mentioning: "model")
    expectError(openRaw("m", String(repeating: "z", count: 129), reps), .invalidArgument, mentioning: "fingerprint")
    expectError(openRaw("m", "f", [reps[0], reps[0]]), .invalidArgument, mentioning: "twice")
    expectError(openRaw("m", "f", [ForeignRepresentation(name: "x", shape: [0])]), .invalidArgument, mentioning: "shape")
    expectError(openRaw("m", "f", []), .invalidArgument, mentioning: "representations")
    let a = try XCTUnwrap(openRaw("m", "fa", reps).doc(.sessionOpenOK, as: SessionOpenResponse.self))
    XCTAssertFalse(a.reopened)
    expectError(openRaw("other", "fa", [reps[0]]), .conflict, mentioning: "other representations")
    let b = try XCTUnwrap(openRaw("n", "fb", reps).doc(.sessionOpenOK, as: SessionOpenResponse.self))

    // Session b sends a whole batch; session a leaves "k" half sent (its client went away).
    let bx = tensor("x", [6, 2, 3]), by = tensor("y", [6, 5])
    XCTAssertEqual(batch(service, b.session, "k", [bx, by]).doc(.sessionBatchOK, as: SessionBatchResponse.self)?.pending, [])
    let ax = tensor("x", [8, 2, 3])
    XCTAssertEqual(batch(service, a.session, "k", [ax]).doc(.sessionBatchOK, as: SessionBatchResponse.self)?.pending, ["y"])

    // SESSION_BATCH's checks, each naming what is wrong; nothing of a refused frame is kept.
    expectError(batch(service, 4242, "k", [ax]), .notFound, mentioning: "no session 4242")
    expectError(batch(service, a.session, "k2", [tensor("x", [8, 3, 2])]), .invalidArgument, mentioning: "[2, 3]")
    expectError(batch(service, a.session, "k2", [tensor("z", [8, 1])]), .notFound, mentioning: "'z'")
    expectError(batch(service, a.session, "k2", [tensor("x", [8, 2, 3]), tensor("y", [7, 5])]),
                .invalidArgument, mentioning: "7 examples but 'x' has 8")
    expectError(batch(service, a.session, "k", [tensor("y", [6, 5])]), .conflict, mentioning: "holds 8 examples")
    expectError(batch(service, a.session, "k", [tensor("x", [8, 2, 3])]), .conflict, mentioning: "other data")
    var bad = (0..<(8 * 5)).map { _ in Float(rng.uniform() * 2 - 1) }
    bad[17] = .nan
    expectError(batch(service, a.session, "k3", [tensor("y", [8, 5], values: bad)]), .invalidArgument, mentioning: "non-finite")
    bad[17] = .infinity
    expectError(batch(service, a.session, "k3", [tensor("y", [8, 5], values: bad)]), .invalidArgument,
                mentioning: "non-finite value (inf at example 3)")
    // Finite values whose Gram overflows f32 are refused too (their CKA would be NaN).
    expectError(batch(service, a.session, "k3", [tensor("y", [8, 5], values: (0..<40).map { Float($0 % 7) * 1e20 })]),
                .invalidArgument, mentioning: "too large for f32")
    // A frame refused at its second tensor stores nothing, not even its first: the same batch
    // then takes other data for x (no CONFLICT), and a batch never completed is not listed.
    bad[17] = .nan
    expectError(batch(service, a.session, "k6", [tensor("x", [8, 2, 3]), tensor("y", [8, 5], values: bad)]),
                .invalidArgument, mentioning: "tensor 'y' holds a non-finite value (nan at example 3)")
    let models = try XCTUnwrap(send(service, .foreignModels, EmptyDoc()).doc(.foreignModelsOK, as: ForeignModelsResponse.self))
    let m = try XCTUnwrap(models.models.first { $0.model == "m" })
    XCTAssertFalse(m.batches.contains { $0.batch == "k6" })
    XCTAssertEqual(batch(service, a.session, "k6", [tensor("x", [8, 2, 3])]).doc(.sessionBatchOK, as: SessionBatchResponse.self)?
      .representations, ["x"])
    expectError(batch(service, a.session, "k3", [WireTensor(name: "y", int32s: Array(repeating: 1, count: 40), shape: [8, 5])]),
                .invalidArgument, mentioning: "f32, f16 or bf16")
    expectError(batch(service, a.session, "k3", [tensor("y", [3, 5])]), .invalidArgument, mentioning: "4 to")
    expectError(batch(service, a.session, "synthetic:test[0:16]", [tensor("y", [8, 5])]), .invalidArgument,
                mentioning: "16 examples")
    expectError(batch(service, a.session, "synthetic:test[9:3]", [tensor("y", [8, 5])]), .invalidArgument, mentioning: "empty")
    expectError(batch(service, a.session, "synthetic:test[0:100000]", [tensor("y", [8, 5])]), .notFound,
                mentioning: "160 examples")
    expectError(batch(service, a.session, "k4", []), .invalidArgument, mentioning: "tensors")
    // An f16 tensor is widened and accepted.
    let halves: [UInt16] = (0..<40).map { 0x3C00 + UInt16($0) }
    XCTAssertEqual(batch(service, a.session, "k5", [WireTensor(name: "y", dtype: .f16, shape: [8, 5],
                                                               bytes: halves.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] })])
                     .doc(.sessionBatchOK, as: SessionBatchResponse.self)?.representations, ["y"])

    // The half-sent batch names what it lacks; b's data is intact; the daemon serves on.
    expectError(send(service, .heatmap, Wire.HeatmapRequest(model: "m", batches: ["k"])), .notFound, mentioning: "m y batch k")
    let (doc, values) = try heatmap(service, Wire.HeatmapRequest(model: "n", batches: ["k"]))
    XCTAssertEqual(doc.rowNames, ["x", "y"])
    XCTAssertEqual(values[0], 1, accuracy: 1e-9)
    let closed = try XCTUnwrap(send(service, .sessionClose, SessionRequest(session: a.session))
      .doc(.sessionCloseOK, as: SessionCloseResponse.self))
    XCTAssertEqual(closed.incomplete, ["k", "k6", "k5"])
    expectError(send(service, .sessionClose, SessionRequest(session: a.session)), .notFound)
    expectError(batch(service, a.session, "k", [ax]), .notFound, mentioning: "no session")
    let listed = try XCTUnwrap(send(service, .foreignModels, EmptyDoc()).doc(.foreignModelsOK, as: ForeignModelsResponse.self))
    XCTAssertEqual(listed.models.map(\.model), ["m", "n"])
    XCTAssertEqual(listed.models[1].sessions, [b.session])
    XCTAssertEqual(listed.models[1].batches, [ForeignModelsResponse.Batch(batch: "k", examples: 6, representations: 2)])
    // Rebinding a name to another fingerprint says which one it replaced.
    XCTAssertEqual(openRaw("n", "fb-2", reps).doc(.sessionOpenOK, as: SessionOpenResponse.self)?.replaced, "fb")
    XCTAssertNotNil(send(service, .status, EmptyDoc()).doc(.statusOK, as: StatusResponse.self))
  }
}
