import Foundation
import DaemonTestSupport
import Glibc
import Wire
import XCTest

// Runs the built `blockscoped` (next to the test bundle in the build products directory) on a
// temporary socket and store, and talks to it with DaemonTestSupport's `WireTestClient`: plain
// sockets and Wire's codec.

/// One blockscoped process.
final class DaemonProcess {
  /// The executable sits next to the test bundle.
  static var binary: URL {
    let candidates = [
      Bundle(for: DaemonProcess.self).bundleURL.deletingLastPathComponent(),
      Bundle.main.bundleURL,
      URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
    ].map { $0.appendingPathComponent("blockscoped") }
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[0]
  }

  static var isBuilt: Bool { FileManager.default.isExecutableFile(atPath: binary.path) }

  let directory: String
  let socketPath: String
  let storePath: String
  let process = Process()
  private let stdout = Pipe()
  /// stderr goes to a file: a pipe nobody reads could fill and block the daemon's logging.
  let stderrPath: String
  private var stdoutText = ""

  /// Starts `blockscoped --socket DIR/d.sock --store DIR/store` (plus `arguments`) and waits for
  /// its "listening" line.
  /// `launcher`: a program that runs the daemon (e.g. `/usr/bin/prlimit --nofile=N`).
  /// `environment`: added to this process's, in which XDG_CONFIG_HOME and XDG_DATA_HOME are
  /// DIR/xdg-config and DIR/xdg-data and BLOCKSCOPE_DATA is unset, so that the user's config
  /// file and datasets do not reach the daemon.
  init(directory: String? = nil, store: String = "store", arguments: [String] = [],
       launcher: [String] = [], waitForListening: Bool = true, environment: [String: String] = [:]) throws {
    self.directory = try directory ?? makeDaemonTempDirectory()
    socketPath = self.directory + "/d.sock"
    storePath = self.directory + "/" + store
    let daemonArguments = ["--socket", socketPath, "--store", storePath, "--cache-mb", "64"] + arguments
    if let program = launcher.first {
      process.executableURL = URL(fileURLWithPath: program)
      process.arguments = Array(launcher.dropFirst()) + [Self.binary.path] + daemonArguments
    } else {
      process.executableURL = Self.binary
      process.arguments = daemonArguments
    }
    var variables = ProcessInfo.processInfo.environment
    variables["XDG_CONFIG_HOME"] = self.directory + "/xdg-config"
    variables["XDG_DATA_HOME"] = self.directory + "/xdg-data"
    variables["BLOCKSCOPE_DATA"] = nil
    process.environment = variables.merging(environment) { $1 }
    stderrPath = self.directory + "/stderr-\(UUID().uuidString).txt"
    guard FileManager.default.createFile(atPath: stderrPath, contents: nil),
          let stderrFile = FileHandle(forWritingAtPath: stderrPath)
    else { throw WireTestFailure("cannot create \(stderrPath)") }
    process.standardOutput = stdout
    process.standardError = stderrFile
    try process.run()
    try? stderrFile.close()
    if waitForListening {
      let line = try readStdoutLine(timeout: 30)
      guard line.hasPrefix("blockscoped listening on \(socketPath)") else {
        throw WireTestFailure("unexpected first line: \(line); stderr: \(standardError())")
      }
    }
  }

  var pid: pid_t { process.processIdentifier }

  /// One line of stdout (without the newline).
  func readStdoutLine(timeout: Double) throws -> String {
    let fd = stdout.fileHandleForReading.fileDescriptor
    let deadline = Date().addingTimeInterval(timeout)
    while true {
      if let newline = stdoutText.firstIndex(of: "\n") {
        let line = String(stdoutText[..<newline])
        stdoutText.removeSubrange(...newline)
        return line
      }
      let remaining = deadline.timeIntervalSinceNow
      guard remaining > 0 else {
        throw WireTestFailure("no line on stdout within \(timeout) s (got \(stdoutText.debugDescription))")
      }
      var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
      if poll(&entry, 1, Int32(remaining * 1000) + 1) <= 0 { continue }
      var buffer = [UInt8](repeating: 0, count: 4096)
      let count = read(fd, &buffer, buffer.count)
      if count <= 0 {
        throw WireTestFailure("stdout closed before a line (exit \(waitForExit(timeout: 5) ?? -1)); stderr: \(standardError())")
      }
      stdoutText += String(decoding: buffer[0..<count], as: UTF8.self)
    }
  }

