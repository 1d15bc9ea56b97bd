import XCTest
@testable import Wire

/// SPEC.md section 4: the daemon's conversation rules.
final class ProtocolSessionTests: XCTestCase {
  private func hello(id: UInt64 = 1, min: UInt8 = 1, max: UInt8 = 1) -> Frame {
    try! Frame.message(type: .hello, requestID: id,
                       doc: HelloRequest(minVersion: min, maxVersion: max, client: "test"))
  }

  private func request(_ type: MessageType = .status, id: UInt64, version: UInt8 = 1) -> Frame {
    try! Frame.message(type: type, requestID: id, doc: EmptyDoc(), version: version)
  }

  private func established(versions: ClosedRange<UInt8> = 1...1, clientMax: UInt8 = 1) -> ProtocolSession {
    var session = ProtocolSession(supportedVersions: versions)
    guard case .hello = session.receive(hello(max: clientMax)) else {
      XCTFail("HELLO not accepted")
      return session
    }
    return session
  }

  private func expectClose(_ decision: ProtocolSession.Decision, _ code: ErrorCode,
                           file: StaticString = #filePath, line: UInt = #line) {
    guard case .close(let error) = decision else {
      return XCTFail("expected close with \(code.name), got \(decision)", file: file, line: line)
    }
    XCTAssertEqual(error.code, code, file: file, line: line)
    XCTAssertTrue(error.closesConnection, file: file, line: line)
  }

  private func expectReject(_ decision: ProtocolSession.Decision, _ code: ErrorCode, id: UInt64,
                            file: StaticString = #filePath, line: UInt = #line) {
    guard case .reject(let requestID, let error) = decision else {
      return XCTFail("expected reject with \(code.name), got \(decision)", file: file, line: line)
    }
    XCTAssertEqual(requestID, id, file: file, line: line)
    XCTAssertEqual(error.code, code, file: file, line: line)
  }

  func testHelloMustComeFirst() {
    // The type is checked before the request id: a STATUS on id 0 is HELLO_REQUIRED too.
    for first in [request(id: 1), request(.train, id: 1), request(id: 0)] {
      var session = ProtocolSession()
      expectClose(session.receive(first), .helloRequired)
      XCTAssertFalse(session.isEstablished)
    }
  }

  /// SPEC.md section 4: a client's ERROR means it is closing, before HELLO as after; the
  /// daemon closes without answering, whatever the ERROR's request id.
  func testClientErrorBeforeHelloClosesWithoutAnswer() {
    for id in [UInt64(0), 12] {
      var session = ProtocolSession()
      guard case .peerError(let doc) = session.receive(Frame.error(.unsupportedVersion, "giving up", requestID: id)) else {
        return XCTFail("a first ERROR (id \(id)) is not the client closing")
      }
      XCTAssertEqual(doc?.errorCode, .unsupportedVersion)
      XCTAssertFalse(session.isEstablished)
    }
    var garbled = ProtocolSession()
    guard case .peerError(nil) = garbled.receive(Frame(type: .error, requestID: 0, payload: [])) else {
      return XCTFail("an ERROR whose doc does not decode is still the client closing")
    }
  }

  /// HELLO is a request: id 0 is MALFORMED_HEADER and close, checked before its doc.
  func testHelloWithRequestIDZeroCloses() {
    var session = ProtocolSession()
    expectClose(session.receive(hello(id: 0)), .malformedHeader)
    XCTAssertFalse(session.isEstablished)
    var garbage = ProtocolSession()
    expectClose(garbage.receive(Frame(type: .hello, requestID: 0, payload: [1, 0, 0, 0, 0x7B])), .malformedHeader)
  }

