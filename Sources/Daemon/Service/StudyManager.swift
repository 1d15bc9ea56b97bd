import Foundation
import Study
import Wire

/// One declared study as the manager holds it. Its record changes (cancel, resume, errors)
/// while other threads read it, so it is read and replaced under its own lock.
final class DeclaredStudy: @unchecked Sendable {
  private let lock = NSLock()
  private var _record: StudyRecord
  let planner: StudyPlanner
  let name: String
  /// Set when STUDY_DELETE removed it: the runner must not touch it again.
  private var _deleted = false

  init(record: StudyRecord, planner: StudyPlanner) {
    _record = record
    self.planner = planner
    name = record.study
  }

  var record: StudyRecord {
    get { lock.withLock { _record } }
    set { lock.withLock { _record = newValue } }
  }

  var deleted: Bool {
    get { lock.withLock { _deleted } }
    set { lock.withLock { _deleted = newValue } }
  }

  /// Neither cancelled nor deleted.
  var isActive: Bool { lock.withLock { !_deleted && !_record.cancelled } }

  /// Its grid's models and their snapshots.
  var modelNames: Set<String> {
    let snapshots = planner.declaration.snapshotEpochs
    return Set(planner.models.flatMap { m in [m.name] + snapshots.map { RecipeName.snapshot(m.name, epoch: $0) } })
  }
}

/// An analysis being computed: its study and key, and the flag that stops it.
struct RunningAnalysis {
  let study: String
  let key: String
  let stop: Locked<Bool>
}

/// Studies: their records and results (`StudyFiles`), and the one runner thread that keeps
/// every active study moving. The runner submits each grid model's training to the
/// `JobManager` (content-addressed names: a model already stored with the same recipe is
/// reused), and runs every planned analysis whose models are trained (one at a time, or several
/// on cores that training leaves free: `analysisSlots`), through
/// the service's own request handlers; each response is stored as it was answered. Nothing is
/// kept only in memory: after a restart (or `kill -9`) the plan is recomputed from the
/// declaration and the store, and exactly what is missing runs.
final class StudyManager: @unchecked Sendable {
  let files: StudyFiles
  unowned let service: DaemonService
  let cond = NSCondition()
  var studies: [String: DeclaredStudy] = [:]
  var order: [String] = []
  var stopping = false
  var poked = false
  /// The analyses being computed, oldest first.
  var running: [RunningAnalysis] = []
  /// The most analyses that ran at once (tests).
  var peakRunning = 0
  /// Seconds per analysis kind measured by this daemon (for the ETA).
  var timings: [String: (seconds: Double, count: Int)] = [:]
  let runnerExited = DispatchSemaphore(value: 0)
  var started = false
  /// Held while the runner decides on and submits one model's training, and while STUDY_CANCEL
  /// marks a study cancelled and cancels its jobs: a job is never submitted for a study that
  /// was cancelled a moment before. Taken before JobManager's lock, never inside `cond`.
  let trainingGate = NSLock()
  /// Each slurm study's task states as last read from Slurm, and when (see `slurmStates`).
  let slurmStateCache = Locked<[String: (at: Date, states: [Int: SlurmTaskLatest])]>([:])

  init(directory: String, service: DaemonService) throws(WireError) {
    files = try StudyFiles(directory: directory)
    self.service = service
    for record in files.loadRecords() {
      do {
        try record.declaration.validate()
        let state = try makeState(record)
        studies[record.study] = state
        order.append(record.study)
      } catch let e as StudyValidationError {
        FileHandle.standardError.write(Data("blockscoped: study \(record.study) is not loaded: its declaration's \(e)\n".utf8))
      } catch {
        FileHandle.standardError.write(Data("blockscoped: study \(record.study) is not loaded: \(wireError(error).message)\n".utf8))
      }
    }
    order.sort { (studies[$0]!.record.created, $0) < (studies[$1]!.record.created, $1) }
  }

  func start() {
    service.jobs.onJobEnded = { [weak self] in self?.poke() }
    let thread = Thread { self.runnerMain() }
    thread.name = "blockscoped-studies"
    thread.stackSize = 8 << 20
    started = true
    thread.start()
  }

