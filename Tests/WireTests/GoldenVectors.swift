import Foundation
import Wire
import XCTest

// Protocol/vectors/manifest.json, written by Protocol/vectors/make_vectors.py from SPEC.md
// independently of the Swift code.

/// Any JSON value, for comparing docs as parsed JSON rather than as text.
enum JSONValue: Decodable, Equatable, CustomStringConvertible {
  case null
  case bool(Bool)
  case number(Double)
  case string(String)
  case array([JSONValue])
  case object([String: JSONValue])

  init(from decoder: Decoder) throws {
    let container = try decoder.singleValueContainer()
    if container.decodeNil() {
      self = .null
    } else if let value = try? container.decode(Bool.self) {
      self = .bool(value)
    } else if let value = try? container.decode(Double.self) {
      self = .number(value)
    } else if let value = try? container.decode(String.self) {
      self = .string(value)
    } else if let value = try? container.decode([JSONValue].self) {
      self = .array(value)
    } else {
      self = .object(try container.decode([String: JSONValue].self))
    }
  }

  static func parse(_ bytes: [UInt8]) throws -> JSONValue {
    try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
  }

  var description: String {
    switch self {
    case .null: return "null"
    case .bool(let value): return "\(value)"
    case .number(let value): return "\(value)"
    case .string(let value): return "\"\(value)\""
    case .array(let values): return "[" + values.map(\.description).joined(separator: ",") + "]"
    case .object(let members):
      return "{" + members.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }
        .joined(separator: ",") + "}"
    }
  }
}

struct GoldenManifest: Decodable {
  struct ErrorRef: Decodable {
    var code: UInt16
    var name: String
  }

  struct Tensor: Decodable {
    var name: String
    var dtype: String
    var shape: [Int]
    var data: [Double]
  }

  struct FrameEntry: Decodable {
    var version: UInt8
    var flags: UInt8
    var type: UInt16
    var typeName: String
    var requestId: UInt64
    var length: Int
    var doc: JSONValue?
    var tensors: [Tensor]?
  }

  /// One frame the daemon answers: its type and request id, and for an ERROR its code.
  struct Answer: Decodable, Hashable, CustomStringConvertible {
    struct ErrorRef: Decodable, Hashable {
      var code: UInt16
      var name: String
      var close: Bool
    }

    var type: UInt16
    var typeName: String
    var requestId: UInt64
    var error: ErrorRef?

    var description: String {
      "\(typeName) (id \(requestId))" + (error.map { " \($0.name)" + ($0.close ? ", close" : "") } ?? "")
    }
  }

  /// What blockscoped does when a new connection sends exactly the vector's bytes.
  struct DaemonExpectation: Decodable {
    /// In order, except that final frames of different requests may come in any order.
    var answers: [Answer]
    /// The daemon closes the connection after the answers (else it stays open).
    var closes: Bool
  }

  struct Vector: Decodable {
    var file: String
    var description: String
    /// "request", "response" or "any".
    var direction: String
    /// "frames", "error" or "incomplete".
    var expect: String
    /// "frame" or "payload" (malformed vectors).
    var level: String?
    var error: ErrorRef?
    var afterFrames: Int?
    var frames: [FrameEntry]
    var badFrame: FrameEntry?
    var trailingBytes: Int?
    var daemon: DaemonExpectation?
    /// A response vector that is the daemon's answer to these request files, sent in order.
    var answerTo: [String]?

    /// The decoder roles the vector applies to.
    var roles: [FrameDecoder.Role] {
      switch direction {
      case "request": return [.server]
      case "response": return [.client]
      default: return [.server, .client]
      }
    }
  }

  var specVersion: Int
  var vectors: [Vector]

  static let directory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Protocol/vectors")

  static func load() throws -> GoldenManifest {
    let data = try Data(contentsOf: directory.appendingPathComponent("manifest.json"))
    let decoder = JSONDecoder()
    decoder.keyDecodingStrategy = .convertFromSnakeCase
    return try decoder.decode(GoldenManifest.self, from: data)
  }

  static func bytes(of vector: Vector) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: directory.appendingPathComponent(vector.file)))
  }
}

/// SplitMix64: seeded chunk sizes, the same on every run.
struct SplitMix64: RandomNumberGenerator {
  var state: UInt64

  init(seed: UInt64) { state = seed }

  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

/// How a byte stream is handed to the decoder.
enum Feeding: CustomStringConvertible {
  case allAtOnce
  case byteByByte
  case randomChunks(seed: UInt64)

  func chunks(of bytes: [UInt8]) -> [ArraySlice<UInt8>] {
    switch self {
    case .allAtOnce:
      return [bytes[...]]
    case .byteByByte:
      return bytes.indices.map { bytes[$0...$0] }
    case .randomChunks(let seed):
      var generator = SplitMix64(seed: seed)
      var chunks: [ArraySlice<UInt8>] = []
      var offset = 0
      while offset < bytes.count {
        // Mostly small reads, sometimes larger ones, as a socket delivers them.
        let size = Int.random(in: 0..<4, using: &generator) == 0
          ? Int.random(in: 1...256, using: &generator) : Int.random(in: 1...24, using: &generator)
        let end = min(bytes.count, offset + size)
        chunks.append(bytes[offset..<end])
        offset = end
      }
      return chunks
    }
  }

  var description: String {
    switch self {
    case .allAtOnce: return "all at once"
    case .byteByByte: return "byte by byte"
    case .randomChunks(let seed): return "random chunks (seed \(seed))"
    }
  }

  static let all: [Feeding] = [.allAtOnce, .byteByByte] + (1...6).map { .randomChunks(seed: $0) }
}

/// Everything a decoder made of a stream.
struct DecodeRun {
  var frames: [Frame] = []
  var error: WireError?
  /// Frames returned before the error, counted when it was thrown.
  var framesBeforeError = 0
  var bufferedAtEnd = 0
  var partialAtEnd = false
}

/// Feeds the stream as `feeding` says, taking every frame after each chunk.
func decodeStream(_ bytes: [UInt8], role: FrameDecoder.Role, feeding: Feeding) -> DecodeRun {
  var decoder = FrameDecoder(role: role)
  var run = DecodeRun()
  outer: for chunk in feeding.chunks(of: bytes) {
    decoder.feed(chunk)
    while true {
      do {
        guard let frame = try decoder.next() else { break }
        run.frames.append(frame)
      } catch {
        run.error = error
        run.framesBeforeError = run.frames.count
        break outer
      }
    }
  }
  if let error = run.error {
    // A failed decoder keeps failing with the same error.
    for _ in 0..<2 {
      XCTAssertThrowsError(try decoder.next()) { XCTAssertEqual($0 as? WireError, error) }
    }
  }
  run.bufferedAtEnd = decoder.bufferedByteCount
  run.partialAtEnd = decoder.hasPartialFrame
  return run
}
