import Engine
import Foundation
import Study
import Wire

/// A checkpoint that could not be written after an epoch (the training stops; the model file
/// keeps the previous epoch).
private struct CheckpointSaveFailure: Error {
  var epoch: Int
  var error: WireError
}

extension JobManager {
  /// Trains one job to its end, on the runner thread: from scratch, or from the model file when
  /// an earlier run of this job checkpointed epochs (the model file IS the checkpoint, as with
  /// `blockscope-engine train --checkpoint`). Each finished epoch is saved atomically, then the
  /// job record is updated.
  func train(_ job: TrainingJob) -> JobOutcome {
    let file = snapshot(job)
    let id = file.entry.job, recipe = file.recipe, model = file.entry.model
    let path = store.path(model)
    do {
      let dataset = try datasets.canonical(recipe.dataset, key: "dataset")
      var splits = try datasets.splits(dataset)
      splits.train = try DatasetCache.trainingSubset(splits.train, fraction: recipe.fraction,
                                                     stratified: recipe.stratified)
      if let n = recipe.testExamples, n < splits.test.count {
        splits.test = splits.test.selecting(Array(0..<n))
      }
      let spec = DataSpec(dataset: dataset, fraction: recipe.fraction,
                          subset: recipe.stratified ? .stratified : .first,
                          path: dataset == "synthetic" ? nil : datasets.path(of: dataset))

      // Resume from this job's own checkpoint, if it wrote one.
      var saved: Checkpoint?
      if FileManager.default.fileExists(atPath: path) {
        let checkpoint = try Checkpoint.load(from: path)
        guard checkpoint.metadata["job"] == String(id) else {
          return .failed("\(path) was not written by job \(id) "
                         + (checkpoint.metadata["job"].map { "(job \($0) wrote it)" } ?? "")
                         + "; it is left as it is")
        }
        saved = checkpoint
      } else if file.entry.epoch > 0 {
        return .failed("\(path) is gone: job \(id)'s \(file.entry.epoch) finished epochs cannot be resumed")
      }

      let config = saved?.model ?? ResNetConfig(
        depth: recipe.depth, widthMultiplier: recipe.width, residual: !recipe.plain,
        inputHeight: splits.train.height, inputWidth: splits.train.width,
        inputChannels: splits.train.channels, numClasses: splits.train.numClasses)
      let network = try ResNet(config: config, seed: recipe.seed)
      var training = saved?.training ?? TrainConfig(
        epochs: recipe.epochs, batchSize: recipe.batchSize, learningRate: recipe.lr,
        weightDecay: recipe.weightDecay, warmupEpochs: recipe.warmupEpochs,
        augment: recipe.augment, seed: recipe.seed)
      // The recipe is the saved one; only the number of epochs may grow (RESUME's `epochs`).
      training.epochs = max(file.entry.epochs, saved?.epochsCompleted ?? 0)
      if let saved { try ModelState.restore(saved, into: network, optimizer: true, source: path) }
      let context = KernelContext(threads: threads(for: recipe))
      let trainer = try Trainer(model: network, config: training, data: splits, context: context)
      if let saved { trainer.restoreHistory(saved.history) }
      if trainer.epochsCompleted >= training.epochs { return .finished }

      var metadata = saved?.metadata ?? [:]
      metadata["job"] = String(id)
      metadata["daemon"] = "blockscoped"
      if let n = recipe.testExamples { metadata["test_examples"] = String(n) }
      metadata["stratified"] = recipe.stratified ? "true" : "false"

      try trainer.run(progress: { p in
        self.report(job, p)
      }, shouldStop: {
        job.stop.current != nil
      }, onEpoch: { record in
        let checkpoint = ModelState.checkpoint(of: trainer, data: spec, metadata: metadata)
        do {
          // A snapshot first: a crash between the two saves reruns the epoch and rewrites it.
          if recipe.snapshotEpochs.contains(record.epoch) {
            try self.store.save(checkpoint, network: network, name: RecipeName.snapshot(model, epoch: record.epoch))
          }
          try self.store.save(checkpoint, network: network, name: model)
        } catch {
          throw CheckpointSaveFailure(epoch: record.epoch, error: wireError(error))
        }
        do {
          try self.epochFinished(job, epochs: trainer.epochsCompleted, record: record)
        } catch {
          throw CheckpointSaveFailure(epoch: record.epoch, error: wireError(error))
        }
        // Only now, with the epoch on disk: a client that saw "epoch N" may rely on it.
        self.reportEpoch(job, record, epochs: training.epochs)
      })
      network.releaseTrainingBuffers()
      return .finished
    } catch is TrainingCancelled {
      return job.stop.current == .shutdown ? .interrupted(nil) : .cancelled
    } catch let failure as CheckpointSaveFailure {
      let kept = failure.epoch - 1
      return .interrupted("\(failure.error.code.name): saving epoch \(failure.epoch) failed: "
                          + "\(failure.error.message); \(path) keeps epoch \(kept); RESUME continues from there")
    } catch let e as TrainingSetupError {
      return .failed(e.description)
    } catch {
      let e = wireError(error)
      return .failed("\(e.code.name): \(e.message)")
    }
  }

  /// Trainer progress as PROGRESS events: `step` (throttled per watcher), `evaluate`, `epoch`.
  private func report(_ job: TrainingJob, _ p: TrainingProgress) {
    func finite(_ values: [String: Double]) -> [String: Double] { values.filter { $0.value.isFinite } }
    switch p.phase {
    case .step:
      broadcast(job, ProgressEvent(
        phase: "step", done: p.step, total: p.stepsPerEpoch, job: job.id, epoch: p.epoch,
        epochs: p.epochs, metrics: finite(["loss": p.loss, "accuracy": p.accuracy,
                                           "images_per_second": p.imagesPerSecond,
                                           "lr": p.learningRate])), force: false)
    case .evaluating:
      broadcast(job, ProgressEvent(
        phase: "evaluate", done: 0, total: 1, job: job.id, epoch: p.epoch, epochs: p.epochs,
        metrics: finite(["loss": p.loss, "accuracy": p.accuracy])), force: true)
    case .epochEnd:
      break   // sent by reportEpoch once the epoch's checkpoint is saved
    }
  }

  /// The `epoch` event, after the epoch's checkpoint and job record are on disk.
  private func reportEpoch(_ job: TrainingJob, _ r: EpochRecord, epochs: Int) {
    let metrics = ["loss": r.trainLoss, "accuracy": r.trainAccuracy, "test_loss": r.testLoss,
                   "test_accuracy": r.testAccuracy, "images_per_second": r.imagesPerSecond,
                   "seconds": r.seconds, "lr": r.learningRate].filter { $0.value.isFinite }
    broadcast(job, ProgressEvent(
      phase: "epoch", done: r.epoch, total: epochs, job: job.id, epoch: r.epoch, epochs: epochs,
      metrics: metrics), force: true)
  }
}
