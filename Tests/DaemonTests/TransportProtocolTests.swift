import Foundation
import Glibc
import XCTest
@testable import Daemon
import DaemonTestSupport
import Wire

/// Framing and conversation rules as the transport carries them out (SPEC.md sections 2, 4, 5).
final class TransportProtocolTests: XCTestCase {
  var daemon: TransportTestDaemon!

  override func setUpWithError() throws {
    daemon = try TransportTestDaemon()
  }

  override func tearDown() {
    daemon?.cleanUp()
    daemon = nil
  }

  func testHelloIsAnsweredByTheTransport() throws {
    let client = try daemon.connect()
    try client.send(.hello, id: 42, doc: HelloRequest(minVersion: 1, maxVersion: 7, client: "test"))
    let frame = try XCTUnwrap(try client.next())
    XCTAssertEqual(frame.type, .helloOK)
    XCTAssertEqual(frame.requestID, 42)
    XCTAssertEqual(frame.version, 1)
    let hello = try frame.decodeDoc(HelloResponse.self)
    XCTAssertEqual(hello.version, 1)
    XCTAssertEqual(hello.server, "blockscoped")
    XCTAssertEqual(hello.serverVersion, BlockscopedVersion.string)
    XCTAssertEqual(hello.pid, Int(getpid()))
    XCTAssertEqual(hello.limits, .protocolLimits)

    try client.send(.status, id: 2)
    let status = try client.final(of: 2)
    XCTAssertEqual(status.type, .statusOK, frameSummary(status))
    let doc = try status.decodeDoc(EchoDoc.self)
    XCTAssertEqual(doc.connections, 1)
    XCTAssertEqual(doc.workers, 4)
  }

  func testHelloWithoutCommonVersionIsRefused() throws {
    let client = try daemon.connect()
    try client.send(.hello, id: 1, doc: HelloRequest(minVersion: 2, maxVersion: 3, client: "future"))
    let doc = try expectErrorDoc(try client.next())
    XCTAssertEqual(doc.errorCode, .unsupportedVersion)
    XCTAssertTrue(doc.close)
    XCTAssertNil(try client.next())
  }

