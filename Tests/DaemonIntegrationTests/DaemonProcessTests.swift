import DaemonTestSupport
import Foundation
import Glibc
import Wire
import XCTest

/// The built blockscoped binary, end to end: framing errors, many clients, memory under hostile
/// length prefixes, the connection limit, stopping, the socket's lifecycle, --detach.
final class DaemonProcessTests: XCTestCase {
  private var daemons: [DaemonProcess] = []

  override func setUpWithError() throws {
    try XCTSkipUnless(DaemonProcess.isBuilt, "blockscoped not built at \(DaemonProcess.binary.path)")
  }

  override func tearDown() {
    for daemon in daemons { daemon.cleanUp() }
    daemons = []
  }

  private func start(directory: String? = nil, _ arguments: [String] = []) throws -> DaemonProcess {
    let daemon = try DaemonProcess(directory: directory, arguments: arguments)
    daemons.append(daemon)
    return daemon
  }

  private func assertServes(_ daemon: DaemonProcess, file: StaticString = #filePath, line: UInt = #line) throws {
    let client = try daemon.client()
    try client.send(.status, id: 77)
    let answer = try client.final(of: 77)
    XCTAssertEqual(answer.type, .statusOK, frameSummary(answer), file: file, line: line)
  }

  func testMalformedFramesAreAnsweredAndTheDaemonKeepsServing() throws {
    let daemon = try start()
    let statusPayload = Array(try Frame.message(type: .status, requestID: 5, doc: EmptyDoc()).encoded()[20...])
    let cases: [(String, [UInt8], ErrorCode)] = [
      ("length 0", littleEndian32(0), .frameTooShort),
      ("length 15", littleEndian32(15) + [UInt8](repeating: 0, count: 15), .frameTooShort),
      ("over the request limit", rawFrameBytes(length: UInt32((4 << 20) + 17), type: 0x0002, id: 5), .frameTooLarge),
      ("length 2^32-1", littleEndian32(UInt32.max), .frameTooLarge),
      ("unknown type", rawFrameBytes(type: 0x0777, id: 5, payload: statusPayload), .unknownType),
      ("version 2", rawFrameBytes(version: 2, type: 0x0002, id: 5, payload: statusPayload), .unsupportedVersion),
      ("bad magic", rawFrameBytes(magic: [0x42, 0x54], type: 0x0002, id: 5, payload: statusPayload), .badMagic),
    ]
    for (name, bytes, code) in cases {
      let client = try daemon.client()
      try client.send(bytes)
      let frames = try client.readUntilClosed()
      XCTAssertEqual(frames.count, 1, "\(name): \(frames.map(frameSummary))")
      let doc = try expectErrorDoc(frames.first)
      XCTAssertEqual(doc.errorCode, code, "\(name): \(doc.message)")
      XCTAssertEqual(frames.first?.requestID, 0, name)
      XCTAssertTrue(doc.close, name)
      XCTAssertTrue(client.isClosed, name)
      try assertServes(daemon)
    }
    // Truncated, then closed: nothing is answered, the daemon is unaffected.
    do {
      let client = try daemon.client()
      try client.send(rawFrameBytes(length: 4096, type: 0x0011, id: 5, payload: [UInt8](repeating: 0, count: 100)))
    }
    let halfClosed = try daemon.client()
    try halfClosed.send(rawFrameBytes(type: 0x0002, id: 5, payload: statusPayload).dropLast(3).map { $0 })
    shutdown(halfClosed.fd, Int32(SHUT_WR))
    XCTAssertEqual(try halfClosed.readUntilClosed().map(frameSummary), [])
    try assertServes(daemon)
  }

  func testHundredConcurrentClients() throws {
    let daemon = try start()
    let hello = try Frame.message(type: .hello, requestID: 1, doc: HelloRequest(client: "many")).encoded()
    let status = try Frame.message(type: .status, requestID: 2, doc: EmptyDoc()).encoded()
    let clients = try (0..<100).map { _ in try daemon.connect() }
    for client in clients { try client.send(hello + status) }
    for (index, client) in clients.enumerated() {
      let helloOK = try XCTUnwrap(try client.next(), "client \(index)")
      XCTAssertEqual(helloOK.type, .helloOK, frameSummary(helloOK))
      let answer = try client.final(of: 2)
      XCTAssertEqual(answer.type, .statusOK, frameSummary(answer))
    }
  }