  /// The dataset is loaded only for a record that does not say its classes (a new study).
  private func makeState(_ record: StudyRecord) throws(WireError) -> DeclaredStudy {
    var record = record
    if record.classes == nil || record.trainCount == nil || record.testCount == nil {
      let splits = try service.datasets.splits(record.declaration.dataset)
      record.classes = splits.train.numClasses
      record.trainCount = splits.train.count
      record.testCount = splits.test.count
    }
    let classes = record.classes ?? 0
    return DeclaredStudy(record: record, planner: StudyPlanner(declaration: record.declaration, classes: classes))
  }

  /// Wakes the runner (a job ended, a study was declared or resumed).
  func poke() {
    cond.lock()
    poked = true
    cond.broadcast()
    cond.unlock()
  }

  // MARK: Requests

  /// STUDY_CREATE: the study's state (an existing study with the same declaration is answered
  /// as it is).
  func create(_ name: String, _ declaration: StudyDeclaration, executor: StudyExecutor? = nil) throws(WireError) -> DeclaredStudy {
    cond.lock()
    defer { cond.unlock() }
    guard !stopping else { throw WireError(.shuttingDown, "the daemon is stopping; no new studies") }
    if let existing = studies[name] {
      guard existing.record.declaration == declaration else {
        throw WireError(.alreadyExists, "a study named \"\(name)\" exists with another declaration; "
                        + "delete it or choose another name")
      }
      return existing
    }
    if FileManager.default.fileExists(atPath: files.studyDirectory(name)) {
      throw WireError(.alreadyExists, "\(files.studyDirectory(name)) exists but is not a study this daemon "
                      + "could load (see its log); move it away or choose another name")
    }
    let state = try makeState(StudyRecord(study: name, declaration: declaration, created: rfc3339(),
                                          cancelled: false, errors: [],
                                          executor: executor?.kind == .slurm ? executor : nil))
    var record = state.record
    record.reused = state.planner.models.filter { modelFacts($0.name, recipe: $0.recipe).trained }.map(\.name)
    state.record = record
    try files.save(record)
    studies[name] = state
    order.append(name)
    poked = true
    cond.broadcast()
    return state
  }

  func study(_ name: String) throws(WireError) -> DeclaredStudy {
    cond.lock()
    defer { cond.unlock() }
    guard let s = studies[name] else { throw notFound("no study named \"\(name)\" (STUDY_LIST lists them)") }
    return s
  }

  func all() -> [DeclaredStudy] {
    cond.lock()
    defer { cond.unlock() }
    return order.compactMap { studies[$0] }
  }

  /// STUDY_CANCEL: the study stops taking work; its models' queued or running jobs are
  /// cancelled unless another active study needs them (their ids are recorded, so that such a
  /// study can resume them later); its running analysis stops.
  func cancel(_ name: String) throws(WireError) -> DeclaredStudy {
    let s = try study(name)
    trainingGate.lock()
    defer { trainingGate.unlock() }
    cond.lock()
    var record = s.record
    record.cancelled = true
    for r in running where r.study == name { r.stop.withLock { $0 = true } }
    let neededElsewhere = studies.values.filter { $0 !== s && $0.isActive }
      .reduce(into: Set<String>()) { $0.formUnion($1.modelNames) }
    cond.unlock()
    let entries = service.jobs.latestEntries()
    var cancelled = record.cancelledJobs ?? []
    for model in s.planner.models.map(\.name) where !neededElsewhere.contains(model) {
      if let entry = entries[model], !entry.state.hasEnded,
         (try? service.jobs.cancel(entry.job, reply: InternalReply())) != nil {
        cancelled.append(entry.job)
      }
    }
    record.cancelledJobs = cancelled
    s.record = record
    try files.save(record)
    if record.executor?.kind == .slurm { try cancelSlurm(s) }
    return s
  }

