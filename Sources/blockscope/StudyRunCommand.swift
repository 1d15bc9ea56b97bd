import ArgumentParser
import Foundation
import Wire

/// Where a study's models train, for `study create` and `study run`.
struct ExecutorOptions: ParsableArguments {
  @Option(help: ArgumentHelp("local (the daemon's queue) or slurm (a Slurm job array; the store must be on a path every node sees).",
                             valueName: "local|slurm"))
  var executor: String?
  @Option(help: "Slurm partition.") var partition: String?
  @Option(help: "Slurm time limit per task, e.g. 2:00:00 (tasks are requeued and resume near it).") var time: String?
  @Option(name: .customLong("cpus-per-task"), help: "CPUs per task, also its training threads (default 1).") var cpusPerTask: Int?
  @Option(help: "Memory per task in Slurm's syntax, e.g. 4G.") var mem: String?
  @Option(name: .customLong("max-parallel"), help: "Array tasks running at once.") var maxParallel: Int?
  @Option(help: "Slurm account.") var account: String?

  private var slurmOptionsGiven: Bool {
    partition != nil || time != nil || cpusPerTask != nil || mem != nil || maxParallel != nil || account != nil
  }

  func validate() throws {
    if let executor, StudyExecutor.Kind(rawValue: executor) == nil {
      throw ValidationError("--executor must be local or slurm, not \(executor)")
    }
    if slurmOptionsGiven && executor != "slurm" {
      throw ValidationError("--partition, --time, --cpus-per-task, --mem, --max-parallel and --account need --executor slurm")
    }
    if let e = request, let p = e.problem() {
      throw ValidationError("--\(p.field.replacingOccurrences(of: "_", with: "-")): \(p.message)")
    }
  }

  /// The executor asked for; nil when --executor was not given.
  var request: StudyExecutor? {
    guard let executor, let kind = StudyExecutor.Kind(rawValue: executor) else { return nil }
    return StudyExecutor(kind: kind, partition: partition, time: time, account: account, mem: mem,
                         cpusPerTask: cpusPerTask, maxParallel: maxParallel)
  }
}

struct StudyRunCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "run",
    abstract: "Train a study's models on another executor: --executor slurm submits a job array, --executor local takes them back.",
    discussion: """
      With slurm, the daemon writes the job array script into the study's directory \
      (STORE/studies/NAME/slurm/train.sbatch: one model per task, readable, to adapt and \
      submit by hand if needed), submits it with sbatch for every model not trained yet, and \
      records the array. Each task trains with blockscope-engine into the daemon's store (which \
      every node must see) and continues its checkpoint when requeued. The daemon analyses \
      models as their checkpoints arrive; 'study status' shows each task's Slurm state and the \
      log tail of failed ones; 'study resume' submits failed tasks again; 'study cancel' \
      scancels them.
      """)
  @OptionGroup var global: GlobalOptions
  @OptionGroup var name: StudyArgument
  @OptionGroup var executor: ExecutorOptions
  @Flag(help: "Follow the study's progress until it ends.") var watch = false

  func validate() throws {
    guard executor.executor != nil else { throw ValidationError("--executor local|slurm is required") }
  }

  func run() throws {
    try global.withDaemon { client in
      let response = try client.request(.studyRun, StudyRunRequest(study: name.study, executor: executor.request!))
      if watch { return try StudyStatusCommand.follow(client: client, study: name.study, global: global) }
      if global.json { return try JSONOutput.print(response.jsonOutput()) }
      let status = try response.decode(StudyStatusResponse.self)
      if let script = status.slurmScript { printError("study \(status.study): job array script \(script)") }
      print(StudyStatusCommand.render(status))
    }
  }
}
