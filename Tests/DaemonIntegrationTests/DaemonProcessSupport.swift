import Foundation
import Glibc
import Wire
import XCTest

// Runs the built `blockscoped` (next to the test bundle in the build products directory) on a
// temporary socket and store, and talks to it with a client written here: plain sockets and
// Wire's codec.

struct DaemonTestFailure: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}

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
  init(directory: String? = nil, store: String = "store", arguments: [String] = [],
       launcher: [String] = [], waitForListening: Bool = true) throws {
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
    stderrPath = self.directory + "/stderr-\(UUID().uuidString).txt"
    guard FileManager.default.createFile(atPath: stderrPath, contents: nil),
          let stderrFile = FileHandle(forWritingAtPath: stderrPath)
    else { throw DaemonTestFailure("cannot create \(stderrPath)") }
    process.standardOutput = stdout
    process.standardError = stderrFile
    try process.run()
    try? stderrFile.close()
    if waitForListening {
      let line = try readStdoutLine(timeout: 30)
      guard line.hasPrefix("blockscoped listening on \(socketPath)") else {
        throw DaemonTestFailure("unexpected first line: \(line); stderr: \(standardError())")
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
        throw DaemonTestFailure("no line on stdout within \(timeout) s (got \(stdoutText.debugDescription))")
      }
      var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
      if poll(&entry, 1, Int32(remaining * 1000) + 1) <= 0 { continue }
      var buffer = [UInt8](repeating: 0, count: 4096)
      let count = read(fd, &buffer, buffer.count)
      if count <= 0 {
        throw DaemonTestFailure("stdout closed before a line (exit \(waitForExit(timeout: 5) ?? -1)); stderr: \(standardError())")
      }
      stdoutText += String(decoding: buffer[0..<count], as: UTF8.self)
    }
  }

  /// What the daemon wrote to stderr so far.
  func standardError() -> String {
    (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
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
    else { throw DaemonTestFailure("no VmRSS in /proc/\(pid)/status") }
    return kilobytes << 10
  }

  /// User plus system CPU time the daemon has used, in clock ticks.
  func cpuTicks() throws -> Int {
    let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
    guard let close = stat.lastIndex(of: ")") else { throw DaemonTestFailure("bad /proc/\(pid)/stat") }
    // After "pid (comm)": state is field 3, utime 14, stime 15.
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else {
      throw DaemonTestFailure("bad /proc/\(pid)/stat")
    }
    return user + system
  }

  func connect() throws -> DaemonWireClient { try DaemonWireClient(path: socketPath) }

  /// A connected client past HELLO.
  func client() throws -> DaemonWireClient {
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

func makeDaemonTempDirectory() throws -> String {
  var template = Array("/tmp/bs-daemon-XXXXXX".utf8CString)
  guard let made = mkdtemp(&template) else { throw DaemonTestFailure("mkdtemp: \(String(cString: strerror(errno)))") }
  return String(cString: made)
}

/// A client with plain blocking sockets: frames out with `Frame.encoded()`, frames in with a
/// FrameDecoder(role: .client).
final class DaemonWireClient {
  let fd: Int32
  private var decoder = FrameDecoder(role: .client)
  private(set) var isClosed = false

  init(path: String) throws {
    fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw DaemonTestFailure("socket: \(String(cString: strerror(errno)))") }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
      raw.copyBytes(from: bytes)
      raw[bytes.count] = 0
    }
    let length = socklen_t(MemoryLayout.offset(of: \sockaddr_un.sun_path)! + bytes.count + 1)
    let result = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) }
    }
    guard result == 0 else {
      let code = errno
      close(fd)
      throw DaemonTestFailure("connect(\(path)): \(String(cString: strerror(code)))")
    }
  }

  deinit { close(fd) }

  func send(_ bytes: [UInt8]) throws {
    var offset = 0
    while offset < bytes.count {
      let sent = bytes.withUnsafeBytes {
        Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL))
      }
      if sent < 0 {
        if errno == EINTR { continue }
        throw DaemonTestFailure("send: \(String(cString: strerror(errno)))")
      }
      offset += sent
    }
  }

  func send(_ type: MessageType, id: UInt64, doc: some Encodable = EmptyDoc(), flags: FrameFlags = []) throws {
    try send(Frame.message(type: type, requestID: id, doc: doc, flags: flags).encoded())
  }

  @discardableResult
  func hello() throws -> HelloResponse {
    try send(.hello, id: 1, doc: HelloRequest(client: "daemon-integration-tests"))
    guard let frame = try next(), frame.type == .helloOK else { throw DaemonTestFailure("no HELLO_OK") }
    return try frame.decodeDoc(HelloResponse.self)
  }

  /// The next frame; nil once the daemon has closed the connection.
  func next(timeout: Double = 20) throws -> Frame? {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
      if let frame = try decoder.next() { return frame }
      if isClosed { return nil }
      let remaining = deadline.timeIntervalSinceNow
      guard remaining > 0 else { throw DaemonTestFailure("no frame within \(timeout) s") }
      var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
      let ready = poll(&entry, 1, Int32(min(remaining * 1000 + 1, 60_000)))
      if ready <= 0 { continue }
      var buffer = [UInt8](repeating: 0, count: 64 << 10)
      let count = recv(fd, &buffer, buffer.count, 0)
      if count > 0 {
        decoder.feed(buffer[0..<count])
      } else if count == 0 || errno == ECONNRESET || errno == EPIPE {
        isClosed = true
      } else if errno != EINTR && errno != EAGAIN {
        throw DaemonTestFailure("recv: \(String(cString: strerror(errno)))")
      }
    }
  }

  func readUntilClosed(timeout: Double = 20) throws -> [Frame] {
    let deadline = Date().addingTimeInterval(timeout)
    var frames: [Frame] = []
    while let frame = try next(timeout: max(0.01, deadline.timeIntervalSinceNow)) { frames.append(frame) }
    return frames
  }

  /// The final frame of request `id`, skipping PROGRESS events.
  func final(of id: UInt64, timeout: Double = 20) throws -> Frame {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
      guard let frame = try next(timeout: max(0.01, deadline.timeIntervalSinceNow)) else {
        throw DaemonTestFailure("closed before the answer to \(id)")
      }
      if frame.type != .progress && frame.requestID == id { return frame }
    }
  }
}

