import Analysis
import Engine
import Foundation
import Study
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// Bounds on TRAIN values beyond the engine's own checks (values past them would only exhaust
/// memory or time).
enum TrainLimits {
  static let maxEpochs = 100_000
  static let maxBatchSize = 8192
  static let maxThreads = 64

  /// Rough bytes a training run of this network holds: weights, gradients and momentum, the
  /// activations kept for backward (about five per block output) and the scratch and
  /// evaluation buffers of the largest activation.
  static func estimatedBytes(_ c: ResNetConfig, batchSize: Int) -> Double {
    let ch = c.stageChannels
    var parameters = Double(9 * c.inputChannels * ch[0] + 2 * ch[0] + ch[2] * c.numClasses + c.numClasses)
    var perExample = Double(2 * c.inputHeight * c.inputWidth * ch[0])
    var largest = Double(c.inputHeight * c.inputWidth * max(ch[0], c.inputChannels))
    for b in c.blocks {
      parameters += Double(9 * b.inChannels * b.outChannels + 9 * b.outChannels * b.outChannels
                           + (b.projection ? b.inChannels * b.outChannels : 0) + 4 * b.outChannels)
      let out = Double(b.outHeight * b.outWidth * b.outChannels)
      perExample += 5 * out
      largest = max(largest, out, Double(b.inHeight * b.inWidth * b.inChannels))
    }
    return 4 * (3 * parameters + Double(batchSize) * (perExample + 4 * largest) + 256 * 5 * largest)
  }

  /// Refuses a recipe whose network this machine cannot hold: building it would only get the
  /// daemon killed. TRAIN checks it, and RESUME again (a job file may come from a larger
  /// machine's store).
  static func checkMemory(_ r: TrainRequest) throws(WireError) {
    let config = ResNetConfig(depth: r.depth, widthMultiplier: r.width, residual: !r.plain,
                              inputHeight: 32, inputWidth: 32, inputChannels: 3, numClasses: 100)
    let needed = estimatedBytes(config, batchSize: r.batchSize)
    let available = physicalMemory
    if available > 0, needed > 0.8 * available {
      throw invalid("width", String(format: "depth %d, width %g, batch %d would need about %.1f GiB; "
                                    + "this machine has %.1f GiB (use a smaller depth, width or batch_size)",
                                    r.depth, r.width, r.batchSize, needed / 1073741824, available / 1073741824))
    }
  }

  /// Physical memory, bytes.
  static var physicalMemory: Double {
    Double(sysconf(Int32(_SC_PHYS_PAGES))) * Double(sysconf(Int32(_SC_PAGESIZE)))
  }
}

extension DaemonService {
  // MARK: TRAIN

  func train(_ request: IncomingRequest, _ reply: ReplyChannel) throws {
    var recipe = try request.decode(TrainRequest.self)
    try validate(&recipe)
    // DATA_UNAVAILABLE now rather than in the job (the dataset is then cached for it).
    let splits = try datasets.splits(recipe.dataset)
    if recipe.fraction < 1 {
      _ = try DatasetCache.trainingSubset(splits.train, fraction: recipe.fraction,
                                          stratified: recipe.stratified)
    }
    let entry = try jobs.submit(recipe)
    let state = jobs.entry(entry.job)?.state ?? entry.state
    try respond(reply, .trainOK, TrainResponse(job: entry.job, model: entry.model, state: state))
  }

