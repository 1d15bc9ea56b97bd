import Foundation
import Glibc
import XCTest
@testable import Daemon
import DaemonTestSupport
import Wire

// The transport's tests run it in-process on a temporary socket with `TransportTestService`
// and talk to it with DaemonTestSupport's `WireTestClient`: plain blocking sockets and Wire's codec.

extension WireTestClient {
  /// A client of the transport tests: HELLO as "transport-tests", 10 s timeouts.
  convenience init(path: String) throws {
    try self.init(path: path, clientName: "transport-tests", defaultTimeout: 10)
  }
}

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
  try makeTestTempDirectory(prefix)
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
