import ArgumentParser
import Engine
import Foundation

/// What a checkpoint holds, without its dataset: for scripts that run training outside the
/// daemon (a Slurm job array writing into a shared store) and must know how far each model got
/// and that its file is whole. Each checkpoint is loaded as `train --resume` loads it
/// (checksum, header, every tensor restored into the network its recipe describes, momentum
/// included), so a file that passes here can be resumed and analysed.
struct InspectCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "inspect",
    abstract: "Load checkpoints and print their model, recipe and epochs (no dataset needed).")

  @Argument(help: "Checkpoints written by `train`.") var checkpoints: [String]
  @Flag(help: "One JSON object per checkpoint and line (keys: checkpoint, model, dataset, fraction, seed, epochs_completed, epochs, test_accuracy).")
  var json = false

  struct Summary: Encodable {
    var checkpoint: String
    var model: String
    var dataset: String
    var fraction: Double
    var seed: UInt64
    var epochs_completed: Int
    var epochs: Int
    var test_accuracy: Double?
  }

  func validate() throws {
    guard !checkpoints.isEmpty else { throw ValidationError("name at least one checkpoint") }
  }

  func run() throws {
    var failed = false
    for path in checkpoints {
      do {
        let ckpt = try Checkpoint.load(from: path)
        let net = try ModelState.model(from: ckpt, source: path)
        try ModelState.restore(ckpt, into: net, optimizer: true, source: path)
        let s = Summary(checkpoint: path, model: ckpt.model.name, dataset: ckpt.data.dataset,
                        fraction: ckpt.data.fraction, seed: ckpt.training.seed,
                        epochs_completed: ckpt.epochsCompleted, epochs: ckpt.training.epochs,
                        test_accuracy: ckpt.history.last?.testAccuracy)
        if json {
          print(jsonLine(s))
        } else {
          let accuracy = s.test_accuracy.map { String(format: ", test accuracy %.2f%%", 100 * $0) } ?? ""
          print("\(path): \(s.model) on \(s.dataset) fraction \(s.fraction) seed \(s.seed), "
                + "epoch \(s.epochs_completed) of \(s.epochs)\(accuracy)")
        }
      } catch {
        // Go on with the others: one broken file in a store says nothing about the rest.
        printError("error: \(path): \(error)")
        failed = true
      }
    }
    if failed { throw ExitCode.failure }
  }
}
