import Engine
import Foundation
import Study
import Wire

/// The runner thread: training submitted for every active study, then ready analyses, each on
/// a thread of its own and run through the service's own handlers, stored as it was answered.
/// Analyses run one at a time, or several when the cores that training jobs leave free hold
/// more than one analysis's threads (`analysisSlots`).
extension StudyManager {
  func runnerMain() {
    while true {
      cond.lock()
      if stopping {
        // Stopped analyses end within a step; none may outlive the manager's shutdown.
        while !running.isEmpty { cond.wait() }
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

  /// How many analyses may run at once: one, or as many as fit, at the analysis threads each,
  /// in the CPUs that running training jobs do not use. Each analysis keeps its own kernel
  /// context with the same thread count, so its numbers do not depend on how many run beside it.
  func analysisSlots() -> Int {
    let cpus = KernelContext.defaultThreads
    let each = max(1, service.options.analysisThreads ?? cpus)
    return max(1, (cpus - service.jobs.runningThreads()) / each)
  }

  /// One pass: training submitted for every active study, then ready analyses started while
  /// slots are free. False when nothing was started.
  private func step() -> Bool {
    var startedAny = false
    for s in all() where s.isActive {
      // The jobs before the files: a job is marked finished only after its last save.
      let jobs = service.jobs.latestEntries()
      let facts = self.facts(s)
      ensureTraining(s, jobs: jobs, facts: facts)
      let errors = Set(s.record.errors.map(\.key))
      for a in s.planner.all(facts) where !errors.contains(a.key) {
        let slots = analysisSlots()   // JobManager's lock: never taken inside `cond`
        cond.lock()
        let busy = running.contains { $0.study == s.name && $0.key == a.key }
        let full = running.count >= slots
        cond.unlock()
        if full { return startedAny }
        guard !busy, !files.hasResult(s.name, key: a.key) else { continue }
        if a.kind.hasPrefix("snapshot_"), let owner = a.owner, facts[owner]?.trained == true,
           facts[a.models[0]]?.trained != true {
          record(s, StudyError(key: a.key, message: "the snapshot \(a.models[0]) was not kept "
                               + "(\(owner) was trained without snapshot epoch \(a.epoch ?? 0))"))
          continue
        }
        guard a.models.allSatisfy({ facts[$0]?.trained == true }) else { continue }
        // It may have failed on its worker since `errors` was read: not again until STUDY_RESUME.
        guard !s.record.errors.contains(where: { $0.key == a.key }) else { continue }
        if start(s, a) { startedAny = true }
      }
    }
    return startedAny
  }

  /// Submits the training of every model that is neither trained nor being trained, and
  /// resumes jobs that only the daemon's stop interrupted, and jobs another study cancelled.
  /// Jobs the user cancelled, failed ones, and ones a failed save interrupted wait for
  /// STUDY_RESUME (recorded as the study's errors).
  /// `jobs` was read before `facts` (see `step`); a job submitted here is one of a model
  /// neither of them had, so neither is stale for the models this loop looks at.
  private func ensureTraining(_ s: DeclaredStudy, jobs: [String: JobEntry], facts: [String: ModelFacts]) {
    // On the slurm executor its array tasks train; their checkpoints arrive in the store.
    guard (s.record.executor?.kind ?? .local) == .local else { return }
    let errors = Set(s.record.errors.map(\.key))
    let cancelledByStudies = all().reduce(into: Set<UInt64>()) { $0.formUnion($1.record.cancelledJobs ?? []) }
    for m in s.planner.models where !errors.contains("train/\(m.name)") && facts[m.name]?.trained != true {
      trainingGate.lock()
      defer { trainingGate.unlock() }
      guard s.isActive, !service.isStopping else { return }
      // Its state now (STUDY_RESUME may have resumed it since the snapshot); the snapshot only
      // says which job is the model's.
      if let entry = jobs[m.name].flatMap({ service.jobs.entry($0.job) }) {
        switch entry.state {
        case .queued, .running, .failed:
          continue
        case .cancelled:
          if cancelledByStudies.contains(entry.job) { _ = try? service.jobs.resume(entry.job, epochs: nil) }
          continue
        case .interrupted:
          if JobManager.stoppedByDaemon(entry) {
            do {
              _ = try service.jobs.resume(entry.job, epochs: nil)
            } catch {
              if !service.isStopping {
                record(s, StudyError(key: "train/\(m.name)", message: "resuming job \(entry.job): \(error.message)"))
              }
            }
          } else {
            record(s, StudyError(key: "train/\(m.name)", message: "job \(entry.job) was interrupted: "
                                 + "\(entry.error ?? "?"); STUDY_RESUME continues it"))
          }
          continue
        case .finished:
          break
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

  /// Records a failure (persisted; STUDY_RESUME clears it). Nothing for a deleted study.
  private func record(_ s: DeclaredStudy, _ error: StudyError) {
    cond.lock()
    defer { cond.unlock() }
    guard !s.deleted, studies[s.name] === s else { return }
    var r = s.record
    guard !r.errors.contains(where: { $0.key == error.key }) else { return }
    r.errors.append(error)
    if (try? files.save(r)) != nil { s.record = r }
  }

  /// Registers the analysis as running and computes it on a thread of its own. False when the
  /// study stopped taking work.
  private func start(_ s: DeclaredStudy, _ a: PlannedAnalysis) -> Bool {
    let entry = RunningAnalysis(study: s.name, key: a.key, stop: Locked(false))
    cond.lock()
    guard !stopping, s.isActive else {
      cond.unlock()
      return false
    }
    running.append(entry)
    peakRunning = max(peakRunning, running.count)
    cond.unlock()
    let thread = Thread { [self] in
      run(s, a, entry.stop)
      service.memoryTrimmer.trimIfDue()
      cond.lock()
      running.removeAll { $0.stop === entry.stop }
      poked = true
      cond.broadcast()
      cond.unlock()
    }
    thread.name = "blockscoped-analysis"
    thread.stackSize = 8 << 20
    thread.start()
    return true
  }

  private func run(_ s: DeclaredStudy, _ a: PlannedAnalysis, _ stop: Locked<Bool>) {
    let began = Date()
    let reply = InternalReply(cancelled: stop)
    let request = IncomingRequest(type: a.type, requestID: 1, quiet: true, payload: Payload(doc: a.request).encoded())
    service.handle(request, reply: reply, transport: TransportStatus(connections: 0, socketPath: ""))
    switch reply.outcome {
    case .response(let type, let payload)?:
      // Cancelled (or deleted) while it ran: not stored (SPEC: STUDY_CANCEL).
      guard s.isActive else { break }
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
      let stopped = stop.current || service.isStopping || e.code == .shuttingDown || e.code == .cancelled
      if !stopped {
        record(s, StudyError(key: a.key, message: "\(e.code.name): \(e.message)"))
      }
    case nil:
      record(s, StudyError(key: a.key, message: "INTERNAL: the \(a.type.name) handler gave no answer"))
    }
  }

  /// Stops the running analyses and waits for the runner thread (which waits for them).
  func shutdown() {
    cond.lock()
    stopping = true
    for r in running { r.stop.withLock { $0 = true } }
    cond.broadcast()
    cond.unlock()
    guard started else { return }
    runnerExited.wait()
    runnerExited.signal()
  }
}
