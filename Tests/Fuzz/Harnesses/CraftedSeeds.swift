import Engine
import Wire

// Seed inputs built with the real encoders, so each one gets past the format's first checks
// and the fuzzer starts from deep inside: a HELLO plus one request of most types (the golden
// vectors in Protocol/vectors cover the rest), responses as the CLI reads them, checkpoints
// with and without tensors, CIFAR and IDX files plain and gzip.
// `BLOCKSCOPE_FUZZ_WRITE_SEEDS=1 swift test --filter FuzzReplayTests/testCraftedSeeds`
// writes them to Tests/Fuzz/corpus/TARGET/crafted-NAME; FuzzReplayTests also runs them from
// here, so a change of an encoder never leaves them untested.

/// Named seed inputs per fuzz target.
public enum CraftedSeeds {
  public static func seeds(for target: FuzzTarget) -> [(name: String, bytes: [UInt8])] {
    switch target {
    case .frame: return frameSeeds()
    case .checkpoint: return checkpointSeeds()
    case .cifar: return cifarSeeds()
    case .idx: return idxSeeds()
    }
  }

  // MARK: Frames

  private static func frame(_ type: MessageType, _ id: UInt64, _ doc: some Encodable,
                            tensors: [WireTensor] = []) -> [UInt8] {
    // Every doc here is small and encodes.
    try! Frame.message(type: type, requestID: id, doc: doc, tensors: tensors).encoded()
  }

  /// A HELLO (id 1) then the request (id 2 unless given), as a client opens a conversation.
  private static func conversation(_ type: MessageType, _ doc: some Encodable, id: UInt64 = 2,
                                   tensors: [WireTensor] = []) -> [UInt8] {
    frame(.hello, 1, HelloRequest(minVersion: 1, maxVersion: 1, client: "fuzz"))
      + frame(type, id, doc, tensors: tensors)
  }

