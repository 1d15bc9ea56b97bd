import ArgumentParser
import Foundation
import Study
import Wire

/// `blockscope study ...`: declare, follow, cancel, resume and delete studies.
struct StudyCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "study",
    abstract: "Run a study: a grid of models (depth x width x data fraction x seeds) trained and analysed together.",
    discussion: """
      A study is declared once (a JSON file, a preset, or options) and runs in the daemon: \
      every model of the grid is trained (a model already trained with the same recipe, by \
      any study, is reused), then analysed; results are stored beside the study. It survives \
      daemon restarts. Read it with 'blockscope report NAME --out DIR'.
      """,
    subcommands: [StudyCreateCommand.self, StudyStatusCommand.self, StudyListCommand.self,
                  StudyRunCommand.self, StudyCancelCommand.self, StudyResumeCommand.self,
                  StudyDeleteCommand.self])
}

/// A study name argument.
struct StudyArgument: ParsableArguments {
  @Argument(help: "The study's name (1 to 64 of A-Z a-z 0-9 . _ -).")
  var study: String

  func validate() throws {
    try validateModelName(study, what: "study")
  }
}

struct StudyCreateCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "create",
    abstract: "Declare a study and start it (declaring it again with the same declaration changes nothing).",
    discussion: """
      The declaration comes from --file (JSON, keys as in SPEC.md 'Study declaration'), or \
      --preset (demo: Fashion-MNIST, ~20 min; paper: CIFAR-10), or the options alone; options \
      override the file or preset. Lists: 14,20,56; ranges of integers: 0-4.
      """)

  @OptionGroup var global: GlobalOptions
  @OptionGroup var name: StudyArgument

  @Option(help: ArgumentHelp("A JSON study declaration.", valueName: "path")) var file: String?
  @Option(help: "A named declaration: \(StudyPresets.names.joined(separator: ", ")).") var preset: String?
  @Option(help: "fashion-mnist, cifar10, cifar100 or synthetic.") var dataset: String?
  @Option(help: "Depths 6n+2, e.g. 14,20,56.") var depths: String?
  @Option(help: "Width multipliers, e.g. 1,2,4.") var widths: String?
  @Option(help: "Training-set fractions, e.g. 1,0.25,0.06.") var fractions: String?
  @Option(help: "Seeds, e.g. 0-2 or 0,5,9.") var seeds: String?
  @Option(name: .customLong("plain-widths"), help: "Also train plain (non-residual) nets at these widths.") var plainWidths: String?
  @Option(help: "Epochs of every model.") var epochs: Int?
  @Option(name: .customLong("batch-size")) var batchSize: Int?
  @Option var lr: Double?
  @Option(name: .customLong("weight-decay")) var weightDecay: Double?
  @Option(name: .customLong("warmup-epochs")) var warmupEpochs: Double?
  @Flag(name: .customLong("no-augment")) var noAugment = false
  @Flag(help: "Stratified training subsets.") var stratified = false
  @Option(name: .customLong("test-examples"), help: "Evaluate on the first N test images.") var testExamples: Int?
  @Option(name: .customLong("snapshot-epochs"), help: "Keep and analyse the models after these epochs, e.g. 1,2,5,10.") var snapshotEpochs: String?
  @Option(help: "Analyses to run (default all): heatmap,pc,probe,deletion,cross_seed,cross_architecture,populations.") var analyses: String?
  @Option(name: .customLong("heatmap-examples")) var heatmapExamples: Int?
  @OptionGroup var executor: ExecutorOptions
  @Flag(help: "Follow the study's progress until it ends.") var watch = false

  func validate() throws {
    if file != nil && preset != nil { throw ValidationError("give --file or --preset, not both") }
    if let preset, StudyPresets.named(preset) == nil {
      throw ValidationError("--preset '\(preset)' is not one of \(StudyPresets.names.joined(separator: ", "))")
    }
    if file == nil && preset == nil && (dataset == nil || depths == nil) {
      throw ValidationError("give --file, --preset, or at least --dataset and --depths")
    }
  }

  /// The declaration: file or preset, then the options over it.
  func declaration() throws -> StudyDeclaration {
    var d: StudyDeclaration
    if let file {
      let bytes = try Files.read(file)
      do {
        d = try Payload(doc: bytes).decode(StudyDeclaration.self)
      } catch {
        throw ValidationError("\(file): \(error.message)")
      }
    } else if let preset {
      d = StudyPresets.named(preset)!
    } else {
      d = StudyDeclaration(dataset: dataset!, depths: [])
    }
    func list<T>(_ option: String, _ text: String?, _ parse: (String) throws(ListSyntax.Problem) -> [T]) throws -> [T]? {
      guard let text else { return nil }
      do { return try parse(text) } catch { throw ValidationError("--\(option): \(error.message)") }
    }
    if let dataset { d.dataset = dataset }
    if let v = try list("depths", depths, ListSyntax.integers) { d.depths = v }
    if let v = try list("widths", widths, ListSyntax.numbers) { d.widths = v }
    if let v = try list("fractions", fractions, ListSyntax.numbers) { d.fractions = v }
    if let v = try list("seeds", seeds, ListSyntax.unsigned) { d.seeds = v }
    if let v = try list("plain-widths", plainWidths, ListSyntax.numbers) { d.plainWidths = v }
    if let v = try list("snapshot-epochs", snapshotEpochs, ListSyntax.integers) { d.snapshotEpochs = v }
    if let epochs { d.epochs = epochs }
    if let batchSize { d.batchSize = batchSize }
    if let lr { d.lr = lr }
    if let weightDecay { d.weightDecay = weightDecay }
    if let warmupEpochs { d.warmupEpochs = warmupEpochs }
    if noAugment { d.augment = false }
    if stratified { d.stratified = true }
    if let testExamples { d.testExamples = testExamples }
    if let heatmapExamples { d.heatmapExamples = heatmapExamples }
    if let analyses {
      d.analyses = []
      for item in analyses.split(separator: ",").map(String.init) {
        guard let kind = StudyDeclaration.AnalysisKind(rawValue: item) else {
          let known = StudyDeclaration.AnalysisKind.allCases.map(\.rawValue).joined(separator: ", ")
          throw ValidationError("--analyses: '\(item)' is not one of \(known)")
        }
        d.analyses.append(kind)
      }
    }
    do {
      try d.validate()
    } catch {
      throw ValidationError("the declaration's \(error.field): \(error.message)")
    }
    return d
  }

  func run() throws {
    let d = try declaration()
    try global.withDaemon { client in
      let response = try client.request(.studyCreate, StudyCreateRequest(study: name.study, declaration: d,
                                                                          executor: executor.request))
      if global.json && !watch { return try JSONOutput.print(response.jsonOutput()) }
      let status = try response.decode(StudyStatusResponse.self)
      if !global.json {
        printError("study \(status.study): \(status.models.count) models; follow it with: blockscope study status \(status.study) --watch")
      }
      if watch { try StudyStatusCommand.follow(client: client, study: name.study, global: global) }
      else { print(StudyStatusCommand.render(status)) }
    }
  }
}

