import Analysis
import Foundation
import XCTest

@testable import Daemon
@testable import Engine
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// The model store and the analyses through `handle`, checked against direct library calls.
final class ServiceAnalysisTests: ServiceTestCase {
  override func options() -> ServiceOptions {
    var o = super.options()
    o.datasetPaths["fashion-mnist"] = storeDirectory + "/no-fashion-mnist-here"
    return o
  }

  func heatmapRequest(_ model: String, other: String? = nil) -> Wire.HeatmapRequest {
    Wire.HeatmapRequest(model: model, other: other,
                        examples: ExampleSelection(split: .test, count: 64), batchSize: 16,
                        passes: 2, seed: 3, bootstrap: 4)
  }

  func testHeatmapEqualsDirectMinibatchCKAAndTheSecondIsCached() throws {
    let service = try makeService()
    let checkpoint = try writeModel("a", seed: 1)
    try writeModel("b", seed: 2)
    let request = heatmapRequest("a")
    let first = send(service, .heatmap, request)
    let payload = try XCTUnwrap(first.payload(.heatmapOK))
    let doc = try payload.decode(HeatmapResponse.self)

    let network = try ModelState.model(from: checkpoint)
    let data = synthetic.test.selecting(Array(0..<64))
    let direct = try MinibatchCKA(cache: GramCache(budgetBytes: 256 << 20), context: testKernels).heatmap(
      rows: AnalysisModel(name: "a", network: network), .all, data: data,
      request: Analysis.HeatmapRequest(plan: MinibatchPlan(batchSize: 16, passes: 2, seed: 3),
                                       bootstrap: 4))
    let l = direct.rowNames.count
    XCTAssertEqual(doc.rowNames, direct.rowNames)
    XCTAssertEqual(doc.columnNames, direct.columnNames)
    let cka = try XCTUnwrap(payload.tensor(named: "cka"))
    XCTAssertEqual(cka.shape, [l, l])
    for (got, want) in zip(try XCTUnwrap(cka.doubles), direct.values) { XCTAssertEqual(got, want, accuracy: 1e-12) }
    XCTAssertEqual(payload.tensor(named: "defined")?.uint8s, direct.defined.map { $0 ? 1 : 0 })
    XCTAssertEqual(payload.tensor(named: "standard_errors")?.shape, [l, l])
    for (got, want) in zip(try XCTUnwrap(payload.tensor(named: "standard_errors")?.doubles),
                           try XCTUnwrap(direct.standardErrors)) {
      XCTAssertEqual(got, want, accuracy: 1e-12)
    }
    let ids = try XCTUnwrap(payload.tensor(named: "batch_example_ids"))
    XCTAssertEqual(ids.shape, [8, 16])
    XCTAssertEqual(ids.int32s, direct.provenance.batchExampleIds.flatMap { $0 })
    XCTAssertEqual(doc.provenance.modelFingerprint, hex16(Fingerprint.of(network)))
    XCTAssertEqual(doc.provenance.split, .test)
    XCTAssertEqual(doc.stats.batches, 8)
    XCTAssertEqual(doc.stats.forwardPasses, 8)
    XCTAssertNotNil(doc.blockStructure, "within-model heatmaps get block-structure detection")
    XCTAssertEqual(doc.blockStructure?.threshold, BlockStructureParameters.defaultThreshold)
    XCTAssertEqual(first.events.last?.phase, "grams")
    XCTAssertEqual(first.events.last?.done, 8)

    // The same request again: every Gram from the cache, no forward pass, the same values.
    let second = send(service, .heatmap, request)
    let again = try XCTUnwrap(second.payload(.heatmapOK))
    let againDoc = try again.decode(HeatmapResponse.self)
    XCTAssertEqual(againDoc.stats.forwardPasses, 0)
    XCTAssertEqual(againDoc.stats.gramsComputed, 0)
    XCTAssertGreaterThan(againDoc.stats.cacheHits, 0)
    XCTAssertEqual(again.tensor(named: "cka"), cka)
    // Another estimator derives from the cached centred Grams.
    var biased = request
    biased.estimator = .biased
    XCTAssertEqual(send(service, .heatmap, biased).doc(.heatmapOK, as: HeatmapResponse.self)?.stats.forwardPasses, 0)

    // Cross-model: rows of a, columns of b; only b runs.
    var cross = heatmapRequest("a", other: "b")
    cross.layers = .blocks
    cross.bootstrap = 0
    let crossPayload = try XCTUnwrap(send(service, .heatmap, cross).payload(.heatmapOK))
    let crossDoc = try crossPayload.decode(HeatmapResponse.self)
    XCTAssertEqual(crossDoc.rowNames, ["s1.b1.out", "s2.b1.out", "s3.b1.out"])
    XCTAssertEqual(crossPayload.tensor(named: "cka")?.shape, [3, 3])
    XCTAssertNil(crossPayload.tensor(named: "standard_errors"))
    XCTAssertNil(crossDoc.blockStructure)
    XCTAssertEqual(crossDoc.provenance.other, "b")
    XCTAssertEqual(crossDoc.stats.forwardPasses, 8)

    let status = send(service, .status, EmptyDoc()).doc(.statusOK, as: StatusResponse.self)
    XCTAssertGreaterThan(status?.cache.entries ?? 0, 0)
    XCTAssertGreaterThan(status?.cache.hits ?? 0, 0)
    XCTAssertEqual(status?.cache.budgetBytes, 256 << 20)
  }

