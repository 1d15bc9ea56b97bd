import Foundation
import XCTest
import DaemonTestSupport
import Wire

/// The CLI against the real daemon: both built binaries (next to the test bundle), a
/// temporary socket and store. The daemon is started by the CLI itself (auto-start) and
/// stopped with `blockscope shutdown`.
final class CLIEndToEndTests: XCTestCase {
  struct Run {
    var status: Int32
    var stdout: String
    var stderr: String

    /// stdout as one JSON object.
    func json(file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
      let object = try JSONSerialization.jsonObject(with: Data(stdout.utf8))
      return try XCTUnwrap(object as? [String: Any], "not a JSON object: \(stdout)", file: file, line: line)
    }
  }

  static func executable(_ name: String) -> URL {
    let candidates = [
      Bundle(for: CLIEndToEndTests.self).bundleURL.deletingLastPathComponent(),
      URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
    ].map { $0.appendingPathComponent(name) }
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[0]
  }

  var directory = ""
  var socket = ""
  var store = ""
  /// The daemon's pid once known, to stop it if a test fails before `shutdown`.
  var daemonPID: Int32?
  var runs = 0

  override func setUpWithError() throws {
    for name in ["blockscope", "blockscoped"] {
      try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: Self.executable(name).path),
                        "\(name) not built at \(Self.executable(name).path)")
    }
    directory = "/tmp/bs-cli-e2e-\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    socket = directory + "/d.sock"
    store = directory + "/store"
  }

  override func tearDownWithError() throws {
    if FileManager.default.fileExists(atPath: socket) {
      _ = try? cli(["shutdown", "--no-start"])
      if let daemonPID, waitUntilGone(daemonPID, seconds: 10) == false { kill(daemonPID, SIGKILL) }
    }
    try? FileManager.default.removeItem(atPath: directory)
  }

  /// Runs `blockscope ARGS --socket S --store D` (output files under the temporary directory).
  func cli(_ arguments: [String]) throws -> Run {
    let process = Process()
    process.executableURL = Self.executable("blockscope")
    process.arguments = arguments + ["--socket", socket, "--store", store]
    process.currentDirectoryURL = URL(fileURLWithPath: directory)
    // stdout through a pipe, stderr into a file: neither can fill up and block the other.
    runs += 1
    let errPath = directory + "/stderr-\(runs).txt"
    _ = FileManager.default.createFile(atPath: errPath, contents: nil)
    let errHandle = try XCTUnwrap(FileHandle(forWritingAtPath: errPath))
    let out = Pipe()
    process.standardOutput = out
    process.standardError = errHandle
    try process.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    try errHandle.close()
    let errData = try Data(contentsOf: URL(fileURLWithPath: errPath))
    return Run(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
               stderr: String(decoding: errData, as: UTF8.self))
  }

  func waitUntilGone(_ pid: Int32, seconds: Double) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
      if kill(pid, 0) != 0 && errno == ESRCH { return true }
      usleep(50_000)
    }
    return false
  }

  func testStatusTrainModelsHeatmapCKAShutdown() throws {
    // status starts the daemon (nothing listens yet).
    let status = try cli(["status", "--json"])
    XCTAssertEqual(status.status, 0, status.stderr)
    let statusDoc = try status.json()
    daemonPID = (statusDoc["pid"] as? Int).map(Int32.init)
    XCTAssertNotNil(daemonPID)
    XCTAssertEqual(statusDoc["store"] as? String, store)
    XCTAssertTrue(FileManager.default.fileExists(atPath: socket))
    // And the human form of the same.
    let human = try cli(["status", "--no-start"])
    XCTAssertEqual(human.status, 0, human.stderr)
    XCTAssertTrue(human.stdout.contains("store:"), human.stdout)

    // A tiny model, watched until it ends.
    let train = try cli(["train", "--dataset", "synthetic", "--depth", "8", "--width", "0.5", "--epochs", "2",
                         "--model", "e2e", "--json"])
    XCTAssertEqual(train.status, 0, train.stderr)
    let job = try train.json()
    XCTAssertEqual(job["state"] as? String, "finished", train.stdout)
    XCTAssertEqual(job["model"] as? String, "e2e")
    XCTAssertEqual(job["epoch"] as? Int, 2)
    XCTAssertFalse(train.stderr.contains("\r"), "no progress bars with --json: \(train.stderr)")

    let models = try cli(["models", "--json"])
    XCTAssertEqual(models.status, 0, models.stderr)
    let entries = try XCTUnwrap(try models.json()["models"] as? [[String: Any]])
    let entry = try XCTUnwrap(entries.first { $0["model"] as? String == "e2e" }, models.stdout)
    XCTAssertEqual(entry["state"] as? String, "ready")
    XCTAssertEqual(entry["depth"] as? Int, 8)
    let table = try cli(["models"])
    XCTAssertTrue(table.stdout.contains("e2e"), table.stdout)

    // The heatmap files.
    let out = directory + "/heat"
    let heatmap = try cli(["heatmap", "e2e", "--examples", "500", "--batch-size", "100", "--passes", "2",
                           "--out", out])
    XCTAssertEqual(heatmap.status, 0, heatmap.stderr)
    XCTAssertTrue(heatmap.stdout.contains("block structure:"), heatmap.stdout)
    for name in ["heatmap.png", "heatmap.npy", "heatmap.csv", "heatmap.json"] {
      XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + name), name)
      XCTAssertTrue(heatmap.stdout.contains(out + "/" + name), heatmap.stdout)
    }
    let meta = try XCTUnwrap(try JSONSerialization.jsonObject(
      with: Data(contentsOf: URL(fileURLWithPath: out + "/heatmap.json"))) as? [String: Any])
    let rowNames = try XCTUnwrap(meta["row_names"] as? [String])
    let columnNames = try XCTUnwrap(meta["column_names"] as? [String])
    XCTAssertGreaterThan(rowNames.count, 10)
    XCTAssertEqual(rowNames, columnNames)
    XCTAssertNotNil(meta["provenance"] as? [String: Any])
    XCTAssertNotNil(meta["block_structure"] as? [String: Any])
    XCTAssertNotNil(meta["request"] as? [String: Any])

    let npy = try CLITestNpy.read(out + "/heatmap.npy")
    XCTAssertEqual(npy.descr, "<f8")
    XCTAssertEqual(npy.shape, [rowNames.count, columnNames.count])
    // The diagonal of a within-model heatmap is 1 where defined.
    for i in 0..<rowNames.count {
      let value = npy.doubles[i * columnNames.count + i]
      if !value.isNaN { XCTAssertEqual(value, 1, accuracy: 1e-6, rowNames[i]) }
    }

    let csv = try String(contentsOfFile: out + "/heatmap.csv", encoding: .utf8)
    let lines = csv.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.isEmpty }
    XCTAssertEqual(lines.count, rowNames.count + 1)
    XCTAssertEqual(String(lines[0]), "," + columnNames.joined(separator: ","))
    XCTAssertTrue(lines[1].hasPrefix(rowNames[0] + ","))

    let png = try [UInt8](Data(contentsOf: URL(fileURLWithPath: out + "/heatmap.png")))
    XCTAssertEqual(Array(png.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
    XCTAssertEqual(Array(png[12..<16]), Array("IHDR".utf8))
    let width = png[16..<20].reduce(0) { $0 << 8 | Int($1) }
    let height = png[20..<24].reduce(0) { $0 << 8 | Int($1) }
    XCTAssertGreaterThan(width, 2 * rowNames.count)
    XCTAssertGreaterThan(height, 2 * rowNames.count)
    XCTAssertEqual(png[24], 8)  // bit depth
    XCTAssertEqual(png[25], 2)  // RGB
    XCTAssertEqual(Array(png.suffix(8).prefix(4)), Array("IEND".utf8))

    // CKA of two client matrices: X and X again (linear CKA 1), X and a function of X.
    let n = 40
    var x: [Double] = []
    var y: [Float] = []
    var generator = SystemRandomNumberGenerator()
    for _ in 0..<n {
      let row = (0..<5).map { _ in Double.random(in: -1...1, using: &generator) }
      x += row
      y += [Float(row[0] * 2 + row[1]), Float(row[2] * row[3]), Float(-row[4])]
    }
    try CLITestNpy.write(f64: x, shape: [n, 5], to: directory + "/x.npy")
    try CLITestNpy.write(f32: y, shape: [n, 3], to: directory + "/y.npy")
    let same = try cli(["cka", directory + "/x.npy", directory + "/x.npy", "--json"])
    XCTAssertEqual(same.status, 0, same.stderr)
    let sameDoc = try same.json()
    XCTAssertEqual(sameDoc["n"] as? Int, n)
    XCTAssertEqual(try XCTUnwrap(sameDoc["linear"] as? Double), 1, accuracy: 1e-9)
    let cka = try cli(["cka", directory + "/x.npy", directory + "/y.npy", "--json"])
    XCTAssertEqual(cka.status, 0, cka.stderr)
    let linear = try XCTUnwrap(try cka.json()["linear"] as? Double)
    XCTAssertTrue(linear > 0 && linear < 1, "\(linear)")
    let ckaText = try cli(["cka", directory + "/x.npy", directory + "/y.npy"])
    XCTAssertTrue(ckaText.stdout.contains("linear"), ckaText.stdout)

    // export writes [n, c, h, w]; cka flattens every example in C order, so an export goes to
    // cka as it is and equals its explicit flattening.
    let exported = directory + "/act.npy"
    let export = try cli(["export", "e2e", "s1.b1.out", "--count", "64", "--out", exported])
    XCTAssertEqual(export.status, 0, export.stderr)
    let act = try CLITestNpy.read(exported)
    XCTAssertEqual(act.descr, "<f4")
    XCTAssertEqual(act.shape.count, 4, "\(act.shape)")
    let perExample = act.shape.dropFirst().reduce(1, *)
    try CLITestNpy.write(f64: act.doubles, shape: [act.shape[0], perExample], to: directory + "/flat.npy")
    let flat = try cli(["cka", exported, directory + "/flat.npy", "--json"])
    XCTAssertEqual(flat.status, 0, flat.stderr)
    XCTAssertEqual(try XCTUnwrap(try flat.json()["linear"] as? Double), 1, accuracy: 1e-9)
    XCTAssertEqual(try flat.json()["n"] as? Int, 64)

    // The same activations streamed back as a foreign model, then listed and re-asked from the
    // shell: a one-representation heatmap over two client batches.
    let client = try WireTestClient(path: socket, clientName: "e2e", defaultTimeout: 60)
    try client.hello()
    try client.send(.sessionOpen, id: 2, doc: SessionOpenRequest(
      model: "streamed", fingerprint: "e2e-export", representations: [ForeignRepresentation(name: "out", shape: Array(act.shape.dropFirst()))]))
    let opened = try client.final(of: 2).decodeDoc(SessionOpenResponse.self)
    for half in 0..<2 {
      let values = act.doubles[(half * 32 * perExample)..<((half + 1) * 32 * perExample)].map(Float.init)
      try client.send(WireTestClient.request(.sessionBatch, id: UInt64(3 + half),
                                             doc: SessionBatchRequest(session: opened.session, batch: "half\(half)"),
                                             tensors: [WireTensor(name: "out", floats: values, shape: [32] + act.shape.dropFirst())]))
      XCTAssertEqual(try client.final(of: UInt64(3 + half)).type, .sessionBatchOK)
    }
    let foreign = try cli(["foreign", "--batches"])
    XCTAssertEqual(foreign.status, 0, foreign.stderr)
    XCTAssertTrue(foreign.stdout.contains("streamed") && foreign.stdout.contains("e2e-export")
                  && foreign.stdout.contains("half1"), foreign.stdout)
    let again = try cli(["heatmap", "streamed", "--foreign", "--batch", "half0", "--batch", "half1",
                         "--estimator", "biased", "--json"])
    XCTAssertEqual(again.status, 0, again.stderr)
    let againDoc = try again.json()
    XCTAssertEqual(againDoc["row_names"] as? [String], ["out"])
    XCTAssertEqual(((againDoc["cka"] as? [[Any]])?.first?.first as? Double) ?? 0, 1, accuracy: 1e-9, again.stdout)

    // A request error: exit 1 with the daemon's code and name.
    let missing = try cli(["describe", "no-such-model"])
    XCTAssertEqual(missing.status, 1)
    XCTAssertTrue(missing.stderr.contains("NOT_FOUND (102)"), missing.stderr)

    // Shutdown, then nothing answers.
    let shutdown = try cli(["shutdown", "--json"])
    XCTAssertEqual(shutdown.status, 0, shutdown.stderr)
    XCTAssertEqual(try shutdown.json()["jobs_checkpointed"] as? Int, 0)
    if let daemonPID { XCTAssertTrue(waitUntilGone(daemonPID, seconds: 20), "the daemon did not exit") }
    let after = try cli(["status", "--no-start"])
    XCTAssertEqual(after.status, 3, after.stderr)
    XCTAssertTrue(after.stderr.contains("start it with: blockscoped --socket \(socket) --store \(store)"), after.stderr)
  }
}

