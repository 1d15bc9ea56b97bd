import Foundation
import Glibc
import XCTest
@testable import Daemon
import Wire

// The transport's tests run it in-process on a temporary socket with `TransportTestService`
// and talk to it with `WireTestClient`: plain blocking sockets and Wire's codec.

struct TransportTestFailure: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}

/// A client with plain sockets: frames out with `Frame.encoded()`, frames in with a
/// FrameDecoder(role: .client).
final class WireTestClient {
  let fd: Int32
  private var decoder = FrameDecoder(role: .client)
  /// The daemon closed the connection (EOF or reset).
  private(set) var isClosed = false

  init(path: String) throws {
    fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw TransportTestFailure("socket: \(String(cString: strerror(errno)))") }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
      raw.copyBytes(from: bytes)
      raw[bytes.count] = 0
    }
    let length = socklen_t(MemoryLayout.offset(of: \sockaddr_un.sun_path)! + bytes.count + 1)
    let result = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) }
    }
    guard result == 0 else {
      let code = errno
      close(fd)
      throw TransportTestFailure("connect(\(path)): \(String(cString: strerror(code)))")
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
        throw TransportTestFailure("send: \(String(cString: strerror(errno)))")
      }
      offset += sent
    }
  }

  func send(_ frame: Frame) throws { try send(frame.encoded()) }

  /// A request frame with a typed doc.
  static func request(_ type: MessageType, id: UInt64, doc: some Encodable = EmptyDoc(),
                      tensors: [WireTensor] = [], flags: FrameFlags = []) throws -> Frame {
    try Frame.message(type: type, requestID: id, doc: doc, tensors: tensors, flags: flags)
  }

  func send(_ type: MessageType, id: UInt64, doc: some Encodable = EmptyDoc(), flags: FrameFlags = []) throws {
    try send(Self.request(type, id: id, doc: doc, flags: flags))
  }

  /// HELLO on id 1; returns HELLO_OK's doc.
  @discardableResult
  func hello() throws -> HelloResponse {
    try send(.hello, id: 1, doc: HelloRequest(client: "transport-tests"))
    guard let frame = try next() else { throw TransportTestFailure("closed before HELLO_OK") }
    guard frame.type == .helloOK else { throw TransportTestFailure("expected HELLO_OK, got \(frame.type.name) \(frameSummary(frame))") }
    return try frame.decodeDoc(HelloResponse.self)
  }

  /// The next frame; nil once the daemon has closed the connection. Throws after `timeout`.
  func next(timeout: Double = 10) throws -> Frame? {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
      if let frame = try decoder.next() { return frame }
      if isClosed { return nil }
      let remaining = deadline.timeIntervalSinceNow
      guard remaining > 0 else { throw TransportTestFailure("no frame within \(timeout) s") }
      var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
      let ready = poll(&entry, 1, Int32(min(remaining * 1000 + 1, 60_000)))
      if ready < 0 && errno != EINTR { throw TransportTestFailure("poll: \(String(cString: strerror(errno)))") }
      if ready <= 0 { continue }
      var buffer = [UInt8](repeating: 0, count: 256 << 10)
      let count = recv(fd, &buffer, buffer.count, 0)
      if count > 0 {
        decoder.feed(buffer[0..<count])
      } else if count == 0 || errno == ECONNRESET || errno == EPIPE {
        isClosed = true
      } else if errno != EINTR && errno != EAGAIN {
        throw TransportTestFailure("recv: \(String(cString: strerror(errno)))")
      }
    }
  }

  /// Every frame until the daemon closes the connection.
  func readUntilClosed(timeout: Double = 10) throws -> [Frame] {
    let deadline = Date().addingTimeInterval(timeout)
    var frames: [Frame] = []
    while let frame = try next(timeout: max(0.01, deadline.timeIntervalSinceNow)) { frames.append(frame) }
    return frames
  }

  /// The frames up to and including the final frame of each of `ids`.
  func readFinals(_ ids: Set<UInt64>, timeout: Double = 10) throws -> [Frame] {
    let deadline = Date().addingTimeInterval(timeout)
    var pending = ids
    var frames: [Frame] = []
    while !pending.isEmpty {
      guard let frame = try next(timeout: max(0.01, deadline.timeIntervalSinceNow)) else {
        throw TransportTestFailure("closed with \(pending.sorted()) unanswered")
      }
      frames.append(frame)
      if frame.type != .progress { pending.remove(frame.requestID) }
    }
    return frames
  }

  /// The final frame of request `id`, skipping its PROGRESS events.
  func final(of id: UInt64, timeout: Double = 10) throws -> Frame {
    try readFinals([id], timeout: timeout).last!
  }

  func shutdownWrite() { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }
}