func daemonFrameSummary(_ frame: Frame) -> String {
  if frame.type == .error, let doc = try? frame.decodeDoc(ErrorDoc.self) {
    return "ERROR \(doc.name) (id \(frame.requestID)): \(doc.message)"
  }
  return "\(frame.type.name) (id \(frame.requestID))"
}

func daemonErrorDoc(_ frame: Frame?) throws -> ErrorDoc {
  guard let frame else { throw DaemonTestFailure("expected an ERROR frame, the connection closed") }
  guard frame.type == .error else { throw DaemonTestFailure("expected an ERROR frame, got \(daemonFrameSummary(frame))") }
  return try frame.decodeDoc(ErrorDoc.self)
}

/// The bytes of a frame with any header fields, valid or not.
func daemonRawFrame(length: UInt32? = nil, magic: [UInt8] = [0x42, 0x53], version: UInt8 = 1, flags: UInt8 = 0,
                    type: UInt16, reserved: UInt16 = 0, id: UInt64, payload: [UInt8] = []) -> [UInt8] {
  var bytes: [UInt8] = []
  func append<T: FixedWidthInteger>(_ value: T) {
    withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
  }
  append(length ?? UInt32(16 + payload.count))
  bytes.append(contentsOf: magic)
  bytes.append(version)
  bytes.append(flags)
  append(type)
  append(reserved)
  append(id)
  bytes.append(contentsOf: payload)
  return bytes
}

func daemonLittleEndian(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
