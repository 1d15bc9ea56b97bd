import Foundation
import Glibc
import XCTest
@testable import blockscope
import Wire

/// A scripted stand-in for blockscoped on a temporary Unix socket: accepts one connection,
/// decodes the client's frames with Wire (server role) and answers each as the script says.
final class FakeDaemon: @unchecked Sendable {
  enum Reply {
    case frame(Frame)
    case bytes([UInt8])
    case close
  }

  let directory: String
  let path: String
  private let listenFD: Int32
  private let lock = NSLock()
  private var frames: [Frame] = []
  private let done = DispatchSemaphore(value: 0)

  init(script: @escaping @Sendable (Frame) -> [Reply]) throws {
    directory = try temporaryDirectory("fake")
    path = directory + "/d.sock"
    listenFD = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listenFD, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard bound == 0, listen(listenFD, 4) == 0 else { throw OutputError.system("bind", path) }
    let fd = listenFD
    Thread.detachNewThread { [self] in
      self.serve(fd, script)
      self.done.signal()
    }
  }

  deinit {
    Glibc.close(listenFD)
    try? FileManager.default.removeItem(atPath: directory)
  }

  /// The frames received so far (after `waitUntilClosed`, all of them).
  var received: [Frame] {
    lock.lock()
    defer { lock.unlock() }
    return frames
  }

  /// Waits until the fake has closed its connection.
  func waitUntilClosed() -> Bool { done.wait(timeout: .now() + 10) == .success }

  private func serve(_ listenFD: Int32, _ script: (Frame) -> [Reply]) {
    let connection = accept(listenFD, nil, nil)
    guard connection >= 0 else { return }
    defer { Glibc.close(connection) }
    var decoder = FrameDecoder(role: .server)
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
      let count = buffer.withUnsafeMutableBytes { read(connection, $0.baseAddress, $0.count) }
      if count <= 0 { return }
      decoder.feed(buffer[0..<count])
      while let frame = try? decoder.next() {
        lock.lock()
        frames.append(frame)
        lock.unlock()
        for reply in script(frame) {
          switch reply {
          case .frame(let frame): Self.send(connection, frame.encoded())
          case .bytes(let bytes): Self.send(connection, bytes)
          case .close: return
          }
        }
      }
    }
  }

  private static func send(_ fd: Int32, _ bytes: [UInt8]) {
    var offset = 0
    while offset < bytes.count {
      let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
      if sent <= 0 { return }
      offset += sent
    }
  }

  // MARK: Canned frames

  static func helloOK(_ request: Frame) -> Reply {
    .frame(try! Frame.message(type: .helloOK, requestID: request.requestID,
                              doc: HelloResponse(version: 1, serverVersion: "fake", pid: 42)))
  }

  static func status(_ request: Frame) -> Reply {
    .frame(try! Frame.message(type: .statusOK, requestID: request.requestID, doc: StatusResponse(
      uptimeSeconds: 1.5, pid: 42, rssBytes: 1 << 20, peakRssBytes: 2 << 20, store: "/store", models: 0,
      cache: .init(bytes: 0, budgetBytes: 1 << 30, entries: 0, hits: 0, misses: 0, evictions: 0),
      jobs: .init(running: 0, queued: 0, interrupted: 0), connections: 1, workers: 2)))
  }

  static func progress(_ request: Frame, done: Int) -> Reply {
    .frame(try! Frame.message(type: .progress, requestID: request.requestID,
                              doc: ProgressEvent(phase: "forward", done: done, total: 2)))
  }

  static func error(_ code: ErrorCode, _ message: String, requestID: UInt64) -> Reply {
    .frame(Frame.error(code, message, requestID: requestID))
  }
}