  /// STUDY_RESUME: clears the cancellation and the recorded errors; cancelled jobs continue
  /// from their checkpoints and failed ones train again.
  func resume(_ name: String) throws(WireError) -> DeclaredStudy {
    cond.lock()
    guard let s = studies[name] else {
      cond.unlock()
      throw notFound("no study named \"\(name)\"")
    }
    guard !stopping else {
      cond.unlock()
      throw WireError(.shuttingDown, "the daemon is stopping")
    }
    var record = s.record
    record.cancelled = false
    record.errors = []
    record.cancelledJobs = []
    do {
      try files.save(record)
    } catch {
      cond.unlock()
      throw error
    }
    s.record = record
    cond.unlock()
    // Under the training gate: the runner does not resume or submit these jobs meanwhile.
    trainingGate.lock()
    defer { trainingGate.unlock() }
    if record.executor?.kind == .slurm {
      // Failed, cancelled and forgotten array tasks are submitted again; each continues its
      // model's checkpoint.
      try submitSlurm(s, tasks: slurmTasksToSubmit(s))
      poke()
      return s
    }
    let entries = service.jobs.latestEntries()
    let facts = self.facts(s)
    for m in s.planner.models where facts[m.name]?.trained != true {
      guard let entry = entries[m.name] else { continue }
      switch entry.state {
      case .cancelled, .interrupted:
        _ = try? service.jobs.resume(entry.job, epochs: nil)
      case .failed:
        // A failed job's partial model file (written by that job) goes; the model trains anew.
        if let header = try? service.store.header(of: m.name).header, header.job == entry.job {
          _ = try? service.removeModel(m.name)
        }
        _ = try? service.jobs.submit(m.recipe)
      default:
        break
      }
    }
    poke()
    return s
  }

  /// STUDY_DELETE: cancels the study, waits for its analysis to stop, removes its directory,
  /// and then its models (and snapshots) that no other study uses, unless `keepModels`.
  func delete(_ name: String, keepModels: Bool) throws(WireError) -> StudyDeleteResponse {
    let s: DeclaredStudy
    do {
      s = try cancel(name)
    } catch where error.code == .executorFailed {
      // Slurm is unreachable: the study still goes (its record says it is cancelled); tasks
      // that still run may write their models into the store again.
      FileHandle.standardError.write(Data("blockscoped: deleting study \(name): its Slurm tasks were not cancelled: \(error.message)\n".utf8))
      s = try study(name)
    }
    // Its jobs stop within a training step; their models can only be removed then.
    let deadline = Date().addingTimeInterval(120)
    while Date() < deadline {
      let entries = service.jobs.latestEntries()
      if !s.planner.models.contains(where: { entries[$0.name].map { !$0.state.hasEnded } ?? false }) { break }
      Thread.sleep(forTimeInterval: 0.05)
    }
    trainingGate.lock()
    cond.lock()
    while running.contains(where: { $0.study == name }) { cond.wait() }
    let usedElsewhere = studies.values.filter { $0 !== s }.reduce(into: Set<String>()) { $0.formUnion($1.modelNames) }
    do {
      try files.remove(name)
    } catch {
      cond.unlock()
      trainingGate.unlock()
      throw error
    }
    s.deleted = true
    studies[name] = nil
    order.removeAll { $0 == name }
    cond.unlock()
    trainingGate.unlock()
    var deleted: [String] = [], kept: [String] = [], freed = 0
    for model in s.modelNames.sorted() {
      guard (try? FileStamp.of(service.store.path(model))) != nil else { continue }
      if keepModels || usedElsewhere.contains(model) {
        kept.append(model)
        continue
      }
      do {
        freed += try service.removeModel(model)
        deleted.append(model)
      } catch {
        kept.append(model)
      }
    }
    return StudyDeleteResponse(study: name, modelsDeleted: deleted, modelsKept: kept, bytesFreed: freed)
  }
}

/// The TRAIN recipe a stored model was trained with (DESCRIBE's `recipe`).
func storedRecipe(_ name: String, _ h: ModelHeader) -> TrainRequest {
  TrainRequest(
    model: name, depth: h.config.depth, width: h.config.widthMultiplier,
    plain: !h.config.residual, dataset: h.data.dataset, fraction: h.data.fraction,
    stratified: h.data.subset == .stratified, epochs: h.training.epochs,
    batchSize: h.training.batchSize, lr: h.training.learningRate,
    weightDecay: h.training.weightDecay, warmupEpochs: h.training.warmupEpochs,
    augment: h.training.augment, seed: h.training.seed,
    testExamples: h.metadata["test_examples"].flatMap { Int($0) })
}