  /// Every framing violation: ERROR on request id 0 with the right code, then the connection
  /// closes; the daemon goes on serving others.
  func testMalformedFramesAreAnsweredAndClosed() throws {
    let status = try Frame.message(type: .status, requestID: 5, doc: EmptyDoc()).encoded()
    let secondHello = try Frame.message(type: .hello, requestID: 9, doc: HelloRequest(client: "again")).encoded()
    let cases: [(String, [UInt8], ErrorCode)] = [
      ("length 0", littleEndian32(0), .frameTooShort),
      ("length 15", littleEndian32(15) + [UInt8](repeating: 0, count: 15), .frameTooShort),
      ("length over the request limit", rawFrameBytes(length: UInt32((4 << 20) + 17), type: 0x0002, id: 5), .frameTooLarge),
      ("length 2^32-1", littleEndian32(UInt32.max), .frameTooLarge),
      ("length 2^30+1", littleEndian32(UInt32((1 << 30) + 1)), .frameTooLarge),
      ("unknown type", rawFrameBytes(type: 0x0099, id: 5, payload: Array(status[20...])), .unknownType),
      ("version 2", rawFrameBytes(version: 2, type: 0x0002, id: 5, payload: Array(status[20...])), .unsupportedVersion),
      ("bad magic", rawFrameBytes(magic: [0x58, 0x58], type: 0x0002, id: 5, payload: Array(status[20...])), .badMagic),
      ("undefined flag", rawFrameBytes(flags: 0x02, type: 0x0002, id: 5, payload: Array(status[20...])), .malformedHeader),
      ("reserved field", rawFrameBytes(type: 0x0002, reserved: 1, id: 5, payload: Array(status[20...])), .malformedHeader),
      ("a response type", rawFrameBytes(type: 0x8002, id: 5, payload: Array(status[20...])), .notARequest),
      ("a PROGRESS event", rawFrameBytes(type: 0x4001, id: 5, payload: Array(status[20...])), .notARequest),
      ("request id 0", rawFrameBytes(type: 0x0002, id: 0, payload: Array(status[20...])), .malformedHeader),
      ("a second HELLO", secondHello, .helloRequired),
    ]
    for (name, bytes, code) in cases {
      let client = try daemon.client()
      try client.send(bytes)
      let frames = try client.readUntilClosed()
      XCTAssertEqual(frames.count, 1, "\(name): \(frames.map(frameSummary))")
      guard let frame = frames.first else { continue }
      let doc = try expectErrorDoc(frame)
      XCTAssertEqual(doc.errorCode, code, "\(name): \(doc.message)")
      XCTAssertEqual(frame.requestID, 0, name)
      XCTAssertTrue(doc.close, name)
      XCTAssertTrue(client.isClosed, name)
    }
    // Before HELLO too, a first frame that is not HELLO, and a HELLO on the connection's id 0.
    let helloOnZero = try Frame.message(type: .hello, requestID: 0, doc: HelloRequest(client: "zero")).encoded()
    for (name, bytes, code) in [("length 0 first", littleEndian32(0), ErrorCode.frameTooShort),
                                ("STATUS first", status, ErrorCode.helloRequired),
                                ("HELLO on id 0", helloOnZero, ErrorCode.malformedHeader)] {
      let client = try daemon.connect()
      try client.send(bytes)
      let frames = try client.readUntilClosed()
      XCTAssertEqual(frames.count, 1, name)
      XCTAssertEqual(try expectErrorDoc(frames.first).errorCode, code, name)
    }
    let client = try daemon.client()
    try client.send(.status, id: 3)
    XCTAssertEqual(try client.final(of: 3).type, .statusOK)
  }

  func testFrameCutShortIsDroppedUnanswered() throws {
    let status = try Frame.message(type: .status, requestID: 5, doc: EmptyDoc()).encoded()
    // Half-closed inside a frame: nothing is answered, the daemon closes.
    let halfClosed = try daemon.client()
    try halfClosed.send(Array(status[0..<10]))
    halfClosed.shutdownWrite()
    XCTAssertEqual(try halfClosed.readUntilClosed().map(frameSummary), [])
    // Closed inside a frame (a 1 MiB frame announced, 100 bytes sent).
    do {
      let gone = try daemon.client()
      try gone.send(rawFrameBytes(length: 1 << 20, type: 0x0011, id: 5, payload: [UInt8](repeating: 1, count: 100)))
    }
    let client = try daemon.client()
    try client.send(.status, id: 3)
    XCTAssertEqual(try client.final(of: 3).type, .statusOK)
  }

  func testMalformedPayloadIsAnsweredOnTheRequestAndKeepsTheConnection() throws {
    let client = try daemon.client()
    let notJSON = littleEndian32(3) + Array("{x}".utf8)
    try client.send(rawFrameBytes(type: MessageType.cka.rawValue, id: 7, payload: notJSON))
    let frame = try client.final(of: 7)
    let doc = try expectErrorDoc(frame)
    XCTAssertEqual(doc.errorCode, .malformedPayload)
    XCTAssertFalse(doc.close)
    XCTAssertEqual(frame.requestID, 7)

    let tensor = WireTensor(name: "x", doubles: [1, 2, 3, 4], shape: [2, 2])
    try client.send(try Frame.message(type: .cka, requestID: 8, doc: EmptyDoc(), tensors: [tensor]))
    let echoed = try client.final(of: 8)
    XCTAssertEqual(echoed.type, .ckaOK, frameSummary(echoed))
    XCTAssertEqual(try echoed.parsedPayload().tensors, [tensor])
  }

