// SPEC.md section 7: STUDY_RUN (0x0020), and the executor parts of the study messages.

/// Where a study's models train: `local` (the daemon's own job queue, the default) or `slurm`
/// (a Slurm job array; `blockscope-engine` trains each model on a compute node into the
/// daemon's store, which every node must see).
public struct StudyExecutor: Codable, Hashable, Sendable {
  public enum Kind: String, WireStringEnum {
    case local, slurm
  }
  public var kind: Kind
  /// `sbatch` options; nil leaves Slurm's default. `time` is Slurm's syntax (`2:00:00`,
  /// `1-00:00:00`), `mem` too (`4G`).
  public var partition: String?
  public var time: String?
  public var account: String?
  public var mem: String?
  /// CPUs per task, also the task's training threads (default 1). Models are bitwise equal
  /// to the local executor's only for the same thread count.
  public var cpusPerTask: Int?
  /// Array tasks running at once (`--array=0-N%M`); nil: no limit.
  public var maxParallel: Int?

  public init(kind: Kind, partition: String? = nil, time: String? = nil, account: String? = nil,
              mem: String? = nil, cpusPerTask: Int? = nil, maxParallel: Int? = nil) {
    self.kind = kind
    self.partition = partition
    self.time = time
    self.account = account
    self.mem = mem
    self.cpusPerTask = cpusPerTask
    self.maxParallel = maxParallel
  }

  public static let local = StudyExecutor(kind: .local)

  enum CodingKeys: String, CodingKey {
    case kind, partition, time, account, mem, cpusPerTask = "cpus_per_task", maxParallel = "max_parallel"
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(kind: try c.value(.kind), partition: try c.ifPresent(.partition), time: try c.ifPresent(.time),
              account: try c.ifPresent(.account), mem: try c.ifPresent(.mem),
              cpusPerTask: try c.ifPresent(.cpusPerTask), maxParallel: try c.ifPresent(.maxParallel))
  }

  /// The first field that is not acceptable, as (field, message). Slurm option values are
  /// written into a job script, so they are restricted to characters no shell or `#SBATCH`
  /// line gives a meaning to.
  /// The bytes of a Slurm option value (it goes into `#SBATCH` lines).
  static let optionText = PlainText(punctuation: "-_:.,")

  public func problem() -> (field: String, message: String)? {
    for (field, value) in [("partition", partition), ("time", time), ("account", account), ("mem", mem)] {
      guard let value else { continue }
      if kind == .local { return (field, "only the slurm executor takes \(field)") }
      guard !value.isEmpty, value.utf8.count <= 128, Self.optionText.accepts(value) else {
        return (field, "\"\(value)\" must be 1-128 characters of [A-Za-z0-9_.,:-]")
      }
    }
    for (field, value) in [("cpus_per_task", cpusPerTask), ("max_parallel", maxParallel)] {
      guard let value else { continue }
      if kind == .local { return (field, "only the slurm executor takes \(field)") }
      guard (1...4096).contains(value) else { return (field, "\(value) is outside 1...4096") }
    }
    return nil
  }
}

/// `STUDY_RUN`: runs an existing study's training on another executor. To `slurm`: the study's
/// queued and running local jobs are cancelled (their checkpoints stay and the array tasks
/// continue them), the job array script is written to `studies/NAME/slurm/train.sbatch` and
/// submitted for every model not trained yet. To `local`: the study's array tasks are
/// cancelled (`scancel`) and the daemon's queue takes over.
public struct StudyRunRequest: Codable, Hashable, Sendable {
  public var study: String
  public var executor: StudyExecutor
  public init(study: String, executor: StudyExecutor) {
    self.study = study
    self.executor = executor
  }
  enum CodingKeys: String, CodingKey { case study, executor }
  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(study: try c.value(.study), executor: try c.value(.executor))
  }
}

/// One model's Slurm array task, as `STUDY_STATUS` reports it.
public struct SlurmTaskStatus: Codable, Hashable, Sendable {
  /// The array job id of the latest submission holding this task.
  public var arrayJob: String
  public var task: Int
  /// Slurm's state name (`PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `CANCELLED`,
  /// `TIMEOUT`, ...), or `ENDED` when Slurm no longer lists the task and no accounting says
  /// how it ended (its checkpoint then says how far it got).
  public var state: String
  /// Slurm's reason (`Resources`, `NonZeroExitCode`, ...), when it gives one.
  public var reason: String?
  /// The last lines of the task's log, for a task that ended without a trained model.
  public var logTail: String?

  public init(arrayJob: String, task: Int, state: String, reason: String? = nil, logTail: String? = nil) {
    self.arrayJob = arrayJob
    self.task = task
    self.state = state
    self.reason = reason
    self.logTail = logTail
  }
  enum CodingKeys: String, CodingKey { case arrayJob = "array_job", task, state, reason, logTail = "log_tail" }
  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(arrayJob: try c.value(.arrayJob), task: try c.value(.task), state: try c.value(.state),
              reason: try c.ifPresent(.reason), logTail: try c.ifPresent(.logTail))
  }
}
