import Foundation
import Study
import Wire

/// One declared study as the manager holds it.
final class DeclaredStudy: @unchecked Sendable {
  var record: StudyRecord
  let planner: StudyPlanner
  init(record: StudyRecord, planner: StudyPlanner) {
    self.record = record
    self.planner = planner
  }
  var name: String { record.study }
  var modelNames: Set<String> {
    Set(planner.models.flatMap { m in
      [m.name] + record.declaration.snapshotEpochs.map { RecipeName.snapshot(m.name, epoch: $0) }
    })
  }
}

/// Studies: their records and results (`StudyFiles`), and the one runner thread that keeps
/// every active study moving. The runner submits each grid model's training to the
/// `JobManager` (content-addressed names: a model already stored with the same recipe is
/// reused), and runs every planned analysis whose models are trained, one at a time, through
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
  /// The analysis being computed: (study, key), and the flag that stops it.
  var current: (study: String, key: String, stop: Locked<Bool>)?
  /// Seconds per analysis kind measured by this daemon (for the ETA).
  var timings: [String: (seconds: Double, count: Int)] = [:]
  let runnerExited = DispatchSemaphore(value: 0)
  var started = false

  init(directory: String, service: DaemonService) throws(WireError) {
    files = try StudyFiles(directory: directory)
    self.service = service
    for record in files.loadRecords() {
      do {
        let state = try makeState(record)
        studies[record.study] = state
        order.append(record.study)
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

  private func makeState(_ record: StudyRecord) throws(WireError) -> DeclaredStudy {
    let classes = try service.datasets.splits(record.declaration.dataset).train.numClasses
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
  func create(_ name: String, _ declaration: StudyDeclaration) throws(WireError) -> DeclaredStudy {
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
    var record = StudyRecord(study: name, declaration: declaration, created: rfc3339(), cancelled: false, errors: [])
    let state = try makeState(record)
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
  /// cancelled unless another active study needs them; its running analysis stops.
  func cancel(_ name: String) throws(WireError) -> DeclaredStudy {
    cond.lock()
    guard let s = studies[name] else {
      cond.unlock()
      throw notFound("no study named \"\(name)\"")
    }
    var record = s.record
    record.cancelled = true
    do {
      try files.save(record)
    } catch {
      cond.unlock()
      throw error
    }
    s.record = record
    if let c = current, c.study == name { c.stop.withLock { $0 = true } }
    let neededElsewhere = studies.values.filter { $0 !== s && !$0.record.cancelled }
      .reduce(into: Set<String>()) { $0.formUnion($1.modelNames) }
    cond.unlock()
    for model in s.planner.models.map(\.name) where !neededElsewhere.contains(model) {
      if let entry = service.jobs.latestEntry(model: model), !entry.state.hasEnded {
        _ = try? service.jobs.cancel(entry.job, reply: InternalReply())
      }
    }
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
    do {
      try files.save(record)
    } catch {
      cond.unlock()
      throw error
    }
    s.record = record
    cond.unlock()
    let facts = self.facts(s)
    for m in s.planner.models where facts[m.name]?.trained != true {
      guard let entry = service.jobs.latestEntry(model: m.name) else { continue }
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
    let s = try cancel(name)
    cond.lock()
    while let c = current, c.study == name { cond.wait() }
    let usedElsewhere = studies.values.filter { $0 !== s }.reduce(into: Set<String>()) { $0.formUnion($1.modelNames) }
    do {
      try files.remove(name)
    } catch {
      cond.unlock()
      throw error
    }
    studies[name] = nil
    order.removeAll { $0 == name }
    cond.unlock()
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