  /// A heatmap computed while a training job with another thread count runs in the same
  /// daemon is bitwise the heatmap of an idle daemon: each request computes on its own kernel
  /// context (issue 15: no process-wide kernel state).
  func testHeatmapBesideTrainingIsBitwiseTheIdleOne() throws {
    var o = options()
    o.analysisThreads = 2
    let idle = try makeService(o)
    try writeModel("a", seed: 1)
    let request = heatmapRequest("a")
    let want = try XCTUnwrap(send(idle, .heatmap, request).payload(.heatmapOK)?.tensor(named: "cka"))
    _ = idle.shutdown()

    // A fresh service on the same store (an empty Gram cache), training on 1 thread.
    let busy = try makeService(o)
    var training = recipe("busy", epochs: 200)
    training.threads = 1
    guard let (started, watch) = trainAndWatch(busy, training) else { return }
    XCTAssertTrue(watch.waitForEvents { $0.contains { $0.phase == "step" } }, "the job never stepped")
    let reply = send(busy, .heatmap, request)
    let payload = try XCTUnwrap(reply.payload(.heatmapOK))
    let doc = try payload.decode(HeatmapResponse.self)
    XCTAssertEqual(doc.stats.forwardPasses, 8, "computed, not cached")
    let got = try XCTUnwrap(payload.tensor(named: "cka"))
    let running = send(busy, .jobs, EmptyDoc()).doc(.jobsOK, as: JobsResponse.self)
    XCTAssertEqual(running?.jobs.first { $0.job == started.job }?.state, .running,
                   "the job must still run when the heatmap ends")
    XCTAssertEqual(got.shape, want.shape)
    XCTAssertEqual(try XCTUnwrap(got.doubles).map(\.bitPattern), try XCTUnwrap(want.doubles).map(\.bitPattern))
    _ = send(busy, .cancel, JobRequest(job: started.job))
  }

  func testRetrainedModelIsReloadedAndDeleteDropsItsGrams() throws {
    let service = try makeService()
    try writeModel("a", seed: 1)
    let old = send(service, .heatmap, heatmapRequest("a")).doc(.heatmapOK, as: HeatmapResponse.self)
    // Replaced on disk (as a training job's checkpoint would be): reloaded, new fingerprint.
    try writeModel("a", seed: 5)
    let new = send(service, .heatmap, heatmapRequest("a")).doc(.heatmapOK, as: HeatmapResponse.self)
    XCTAssertNotEqual(old?.provenance.modelFingerprint, new?.provenance.modelFingerprint)
    XCTAssertEqual(new?.stats.forwardPasses, 8)

    let before = send(service, .status, EmptyDoc()).doc(.statusOK, as: StatusResponse.self)?.cache.entries ?? 0
    guard let deleted = send(service, .deleteModel, ModelRequest(model: "a"))
      .doc(.deleteModelOK, as: DeleteModelResponse.self) else { return }
    XCTAssertEqual(deleted.model, "a")
    XCTAssertGreaterThan(deleted.bytesFreed, 0)
    // The Grams of the current "a" are gone; those of the replaced version (same keys but the
    // fingerprint) are left to the LRU.
    let after = send(service, .status, EmptyDoc()).doc(.statusOK, as: StatusResponse.self)?.cache.entries ?? 0
    XCTAssertGreaterThan(after, 0)
    XCTAssertEqual(after * 2, before)
    XCTAssertEqual(send(service, .models, EmptyDoc()).doc(.modelsOK, as: ModelsResponse.self)?.models.count, 0)
    expectError(send(service, .heatmap, heatmapRequest("a")), .notFound, mentioning: "\"a\"")
  }

