import XCTest
@testable import Wire

/// The incremental decoder beyond the golden vectors: limits, memory, roles, check order.
final class FrameDecoderTests: XCTestCase {
  /// A frame's first 20 bytes with any field set.
  private func header(length: UInt32, type: UInt16 = MessageType.status.rawValue,
                      version: UInt8 = 1, flags: UInt8 = 0, reserved: UInt16 = 0,
                      magic: UInt16 = FrameHeader.magicValue, requestID: UInt64 = 9) -> [UInt8] {
    var h = FrameHeader(length: length, version: version, flags: FrameFlags(rawValue: flags),
                        rawType: type, reserved: reserved, requestID: requestID)
    h.magic = magic
    var bytes: [UInt8] = []
    h.encode(into: &bytes)
    return bytes
  }

  private func statusFrame(id: UInt64, doc: String = "{}") -> Frame {
    Frame(type: .status, requestID: id, payload: Payload(doc: Array(doc.utf8)).encoded())
  }

  private func expectError(_ code: ErrorCode, _ decoder: inout FrameDecoder,
                           file: StaticString = #filePath, line: UInt = #line) {
    do {
      let frame = try decoder.next()
      XCTFail("expected \(code.name), got \(String(describing: frame))", file: file, line: line)
    } catch {
      XCTAssertEqual(error.code, code, "\(error)", file: file, line: line)
    }
  }

  // MARK: Memory

  /// 2^32-1 announced: FRAME_TOO_LARGE from the four length bytes, nothing buffered for it.
  func testFourGiBAnnouncementFailsBeforeAnyPayloadByte() throws {
    var decoder = FrameDecoder(role: .server)
    decoder.feed([0xFF, 0xFF, 0xFF])
    XCTAssertNil(try decoder.next())
    XCTAssertEqual(decoder.bufferedByteCount, 3)
    decoder.feed([0xFF])
    XCTAssertEqual(decoder.bufferedByteCount, 4)
    XCTAssertLessThan(decoder.bufferCapacity, 4096)
    expectError(.frameTooLarge, &decoder)
    // Whatever the peer sends next is not kept.
    decoder.feed([UInt8](repeating: 0xAB, count: 1 << 20))
    XCTAssertEqual(decoder.bufferedByteCount, 0)
    XCTAssertLessThan(decoder.bufferCapacity, 4096)
    expectError(.frameTooLarge, &decoder)
  }

  func testLengthJustOverTwoToTheThirtyFailsFromTheLengthAlone() {
    for role in [FrameDecoder.Role.server, .client] {
      var decoder = FrameDecoder(role: role)
      decoder.feed(Array(header(length: UInt32(FrameHeader.maxLength + 1)).prefix(4)))
      expectError(.frameTooLarge, &decoder)
    }
  }

  /// A 1 GiB EXPORT_OK is legal: the decoder waits for it, holding only what arrived.
  func testLargestLegalFrameIsAwaitedWithoutReservingItsLength() throws {
    var decoder = FrameDecoder(role: .client)
    decoder.feed(header(length: UInt32(FrameHeader.maxLength), type: MessageType.exportOK.rawValue))
    XCTAssertNil(try decoder.next())
    let chunk = [UInt8](repeating: 7, count: 4096)
    for _ in 0..<16 {
      decoder.feed(chunk)
      XCTAssertNil(try decoder.next())
    }
    XCTAssertEqual(decoder.bufferedByteCount, 20 + 16 * 4096)
    XCTAssertLessThan(decoder.bufferCapacity, 1 << 20)
    XCTAssertTrue(decoder.hasPartialFrame)
  }

  func testEveryTypeAcceptsItsLimitAndRejectsOneMore() throws {
    for type in MessageType.allCases {
      let role: FrameDecoder.Role = type.isRequest ? .server : .client
      var atLimit = FrameDecoder(role: role)
      atLimit.feed(header(length: UInt32(type.limit), type: type.rawValue))
      XCTAssertNil(try atLimit.next(), type.name)
      var overLimit = FrameDecoder(role: role)
      overLimit.feed(header(length: UInt32(type.limit + 1), type: type.rawValue))
      expectError(.frameTooLarge, &overLimit)
    }
  }