  /// What the daemon wrote to stderr so far.
  func standardError() -> String {
    (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
  }

  /// The first sanitizer report in what the daemon wrote to stderr, if any: the daemons of a
  /// sanitized build (tools/sanitize) report races and memory errors there, where no test
  /// would otherwise look.
  func sanitizerReport() -> String? {
    let text = standardError()
    for marker in ["WARNING: ThreadSanitizer", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"] {
      if let found = text.range(of: marker) { return String(text[found.lowerBound...].prefix(3000)) }
    }
    return nil
  }

  /// The exit status, or nil if the process has not exited within `timeout`.
  func waitForExit(timeout: Double) -> Int32? {
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning {
      if Date() > deadline { return nil }
      usleep(10_000)
    }
    return process.terminationStatus
  }

  func signal(_ number: Int32) { kill(process.processIdentifier, number) }

  /// The daemon's resident set size in bytes (from /proc).
  func residentBytes() throws -> Int {
    let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    else { throw WireTestFailure("no VmRSS in /proc/\(pid)/status") }
    return kilobytes << 10
  }

  /// User plus system CPU time the daemon has used, in clock ticks.
  func cpuTicks() throws -> Int {
    let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
    guard let close = stat.lastIndex(of: ")") else { throw WireTestFailure("bad /proc/\(pid)/stat") }
    // After "pid (comm)": state is field 3, utime 14, stime 15.
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else {
      throw WireTestFailure("bad /proc/\(pid)/stat")
    }
    return user + system
  }

  func connect() throws -> WireTestClient { try WireTestClient(path: socketPath) }

  /// A connected client past HELLO.
  func client() throws -> WireTestClient {
    let client = try connect()
    try client.hello()
    return client
  }

  /// Kills the process if still running and removes the directory.
  func cleanUp() {
    if process.isRunning {
      signal(SIGKILL)
      _ = waitForExit(timeout: 10)
    }
    try? FileManager.default.removeItem(atPath: directory)
  }
}

func makeDaemonTempDirectory() throws -> String { try makeTestTempDirectory("bs-daemon") }

/// How much longer the waits for a daemon's training and studies may take than in a plain
/// build: BLOCKSCOPE_TEST_TIME_SCALE (tools/sanitize sets it, since ThreadSanitizer slows the
/// daemon 5-15x), else 1. A wait that passes only when scaled is still a wait with an end.
let testTimeScale: Double = {
  guard let text = ProcessInfo.processInfo.environment["BLOCKSCOPE_TEST_TIME_SCALE"],
        let scale = Double(text), scale >= 1 else { return 1 }
  return scale
}()

/// `seconds` of a plain build, scaled by `testTimeScale`.
func scaledTimeout(_ seconds: Double) -> Double { seconds * testTimeScale }

extension WireTestClient {
  /// A client of the integration tests: HELLO as "daemon-integration-tests", 20 s timeouts.
  convenience init(path: String) throws {
    try self.init(path: path, clientName: "daemon-integration-tests", defaultTimeout: 20)
  }
}

/// Tests that start built daemons (cleaned up after each test) and make QUIET requests to them.
class DaemonProcessTestCase: XCTestCase {
  private var daemons: [DaemonProcess] = []
  private var nextID: UInt64 = 100

  override func setUpWithError() throws {
    try XCTSkipUnless(DaemonProcess.isBuilt, "blockscoped not built at \(DaemonProcess.binary.path)")
  }

  override func tearDown() {
    // Before any cleanUp: a restarted daemon shares its directory with the one before it.
    for daemon in daemons {
      if let report = daemon.sanitizerReport() {
        XCTFail("a daemon of this test wrote a sanitizer report to its stderr:\n\(report)")
      }
    }
    for daemon in daemons { daemon.cleanUp() }
    daemons = []
  }

  /// A daemon on a new temporary directory, or restarted on `directory` (same socket and store).
  func start(directory: String? = nil) throws -> DaemonProcess {
    let daemon = try DaemonProcess(directory: directory)
    daemons.append(daemon)
    return daemon
  }

  func newID() -> UInt64 {
    nextID += 1
    return nextID
  }

  /// One QUIET request; its response doc, or a failure naming the ERROR the daemon answered.
  func call<T: Decodable>(_ client: WireTestClient, _ type: MessageType, _ doc: some Encodable = EmptyDoc(),
                          as _: T.Type, timeout: Double = 60) throws -> T {
    let id = newID()
    try client.send(type, id: id, doc: doc, flags: .quiet)
    let frame = try client.final(of: id, timeout: scaledTimeout(timeout))
    guard frame.type == type.responseType else {
      throw WireTestFailure("\(type.name) answered \(frameSummary(frame))")
    }
    return try frame.decodeDoc(T.self)
  }
}