  func testHelloNegotiatesTheHighestCommonVersion() {
    var session = ProtocolSession(supportedVersions: 1...3)
    XCTAssertEqual(session.negotiate(min: 1, max: 5), 3)
    XCTAssertEqual(session.negotiate(min: 2, max: 2), 2)
    XCTAssertEqual(session.negotiate(min: 0, max: 1), 1)
    XCTAssertNil(session.negotiate(min: 4, max: 9))
    XCTAssertNil(session.negotiate(min: 3, max: 1))
    XCTAssertEqual(session.replyVersion, 1)
    guard case .hello(let request, let version) = session.receive(hello(id: 7, min: 1, max: 2)) else {
      return XCTFail("HELLO not accepted")
    }
    XCTAssertEqual(request.client, "test")
    XCTAssertEqual(version, 2)
    XCTAssertEqual(session.negotiatedVersion, 2)
    XCTAssertEqual(session.replyVersion, 2)
    XCTAssertTrue(session.isEstablished)
  }

  func testHelloWithoutCommonVersionCloses() {
    var session = ProtocolSession()
    expectClose(session.receive(hello(min: 2, max: 4)), .unsupportedVersion)
    var reversed = ProtocolSession()
    expectClose(reversed.receive(hello(min: 1, max: 0)), .unsupportedVersion)
  }

  func testMalformedHelloIsAnsweredAndTheConnectionWaitsForAGoodOne() {
    var session = ProtocolSession()
    let garbage = Frame(type: .hello, requestID: 3, payload: [1, 0, 0, 0, 0x7B])
    expectReject(session.receive(garbage), .malformedPayload, id: 3)
    let missingKey = try! Frame.message(type: .hello, requestID: 4, doc: ["client": "x"])
    expectReject(session.receive(missingKey), .invalidArgument, id: 4)
    XCTAssertFalse(session.isEstablished)
    guard case .hello = session.receive(hello(id: 5)) else { return XCTFail("HELLO not accepted") }
  }

  func testSecondHelloCloses() {
    var session = established()
    expectClose(session.receive(hello(id: 2)), .helloRequired)
  }

  func testFramesMustCarryTheNegotiatedVersion() {
    var session = established(versions: 1...2, clientMax: 2)
    expectClose(session.receive(request(id: 5, version: 1)), .versionMismatch)
    guard case .dispatch = session.receive(request(id: 6, version: 2)) else {
      return XCTFail("request in the negotiated version not dispatched")
    }
  }

  func testRequestIDsInFlight() {
    var session = established()
    guard case .dispatch(let frame) = session.receive(request(id: 10)) else { return XCTFail() }
    XCTAssertEqual(frame.requestID, 10)
    XCTAssertEqual(session.inFlight, [10])
    XCTAssertTrue(session.complete(requestID: 10))
    XCTAssertFalse(session.complete(requestID: 10))
    guard case .dispatch = session.receive(request(id: 10)) else { return XCTFail("id not reusable") }
  }

  func testReusedIDOfUnansweredRequestCloses() {
    var session = established()
    guard case .dispatch = session.receive(request(id: 10)) else { return XCTFail() }
    // An answer on id 10 could not be told from the first request's: a connection error.
    expectClose(session.receive(request(.models, id: 10)), .duplicateRequestID)
  }

  func testRequestIDZeroIsReserved() {
    var session = established()
    expectClose(session.receive(request(id: 0)), .malformedHeader)
  }

  func testAtMost64RequestsInFlight() {
    var session = established()
    for id in 1...UInt64(ProtocolSession.maxInFlightRequests) {
      guard case .dispatch = session.receive(request(id: id)) else { return XCTFail("request \(id)") }
    }
    expectReject(session.receive(request(id: 1000)), .tooManyRequests, id: 1000)
    XCTAssertEqual(session.inFlight.count, 64)
    session.complete(requestID: 17)
    guard case .dispatch = session.receive(request(id: 1000)) else { return XCTFail("after completion") }
  }

  func testClientErrorMeansTheClientIsClosing() {
    var session = established()
    guard case .peerError(let doc) = session.receive(Frame.error(.badMagic, "your HELLO_OK", requestID: 0)) else {
      return XCTFail("client ERROR not recognised")
    }
    XCTAssertEqual(doc?.errorCode, .badMagic)
  }