  /// Consumed bytes are dropped: a long conversation does not grow the buffer.
  func testConsumedBytesAreCompacted() throws {
    var decoder = FrameDecoder(role: .server)
    let frame = statusFrame(id: 1, doc: "{\"pad\":\"\(String(repeating: "x", count: 200))\"}").encoded()
    for i in 0..<2000 {
      // Each frame arrives in two reads split mid-frame, so a partial frame is always kept.
      let cut = 1 + i % (frame.count - 1)
      decoder.feed(frame[..<cut])
      XCTAssertNil(try decoder.next())
      decoder.feed(frame[cut...])
      XCTAssertEqual(try decoder.next()?.requestID, 1)
      XCTAssertEqual(decoder.bufferedByteCount, 0)
    }
    XCTAssertLessThan(decoder.bufferCapacity, 4 * frame.count)
  }

  func testPartialFrameSurvivesCompaction() throws {
    var decoder = FrameDecoder(role: .server)
    let frames = (1...3).map { statusFrame(id: UInt64($0)).encoded() }
    let stream = frames[0] + frames[1] + frames[2]
    let half = frames[0].count * 2 + frames[2].count / 2
    decoder.feed(stream[..<half])
    XCTAssertEqual(try decoder.next()?.requestID, 1)
    XCTAssertEqual(try decoder.next()?.requestID, 2)
    XCTAssertNil(try decoder.next())
    XCTAssertEqual(decoder.bufferedByteCount, frames[2].count / 2)
    decoder.feed(stream[half...])
    XCTAssertEqual(try decoder.next()?.requestID, 3)
    XCTAssertNil(try decoder.next())
    XCTAssertFalse(decoder.hasPartialFrame)
  }

  func testManyFramesInOneBuffer() throws {
    var stream: [UInt8] = []
    var expected: [Frame] = []
    for id in 0..<1000 {
      let doc = "{\"i\":\(id),\"pad\":\"\(String(repeating: "p", count: id % 37))\"}"
      let tensor = WireTensor(name: "t", uint8s: [UInt8](repeating: UInt8(id % 251), count: id % 5),
                              shape: [id % 5])
      var payload = try Payload.encode(["i": id], tensors: id % 3 == 0 ? [tensor] : [])
      if id % 3 != 0 { payload = Payload(doc: Array(doc.utf8)) }
      let frame = Frame(flags: id % 2 == 0 ? [] : .quiet, type: .models, requestID: UInt64(id) << 20,
                        payload: payload.encoded())
      expected.append(frame)
      stream += frame.encoded()
    }
    var decoder = FrameDecoder(role: .server)
    decoder.feed(stream)
    var frames: [Frame] = []
    while let frame = try decoder.next() { frames.append(frame) }
    XCTAssertEqual(frames, expected)
    XCTAssertEqual(decoder.bufferedByteCount, 0)
  }

  func testFeedFromUnsafeRawBufferPointer() throws {
    let bytes = statusFrame(id: 77).encoded() + statusFrame(id: 78).encoded()
    var decoder = FrameDecoder(role: .server)
    bytes.withUnsafeBytes { decoder.feed(UnsafeRawBufferPointer(rebasing: $0[0..<10])) }
    XCTAssertNil(try decoder.next())
    bytes.withUnsafeBytes { decoder.feed(UnsafeRawBufferPointer(rebasing: $0[10...])) }
    XCTAssertEqual(try decoder.next()?.requestID, 77)
    XCTAssertEqual(try decoder.next()?.requestID, 78)
    XCTAssertNil(try decoder.next())
  }

  // MARK: Roles

  func testServerAcceptsRequestsAndErrorOnly() throws {
    for type in MessageType.allCases {
      var decoder = FrameDecoder(role: .server)
      decoder.feed(Frame(type: type, requestID: 1, payload: Payload(doc: Array("{}".utf8)).encoded()).encoded())
      if type.isRequest || type == .error {
        XCTAssertEqual(try decoder.next()?.type, type)
      } else {
        expectError(.notARequest, &decoder)
      }
    }
  }

