import XCTest
@testable import Wire

/// The tables of SPEC.md sections 4, 5 and 6.
final class TypeTableTests: XCTestCase {
  func testMessageTypes() {
    let requests = MessageType.allCases.filter(\.isRequest)
    XCTAssertEqual(requests.map(\.rawValue), Array(1...0x20))
    for request in requests {
      let response = try! XCTUnwrap(request.responseType)
      XCTAssertEqual(response.rawValue, request.rawValue | 0x8000)
      XCTAssertTrue(response.isResponse)
      XCTAssertEqual(response.requestType, request)
      XCTAssertEqual(response.name, request.name + "_OK")
      XCTAssertNil(response.responseType)
    }
    XCTAssertEqual(MessageType.allCases.count, 2 * 32 + 2)
    XCTAssertEqual(MessageType.progress.rawValue, 0x4001)
    XCTAssertTrue(MessageType.progress.isEvent)
    XCTAssertFalse(MessageType.progress.isRequest || MessageType.progress.isResponse)
    XCTAssertEqual(MessageType.error.rawValue, 0xFFFF)
    XCTAssertFalse(MessageType.error.isRequest || MessageType.error.isResponse || MessageType.error.isEvent)
    XCTAssertEqual(MessageType.deleteBlocks.name, "DELETE_BLOCKS")
    XCTAssertEqual(MessageType.compareOutputsOK.name, "COMPARE_OUTPUTS_OK")
    XCTAssertEqual(MessageType.heatmap.debugName, "HEATMAP (0x000C)")
    XCTAssertEqual(MessageType.sessionBatch.debugName, "SESSION_BATCH (0x001D)")
    XCTAssertEqual(MessageType.foreignModelsOK.name, "FOREIGN_MODELS_OK")
    for type in MessageType.allCases {
      XCTAssertEqual(MessageType(name: type.name), type)
    }
    XCTAssertEqual(Set(MessageType.allCases.map(\.name)).count, MessageType.allCases.count)
  }

  func testLimits() {
    let MiB = 1 << 20
    for type in MessageType.allCases {
      let expected: Int
      switch type {
      case .cka: expected = 512 * MiB
      case .sessionBatch: expected = 68 * MiB + 16
      case .heatmapOK, .pcOK, .studyResultOK: expected = 256 * MiB
      case .exportOK: expected = 1 << 30
      default: expected = type.isRequest ? 4 * MiB + 16 : 16 * MiB
      }
      XCTAssertEqual(type.limit, expected, type.name)
      XCTAssertLessThanOrEqual(type.limit, FrameHeader.maxLength)
    }
  }

  func testErrorCodes() {
    XCTAssertEqual(ErrorCode.allCases.count, 30)
    XCTAssertEqual(ErrorCode.allCases.filter(\.closesConnection).map(\.rawValue), Array(1...15))
    XCTAssertEqual(ErrorCode.allCases.filter { !$0.closesConnection }.map(\.rawValue), Array(100...114))
    XCTAssertEqual(ErrorCode.notARequest.name, "NOT_A_REQUEST")
    XCTAssertEqual(ErrorCode.shuttingDownClose.name, "SHUTTING_DOWN_CLOSE")
    XCTAssertEqual(ErrorCode.internal.name, "INTERNAL")
    for code in ErrorCode.allCases {
      XCTAssertEqual(ErrorCode(name: code.name), code)
    }
    // Unknown codes: below 100 close, from 100 answer one request.
    XCTAssertTrue(ErrorCode.closesConnection(code: 42))
    XCTAssertFalse(ErrorCode.closesConnection(code: 150))
  }

  func testFlags() {
    XCTAssertEqual(FrameFlags.quiet.rawValue, 1)
    XCTAssertEqual(FrameFlags.defined, .quiet)
  }
}