final class DaemonClientTests: XCTestCase {
  func testHelloThenProgressEventsThenTheResponse() throws {
    let fake = try FakeDaemon { frame in
      switch frame.type {
      case .hello: return [FakeDaemon.helloOK(frame)]
      case .status:
        return [FakeDaemon.progress(frame, done: 1), FakeDaemon.progress(frame, done: 2), FakeDaemon.status(frame)]
      default: return [.close]
      }
    }
    let client = try DaemonClient(socketPath: fake.path)
    XCTAssertEqual(client.hello?.serverVersion, "fake")
    var events: [ProgressEvent] = []
    let response = try client.request(.status, StatusRequest(), onProgress: { events.append($0) })
    XCTAssertEqual(events.map(\.done), [1, 2])
    XCTAssertEqual(try response.decode(StatusResponse.self).workers, 2)
    XCTAssertEqual(try response.jsonOutput()["store"] as? String, "/store")
    // Without a handler the request is QUIET.
    _ = try client.request(.status, StatusRequest())
    client.close()
    XCTAssertTrue(fake.waitUntilClosed())
    let received = fake.received
    XCTAssertEqual(received.map(\.type), [.hello, .status, .status])
    XCTAssertEqual(received.map(\.requestID), [1, 2, 3])
    XCTAssertEqual(received.map(\.flags), [[.quiet], [], [.quiet]])
    XCTAssertEqual(try received[0].decodeDoc(HelloRequest.self).client, DaemonClient.clientName)
  }

  func testAnErrorFrameIsATypedErrorAndTheConnectionStaysUsable() throws {
    let fake = try FakeDaemon { frame in
      switch frame.type {
      case .hello: return [FakeDaemon.helloOK(frame)]
      case .describe: return [FakeDaemon.error(.notFound, "no model 'm'", requestID: frame.requestID)]
      case .status: return [FakeDaemon.status(frame)]
      default: return [.close]
      }
    }
    let client = try DaemonClient(socketPath: fake.path)
    XCTAssertThrowsError(try client.request(.describe, DescribeRequest(model: "m"))) { error in
      guard let error = error as? DaemonError else { return XCTFail("\(error)") }
      XCTAssertEqual(error.code, 102)
      XCTAssertEqual(error.name, "NOT_FOUND")
      XCTAssertEqual(error.message, "no model 'm'")
      XCTAssertEqual(error.errorCode, .notFound)
      XCTAssertFalse(error.closesConnection)
      XCTAssertEqual("\(error)", "NOT_FOUND (102): no model 'm'")
    }
    XCTAssertTrue(client.isConnected)
    XCTAssertNoThrow(try client.request(.status, StatusRequest()))
  }

  func testAConnectionErrorClosesTheConnection() throws {
    let fake = try FakeDaemon { frame in
      switch frame.type {
      case .hello: return [FakeDaemon.helloOK(frame)]
      default: return [FakeDaemon.error(.shuttingDownClose, "stopping", requestID: 0), .close]
      }
    }
    let client = try DaemonClient(socketPath: fake.path)
    XCTAssertThrowsError(try client.request(.models, ModelsRequest())) { error in
      guard let error = error as? DaemonError else { return XCTFail("\(error)") }
      XCTAssertEqual(error.errorCode, .shuttingDownClose)
      XCTAssertEqual(error.requestID, 0)
      XCTAssertTrue(error.closesConnection)
    }
    XCTAssertFalse(client.isConnected)
  }

  func testTheDaemonHangingUpBeforeAnsweringIsReported() throws {
    let fake = try FakeDaemon { frame in
      frame.type == .hello ? [FakeDaemon.helloOK(frame)] : [.bytes([1, 2, 3]), .close]
    }
    let client = try DaemonClient(socketPath: fake.path)
    XCTAssertThrowsError(try client.request(.jobs, JobsRequest())) { error in
      guard case ClientError.closed(_, let detail) = error else { return XCTFail("\(error)") }
      XCTAssertEqual(detail, "in the middle of a frame")
    }
  }

