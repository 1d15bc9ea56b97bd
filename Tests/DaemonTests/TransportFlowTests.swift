import Foundation
import Glibc
import XCTest
@testable import Daemon
import DaemonTestSupport
import Wire

/// Backpressure, connection limits, peer credentials, many clients.
final class TransportFlowTests: XCTestCase {
  /// A client that never reads its large answers: the daemon stops reading from it, keeps every
  /// answer, and serves another client meanwhile.
  func testClientThatDoesNotReadDelaysNobody() throws {
    let daemon = try TransportTestDaemon { options in
      options.highWaterBytes = 1 << 20
      options.lowWaterBytes = 256 << 10
    }
    defer { daemon.cleanUp() }
    let stuck = try daemon.client()
    let answerBytes = 4 << 20
    var requests: [UInt8] = []
    for id in 1...20 { requests += try WireTestClient.request(.export, id: UInt64(id), doc: SizeDoc(bytes: answerBytes)).encoded() }
    try stuck.send(requests)
    XCTAssertTrue(daemon.waitFor { snapshot in
      snapshot.connections.contains { $0.pausedForOutput && !$0.reading && $0.unsentBytes > 1 << 20 }
    }, "the daemon kept reading from a client whose output is above the high-water mark")

    let started = Date()
    let other = try daemon.client()
    for id in 1...20 {
      try other.send(.status, id: UInt64(id))
      XCTAssertEqual(try other.final(of: UInt64(id)).type, .statusOK)
    }
    let elapsed = Date().timeIntervalSince(started)
    XCTAssertLessThan(elapsed, 5, "another client's 20 round trips took \(elapsed) s")

    // Nothing was dropped: the stuck client gets all 20 answers when it reads.
    let frames = try stuck.readFinals(Set(1...20), timeout: 30)
    XCTAssertEqual(frames.count, 20)
    for frame in frames {
      XCTAssertEqual(frame.type, .exportOK, frameSummary(frame))
      XCTAssertEqual(try frame.parsedPayload().tensors.first?.bytes.count, answerBytes)
    }
    XCTAssertTrue(daemon.waitFor { $0.connections.allSatisfy { $0.reading && !$0.pausedForOutput } })
  }

  /// While a client reads slowly, its PROGRESS events are coalesced to the newest per request;
  /// the final frame is never dropped.
  func testProgressIsCoalescedForASlowReader() throws {
    let daemon = try TransportTestDaemon { options in
      options.highWaterBytes = 1 << 20
      options.lowWaterBytes = 256 << 10
    }
    defer { daemon.cleanUp() }
    let client = try daemon.client()
    let events = 400
    try client.send(.watch, id: 7, doc: SizeDoc(events: events, messageBytes: 64 << 10))
    XCTAssertTrue(daemon.service.waitFloods(1))
    let frames = try client.readFinals([7], timeout: 30)
    let progress = frames.filter { $0.type == .progress }
    XCTAssertEqual(frames.last?.type, .watchOK)
    XCTAssertLessThan(progress.count, events / 2, "\(progress.count) of \(events) events were sent")
    let done = try progress.map { try $0.decodeDoc(ProgressEvent.self).done }
    XCTAssertEqual(done, done.sorted())
    XCTAssertEqual(done.last, events - 1, "the newest event is kept")
  }

  func testConnectionLimitAnswersServerBusy() throws {
    let daemon = try TransportTestDaemon { $0.maxConnections = 3 }
    defer { daemon.cleanUp() }
    var clients = try (0..<3).map { _ in try daemon.client() }
    let refused = try daemon.connect()
    let frames = try refused.readUntilClosed()
    XCTAssertEqual(frames.count, 1)
    let doc = try expectErrorDoc(frames.first)
    XCTAssertEqual(doc.errorCode, .serverBusy)
    XCTAssertEqual(frames.first?.requestID, 0)
    XCTAssertTrue(doc.close)
    // A slot frees when a client leaves.
    clients.removeLast()
    XCTAssertTrue(daemon.waitFor { $0.connections.count == 2 })
    let next = try daemon.client()
    try next.send(.status, id: 2)
    XCTAssertEqual(try next.final(of: 2).type, .statusOK)
    _ = clients
  }

