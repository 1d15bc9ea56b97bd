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
  private unowned let service: DaemonService
  private let cond = NSCondition()
  private var studies: [String: DeclaredStudy] = [:]
  private var order: [String] = []
  private var stopping = false
  private var poked = false
  /// The analysis being computed: (study, key), and the flag that stops it.
  private var current: (study: String, key: String, stop: Locked<Bool>)?
  /// Seconds per analysis kind measured by this daemon (for the ETA).
  private var timings: [String: (seconds: Double, count: Int)] = [:]
  private let runnerExited = DispatchSemaphore(value: 0)
  private var started = false

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

  // MARK: Facts and status

  /// What the store says of each model of the study (and of its snapshots).
  func facts(_ s: DeclaredStudy) -> [String: ModelFacts] {
    var out: [String: ModelFacts] = [:]
    for m in s.planner.models {
      out[m.name] = modelFacts(m.name, recipe: m.recipe)
      for epoch in s.record.declaration.snapshotEpochs {
        let snap = RecipeName.snapshot(m.name, epoch: epoch)
        if case .valid? = try? service.store.status(of: snap)?.status {
          out[snap] = ModelFacts(trained: true)
        }
      }
    }
    return out
  }

  /// Trained: the file holds every epoch of this very recipe.
  private func modelFacts(_ name: String, recipe: TrainRequest) -> ModelFacts {
    guard case .valid(let h)? = try? service.store.status(of: name)?.status else { return ModelFacts(trained: false) }
    let stored = storedRecipe(name, h)
    let trained = h.epochsCompleted >= h.training.epochs && RecipeName.sameWeights(stored, recipe)
    let accuracy = h.history.last?.testAccuracy
    return ModelFacts(trained: trained, testAccuracy: accuracy.flatMap { $0.isFinite ? $0 : nil })
  }

  func status(_ s: DeclaredStudy) -> StudyStatusResponse {
    let facts = self.facts(s)
    cond.lock()
    let record = s.record
    let analysing = current.flatMap { $0.study == s.name ? $0.key : nil }
    let timings = self.timings
    cond.unlock()
    let errors = Dictionary(record.errors.map { ($0.key, $0.message) }, uniquingKeysWith: { a, _ in a })
    let planned = s.planner.all(facts)
    var stored = Set<String>()
    for a in planned where files.hasResult(s.name, key: a.key) { stored.insert(a.key) }
    var models: [StudyModelStatus] = []
    var doneCost = 0.0, totalCost = 0.0, secondsPerCost: [Double] = []
    for m in s.planner.models {
      let f = facts[m.name] ?? ModelFacts(trained: false)
      let own = planned.filter { $0.owner == m.name }
      let done = own.filter { stored.contains($0.key) }.count
      let cost = m.point.relativeCost * Double(m.recipe.epochs)
      totalCost += cost
      var st = StudyModelStatus(model: m.name, depth: m.point.depth, width: m.point.width,
                                fraction: m.point.fraction, seed: m.point.seed, plain: m.point.plain,
                                state: .queued, epoch: 0, epochs: m.recipe.epochs,
                                testAccuracy: f.testAccuracy, nearChance: s.planner.isNearChance(f.testAccuracy),
                                analysesDone: done, analysesTotal: own.count)
      let job = service.jobs.latestEntry(model: m.name)
      st.job = job?.job
      if f.trained {
        st.epoch = m.recipe.epochs
        doneCost += cost
        let unfinished = own.filter { !stored.contains($0.key) && errors[$0.key] == nil }
        st.state = unfinished.isEmpty ? .done : .analysing
        st.reused = record.reused?.contains(m.name) ?? false
        if let h = try? service.store.header(of: m.name).header {
          let seconds = h.history.map(\.seconds).filter(\.isFinite).reduce(0, +)
          if seconds > 0, !st.reused { secondsPerCost.append(seconds / cost) }
        }
        if let e = own.compactMap({ errors[$0.key] }).first { st.error = e }
      } else if let job {
        st.epoch = job.epoch
        doneCost += cost * Double(job.epoch) / Double(max(1, m.recipe.epochs))
        switch job.state {
        case .running: st.state = .training
        case .queued: st.state = .queued
        case .interrupted: st.state = .interrupted
        case .cancelled: st.state = .cancelled
        case .failed: st.state = .failed
        case .finished: st.state = .failed
        }
        st.error = job.error
        if job.state == .finished { st.error = "its job finished but the model file is missing or of another recipe" }
      } else if record.cancelled {
        st.state = .cancelled
      }
      if let e = errors["train/\(m.name)"] {
        st.state = .failed
        st.error = e
      }
      models.append(st)
    }
    let analysesTotal = planned.count, analysesDone = stored.count
    let pending = planned.filter { !stored.contains($0.key) && errors[$0.key] == nil }
    // Work remains that the runner will do: a model to train, or an analysis whose models
    // are all trained (populations and cross heatmaps belong to no single model).
    let runnable = pending.contains { a in a.models.allSatisfy { facts[$0]?.trained == true } }
    let active = runnable || analysing != nil
      || models.contains { [.queued, .training, .interrupted, .analysing].contains($0.state) }
    let state: Wire.StudyState = record.cancelled ? .cancelled
      : (pending.isEmpty && models.allSatisfy { $0.state == .done }) ? .finished
      : active ? .running : .incomplete
    // ETA: training cost left at the measured seconds per unit of cost, plus the analyses
    // left at their measured mean time.
    var eta: Double?
    if !secondsPerCost.isEmpty {
      let rate = secondsPerCost.reduce(0, +) / Double(secondsPerCost.count)
      var seconds = (totalCost - doneCost) * rate
      let meanAnalysis = timings.values.reduce(0) { $0 + $1.seconds } / Double(max(1, timings.values.reduce(0) { $0 + $1.count }))
      seconds += Double(pending.count) * meanAnalysis
      eta = state == .running ? seconds : 0
    }
    let trainShare = totalCost > 0 ? doneCost / totalCost : 1
    let analysisShare = analysesTotal > 0 ? Double(analysesDone) / Double(analysesTotal) : 1
    let progress = state == .finished ? 1 : min(1, 0.8 * trainShare + 0.2 * analysisShare)
    return StudyStatusResponse(
      study: s.name, state: state, created: record.created, dataset: record.declaration.dataset,
      models: models, analysesDone: analysesDone, analysesTotal: analysesTotal, analysing: analysing,
      progress: progress, etaSeconds: eta, errors: record.errors)
  }

  // MARK: Runner

  private func runnerMain() {
    while true {
      cond.lock()
      if stopping {
        cond.unlock()
        break
      }
      poked = false
      cond.unlock()
      let worked = step()
      cond.lock()
      if !worked && !poked && !stopping { _ = cond.wait(until: Date(timeIntervalSinceNow: 2)) }
      cond.unlock()
    }
    runnerExited.signal()
  }

  /// One unit of work: training submitted for every active study, then the first analysis that
  /// is ready run. False when there was none.
  private func step() -> Bool {
    for s in all() where !s.record.cancelled {
      let facts = self.facts(s)
      ensureTraining(s, facts)
      let errors = Set(s.record.errors.map(\.key))
      for a in s.planner.all(facts) where !errors.contains(a.key) {
        guard !files.hasResult(s.name, key: a.key) else { continue }
        if a.kind.hasPrefix("snapshot_"), let owner = a.owner, facts[owner]?.trained == true,
           facts[a.models[0]]?.trained != true {
          record(s, StudyError(key: a.key, message: "the snapshot \(a.models[0]) was not kept "
                               + "(\(owner) was trained without snapshot epoch \(a.epoch ?? 0))"))
          continue
        }
        guard a.models.allSatisfy({ facts[$0]?.trained == true }) else { continue }
        run(s, a)
        return true
      }
    }
    return false
  }

  /// Submits (or resumes after a restart) the training of every model that is neither trained
  /// nor being trained. Cancelled and failed jobs wait for STUDY_RESUME.
  private func ensureTraining(_ s: DeclaredStudy, _ facts: [String: ModelFacts]) {
    let errors = Set(s.record.errors.map(\.key))
    for m in s.planner.models where facts[m.name]?.trained != true && !errors.contains("train/\(m.name)") {
      if let entry = service.jobs.latestEntry(model: m.name) {
        switch entry.state {
        case .queued, .running, .cancelled, .failed: continue
        case .interrupted:
          _ = try? service.jobs.resume(entry.job, epochs: nil)
          continue
        case .finished: break
        }
      }
      if (try? FileStamp.of(service.store.path(m.name))) != nil {
        record(s, StudyError(key: "train/\(m.name)", message: "a model named \(m.name) is stored but is not "
                             + "this recipe fully trained (it was not trained by a job of this daemon); "
                             + "delete it to have the study train it"))
        continue
      }
      do {
        var recipe = m.recipe
        try service.validate(&recipe)
        _ = try service.jobs.submit(recipe)
      } catch {
        if service.isStopping { return }
        record(s, StudyError(key: "train/\(m.name)", message: wireError(error).message))
      }
    }
  }

  /// Records a failure (persisted; STUDY_RESUME clears it).
  private func record(_ s: DeclaredStudy, _ error: StudyError) {
    cond.lock()
    defer { cond.unlock() }
    guard !s.record.errors.contains(where: { $0.key == error.key }) else { return }
    var r = s.record
    r.errors.append(error)
    if (try? files.save(r)) != nil { s.record = r }
  }

  private func run(_ s: DeclaredStudy, _ a: PlannedAnalysis) {
    let stop = Locked(false)
    cond.lock()
    guard !stopping, !s.record.cancelled else {
      cond.unlock()
      return
    }
    current = (s.name, a.key, stop)
    cond.unlock()
    let began = Date()
    let reply = InternalReply(cancelled: stop)
    let request = IncomingRequest(type: a.type, requestID: 1, quiet: true, payload: Payload(doc: a.request).encoded())
    service.handle(request, reply: reply, transport: TransportStatus(connections: 0, socketPath: ""))
    switch reply.outcome {
    case .response(let type, let payload)?:
      do {
        try files.saveResult(s.name, a.result(bytes: payload.encodedCount), type: type, payload: payload)
        let seconds = Date().timeIntervalSince(began)
        cond.lock()
        let t = timings[a.kind] ?? (0, 0)
        timings[a.kind] = (t.seconds + seconds, t.count + 1)
        cond.unlock()
      } catch {
        record(s, StudyError(key: a.key, message: "\(error.code.name): \(error.message)"))
      }
    case .failure(let e)?:
      // Stopped by STUDY_CANCEL or shutdown: not a failure; it runs again later.
      if !(stop.current || service.isStopping) || ![.cancelled, .shuttingDown].contains(e.code) {
        if !stop.current && !service.isStopping {
          record(s, StudyError(key: a.key, message: "\(e.code.name): \(e.message)"))
        }
      }
    case nil:
      record(s, StudyError(key: a.key, message: "INTERNAL: the \(a.type.name) handler gave no answer"))
    }
    cond.lock()
    current = nil
    cond.broadcast()
    cond.unlock()
  }

  /// Stops the running analysis and waits for the runner thread.
  func shutdown() {
    cond.lock()
    stopping = true
    current?.stop.withLock { $0 = true }
    cond.broadcast()
    cond.unlock()
    guard started else { return }
    runnerExited.wait()
    runnerExited.signal()
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
