import Foundation
import Glibc
import XCTest
@testable import Daemon
import DaemonTestSupport
import Wire

/// The socket's place and safety (SPEC.md section 1) and stopping.
final class TransportLifecycleTests: XCTestCase {
  private var directories: [String] = []

  override func tearDown() {
    for directory in directories { try? FileManager.default.removeItem(atPath: directory) }
    directories = []
  }

  private func temporaryDirectory() throws -> String {
    let directory = try makeTransportTempDirectory("bs-lifecycle")
    directories.append(directory)
    return directory
  }

  private func mode(_ path: String) -> mode_t {
    var info = stat()
    XCTAssertEqual(lstat(path, &info), 0, path)
    return info.st_mode & 0o7777
  }

  // MARK: Stopping

  func testShutdownRequestAnswersClosesEveryoneAndRemovesTheSocket() throws {
    let daemon = try TransportTestDaemon()
    defer { daemon.cleanUp() }
    let idle = try daemon.client()
    let requester = try daemon.client()
    try requester.send(.shutdown, id: 5)
    let frames = try requester.readUntilClosed()
    XCTAssertEqual(frames.map(frameSummary).count, 2, frames.map(frameSummary).description)
    XCTAssertEqual(frames.first?.type, .shutdownOK)
    XCTAssertEqual(frames.first?.requestID, 5)
    XCTAssertEqual(try frames.first?.decodeDoc(ShutdownResponse.self).jobsCheckpointed, 3)
    XCTAssertEqual(try expectErrorDoc(frames.last).errorCode, .shuttingDownClose)

    let idleFrames = try idle.readUntilClosed()
    XCTAssertEqual(idleFrames.count, 1)
    XCTAssertEqual(try expectErrorDoc(idleFrames.first).errorCode, .shuttingDownClose)
    XCTAssertEqual(idleFrames.first?.requestID, 0)

    XCTAssertTrue(daemon.waitFinished(), "run did not return")
    XCTAssertEqual(daemon.service.shutdownCallCount, 1)
    XCTAssertFalse(FileManager.default.fileExists(atPath: daemon.socketPath))
    XCTAssertThrowsError(try daemon.connect())
  }

  /// A request in flight when the daemon stops is answered (here by the service, with
  /// SHUTTING_DOWN) before its connection gets SHUTTING_DOWN_CLOSE.
  func testStopAnswersInFlightRequestsFirst() throws {
    let daemon = try TransportTestDaemon()
    defer { daemon.cleanUp() }
    let client = try daemon.client()
    try client.send(.jobs, id: 8)
    XCTAssertTrue(daemon.service.waitHeld(1))
    daemon.transport.stop()
    let frames = try client.readUntilClosed()
    XCTAssertEqual(frames.count, 2, frames.map(frameSummary).description)
    XCTAssertEqual(frames.first?.requestID, 8)
    XCTAssertEqual(try expectErrorDoc(frames.first).errorCode, .shuttingDown)
    XCTAssertEqual(try expectErrorDoc(frames.last).errorCode, .shuttingDownClose)
    XCTAssertTrue(daemon.waitFinished())
  }

  /// A service that does not answer an in-flight request by the end of the grace period: the
  /// transport refuses it with SHUTTING_DOWN itself.
  func testUnansweredRequestIsRefusedAfterTheGracePeriod() throws {
    let daemon = try TransportTestDaemon(service: TransportTestService(answersOnShutdown: false)) {
      $0.shutdownGrace = 0.2
    }
    defer { daemon.cleanUp() }
    let client = try daemon.client()
    try client.send(.jobs, id: 8)
    XCTAssertTrue(daemon.service.waitHeld(1))
    daemon.transport.stop()
    let frames = try client.readUntilClosed()
    XCTAssertEqual(frames.count, 2, frames.map(frameSummary).description)
    XCTAssertEqual(frames.first?.requestID, 8)
    XCTAssertEqual(try expectErrorDoc(frames.first).errorCode, .shuttingDown)
    XCTAssertEqual(try expectErrorDoc(frames.last).errorCode, .shuttingDownClose)
    XCTAssertTrue(daemon.waitFinished())
    daemon.service.releaseHeld()  // too late: ignored
  }

  // MARK: The socket

  func testSocketIsOwnerOnly() throws {
    let daemon = try TransportTestDaemon()
    defer { daemon.cleanUp() }
    XCTAssertEqual(mode(daemon.socketPath), 0o600)
  }

