import Foundation
import XCTest
@testable import Wire

/// Every golden vector, decoded all at once, byte by byte and in seeded random chunks, in each
/// role it applies to; valid frames re-encoded to the golden bytes.
final class GoldenVectorTests: XCTestCase {
  var manifest: GoldenManifest!

  override func setUpWithError() throws {
    manifest = try GoldenManifest.load()
  }

  func testManifestDescribesEveryVectorFile() throws {
    XCTAssertEqual(manifest.specVersion, Int(FrameHeader.currentVersion))
    let files = try FileManager.default.contentsOfDirectory(atPath: GoldenManifest.directory.path)
      .filter { $0.hasSuffix(".bin") }
    XCTAssertEqual(Set(files), Set(manifest.vectors.map(\.file)))
    XCTAssertEqual(manifest.vectors.count, Set(manifest.vectors.map(\.file)).count)
    // The manifest's names are the spec's names, and so are this implementation's.
    for vector in manifest.vectors {
      for entry in vector.frames + [vector.badFrame].compactMap({ $0 }) {
        XCTAssertEqual(MessageType(rawValue: entry.type)?.name, entry.typeName, vector.file)
      }
      if let error = vector.error {
        XCTAssertEqual(ErrorCode(rawValue: error.code)?.name, error.name, vector.file)
      }
    }
  }

  /// A response that is the daemon's answer to request vectors (`answer_to`) answers the last
  /// of them: the same request id, its type's response. That it is the daemon's answer byte for
  /// byte is TransportVectorTests' to check (it runs the daemon).
  func testAnswerVectorsMatchTheirRequests() throws {
    let answers = manifest.vectors.filter { $0.answerTo != nil }
    XCTAssertEqual(answers.map(\.file), ["cka_ok_response.bin"])
    for vector in answers {
      let requests = try XCTUnwrap(vector.answerTo).map { file in manifest.vectors.first { $0.file == file } }
      XCTAssertTrue(requests.allSatisfy { $0?.direction == "request" && $0?.expect == "frames" }, vector.file)
      XCTAssertEqual(requests.first??.frames.first?.typeName, "HELLO", vector.file)
      let request = try XCTUnwrap(requests.last??.frames.last, vector.file)
      let response = try XCTUnwrap(vector.frames.last, vector.file)
      XCTAssertEqual(response.requestId, request.requestId, vector.file)
      XCTAssertEqual(response.type, request.type | 0x8000, vector.file)
    }
  }

  /// SPEC.md section 4, "Order of checks", names the vectors that exercise each step: every
  /// name is a vector whose manifest entry says what the daemon answers, and a vector named
  /// after an error code (`CODE`: `vector`) is answered with that code. TransportVectorTests
  /// sends them to the daemon.
  func testTheSpecsOrderOfChecksNamesVectorsWithDaemonAnswers() throws {
    let spec = try String(contentsOf: GoldenManifest.directory.appendingPathComponent("../SPEC.md"), encoding: .utf8)
    let start = try XCTUnwrap(spec.range(of: "### Order of checks"))
    let end = try XCTUnwrap(spec.range(of: "### Message types", range: start.upperBound..<spec.endIndex))
    // One line: list items wrap.
    let section = String(spec[start.upperBound..<end.lowerBound]).split(whereSeparator: \.isWhitespace).joined(separator: " ")
    let vectors = Dictionary(uniqueKeysWithValues: manifest.vectors.map { ($0.file, $0) })

    var named: Set<String> = []
    for match in section.matches(of: /`([a-z0-9]+(?:_[a-z0-9]+)+)`/) {
      let file = String(match.1) + ".bin"
      let vector = try XCTUnwrap(vectors[file], "SPEC.md names \(file), which is not a vector")
      XCTAssertNotNil(vector.daemon, "\(file) has no daemon expectation")
      named.insert(file)
    }
    XCTAssertGreaterThanOrEqual(named.count, 20)

    var paired = 0
    for match in section.matches(of: /`([A-Z_]+)`(?:, close)?: ((?:`[a-z0-9_]+`(?:, )?)+)/) {
      let code = String(match.1)
      XCTAssertNotNil(ErrorCode.allCases.first { $0.name == code }, code)
      for file in match.2.matches(of: /`([a-z0-9_]+)`/).map({ String($0.1) + ".bin" }) {
        let answers = vectors[file]?.daemon?.answers ?? []
        XCTAssertTrue(answers.contains { $0.error?.name == code }, "\(file) is not answered \(code): \(answers)")
        paired += 1
      }
    }
    XCTAssertGreaterThanOrEqual(paired, 12)
    // Every payload vector is one of "the bad_payload_* vectors".
    XCTAssertTrue(section.contains("`bad_payload_*`"))
    for vector in manifest.vectors where vector.level == "payload" {
      XCTAssertTrue(vector.file.hasPrefix("bad_payload_"), vector.file)
      XCTAssertEqual(vector.daemon?.answers.last?.error?.name, "MALFORMED_PAYLOAD", vector.file)
    }
  }