  func testPipelinedRequestsAreAnsweredByID() throws {
    let daemon = try start()
    let client = try daemon.client()
    var bytes: [UInt8] = []
    let requests: [(UInt64, MessageType)] = [(2, .status), (3, .datasets), (4, .models), (5, .jobs), (6, .status)]
    for (id, type) in requests {
      bytes += try Frame.message(type: type, requestID: id, doc: EmptyDoc()).encoded()
    }
    try client.send(bytes)
    var answers: [UInt64: MessageType] = [:]
    while answers.count < requests.count {
      let frame = try XCTUnwrap(try client.next(), "closed with \(answers.count) answers")
      if frame.type == .progress { continue }
      XCTAssertNil(answers[frame.requestID], "two final frames for \(frame.requestID)")
      answers[frame.requestID] = frame.type
    }
    for (id, type) in requests {
      XCTAssertEqual(answers[id], type.responseType, "request \(id)")
    }
  }

  /// A 4 GiB length announcement is refused from the four length bytes; announced-but-unsent
  /// payloads cost only what arrived. The daemon's RSS does not grow with the claims.
  func testHugeLengthAnnouncementsDoNotGrowMemory() throws {
    let daemon = try start()
    try assertServes(daemon)
    let before = try daemon.residentBytes()
    for _ in 0..<20 {
      let client = try daemon.client()
      try client.send(littleEndian32(UInt32.max) + [UInt8](repeating: 0xAB, count: 64 << 10))
      let frames = try client.readUntilClosed()
      XCTAssertEqual(try expectErrorDoc(frames.first).errorCode, .frameTooLarge)
    }
    // Ten CKA requests announcing 500 MiB each (within the CKA limit), 64 KiB actually sent.
    var pending: [WireTestClient] = []
    for _ in 0..<10 {
      let client = try daemon.client()
      try client.send(rawFrameBytes(length: 500 << 20, type: 0x0011, id: 3, payload: [UInt8](repeating: 1, count: 64 << 10)))
      pending.append(client)
    }
    try assertServes(daemon)
    let during = try daemon.residentBytes()
    pending = []
    try assertServes(daemon)
    let after = try daemon.residentBytes()
    XCTAssertLessThan(during - before, 64 << 20, "RSS grew from \(before) to \(during) bytes")
    XCTAssertLessThan(after - before, 64 << 20, "RSS grew from \(before) to \(after) bytes")
  }

  func testConnectionBeyond256GetsServerBusy() throws {
    let daemon = try start()
    var clients: [WireTestClient] = []
    for _ in 0..<256 { clients.append(try daemon.client()) }
    let refused = try daemon.connect()
    let frames = try refused.readUntilClosed()
    XCTAssertEqual(frames.count, 1, frames.map(frameSummary).description)
    let doc = try expectErrorDoc(frames.first)
    XCTAssertEqual(doc.errorCode, .serverBusy)
    XCTAssertTrue(doc.close)
    // A slot frees when a client leaves.
    clients.removeLast()
    let deadline = Date().addingTimeInterval(5)
    var served = false
    while !served && Date() < deadline {
      let client = try daemon.connect()
      try client.send(.hello, id: 1, doc: HelloRequest(client: "late"))
      served = try client.next()?.type == .helloOK
      if !served { usleep(20_000) }
    }
    XCTAssertTrue(served, "no slot after a client left")
    _ = clients
  }