  func testAnswerOverItsLimitBecomesResultTooLarge() throws {
    let client = try daemon.client()
    try client.send(.models, id: 4)
    let frame = try client.final(of: 4)
    let doc = try expectErrorDoc(frame)
    XCTAssertEqual(doc.errorCode, .resultTooLarge, doc.message)
    XCTAssertFalse(doc.close)
    try client.send(.status, id: 5)
    XCTAssertEqual(try client.final(of: 5).type, .statusOK)
  }

  /// Pipelined requests in one write: each id gets its PROGRESS events and then exactly one
  /// final frame, in whatever order they finish.
  func testPipelinedRequestsAreAnsweredByID() throws {
    let client = try daemon.client()
    var bytes: [UInt8] = []
    bytes += try WireTestClient.request(.describe, id: 10, doc: SleepDoc(ms: 300, events: 3)).encoded()
    bytes += try WireTestClient.request(.describe, id: 11, doc: SleepDoc(ms: 100, events: 2)).encoded()
    bytes += try WireTestClient.request(.status, id: 12).encoded()
    bytes += try WireTestClient.request(.describe, id: 13, doc: SleepDoc(ms: 0, events: 0)).encoded()
    bytes += try WireTestClient.request(.watch, id: 14, doc: SizeDoc(events: 5)).encoded()
    try client.send(bytes)
    let frames = try client.readFinals([10, 11, 12, 13, 14])
    let expected: [UInt64: MessageType] = [10: .describeOK, 11: .describeOK, 12: .statusOK, 13: .describeOK, 14: .watchOK]
    var finals: [UInt64: Int] = [:]
    for frame in frames {
      XCTAssertNotNil(expected[frame.requestID], frameSummary(frame))
      if frame.type == .progress {
        XCTAssertNil(finals[frame.requestID], "PROGRESS after the final frame of \(frame.requestID)")
      } else {
        XCTAssertEqual(frame.type, expected[frame.requestID], frameSummary(frame))
        finals[frame.requestID, default: 0] += 1
      }
    }
    XCTAssertEqual(finals, [10: 1, 11: 1, 12: 1, 13: 1, 14: 1])
    XCTAssertEqual(frames.filter { $0.type == .progress && $0.requestID == 10 }.count, 3)
    XCTAssertEqual(frames.filter { $0.type == .progress && $0.requestID == 14 }.count, 5)
  }

  func testQuietSuppressesProgress() throws {
    let client = try daemon.client()
    try client.send(.describe, id: 20, doc: SleepDoc(ms: 40, events: 4), flags: .quiet)
    try client.send(.describe, id: 21, doc: SleepDoc(ms: 40, events: 4))
    let frames = try client.readFinals([20, 21])
    XCTAssertEqual(frames.filter { $0.requestID == 20 }.map(\.type), [.describeOK])
    XCTAssertEqual(frames.filter { $0.requestID == 21 }.map(\.type),
                   [.progress, .progress, .progress, .progress, .describeOK])
  }

  func testTooManyRequestsIsAnsweredOnThatRequestOnly() throws {
    let client = try daemon.client()
    var bytes: [UInt8] = []
    for id in 1...64 { bytes += try WireTestClient.request(.jobs, id: UInt64(100 + id)).encoded() }
    try client.send(bytes)
    XCTAssertTrue(daemon.service.waitHeld(64))
    try client.send(.status, id: 999)
    let refused = try client.final(of: 999)
    XCTAssertEqual(try expectErrorDoc(refused).errorCode, .tooManyRequests)
    XCTAssertFalse(try expectErrorDoc(refused).close)
    daemon.service.releaseHeld()
    let frames = try client.readFinals(Set((1...64).map { UInt64(100 + $0) }))
    XCTAssertEqual(frames.filter { $0.type == .jobsOK }.count, 64)
    // Answered ids are free again.
    try client.send(.status, id: 101)
    XCTAssertEqual(try client.final(of: 101).type, .statusOK)
  }

