import Engine
import Foundation
import Study
import Wire

/// A study task's latest Slurm state: the submission that last held it, and what Slurm says.
struct SlurmTaskLatest: Sendable {
  var arrayJob: String
  var state: SlurmTaskState
}

/// The slurm executor: a study's models train as the tasks of a Slurm job array (task i is the
/// grid's model i), each a headless `blockscope-engine train` writing its checkpoints into
/// this daemon's store, which every node must see. The daemon writes the script, submits it,
/// records the array ids in the study's record, and reads task states from `squeue` (and
/// `sacct` where accounting exists); it learns that a model is trained from its checkpoint in
/// the store (the store re-reads a file whose stamp changed), so analyses start as models
/// arrive, without a restart.
extension StudyManager {
  /// Seconds a study's Slurm states are reused (STUDY_STATUS may be polled every second).
  static let slurmStateTTL: TimeInterval = 2

  func slurmDirectory(_ study: String) -> String { files.studyDirectory(study) + "/slurm" }

  /// The engine beside this daemon's executable, unless configured.
  var engineExecutable: String {
    if let path = service.options.engineExecutable { return path }
    let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
      ?? CommandLine.arguments[0]
    return ((me as NSString).deletingLastPathComponent as NSString).appendingPathComponent("blockscope-engine")
  }

  /// Every model of the study as an array task (index = its place in the grid).
  func slurmTasks(_ s: DeclaredStudy) -> [SlurmArrayTask] {
    s.planner.models.enumerated().map { SlurmArrayTask(index: $0.offset, recipe: $0.element.recipe) }
  }

  /// The paths the script names, checked: the engine exists, nothing needs quoting, and the
  /// synthetic dataset is the engine's.
  func slurmPaths(_ s: DeclaredStudy) throws(WireError) -> SlurmScriptPaths {
    let dataset = s.record.declaration.dataset
    let paths = SlurmScriptPaths(engine: engineExecutable, models: service.store.directory,
                                 directory: slurmDirectory(s.name),
                                 data: dataset == "synthetic" ? nil : service.datasets.path(of: dataset))
    if let problem = paths.problem() { throw WireError(.invalidArgument, "executor: \(problem)") }
    guard FileManager.default.isExecutableFile(atPath: paths.engine) else {
      throw WireError(.executorFailed, "the engine \(paths.engine) is not an executable file "
                      + "(blockscoped --engine PATH names another)")
    }
    if dataset != "synthetic" && paths.data == nil {
      throw WireError(.dataUnavailable, "the daemon has no directory for \(dataset): the array tasks "
                      + "could not read it (start blockscoped with --data \(dataset)=DIR)")
    }
    if dataset == "synthetic",
       service.options.syntheticTrainCount != DatasetLoader.syntheticTrainCount
        || service.options.syntheticTestCount != DatasetLoader.syntheticTestCount {
      throw WireError(.invalidArgument, "executor: this daemon's synthetic dataset is not the engine's "
                      + "(its size was changed), so array tasks would train on other data")
    }
    return paths
  }

