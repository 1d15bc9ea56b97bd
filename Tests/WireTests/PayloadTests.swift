import Foundation
import XCTest
@testable import Wire

/// SPEC.md section 3: payload layout, its checks, and typed docs.
final class PayloadTests: XCTestCase {
  private func payload(_ doc: String, _ tail: [UInt8] = [], docLength: UInt32? = nil) -> [UInt8] {
    payload(Array(doc.utf8), tail, docLength: docLength)
  }

  private func payload(_ doc: [UInt8], _ tail: [UInt8] = [], docLength: UInt32? = nil) -> [UInt8] {
    var bytes: [UInt8] = []
    bytes.appendLittleEndian(docLength ?? UInt32(doc.count))
    return bytes + doc + tail
  }

  private func expectMalformed(_ bytes: [UInt8], _ fragment: String = "",
                               file: StaticString = #filePath, line: UInt = #line) {
    do {
      let parsed = try Payload.parse(bytes)
      XCTFail("parsed \(parsed)", file: file, line: line)
    } catch {
      XCTAssertEqual(error.code, .malformedPayload, file: file, line: line)
      if !fragment.isEmpty {
        XCTAssertTrue(error.message.contains(fragment), "\(error.message)", file: file, line: line)
      }
    }
  }

  private func expectInvalid<T: Decodable>(_: T.Type, _ doc: String, naming key: String,
                                           file: StaticString = #filePath, line: UInt = #line) {
    do {
      let value = try Payload(doc: Array(doc.utf8)).decode(T.self)
      XCTFail("decoded \(value)", file: file, line: line)
    } catch {
      XCTAssertEqual(error.code, .invalidArgument, "\(error)", file: file, line: line)
      XCTAssertTrue(error.message.contains("'\(key)'"), "\(error.message)", file: file, line: line)
    }
  }

  // MARK: Layout

