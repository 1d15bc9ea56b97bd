import Foundation
import ToolTestSupport
import XCTest

/// Runs the built `blockscope-engine` binary and checks its output and exit codes.
final class EngineToolTests: XCTestCase {
  typealias Result = BuiltTool.Result
  static let tool = BuiltTool("blockscope-engine", besides: EngineToolTests.self)
  static var binary: URL { tool.url }

  func run(_ args: [String], env: [String: String] = [:]) throws -> Result {
    try Self.run(args, env: env)
  }

  static func run(_ args: [String], env: [String: String] = [:]) throws -> Result {
    try tool.run(args, env: env)
  }

  override func setUpWithError() throws {
    try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: Self.binary.path),
                      "blockscope-engine not built at \(Self.binary.path)")
  }

  func testBadDepthIsAUsageError() throws {
    let r = try run(["train", "--depth", "21"])
    XCTAssertEqual(r.status, 64, r.stderr)
    XCTAssertTrue(r.stderr.contains("6n+2"), r.stderr)
  }

  func testBadFractionIsAUsageError() throws {
    let r = try run(["train", "--fraction", "1.5"])
    XCTAssertEqual(r.status, 64, r.stderr)
    XCTAssertTrue(r.stderr.contains("--fraction"), r.stderr)
  }

  func testMissingDatasetDirectoryNamesIt() throws {
    let r = try run(["train", "--dataset", "cifar10", "--data-path", "/nonexistent/cifar-dir", "--epochs", "1"])
    XCTAssertEqual(r.status, 1, r.stderr)
    XCTAssertTrue(r.stderr.contains("/nonexistent/cifar-dir"), r.stderr)
  }

  func testTrainsOnSyntheticDataAndWritesACheckpoint() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bs-tool-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let ckpt = dir.appendingPathComponent("m.bsckpt").path
    let r = try run(["train", "--dataset", "synthetic", "--depth", "8", "--width", "0.25",
                     "--fraction", "0.04", "--epochs", "2", "--batch-size", "50",
                     "--checkpoint", ckpt])
    XCTAssertEqual(r.status, 0, r.stderr)
    XCTAssertTrue(r.stdout.contains("epoch   2/2"), r.stdout)
    XCTAssertTrue(r.stdout.contains("test accuracy:"), r.stdout)
    XCTAssertTrue(FileManager.default.fileExists(atPath: ckpt))
  }

  func testBenchJSONHasTheDocumentedKeys() throws {
    let r = try run(["bench-train", "--json", "--models", "resnet20-k1", "--steps", "1", "--warmup", "0"])
    XCTAssertEqual(r.status, 0, r.stderr)
    let lines = r.stdout.split(separator: "\n")
    XCTAssertEqual(lines.count, 2)
    for line in lines {
      let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
      for key in ["model", "mode", "batch", "images_per_s", "achieved_gflops", "sgemm_gflops", "fma_peak_gflops"] {
        XCTAssertNotNil(obj[key], "\(key) missing in \(line)")
      }
      XCTAssertEqual(obj["model"] as? String, "resnet20-k1")
    }
  }
}

extension EngineToolTests {
  func testResumeContinuesASavedRunAndRejectsACorruptFile() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bs-resume-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let ckpt = dir.appendingPathComponent("m.bsckpt").path
    let first = try run(["train", "--dataset", "synthetic", "--depth", "8", "--width", "0.25",
                         "--fraction", "0.02", "--epochs", "1", "--batch-size", "50", "--checkpoint", ckpt])
    XCTAssertEqual(first.status, 0, first.stderr)
    let second = try run(["train", "--resume", ckpt, "--epochs", "2"])
    XCTAssertEqual(second.status, 0, second.stderr)
    XCTAssertTrue(second.stdout.contains("resuming"), second.stdout)
    XCTAssertTrue(second.stdout.contains("epoch   2/2"), second.stdout)
    XCTAssertFalse(second.stdout.contains("epoch   1/2"), "epoch 1 must not run again: \(second.stdout)")

    var bytes = try Data(contentsOf: URL(fileURLWithPath: ckpt))
    bytes[bytes.count / 2] ^= 0xFF
    let bad = dir.appendingPathComponent("bad.bsckpt").path
    try bytes.write(to: URL(fileURLWithPath: bad))
    let third = try run(["train", "--resume", bad])
    XCTAssertEqual(third.status, 1)
    XCTAssertTrue(third.stderr.contains("bad.bsckpt") && third.stderr.contains("checksum"), third.stderr)
  }
}

extension EngineToolTests {
  /// `inspect` is how scripts outside the daemon (a Slurm array, tools/test-slurm) learn how far
  /// a checkpoint got and that it loads; it needs no dataset and goes on past a bad file.
  func testInspectReportsEpochsAndNamesABrokenFile() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bs-inspect-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let ckpt = dir.appendingPathComponent("m.bsckpt").path
    let trained = try run(["train", "--dataset", "synthetic", "--depth", "8", "--width", "0.25",
                           "--fraction", "0.02", "--epochs", "1", "--batch-size", "50",
                           "--seed", "3", "--checkpoint", ckpt])
    XCTAssertEqual(trained.status, 0, trained.stderr)

    let r = try run(["inspect", "--json", ckpt])
    XCTAssertEqual(r.status, 0, r.stderr)
    let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
    XCTAssertEqual(obj["checkpoint"] as? String, ckpt)
    XCTAssertEqual(obj["model"] as? String, "resnet8-k0.25")
    XCTAssertEqual(obj["dataset"] as? String, "synthetic")
    XCTAssertEqual(obj["seed"] as? Int, 3)
    XCTAssertEqual(obj["epochs_completed"] as? Int, 1)
    XCTAssertEqual(obj["epochs"] as? Int, 1)
    XCTAssertNotNil(obj["test_accuracy"] as? Double)

    let text = try run(["inspect", ckpt])
    XCTAssertTrue(text.stdout.contains("epoch 1 of 1"), text.stdout)

    var bytes = try Data(contentsOf: URL(fileURLWithPath: ckpt))
    bytes[bytes.count / 2] ^= 0xFF
    let bad = dir.appendingPathComponent("bad.bsckpt").path
    try bytes.write(to: URL(fileURLWithPath: bad))
    let both = try run(["inspect", bad, ckpt])
    XCTAssertEqual(both.status, 1)
    XCTAssertTrue(both.stderr.contains("bad.bsckpt") && both.stderr.contains("checksum"), both.stderr)
    XCTAssertTrue(both.stdout.contains("m.bsckpt"), "the good file after the bad one is still reported: \(both.stdout)")
  }
}