  func testValidVectorsDecodeInEveryFeeding() throws {
    let valid = manifest.vectors.filter { $0.expect == "frames" }
    XCTAssertGreaterThanOrEqual(valid.count, 10)
    for vector in valid {
      let bytes = try GoldenManifest.bytes(of: vector)
      for role in vector.roles {
        for feeding in Feeding.all {
          let context = "\(vector.file), \(role), \(feeding)"
          let run = decodeStream(bytes, role: role, feeding: feeding)
          XCTAssertNil(run.error, context)
          XCTAssertEqual(run.bufferedAtEnd, 0, context)
          XCTAssertFalse(run.partialAtEnd, context)
          XCTAssertEqual(run.frames.count, vector.frames.count, context)
          for (frame, entry) in zip(run.frames, vector.frames) {
            try check(frame, against: entry, context)
          }
        }
      }
    }
  }

  func testValidVectorsReencodeToTheGoldenBytes() throws {
    for vector in manifest.vectors where vector.expect == "frames" {
      let bytes = try GoldenManifest.bytes(of: vector)
      let frames = decodeStream(bytes, role: vector.roles[0], feeding: .allAtOnce).frames
      XCTAssertEqual(frames.count, vector.frames.count, vector.file)

      // The frame as decoded.
      XCTAssertEqual(frames.flatMap { $0.encoded() }, bytes, vector.file)
      // The payload split into doc and tensors and joined again.
      var fromPayloads: [UInt8] = []
      for frame in frames {
        var rebuilt = frame
        rebuilt.payload = try frame.parsedPayload().encoded()
        fromPayloads += rebuilt.encoded()
      }
      XCTAssertEqual(fromPayloads, bytes, vector.file)
      // The doc decoded into its message struct and encoded by Payload.encode: the Swift
      // encoder writes the same deterministic JSON as the Python generator.
      // A doc the daemon refuses with a request error (a HELLO without min_version) has no
      // message struct to go through; its bytes were compared above.
      let refused = Set((vector.daemon?.answers ?? []).filter { $0.error.map { !$0.close } ?? false }.map(\.requestId))
      var fromMessages: [UInt8] = []
      for frame in frames {
        fromMessages += refused.contains(frame.requestID) ? frame.encoded() : try reencodeThroughMessage(frame).encoded()
      }
      XCTAssertEqual(String(decoding: fromMessages.dropFirst(20), as: UTF8.self),
                     String(decoding: bytes.dropFirst(20), as: UTF8.self), vector.file)
      XCTAssertEqual(fromMessages, bytes, vector.file)
    }
  }

  func testFrameErrorsAfterTheRightNumberOfFrames() throws {
    let malformed = manifest.vectors.filter { $0.expect == "error" && $0.level == "frame" }
    XCTAssertGreaterThanOrEqual(malformed.count, 10)
    for vector in malformed {
      let bytes = try GoldenManifest.bytes(of: vector)
      let expected = try XCTUnwrap(vector.error, vector.file)
      for role in vector.roles {
        for feeding in Feeding.all {
          let context = "\(vector.file), \(role), \(feeding)"
          let run = decodeStream(bytes, role: role, feeding: feeding)
          let error = try XCTUnwrap(run.error, context)
          XCTAssertEqual(error.code.rawValue, expected.code, "\(context): \(error)")
          XCTAssertEqual(error.code.name, expected.name, context)
          XCTAssertEqual(run.framesBeforeError, vector.afterFrames, context)
          XCTAssertEqual(run.frames.count, vector.frames.count, context)
          for (frame, entry) in zip(run.frames, vector.frames) {
            try check(frame, against: entry, context)
          }
        }
      }
    }
  }

  func testPayloadErrorsAreMalformedPayloadAfterTheFrameDecodes() throws {
    let malformed = manifest.vectors.filter { $0.expect == "error" && $0.level == "payload" }
    XCTAssertGreaterThanOrEqual(malformed.count, 6)
    for vector in malformed {
      let bytes = try GoldenManifest.bytes(of: vector)
      let expected = try XCTUnwrap(vector.error, vector.file)
      let bad = try XCTUnwrap(vector.badFrame, vector.file)
      for role in vector.roles {
        for feeding in Feeding.all {
          let context = "\(vector.file), \(role), \(feeding)"
          let run = decodeStream(bytes, role: role, feeding: feeding)
          XCTAssertNil(run.error, context)
          XCTAssertEqual(run.bufferedAtEnd, 0, context)
          XCTAssertEqual(run.frames.count, try XCTUnwrap(vector.afterFrames) + 1, context)
          for (frame, entry) in zip(run.frames, vector.frames) {
            try check(frame, against: entry, context)
          }
          let last = try XCTUnwrap(run.frames.last, context)
          checkHeader(last, against: bad, context)
          XCTAssertThrowsError(try Payload.parse(last.payload), context) { error in
            XCTAssertEqual((error as? WireError)?.code.rawValue, expected.code, "\(context): \(error)")
          }
        }
      }
    }
  }

