import Engine
import Foundation
import Wire

/// `STORE/jobs/ID.json`: a job's entry as JOBS lists it and the recipe it trains.
struct JobFile: Codable, Sendable {
  var format = 1
  var entry: JobEntry
  /// The TRAIN request with every default filled in (`model` set; `epochs` as extended by
  /// RESUME).
  var recipe: TrainRequest
}

/// Why a running job is being stopped.
enum StopReason: Sendable {
  case cancel
  case shutdown
}

/// One job. Its mutable state is guarded by `JobManager`'s lock, except `stop`, which the
/// training thread polls before every step.
final class TrainingJob: @unchecked Sendable {
  var file: JobFile
  let stop = Locked<StopReason?>(nil)
  /// WATCH requests, answered with the entry when the job ends.
  var watchers: [ProgressSender] = []
  var watcherReplies: [ReplyChannel] = []
  /// CANCEL requests of a running job, answered when it has stopped.
  var cancelReplies: [ReplyChannel] = []

  init(_ file: JobFile) { self.file = file }
  var id: UInt64 { file.entry.job }
}

/// How a training run ended.
enum JobOutcome: Sendable {
  case finished
  case cancelled
  /// Stopped by shutdown, or by a failed checkpoint (the message): resumable.
  case interrupted(String?)
  case failed(String)
}

/// Training jobs: their records, the queue, and the runner threads that train them
/// (`options.parallelJobs` at a time, one by default). Every state change is written to the
/// job's record (temp, fsync, rename) before it is reported.
final class JobManager: @unchecked Sendable {
  let directory: String
  let store: ModelStore
  let datasets: DatasetCache
  let options: ServiceOptions

  private let cond = NSCondition()
  private var jobs: [UInt64: TrainingJob] = [:]
  private var queue: [UInt64] = []
  private var nextID: UInt64 = 1
  private var running: [UInt64: TrainingJob] = [:]
  private var stopping = false
  private var interruptedByShutdown = 0
  private let runnerExited = DispatchSemaphore(value: 0)
  private var shutdownResult: Int?
  /// Called (on a runner thread, no lock held) after a job ends: the study runner looks for
  /// new work then.
  var onJobEnded: (@Sendable () -> Void)?

  init(directory: String, store: ModelStore, datasets: DatasetCache, options: ServiceOptions) throws(WireError) {
    self.directory = directory
    self.store = store
    self.datasets = datasets
    self.options = options
    try makeDirectory(directory)
    removeStaleTemporaries(in: directory)
    try loadRecords()
    // The threads hold the manager until shutdown() ends them.
    for i in 0..<runners {
      let thread = Thread { self.runnerMain() }
      thread.name = runners == 1 ? "blockscoped-training" : "blockscoped-training-\(i + 1)"
      thread.stackSize = 8 << 20
      thread.start()
    }
  }

  /// Jobs trained at the same time.
  var runners: Int { max(1, options.parallelJobs) }

  /// The kernel threads of a job: its TRAIN's `threads`, else the daemon's training threads,
  /// else the online CPUs split between the runners.
  func threads(for recipe: TrainRequest) -> Int {
    if let t = recipe.threads ?? options.trainingThreads { return t }
    return max(1, KernelContext.defaultThreads / runners)
  }

  /// The kernel threads of the jobs training now (queued jobs hold none).
  func runningThreads() -> Int {
    cond.lock()
    defer { cond.unlock() }
    return running.values.reduce(0) { $0 + threads(for: $1.file.recipe) }
  }

  private func path(_ id: UInt64) -> String { "\(directory)/\(id).json" }

  // MARK: Records

  private static func encoder() -> JSONEncoder {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    return e
  }

  /// Writes the record atomically. NO_SPACE / IO_ERROR naming the call and path.
  private func persist(_ file: JobFile) throws(WireError) {
    let bytes: [UInt8]
    do {
      bytes = Array(try Self.encoder().encode(file)) + [UInt8(ascii: "\n")]
    } catch {
      throw WireError(.internal, "job \(file.entry.job): record cannot be encoded: \(error)")
    }
    try writeFileAtomically(bytes, to: path(file.entry.job), what: "job record")
  }

