import Foundation
import Glibc
import XCTest
@testable import Daemon
import DaemonTestSupport
import Wire

// The golden vectors (Protocol/vectors) sent, byte for byte, to the daemon as it runs: the
// transport serving the real DaemonService on a temporary socket and store. This is what holds
// SPEC.md's conversation rules (sections 2-4), the manifest's `daemon` expectations and the
// daemon together; WireTests check the same vectors against the codec alone.

/// The parts of Protocol/vectors/manifest.json these tests read.
private struct VectorManifest: Decodable {
  struct Answer: Decodable, Hashable, CustomStringConvertible {
    struct ErrorRef: Decodable, Hashable {
      var code: UInt16
      var name: String
      var close: Bool
    }

    var typeName: String
    var requestId: UInt64
    var error: ErrorRef?

    var description: String {
      "\(typeName) (id \(requestId))" + (error.map { " \($0.name)" + ($0.close ? ", close" : "") } ?? "")
    }
  }

  struct Expectation: Decodable {
    var answers: [Answer]
    var closes: Bool
  }

  struct Vector: Decodable {
    var file: String
    var daemon: Expectation?
    var answerTo: [String]?
  }

  var vectors: [Vector]

  static let directory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Protocol/vectors")

  static func load() throws -> VectorManifest {
    let decoder = JSONDecoder()
    decoder.keyDecodingStrategy = .convertFromSnakeCase
    return try decoder.decode(VectorManifest.self,
                              from: Data(contentsOf: directory.appendingPathComponent("manifest.json")))
  }

  static func bytes(_ file: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: directory.appendingPathComponent(file)))
  }
}

/// A received frame as the manifest names it.
private func answer(_ frame: Frame) throws -> VectorManifest.Answer {
  var answer = VectorManifest.Answer(typeName: frame.type.name, requestId: frame.requestID)
  if frame.type == .error {
    let doc = try frame.decodeDoc(ErrorDoc.self)
    answer.error = .init(code: doc.code, name: doc.name, close: doc.close)
  }
  return answer
}

final class TransportVectorTests: ServiceTestCase {
  private var daemonTransport: DaemonTransport!
  private var socketDirectory = ""
  private let finished = DispatchSemaphore(value: 0)
  private var running = false

  override func setUpWithError() throws {
    try super.setUpWithError()
    let service = try makeService()
    socketDirectory = try makeTransportTempDirectory("bs-vectors")
    daemonTransport = DaemonTransport(options: TransportOptions(socketPath: socketDirectory + "/d.sock", log: .silent))
    try daemonTransport.listen()
    let transport = daemonTransport!, finished = self.finished
    let thread = Thread {
      try? transport.run(service: service)
      finished.signal()
    }
    thread.name = "transport-vector-tests"
    thread.start()
    running = true
  }

  override func tearDownWithError() throws {
    if running {
      daemonTransport.stop()
      XCTAssertEqual(finished.wait(timeout: .now() + 30), .success, "the transport did not stop")
    }
    try? FileManager.default.removeItem(atPath: socketDirectory)
    try super.tearDownWithError()
  }

  private func connect() throws -> WireTestClient {
    try WireTestClient(path: daemonTransport.socketPath, clientName: "vector-tests", defaultTimeout: 20)
  }

  /// Every vector with a `daemon` expectation, each on a new connection: the daemon sends
  /// exactly the frames listed (final frames of different requests in any order, a connection
  /// error last) and then closes, or keeps the connection open and answers a STATUS.
  func testTheDaemonAnswersEveryVectorAsTheManifestSays() throws {
    let manifest = try VectorManifest.load()
    let vectors = manifest.vectors.filter { $0.daemon != nil }
    XCTAssertGreaterThanOrEqual(vectors.count, 25)
    for vector in vectors {
      let expected = try XCTUnwrap(vector.daemon)
      let client = try connect()
      try client.send(try VectorManifest.bytes(vector.file))
      var received: [VectorManifest.Answer] = []
      if expected.closes {
        received = try client.readUntilClosed().map(answer)
      } else {
        while received.count < expected.answers.count, let frame = try client.next() {
          received.append(try answer(frame))
        }
        // Still open: a request of the test's own is answered.
        try client.send(.status, id: 0x7FFF_FFFF)
        let status = try client.final(of: 0x7FFF_FFFF)
        XCTAssertEqual(status.type, .statusOK, "\(vector.file): \(frameSummary(status))")
      }
      XCTAssertEqual(Set(received), Set(expected.answers), "\(vector.file): \(received)")
      XCTAssertEqual(received.count, expected.answers.count, "\(vector.file): \(received)")
      // Per request, the order of the manifest; a connection error is the last frame.
      for id in Set(expected.answers.map(\.requestId)) {
        XCTAssertEqual(received.filter { $0.requestId == id }, expected.answers.filter { $0.requestId == id }, vector.file)
      }
      if let last = expected.answers.last, last.requestId == 0 {
        XCTAssertEqual(received.last, last, vector.file)
      }
      XCTAssertEqual(client.isClosed, expected.closes, vector.file)
    }
    // None of them stopped the daemon (a malformed SHUTDOWN among them).
    let client = try connect()
    try client.hello()
    try client.send(.status, id: 2)
    XCTAssertEqual(try client.final(of: 2).type, .statusOK)
  }