  /// Writes the study's script and submits the array for `tasks` (every model when nil);
  /// the submission is recorded before this returns. Called under `trainingGate`.
  func submitSlurm(_ s: DeclaredStudy, tasks wanted: [Int]? = nil) throws(WireError) {
    guard let executor = s.record.executor, executor.kind == .slurm else { return }
    let tasks = slurmTasks(s)
    let chosen = wanted ?? tasks.map(\.index)
    guard !chosen.isEmpty else { return }
    let paths = try slurmPaths(s)
    try makeDirectory(paths.directory)
    try makeDirectory(paths.logs)
    let script = SlurmScript.text(study: s.name, tasks: tasks, executor: executor, paths: paths)
    try writeFileAtomically(Array(script.utf8), to: paths.script, what: "Slurm job script")
    _ = chmod(paths.script, 0o755)
    let array = SlurmScript.arraySpec(chosen, maxParallel: executor.maxParallel)
    let r = try SlurmCommand.run("sbatch", ["--parsable", "--array=\(array)", paths.script], in: paths.directory)
    let id = r.output.split(whereSeparator: { $0 == ";" || $0.isNewline }).first.map(String.init) ?? ""
    guard r.status == 0, !id.isEmpty, id.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
      throw WireError(.executorFailed, "sbatch refused the job array of study \(s.name) (exit \(r.status)): \(r.complaint)")
    }
    slurmStateCache.withLock { $0[s.name] = nil }
    do {
      try updateRecord(s) {
        $0.slurmSubmissions = ($0.slurmSubmissions ?? []) + [
          SlurmSubmission(arrayJob: id, tasks: chosen.sorted(), submitted: rfc3339()),
        ]
      }
    } catch {
      // Unrecorded, the array would run unwatched: take it back.
      _ = try? SlurmCommand.run("scancel", [id])
      throw error
    }
  }

  /// Each submitted task's latest state: squeue's, else sacct's (where accounting works), else
  /// `ENDED` (Slurm has forgotten it; its checkpoint says how far it got).
  func slurmStates(_ s: DeclaredStudy) -> [Int: SlurmTaskLatest] {
    let submissions = s.record.slurmSubmissions ?? []
    guard !submissions.isEmpty else { return [:] }
    if let cached = slurmStateCache.withLock({ $0[s.name] }),
       Date().timeIntervalSince(cached.at) < Self.slurmStateTTL { return cached.states }
    var latest: [Int: String] = [:]
    for sub in submissions { for t in sub.tasks { latest[t] = sub.arrayJob } }
    let jobs = Array(Set(latest.values)).sorted()
    var queued: SlurmQueue.States = [:], accounted: SlurmQueue.States = [:]
    // One query per array: an id Slurm has purged fails the whole query.
    for job in jobs {
      if let r = try? SlurmCommand.run("squeue", ["--noheader", "--array", "--states=all", "--jobs=\(job)",
                                                  "--format=%i|%T|%r"], timeout: 15), r.status == 0 {
        queued.merge(SlurmQueue.parseSqueue(r.output)) { a, b in a.merging(b) { _, new in new } }
      }
    }
    let unlisted = latest.filter { queued[$0.value]?[$0.key] == nil }
    if !unlisted.isEmpty, (try? SlurmCommand.locate("sacct")) != nil {
      for job in Set(unlisted.values).sorted() {
        if let r = try? SlurmCommand.run("sacct", ["--noheader", "--parsable2", "--jobs=\(job)",
                                                   "--format=JobID,State,ExitCode"], timeout: 15), r.status == 0 {
          accounted.merge(SlurmQueue.parseSacct(r.output)) { a, b in a.merging(b) { _, new in new } }
        }
      }
    }
    var out: [Int: SlurmTaskLatest] = [:]
    for (task, job) in latest {
      let state = queued[job]?[task] ?? accounted[job]?[task] ?? SlurmTaskState(state: "ENDED")
      out[task] = SlurmTaskLatest(arrayJob: job, state: state)
    }
    slurmStateCache.withLock { $0[s.name] = (Date(), out) }
    return out
  }

  /// Cancels the study's tasks that Slurm still runs or will run (`tasks`: only these).
  func cancelSlurm(_ s: DeclaredStudy, tasks: Set<Int>? = nil) throws(WireError) {
    slurmStateCache.withLock { $0[s.name] = nil }
    let active = slurmStates(s).filter { $0.value.state.isActive && (tasks?.contains($0.key) ?? true) }
    let ids = active.map { "\($0.value.arrayJob)_\($0.key)" }.sorted()
    guard !ids.isEmpty else { return }
    let r = try SlurmCommand.run("scancel", ids)
    slurmStateCache.withLock { $0[s.name] = nil }
    guard r.status == 0 else {
      throw WireError(.executorFailed, "scancel \(ids.joined(separator: " ")) failed (exit \(r.status)): \(r.complaint)")
    }
  }

  /// Tasks whose model is not trained and that Slurm is not running or about to run: what a
  /// (re)submission sends.
  func slurmTasksToSubmit(_ s: DeclaredStudy) -> [Int] {
    let facts = self.facts(s)
    let states = slurmStates(s)
    return slurmTasks(s).filter { t in
      facts[t.recipe.model!]?.trained != true && !(states[t.index]?.state.isActive ?? false)
    }.map(\.index)
  }

  /// The last lines of a task's log.
  func slurmLogTail(_ s: DeclaredStudy, task: Int, lines: Int = 12) -> String? {
    let path = SlurmScript.logPath(slurmDirectory(s.name) + "/logs", task: task)
    guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
    defer { try? handle.close() }
    let size = (try? handle.seekToEnd()) ?? 0
    let start = size > 8192 ? size - 8192 : 0
    try? handle.seek(toOffset: start)
    let text = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
    // Progress lines end in \r; keep the last state of each line.
    let all = text.split(whereSeparator: \.isNewline).map { $0.split(separator: "\r").last.map(String.init) ?? "" }
    let tail = all.suffix(lines).joined(separator: "\n")
    return tail.isEmpty ? nil : tail
  }

  /// Changes the study's record and saves it under `cond`, as the runner records errors, so
  /// that neither change is lost to the other; nothing changes if the save fails.
  func updateRecord(_ s: DeclaredStudy, _ change: (inout StudyRecord) -> Void) throws(WireError) {
    cond.lock()
    defer { cond.unlock() }
    var r = s.record
    change(&r)
    try files.save(r)
    s.record = r
  }

  // MARK: STUDY_RUN

  /// Moves a study's training to `executor` (see `StudyRunRequest`).
  func run(_ name: String, on executor: StudyExecutor) throws(WireError) -> DeclaredStudy {
    if let p = executor.problem() { throw invalid("executor.\(p.field)", p.message) }
    let s = try study(name)
    trainingGate.lock()
    defer { trainingGate.unlock() }
    let previous = s.record.executor?.kind ?? .local
    switch executor.kind {
    case .slurm:
      _ = try slurmPaths(s)
      if previous == .local {
        // Its local jobs stop (their checkpoints stay; an array task continues a checkpoint).
        let entries = service.jobs.latestEntries()
        cond.lock()
        let neededElsewhere = studies.values.filter { $0 !== s && $0.isActive && ($0.record.executor?.kind ?? .local) == .local }
          .reduce(into: Set<String>()) { $0.formUnion($1.modelNames) }
        cond.unlock()
        for model in s.planner.models.map(\.name) where !neededElsewhere.contains(model) {
          if let entry = entries[model], !entry.state.hasEnded {
            _ = try? service.jobs.cancel(entry.job, reply: InternalReply())
          }
        }
      }
      try updateRecord(s) {
        $0.executor = executor
        $0.cancelled = false
        $0.errors.removeAll { $0.key.hasPrefix("train/") }
      }
      try submitSlurm(s, tasks: slurmTasksToSubmit(s))
    case .local:
      if previous == .slurm { try cancelSlurm(s) }
      try updateRecord(s) {
        $0.executor = nil
        $0.cancelled = false
      }
    }
    poke()
    return s
  }
}