  /// Reads every record; jobs that were queued or running when the daemon stopped (or died)
  /// become `interrupted`.
  private func loadRecords() throws(WireError) {
    let files: [String]
    do {
      files = try FileManager.default.contentsOfDirectory(atPath: directory)
    } catch {
      throw WireError(.ioError, "opendir(\(directory)) failed: \(error.localizedDescription)")
    }
    for file in files where file.hasSuffix(".json") && !file.hasPrefix(".") {
      guard let id = UInt64(file.dropLast(5)) else { continue }
      nextID = max(nextID, id + 1)
      let full = directory + "/" + file
      guard let data = FileManager.default.contents(atPath: full),
            let record = try? JSONDecoder().decode(JobFile.self, from: data),
            record.entry.job == id else {
        FileHandle.standardError.write(Data("blockscoped: ignoring unreadable job record \(full)\n".utf8))
        continue
      }
      let job = TrainingJob(record)
      jobs[id] = job
      guard !record.entry.state.hasEnded else { continue }
      job.file.entry.state = .interrupted
      job.file.entry.error = record.entry.state == .running ? Self.stoppedWhileRunning : Self.stoppedBeforeStart
      // A checkpoint written after the record's last update (a crash between the two) counts.
      if let header = try? store.header(of: record.entry.model).header, header.job == id {
        job.file.entry.epoch = header.epochsCompleted
        job.file.entry.last = header.history.last.flatMap(metrics)
      }
      // Best effort: on a full disk the daemon must still start and serve (it was refused with
      // NO_SPACE before; tools/disk-full-test). A record left saying queued or running is read
      // as interrupted again by the next start, and RESUME rewrites it (or answers NO_SPACE).
      do {
        try persist(job.file)
      } catch {
        FileHandle.standardError.write(Data(
          "blockscoped: job \(id) is interrupted, but its record could not say so: \(error.message)\n".utf8))
      }
    }
  }

  // MARK: Requests

  /// TRAIN: records the job as queued; the runner starts it when it is free.
  func submit(_ recipe: TrainRequest) throws(WireError) -> JobEntry {
    let model = recipe.model!
    cond.lock()
    defer { cond.unlock() }
    guard !stopping else { throw WireError(.shuttingDown, "the daemon is stopping; no new jobs") }
    if let job = activeJob(model: model) {
      throw WireError(.alreadyExists, "model \"\(model)\" is being trained by job \(job.id)")
    }
    if (try FileStamp.of(store.path(model))) != nil {
      throw WireError(.alreadyExists, "a model named \"\(model)\" exists (\(store.path(model))); "
                      + "delete it or choose another name")
    }
    let id = nextID
    nextID += 1
    let file = JobFile(entry: JobEntry(job: id, model: model, state: .queued, epoch: 0,
                                       epochs: recipe.epochs, created: rfc3339()),
                       recipe: recipe)
    try persist(file)
    jobs[id] = TrainingJob(file)
    queue.append(id)
    cond.broadcast()
    return file.entry
  }

  /// CANCEL: a queued job is cancelled at once (the entry); a running one at its next step (nil:
  /// `reply` is answered then).
  func cancel(_ id: UInt64, reply: ReplyChannel) throws(WireError) -> JobEntry? {
    cond.lock()
    var answer: [ReplyChannel] = []
    defer {
      let entry = jobs[id]?.file.entry
      cond.unlock()
      if let entry { for r in answer { r.respond(.watchOK, entry) } }
    }
    guard let job = jobs[id] else { throw notFound("no job \(id)") }
    switch job.file.entry.state {
    case .queued:
      queue.removeAll { $0 == id }
      var file = job.file
      file.entry.state = .cancelled
      file.entry.ended = rfc3339()
      try persist(file)
      job.file = file
      answer = job.watcherReplies
      job.watcherReplies = []
      job.watchers = []
      return file.entry
    case .running:
      job.stop.withLock { if $0 == nil { $0 = .cancel } }
      job.cancelReplies.append(reply)
      return nil
    default:
      // Already ended (finished, failed, cancelled, interrupted): nothing to stop; the entry
      // says how it ended (SPEC: CANCEL).
      return job.file.entry
    }
  }