  static func frameSeeds() -> [(name: String, bytes: [UInt8])] {
    let selection = ExampleSelection(split: .test, ids: [3, 1, 2])
    let entry = JobEntry(job: 17, model: "m", state: .interrupted, epoch: 3, epochs: 30,
                         created: "2026-12-02T10:00:00Z", started: "2026-12-02T10:00:01Z",
                         ended: "2026-12-02T11:00:00Z", error: "daemon stopped",
                         last: .init(trainLoss: 0.5, trainAccuracy: 0.8, testLoss: 0.6, testAccuracy: 0.75))
    let model = ModelEntry(model: "r20", state: .ready, depth: 20, width: 1, plain: false,
                           dataset: "fashion-mnist", fraction: 1, seed: 0, epoch: 30, epochs: 30,
                           testAccuracy: 0.93, fingerprint: "0123456789abcdef", bytes: 1 << 20,
                           modified: "2026-12-02T10:00:00Z")
    let x = WireTensor(name: "x", floats: [1, 2, 3, 4, 5, 6], shape: [3, 2])
    let y = WireTensor(name: "y", doubles: [1, 0, 2, 1, 0, 3], shape: [3, 2])
    var seeds: [(String, [UInt8])] = [
      ("train", conversation(.train, TrainRequest(
        model: "m", depth: 56, width: 0.25, plain: true, dataset: "cifar100", fraction: 0.1,
        stratified: true, epochs: 1, batchSize: 2, lr: 0.3, weightDecay: 1e-5, warmupEpochs: 3,
        augment: false, seed: 1 << 52, testExamples: 100, threads: 1))),
      ("watch", conversation(.watch, JobRequest(job: 5))),
      ("resume", conversation(.resume, ResumeRequest(job: 5, epochs: 60))),
      ("describe", conversation(.describe, ModelRequest(model: "r20"))),
      ("heatmap", conversation(.heatmap, HeatmapRequest(
        model: "m", other: "n", layers: .names(["pool", "logits"]), otherLayers: .patterns("s2.*.out,pool"),
        estimator: .rbf, removePC1: true, examples: selection, batchSize: 64, passes: 2, seed: 3,
        bootstrap: 100, bootstrapSeed: 4, keepIncomplete: true, blockThreshold: 0.8, blockMinBlocks: 2))),
      ("pc", conversation(.pc, PCRequest(model: "m", layers: .adds, examples: .init(split: .test, count: 5),
                                         method: .svd, directions: true))),
      ("probe", conversation(.probe, ProbeRequest(model: "m", layers: ["s1.b0.bn2"], epochs: 1, batchSize: 2,
                                                  lr: 0.5, pool2x2: true, seed: 9, trainExamples: 10,
                                                  testExamples: 20))),
      ("delete-blocks", conversation(.deleteBlocks, DeleteBlocksRequest(model: "m", blocks: ["s1.b1"],
                                                                        testExamples: 100))),
      ("compare-outputs", conversation(.compareOutputs, CompareOutputsRequest(
        groups: [.init(name: "wide", models: ["a", "b"]), .init(name: "deep", models: ["c", "d"])],
        pairs: [.init("wide", "deep")], examples: .init(split: .test, count: 100), test: .twoProportion,
        alpha: 0.01, perExample: true, nullSeed: 7))),
      ("cka", conversation(.cka, CKARequest(estimators: [.debiased], rbfThreshold: 0.75), tensors: [x, y])),
      ("export", conversation(.export, ExportRequest(model: "m", representation: "pool", examples: selection))),
      ("session-batch-memfd", conversation(.sessionBatch, SessionBatchRequest(
        session: 3, batch: "cifar10:test[0:2]",
        memfd: [.init(name: "pool", dtype: .f16, shape: [2, 4], offset: 0),
                .init(name: "logits", dtype: .f32, shape: [2, 10], offset: 16)]),
        id: 4096)),   // the harness takes the memfd's size from the id
      ("session-batch-bf16", conversation(.sessionBatch, SessionBatchRequest(session: 3, batch: "k"),
                                          tensors: [WireTensor(name: "pool", dtype: .bf16, shape: [2, 2],
                                                               bytes: [0, 0x3f, 0x80, 0x7f, 0xc0, 0x7f, 1, 0x80])])),
      ("study-delete", conversation(.studyDelete, StudyDeleteRequest(study: "s", keepModels: true))),
      ("study-results", conversation(.studyResults, StudyResultsRequest(study: "s", offset: 1, limit: 2))),
      ("study-result", conversation(.studyResult, StudyResultRequest(study: "s", key: "heatmap/m"))),
      ("hello-ok", frame(.helloOK, 1, HelloResponse(version: 1, serverVersion: "0.1.0", pid: 99))),
      ("jobs-ok", frame(.jobsOK, 2, JobsResponse(jobs: [entry]))),
      ("models-ok", frame(.modelsOK, 2, ModelsResponse(models: [model]))),
      ("describe-ok", frame(.describeOK, 2, DescribeResponse(
        entry: model, recipe: TrainRequest(model: "r20"),
        history: [.init(epoch: 1, trainLoss: 1, trainAccuracy: 0.5, testLoss: 1.1, testAccuracy: 0.45,
                        lr: 0.05, seconds: 12.5)],
        parameters: 272474,
        representations: [.init(name: "s1.b0.add", kind: "add", block: "s1.b0", channels: 16, height: 28, width: 28)],
        blocks: [.init(name: "s1.b0", stage: 1, index: 0, projection: false)]))),
      ("pc-ok", frame(.pcOK, 2, PCResponse(layers: [
        .init(name: "pool", features: 64, pc1Fraction: 0.25, totalVariance: 3, method: "gram"),
        .init(name: "stem.relu", features: 12544, pc1Fraction: nil, totalVariance: 0, method: "gram",
              note: "constant")]))),
      ("probe-ok", frame(.probeOK, 2, ProbeResponse(
        layers: [.init(name: "s1.b0.bn2", kind: "bn", block: "s1.b0", features: 16, constantFeatures: 0,
                       trainAccuracy: 0.5, trainLoss: 1.5, testAccuracy: 0.45)],
        trainCount: 10, testCount: 20, classes: 10))),
      ("delete-blocks-ok", frame(.deleteBlocksOK, 2, DeleteBlocksResponse(
        intactAccuracy: 0.9, intactLoss: 0.3, testCount: 100,
        blocks: [.init(block: "s2.b1", stage: 2, index: 1, removable: true, accuracy: 0.85, loss: 0.4,
                       drop: 0.05, changedPredictions: 7)],
        stageTails: [.init(stage: 2, removed: 1, blocks: ["s2.b2"], accuracy: 0.8, loss: 0.5, drop: 0.1,
                           changedPredictions: 12)]))),
      ("cka-ok", frame(.ckaOK, 2, CKAResponse(n: 5, values: [.linear: 0.5],
                                              undefined: [.rbf: "constant", .debiased: ""]))),
      ("progress", frame(.progress, 2, ProgressEvent(phase: "epoch", done: 1, total: 30, job: 17, epoch: 1,
                                                     epochs: 30, metrics: ["loss": 0.5], message: "m"))),
    ]
    seeds.append(("status-ok", frame(.statusOK, 2, StatusResponse(
      uptimeSeconds: 1.5, pid: 2, rssBytes: 3, peakRssBytes: 4, store: "/s", models: 5,
      cache: .init(bytes: 6, budgetBytes: 7, entries: 8, hits: 9, misses: 10, evictions: 11),
      jobs: .init(running: 12, queued: 13, interrupted: 14), connections: 15, workers: 16))))
    return seeds
  }