struct StudyStatusCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "status",
    abstract: "A study's models (state, epoch, accuracy, analyses), its progress and ETA.",
    discussion: "Exit status with --watch: 0 finished, 1 incomplete (some model or analysis failed), 2 cancelled.")

  @OptionGroup var global: GlobalOptions
  @OptionGroup var name: StudyArgument
  @Flag(help: "Redraw every few seconds until the study ends.") var watch = false
  @Option(help: "Seconds between redraws with --watch.") var interval: Double = 3

  func run() throws {
    try global.withDaemon { client in
      if watch { return try Self.follow(client: client, study: name.study, global: global, interval: interval) }
      let response = try client.request(.studyStatus, StudyRequest(study: name.study))
      if global.json { return try JSONOutput.print(response.jsonOutput()) }
      print(Self.render(try response.decode(StudyStatusResponse.self)))
    }
  }

  /// Polls STUDY_STATUS until the study is no longer running; the exit status says how it
  /// ended.
  static func follow(client: DaemonClient, study: String, global: GlobalOptions, interval: Double = 3) throws {
    let terminal = isatty(STDOUT_FILENO) == 1 && !global.json
    var last: StudyStatusResponse?
    var lastPlain = -Double.infinity
    while true {
      let response = try client.request(.studyStatus, StudyRequest(study: study))
      let status = try response.decode(StudyStatusResponse.self)
      last = status
      if status.state != .running { break }
      let now = Date().timeIntervalSinceReferenceDate
      if terminal {
        FileHandle.standardOutput.write(Data(("\u{1B}[H\u{1B}[2J" + render(status) + "\n").utf8))
      } else if !global.json && now - lastPlain >= 30 {
        FileHandle.standardOutput.write(Data((headline(status) + "\n").utf8))
        lastPlain = now
      }
      Thread.sleep(forTimeInterval: max(0.2, interval))
    }
    guard let status = last else { return }
    if global.json {
      try JSONOutput.print(try JSONOutput.object(status))
    } else {
      print(render(status))
    }
    switch status.state {
    case .finished: return
    case .cancelled: throw ExitStatus.jobNotFinished
    default: throw ExitStatus.failure
    }
  }

  /// `study demo: running, 3/8 models done, analyses 12/40 [######----] 38%, ETA 9m12s`.
  static func headline(_ s: StudyStatusResponse) -> String {
    let done = s.models.filter { $0.state == .done }.count
    let width = 24
    let filled = Int((s.progress * Double(width)).rounded())
    let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
    var text = "study \(s.study) (\(s.dataset)\(s.executor == .slurm ? ", on slurm" : "")): \(s.state.rawValue), \(done)/\(s.models.count) models done, "
      + "analyses \(s.analysesDone)/\(s.analysesTotal) [\(bar)] \(Int((100 * s.progress).rounded()))%"
    if let eta = s.etaSeconds, s.state == .running { text += ", ETA \(Format.duration(eta))" }
    if let a = s.analysing { text += "\n  analysing \(a)" }
    return text
  }

  static func render(_ s: StudyStatusResponse) -> String {
    var table = TextTable(["model", "depth", "width", "fraction", "seed", "state", "epoch", "test acc", "analyses", "note"],
                          rightAligned: [1, 2, 3, 4, 6, 7, 8])
    for m in s.models {
      var note = m.reused ? "reused" : ""
      if m.nearChance { note += (note.isEmpty ? "" : "; ") + "NEAR CHANCE" }
      if let t = m.slurm {
        note += (note.isEmpty ? "" : "; ") + "slurm \(t.arrayJob)_\(t.task)"
          + (m.error == nil ? " \(t.state)" + (t.reason.map { " (\($0))" } ?? "") : "")
      }
      if let e = m.error { note += (note.isEmpty ? "" : "; ") + e }
      table.add([m.model, "\(m.depth)\(m.plain ? " plain" : "")", shortNumber(m.width), shortNumber(m.fraction),
                 "\(m.seed)", m.state.rawValue, "\(m.epoch)/\(m.epochs)", Format.percent(m.testAccuracy),
                 "\(m.analysesDone)/\(m.analysesTotal)", note])
    }
    var text = headline(s) + "\n" + table.render()
    for m in s.models {
      guard let t = m.slurm, let tail = t.logTail, m.state == .failed || m.state == .cancelled else { continue }
      text += "\n\(m.model): task \(t.arrayJob)_\(t.task) \(t.state); the end of its log:\n"
        + tail.split(separator: "\n", omittingEmptySubsequences: false).map { "  | " + $0 }.joined(separator: "\n")
    }
    if !s.errors.isEmpty {
      text += "\nerrors (retried by 'blockscope study resume \(s.study)'):"
      for e in s.errors { text += "\n  \(e.key): \(e.message)" }
    }
    return text
  }
}