  func testDuplicateRequestIDClosesTheConnection() throws {
    let client = try daemon.client()
    try client.send(.jobs, id: 9)
    XCTAssertTrue(daemon.service.waitHeld(1))
    try client.send(.status, id: 9)
    let frames = try client.readUntilClosed()
    XCTAssertEqual(frames.count, 1, frames.map(frameSummary).description)
    XCTAssertEqual(try expectErrorDoc(frames.first).errorCode, .duplicateRequestID)
    // The held request's channel sees the connection gone.
    daemon.service.releaseHeld()
  }

  func testClientErrorClosesWithoutAnswer() throws {
    let client = try daemon.client()
    try client.send(.jobs, id: 3)
    XCTAssertTrue(daemon.service.waitHeld(1))
    try client.send(Frame.error(.cancelled, "giving up", requestID: 0))
    XCTAssertEqual(try client.readUntilClosed().map(frameSummary), [])
    daemon.service.releaseHeld()
    // Before HELLO as well: no HELLO_REQUIRED for a client that is leaving.
    let early = try daemon.connect()
    try early.send(Frame.error(.unsupportedVersion, "giving up before HELLO", requestID: 0))
    XCTAssertEqual(try early.readUntilClosed().map(frameSummary), [])
  }

  func testHalfClosedClientStillGetsItsAnswers() throws {
    let client = try daemon.client()
    try client.send(.describe, id: 6, doc: SleepDoc(ms: 100, events: 1))
    client.shutdownWrite()
    let frames = try client.readUntilClosed()
    XCTAssertEqual(frames.map(\.type), [.progress, .describeOK])
    XCTAssertTrue(client.isClosed)
  }

  func testReplyChannelIgnoresSecondAnswerAndLateProgress() throws {
    let outbox = ConnectionOutbox(connectionID: 1, highWater: 1 << 20, wakeup: LoopWakeup())
    let reply = RequestReply(requestID: 5, requestType: .status, quiet: false, version: 1, outbox: outbox)
    reply.progress(ProgressEvent(phase: "a", done: 1, total: 2))
    reply.respond(.statusOK, EchoDoc(text: "first"))
    reply.respond(.statusOK, EchoDoc(text: "second"))
    reply.fail(WireError(.internal, "third"))
    reply.progress(ProgressEvent(phase: "a", done: 2, total: 2))
    let items = outbox.take()
    XCTAssertEqual(items.map(\.kind), [.event, .final])
    var decoder = FrameDecoder(role: .client)
    decoder.feed(items[1].buffer.bytes)
    let final = try XCTUnwrap(try decoder.next())
    XCTAssertEqual(try final.decodeDoc(EchoDoc.self).text, "first")
    XCTAssertFalse(reply.isCancelled)
    outbox.discard()
    XCTAssertTrue(reply.isCancelled)
  }

  func testReplyChannelTurnsWrongTypeAndConnectionCodesIntoInternal() throws {
    let outbox = ConnectionOutbox(connectionID: 1, highWater: 1 << 20, wakeup: LoopWakeup())
    let wrongType = RequestReply(requestID: 1, requestType: .status, quiet: false, version: 1, outbox: outbox)
    wrongType.respond(.jobsOK, EchoDoc(text: "x"))
    let connectionCode = RequestReply(requestID: 2, requestType: .status, quiet: false, version: 1, outbox: outbox)
    connectionCode.fail(WireError(.badMagic, "not a request error"))
    var decoder = FrameDecoder(role: .client)
    for item in outbox.take() { decoder.feed(item.buffer.bytes) }
    for id in [UInt64(1), 2] {
      let frame = try XCTUnwrap(try decoder.next())
      XCTAssertEqual(frame.requestID, id)
      let doc = try expectErrorDoc(frame)
      XCTAssertEqual(doc.errorCode, .internal)
      XCTAssertFalse(doc.close)
    }
  }
}
