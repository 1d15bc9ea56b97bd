import ArgumentParser
import Foundation
import Wire

struct TrainCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "train",
    abstract: "Start a training job on the daemon and watch it until it ends.",
    discussion: """
      Options left out take the daemon's defaults (SPEC.md, TRAIN). The job runs in the daemon: \
      interrupting this command (or --detach) leaves it running; follow it again with \
      'blockscope watch JOB'. Exit status when watching: 0 finished, 1 failed, 2 cancelled or \
      interrupted.
      """)

  @OptionGroup var global: GlobalOptions

  @Option(help: "Model name (default: derived from the recipe, e.g. r20-k1-fashion-mnist-f1-s0).")
  var model: String?
  @Option(help: "Depth 6n+2: 8, 14, 20, 26, 32, 38, 44, 56, 110, ... (default 20).")
  var depth: Int?
  @Option(help: "Width multiplier k: stage channels 16k, 32k, 64k (default 1).")
  var width: Double?
  @Flag(help: "Plain network (no residual connections).")
  var plain = false
  @Option(help: "fashion-mnist, cifar10, cifar100 or synthetic (default fashion-mnist).")
  var dataset: String?
  @Option(help: "Fraction of the training set, in (0, 1] (default 1).")
  var fraction: Double?
  @Flag(help: "Stratified subset (an equal share per class) instead of the first fraction.")
  var stratified = false
  @Option(help: "Epochs (default 30).")
  var epochs: Int?
  @Option(name: .customLong("batch-size"), help: "Minibatch size (default 128).")
  var batchSize: Int?
  @Option(help: "Peak learning rate (default 0.05).")
  var lr: Double?
  @Option(name: .customLong("weight-decay"), help: "Weight decay (default 5e-4).")
  var weightDecay: Double?
  @Option(name: .customLong("warmup-epochs"), help: "Linear warm-up epochs (default 0).")
  var warmupEpochs: Double?
  @Flag(name: .customLong("no-augment"), help: "No data augmentation.")
  var noAugment = false
  @Option(help: "Seed of initialisation and data order (default 0).")
  var seed: UInt64?
  @Option(name: .customLong("test-examples"), help: "Evaluate each epoch on the first N test images (default all).")
  var testExamples: Int?
  @Option(help: "Threads of the job (default: the daemon's worker width).")
  var threads: Int?
  @Flag(help: "Print the job id and return at once instead of watching.")
  var detach = false

  func validate() throws {
    if let model, !ModelRequest.isValidName(model) {
      throw ValidationError("--model '\(model)' is not a model name: 1 to 64 of A-Z a-z 0-9 . _ -, not starting with '.'")
    }
    if let depth, depth < 8 || (depth - 2) % 6 != 0 {
      throw ValidationError("--depth \(depth) is not 6n+2 (8, 14, 20, ...)")
    }
    if let width, !(width > 0 && width <= 64) { throw ValidationError("--width must be in (0, 64]") }
    if let fraction, !(fraction > 0 && fraction <= 1) { throw ValidationError("--fraction must be in (0, 1]") }
    if let epochs, epochs < 1 { throw ValidationError("--epochs must be at least 1") }
    if let batchSize, batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
    if let lr, !(lr > 0) { throw ValidationError("--lr must be positive") }
    if let weightDecay, !(weightDecay >= 0) { throw ValidationError("--weight-decay must not be negative") }
    if let warmupEpochs, warmupEpochs < 0 { throw ValidationError("--warmup-epochs must not be negative") }
    if let testExamples, testExamples < 1 { throw ValidationError("--test-examples must be at least 1") }
    if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    if let dataset, dataset.isEmpty { throw ValidationError("--dataset must not be empty") }
  }

  /// The TRAIN doc: the spec's defaults where an option was left out.
  var request: TrainRequest {
    var r = TrainRequest()
    r.model = model
    if let depth { r.depth = depth }
    if let width { r.width = width }
    r.plain = plain
    if let dataset { r.dataset = dataset }
    if let fraction { r.fraction = fraction }
    r.stratified = stratified
    if let epochs { r.epochs = epochs }
    if let batchSize { r.batchSize = batchSize }
    if let lr { r.lr = lr }
    if let weightDecay { r.weightDecay = weightDecay }
    if let warmupEpochs { r.warmupEpochs = warmupEpochs }
    r.augment = !noAugment
    if let seed { r.seed = seed }
    r.testExamples = testExamples
    r.threads = threads
    return r
  }

  func run() throws {
    try global.withDaemon { client in
      let response = try client.request(.train, request)
      let started = try response.decode(TrainResponse.self)
      if detach {
        if global.json { return try JSONOutput.print(response.jsonOutput()) }
        printError("job \(started.job): training \(started.model) (\(started.state.rawValue)); "
                   + "watch it with: blockscope watch \(started.job)")
        print(started.job)
        return
      }
      if !global.json {
        printError("job \(started.job): training \(started.model); Ctrl-C stops watching, not the job "
                   + "(blockscope watch \(started.job) / blockscope cancel \(started.job))")
      }
      try JobWatcher.watch(client: client, job: started.job, global: global)
    }
  }
}