  /// RESUME: an interrupted or cancelled job is queued again under its id.
  func resume(_ id: UInt64, epochs: Int?) throws(WireError) -> JobEntry {
    cond.lock()
    defer { cond.unlock() }
    guard !stopping else { throw WireError(.shuttingDown, "the daemon is stopping; no new jobs") }
    guard let job = jobs[id] else { throw notFound("no job \(id)") }
    let state = job.file.entry.state
    guard state == .interrupted || state == .cancelled else {
      throw WireError(.conflict, "job \(id) is \(state.rawValue); only interrupted or cancelled jobs resume")
    }
    if let other = activeJob(model: job.file.entry.model) {
      throw WireError(.conflict, "model \"\(job.file.entry.model)\" is being trained by job \(other.id)")
    }
    var file = job.file
    try TrainLimits.checkMemory(file.recipe)
    if let epochs {
      guard epochs >= file.entry.epochs, epochs <= TrainLimits.maxEpochs else {
        throw invalid("epochs", "\(epochs): RESUME may only extend job \(id)'s \(file.entry.epochs) "
                      + "epochs (at most \(TrainLimits.maxEpochs))")
      }
      file.entry.epochs = epochs
      file.recipe.epochs = epochs
    }
    file.entry.state = .queued
    file.entry.error = nil
    file.entry.ended = nil
    try persist(file)
    job.file = file
    queue.append(id)
    cond.broadcast()
    return file.entry
  }

  /// WATCH: the entry now when the job has ended; else nil and `reply` gets the job's PROGRESS
  /// events and, when it ends, its entry.
  func watch(_ id: UInt64, reply: ReplyChannel) throws(WireError) -> JobEntry? {
    cond.lock()
    defer { cond.unlock() }
    guard let job = jobs[id] else { throw notFound("no job \(id)") }
    if job.file.entry.state.hasEnded { return job.file.entry }
    job.watchers.append(ProgressSender(reply, interval: options.progressInterval))
    job.watcherReplies.append(reply)
    return nil
  }

  func entries() -> [JobEntry] {
    cond.lock()
    defer { cond.unlock() }
    return jobs.keys.sorted().map { jobs[$0]!.file.entry }
  }

  func entry(_ id: UInt64) -> JobEntry? {
    cond.lock()
    defer { cond.unlock() }
    return jobs[id]?.file.entry
  }

  func counts() -> StatusResponse.Jobs {
    cond.lock()
    defer { cond.unlock() }
    var c = StatusResponse.Jobs(running: 0, queued: 0, interrupted: 0)
    for job in jobs.values {
      switch job.file.entry.state {
      case .running: c.running += 1
      case .queued: c.queued += 1
      case .interrupted: c.interrupted += 1
      default: break
      }
    }
    return c
  }

  /// Models with a queued or running job, and the job.
  func activeModels() -> [String: UInt64] {
    cond.lock()
    defer { cond.unlock() }
    var out: [String: UInt64] = [:]
    for job in jobs.values where !job.file.entry.state.hasEnded { out[job.file.entry.model] = job.id }
    return out
  }

  /// The recipe of an active job on `model` (MODELS lists it before its first checkpoint).
  func activeRecipe(model: String) -> (JobEntry, TrainRequest)? {
    cond.lock()
    defer { cond.unlock() }
    return activeJob(model: model).map { ($0.file.entry, $0.file.recipe) }
  }

  /// Runs `body` while no job can start on `model`; CONFLICT when one is queued or running.
  func withoutActiveJob<R>(model: String, _ body: () throws(WireError) -> R) throws(WireError) -> R {
    cond.lock()
    defer { cond.unlock() }
    if let job = activeJob(model: model) {
      throw WireError(.conflict, "model \"\(model)\" is being trained by job \(job.id) "
                      + "(\(job.file.entry.state.rawValue)); cancel it first")
    }
    return try body()
  }

  /// The newest job (highest id) of every model that has one.
  func latestEntries() -> [String: JobEntry] {
    cond.lock()
    defer { cond.unlock() }
    var out: [String: JobEntry] = [:]
    for job in jobs.values where (out[job.file.entry.model]?.job ?? 0) < job.id {
      out[job.file.entry.model] = job.file.entry
    }
    return out
  }

  /// Why a job is `interrupted` when the daemon stopped under it (the other reason is a
  /// checkpoint that could not be saved).
  static let stoppedWhileRunning = "the daemon stopped while the job was running"
  static let stoppedBeforeStart = "the daemon stopped before the job started"

  /// Interrupted only because the daemon stopped: resuming it is safe to do unasked (a study
  /// does). An interruption by a failed save (a full disk) would fail again.
  static func stoppedByDaemon(_ entry: JobEntry) -> Bool {
    entry.state == .interrupted && (entry.error == stoppedWhileRunning || entry.error == stoppedBeforeStart)
  }

  /// Lock held.
  private func activeJob(model: String) -> TrainingJob? {
    jobs.values.first { $0.file.entry.model == model && !$0.file.entry.state.hasEnded }
  }