  func testCorruptCheckpointIsListedAndRefusedWhileOthersAreServed() throws {
    let service = try makeService()
    try writeModel("good", seed: 1)
    try writeModel("flipped", seed: 2)
    try writeModel("short", seed: 3)
    var bytes = try Data(contentsOf: URL(fileURLWithPath: modelPath("flipped")))
    bytes[bytes.count / 2] ^= 0xFF
    try bytes.write(to: URL(fileURLWithPath: modelPath("flipped")))
    let short = try Data(contentsOf: URL(fileURLWithPath: modelPath("short")))
    try short.prefix(short.count / 2).write(to: URL(fileURLWithPath: modelPath("short")))
    // A temporary file of a killed save is not a model.
    try Data([1, 2, 3]).write(to: URL(fileURLWithPath: storeDirectory + "/models/.good.bsckpt.tmp-1-ab"))

    guard let models = send(service, .models, EmptyDoc()).doc(.modelsOK, as: ModelsResponse.self) else { return }
    XCTAssertEqual(models.models.map(\.model), ["flipped", "good", "short"])
    let byName = Dictionary(uniqueKeysWithValues: models.models.map { ($0.model, $0) })
    XCTAssertEqual(byName["good"]?.state, .ready)
    XCTAssertEqual(byName["flipped"]?.state, .corrupt)
    XCTAssertTrue(byName["flipped"]?.error?.contains("checksum") == true, byName["flipped"]?.error ?? "")
    XCTAssertNil(byName["flipped"]?.depth)
    XCTAssertNil(byName["flipped"]?.fingerprint)
    XCTAssertEqual(byName["short"]?.state, .corrupt)
    XCTAssertTrue(byName["short"]?.error?.contains("truncated") == true, byName["short"]?.error ?? "")

    expectError(send(service, .describe, ModelRequest(model: "flipped")), .corrupt, mentioning: "checksum")
    expectError(send(service, .heatmap, heatmapRequest("flipped")), .corrupt, mentioning: "flipped")
    expectError(send(service, .heatmap, heatmapRequest("good", other: "short")), .corrupt, mentioning: "short")
    expectError(send(service, .export, ExportRequest(model: "short", representation: "pool",
                                                    examples: ExampleSelection(split: .test, count: 2))),
                .corrupt, mentioning: "truncated")
    // The good one is served.
    XCTAssertNotNil(send(service, .heatmap, heatmapRequest("good")).doc(.heatmapOK, as: HeatmapResponse.self))
    XCTAssertNotNil(send(service, .describe, ModelRequest(model: "good")).doc(.describeOK, as: DescribeResponse.self))
    // A corrupt model can be deleted.
    XCTAssertNotNil(send(service, .deleteModel, ModelRequest(model: "flipped"))
      .doc(.deleteModelOK, as: DeleteModelResponse.self))
  }