  func testClientAcceptsResponsesEventsAndErrors() throws {
    for type in MessageType.allCases {
      var decoder = FrameDecoder(role: .client)
      decoder.feed(Frame(type: type, requestID: 1, payload: Payload(doc: Array("{}".utf8)).encoded()).encoded())
      if type.isRequest {
        expectError(.unknownType, &decoder)
      } else {
        XCTAssertEqual(try decoder.next()?.type, type)
      }
    }
  }

  func testFailedDecoderKeepsFailingWithTheSameError() throws {
    var decoder = FrameDecoder(role: .server)
    decoder.feed(statusFrame(id: 1).encoded())
    decoder.feed(header(length: 16, magic: 0x4242))
    decoder.feed(statusFrame(id: 2).encoded())
    XCTAssertEqual(try decoder.next()?.requestID, 1)
    expectError(.badMagic, &decoder)
    let first = decoder.failure
    decoder.feed(statusFrame(id: 3).encoded())
    for _ in 0..<3 {
      XCTAssertThrowsError(try decoder.next()) { XCTAssertEqual($0 as? WireError, first) }
    }
  }

  // MARK: Check order (SPEC.md section 2)

  func testHeaderChecksComeInTheSpecsOrder() {
    func firstError(_ bytes: [UInt8], negotiated: UInt8? = nil,
                    versions: ClosedRange<UInt8> = 1...1) -> ErrorCode? {
      var decoder = FrameDecoder(role: .server, supportedVersions: versions)
      decoder.negotiatedVersion = negotiated
      decoder.feed(bytes)
      do {
        _ = try decoder.next()
        return nil
      } catch {
        return error.code
      }
    }
    // Length before everything else.
    XCTAssertEqual(firstError(header(length: 15, magic: 0)), .frameTooShort)
    // Magic, then version, then flags and reserved, then type, then the type's limit.
    XCTAssertEqual(firstError(header(length: 16, version: 9, magic: 0)), .badMagic)
    XCTAssertEqual(firstError(header(length: 16, version: 9, flags: 2)), .unsupportedVersion)
    XCTAssertEqual(firstError(header(length: 16, version: 0)), .unsupportedVersion)
    XCTAssertEqual(firstError(header(length: 16, version: 1, flags: 2), negotiated: 2, versions: 1...2),
                   .versionMismatch)
    XCTAssertEqual(firstError(header(length: 16, version: 2), negotiated: 2, versions: 1...2), nil)
    XCTAssertEqual(firstError(header(length: 16, type: 0x0077, flags: 0x80)), .malformedHeader)
    XCTAssertEqual(firstError(header(length: 16, type: 0x0077, reserved: 1)), .malformedHeader)
    XCTAssertEqual(firstError(header(length: 1 << 30, type: 0x0077)), .unknownType)
    XCTAssertEqual(firstError(header(length: 1 << 30, type: MessageType.statusOK.rawValue)), .notARequest)
    XCTAssertEqual(firstError(header(length: 1 << 30)), .frameTooLarge)
    // QUIET is a defined bit.
    XCTAssertEqual(firstError(header(length: 16, flags: 1)), nil)
  }

  func testHeaderRoundTrip() {
    let header = FrameHeader(length: 0xDEAD_BEEF, version: 3, flags: .quiet, rawType: 0xABCD,
                             reserved: 0x1234, requestID: 0x0102_0304_0506_0708)
    var bytes: [UInt8] = []
    header.encode(into: &bytes)
    XCTAssertEqual(bytes, [0xEF, 0xBE, 0xAD, 0xDE, 0x42, 0x53, 3, 1, 0xCD, 0xAB, 0x34, 0x12,
                           8, 7, 6, 5, 4, 3, 2, 1])
    XCTAssertEqual(FrameHeader.decode(bytes), header)
    XCTAssertEqual(FrameHeader.decode([0, 0] + bytes, at: 2), header)
  }
}