  func testDefaultSocketPath() {
    XCTAssertEqual(SocketLocation.defaultPath(environment: ["XDG_RUNTIME_DIR": "/run/user/1000"], uid: 1000),
                   "/run/user/1000/blockscope/blockscoped.sock")
    XCTAssertEqual(SocketLocation.defaultPath(environment: ["XDG_RUNTIME_DIR": ""], uid: 1000),
                   "/tmp/blockscope-1000/blockscoped.sock")
    XCTAssertEqual(SocketLocation.defaultPath(environment: [:], uid: 42), "/tmp/blockscope-42/blockscoped.sock")
  }

  func testDefaultDirectoryIsCreatedPrivateAndCheckedStrictly() throws {
    let base = try temporaryDirectory()
    let created = base + "/blockscope"
    XCTAssertNoThrow(try SocketLocation.prepareDirectory(created, strict: true))
    XCTAssertEqual(mode(created), 0o700)

    let shared = base + "/open"
    XCTAssertEqual(mkdir(shared, 0o755), 0)
    XCTAssertEqual(chmod(shared, 0o755), 0)
    XCTAssertThrowsError(try SocketLocation.prepareDirectory(shared, strict: true)) { error in
      guard case TransportError.unsafeDirectory(let path, let reason)? = error as? TransportError else {
        return XCTFail("\(error)")
      }
      XCTAssertEqual(path, shared)
      XCTAssertTrue(reason.contains("0755"), reason)
    }
    // A symbolic link in place of the default directory is refused too.
    let link = base + "/link"
    XCTAssertEqual(symlink(created, link), 0)
    XCTAssertThrowsError(try SocketLocation.prepareDirectory(link, strict: true))
  }

  func testExplicitDirectoryRules() throws {
    let base = try temporaryDirectory()
    for (name, permissions, accepted) in [("shared", mode_t(0o755), true), ("sticky", mode_t(0o1777), true),
                                          ("writable", mode_t(0o777), false), ("group", mode_t(0o775), false)] {
      let directory = base + "/" + name
      XCTAssertEqual(mkdir(directory, 0o700), 0)
      XCTAssertEqual(chmod(directory, permissions), 0)
      if accepted {
        XCTAssertNoThrow(try SocketLocation.prepareDirectory(directory, strict: false), name)
      } else {
        XCTAssertThrowsError(try SocketLocation.prepareDirectory(directory, strict: false), name)
      }
    }
  }

  func testStaleSocketIsReplaced() throws {
    let directory = try temporaryDirectory()
    let path = directory + "/d.sock"
    // A socket file nobody listens on: bound, then closed.
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    _ = try Sys.withAddress(path) { address, length in bind(fd, address, length) }
    close(fd)
    XCTAssertTrue(FileManager.default.fileExists(atPath: path))

    let transport = DaemonTransport(options: TransportOptions(socketPath: path, log: .silent))
    XCTAssertNoThrow(try transport.listen())
    let client = try WireTestClient(path: path)
    _ = client
    transport.abandon()
    XCTAssertFalse(FileManager.default.fileExists(atPath: path))
  }

  func testSecondDaemonOnTheSameSocketIsRefused() throws {
    let daemon = try TransportTestDaemon()
    defer { daemon.cleanUp() }
    let second = DaemonTransport(options: TransportOptions(socketPath: daemon.socketPath, log: .silent))
    XCTAssertThrowsError(try second.listen()) { error in
      XCTAssertEqual(error as? TransportError, .alreadyListening(daemon.socketPath))
      XCTAssertEqual("\(error)", "another blockscoped is listening on \(daemon.socketPath)")
    }
    // The first one is untouched.
    let client = try daemon.client()
    try client.send(.status, id: 2)
    XCTAssertEqual(try client.final(of: 2).type, .statusOK)
  }

  func testFileInTheWayIsLeftAlone() throws {
    let directory = try temporaryDirectory()
    let path = directory + "/d.sock"
    XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data("keep".utf8)))
    let transport = DaemonTransport(options: TransportOptions(socketPath: path, log: .silent))
    XCTAssertThrowsError(try transport.listen()) { error in
      guard case TransportError.badSocketPath? = error as? TransportError else { return XCTFail("\(error)") }
    }
    XCTAssertEqual(FileManager.default.contents(atPath: path), Data("keep".utf8))
  }

  func testSocketPathTooLongIsRefused() throws {
    let directory = try temporaryDirectory()
    let path = directory + "/" + String(repeating: "s", count: 120)
    let transport = DaemonTransport(options: TransportOptions(socketPath: path, log: .silent))
    XCTAssertThrowsError(try transport.listen()) { error in
      guard case TransportError.badSocketPath? = error as? TransportError else { return XCTFail("\(error)") }
    }
  }

  func testErrorsNameTheCall() {
    XCTAssertEqual(TransportError.syscall("bind", "/x/d.sock", EADDRINUSE).description,
                   "bind(/x/d.sock): Address already in use")
  }
}
