import Wire

/// One model of a study as a Slurm array task: task `index` trains `recipe` into
/// `MODELS/NAME.bsckpt` (NAME = `recipe.model`, its content-addressed name).
public struct SlurmArrayTask: Hashable, Sendable {
  public var index: Int
  public var recipe: TrainRequest
  public init(index: Int, recipe: TrainRequest) {
    self.index = index
    self.recipe = recipe
  }
}

/// Where a job array's tasks find things; every path must be the same on every node.
public struct SlurmScriptPaths: Hashable, Sendable {
  public var engine: String
  /// The store's model directory (the tasks' checkpoints).
  public var models: String
  /// The study's Slurm directory: the script `train.sbatch` and `logs/task-N.log` (appended
  /// to across requeues).
  public var directory: String
  /// The dataset's directory (nil for `synthetic`).
  public var data: String?
  public init(engine: String, models: String, directory: String, data: String?) {
    self.engine = engine
    self.models = models
    self.directory = directory
    self.data = data
  }

  public var script: String { directory + "/train.sbatch" }
  public var logs: String { directory + "/logs" }

  /// The first path a job script cannot carry safely: `#SBATCH` lines are not shell-parsed,
  /// so paths are limited to characters that need no quoting anywhere.
  public func problem() -> String? {
    for (what, path) in [("the engine", engine), ("the store", models), ("the study", directory), ("the dataset", data ?? "/")] {
      guard path.hasPrefix("/"), SlurmScript.pathText.accepts(path) else {
        return "\(what) path \"\(path)\" must be absolute and of [A-Za-z0-9/._+-] only (it goes into a job script's #SBATCH lines)"
      }
    }
    return nil
  }
}

/// The slurm executor's job array script: readable, so that a user can adapt it and submit it
/// by hand (`sbatch train.sbatch`). Each task trains one model headless with
/// `blockscope-engine train` (a checkpoint after every epoch, written atomically), continuing
/// its own checkpoint when it exists, so a requeued or preempted task resumes from its last
/// finished epoch; near the time limit Slurm signals the batch shell, which requeues the task.
public enum SlurmScript {
  /// Seconds before the time limit at which Slurm sends USR1 (`--signal=B:USR1@...`): 180,
  /// or a tenth of a shorter limit (at least 10), so that a short limit is not all warning.
  public static func requeueLeadSeconds(time: String?) -> Int {
    guard let limit = time.flatMap(seconds(ofTime:)) else { return 180 }
    return min(180, max(10, limit / 10))
  }

  /// Slurm's time syntax in seconds: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`; nil for
  /// anything else (`UNLIMITED`, `INFINITE`).
  public static func seconds(ofTime time: String) -> Int? {
    let dayParts = time.split(separator: "-", omittingEmptySubsequences: false)
    guard dayParts.count <= 2 else { return nil }
    let days = dayParts.count == 2 ? Int(dayParts[0]) : 0
    let clock = dayParts.last!.split(separator: ":", omittingEmptySubsequences: false).map { Int($0) }
    guard let days, days >= 0, !clock.isEmpty, clock.count <= 3, clock.allSatisfy({ $0 != nil && $0! >= 0 }) else { return nil }
    let c = clock.map { $0! }
    let hms: (Int, Int, Int)
    if dayParts.count == 2 {
      hms = (c[0], c.count > 1 ? c[1] : 0, c.count > 2 ? c[2] : 0)
    } else {
      switch c.count {
      case 1: hms = (0, c[0], 0)
      case 2: hms = (0, c[0], c[1])
      default: hms = (c[0], c[1], c[2])
      }
    }
    let total = ((days * 24 + hms.0) * 60 + hms.1) * 60 + hms.2
    return total > 0 ? total : nil
  }

  public static func logPath(_ logs: String, task: Int) -> String { "\(logs)/task-\(task).log" }

  /// `0-3,5,7-9` (`%M` appended for a parallelism limit), from task indices in any order.
  public static func arraySpec(_ tasks: [Int], maxParallel: Int?) -> String {
    let sorted = Set(tasks).sorted()
    var parts: [String] = []
    var i = 0
    while i < sorted.count {
      var j = i
      while j + 1 < sorted.count && sorted[j + 1] == sorted[j] + 1 { j += 1 }
      parts.append(i == j ? "\(sorted[i])" : "\(sorted[i])-\(sorted[j])")
      i = j + 1
    }
    return parts.joined(separator: ",") + (maxParallel.map { "%\($0)" } ?? "")
  }

  /// `blockscope-engine train`'s arguments for a fresh start of `recipe` (without the
  /// checkpoint and thread options, which the script adds).
  public static func trainArguments(_ r: TrainRequest, dataPath: String?) -> [String] {
    var a = ["--depth", "\(r.depth)", "--width", "\(r.width)"]
    if r.plain { a.append("--plain") }
    a += ["--dataset", r.dataset]
    if let dataPath { a += ["--data-path", dataPath] }
    a += ["--fraction", "\(r.fraction)"]
    if r.stratified { a.append("--stratified") }
    a += ["--epochs", "\(r.epochs)", "--batch-size", "\(r.batchSize)", "--lr", "\(r.lr)",
          "--weight-decay", "\(r.weightDecay)", "--warmup-epochs", "\(r.warmupEpochs)"]
    if !r.augment { a.append("--no-augment") }
    a += ["--seed", "\(r.seed)"]
    if let n = r.testExamples { a += ["--test-examples", "\(n)"] }
    return a + snapshotArguments(r)
  }