/// A minimal .npy writer and reader for the test's own files (format 1.0, C order).
private enum CLITestNpy {
  struct Matrix {
    var descr: String
    var shape: [Int]
    var doubles: [Double]
  }

  static func write(f64 values: [Double], shape: [Int], to path: String) throws {
    var data = header("<f8", shape)
    for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
    try data.write(to: URL(fileURLWithPath: path))
  }

  static func write(f32 values: [Float], shape: [Int], to path: String) throws {
    var data = header("<f4", shape)
    for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
    try data.write(to: URL(fileURLWithPath: path))
  }

  static func header(_ descr: String, _ shape: [Int]) -> Data {
    let tuple = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    var text = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(tuple), }"
    while (10 + text.utf8.count + 1) % 64 != 0 { text += " " }
    text += "\n"
    var data = Data([0x93] + "NUMPY".utf8 + [1, 0])
    data.append(UInt8(text.utf8.count & 0xFF))
    data.append(UInt8(text.utf8.count >> 8))
    data.append(contentsOf: text.utf8)
    return data
  }

  static func read(_ path: String) throws -> Matrix {
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    guard bytes.count > 10, bytes[0] == 0x93, bytes[6] == 1 else { throw CocoaError(.fileReadCorruptFile) }
    let length = Int(bytes[8]) | Int(bytes[9]) << 8
    let header = String(decoding: bytes[10..<(10 + length)], as: UTF8.self)
    let descr = header.components(separatedBy: "'descr': '")[1].components(separatedBy: "'")[0]
    let shapeText = header.components(separatedBy: "'shape': (")[1].components(separatedBy: ")")[0]
    let shape = shapeText.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    var doubles: [Double] = []
    var offset = 10 + length
    let width = descr == "<f4" ? 4 : 8
    while offset + width <= bytes.count {
      let bits = bytes[offset..<(offset + width)].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
      doubles.append(width == 4 ? Double(Float(bitPattern: UInt32(bits))) : Double(bitPattern: bits))
      offset += width
    }
    return Matrix(descr: descr, shape: shape, doubles: doubles)
  }
}