  /// Checks every value (INVALID_ARGUMENT naming the key) and fills in the model name and the
  /// canonical dataset name.
  func validate(_ r: inout TrainRequest) throws(WireError) {
    guard r.depth >= 8, (r.depth - 2) % 6 == 0, r.depth <= 1202 else {
      throw invalid("depth", "\(r.depth) is not 6n+2 with n >= 1 (8, 14, 20, ..., 1202)")
    }
    guard r.width > 0, r.width.isFinite, r.width <= 64 else {
      throw invalid("width", "\(r.width) is outside (0, 64]")
    }
    r.dataset = try datasets.canonical(r.dataset, key: "dataset")
    guard r.fraction > 0, r.fraction <= 1 else {
      throw invalid("fraction", "\(r.fraction) is outside (0, 1]")
    }
    guard (1...TrainLimits.maxEpochs).contains(r.epochs) else {
      throw invalid("epochs", "\(r.epochs) is outside 1...\(TrainLimits.maxEpochs)")
    }
    guard (1...TrainLimits.maxBatchSize).contains(r.batchSize) else {
      throw invalid("batch_size", "\(r.batchSize) is outside 1...\(TrainLimits.maxBatchSize)")
    }
    guard r.lr > 0, r.lr.isFinite else { throw invalid("lr", "\(r.lr) must be a positive number") }
    guard r.weightDecay >= 0, r.weightDecay.isFinite else {
      throw invalid("weight_decay", "\(r.weightDecay) must be a number >= 0")
    }
    guard r.warmupEpochs >= 0, r.warmupEpochs <= Double(TrainLimits.maxEpochs) else {
      throw invalid("warmup_epochs", "\(r.warmupEpochs) is outside 0...\(TrainLimits.maxEpochs)")
    }
    if let n = r.testExamples, n < 1 { throw invalid("test_examples", "\(n) must be at least 1") }
    if let t = r.threads, !(1...TrainLimits.maxThreads).contains(t) {
      throw invalid("threads", "\(t) is outside 1...\(TrainLimits.maxThreads)")
    }
    if let bad = r.snapshotEpochs.first(where: { !(1..<r.epochs).contains($0) }) {
      throw invalid("snapshot_epochs", "\(bad) is outside 1...\(r.epochs - 1) (the last epoch is the model itself)")
    }
    try TrainLimits.checkMemory(r)
    if let name = r.model {
      try ModelStore.validateName(name)
    } else {
      let name = Self.defaultModelName(r)
      guard ModelRequest.isValidName(name) else {
        throw invalid("model", "the derived name \"\(name)\" is not a valid model name; give one")
      }
      r.model = name
    }
    for epoch in r.snapshotEpochs {
      try ModelStore.validateName(RecipeName.snapshot(r.model!, epoch: epoch), key: "snapshot_epochs")
    }
  }

  /// `r20-k1-fashion-mnist-f0.1-s0` (`p` for plain nets, `-strat` for stratified subsets).
  static func defaultModelName(_ r: TrainRequest) -> String {
    func number(_ x: Double) -> String {
      x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : String(x)
    }
    return "\(r.plain ? "p" : "r")\(r.depth)-k\(number(r.width))-\(r.dataset)-f\(number(r.fraction))"
      + (r.stratified ? "-strat" : "") + "-s\(r.seed)"
  }

  // MARK: JOBS, WATCH, CANCEL, RESUME

  func jobsList(_ request: IncomingRequest, _ reply: ReplyChannel) throws {
    _ = try request.decode(EmptyDoc.self)
    try respond(reply, .jobsOK, JobsResponse(jobs: jobs.entries()))
  }

  func watch(_ request: IncomingRequest, _ reply: ReplyChannel) throws {
    let r = try request.decode(JobRequest.self)
    if let entry = try jobs.watch(r.job, reply: reply) { try respond(reply, .watchOK, entry) }
  }

  func cancel(_ request: IncomingRequest, _ reply: ReplyChannel) throws {
    let r = try request.decode(JobRequest.self)
    if let entry = try jobs.cancel(r.job, reply: reply) { try respond(reply, .cancelOK, entry) }
  }

  func resume(_ request: IncomingRequest, _ reply: ReplyChannel) throws {
    let r = try request.decode(ResumeRequest.self)
    try respond(reply, .resumeOK, try jobs.resume(r.job, epochs: r.epochs))
  }

  // MARK: MODELS, DESCRIBE, DELETE_MODEL

  func models(_ request: IncomingRequest, _ reply: ReplyChannel) throws {
    _ = try request.decode(EmptyDoc.self)
    let names = try store.names()
    let active = jobs.activeModels()
    var entries: [ModelEntry] = []
    for name in names {
      do {
        guard let found = try store.status(of: name) else { continue }
        entries.append(modelEntry(name, found.stamp, found.status, training: active[name] != nil))
      } catch {
        // A file that cannot even be examined is listed with the error; the others are served.
        entries.append(ModelEntry(model: name, state: .corrupt, error: wireError(error).message,
                                  bytes: 0, modified: rfc3339()))
      }
    }
    // Models being trained before their first checkpoint.
    for (name, _) in active where !names.contains(name) {
      guard let found = jobs.activeRecipe(model: name) else { continue }
      let (entry, recipe) = found
      entries.append(ModelEntry(model: name, state: .training, depth: recipe.depth,
                                width: recipe.width, plain: recipe.plain, dataset: recipe.dataset,
                                fraction: recipe.fraction, seed: recipe.seed, epoch: 0,
                                epochs: entry.epochs, bytes: 0, modified: entry.created))
    }
    entries.sort { $0.model < $1.model }
    try respond(reply, .modelsOK, ModelsResponse(models: entries))
  }

