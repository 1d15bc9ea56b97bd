import Engine
import Foundation
import Study
import ToolTestSupport
import Wire
import XCTest

/// What a study's Slurm array task runs: `blockscope-engine train` with the arguments the job
/// script gives it (`SlurmScript`), which must record the very recipe the daemon judges a
/// model by, keep the study's snapshots, and record the metadata it is given.
final class SlurmTaskTests: XCTestCase {
  func run(_ args: [String]) throws -> BuiltTool.Result { try EngineToolTests.run(args) }

  override func setUpWithError() throws {
    try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: EngineToolTests.binary.path),
                      "blockscope-engine not built")
  }

  private func temporaryDirectory() throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bs-slurm-task-\(getpid())-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
    return dir
  }

  func testTheScriptsArgumentsTrainTheRecipeItNames() throws {
    // Every key away from its default, so that a dropped or misspelt option shows.
    var recipe = TrainRequest(depth: 8, width: 0.25, plain: true, dataset: "synthetic", fraction: 0.04,
                              stratified: true, epochs: 2, batchSize: 40, lr: 0.07, weightDecay: 1e-4,
                              warmupEpochs: 0.5, augment: false, seed: 3, testExamples: 60,
                              threads: nil, snapshotEpochs: [1])
    recipe.model = RecipeName.name(of: recipe)
    let dir = try temporaryDirectory()
    let path = "\(dir)/\(recipe.model!).bsckpt"
    let r = try run(["train"] + SlurmScript.trainArguments(recipe, dataPath: nil)
                    + ["--checkpoint", path, "--threads", "1", "--metadata", "executor=slurm", "--metadata", "slurm_job=7_0"])
    XCTAssertEqual(r.status, 0, r.stderr)
    let c = try Checkpoint.load(from: path)
    XCTAssertEqual(c.model.depth, 8)
    XCTAssertEqual(c.model.widthMultiplier, 0.25)
    XCTAssertFalse(c.model.residual)
    XCTAssertEqual(c.data, DataSpec(dataset: "synthetic", fraction: 0.04, subset: .stratified, path: nil))
    XCTAssertEqual(c.training.epochs, 2)
    XCTAssertEqual(c.training.batchSize, 40)
    XCTAssertEqual(c.training.learningRate, 0.07)
    XCTAssertEqual(c.training.weightDecay, 1e-4)
    XCTAssertEqual(c.training.warmupEpochs, 0.5)
    XCTAssertFalse(c.training.augment)
    XCTAssertEqual(c.training.seed, 3)
    XCTAssertEqual(c.epochsCompleted, 2)
    XCTAssertEqual(c.metadata["test_examples"], "60")
    XCTAssertEqual(c.metadata["executor"], "slurm")
    XCTAssertEqual(c.metadata["slurm_job"], "7_0")
    let snapshot = try Checkpoint.load(from: "\(dir)/\(RecipeName.snapshot(recipe.model!, epoch: 1)).bsckpt")
    XCTAssertEqual(snapshot.epochsCompleted, 1)
    XCTAssertEqual(snapshot.metadata["test_examples"], "60")

    // A requeued task: `--resume` with the script's resume arguments finds nothing left to do
    // and leaves the finished checkpoint's weights as they were.
    let before = try Data(contentsOf: URL(fileURLWithPath: path))
    let again = try run(["train", "--resume", path] + SlurmScript.resumeArguments(recipe) + ["--threads", "1"])
    XCTAssertEqual(again.status, 0, again.stderr)
    XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before)
  }

  func testBadSnapshotAndMetadataOptionsAreUsageErrors() throws {
    let dir = try temporaryDirectory()
    for (args, words) in [
      (["--snapshot-epochs", "0", "--checkpoint", "\(dir)/a.bsckpt"], "--snapshot-epochs"),
      (["--snapshot-epochs", "1,x", "--checkpoint", "\(dir)/a.bsckpt"], "--snapshot-epochs"),
      (["--snapshot-epochs", "1"], "needs --checkpoint"),
      (["--metadata", "novalue"], "KEY=VALUE"),
      (["--metadata", "=v"], "KEY=VALUE"),
    ] {
      let r = try run(["train", "--dataset", "synthetic", "--epochs", "1"] + args)
      XCTAssertEqual(r.status, 64, "\(args): \(r.stderr)")
      XCTAssertTrue(r.stderr.contains(words), "\(args): \(r.stderr)")
    }
  }
}