  func testMalformedLayouts() {
    expectMalformed([], "doc_length")
    expectMalformed([2, 0, 0], "doc_length")
    expectMalformed(payload("{}", docLength: 3), "doc_length 3")
    expectMalformed(payload("{}", docLength: UInt32(Payload.maxDocLength + 1)), "exceeds the limit")
    expectMalformed(payload("{}", [0]), "1 bytes follow")
    expectMalformed(payload(#"{"tensors":[{"name":"a","dtype":"i32","shape":[2]}]}"#, [1, 2, 3, 4, 5, 6, 7]),
                    "needs 8 bytes, 7 remain")
    expectMalformed(payload(#"{"tensors":[{"name":"a","dtype":"u8","shape":[1099511627776,1099511627776]}]}"#),
                    "too large")
  }

  func testDocMustBeAUTF8JSONObject() {
    expectMalformed(payload(""), "not JSON")
    expectMalformed(payload("{"), "not JSON")
    expectMalformed(payload("{} {}"), "not JSON")
    expectMalformed(payload("[]"), "not a JSON object")
    expectMalformed(payload("\"text\""), "not a JSON object")
    expectMalformed(payload("42"), "not a JSON object")
    expectMalformed(payload("null"), "not a JSON object")
    expectMalformed(payload([0x7B, 0x22, 0x61, 0x22, 0x3A, 0x22, 0xC3, 0x22, 0x7D]), "UTF-8")
    // {} in UTF-16LE: Foundation would read it, the protocol does not.
    expectMalformed(payload([0x7B, 0x00, 0x7D, 0x00]), "NUL")
    XCTAssertNoThrow(try Payload.parse(payload(#"{"name":"naïve ✓"}"#)))
  }

  /// f16 and bf16 (activations of tools that compute in them) widen exactly to f32.
  func testHalfPrecisionTensorsWiden() throws {
    // f16: 1, -2, 65504 (largest), 2^-24 (smallest subnormal), -0, inf, NaN.
    let f16: [UInt16] = [0x3C00, 0xC000, 0x7BFF, 0x0001, 0x8000, 0x7C00, 0x7E00]
    let half = try Payload.parse(payload(
      #"{"tensors":[{"name":"h","dtype":"f16","shape":[7]}]}"#,
      f16.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] })).tensors[0]
    let widened = try XCTUnwrap(half.widenedFloats)
    XCTAssertEqual(Array(widened.prefix(5)), [1, -2, 65504, 0x1p-24, -0.0])
    XCTAssertEqual(widened[4].sign, .minus)
    XCTAssertEqual(widened[5], .infinity)
    XCTAssertTrue(widened[6].isNaN)
    XCTAssertNil(half.floats, "floats stays f32 only")
    // bf16: the top 16 bits of the f32.
    let values: [Float] = [1.5, -3.25, 0x1p-130, 1e30]
    let bf16 = values.map { UInt16($0.bitPattern >> 16) }
    let brain = try Payload.parse(payload(
      #"{"tensors":[{"name":"b","dtype":"bf16","shape":[2,2]}]}"#,
      bf16.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] })).tensors[0]
    XCTAssertEqual(brain.widenedFloats, values.map { Float(bitPattern: $0.bitPattern & 0xFFFF_0000) })
    XCTAssertEqual(brain.valuesAsDoubles.first, 1.5)
  }

  func testTensorDescriptors() throws {
    expectMalformed(payload(#"{"tensors":5}"#), "descriptor")
    expectMalformed(payload(#"{"tensors":[5]}"#), "descriptor")
    expectMalformed(payload(#"{"tensors":[{"dtype":"u8","shape":[1]}]}"#, [0]), "name")
    expectMalformed(payload(#"{"tensors":[{"name":"a","dtype":"f8","shape":[1]}]}"#, [0]), "f8")
    expectMalformed(payload(#"{"tensors":[{"name":"a","dtype":"u8","shape":[-1]}]}"#), "negative")
    expectMalformed(payload(#"{"tensors":[{"name":"a","dtype":"u8","shape":[1.5]}]}"#, [0]), "shape")
    expectMalformed(payload(#"{"tensors":[{"name":"a","dtype":"u8","shape":"2"}]}"#, [0, 0]), "shape")
    // Absent and empty mean no tensors; unknown descriptor keys are ignored; a scalar has
    // one element and a zero dimension none.
    XCTAssertEqual(try Payload.parse(payload("{}")).tensors, [])
    XCTAssertEqual(try Payload.parse(payload(#"{"tensors":[]}"#)).tensors, [])
    let parsed = try Payload.parse(payload(
      #"{"tensors":[{"name":"s","dtype":"f64","shape":[],"unit":"m"},{"name":"e","dtype":"f32","shape":[0,3]}]}"#,
      [0, 0, 0, 0, 0, 0, 0xF0, 0x3F]))
    XCTAssertEqual(parsed.tensors.map(\.name), ["s", "e"])
    XCTAssertEqual(parsed.tensors[0].doubles, [1.0])
    XCTAssertEqual(parsed.tensors[1].floats, [])
  }

  /// SPEC.md section 3: `"tensors": null` is MALFORMED_PAYLOAD, not "no tensors" (the key
  /// describes the bytes after the doc; the message keys' null-means-absent rule is not for it).
  func testTensorsNullIsMalformed() throws {
    // The exact bytes: doc_length 16, then {"tensors":null}.
    let bytes: [UInt8] = [0x10, 0x00, 0x00, 0x00] + Array(#"{"tensors":null}"#.utf8)
    XCTAssertEqual(bytes, payload(#"{"tensors":null}"#))
    expectMalformed(bytes, #""tensors" is null"#)
    expectMalformed(payload(#"{"tensors":null,"model":"m"}"#), #""tensors" is null"#)
    // A null descriptor inside the array is a bad descriptor.
    expectMalformed(payload(#"{"tensors":[null]}"#), "descriptor")
    // Other keys keep the null-means-absent rule.
    XCTAssertEqual(try Payload.parse(payload(#"{"model":null}"#)).tensors, [])
  }

  func testDocOfExactlyFourMiBIsAccepted() throws {
    let overhead = #"{"pad":""}"#.utf8.count
    let doc = #"{"pad":""# + String(repeating: "x", count: Payload.maxDocLength - overhead) + #""}"#
    XCTAssertEqual(doc.utf8.count, Payload.maxDocLength)
    XCTAssertEqual(try Payload.parse(payload(doc)).doc.count, Payload.maxDocLength)
  }

  // MARK: Tensors

  func testTensorValuesRoundTripInEveryDType() throws {
    let tensors = [
      WireTensor(name: "f", floats: [1.5, -0.0, .infinity, .leastNonzeroMagnitude, 3.25, -2], shape: [2, 3]),
      WireTensor(name: "d", doubles: [0.1, -1e300, .nan], shape: [3]),
      WireTensor(name: "i", int32s: [.min, -1, 0, .max], shape: [2, 2]),
      WireTensor(name: "u", uint8s: [0, 255, 7], shape: [3, 1]),
    ]
    XCTAssertEqual(tensors[0].bytes.prefix(4), [0x00, 0x00, 0xC0, 0x3F])
    XCTAssertEqual(tensors[2].bytes.prefix(8), [0x00, 0x00, 0x00, 0x80, 0xFF, 0xFF, 0xFF, 0xFF])
    let encoded = try Payload.encode(EmptyDoc(), tensors: tensors)
    let parsed = try Payload.parse(encoded.encoded())
    XCTAssertEqual(parsed.tensors.map(\.name), ["f", "d", "i", "u"])
    XCTAssertEqual(parsed.tensors[0].floats, [1.5, -0.0, .infinity, .leastNonzeroMagnitude, 3.25, -2])
    XCTAssertEqual(parsed.tensors[1].doubles?.prefix(2), [0.1, -1e300])
    XCTAssertTrue(parsed.tensors[1].doubles![2].isNaN)
    XCTAssertEqual(parsed.tensors[2].int32s, [.min, -1, 0, .max])
    XCTAssertEqual(parsed.tensors[3].uint8s, [0, 255, 7])
    XCTAssertEqual(parsed.tensors[2].valuesAsDoubles, [-2147483648, -1, 0, 2147483647])
    XCTAssertNil(parsed.tensors[0].doubles)
    XCTAssertEqual(parsed.tensors[1].shape, [3])
    XCTAssertEqual(parsed.tensor(named: "i")?.shape, [2, 2])
    XCTAssertEqual(try parsed.requiredTensor(named: "u").elementCount, 3)
    XCTAssertThrowsError(try parsed.requiredTensor(named: "x")) {
      XCTAssertEqual(($0 as? WireError)?.code, .invalidArgument)
    }
    XCTAssertNil(WireTensor.byteCount(dtype: .f64, shape: [Int.max, 2]))
    XCTAssertNil(WireTensor.byteCount(dtype: .u8, shape: [-1]))
    XCTAssertEqual(WireTensor.byteCount(dtype: .f64, shape: []), 8)
  }

  // MARK: Typed docs

  func testEncodeAddsSortedTensorDescriptors() throws {
    let payload = try Payload.encode(CKARequest(estimators: [.rbf], rbfThreshold: 0.25), tensors: [
      WireTensor(name: "x", floats: [1, 2, 3, 4], shape: [4, 1]),
      WireTensor(name: "y", doubles: [1, 2, 3, 4], shape: [4, 1]),
    ])
    XCTAssertEqual(String(decoding: payload.doc, as: UTF8.self),
                   #"{"estimators":["rbf"],"rbf_threshold":0.25,"tensors":[{"dtype":"f32","name":"x","shape":[4,1]},{"dtype":"f64","name":"y","shape":[4,1]}]}"#)
    XCTAssertEqual(payload.encodedCount, 4 + payload.doc.count + 16 + 32)
    XCTAssertEqual(try Payload.parse(payload.encoded()), payload)
    // Slashes stay unescaped, so paths read as they are.
    let status = try Payload.encode(["store": "/var/lib/blockscope"])
    XCTAssertEqual(String(decoding: status.doc, as: UTF8.self), #"{"store":"/var/lib/blockscope"}"#)
    XCTAssertEqual(String(decoding: try Payload.encode(EmptyDoc()).doc, as: UTF8.self), "{}")
  }

  func testEncodeRefusesADocThatIsNotAnObject() {
    XCTAssertThrowsError(try Payload.encode([1, 2, 3]))
    XCTAssertThrowsError(try Payload.encode("text"))
  }

  func testDecodeNamesTheOffendingKey() {
    expectInvalid(HelloRequest.self, #"{"max_version":1,"client":"c"}"#, naming: "min_version")
    expectInvalid(HelloRequest.self, #"{"min_version":"1","max_version":1,"client":"c"}"#, naming: "min_version")
    expectInvalid(HelloRequest.self, #"{"min_version":1,"max_version":300,"client":"c"}"#, naming: "max_version")
    expectInvalid(HelloRequest.self, #"{"min_version":1,"max_version":1,"client":null}"#, naming: "client")
    expectInvalid(TrainRequest.self, #"{"depth":20.5}"#, naming: "depth")
    expectInvalid(TrainRequest.self, #"{"seed":-1}"#, naming: "seed")
    expectInvalid(TrainRequest.self, #"{"augment":1}"#, naming: "augment")
    expectInvalid(HeatmapRequest.self, #"{"model":"m","estimator":"cosine"}"#, naming: "estimator")
    expectInvalid(HeatmapRequest.self, #"{"model":"m","examples":{"count":5}}"#, naming: "examples.split")
    expectInvalid(HeatmapRequest.self, #"{"model":"m","layers":5}"#, naming: "layers")
    expectInvalid(CompareOutputsRequest.self, #"{"groups":[{"name":"a","models":[]},{"name":"b"}]}"#,
                  naming: "groups[1].models")
    expectInvalid(CompareOutputsRequest.self, #"{"groups":[],"pairs":[["a"]]}"#, naming: "pairs[0]")
    expectInvalid(CKARequest.self, #"{"estimators":["linear","cosine"]}"#, naming: "estimators[1]")
    // The message lists what is accepted.
    do {
      _ = try Payload(doc: Array(#"{"model":"m","estimator":"cosine"}"#.utf8)).decode(HeatmapRequest.self)
    } catch {
      XCTAssertTrue(error.message.contains(#""unbiased", "biased", "rbf""#), error.message)
    }
  }

  func testDecodeIgnoresUnknownKeysAndReadsIntegersWrittenAsNumbers() throws {
    let train = try Payload(doc: Array(#"{"depth":56,"colour":"blue","width":2,"epochs":1e1}"#.utf8))
      .decode(TrainRequest.self)
    XCTAssertEqual(train.depth, 56)
    XCTAssertEqual(train.width, 2)
    XCTAssertEqual(train.epochs, 10)
  }
}