  func modelEntry(_ name: String, _ stamp: FileStamp, _ status: ModelFileStatus,
                  training: Bool) -> ModelEntry {
    switch status {
    case .unusable(let error):
      return ModelEntry(model: name, state: .corrupt, error: error.message, bytes: stamp.size,
                        modified: rfc3339(stamp.modified))
    case .valid(let h):
      let accuracy = h.history.last?.testAccuracy
      return ModelEntry(
        model: name, state: training ? .training : .ready, depth: h.config.depth,
        width: h.config.widthMultiplier, plain: !h.config.residual, dataset: h.data.dataset,
        fraction: h.data.fraction, seed: h.training.seed, epoch: h.epochsCompleted,
        epochs: h.training.epochs, testAccuracy: accuracy.flatMap { $0.isFinite ? $0 : nil },
        fingerprint: hex16(h.fingerprint), bytes: stamp.size, modified: rfc3339(stamp.modified))
    }
  }

  func describe(_ request: IncomingRequest, _ reply: ReplyChannel) throws {
    let r = try request.decode(ModelRequest.self)
    try ModelStore.validateName(r.model)
    let (stamp, h) = try store.header(of: r.model)
    let training = jobs.activeModels()[r.model] != nil
    let entry = modelEntry(r.model, stamp, .valid(h), training: training)
    let recipe = storedRecipe(r.model, h)
    // JSON has no NaN: an epoch with a non-finite number (a diverged evaluation) is left out.
    let history = h.history.compactMap { e -> DescribeResponse.Epoch? in
      let values = [e.trainLoss, e.trainAccuracy, e.testLoss, e.testAccuracy, e.learningRate, e.seconds]
      guard values.allSatisfy(\.isFinite) else { return nil }
      return DescribeResponse.Epoch(epoch: e.epoch, trainLoss: e.trainLoss,
                                    trainAccuracy: e.trainAccuracy, testLoss: e.testLoss,
                                    testAccuracy: e.testAccuracy, lr: e.learningRate,
                                    seconds: e.seconds)
    }
    let representations = h.config.representations.map {
      DescribeResponse.Representation(name: $0.name, kind: kindName($0.kind.rawValue),
                                      block: $0.block, channels: $0.channels, height: $0.height,
                                      width: $0.width)
    }
    let blocks = h.config.blocks.map {
      DescribeResponse.Block(name: $0.name, stage: $0.stage, index: $0.index, projection: $0.projection)
    }
    try respond(reply, .describeOK, DescribeResponse(
      entry: entry, recipe: recipe, history: history, parameters: h.parameterCount,
      representations: representations, blocks: blocks))
  }

  /// Removes the file, the loaded network, its cached Grams (`GramCache.removeAll(model:)`) and
  /// outputs. CONFLICT while a job trains it.
  func deleteModel(_ request: IncomingRequest, _ reply: ReplyChannel) throws {
    let r = try request.decode(ModelRequest.self)
    try ModelStore.validateName(r.model)
    let bytes = try removeModel(r.model)
    try respond(reply, .deleteModelOK, DeleteModelResponse(model: r.model, bytesFreed: bytes))
  }

  /// Removes a stored model and what the caches hold of it; its size. CONFLICT while a job
  /// trains it.
  func removeModel(_ name: String) throws(WireError) -> Int {
    let removed = try jobs.withoutActiveJob(model: name) { () throws(WireError) in
      try store.remove(name)
    }
    for fingerprint in removed.fingerprints {
      grams.removeAll(model: fingerprint)
      outputs.remove(model: fingerprint)
    }
    return removed.bytes
  }
}