func frameSummary(_ frame: Frame) -> String {
  if frame.type == .error, let doc = try? frame.decodeDoc(ErrorDoc.self) {
    return "ERROR \(doc.name) (id \(frame.requestID)): \(doc.message)"
  }
  return "\(frame.type.name) (id \(frame.requestID))"
}

/// The ERROR doc of a frame, failing the test when it is another type.
func expectErrorDoc(_ frame: Frame?, file: StaticString = #filePath, line: UInt = #line) throws -> ErrorDoc {
  guard let frame else { throw TransportTestFailure("expected an ERROR frame, the connection closed") }
  guard frame.type == .error else { throw TransportTestFailure("expected an ERROR frame, got \(frameSummary(frame))") }
  return try frame.decodeDoc(ErrorDoc.self)
}

/// The bytes of a frame with any header fields, valid or not.
func rawFrameBytes(length: UInt32? = nil, magic: [UInt8] = [0x42, 0x53], version: UInt8 = 1, flags: UInt8 = 0,
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

func littleEndian32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }

/// A free-form doc for the test service's answers.
struct EchoDoc: Codable, Equatable {
  var text: String
  var connections: Int?
  var workers: Int?
}

/// DESCRIBE: sleep `ms` milliseconds, sending `events` PROGRESS events on the way.
struct SleepDoc: Codable {
  var ms: Int
  var events: Int
}

/// EXPORT: an answer with a `bytes`-byte tensor. WATCH: `events` PROGRESS events of about
/// `message_bytes` each, as fast as possible, then the answer.
struct SizeDoc: Codable {
  var bytes: Int?
  var events: Int?
  var messageBytes: Int?
  enum CodingKeys: String, CodingKey { case bytes, events, messageBytes = "message_bytes" }
}

/// The transport's test service:
///   STATUS   answers at once (with the transport's connection and worker counts)
///   DESCRIBE sleeps, with PROGRESS events (SleepDoc)
///   EXPORT   a large answer (SizeDoc.bytes)
///   WATCH    a flood of PROGRESS events, then the answer (SizeDoc)
///   CKA      echoes the payload's tensors (MALFORMED_PAYLOAD when it does not parse)
///   MODELS   an answer over its frame limit (RESULT_TOO_LARGE)
///   JOBS     held until `releaseHeld()` (or shutdown, when `answersOnShutdown`)
final class TransportTestService: RequestService, @unchecked Sendable {
  private let lock = NSCondition()
  private var held: [ReplyChannel] = []
  private var shutdownCalls = 0
  private var floodsFinished = 0
  let answersOnShutdown: Bool

  init(answersOnShutdown: Bool = true) {
    self.answersOnShutdown = answersOnShutdown
  }

  func handle(_ request: IncomingRequest, reply: ReplyChannel, transport: TransportStatus) {
    switch request.type {
    case .status:
      reply.respond(.statusOK, EchoDoc(text: "status", connections: transport.connections, workers: transport.workers))
    case .describe:
      do {
        let doc = try request.decode(SleepDoc.self)
        for index in 0..<doc.events {
          reply.progress(ProgressEvent(phase: "step", done: index + 1, total: doc.events))
          usleep(UInt32(doc.ms * 1000 / max(1, doc.events)))
        }
        if doc.events == 0 { usleep(UInt32(doc.ms * 1000)) }
        reply.respond(.describeOK, EchoDoc(text: "slept \(doc.ms)"))
      } catch {
        reply.fail(error)
      }
    case .export:
      let count = (try? request.decode(SizeDoc.self).bytes) ?? 0
      reply.respond(.exportOK, EchoDoc(text: "export"),
                    tensors: [WireTensor(name: "data", dtype: .u8, shape: [count],
                                         bytes: [UInt8](repeating: 7, count: count))])
    case .watch:
      let doc = (try? request.decode(SizeDoc.self)) ?? SizeDoc()
      let events = doc.events ?? 0
      let message = String(repeating: "x", count: doc.messageBytes ?? 0)
      for index in 0..<events {
        reply.progress(ProgressEvent(phase: "step", done: index, total: events, message: message))
      }
      reply.respond(.watchOK, EchoDoc(text: "flooded"))
      lock.lock()
      floodsFinished += 1
      lock.broadcast()
      lock.unlock()
    case .cka:
      do {
        let payload = try request.parsedPayload()
        reply.respond(.ckaOK, EchoDoc(text: "cka"), tensors: payload.tensors)
      } catch {
        reply.fail(error)
      }
    case .models:
      reply.respond(.modelsOK, EchoDoc(text: String(repeating: "y", count: 5 << 20)))
    case .jobs:
      lock.lock()
      held.append(reply)
      lock.broadcast()
      lock.unlock()
    default:
      reply.fail(WireError(.notFound, "the test service does not answer \(request.type.name)"))
    }
  }

