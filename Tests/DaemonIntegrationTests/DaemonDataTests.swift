import DaemonTestSupport
import Foundation
import Glibc
import Wire
import XCTest

/// Datasets and the built binaries: a malformed config file or BLOCKSCOPE_DATA stops
/// blockscoped at start-up naming the problem; DATA_UNAVAILABLE names the fix; `blockscope
/// data fetch` into the default directory is seen by the running daemon without a restart.
final class DaemonDataTests: XCTestCase {
  private var daemons: [DaemonProcess] = []

  static var cli: URL { DaemonProcess.binary.deletingLastPathComponent().appendingPathComponent("blockscope") }

  override func setUpWithError() throws {
    try XCTSkipUnless(DaemonProcess.isBuilt, "blockscoped not built at \(DaemonProcess.binary.path)")
  }

  override func tearDown() {
    for daemon in daemons { daemon.cleanUp() }
    daemons = []
  }

  private func start(waitForListening: Bool = true, environment: [String: String] = [:],
                     prepare: (String) throws -> Void = { _ in }) throws -> DaemonProcess {
    let directory = try makeDaemonTempDirectory()
    try prepare(directory)
    let daemon = try DaemonProcess(directory: directory, waitForListening: waitForListening, environment: environment)
    daemons.append(daemon)
    return daemon
  }

  func testAMalformedConfigFileOrVariableStopsTheDaemonNamingIt() throws {
    var configPath = ""
    let daemon = try start(waitForListening: false) { directory in
      configPath = directory + "/xdg-config/blockscope/config.json"
      try FileManager.default.createDirectory(atPath: directory + "/xdg-config/blockscope", withIntermediateDirectories: true)
      try Data(#"{"datasets": {"cifar10": 10}}"#.utf8).write(to: URL(fileURLWithPath: configPath))
    }
    XCTAssertEqual(daemon.waitForExit(timeout: 30), 1)
    XCTAssertEqual(daemon.standardError(),
                   "blockscoped: \(configPath): \"datasets\".\"cifar10\" must be a directory (a non-empty string)\n")
    XCTAssertFalse(FileManager.default.fileExists(atPath: daemon.socketPath))

    let variable = try start(waitForListening: false, environment: ["BLOCKSCOPE_DATA": "/data/cifar"])
    XCTAssertEqual(variable.waitForExit(timeout: 30), 1)
    XCTAssertTrue(variable.standardError().contains(#"blockscoped: BLOCKSCOPE_DATA: "/data/cifar" is not NAME=DIR"#),
                  variable.standardError())
  }

  func testDataUnavailableNamesTheFixAndAFetchIsSeenWithoutRestart() throws {
    try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: Self.cli.path), "blockscope not built")
    let daemon = try start()
    let root = daemon.directory + "/xdg-data/blockscope/datasets"
    let client = try daemon.client()
    try client.send(.train, id: 2, doc: TrainRequest(dataset: "cifar10", epochs: 1))
    let error = try expectErrorDoc(try client.final(of: 2))
    XCTAssertEqual(error.errorCode, .dataUnavailable)
    for fix in ["cifar10 is not configured: run `blockscope data fetch cifar10`",
                "in \(root)/cifar10", "BLOCKSCOPE_DATA=cifar10=DIR", "blockscoped --data cifar10=DIR",
                "\(daemon.directory)/xdg-config/blockscope/config.json"] {
      XCTAssertTrue(error.message.contains(fix), "\(fix) not in: \(error.message)")
    }

    // `blockscope data` shows the same and the download.
    let env = ["XDG_DATA_HOME": daemon.directory + "/xdg-data", "XDG_CONFIG_HOME": daemon.directory + "/xdg-config"]
    let listed = try run(Self.cli, ["data", "--socket", daemon.socketPath, "--no-start"], env: env)
    XCTAssertEqual(listed.status, 0, listed.stderr)
    XCTAssertTrue(listed.stdout.contains("\n" + error.message + "\n"), listed.stdout)
    XCTAssertTrue(listed.stdout.contains("get it: blockscope data fetch cifar10   # downloads "
                                         + "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"), listed.stdout)

    let listedJSON = try run(Self.cli, ["data", "--json", "--socket", daemon.socketPath, "--no-start"], env: env)
    XCTAssertEqual(listedJSON.status, 0, listedJSON.stderr)
    let entries = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(listedJSON.stdout.utf8)) as? [String: Any])?["datasets"]
                                  as? [[String: Any]], listedJSON.stdout)
    let entry = try XCTUnwrap(entries.first { $0["name"] as? String == "cifar10" })
    XCTAssertEqual(entry["reason"] as? String, error.message)
    let fetch = try XCTUnwrap(entry["fetch"] as? [String: Any], "\(entry)")
    XCTAssertEqual(fetch["command"] as? String, "blockscope data fetch cifar10")
    XCTAssertEqual(fetch["md5"] as? String, "c32a1d4ab5d03f1284b67883e8d87530")
    XCTAssertNil(entries.first { $0["name"] as? String == "synthetic" }?["fetch"])

    // Fetch into the default directory while the daemon runs: it finds the data on next use.
    let source = daemon.directory + "/src/cifar-10-batches-bin"
    try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
    for file in (1...5).map({ "data_batch_\($0).bin" }) + ["test_batch.bin"] {
      let record = [UInt8(3)] + [UInt8](repeating: 9, count: 3072)
      try Data(record + record).write(to: URL(fileURLWithPath: source + "/" + file))
    }
    let archive = daemon.directory + "/fake.tar.gz"
    XCTAssertEqual(try run(URL(fileURLWithPath: "/usr/bin/env"),
                           ["tar", "-czf", archive, "-C", daemon.directory + "/src", "cifar-10-batches-bin"]).status, 0)
    let md5 = String(try run(URL(fileURLWithPath: "/usr/bin/env"), ["md5sum", archive]).stdout.prefix(32))
    let fetched = try run(Self.cli, ["data", "fetch", "cifar10", "--from", archive, "--md5", md5,
                                     "--socket", daemon.socketPath], env: env)
    XCTAssertEqual(fetched.status, 0, fetched.stderr)
    XCTAssertEqual(fetched.stdout, "cifar10: 10 training and 2 test images in \(root)/cifar10 (MD5 \(md5))\n"
                   + "the running blockscoped finds it\n")
    try client.send(.datasets, id: 3)
    let datasets = try client.final(of: 3).decodeDoc(DatasetsResponse.self).datasets
    let cifar10 = try XCTUnwrap(datasets.first { $0.name == "cifar10" })
    XCTAssertEqual(cifar10.available, true, cifar10.reason ?? "")
    XCTAssertEqual(cifar10.trainCount, 10)
    XCTAssertEqual(cifar10.path, root + "/cifar10")
  }

  struct Run {
    var status: Int32
    var stdout: String
    var stderr: String
  }

  func run(_ executable: URL, _ arguments: [String], env: [String: String] = [:]) throws -> Run {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // stderr is small here (a message or two); stdout is read first, then stderr.
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return Run(status: process.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
               stderr: String(decoding: e, as: UTF8.self))
  }
}