  func testTruncatedStreamYieldsNothingAndNoError() throws {
    let incomplete = manifest.vectors.filter { $0.expect == "incomplete" }
    XCTAssertEqual(incomplete.count, 1)
    for vector in incomplete {
      let bytes = try GoldenManifest.bytes(of: vector)
      for role in vector.roles {
        for feeding in Feeding.all {
          let context = "\(vector.file), \(role), \(feeding)"
          let run = decodeStream(bytes, role: role, feeding: feeding)
          XCTAssertNil(run.error, context)
          XCTAssertEqual(run.frames.count, vector.afterFrames, context)
          XCTAssertTrue(run.partialAtEnd, context)
          XCTAssertEqual(run.bufferedAtEnd, vector.trailingBytes, context)
          for (frame, entry) in zip(run.frames, vector.frames) {
            try check(frame, against: entry, context)
          }
        }
      }
    }
  }

  /// All the golden frames of every valid vector in one stream, per role: still every frame.
  func testEveryValidVectorBackToBack() throws {
    for role in [FrameDecoder.Role.server, .client] {
      let vectors = manifest.vectors.filter { $0.expect == "frames" && $0.roles.contains(role) }
      var stream: [UInt8] = []
      var entries: [GoldenManifest.FrameEntry] = []
      for vector in vectors {
        stream += try GoldenManifest.bytes(of: vector)
        entries += vector.frames
      }
      for feeding in [Feeding.allAtOnce, .randomChunks(seed: 42)] {
        let run = decodeStream(stream, role: role, feeding: feeding)
        XCTAssertNil(run.error)
        XCTAssertEqual(run.frames.count, entries.count)
        for (frame, entry) in zip(run.frames, entries) {
          try check(frame, against: entry, "\(role), \(feeding)")
        }
      }
    }
  }

  // MARK: Checks

  private func checkHeader(_ frame: Frame, against entry: GoldenManifest.FrameEntry, _ context: String) {
    XCTAssertEqual(frame.version, entry.version, context)
    XCTAssertEqual(frame.flags.rawValue, entry.flags, context)
    XCTAssertEqual(frame.type.rawValue, entry.type, context)
    XCTAssertEqual(frame.type.name, entry.typeName, context)
    XCTAssertEqual(frame.requestID, entry.requestId, context)
    XCTAssertEqual(frame.length, entry.length, context)
  }

  private func check(_ frame: Frame, against entry: GoldenManifest.FrameEntry, _ context: String) throws {
    checkHeader(frame, against: entry, context)
    let payload = try frame.parsedPayload()
    XCTAssertEqual(try JSONValue.parse(payload.doc), entry.doc, context)
    let tensors = entry.tensors ?? []
    XCTAssertEqual(payload.tensors.count, tensors.count, context)
    for (tensor, expected) in zip(payload.tensors, tensors) {
      XCTAssertEqual(tensor.name, expected.name, context)
      XCTAssertEqual(tensor.dtype.rawValue, expected.dtype, context)
      XCTAssertEqual(tensor.shape, expected.shape, context)
      XCTAssertEqual(tensor.elementCount, expected.data.count, context)
      let values: [Double]?
      switch tensor.dtype {
      case .f32, .f16, .bf16: values = tensor.widenedFloats?.map(Double.init)
      case .f64: values = tensor.doubles
      case .i32: values = tensor.int32s?.map(Double.init)
      case .u8: values = tensor.uint8s?.map(Double.init)
      }
      XCTAssertEqual(values, expected.data, "\(context), tensor \(tensor.name)")
      XCTAssertEqual(tensor.valuesAsDoubles, expected.data, "\(context), tensor \(tensor.name)")
    }
  }

  /// Decodes the frame's doc into the struct of its type and encodes it again.
  private func reencodeThroughMessage(_ frame: Frame) throws -> Frame {
    func through<T: Codable>(_: T.Type) throws -> Frame {
      let payload = try frame.parsedPayload()
      let doc = try payload.decode(T.self)
      return try Frame.message(type: frame.type, requestID: frame.requestID, doc: doc,
                               tensors: payload.tensors, flags: frame.flags, version: frame.version)
    }
    switch frame.type {
    case .hello: return try through(HelloRequest.self)
    case .helloOK: return try through(HelloResponse.self)
    case .status, .datasets, .models, .jobs, .shutdown: return try through(EmptyDoc.self)
    case .statusOK: return try through(StatusResponse.self)
    case .train: return try through(TrainRequest.self)
    case .progress: return try through(ProgressEvent.self)
    case .error: return try through(ErrorDoc.self)
    case .heatmapOK: return try through(HeatmapResponse.self)
    case .cka: return try through(CKARequest.self)
    case .ckaOK: return try through(CKAResponse.self)
    case .studyCreate: return try through(StudyCreateRequest.self)
    case .studyStatusOK, .studyRunOK: return try through(StudyStatusResponse.self)
    case .studyRun: return try through(StudyRunRequest.self)
    case .sessionOpen: return try through(SessionOpenRequest.self)
    case .sessionOpenOK: return try through(SessionOpenResponse.self)
    case .sessionBatch: return try through(SessionBatchRequest.self)
    case .sessionBatchOK: return try through(SessionBatchResponse.self)
    default:
      XCTFail("no message struct mapped for \(frame.type.name) in this test")
      return frame
    }
  }
}