  func testResponseTypesAreNotRequests() {
    var session = established()
    expectClose(session.receive(request(.statusOK, id: 3)), .notARequest)
  }

  /// Every golden vector with a `daemon` expectation through the decoder and the session, as
  /// the daemon runs them: what the two decide (HELLO_OK, ERRORs on the request's id, the
  /// connection error and the close) is what the manifest says blockscoped answers. Requests
  /// the session dispatches are the service's to answer; the manifest must expect exactly one
  /// final frame for each, and no connection error for them.
  func testDaemonExpectationsOfTheVectors() throws {
    let manifest = try GoldenManifest.load()
    let vectors = manifest.vectors.filter { $0.daemon != nil }
    XCTAssertGreaterThanOrEqual(vectors.count, 25)
    for vector in vectors {
      let expected = try XCTUnwrap(vector.daemon)
      var decoder = FrameDecoder(role: .server)
      var session = ProtocolSession()
      decoder.feed(try GoldenManifest.bytes(of: vector))
      var answers: [GoldenManifest.Answer] = []
      var dispatched: [UInt64] = []
      var closed = false
      func errorAnswer(_ error: WireError, _ id: UInt64) -> GoldenManifest.Answer {
        GoldenManifest.Answer(type: MessageType.error.rawValue, typeName: "ERROR", requestId: id,
                              error: .init(code: error.code.rawValue, name: error.code.name, close: error.closesConnection))
      }
      decoding: while true {
        let frame: Frame
        do throws(WireError) {
          guard let next = try decoder.next() else { break }
          frame = next
        } catch {
          answers.append(errorAnswer(error, 0))
          closed = true
          break
        }
        switch session.receive(frame) {
        case .hello(_, let version):
          decoder.negotiatedVersion = version
          answers.append(.init(type: MessageType.helloOK.rawValue, typeName: "HELLO_OK", requestId: frame.requestID))
        case .dispatch(let request):
          dispatched.append(request.requestID)
        case .reject(let id, let wireError):
          answers.append(errorAnswer(wireError, id))
        case .close(let wireError):
          answers.append(errorAnswer(wireError, 0))
          closed = true
          break decoding
        case .peerError:
          closed = true
          break decoding
        }
      }
      let fromService = expected.answers.filter { answer in dispatched.contains(answer.requestId) }
      XCTAssertEqual(fromService.count, dispatched.count, "\(vector.file): one final frame per dispatched request")
      XCTAssertTrue(fromService.allSatisfy { $0.error.map { !$0.close } ?? true }, vector.file)
      XCTAssertEqual(answers, expected.answers.filter { !dispatched.contains($0.requestId) }, vector.file)
      XCTAssertEqual(closed, expected.closes, vector.file)
      if let last = expected.answers.last, last.requestId == 0 {
        XCTAssertEqual(last.error?.close, true, vector.file)
      }
    }
  }

  /// The pipelined golden vector through the decoder and the session, as the daemon runs them.
  func testPipelinedVectorThroughDecoderAndSession() throws {
    let manifest = try GoldenManifest.load()
    let vector = try XCTUnwrap(manifest.vectors.first { $0.file == "pipelined_requests.bin" })
    var decoder = FrameDecoder(role: .server)
    var session = ProtocolSession()
    decoder.feed(try GoldenManifest.bytes(of: vector))
    var dispatched: [MessageType] = []
    while let frame = try decoder.next() {
      switch session.receive(frame) {
      case .hello(_, let version): decoder.negotiatedVersion = version
      case .dispatch(let request): dispatched.append(request.type)
      default: XCTFail("unexpected decision for \(frame.type.name)")
      }
    }
    XCTAssertEqual(dispatched, [.status, .models])
    XCTAssertEqual(session.inFlight.count, 2)
  }
}