  // MARK: Shutdown

  /// Stops the running job at its next step (its last finished epoch is on disk), marks queued
  /// ones interrupted, answers every watcher, and waits for the runner thread. Returns the
  /// number of running jobs that stopped this way.
  func shutdown() -> Int {
    cond.lock()
    if let result = shutdownResult {
      cond.unlock()
      return result
    }
    var answers: [(ReplyChannel, JobEntry)] = []
    if !stopping {
      stopping = true
      for job in running.values { job.stop.withLock { $0 = .shutdown } }
      for id in queue {
        guard let job = jobs[id] else { continue }
        job.file.entry.state = .interrupted
        job.file.entry.ended = rfc3339()
        job.file.entry.error = Self.stoppedBeforeStart
        try? persist(job.file)
        answers += job.watcherReplies.map { ($0, job.file.entry) }
        job.watcherReplies = []
        job.watchers = []
      }
      queue = []
      cond.broadcast()
    }
    cond.unlock()
    for (reply, entry) in answers { reply.respond(.watchOK, entry) }
    for _ in 0..<runners { runnerExited.wait() }
    runnerExited.signal()   // a second caller does not block
    cond.lock()
    defer { cond.unlock() }
    shutdownResult = interruptedByShutdown
    return interruptedByShutdown
  }

  var isStopping: Bool {
    cond.lock()
    defer { cond.unlock() }
    return stopping
  }

  // MARK: Runner

  private func runnerMain() {
    while true {
      cond.lock()
      while queue.isEmpty && !stopping { cond.wait() }
      if stopping {
        cond.unlock()
        break
      }
      let job = jobs[queue.removeFirst()]!
      job.file.entry.state = .running
      if job.file.entry.started == nil { job.file.entry.started = rfc3339() }
      job.stop.withLock { $0 = nil }
      running[job.id] = job
      try? persist(job.file)
      cond.unlock()

      let outcome = train(job)

      cond.lock()
      var file = job.file
      switch outcome {
      case .finished:
        file.entry.state = .finished
      case .cancelled:
        file.entry.state = .cancelled
      case .interrupted(let why):
        file.entry.state = .interrupted
        file.entry.error = why
        if why == nil && job.stop.current == .shutdown {
          interruptedByShutdown += 1
          file.entry.error = Self.stoppedWhileRunning
        }
      case .failed(let why):
        file.entry.state = .failed
        file.entry.error = why
      }
      file.entry.ended = rfc3339()
      do {
        try persist(file)
      } catch {
        file.entry.error = [file.entry.error, "its record could not be written: \(wireError(error).message)"]
          .compactMap { $0 }.joined(separator: "; ")
      }
      job.file = file
      running[job.id] = nil
      let watchers = job.watcherReplies, cancels = job.cancelReplies
      job.watcherReplies = []
      job.watchers = []
      job.cancelReplies = []
      cond.unlock()
      for reply in watchers { reply.respond(.watchOK, file.entry) }
      for reply in cancels { reply.respond(.cancelOK, file.entry) }
      onJobEnded?()
    }
    runnerExited.signal()
  }

  // MARK: Used by the training run

  /// Sends a training event to the job's watchers (each throttled on its own).
  func broadcast(_ job: TrainingJob, _ event: ProgressEvent, force: Bool) {
    cond.lock()
    let senders = job.watchers
    cond.unlock()
    for sender in senders { sender.send(event, force: force) }
  }

  /// After a checkpoint: the record's epoch count and last metrics.
  func epochFinished(_ job: TrainingJob, epochs: Int, record: EpochRecord) throws(WireError) {
    cond.lock()
    defer { cond.unlock() }
    var file = job.file
    file.entry.epoch = epochs
    file.entry.last = metrics(record)
    try persist(file)
    job.file = file
  }

  func snapshot(_ job: TrainingJob) -> JobFile {
    cond.lock()
    defer { cond.unlock() }
    return job.file
  }
}

/// JOBS' `last`, nil when a value is not finite (JSON has no NaN).
func metrics(_ r: EpochRecord) -> JobEntry.Metrics? {
  guard [r.trainLoss, r.trainAccuracy, r.testLoss, r.testAccuracy].allSatisfy(\.isFinite) else { return nil }
  return JobEntry.Metrics(trainLoss: r.trainLoss, trainAccuracy: r.trainAccuracy,
                          testLoss: r.testLoss, testAccuracy: r.testAccuracy)
}
