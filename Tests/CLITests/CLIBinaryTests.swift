import Foundation
import ToolTestSupport
import XCTest

/// Runs the built `blockscope` binary (it sits next to the test bundle in the build products
/// directory) and checks its help, usage errors and the no-daemon path.
final class CLIBinaryTests: XCTestCase {
  typealias Result = BuiltTool.Result
  static let tool = BuiltTool("blockscope", besides: CLIBinaryTests.self)
  static var binary: URL { tool.url }

  static func run(_ args: [String], env: [String: String] = [:]) throws -> Result {
    try tool.run(args, env: env)
  }

  override func setUpWithError() throws {
    try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: Self.binary.path),
                      "blockscope not built at \(Self.binary.path)")
  }

  func testHelpListsEverySubcommand() throws {
    let r = try Self.run(["--help"])
    XCTAssertEqual(r.status, 0, r.stderr)
    for command in ["status", "datasets", "data", "train", "jobs", "watch", "cancel", "resume", "models", "describe",
                    "delete", "heatmap", "pc", "probe", "delete-blocks", "compare", "cka", "export", "shutdown"] {
      XCTAssertTrue(r.stdout.contains("  \(command) "), "\(command) missing from:\n\(r.stdout)")
    }
    let heatmap = try Self.run(["heatmap", "--help"])
    XCTAssertEqual(heatmap.status, 0)
    for option in ["--other", "--layers", "--other-layers", "--estimator", "--remove-pc1", "--examples",
                   "--split", "--batch-size", "--passes", "--seed", "--bootstrap", "--out", "--socket",
                   "--json", "--no-start", "--store"] {
      XCTAssertTrue(heatmap.stdout.contains(option), "\(option) missing from:\n\(heatmap.stdout)")
    }
  }

  func testValidationFailuresExit64() throws {
    // ArgumentParser exits with EX_USAGE (64) for errors thrown by validate().
    let depth = try Self.run(["train", "--depth", "21", "--no-start", "--socket", "/tmp/unused.sock"])
    XCTAssertEqual(depth.status, 64, depth.stderr)
    XCTAssertTrue(depth.stderr.contains("6n+2"), depth.stderr)
    let export = try Self.run(["export", "m", "pool", "--out", "x.npy"])
    XCTAssertEqual(export.status, 64, export.stderr)
    XCTAssertTrue(export.stderr.contains("--count N or --ids"), export.stderr)
    let group = try Self.run(["compare", "--group", "a=m1"])
    XCTAssertEqual(group.status, 64, group.stderr)
    XCTAssertTrue(group.stderr.contains("at least 2 models"), group.stderr)
    let name = try Self.run(["describe", ".hidden"])
    XCTAssertEqual(name.status, 64, name.stderr)
    let estimator = try Self.run(["heatmap", "m", "--estimator", "cosine"])
    XCTAssertEqual(estimator.status, 64, estimator.stderr)
  }

  func testNoDaemonWithNoStartExits3AndSaysHowToStartOne() throws {
    let socket = "/tmp/nonexistent-\(getpid()).sock"
    let r = try Self.run(["status", "--no-start", "--socket", socket])
    XCTAssertEqual(r.status, 3, r.stderr)
    XCTAssertTrue(r.stderr.contains("no daemon at \(socket); start it with: blockscoped --socket \(socket) --store DIR"),
                  r.stderr)
    XCTAssertEqual(r.stdout, "")
    let store = try Self.run(["models", "--no-start", "--socket", socket, "--store", "/data/bs"])
    XCTAssertEqual(store.status, 3)
    XCTAssertTrue(store.stderr.contains("--store /data/bs"), store.stderr)
    // shutdown never starts a daemon.
    let shutdown = try Self.run(["shutdown", "--socket", socket])
    XCTAssertEqual(shutdown.status, 3, shutdown.stderr)
  }

  func testUnreadableNpyInputFailsBeforeAnyConnection() throws {
    let directory = NSTemporaryDirectory() + "cli-bin-\(getpid())"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let bad = directory + "/bad.npy"
    try Data("not an array".utf8).write(to: URL(fileURLWithPath: bad))
    let r = try Self.run(["cka", bad, bad, "--no-start", "--socket", directory + "/none.sock"])
    XCTAssertEqual(r.status, 1, r.stderr)
    XCTAssertTrue(r.stderr.contains("bad.npy: not a .npy file"), r.stderr)
    let missing = try Self.run(["cka", directory + "/missing.npy", bad, "--no-start", "--socket", directory + "/none.sock"])
    XCTAssertEqual(missing.status, 1)
    XCTAssertTrue(missing.stderr.contains("open(\(directory)/missing.npy): No such file or directory"), missing.stderr)
  }
}