  func testCKAOfClientMatricesEqualsFullBatchCKA() throws {
    let service = try makeService()
    let n = 12
    var rng = RandomSource(seed: 3)
    let xs = (0..<(n * 3)).map { _ in rng.normal() }
    let ys = (0..<(n * 5)).map { _ in Float(rng.normal()) }
    let x = WireTensor(name: "x", doubles: xs, shape: [n, 3])
    let y = WireTensor(name: "y", floats: ys, shape: [n, 5])
    guard let doc = send(service, .cka, CKARequest(), tensors: [x, y]).doc(.ckaOK, as: CKAResponse.self) else { return }
    let fx = try FeatureMatrix(rows: n, columns: 3, values: xs)
    let fy = try FeatureMatrix(rows: n, columns: 5, floats: ys)
    XCTAssertEqual(doc.n, n)
    XCTAssertEqual(try XCTUnwrap(doc.value(.linear)), try XCTUnwrap(FullBatchCKA.linear(fx, fy).value), accuracy: 1e-12)
    XCTAssertEqual(try XCTUnwrap(doc.value(.debiased)), try XCTUnwrap(FullBatchCKA.debiasedLinear(fx, fy).value),
                   accuracy: 1e-12)
    XCTAssertEqual(try XCTUnwrap(doc.value(.rbf)), try XCTUnwrap(FullBatchCKA.rbf(fx, fy).value), accuracy: 1e-12)

    // A constant matrix: null with a reason, never NaN.
    let constant = WireTensor(name: "x", doubles: Array(repeating: 1, count: n * 3), shape: [n, 3])
    let only = CKARequest(estimators: [.linear])
    guard let undefined = send(service, .cka, only, tensors: [constant, y]).doc(.ckaOK, as: CKAResponse.self) else { return }
    XCTAssertNil(undefined.value(.linear))
    XCTAssertTrue(undefined.undefined[.linear]?.contains("constant") == true, "\(undefined)")

    // Bad tensors name themselves.
    let ints = WireTensor(name: "x", int32s: Array(repeating: 1, count: n * 3), shape: [n, 3])
    expectError(send(service, .cka, CKARequest(), tensors: [ints, y]), .invalidArgument, mentioning: "'x'")
    expectError(send(service, .cka, CKARequest(), tensors: [x]), .invalidArgument, mentioning: "'y'")
    expectError(send(service, .cka, CKARequest(), tensors: [x, y, WireTensor(name: "z", floats: [1], shape: [1])]),
                .invalidArgument, mentioning: "'z'")
    let three = WireTensor(name: "x", doubles: Array(xs.prefix(9)), shape: [3, 3])
    let threeY = WireTensor(name: "y", floats: Array(ys.prefix(15)), shape: [3, 5])
    expectError(send(service, .cka, CKARequest(), tensors: [three, threeY]), .invalidArgument, mentioning: "n = 3")
    let flat = WireTensor(name: "y", floats: ys, shape: [n * 5])
    expectError(send(service, .cka, CKARequest(), tensors: [x, flat]), .invalidArgument, mentioning: "'y'")
    expectError(send(service, rawRequest(.cka, json: #"{"estimators":["cosine"]}"#)), .invalidArgument,
                mentioning: "estimators")
  }

  func testExportEqualsADirectActivationStreamRead() throws {
    let service = try makeService()
    let checkpoint = try writeModel("a", seed: 1)
    let ids = [5, 0, 17]
    let request = ExportRequest(model: "a", representation: "s2.b1.add",
                                examples: ExampleSelection(split: .test, ids: ids))
    let reply = send(service, .export, request)
    let payload = try XCTUnwrap(reply.payload(.exportOK))
    let doc = try payload.decode(ExportResponse.self)
    XCTAssertEqual(doc.layout, "nchw")
    XCTAssertEqual(doc.representation, "s2.b1.add")
    let rep = try XCTUnwrap(Self.tinyConfig.representations.first { $0.name == "s2.b1.add" })
    let activations = try XCTUnwrap(payload.tensor(named: "activations"))
    XCTAssertEqual(activations.shape, [3, rep.channels, rep.height, rep.width])
    XCTAssertEqual(payload.tensor(named: "example_ids")?.int32s, ids.map(Int32.init))
    XCTAssertEqual(payload.tensor(named: "labels")?.int32s, ids.map { synthetic.test.labels[$0] })

    let network = try ModelState.model(from: checkpoint)
    let data = synthetic.test.selecting(ids)
    var nhwc: [Float] = []
    try ActivationStream.run(model: network, data: data, batches: [[0, 1, 2]], representations: [rep], context: testKernels) { _, _, p in
      nhwc = Array(UnsafeBufferPointer(start: p, count: 3 * rep.features))
    }
    let got = try XCTUnwrap(activations.floats)
    let hw = rep.height * rep.width
    for i in 0..<3 {
      for pixel in 0..<hw {
        for c in 0..<rep.channels {
          XCTAssertEqual(got[i * rep.features + c * hw + pixel], nhwc[i * rep.features + pixel * rep.channels + c])
        }
      }
    }

    // The first n of a split.
    let pool = ExportRequest(model: "a", representation: "pool", examples: ExampleSelection(split: .train, count: 10))
    let pooled = send(service, .export, pool).payload(.exportOK)
    XCTAssertEqual(pooled?.tensor(named: "activations")?.shape, [10, rep.channels * 2, 1, 1])
    XCTAssertEqual(pooled?.tensor(named: "example_ids")?.int32s, (0..<10).map { Int32($0) })

    expectError(send(service, .export, ExportRequest(model: "a", representation: "s9.b1.add",
                                                    examples: ExampleSelection(split: .test, count: 2))),
                .notFound, mentioning: "s9.b1.add")
    expectError(send(service, .export, ExportRequest(model: "a", representation: "pool",
                                                    examples: ExampleSelection(split: .test, ids: [1, 99999]))),
                .notFound, mentioning: "99999")
    expectError(send(service, .export, ExportRequest(model: "a", representation: "pool",
                                                    examples: ExampleSelection(split: .test))),
                .invalidArgument, mentioning: "examples")
  }

  func testOtherAnalysesAgreeWithTheLibrary() throws {
    let service = try makeService()
    let checkpoint = try writeModel("a", seed: 1)
    for (name, seed) in [("b", UInt64(2)), ("c", 3), ("d", 4)] { try writeModel(name, seed: seed) }
    let network = try ModelState.model(from: checkpoint)

    // PC.
    let pcRequest = PCRequest(model: "a", layers: .blocks, examples: ExampleSelection(split: .test, count: 32),
                              directions: true)
    let pcPayload = try XCTUnwrap(send(service, .pc, pcRequest).payload(.pcOK))
    let pc = try pcPayload.decode(PCResponse.self)
    let directPC = try FirstPrincipalComponents.run(AnalysisModel(name: "a", network: network), .blockOutputs,
                                                    data: synthetic.test.selecting(Array(0..<32)), context: testKernels)
    XCTAssertEqual(pc.layers.map(\.name), directPC.layers.map(\.name))
    for (got, want) in zip(pc.layers, directPC.layers) {
      XCTAssertEqual(got.pc1Fraction ?? -1, want.pc1Fraction ?? -1, accuracy: 1e-12)
    }
    XCTAssertEqual(pcPayload.tensor(named: "cosine")?.shape, [3, 3])
    XCTAssertEqual(pcPayload.tensor(named: "example_ids")?.int32s, (0..<32).map { Int32($0) })
    XCTAssertEqual(pcPayload.tensor(named: "directions")?.shape, [3, 32])

    // PROBE.
    let probeRequest = ProbeRequest(model: "a", layers: ["s3.b1.add"], epochs: 1, batchSize: 64,
                                    trainExamples: 128, testExamples: 64)
    let probeReply = send(service, .probe, probeRequest)
    guard let probe = probeReply.doc(.probeOK, as: ProbeResponse.self) else { return }
    XCTAssertEqual(probe.layers.map(\.name), ["s3.b1.add"])
    XCTAssertEqual(probe.layers.first?.kind, "add")
    XCTAssertEqual(probe.trainCount, 128)
    XCTAssertEqual(probe.testCount, 64)
    XCTAssertEqual(probe.classes, 10)
    XCTAssertEqual(probeReply.events.last?.phase, "probe")

    // DELETE_BLOCKS.
    guard let deletion = send(service, .deleteBlocks, DeleteBlocksRequest(model: "a", testExamples: 64))
      .doc(.deleteBlocksOK, as: DeleteBlocksResponse.self) else { return }
    let intact = try Evaluation.run(network, on: synthetic.test.selecting(Array(0..<64)), context: testKernels)
    XCTAssertEqual(deletion.intactAccuracy, intact.accuracy)
    XCTAssertEqual(deletion.testCount, 64)
    XCTAssertEqual(deletion.blocks.map(\.block), ["s1.b1", "s2.b1", "s3.b1"])
    XCTAssertEqual(deletion.blocks.map(\.removable), [true, false, false])
    XCTAssertNotNil(deletion.blocks[1].reason)

    // COMPARE_OUTPUTS.
    let compare = CompareOutputsRequest(
      groups: [.init(name: "g1", models: ["a", "b"]), .init(name: "g2", models: ["c", "d"])],
      examples: ExampleSelection(split: .test, count: 100), perExample: true)
    guard let outputs = send(service, .compareOutputs, compare)
      .doc(.compareOutputsOK, as: CompareOutputsResponse.self) else { return }
    XCTAssertEqual(outputs.groups.map(\.group), ["g1", "g2"])
    XCTAssertEqual(outputs.groups.first?.exampleAccuracies?.count, 100)
    XCTAssertEqual(outputs.groups.first?.modelAccuracies.count, 2)
    XCTAssertEqual(outputs.comparisons.count, 1)
    XCTAssertEqual(outputs.comparisons.first?.groupA, "g1")
    XCTAssertEqual(outputs.comparisons.first?.examples.pValues?.count, 100)
    XCTAssertEqual(outputs.nulls.map { $0.group }, ["g1", "g2"])
    let aAccuracy = try Evaluation.run(network, on: synthetic.test.selecting(Array(0..<100)), context: testKernels).accuracy
    XCTAssertEqual(outputs.groups.first?.modelAccuracies.first ?? -1, aAccuracy, accuracy: 1e-12)
    expectError(send(service, .compareOutputs, CompareOutputsRequest(
      groups: [.init(name: "g1", models: ["a"])], pairs: [.init("g1", "g9")])), .notFound, mentioning: "g9")
  }

  func testDatasetsAndStatus() throws {
    let service = try makeService()
    try writeModel("a")
    guard let datasets = send(service, .datasets, EmptyDoc()).doc(.datasetsOK, as: DatasetsResponse.self) else { return }
    let byName = Dictionary(uniqueKeysWithValues: datasets.datasets.map { ($0.name, $0) })
    XCTAssertEqual(Set(byName.keys), ["fashion-mnist", "cifar10", "cifar100", "synthetic"])
    XCTAssertEqual(byName["synthetic"]?.available, true)
    XCTAssertEqual(byName["synthetic"]?.trainCount, Self.syntheticTrain)
    XCTAssertEqual(byName["synthetic"]?.testCount, Self.syntheticTest)
    XCTAssertEqual(byName["synthetic"]?.channels, 3)
    XCTAssertEqual(byName["cifar10"]?.available, false)
    XCTAssertTrue(byName["cifar10"]?.reason?.contains("no-cifar-here") == true, byName["cifar10"]?.reason ?? "")
    XCTAssertEqual(byName["fashion-mnist"]?.available, false)
    XCTAssertNotNil(byName["cifar100"]?.reason)

    guard let status = send(service, .status, EmptyDoc()).doc(.statusOK, as: StatusResponse.self) else { return }
    XCTAssertEqual(status.pid, Int(getpid()))
    XCTAssertGreaterThan(status.rssBytes, 0)
    XCTAssertGreaterThanOrEqual(status.peakRssBytes, status.rssBytes)
    XCTAssertEqual(status.store, storeDirectory)
    XCTAssertEqual(status.models, 1)
    XCTAssertEqual(status.connections, 1)
    XCTAssertEqual(status.jobs, StatusResponse.Jobs(running: 0, queued: 0, interrupted: 0))
    XCTAssertGreaterThanOrEqual(status.uptimeSeconds, 0)
  }

  func testBadDocsNameTheKey() throws {
    let service = try makeService()
    try writeModel("a")
    func train(_ json: String) -> RecordingReply { send(service, rawRequest(.train, json: json)) }
    expectError(train(#"{"depth":"x"}"#), .invalidArgument, mentioning: "depth")
    expectError(train(#"{"depth":9,"dataset":"synthetic"}"#), .invalidArgument, mentioning: "depth")
    expectError(train(#"{"width":-1,"dataset":"synthetic"}"#), .invalidArgument, mentioning: "width")
    expectError(train(#"{"dataset":"mnist"}"#), .invalidArgument, mentioning: "dataset")
    expectError(train(#"{"model":".hidden","dataset":"synthetic"}"#), .invalidArgument, mentioning: "model")
    expectError(train(#"{"dataset":"synthetic","fraction":0}"#), .invalidArgument, mentioning: "fraction")
    expectError(train(#"{"dataset":"synthetic","batch_size":0}"#), .invalidArgument, mentioning: "batch_size")
    expectError(train(#"{"dataset":"synthetic","epochs":1.5}"#), .invalidArgument, mentioning: "epochs")
    expectError(train(#"{"dataset":"cifar10"}"#), .dataUnavailable, mentioning: "no-cifar-here")
    expectError(train(#"{"dataset":"synthetic","depth":1202,"width":64}"#), .invalidArgument, mentioning: "GiB")
    expectError(send(service, rawRequest(.heatmap, json: "{}")), .invalidArgument, mentioning: "model")
    expectError(send(service, rawRequest(.heatmap, json: #"{"model":"a","batch_size":2}"#)),
                .invalidArgument, mentioning: "batch_size")
    expectError(send(service, rawRequest(.heatmap, json: #"{"model":"a","estimator":"rbf","remove_pc1":true}"#)),
                .invalidArgument, mentioning: "remove_pc1")
    expectError(send(service, rawRequest(.heatmap, json: #"{"model":"a","estimator":"cosine"}"#)),
                .invalidArgument, mentioning: "estimator")
    expectError(send(service, rawRequest(.heatmap, json: #"{"model":"a","layers":["nope"]}"#)),
                .notFound, mentioning: "nope")
    expectError(send(service, rawRequest(.heatmap, json: #"{"model":"a","layers":"zzz*"}"#)),
                .invalidArgument, mentioning: "layers")
    expectError(send(service, rawRequest(.heatmap, json: #"{"model":"a","examples":{"split":"dev"}}"#)),
                .invalidArgument, mentioning: "examples.split")
    expectError(send(service, rawRequest(.heatmap, json: #"{"model":"a","examples":{"split":"test","count":0}}"#)),
                .invalidArgument, mentioning: "examples.count")
    expectError(send(service, rawRequest(.watch, json: #"{"job":"abc"}"#)), .invalidArgument, mentioning: "job")
    expectError(send(service, rawRequest(.resume, json: #"{"job":1,"epochs":1.5}"#)), .invalidArgument,
                mentioning: "epochs")
    expectError(send(service, rawRequest(.export, json: #"{"model":"a","examples":{"split":"test","count":3}}"#)),
                .invalidArgument, mentioning: "representation")
    expectError(send(service, rawRequest(.pc, json: #"{"model":"a","method":"qr"}"#)), .invalidArgument,
                mentioning: "method")
    expectError(send(service, rawRequest(.probe, json: #"{"model":"a","epochs":0}"#)), .invalidArgument,
                mentioning: "epochs")
    expectError(send(service, rawRequest(.compareOutputs, json: #"{"groups":[{"name":"g","models":[]}]}"#)),
                .invalidArgument, mentioning: "groups[0].models")
    expectError(send(service, rawRequest(.compareOutputs, json: #"{"groups":[{"name":"g","models":["a"]}],"alpha":2}"#)),
                .invalidArgument, mentioning: "alpha")
    expectError(send(service, rawRequest(.status, json: "[1]")), .malformedPayload)
    expectError(send(service, rawRequest(.describe, json: #"{"model":"../etc/passwd"}"#)), .invalidArgument,
                mentioning: "model")
  }

  func testUnknownModelsJobsAndExamplesAreNotFound() throws {
    let service = try makeService()
    try writeModel("a")
    expectError(send(service, .describe, ModelRequest(model: "ghost")), .notFound, mentioning: "ghost")
    expectError(send(service, .deleteModel, ModelRequest(model: "ghost")), .notFound, mentioning: "ghost")
    expectError(send(service, .heatmap, heatmapRequest("ghost")), .notFound, mentioning: "ghost")
    expectError(send(service, .heatmap, heatmapRequest("a", other: "ghost")), .notFound, mentioning: "ghost")
    expectError(send(service, .watch, JobRequest(job: 99)), .notFound, mentioning: "99")
    expectError(send(service, .cancel, JobRequest(job: 99)), .notFound, mentioning: "99")
    expectError(send(service, .resume, ResumeRequest(job: 99)), .notFound, mentioning: "99")
    expectError(send(service, .deleteBlocks, DeleteBlocksRequest(model: "a", blocks: ["s9.b9"])),
                .notFound, mentioning: "s9.b9")
    expectError(send(service, .probe, ProbeRequest(model: "a", layers: ["nope"])), .notFound, mentioning: "nope")
    expectError(send(service, .pc, PCRequest(model: "a", examples: ExampleSelection(split: .train, ids: [0, 5000]))),
                .notFound, mentioning: "5000")
  }

  func testShutdownAbandonsARunningAnalysis() throws {
    let service = try makeService()
    try writeModel("a")
    var request = heatmapRequest("a")
    request.passes = 1000
    request.bootstrap = 0
    let reply = RecordingReply()
    let transport = self.transport
    let incoming = self.request(.heatmap, request)
    DispatchQueue.global().async { service.handle(incoming, reply: reply, transport: transport) }
    XCTAssertTrue(reply.waitForEvents { $0.count >= 2 })
    XCTAssertEqual(service.shutdown(), 0)
    expectError(reply, .shuttingDown)
    XCTAssertEqual(reply.finalCount, 1)
  }
}
