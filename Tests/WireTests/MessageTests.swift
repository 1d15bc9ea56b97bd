import Foundation
import XCTest
@testable import Wire

/// SPEC.md section 7: every doc struct round-trips, and optional keys take the spec's defaults.
final class MessageTests: XCTestCase {
  private func roundTrip<T: Codable & Equatable>(_ value: T, file: StaticString = #filePath,
                                                  line: UInt = #line) throws {
    let payload = try Payload.encode(value)
    XCTAssertEqual(try Payload.parse(payload.encoded()).decode(T.self), value, file: file, line: line)
  }

  private func decode<T: Decodable>(_: T.Type, _ doc: String) throws -> T {
    try Payload(doc: Array(doc.utf8)).decode(T.self)
  }

  /// The doc's keys as JSON text, for checking what is sent.
  private func json(_ value: some Encodable) throws -> String {
    String(decoding: try Payload.encode(value).doc, as: UTF8.self)
  }

  // MARK: Defaults

  func testTrainDefaults() throws {
    let train = try decode(TrainRequest.self, "{}")
    XCTAssertEqual(train, TrainRequest())
    XCTAssertNil(train.model)
    XCTAssertEqual(train.depth, 20)
    XCTAssertEqual(train.width, 1.0)
    XCTAssertFalse(train.plain)
    XCTAssertEqual(train.dataset, "fashion-mnist")
    XCTAssertEqual(train.fraction, 1.0)
    XCTAssertFalse(train.stratified)
    XCTAssertEqual(train.epochs, 30)
    XCTAssertEqual(train.batchSize, 128)
    XCTAssertEqual(train.lr, 0.05)
    XCTAssertEqual(train.weightDecay, 5e-4)
    XCTAssertEqual(train.warmupEpochs, 0)
    XCTAssertTrue(train.augment)
    XCTAssertEqual(train.seed, 0)
    XCTAssertNil(train.testExamples)
    XCTAssertNil(train.threads)
    // null is the same as absent.
    XCTAssertEqual(try decode(TrainRequest.self, #"{"depth":null,"model":null}"#), TrainRequest())
  }

  func testHeatmapDefaults() throws {
    let heatmap = try decode(HeatmapRequest.self, #"{"model":"m"}"#)
    XCTAssertEqual(heatmap, HeatmapRequest(model: "m"))
    XCTAssertNil(heatmap.other)
    XCTAssertEqual(heatmap.layers, .all)
    XCTAssertNil(heatmap.otherLayers)
    XCTAssertEqual(heatmap.columnLayers, .all)
    XCTAssertEqual(heatmap.estimator, .unbiased)
    XCTAssertFalse(heatmap.removePC1)
    XCTAssertEqual(heatmap.examples, ExampleSelection(split: .test, count: 2560))
    XCTAssertEqual(heatmap.batchSize, 256)
    XCTAssertEqual(heatmap.passes, 10)
    XCTAssertEqual(heatmap.seed, 0)
    XCTAssertEqual(heatmap.bootstrap, 0)
    XCTAssertEqual(heatmap.bootstrapSeed, 0)
    XCTAssertFalse(heatmap.keepIncomplete)
    XCTAssertNil(heatmap.blockThreshold)
    XCTAssertNil(heatmap.blockMinBlocks)
    // other_layers defaults to layers.
    let cross = try decode(HeatmapRequest.self, #"{"model":"m","other":"n","layers":"blocks"}"#)
    XCTAssertEqual(cross.columnLayers, .blocks)
    XCTAssertEqual(try decode(HeatmapRequest.self, #"{"model":"m","examples":{"split":"train"}}"#).examples,
                   ExampleSelection(split: .train))
  }

  func testAnalysisDefaults() throws {
    XCTAssertEqual(try decode(PCRequest.self, #"{"model":"m"}"#),
                   PCRequest(model: "m", layers: .all, examples: ExampleSelection(split: .test, count: 1024),
                             method: .auto, directions: false))
    XCTAssertEqual(try decode(ProbeRequest.self, #"{"model":"m"}"#),
                   ProbeRequest(model: "m", layers: nil, epochs: 10, batchSize: 256, lr: 0.01,
                                pool2x2: false, seed: 0, trainExamples: nil, testExamples: nil))
    XCTAssertEqual(try decode(DeleteBlocksRequest.self, #"{"model":"m"}"#),
                   DeleteBlocksRequest(model: "m", blocks: nil, testExamples: nil))
    XCTAssertEqual(try decode(CompareOutputsRequest.self, #"{"groups":[]}"#),
                   CompareOutputsRequest(groups: [], pairs: nil, examples: ExampleSelection(split: .test),
                                         test: .fisher, alpha: 0.05, perExample: false, nullSeed: 0))
    XCTAssertEqual(try decode(CKARequest.self, "{}"),
                   CKARequest(estimators: [.linear, .debiased, .rbf], rbfThreshold: 0.5))
    XCTAssertEqual(try decode(ResumeRequest.self, #"{"job":4}"#), ResumeRequest(job: 4, epochs: nil))
    XCTAssertEqual(try decode(ExampleSelection.self, #"{"split":"test"}"#), ExampleSelection(split: .test))
    for empty in [StatusRequest.self, DatasetsRequest.self, JobsRequest.self, ModelsRequest.self,
                  ShutdownRequest.self] {
      XCTAssertEqual(try decode(empty, #"{"future_key":1}"#), EmptyDoc())
    }
  }

  func testRequiredKeysAreRequired() {
    for (type, doc, key) in [
      (HelloRequest.self as any Decodable.Type, "{}", "min_version"),
      (HeatmapRequest.self, "{}", "model"),
      (PCRequest.self, "{}", "model"),
      (ProbeRequest.self, "{}", "model"),
      (DeleteBlocksRequest.self, "{}", "model"),
      (CompareOutputsRequest.self, "{}", "groups"),
      (ExportRequest.self, #"{"model":"m","representation":"pool"}"#, "examples"),
      (WatchRequest.self, "{}", "job"),
      (ResumeRequest.self, "{}", "job"),
      (DescribeRequest.self, "{}", "model"),
      (ErrorDoc.self, #"{"code":1,"name":"BAD_MAGIC","message":"m"}"#, "close"),
    ] {
      do {
        _ = try Payload(doc: Array(doc.utf8)).decode(type)
        XCTFail("\(type) decoded from \(doc)")
      } catch {
        XCTAssertEqual(error.code, .invalidArgument)
        XCTAssertTrue(error.message.contains("'\(key)'"), "\(type): \(error.message)")
      }
    }
  }

  // MARK: Round trips

  func testHelloAndDaemonDocsRoundTrip() throws {
    try roundTrip(HelloRequest(minVersion: 1, maxVersion: 3, client: "blockscope test"))
    try roundTrip(HelloResponse(version: 1, serverVersion: "0.1.0", pid: 99))
    XCTAssertEqual(HelloResponse.Limits.protocolLimits,
                   HelloResponse.Limits(maxRequest: (4 << 20) + 16, maxCkaRequest: 512 << 20, maxDoc: 4 << 20))
    try roundTrip(StatusResponse(
      uptimeSeconds: 1.5, pid: 2, rssBytes: 3, peakRssBytes: 4, store: "/s", models: 5,
      cache: .init(bytes: 6, budgetBytes: 7, entries: 8, hits: 9, misses: 10, evictions: 11),
      jobs: .init(running: 12, queued: 13, interrupted: 14), connections: 15, workers: 16))
    try roundTrip(DatasetsResponse(datasets: [
      .init(name: "cifar10", available: false, path: "/d/cifar10", reason: "missing data_batch_1.bin",
            trainCount: 50000, testCount: 10000, classes: 10, channels: 3, height: 32, width: 32),
      .init(name: "synthetic", available: true, path: "", trainCount: 1, testCount: 2, classes: 3,
            channels: 1, height: 4, width: 5),
    ]))
    try roundTrip(ShutdownResponse(jobsCheckpointed: 2))
    try roundTrip(EmptyDoc())
    try roundTrip(ErrorDoc(.notFound, "no model named \"x\""))
    XCTAssertEqual(try json(ShutdownResponse(jobsCheckpointed: 2)), #"{"jobs_checkpointed":2}"#)
  }

  func testJobDocsRoundTrip() throws {
    try roundTrip(TrainRequest())
    try roundTrip(TrainRequest(model: "m", depth: 56, width: 0.25, plain: true, dataset: "cifar100",
                               fraction: 0.1, stratified: true, epochs: 1, batchSize: 2, lr: 0.3,
                               weightDecay: 1e-5, warmupEpochs: 3, augment: false, seed: 1 << 52,
                               testExamples: 100, threads: 1))
    try roundTrip(TrainResponse(job: 17, model: "m", state: .queued))
    let entry = JobEntry(job: 17, model: "m", state: .interrupted, epoch: 3, epochs: 30,
                         created: "2026-12-02T10:00:00Z", started: "2026-12-02T10:00:01Z",
                         ended: "2026-12-02T11:00:00Z", error: "daemon stopped",
                         last: .init(trainLoss: 0.5, trainAccuracy: 0.8, testLoss: 0.6, testAccuracy: 0.75))
    try roundTrip(entry)
    try roundTrip(JobEntry(job: 1, model: "m", state: .running, epoch: 0, epochs: 1, created: "t"))
    try roundTrip(JobsResponse(jobs: [entry]))
    try roundTrip(JobRequest(job: 5))
    try roundTrip(ResumeRequest(job: 5, epochs: 60))
    try roundTrip(ProgressEvent(phase: "epoch", done: 1, total: 30, job: 17, epoch: 1, epochs: 30,
                                metrics: ["loss": 0.5, "test_accuracy": 0.9], message: "m"))
    try roundTrip(ProgressEvent(phase: "grams", done: 3, total: 10))
    XCTAssertEqual(try json(ProgressEvent(phase: "grams", done: 3, total: 10)),
                   #"{"done":3,"phase":"grams","total":10}"#)
    XCTAssertTrue(JobState.cancelled.hasEnded)
    XCTAssertFalse(JobState.queued.hasEnded)
  }

  func testModelDocsRoundTrip() throws {
    let entry = ModelEntry(model: "r20", state: .ready, depth: 20, width: 1, plain: false,
                           dataset: "fashion-mnist", fraction: 1, seed: 0, epoch: 30, epochs: 30,
                           testAccuracy: 0.93, fingerprint: "0123456789abcdef", bytes: 1 << 20,
                           modified: "2026-12-02T10:00:00Z")
    var corrupt = entry
    corrupt.state = .corrupt
    corrupt.error = "CRC mismatch in section 2"
    corrupt.testAccuracy = nil
    try roundTrip(ModelsResponse(models: [entry, corrupt]))
    try roundTrip(ModelRequest(model: "r20"))
    try roundTrip(DeleteModelResponse(model: "r20", bytesFreed: 123))
    let describe = DescribeResponse(
      entry: entry, recipe: TrainRequest(model: "r20"),
      history: [.init(epoch: 1, trainLoss: 1, trainAccuracy: 0.5, testLoss: 1.1, testAccuracy: 0.45,
                      lr: 0.05, seconds: 12.5)],
      parameters: 272474,
      representations: [.init(name: "stem.conv", kind: "conv", channels: 16, height: 28, width: 28),
                        .init(name: "s1.b0.add", kind: "add", block: "s1.b0", channels: 16, height: 28, width: 28)],
      blocks: [.init(name: "s1.b0", stage: 1, index: 0, projection: false)])
    try roundTrip(describe)
    // The MODELS entry's keys are at the top level of the DESCRIBE doc.
    guard case .object(let keys) = try JSONValue.parse(try Payload.encode(describe).doc) else {
      return XCTFail("not an object")
    }
    XCTAssertEqual(keys["model"], .string("r20"))
    XCTAssertEqual(keys["fingerprint"], .string("0123456789abcdef"))
    XCTAssertNil(keys["entry"])
    XCTAssertTrue(ModelRequest.isValidName("r20-k1_fashion.mnist"))
    XCTAssertFalse(ModelRequest.isValidName(".hidden"))
    XCTAssertFalse(ModelRequest.isValidName(""))
    XCTAssertFalse(ModelRequest.isValidName(String(repeating: "a", count: 65)))
    XCTAssertFalse(ModelRequest.isValidName("a/b"))
  }

  func testAnalysisDocsRoundTrip() throws {
    try roundTrip(HeatmapRequest(model: "m"))
    try roundTrip(HeatmapRequest(model: "m", other: "n", layers: .names(["pool", "logits"]),
                                 otherLayers: .patterns("s2.*.out,pool"), estimator: .rbf,
                                 removePC1: true, examples: ExampleSelection(split: .train, ids: [3, 1, 2]),
                                 batchSize: 64, passes: 2, seed: 3, bootstrap: 100, bootstrapSeed: 4,
                                 keepIncomplete: true, blockThreshold: 0.8, blockMinBlocks: 2))
    try roundTrip(HeatmapResponse(
      rowNames: ["a"], columnNames: ["b"], estimator: .biased, removePC1: false,
      diagnostics: [.init(kind: "constant", message: "m", representations: ["a"])],
      provenance: .init(model: "m", modelFingerprint: "f", other: "n", otherFingerprint: "g",
                        split: .test, batchSize: 1, passes: 2, seed: 3, bootstrap: 4,
                        bootstrapSeed: 5, droppedExamples: 6),
      stats: .init(batches: 1, forwardPasses: 2, gramsComputed: 3, formsDerived: 4, cacheHits: 5,
                   seconds: 0.5)))
    try roundTrip(PCRequest(model: "m", layers: .adds, examples: .init(split: .test, count: 5),
                            method: .svd, directions: true))
    let pc = PCResponse(layers: [
      .init(name: "pool", features: 64, pc1Fraction: 0.25, totalVariance: 3, method: "gram"),
      .init(name: "stem.relu", features: 12544, pc1Fraction: nil, totalVariance: 0, method: "gram",
            note: "constant"),
    ])
    try roundTrip(pc)
    // A constant representation sends pc1_fraction as null, not as a missing key.
    XCTAssertTrue(try json(pc).contains(#""pc1_fraction":null"#))
    try roundTrip(ProbeRequest(model: "m", layers: ["s1.b0.bn2"], epochs: 1, batchSize: 2, lr: 0.5,
                               pool2x2: true, seed: 9, trainExamples: 10, testExamples: 20))
    try roundTrip(ProbeResponse(layers: [.init(name: "s1.b0.bn2", kind: "bn", block: "s1.b0",
                                               features: 16, constantFeatures: 0, trainAccuracy: 0.5,
                                               trainLoss: 1.5, testAccuracy: 0.45)],
                                trainCount: 10, testCount: 20, classes: 10))
    try roundTrip(DeleteBlocksRequest(model: "m", blocks: ["s1.b1"], testExamples: 100))
    try roundTrip(DeleteBlocksResponse(
      intactAccuracy: 0.9, intactLoss: 0.3, testCount: 100,
      blocks: [.init(block: "s2.b0", stage: 2, index: 0, removable: false, reason: "projection block"),
               .init(block: "s2.b1", stage: 2, index: 1, removable: true, accuracy: 0.85, loss: 0.4,
                     drop: 0.05, changedPredictions: 7)],
      stageTails: [.init(stage: 2, removed: 1, blocks: ["s2.b2"], accuracy: 0.8, loss: 0.5, drop: 0.1,
                         changedPredictions: 12)]))
    try roundTrip(ExportRequest(model: "m", representation: "pool", examples: .init(split: .test, ids: [1])))
    try roundTrip(ExportResponse(representation: "pool"))
    try roundTrip(CKARequest(estimators: [.debiased], rbfThreshold: 0.75))
    try roundTrip(CKAResponse(n: 5, values: [.linear: 0.5], undefined: [.rbf: "constant", .debiased: ""]))
    XCTAssertEqual(try json(CKAResponse(n: 5, values: [.linear: 0.5], undefined: [.rbf: "constant", .debiased: ""])),
                   #"{"debiased":null,"linear":0.5,"n":5,"rbf":null,"reasons":{"rbf":"constant"}}"#)
  }

  func testCompareOutputsDocsRoundTrip() throws {
    try roundTrip(CompareOutputsRequest(groups: [.init(name: "wide", models: ["a", "b"]),
                                                 .init(name: "deep", models: ["c", "d"])],
                                        pairs: [.init("wide", "deep")], examples: .init(split: .test, count: 100),
                                        test: .twoProportion, alpha: 0.01, perExample: true, nullSeed: 7))
    XCTAssertTrue(try json(CompareOutputsRequest(groups: [], pairs: [.init("a", "b")], test: .twoProportion))
      .contains(#""pairs":[["a","b"]]"#))
    let comparison = CompareOutputsResponse.Comparison(
      groupA: "wide", groupB: "deep", meanAccuracyA: 0.9, meanAccuracyB: 0.85,
      examples: .init(test: .fisher, alpha: 0.05, count: 100, significant: 3, significantFraction: 0.03,
                      favoringA: 2, favoringB: 1, undefined: 50, pValues: [0.5, 1], adjustedPValues: [1, 1]),
      classes: [.init(classIndex: 0, examples: 10, meanAccuracyA: 0.9, meanAccuracyB: 0.8, pValue: 0.2,
                      adjustedPValue: 0.4, significant: false)],
      significantClasses: 0, distances: .init(meanHellinger: 0.1, argmaxAgreement: 0.9, meanKl: 0.05))
    var null = comparison
    null.group = "wide"
    null.seed = 11
    null.distances = .init(meanHellinger: 0.1, argmaxAgreement: 0.9, klNote: "argmax-only model")
    let response = CompareOutputsResponse(
      groups: [.init(group: "wide", models: ["a", "b"], modelAccuracies: [0.9, 0.91], meanAccuracy: 0.905,
                     classes: [.init(classIndex: 3, examples: 10, meanAccuracy: 0.5, modelAccuracies: [0.4, 0.6])],
                     exampleAccuracies: [1, 0.5])],
      comparisons: [comparison], nulls: [null])
    try roundTrip(response)
    XCTAssertTrue(try json(response).contains(#""class":3"#))
  }

  func testLayerSelectorForms() throws {
    for (text, selector) in [(#""all""#, LayerSelector.all), (#""blocks""#, .blocks), (#""adds""#, .adds),
                             (#""s2.*.out,pool""#, .patterns("s2.*.out,pool")),
                             (#"["pool","logits"]"#, .names(["pool", "logits"]))] {
      let request = try decode(PCRequest.self, #"{"model":"m","layers":\#(text)}"#)
      XCTAssertEqual(request.layers, selector)
      XCTAssertTrue(try json(request).contains(#""layers":\#(text)"#))
    }
  }

  // MARK: Frames

  func testMessageAndErrorFrames() throws {
    let frame = try Frame.message(type: .train, requestID: 5, doc: TrainRequest(depth: 32), flags: .quiet)
    XCTAssertEqual(frame.type, .train)
    XCTAssertEqual(frame.flags, .quiet)
    XCTAssertEqual(try frame.decodeDoc(TrainRequest.self).depth, 32)

    let error = Frame.error(.notFound, "no job 9", requestID: 12)
    XCTAssertEqual(error.type, .error)
    XCTAssertEqual(error.requestID, 12)
    let doc = try error.decodeDoc(ErrorDoc.self)
    XCTAssertEqual(doc, ErrorDoc(code: 102, name: "NOT_FOUND", message: "no job 9", close: false))
    XCTAssertEqual(doc.errorCode, .notFound)
    XCTAssertFalse(doc.closesConnection)
    let connection = try Frame.error(WireError(.badMagic, "m"), requestID: 0).decodeDoc(ErrorDoc.self)
    XCTAssertTrue(connection.close)
    // A code this side does not know: below 100 still closes.
    XCTAssertTrue(ErrorDoc(code: 42, name: "NEW", message: "", close: false).closesConnection)
    XCTAssertNil(ErrorDoc(code: 142, name: "NEW", message: "", close: false).errorCode)
    // An enormous message is shortened rather than making an unsendable frame.
    let long = Frame.error(.internal, String(repeating: "é", count: 1 << 20), requestID: 1)
    XCTAssertTrue(long.isWithinLimit)
    XCTAssertLessThan(long.payload.count, 100 << 10)
  }

  func testMessageRefusesOversizedDocsAndFrames() throws {
    let big = ["pad": String(repeating: "x", count: Payload.maxDocLength)]
    XCTAssertThrowsError(try Frame.message(type: .statusOK, requestID: 1, doc: big)) {
      XCTAssertEqual(($0 as? WireError)?.code, .resultTooLarge)
    }
    let tensor = WireTensor(name: "t", uint8s: [UInt8](repeating: 0, count: 4 << 20), shape: [4 << 20])
    XCTAssertThrowsError(try Frame.message(type: .train, requestID: 1, doc: EmptyDoc(), tensors: [tensor])) {
      XCTAssertEqual(($0 as? WireError)?.code, .resultTooLarge)
    }
    XCTAssertNoThrow(try Frame.message(type: .cka, requestID: 1, doc: EmptyDoc(), tensors: [tensor]))
  }
}