  func testBytesThatBreakTheSpecAreAnsweredWithAnErrorFrame() throws {
    let fake = try FakeDaemon { frame in
      switch frame.type {
      case .hello: return [FakeDaemon.helloOK(frame)]
      case .status:
        var bytes = FakeDaemon.statusBytes(frame)
        bytes[4] = 0x58  // not "BS"
        return [.bytes(bytes)]
      default: return []  // the client's ERROR: keep reading until it closes
      }
    }
    let client = try DaemonClient(socketPath: fake.path)
    XCTAssertThrowsError(try client.request(.status, StatusRequest())) { error in
      guard case ClientError.protocolViolation(let wire) = error else { return XCTFail("\(error)") }
      XCTAssertEqual(wire.code, .badMagic)
    }
    XCTAssertFalse(client.isConnected)
    XCTAssertTrue(fake.waitUntilClosed())
    let last = try XCTUnwrap(fake.received.last)
    XCTAssertEqual(last.type, .error)
    XCTAssertEqual(last.requestID, 0)
    XCTAssertEqual(try last.decodeDoc(ErrorDoc.self).name, "BAD_MAGIC")
  }

  func testAResponseOfTheWrongTypeIsAProtocolViolation() throws {
    let fake = try FakeDaemon { frame in
      switch frame.type {
      case .hello: return [FakeDaemon.helloOK(frame)]
      case .models: return [FakeDaemon.status(frame)]
      default: return []
      }
    }
    let client = try DaemonClient(socketPath: fake.path)
    XCTAssertThrowsError(try client.request(.models, ModelsRequest())) { error in
      guard case ClientError.protocolViolation = error else { return XCTFail("\(error)") }
    }
  }

  func testNothingAtThePathIsNoDaemon() throws {
    let directory = try temporaryDirectory("nodaemon")
    defer { try? FileManager.default.removeItem(atPath: directory) }
    XCTAssertThrowsError(try DaemonClient(socketPath: directory + "/none.sock")) { error in
      guard case ClientError.noDaemon(let path, nil) = error else { return XCTFail("\(error)") }
      XCTAssertEqual(path, directory + "/none.sock")
    }
    // A stale socket file (its daemon died): ECONNREFUSED, also no daemon.
    let stale = directory + "/stale.sock"
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(stale.utf8)) }
    _ = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    Glibc.close(fd)
    XCTAssertThrowsError(try DaemonClient(socketPath: stale)) { error in
      guard case ClientError.noDaemon(_, let reason?) = error else { return XCTFail("\(error)") }
      XCTAssertTrue(reason.contains("nothing listens"), reason)
    }
  }

  func testLauncherWithoutAutoStartAndItsHint() throws {
    let launcher = DaemonLauncher(socketPath: "/tmp/x y.sock", store: nil, quiet: true)
    XCTAssertEqual(launcher.startCommandLine, "blockscoped --socket '/tmp/x y.sock' --store DIR")
    let plain = DaemonLauncher(socketPath: "/tmp/d.sock", store: "/data/store", quiet: true)
    XCTAssertEqual(plain.startCommandLine, "blockscoped --socket /tmp/d.sock --store /data/store")
    XCTAssertThrowsError(try DaemonLauncher(socketPath: "/tmp/nonexistent-\(getpid()).sock", store: nil, quiet: true)
      .connect(autoStart: false)) { error in
      guard case ClientError.noDaemon = error else { return XCTFail("\(error)") }
    }
    XCTAssertEqual(shellQuoted("it's"), "'it'\\''s'")
    XCTAssertEqual(SocketPath.defaultPath(environment: ["XDG_RUNTIME_DIR": "/run/user/7"], uid: 7),
                   "/run/user/7/blockscope/blockscoped.sock")
    XCTAssertEqual(SocketPath.defaultPath(environment: ["XDG_RUNTIME_DIR": ""], uid: 7),
                   "/tmp/blockscope-7/blockscoped.sock")
    XCTAssertEqual(SocketPath.defaultPath(environment: [:], uid: 1000), "/tmp/blockscope-1000/blockscoped.sock")
  }
}

extension FakeDaemon {
  static func statusBytes(_ request: Frame) -> [UInt8] {
    guard case .frame(let frame) = status(request) else { return [] }
    return frame.encoded()
  }
}