  /// Slow and idle peers (SPEC section 5): no HELLO within the hello timeout, or a frame still
  /// trickling in after the frame timeout, get TIMEOUT on id 0 and are closed.
  func testSlowPeersTimeOut() throws {
    let daemon = try TransportTestDaemon { $0.helloTimeout = 0.5; $0.frameTimeout = 0.6 }
    defer { daemon.cleanUp() }
    let silent = try daemon.connect()
    let started = Date()
    let frames = try silent.readUntilClosed(timeout: 10)
    XCTAssertEqual(frames.count, 1)
    let doc = try expectErrorDoc(frames.first)
    XCTAssertEqual(doc.errorCode, .timeout)
    XCTAssertTrue(doc.message.contains("HELLO"), doc.message)
    XCTAssertEqual(frames.first?.requestID, 0)
    XCTAssertLessThan(Date().timeIntervalSince(started), 3)

    let trickler = try daemon.client()
    let status = try WireTestClient.request(.status, id: 2).encoded()
    // Its bytes one every 0.1 s: past the timeout the daemon closes, and a later send fails
    // (EPIPE) while the ERROR stays readable.
    for byte in status.prefix(15) {
      guard (try? trickler.send([byte])) != nil else { break }
      usleep(100_000)
    }
    let cut = try trickler.readUntilClosed(timeout: 10)
    XCTAssertEqual(try expectErrorDoc(cut.last).errorCode, .timeout)

    // A frame that arrives in pieces within the timeout is served; an idle established
    // connection is never timed out.
    let patient = try daemon.client()
    usleep(1_200_000)
    try patient.send(Array(status.prefix(7)))
    usleep(200_000)
    try patient.send(Array(status.dropFirst(7)))
    XCTAssertEqual(try patient.final(of: 2).type, .statusOK)
  }

  /// All slots taken: the connection that has held its slot longest without a complete frame
  /// makes room (SERVER_BUSY), and the new one is served; idle established ones are kept.
  func testAFullDaemonMakesRoomByClosingTheStalestSlowPeer() throws {
    let daemon = try TransportTestDaemon { $0.maxConnections = 3; $0.helloTimeout = 60 }
    defer { daemon.cleanUp() }
    let owner = try daemon.client()
    let slow = try (0..<2).map { _ -> WireTestClient in
      let c = try daemon.connect()
      usleep(50_000)   // distinct accept times: the first is the stalest
      return c
    }
    XCTAssertTrue(daemon.waitFor { $0.connections.count == 3 })
    let newcomer = try daemon.client()
    try newcomer.send(.status, id: 2)
    XCTAssertEqual(try newcomer.final(of: 2).type, .statusOK)
    let evicted = try slow[0].readUntilClosed(timeout: 10)
    let doc = try expectErrorDoc(evicted.first)
    XCTAssertEqual(doc.errorCode, .serverBusy)
    XCTAssertTrue(doc.message.contains("made room"), doc.message)
    try owner.send(.status, id: 3)
    XCTAssertEqual(try owner.final(of: 3).type, .statusOK, "the idle established connection stays")
    XCTAssertFalse(slow[1].isClosed)
  }

  /// The peer check sees the connecting process's credentials before a byte is read; a refused
  /// peer gets PERMISSION_DENIED and is closed; others are unaffected.
  func testForeignPeerIsRefused() throws {
    let seen = CredentialsBox()
    let daemon = try TransportTestDaemon { options in
      options.peerCheck = { pid, uid, gid in
        seen.record(pid, uid, gid)
        return seen.count > 1  // the first connection is "another user"
      }
    }
    defer { daemon.cleanUp() }
    // The refusal comes on accept, before a byte is read: the client need not (and, racing
    // the close, could not reliably) send anything to receive it.
    let foreign = try daemon.connect()
    let frames = try foreign.readUntilClosed()
    XCTAssertEqual(frames.count, 1)
    let doc = try expectErrorDoc(frames.first)
    XCTAssertEqual(doc.errorCode, .permissionDenied)
    XCTAssertTrue(doc.close)
    XCTAssertEqual(seen.first?.pid, getpid())
    XCTAssertEqual(seen.first?.uid, geteuid())
    XCTAssertEqual(seen.first?.gid, getegid())

    let client = try daemon.client()
    try client.send(.status, id: 2)
    XCTAssertEqual(try client.final(of: 2).type, .statusOK)
  }

  func testDefaultPeerCheckAcceptsOnlyTheSameUser() {
    XCTAssertTrue(TransportOptions.sameUser(1, geteuid(), 1))
    XCTAssertFalse(TransportOptions.sameUser(1, geteuid() &+ 1, 1))
  }

  func testHundredConcurrentClients() throws {
    let daemon = try TransportTestDaemon()
    defer { daemon.cleanUp() }
    let hello = try Frame.message(type: .hello, requestID: 1, doc: HelloRequest(client: "many")).encoded()
    let status = try WireTestClient.request(.status, id: 2).encoded()
    let clients = try (0..<100).map { _ in try daemon.connect() }
    for client in clients { try client.send(hello + status) }
    for client in clients {
      let frames = try client.readFinals([1, 2])
      XCTAssertEqual(frames.map(\.type), [.helloOK, .statusOK])
    }
  }
}

final class CredentialsBox: @unchecked Sendable {
  private let lock = NSLock()
  private var seen: [(pid: pid_t, uid: uid_t, gid: gid_t)] = []

  func record(_ pid: pid_t, _ uid: uid_t, _ gid: gid_t) {
    lock.lock()
    seen.append((pid, uid, gid))
    lock.unlock()
  }

  var count: Int {
    lock.lock()
    defer { lock.unlock() }
    return seen.count
  }

  var first: (pid: pid_t, uid: uid_t, gid: gid_t)? {
    lock.lock()
    defer { lock.unlock() }
    return seen.first
  }
}
