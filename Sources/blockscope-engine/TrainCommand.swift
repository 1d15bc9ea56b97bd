import ArgumentParser
import CKernels
import Engine
import Foundation
import Study

struct ModelOptions: ParsableArguments {
  @Option(help: "Depth 6n+2: 8, 14, 20, 26, 32, 38, 44, 56, 110, 164, ...")
  var depth = 20
  @Option(help: "Width multiplier k (stage channels 16k, 32k, 64k; fractional allowed).")
  var width = 1.0
  @Flag(help: "Plain network (no residual connections).")
  var plain = false

  func validate() throws {
    guard depth >= 8, (depth - 2) % 6 == 0 else {
      throw ValidationError("--depth \(depth) is not 6n+2 (8, 14, 20, ...)")
    }
    guard width > 0, width <= 64 else { throw ValidationError("--width must be in (0, 64]") }
  }
}

struct TrainCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "train", abstract: "Train a ResNet and print its test accuracy after each epoch.")

  @OptionGroup var model: ModelOptions
  @Option(help: "cifar10, cifar100, fashion-mnist or synthetic.")
  var dataset = "fashion-mnist"
  @Option(help: "Dataset directory (default for fashion-mnist: /usr/share/datasets/fashion-mnist).")
  var dataPath: String?
  @Option(help: "Fraction of the training set, in (0, 1].")
  var fraction = 1.0
  @Flag(help: "Stratified subset (equal share per class) instead of the first fraction.")
  var stratified = false
  @Option(help: "Epochs (default 30; with --resume, the saved run's, or more).") var epochs: Int?
  @Option(name: .customLong("batch-size")) var batchSize = 128
  @Option(name: .customLong("lr")) var learningRate = 0.05
  @Option(name: .customLong("weight-decay")) var weightDecay = 5e-4
  @Option(name: .customLong("warmup-epochs")) var warmupEpochs = 0.0
  @Flag(name: .customLong("no-augment")) var noAugment = false
  @Option var seed: UInt64 = 0
  @Option(help: "Threads (default: all cores).") var threads: Int?
  @Option(help: "Save a checkpoint here after every epoch.") var checkpoint: String?
  @Option(name: .customLong("test-examples"),
          help: "Evaluate each epoch on the first N test images only (faster; the recorded test accuracy is on those).")
  var testExamples: Int?
  @Option(help: "Continue the run saved in this checkpoint (its model, recipe and data; --epochs may extend it). Also the default --checkpoint.")
  var resume: String?
  @Option(name: .customLong("snapshot-epochs"),
          help: "Comma-separated epochs after which to also keep a snapshot, CHECKPOINT.eN.bsckpt beside the checkpoint (a study's snapshots).")
  var snapshotEpochs: String?
  @Option(help: "KEY=VALUE recorded in the checkpoint's metadata (repeatable; e.g. the Slurm job that trained it).")
  var metadata: [String] = []

  /// The parsed --snapshot-epochs.
  private var snapshots: Set<Int> {
    Set((snapshotEpochs ?? "").split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) })
  }

  func validate() throws {
    guard fraction > 0, fraction <= 1 else { throw ValidationError("--fraction must be in (0, 1]") }
    if let epochs, epochs < 1 { throw ValidationError("--epochs must be at least 1") }
    guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
    guard learningRate > 0 else { throw ValidationError("--lr must be positive") }
    if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    if let testExamples, testExamples < 1 { throw ValidationError("--test-examples must be at least 1") }
    if let snapshotEpochs {
      for part in snapshotEpochs.split(separator: ",", omittingEmptySubsequences: false) {
        guard let e = Int(part.trimmingCharacters(in: .whitespaces)), e >= 1 else {
          throw ValidationError("--snapshot-epochs: \"\(part)\" is not an epoch (1, 2, ...)")
        }
      }
      guard (checkpoint ?? resume) != nil else {
        throw ValidationError("--snapshot-epochs needs --checkpoint or --resume (snapshots are kept beside it)")
      }
    }
    for entry in metadata {
      guard let eq = entry.firstIndex(of: "="), eq != entry.startIndex else {
        throw ValidationError("--metadata \"\(entry)\" is not KEY=VALUE")
      }
    }
  }

  func run() throws {
    let context = KernelContext(threads: threads)
    if let warning = bs_isa_override_error() { printError(String(cString: warning)) }
    var saved: Checkpoint?
    if let resume {
      do { saved = try Checkpoint.load(from: resume) } catch {
        printError("error: \(error)")
        throw ExitCode.failure
      }
    }
    let spec = saved?.data ?? DataSpec(dataset: dataset, fraction: fraction,
                                       subset: stratified ? .stratified : .first, path: dataPath)
    var splits: DatasetSplits
    do { splits = try DatasetLoader.load(spec) } catch {
      printError("error: \(error)")
      throw ExitCode.failure
    }
    if let testExamples, testExamples < splits.test.count {
      splits.test = splits.test.selecting(Array(0..<testExamples))
    }
    let cfg = saved?.model ?? ResNetConfig(
      depth: model.depth, widthMultiplier: model.width, residual: !model.plain,
      inputHeight: splits.train.height, inputWidth: splits.train.width,
      inputChannels: splits.train.channels, numClasses: splits.train.numClasses)
    let net = try ResNet(config: cfg, seed: seed)
    var tc = TrainConfig(epochs: epochs ?? 30, batchSize: batchSize, learningRate: learningRate,
                         weightDecay: weightDecay, warmupEpochs: warmupEpochs,
                         augment: !noAugment, seed: seed)
    if let saved {
      // The recipe is the saved one; only the number of epochs may grow (the cosine schedule
      // then stretches, so extending a run is not the same as having asked for more epochs).
      tc = saved.training
      tc.epochs = max(saved.training.epochs, epochs ?? saved.training.epochs)
      try ModelState.restore(saved, into: net, optimizer: true, source: resume!)
    }
    let trainer = try Trainer(model: net, config: tc, data: splits, context: context)
    if let saved {
      trainer.restoreHistory(saved.history)
      print("resuming \(resume!) after epoch \(saved.epochsCompleted) of \(tc.epochs)")
    }
    let checkpoint = self.checkpoint ?? resume
    // What the daemon records too (its DESCRIBE recipe and a study's reuse check read
    // `test_examples`), kept from the saved run, then the user's entries.
    var metadata = saved?.metadata ?? [:]
    if let testExamples { metadata["test_examples"] = String(testExamples) }
    for entry in self.metadata {
      let eq = entry.firstIndex(of: "=")!
      metadata[String(entry[..<eq])] = String(entry[entry.index(after: eq)...])
    }
    let snapshots = self.snapshots
    print("\(cfg.name) on \(spec.dataset): \(splits.train.count) training / \(splits.test.count) test images, "
          + "\(tc.epochs) epochs, batch \(tc.batchSize), lr \(tc.learningRate), \(context.threads) threads, "
          + "kernels \(context.isaName)")
    let line = ProgressLine()
    let started = Date()
    try trainer.run(progress: { p in
      switch p.phase {
      case .step:
        line.update(String(format: "epoch %d/%d %@ %4d/%d  loss %.4f  acc %5.1f%%  %.0f img/s",
                           p.epoch, p.epochs, ProgressLine.bar(Double(p.step) / Double(p.stepsPerEpoch)),
                           p.step, p.stepsPerEpoch, p.loss, 100 * p.accuracy, p.imagesPerSecond))
      case .evaluating:
        line.update("epoch \(p.epoch)/\(p.epochs) evaluating on the test set...", force: true)
      case .epochEnd(let r):
        line.finish(String(format: "epoch %3d/%d  train loss %.4f acc %5.2f%%  test loss %.4f acc %5.2f%%  lr %.4f  %.1f s  %.0f img/s",
                           r.epoch, p.epochs, r.trainLoss, 100 * r.trainAccuracy, r.testLoss,
                           100 * r.testAccuracy, r.learningRate, r.seconds, r.imagesPerSecond))
      }
    }, onEpoch: { record in
      if let path = checkpoint {
        let saved = ModelState.checkpoint(of: trainer, data: spec, metadata: metadata)
        // The snapshot first, as the daemon does: a crash between the saves reruns the epoch.
        if snapshots.contains(record.epoch) { try saved.save(to: Self.snapshotPath(path, epoch: record.epoch)) }
        try saved.save(to: path)
      }
    })
    let final = trainer.history.last!
    print(String(format: "test accuracy: %.2f%% (%@, %d epochs, %.0f s)", 100 * final.testAccuracy,
                 cfg.name, tc.epochs, Date().timeIntervalSince(started)))
  }
}

extension TrainCommand {
  /// `DIR/NAME.eN.bsckpt` for `DIR/NAME.bsckpt`: the daemon's name for a snapshot of NAME.
  static func snapshotPath(_ checkpoint: String, epoch: Int) -> String {
    let suffix = ".bsckpt"
    let base = checkpoint.hasSuffix(suffix) ? String(checkpoint.dropLast(suffix.count)) : checkpoint
    let dir = (base as NSString).deletingLastPathComponent
    let name = RecipeName.snapshot((base as NSString).lastPathComponent, epoch: epoch)
    return (dir.isEmpty ? "" : dir + "/") + name + suffix
  }
}

func printError(_ s: String) {
  FileHandle.standardError.write(Data((s + "\n").utf8))
}