  func shutdown() -> Int {
    lock.lock()
    shutdownCalls += 1
    let replies = answersOnShutdown ? held : []
    if answersOnShutdown { held = [] }
    lock.unlock()
    for reply in replies { reply.fail(WireError(.shuttingDown, "the test service is stopping")) }
    return 3
  }

  var shutdownCallCount: Int {
    lock.lock()
    defer { lock.unlock() }
    return shutdownCalls
  }

  var heldCount: Int {
    lock.lock()
    defer { lock.unlock() }
    return held.count
  }

  /// Waits until `count` requests are held.
  func waitHeld(_ count: Int, timeout: Double = 10) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    lock.lock()
    defer { lock.unlock() }
    while held.count < count {
      if !lock.wait(until: deadline) { return false }
    }
    return true
  }

  func waitFloods(_ count: Int, timeout: Double = 10) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    lock.lock()
    defer { lock.unlock() }
    while floodsFinished < count {
      if !lock.wait(until: deadline) { return false }
    }
    return true
  }

  /// Answers every held request (JOBS_OK).
  func releaseHeld() {
    lock.lock()
    let replies = held
    held = []
    lock.unlock()
    for reply in replies { reply.respond(.jobsOK, EchoDoc(text: "released")) }
  }
}

/// A temporary directory (0700, as mkdtemp makes it).
func makeTransportTempDirectory(_ prefix: String = "bs-transport") throws -> String {
  var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
  guard let made = mkdtemp(&template) else { throw TransportTestFailure("mkdtemp: \(String(cString: strerror(errno)))") }
  return String(cString: made)
}

/// The transport serving `service` in-process on `DIR/d.sock`, its loop on a thread of its own.
final class TransportTestDaemon {
  let directory: String
  let socketPath: String
  let transport: DaemonTransport
  let service: TransportTestService
  private let finished = DispatchSemaphore(value: 0)
  private var hasFinished = false

  init(service: TransportTestService = TransportTestService(),
       configure: (inout TransportOptions) -> Void = { _ in }) throws {
    directory = try makeTransportTempDirectory()
    socketPath = directory + "/d.sock"
    var options = TransportOptions(socketPath: socketPath, log: .silent)
    configure(&options)
    self.service = service
    transport = DaemonTransport(options: options)
    try transport.listen()
    let transport = self.transport, finished = self.finished
    let thread = Thread {
      try? transport.run(service: service)
      finished.signal()
    }
    thread.name = "transport-test-loop"
    thread.start()
  }

  func connect() throws -> WireTestClient { try WireTestClient(path: socketPath) }

  /// A connected client past HELLO.
  func client() throws -> WireTestClient {
    let client = try connect()
    try client.hello()
    return client
  }

  /// Waits for `run` to return.
  func waitFinished(timeout: Double = 15) -> Bool {
    if hasFinished { return true }
    hasFinished = finished.wait(timeout: .now() + timeout) == .success
    return hasFinished
  }

  /// Stops the transport (as SIGTERM) and waits for it.
  @discardableResult
  func stop(timeout: Double = 15) -> Bool {
    if hasFinished { return true }
    transport.stop()
    return waitFinished(timeout: timeout)
  }

  /// Polls the loop's state until `condition` holds.
  func waitFor(timeout: Double = 10, _ condition: (DaemonTransport.Snapshot) -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
      if let snapshot = transport.snapshot(), condition(snapshot) { return true }
      usleep(10_000)
    }
    return false
  }

  func cleanUp() {
    stop()
    try? FileManager.default.removeItem(atPath: directory)
  }
}
