import Foundation
import Study
import Wire

/// What the store says of a study's models, and STUDY_STATUS built from it (states, progress,
/// ETA).
extension StudyManager {
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
  func modelFacts(_ name: String, recipe: TrainRequest) -> ModelFacts {
    guard case .valid(let h)? = try? service.store.status(of: name)?.status else { return ModelFacts(trained: false) }
    let stored = storedRecipe(name, h)
    let trained = h.epochsCompleted >= h.training.epochs && RecipeName.sameWeights(stored, recipe)
    let accuracy = h.history.last?.testAccuracy
    return ModelFacts(trained: trained, testAccuracy: accuracy.flatMap { $0.isFinite ? $0 : nil })
  }

  func status(_ s: DeclaredStudy) -> StudyStatusResponse {
    // The jobs before the files: a job is marked finished only after its last save, so a
    // model is never seen "finished without a file".
    let jobs = service.jobs.latestEntries()
    let facts = self.facts(s)
    cond.lock()
    let record = s.record
    let analysing = running.first { $0.study == s.name }?.key
    let timings = self.timings
    cond.unlock()
    let errors = Dictionary(record.errors.map { ($0.key, $0.message) }, uniquingKeysWith: { a, _ in a })
    let planned = s.planner.all(facts)
    var stored = Set<String>()
    for a in planned where files.hasResult(s.name, key: a.key) { stored.insert(a.key) }
    var models: [StudyModelStatus] = []
    var doneCost = 0.0, totalCost = 0.0, secondsPerCost: [Double] = []
    let byOwner = Dictionary(grouping: planned.filter { $0.owner != nil }, by: { $0.owner! })
    let trainCount = record.trainCount ?? 50_000, testCount = record.testCount ?? 10_000
    let onSlurm = record.executor?.kind == .slurm
    let slurm = onSlurm ? slurmStates(s) : [:]
    for (index, m) in s.planner.models.enumerated() {
      let f = facts[m.name] ?? ModelFacts(trained: false)
      let own = byOwner[m.name] ?? []
      let done = own.filter { stored.contains($0.key) }.count
      let cost = m.point.trainingCost(trainImages: trainCount,
                                      evaluatedImages: min(m.recipe.testExamples ?? testCount, testCount),
                                      epochs: m.recipe.epochs)
      totalCost += cost
      var st = StudyModelStatus(model: m.name, depth: m.point.depth, width: m.point.width,
                                fraction: m.point.fraction, seed: m.point.seed, plain: m.point.plain,
                                state: .queued, epoch: 0, epochs: m.recipe.epochs,
                                testAccuracy: f.testAccuracy, nearChance: s.planner.isNearChance(f.testAccuracy),
                                analysesDone: done, analysesTotal: own.count)
      let job = onSlurm ? nil : jobs[m.name]
      st.job = job?.job
      if let t = slurm[index] {
        st.slurm = SlurmTaskStatus(arrayJob: t.arrayJob, task: index, state: t.state.state, reason: t.state.reason)
      }
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
      } else if onSlurm, let t = slurm[index] {
        let epoch = (try? service.store.header(of: m.name).header.epochsCompleted) ?? 0
        st.epoch = epoch
        doneCost += cost * Double(epoch) / Double(max(1, m.recipe.epochs))
        (st.state, st.error) = Self.modelState(slurm: t.state, cancelled: record.cancelled)
        if !t.state.isActive { st.slurm?.logTail = slurmLogTail(s, task: index) }
      } else if onSlurm {
        // Never submitted (the submission failed): nothing will train it until STUDY_RESUME
        // or STUDY_RUN submits it.
        st.state = record.cancelled ? .cancelled : .failed
        st.error = record.cancelled ? nil : "not submitted to Slurm; STUDY_RESUME submits it"
      } else if let job {
        st.epoch = job.epoch
        doneCost += cost * Double(job.epoch) / Double(max(1, m.recipe.epochs))
        switch job.state {
        case .running: st.state = .training
        case .queued: st.state = .queued
        case .interrupted: st.state = JobManager.stoppedByDaemon(job) && !record.cancelled ? .interrupted : .failed
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
    // Finished: every model trained and every analysis stored, with no error left over (an
    // analysis that failed, a snapshot that was never kept).
    let state: Wire.StudyState = record.cancelled ? .cancelled
      : active ? .running
      : (pending.isEmpty && record.errors.isEmpty && models.allSatisfy { $0.state == .done }) ? .finished
      : .incomplete
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
      progress: progress, etaSeconds: eta, errors: record.errors,
      executor: record.executor?.kind ?? .local,
      slurmScript: onSlurm ? slurmDirectory(s.name) + "/train.sbatch" : nil)
  }

  /// A model's state from its array task's, while the model is not trained.
  static func modelState(slurm t: SlurmTaskState, cancelled: Bool) -> (StudyModelStatus.State, String?) {
    if cancelled && !t.isActive { return (.cancelled, nil) }
    switch t.state {
    case "RUNNING", "COMPLETING", "CONFIGURING", "SIGNALING", "STAGE_OUT", "RESIZING":
      return (.training, nil)
    case _ where t.isActive:
      return (.queued, nil)
    case "CANCELLED":
      return (.cancelled, cancelled ? nil : "its array task was cancelled; STUDY_RESUME submits it again")
    case "COMPLETED":
      return (.failed, "its array task completed but the store holds no fully trained model of this recipe")
    case "ENDED":
      return (.failed, "its array task ended without a fully trained model (Slurm no longer lists it); "
                + "STUDY_RESUME submits it again")
    default:
      return (.failed, "its array task ended \(t.state)\(t.reason.map { " (\($0))" } ?? ""); STUDY_RESUME submits it again")
    }
  }
}