  // MARK: Checkpoints

  static func checkpointSeeds() -> [(name: String, bytes: [UInt8])] {
    let bare = Checkpoint(model: ResNetConfig(depth: 8, widthMultiplier: 0.5, residual: false),
                          training: TrainConfig(epochs: 3, batchSize: 64, learningRate: 0.1, seed: 7),
                          data: DataSpec(dataset: "synthetic", fraction: 0.25, subset: .stratified))
    var full = bare
    full.data.path = "/data/x"
    full.epochsCompleted = 2
    full.history = [EpochRecord(epoch: 1, trainLoss: .nan, trainAccuracy: 0.1, testLoss: .infinity,
                                testAccuracy: 0.12, learningRate: 0.1, seconds: 1.5, imagesPerSecond: 99)]
    full.metadata = ["git": "abc123", "note": "ünïcode"]
    full.tensors = [
      NamedTensor(name: "s1.b1.conv1.weight", shape: [2, 3], values: [1, -2, 3.5, 0, -0.0, .nan]),
      NamedTensor(name: "empty", shape: [0, 4], values: []),
      NamedTensor(name: "scalar", shape: [], values: [42]),
      NamedTensor(name: "opt.s1.b1.conv1.weight.momentum", shape: [3], values: [7, 8, 9]),
    ]
    // The headers alone: the harness wraps an input that is not a checkpoint as a header.
    func header(_ file: [UInt8]) -> [UInt8] {
      let length = Int(file[24]) | Int(file[25]) << 8 | Int(file[26]) << 16 | Int(file[27]) << 24
      return Array(file[28..<(28 + length)])
    }
    return [("bare.ckpt", bare.encode()), ("tensors.ckpt", full.encode()),
            ("bare-header.json", header(bare.encode())), ("tensors-header.json", header(full.encode()))]
  }

  // MARK: Datasets

  /// Records of `labelBytes` label bytes (from `labels`) and a 3072-byte image each.
  private static func cifarRecords(_ labels: [[UInt8]]) -> [UInt8] {
    var bytes: [UInt8] = []
    for (n, label) in labels.enumerated() {
      bytes += label
      bytes += (0..<CIFAR.imageBytes).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ n) }
    }
    return bytes
  }

  static func cifarSeeds() -> [(name: String, bytes: [UInt8])] {
    [("cifar10-two-records.bin", cifarRecords([[3], [9]])),
     ("cifar100-one-record.bin", cifarRecords([[19, 99]])),
     ("cifar10-label-out-of-range.bin", cifarRecords([[10]]))]
  }

  private static func bigEndian32(_ v: Int) -> [UInt8] {
    [UInt8((v >> 24) & 0xFF), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
  }

  static func idxSeeds() -> [(name: String, bytes: [UInt8])] {
    let images = bigEndian32(0x803) + bigEndian32(2) + bigEndian32(3) + bigEndian32(4)
      + (0..<24).map { UInt8($0 * 10) }
    let labels = bigEndian32(0x801) + bigEndian32(3) + [9, 0, 4]
    let gzImages = DatasetHarness.gzip(images) ?? []
    let gzLabels = DatasetHarness.gzip(labels) ?? []
    let split = (DatasetHarness.gzip(Array(images.prefix(10))) ?? []) + (DatasetHarness.gzip(Array(images.dropFirst(10))) ?? [])
    return [("images-idx3", images), ("labels-idx1", labels),
            ("images-idx3.gz", gzImages), ("labels-idx1.gz", gzLabels),
            ("images-two-members.gz", split), ("labels-zero-padded.gz", gzLabels + [0, 0, 0, 0])]
  }
}