  /// `answer_to`: cka_ok_response.bin is byte for byte what the daemon answers to HELLO and
  /// the CKA request of cka_request.bin.
  func testResponseVectorsAreTheDaemonsAnswers() throws {
    let manifest = try VectorManifest.load()
    let answers = manifest.vectors.filter { $0.answerTo != nil }
    XCTAssertFalse(answers.isEmpty)
    for vector in answers {
      let requests = try XCTUnwrap(vector.answerTo)
      let client = try connect()
      try client.send(try requests.flatMap { try VectorManifest.bytes($0) })
      let golden = try VectorManifest.bytes(vector.file)
      var goldenDecoder = FrameDecoder(role: .client)
      goldenDecoder.feed(golden)
      let expected = try XCTUnwrap(try goldenDecoder.next(), vector.file)
      let frame = try client.final(of: expected.requestID)
      XCTAssertEqual(frameSummary(frame), frameSummary(expected), vector.file)
      XCTAssertEqual(String(decoding: frame.payload.dropFirst(4), as: UTF8.self),
                     String(decoding: expected.payload.dropFirst(4), as: UTF8.self), vector.file)
      XCTAssertEqual(frame.encoded(), golden, vector.file)
    }
  }

  /// SPEC.md section 7: STATUS, DATASETS, JOBS, MODELS, STUDY_LIST and SHUTDOWN take a doc
  /// that is a JSON object whose keys are all ignored; the payload rules of section 3 still
  /// hold (an empty doc is not JSON).
  func testRequestsWithoutKeysTakeAnyObject() throws {
    let client = try connect()
    try client.hello()
    let keyless: [MessageType] = [.status, .datasets, .jobs, .models, .studyList]
    var id: UInt64 = 10
    for type in keyless {
      for doc in ["{}", #"{"future_key":[1,{"a":null}],"verbose":true}"#] {
        id += 1
        try client.send(rawFrameBytes(type: type.rawValue, id: id, payload: littleEndian32(UInt32(doc.utf8.count)) + Array(doc.utf8)))
        let frame = try client.final(of: id)
        XCTAssertEqual(frame.type, type.responseType, "\(type.name) \(doc): \(frameSummary(frame))")
      }
      for doc in ["", "[]", "null"] {
        id += 1
        try client.send(rawFrameBytes(type: type.rawValue, id: id, payload: littleEndian32(UInt32(doc.utf8.count)) + Array(doc.utf8)))
        let frame = try client.final(of: id)
        XCTAssertEqual(try expectErrorDoc(frame).errorCode, .malformedPayload, "\(type.name) '\(doc)'")
        XCTAssertEqual(frame.requestID, id)
      }
    }
    // SHUTDOWN: a doc that is not an object is refused and stops nothing; unknown keys are
    // ignored like everywhere.
    try client.send(rawFrameBytes(type: MessageType.shutdown.rawValue, id: 90, payload: littleEndian32(0)))
    XCTAssertEqual(try expectErrorDoc(try client.final(of: 90)).errorCode, .malformedPayload)
    try client.send(.status, id: 91)
    XCTAssertEqual(try client.final(of: 91).type, .statusOK)
    let doc = #"{"future_key":1}"#
    try client.send(rawFrameBytes(type: MessageType.shutdown.rawValue, id: 92, payload: littleEndian32(UInt32(doc.utf8.count)) + Array(doc.utf8)))
    XCTAssertEqual(try client.final(of: 92).type, .shutdownOK)
    XCTAssertEqual(finished.wait(timeout: .now() + 30), .success, "SHUTDOWN did not stop the transport")
    running = false
  }

  /// SPEC.md section 1: a client that writes after the daemon closed gets EPIPE (or
  /// ECONNRESET), and can still read the ERROR frame that said why.
  func testWriteAfterTheDaemonClosedFailsAndTheErrorIsStillReadable() throws {
    let client = try connect()
    try client.send(littleEndian32(0))
    // Wait for the daemon's close without reading (poll reports POLLHUP unasked).
    var entry = pollfd(fd: client.fd, events: 0, revents: 0)
    let deadline = Date().addingTimeInterval(20)
    while entry.revents & Int16(POLLHUP) == 0 && Date() < deadline {
      entry.revents = 0
      _ = poll(&entry, 1, 100)
    }
    XCTAssertNotEqual(entry.revents & Int16(POLLHUP), 0, "the daemon did not close")
    let status = try Frame.message(type: .status, requestID: 2, doc: EmptyDoc()).encoded()
    let sent = status.withUnsafeBytes { Glibc.send(client.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    let code = errno
    XCTAssertEqual(sent, -1)
    XCTAssertTrue(code == EPIPE || code == ECONNRESET, "send after the close: \(String(cString: strerror(code)))")
    let frames = try client.readUntilClosed()
    XCTAssertEqual(frames.count, 1, frames.map(frameSummary).description)
    let doc = try expectErrorDoc(frames.first)
    XCTAssertEqual(doc.errorCode, .frameTooShort)
    XCTAssertEqual(frames.first?.requestID, 0)
    XCTAssertTrue(doc.close)
  }
}