  /// What a resumed task passes besides `--resume` (the checkpoint holds the rest).
  public static func resumeArguments(_ r: TrainRequest) -> [String] {
    var a = ["--epochs", "\(r.epochs)"]
    if let n = r.testExamples { a += ["--test-examples", "\(n)"] }
    return a + snapshotArguments(r)
  }

  static func snapshotArguments(_ r: TrainRequest) -> [String] {
    r.snapshotEpochs.isEmpty ? [] : ["--snapshot-epochs", r.snapshotEpochs.sorted().map(String.init).joined(separator: ",")]
  }

  /// The whole script. `tasks` hold every model of the study (a resubmission names a subset
  /// with `sbatch --array=...` on the command line, which overrides the script's line).
  public static func text(study: String, tasks: [SlurmArrayTask], executor: StudyExecutor,
                          paths: SlurmScriptPaths) -> String {
    var s = """
      #!/bin/bash
      # Blockscope study "\(study)": one model of its grid per array task, trained by
      # blockscope-engine into the shared store (a checkpoint after every epoch). Written by
      # blockscoped for `blockscope study run \(study) --executor slurm`; submit it by hand with
      #   sbatch \(paths.script)
      # or a subset with sbatch --array=3,5 ... . A task whose checkpoint exists continues it.

      """
    s += "#SBATCH --job-name=bs-\(study)\n"
    s += "#SBATCH --array=\(arraySpec(tasks.map(\.index), maxParallel: executor.maxParallel))\n"
    s += "#SBATCH --cpus-per-task=\(executor.cpusPerTask ?? 1)\n"
    if let p = executor.partition { s += "#SBATCH --partition=\(p)\n" }
    if let t = executor.time { s += "#SBATCH --time=\(t)\n" }
    if let m = executor.mem { s += "#SBATCH --mem=\(m)\n" }
    if let a = executor.account { s += "#SBATCH --account=\(a)\n" }
    let lead = requeueLeadSeconds(time: executor.time)
    s += """
      #SBATCH --requeue
      #SBATCH --signal=B:USR1@\(lead)
      #SBATCH --open-mode=append
      #SBATCH --output=\(paths.logs)/task-%a.log
      set -euo pipefail
      engine=\(paths.engine)
      models=\(paths.models)
      task="${SLURM_ARRAY_TASK_ID:?submit this script with sbatch (it is a job array)}"

      case "$task" in

      """
    for t in tasks.sorted(by: { $0.index < $1.index }) {
      let name = t.recipe.model ?? RecipeName.name(of: t.recipe)
      s += "  \(t.index))\n"
      s += "    model=\(name)\n"
      s += "    fresh=(\(trainArguments(t.recipe, dataPath: paths.data).joined(separator: " ")))\n"
      s += "    resume=(\(resumeArguments(t.recipe).joined(separator: " "))) ;;\n"
    }
    s += """
        *) echo "blockscope: this study has no array task $task" >&2; exit 2 ;;
      esac

      checkpoint="$models/$model.bsckpt"
      common=(--threads "${SLURM_CPUS_PER_TASK:-1}" --metadata executor=slurm
              --metadata "slurm_job=${SLURM_ARRAY_JOB_ID:-none}_$task")
      echo "blockscope: task $task ($model) as job ${SLURM_JOB_ID:-?} on $(hostname), restart ${SLURM_RESTART_COUNT:-0}, $(date -u +%FT%TZ)"

      # Slurm sends USR1 to this shell \(lead) s before the time limit: the task is requeued and
      # continues from its last finished epoch (the running epoch is lost). Only if this run
      # finished an epoch: otherwise one epoch takes longer than the limit allows, and requeueing
      # would repeat it forever; the task then ends TIMEOUT and `study status` says so.
      started_at=$(date +%s)
      requeue() {
        if [ -f "$checkpoint" ] && [ "$(stat -c %Y "$checkpoint")" -ge "$started_at" ]; then
          echo "blockscope: the time limit is near; requeueing task $task"
          scontrol requeue "${SLURM_ARRAY_JOB_ID}_$task"
        else
          echo "blockscope: the time limit is near and no epoch finished in this run: not requeued (raise --time)"
        fi
      }
      trap requeue USR1

      if [ -f "$checkpoint" ]; then
        "$engine" train --resume "$checkpoint" "${resume[@]}" "${common[@]}" &
      else
        "$engine" train "${fresh[@]}" --checkpoint "$checkpoint" "${common[@]}" &
      fi
      engine_pid=$!
      # A trapped signal ends `wait` early; wait again until the engine itself has ended.
      while :; do
        status=0
        wait "$engine_pid" || status=$?
        kill -0 "$engine_pid" 2>/dev/null || break
      done
      echo "blockscope: task $task ended with status $status, $(date -u +%FT%TZ)"
      exit "$status"

      """
    return s
  }

  /// The bytes of a path the script may hold unquoted.
  static let pathText = PlainText(punctuation: "/._+-")
}