struct StudyListCommand: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "list", abstract: "Every declared study.")
  @OptionGroup var global: GlobalOptions

  func run() throws {
    try global.withDaemon { client in
      let response = try client.request(.studyList, EmptyDoc())
      if global.json { return try JSONOutput.print(response.jsonOutput()) }
      let list = try response.decode(StudyListResponse.self).studies
      if list.isEmpty {
        print("no studies")
        return
      }
      var table = TextTable(["study", "dataset", "state", "models done", "analyses", "created"], rightAligned: [3, 4])
      for s in list {
        table.add([s.study, s.dataset, s.state.rawValue, "\(s.modelsDone)/\(s.models)",
                   "\(s.analysesDone)/\(s.analysesTotal)", s.created])
      }
      print(table.render())
    }
  }
}

/// STUDY_CANCEL and STUDY_RESUME print the study's status after the change.
struct StudyCancelCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "cancel",
    abstract: "Stop a study: its training jobs (unless another study needs them) and its analyses; finished work stays.")
  @OptionGroup var global: GlobalOptions
  @OptionGroup var name: StudyArgument

  func run() throws {
    try global.withDaemon { client in
      let response = try client.request(.studyCancel, StudyRequest(study: name.study))
      if global.json { return try JSONOutput.print(response.jsonOutput()) }
      print(StudyStatusCommand.render(try response.decode(StudyStatusResponse.self)))
    }
  }
}

struct StudyResumeCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "resume",
    abstract: "Continue a cancelled or incomplete study: cancelled jobs from their checkpoints, failed ones and failed analyses again.")
  @OptionGroup var global: GlobalOptions
  @OptionGroup var name: StudyArgument
  @Flag(help: "Follow the study's progress until it ends.") var watch = false

  func run() throws {
    try global.withDaemon { client in
      let response = try client.request(.studyResume, StudyRequest(study: name.study))
      if watch { return try StudyStatusCommand.follow(client: client, study: name.study, global: global) }
      if global.json { return try JSONOutput.print(response.jsonOutput()) }
      print(StudyStatusCommand.render(try response.decode(StudyStatusResponse.self)))
    }
  }
}

struct StudyDeleteCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "delete",
    abstract: "Delete a study, its results, and its models that no other study uses.")
  @OptionGroup var global: GlobalOptions
  @OptionGroup var name: StudyArgument
  @Flag(name: .customLong("keep-models"), help: "Keep every model (delete only the study and its results).") var keepModels = false

  func run() throws {
    try global.withDaemon { client in
      let response = try client.request(.studyDelete, StudyDeleteRequest(study: name.study, keepModels: keepModels))
      if global.json { return try JSONOutput.print(response.jsonOutput()) }
      let r = try response.decode(StudyDeleteResponse.self)
      print("study \(r.study) deleted; \(r.modelsDeleted.count) models deleted (\(Format.bytes(r.bytesFreed))), "
            + "\(r.modelsKept.count) kept" + (r.modelsKept.isEmpty ? "" : ": " + r.modelsKept.joined(separator: ", ")))
    }
  }
}