/// Follows a job with WATCH until it ends, then prints its entry and sets the exit status.
enum JobWatcher {
  static func watch(client: DaemonClient, job: UInt64, global: GlobalOptions) throws {
    var display = ProgressDisplay.automatic(json: global.json)
    let response: DaemonResponse
    do {
      response = try client.request(.watch, WatchRequest(job: job), quiet: !display.isEnabled,
                                    onProgress: { display.handle($0) })
    } catch let error as DaemonError where error.errorCode == .shuttingDown || error.errorCode == .shuttingDownClose {
      display.finish()
      printError("blockscope: the daemon is stopping (\(error.message)); job \(job) is checkpointed as "
                 + "interrupted: resume it with: blockscope resume \(job)")
      throw ExitStatus.jobNotFinished
    }
    display.finish()
    let entry = try response.decode(WatchResponse.self)
    if global.json {
      try JSONOutput.print(response.jsonOutput())
    } else {
      print(summary(entry))
    }
    try exit(for: entry)
  }

  /// `job 3 finished: r8-k0.5-synthetic-f1-s0, 2/2 epochs, test accuracy 51.20%`.
  static func summary(_ entry: JobEntry) -> String {
    var text = "job \(entry.job) \(entry.state.rawValue): \(entry.model), \(entry.epoch)/\(entry.epochs) epochs"
    if let last = entry.last {
      text += ", train loss \(Format.number(last.trainLoss)), train accuracy \(Format.percent(last.trainAccuracy))"
      text += ", test accuracy \(Format.percent(last.testAccuracy))"
    }
    if let error = entry.error, !error.isEmpty { text += "\n  error: \(error)" }
    switch entry.state {
    case .cancelled, .interrupted:
      text += "\n  resume it with: blockscope resume \(entry.job)"
    default:
      break
    }
    return text
  }

  /// 0 finished (or still running), 1 failed, 2 cancelled or interrupted.
  static func exit(for entry: JobEntry) throws {
    switch entry.state {
    case .failed: throw ExitStatus.failure
    case .cancelled, .interrupted: throw ExitStatus.jobNotFinished
    case .finished, .queued, .running: return
    }
  }
}

struct JobsCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "jobs", abstract: "List training jobs, also unfinished ones from before a restart.")

  @OptionGroup var global: GlobalOptions

  func run() throws {
    try global.withDaemon { client in
      let response = try client.request(.jobs, JobsRequest())
      if global.json { return try JSONOutput.print(response.jsonOutput()) }
      let jobs = try response.decode(JobsResponse.self).jobs
      if jobs.isEmpty {
        print("no jobs")
        return
      }
      var table = TextTable(["JOB", "MODEL", "STATE", "EPOCH", "TEST ACC", "CREATED", "ENDED", "ERROR"],
                            rightAligned: [0, 3, 4])
      for j in jobs {
        table.add(["\(j.job)", j.model, j.state.rawValue, "\(j.epoch)/\(j.epochs)",
                   Format.percent(j.last?.testAccuracy), j.created, j.ended ?? "-", j.error ?? ""])
      }
      print(table.render())
    }
  }
}

/// A job id argument.
struct JobArgument: ParsableArguments {
  @Argument(help: "The job id (see 'blockscope jobs').")
  var job: UInt64

  func validate() throws {
    if job == 0 { throw ValidationError("job ids start at 1") }
  }
}

struct WatchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "watch",
    abstract: "Follow a training job until it ends.",
    discussion: "Exit status: 0 finished, 1 failed, 2 cancelled or interrupted.")

  @OptionGroup var global: GlobalOptions
  @OptionGroup var job: JobArgument

  func run() throws {
    try global.withDaemon { client in
      try JobWatcher.watch(client: client, job: job.job, global: global)
    }
  }
}

struct CancelCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "cancel",
    abstract: "Stop a training job before its next step (its last finished epoch stays checkpointed).")

  @OptionGroup var global: GlobalOptions
  @OptionGroup var job: JobArgument

  func run() throws {
    try global.withDaemon { client in
      let response = try client.request(.cancel, CancelRequest(job: job.job))
      if global.json { return try JSONOutput.print(response.jsonOutput()) }
      print(JobWatcher.summary(try response.decode(CancelResponse.self)))
    }
  }
}

struct ResumeCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "resume",
    abstract: "Continue an interrupted or cancelled job from its checkpoint, and watch it.",
    discussion: "Exit status when watching: 0 finished, 1 failed, 2 cancelled or interrupted.")

  @OptionGroup var global: GlobalOptions
  @OptionGroup var job: JobArgument
  @Option(help: "A new total number of epochs (extends the job).")
  var epochs: Int?
  @Flag(help: "Return at once instead of watching.")
  var detach = false

  func validate() throws {
    if let epochs, epochs < 1 { throw ValidationError("--epochs must be at least 1") }
  }

  func run() throws {
    try global.withDaemon { client in
      let response = try client.request(.resume, ResumeRequest(job: job.job, epochs: epochs))
      let entry = try response.decode(ResumeResponse.self)
      if detach {
        if global.json { return try JSONOutput.print(response.jsonOutput()) }
        print("job \(entry.job) \(entry.state.rawValue): \(entry.model) from epoch \(entry.epoch) of \(entry.epochs)")
        return
      }
      if !global.json {
        printError("job \(entry.job): resuming \(entry.model) after epoch \(entry.epoch) of \(entry.epochs)")
      }
      try JobWatcher.watch(client: client, job: entry.job, global: global)
    }
  }
}