  /// Out of file descriptors: waiting connections are accepted and closed with SERVER_BUSY
  /// through the reserve descriptor; the loop does not spin and recovers when clients leave.
  func testRunningOutOfDescriptorsNeitherSpinsNorStops() throws {
    let prlimit = "/usr/bin/prlimit"
    try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: prlimit), "no \(prlimit)")
    let daemon = try DaemonProcess(launcher: [prlimit, "--nofile=64:64"])
    daemons.append(daemon)
    let hello = try Frame.message(type: .hello, requestID: 1, doc: HelloRequest(client: "fd")).encoded()
    var clients: [WireTestClient] = []
    for _ in 0..<100 {
      let client = try daemon.connect()
      // A refused connection may already be closed (EPIPE); its SERVER_BUSY is still readable.
      try? client.send(hello)
      clients.append(client)
    }
    var served: [WireTestClient] = [], busy = 0
    for client in clients {
      let frame = try XCTUnwrap(try client.next(), "a connection closed without an answer")
      if frame.type == .helloOK {
        served.append(client)
      } else {
        XCTAssertEqual(try expectErrorDoc(frame).errorCode, .serverBusy)
        busy += 1
      }
    }
    XCTAssertGreaterThan(served.count, 10)
    XCTAssertGreaterThan(busy, 0, "the descriptor limit was not reached")
    clients = []
    let before = try daemon.cpuTicks()
    usleep(1_000_000)
    let spent = try daemon.cpuTicks() - before
    XCTAssertLessThan(spent, 30, "the daemon used \(spent) ticks of CPU in one idle second")
    served = []
    let deadline = Date().addingTimeInterval(5)
    var recovered = false
    while !recovered && Date() < deadline {
      let client = try daemon.connect()
      try client.send(hello)
      recovered = try client.next()?.type == .helloOK
      if !recovered { usleep(20_000) }
    }
    XCTAssertTrue(recovered)
  }

  func testSIGTERMStopsCleanly() throws {
    let daemon = try start()
    let idle = try daemon.client()
    XCTAssertTrue(FileManager.default.fileExists(atPath: daemon.socketPath))
    daemon.signal(SIGTERM)
    let frames = try idle.readUntilClosed()
    XCTAssertEqual(frames.count, 1)
    XCTAssertEqual(try expectErrorDoc(frames.first).errorCode, .shuttingDownClose)
    XCTAssertEqual(daemon.waitForExit(timeout: 20), 0, daemon.standardError())
    XCTAssertFalse(FileManager.default.fileExists(atPath: daemon.socketPath))
  }

  func testShutdownRequestStopsTheDaemon() throws {
    let daemon = try start()
    let client = try daemon.client()
    try client.send(.shutdown, id: 9)
    let answer = try client.final(of: 9)
    XCTAssertEqual(answer.type, .shutdownOK, frameSummary(answer))
    XCTAssertEqual(try answer.decodeDoc(ShutdownResponse.self).jobsCheckpointed, 0)
    XCTAssertEqual(daemon.waitForExit(timeout: 20), 0, daemon.standardError())
    XCTAssertFalse(FileManager.default.fileExists(atPath: daemon.socketPath))
  }

  func testSecondDaemonOnTheSameSocketIsRefused() throws {
    let first = try start()
    let second = try DaemonProcess(directory: first.directory, store: "store2", waitForListening: false)
    daemons.append(second)
    XCTAssertEqual(second.waitForExit(timeout: 20), 1)
    XCTAssertTrue(second.standardError().contains("another blockscoped is listening on \(first.socketPath)"),
                  second.standardError())
    try assertServes(first)
  }

  func testStaleSocketIsReplaced() throws {
    let directory = try makeDaemonTempDirectory()
    let path = directory + "/d.sock"
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
      raw.copyBytes(from: Array(path.utf8))
      raw[path.utf8.count] = 0
    }
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    XCTAssertEqual(bound, 0)
    close(fd)
    let daemon = try start(directory: directory)
    try assertServes(daemon)
  }

  func testDetachReturnsOnceListening() throws {
    let directory = try makeDaemonTempDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let socketPath = directory + "/d.sock", storePath = directory + "/store"
    let process = Process()
    process.executableURL = DaemonProcess.binary
    process.arguments = ["--detach", "--socket", socketPath, "--store", storePath, "--cache-mb", "64"]
    let output = Pipe()
    process.standardOutput = output
    try process.run()
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    XCTAssertEqual(process.terminationStatus, 0, text)
    XCTAssertTrue(text.hasPrefix("blockscoped listening on \(socketPath)"), text)
    // Accepting at once, run by a process that is not our child.
    let client = try WireTestClient(path: socketPath)
    let hello = try client.hello()
    XCTAssertNotEqual(hello.pid, Int(process.processIdentifier))
    try client.send(.shutdown, id: 2)
    XCTAssertEqual(try client.final(of: 2).type, .shutdownOK)
    let deadline = Date().addingTimeInterval(20)
    while kill(pid_t(hello.pid), 0) == 0 && Date() < deadline { usleep(20_000) }
    XCTAssertNotEqual(kill(pid_t(hello.pid), 0), 0, "the detached daemon did not exit")
    XCTAssertFalse(FileManager.default.fileExists(atPath: socketPath))
    let log = (try? String(contentsOfFile: storePath + "/blockscoped.log", encoding: .utf8)) ?? ""
    XCTAssertTrue(log.contains("listening on \(socketPath)"), log)
  }

  func testDetachReportsTheChildsError() throws {
    let first = try start()
    let process = Process()
    process.executableURL = DaemonProcess.binary
    process.arguments = ["--detach", "--socket", first.socketPath, "--store", first.directory + "/store2"]
    let errors = Pipe()
    process.standardError = errors
    process.standardOutput = Pipe()
    try process.run()
    let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    XCTAssertEqual(process.terminationStatus, 1)
    XCTAssertTrue(text.contains("another blockscoped is listening on \(first.socketPath)"), text)
  }

  func testUsageErrors() throws {
    for arguments in [["--workers", "0"], ["--cache-mb", "0"], ["--data", "cifar10"], ["--socket", ""]] {
      let process = Process()
      process.executableURL = DaemonProcess.binary
      process.arguments = arguments
      process.standardError = Pipe()
      process.standardOutput = Pipe()
      try process.run()
      process.waitUntilExit()
      XCTAssertEqual(process.terminationStatus, 64, arguments.description)
    }
  }
}
