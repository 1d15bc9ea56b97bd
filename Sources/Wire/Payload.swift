import Foundation

// SPEC.md section 3:
//
//     u32  doc_length
//     u8   doc[doc_length]        UTF-8 JSON object, the message's fields
//     ...  tensor data            for each entry of doc.tensors, in order, no padding
//
// Anything that does not fit this exactly is MALFORMED_PAYLOAD, answered on the request's id
// (the frame boundary is intact, so the connection stays open).

/// A frame's payload: the doc's JSON text and the tensors its `tensors` array describes.
public struct Payload: Hashable, Sendable {
  /// `doc_length` may not exceed this, for every message type.
  public static let maxDocLength = 4 << 20

  /// The doc's JSON text, kept as received (including its `tensors` descriptors).
  public var doc: [UInt8]
  /// In the order of the doc's `tensors` array.
  public var tensors: [WireTensor]

  /// A payload from a doc and its tensors; the doc's `tensors` array must describe them
  /// (`Payload.encode` builds both together).
  public init(doc: [UInt8], tensors: [WireTensor] = []) {
    self.doc = doc
    self.tensors = tensors
  }

  /// The payload's size in bytes.
  public var encodedCount: Int { 4 + doc.count + tensors.reduce(0) { $0 + $1.bytes.count } }

  /// `doc_length`, the doc, the tensors' bytes.
  public func encoded() -> [UInt8] {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(encodedCount)
    bytes.appendLittleEndian(UInt32(doc.count))
    bytes.append(contentsOf: doc)
    for tensor in tensors { bytes.append(contentsOf: tensor.bytes) }
    return bytes
  }

  /// The first tensor of that name.
  public func tensor(named name: String) -> WireTensor? {
    tensors.first { $0.name == name }
  }

  /// The tensor of that name, or `INVALID_ARGUMENT` naming it.
  public func requiredTensor(named name: String) throws(WireError) -> WireTensor {
    guard let tensor = tensor(named: name) else {
      throw WireError(.invalidArgument, "missing tensor '\(name)'")
    }
    return tensor
  }

  // MARK: Parsing

  /// Splits and checks a received payload: every rule of section 3, else `MALFORMED_PAYLOAD`.
  public static func parse(_ bytes: [UInt8]) throws(WireError) -> Payload {
    let layout = try Layout.of(bytes)
    return Payload(doc: layout.doc, tensors: layout.tensors.map { t in
      WireTensor(name: t.descriptor.name, dtype: t.descriptor.dtype, shape: t.descriptor.shape,
                 bytes: Array(bytes[t.bytes]))
    })
  }

  /// A checked payload whose tensors stay where they arrived: each tensor's descriptor and the
  /// range of its bytes in the payload. Requests that carry many megabytes (SESSION_BATCH)
  /// read their tensors in place instead of copying each one out.
  public struct Layout: Sendable {
    public var doc: [UInt8]
    public var tensors: [(descriptor: WireTensor.Descriptor, bytes: Range<Int>)]

    /// The doc alone, for `decode`.
    public var docPayload: Payload { Payload(doc: doc) }

    /// Every rule of section 3, else `MALFORMED_PAYLOAD` (as `Payload.parse`).
    public static func of(_ bytes: [UInt8]) throws(WireError) -> Layout {
      guard bytes.count >= 4 else {
        throw Payload.malformed("a payload of \(bytes.count) bytes has no room for the 4-byte doc_length")
      }
      let docLength = Int(bytes.readLittleEndian(UInt32.self, at: 0))
      if docLength > Payload.maxDocLength {
        throw Payload.malformed("doc_length \(docLength) exceeds the limit of \(Payload.maxDocLength) bytes")
      }
      guard docLength <= bytes.count - 4 else {
        throw Payload.malformed("doc_length \(docLength) exceeds the \(bytes.count - 4) payload bytes after it")
      }
      let doc = Array(bytes[4..<(4 + docLength)])
      let descriptors = try Payload.parseDescriptors(doc)

      var offset = 4 + docLength
      var tensors: [(descriptor: WireTensor.Descriptor, bytes: Range<Int>)] = []
      tensors.reserveCapacity(descriptors.count)
      for descriptor in descriptors {
        // Negative dimensions were rejected with the descriptor; nil here is overflow.
        guard let size = WireTensor.byteCount(dtype: descriptor.dtype, shape: descriptor.shape) else {
          throw Payload.malformed("tensor '\(descriptor.name)' of shape \(descriptor.shape) is too large")
        }
        guard size <= bytes.count - offset else {
          throw Payload.malformed("tensor '\(descriptor.name)' (\(descriptor.dtype.rawValue)\(descriptor.shape)) "
                          + "needs \(size) bytes, \(bytes.count - offset) remain")
        }
        tensors.append((descriptor, offset..<(offset + size)))
        offset += size
      }
      guard offset == bytes.count else {
        throw Payload.malformed("\(bytes.count - offset) bytes follow the last tensor")
      }
      return Layout(doc: doc, tensors: tensors)
    }
  }

  private static func malformed(_ message: String) -> WireError {
    WireError(.malformedPayload, message)
  }

  /// Checks that the doc is a UTF-8 JSON object and reads its `tensors` descriptors.
  private static func parseDescriptors(_ doc: [UInt8]) throws(WireError) -> [WireTensor.Descriptor] {
    guard String(validating: doc, as: UTF8.self) != nil else {
      throw malformed("the doc is not valid UTF-8")
    }
    // A NUL byte cannot occur in UTF-8 JSON text (control characters in strings are escaped);
    // rejecting it also stops Foundation from taking the doc for UTF-16 or UTF-32.
    guard !doc.contains(0) else {
      throw malformed("the doc contains a NUL byte")
    }
    do {
      return try JSONDecoder().decode(DocTensors.self, from: Data(doc)).tensors
    } catch let DecodingError.typeMismatch(_, context) where context.codingPath.isEmpty {
      throw malformed("the doc is not a JSON object (\(context.debugDescription))")
    } catch let DecodingError.valueNotFound(_, context) where context.codingPath.isEmpty {
      throw malformed("the doc is null, not a JSON object")
    } catch let DecodingError.dataCorrupted(context) where context.codingPath.isEmpty {
      throw malformed("the doc is not JSON")
    } catch let DecodingError.valueNotFound(_, context) where context.codingPath.count == 1 {
      throw malformed("\"tensors\" is null, not an array (a doc without tensors omits the key)")
    } catch let error as DecodingError {
      throw malformed("bad tensor descriptor: " + describe(error))
    } catch {
      throw malformed("the doc is not JSON (\(error))")
    }
  }

  /// The doc's `tensors` key and nothing else (other keys are the message's).
  private struct DocTensors: Decodable {
    var tensors: [WireTensor.Descriptor]

    enum CodingKeys: String, CodingKey { case tensors }

    /// Absent means no tensors; null is refused (SPEC.md section 3). `tensors` says how the
    /// bytes after the doc are split, so it follows the payload's exact layout rules rather
    /// than the message keys' "null means the default".
    init(from decoder: Decoder) throws {
      let container = try decoder.container(keyedBy: CodingKeys.self)
      guard container.contains(.tensors) else {
        tensors = []
        return
      }
      tensors = try container.value(.tensors)
    }
  }

  // MARK: Typed docs

  /// The payload of a message: `doc` encoded as a JSON object (sorted keys, no spaces, `/`
  /// unescaped) plus, when there are tensors, their descriptors under `tensors`.
  /// `doc` must encode as a keyed container (a JSON object).
  public static func encode<T: Encodable>(_ doc: T, tensors: [WireTensor] = []) throws -> Payload {
    let json = try makeEncoder().encode(DocWithTensors(doc: doc, descriptors: tensors.map(\.descriptor)))
    guard json.first == UInt8(ascii: "{") else {
      throw EncodingError.invalidValue(doc, EncodingError.Context(
        codingPath: [], debugDescription: "a doc must encode as a JSON object"))
    }
    return Payload(doc: [UInt8](json), tensors: tensors)
  }

  /// The doc decoded as `T`. A missing key or a value of the wrong kind or out of range is
  /// `INVALID_ARGUMENT` naming the key (section 3); unknown keys are ignored.
  public func decode<T: Decodable>(_: T.Type) throws(WireError) -> T {
    do {
      return try JSONDecoder().decode(T.self, from: Data(doc))
    } catch let error as DecodingError {
      if case .dataCorrupted(let context) = error, context.codingPath.isEmpty {
        throw WireError(.malformedPayload, "the doc is not JSON")
      }
      switch error {
      case .typeMismatch(_, let context) where context.codingPath.isEmpty,
           .valueNotFound(_, let context) where context.codingPath.isEmpty:
        throw WireError(.malformedPayload, "the doc is not a JSON object")
      default:
        break
      }
      throw WireError(.invalidArgument, Self.describe(error))
    } catch let error as WireError {
      throw error
    } catch {
      throw WireError(.invalidArgument, "\(error)")
    }
  }

  /// The one JSON style of the protocol's encoders: deterministic, compact.
  static func makeEncoder() -> JSONEncoder {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return encoder
  }

  /// A decoding error as a message naming the key: "missing key 'examples.split'".
  static func describe(_ error: DecodingError) -> String {
    switch error {
    case .keyNotFound(let key, let context):
      return "missing key '\(keyPath(context.codingPath + [key]))'"
    case .typeMismatch(let type, let context):
      return "key '\(keyPath(context.codingPath))' is not \(kind(of: type))"
    case .valueNotFound(let type, let context):
      return "key '\(keyPath(context.codingPath))' is null, expected \(kind(of: type))"
    case .dataCorrupted(let context):
      return "key '\(keyPath(context.codingPath))': \(context.debugDescription)"
    @unknown default:
      return "\(error)"
    }
  }

  /// `groups[0].models`.
  static func keyPath(_ path: [any CodingKey]) -> String {
    var text = ""
    for key in path {
      if let index = key.intValue {
        text += "[\(index)]"
      } else {
        text += text.isEmpty ? key.stringValue : "." + key.stringValue
      }
    }
    return text.isEmpty ? "(doc)" : text
  }
}

/// Encodes a doc and then, in the same JSON object, the descriptors of its tensors.
private struct DocWithTensors<Doc: Encodable>: Encodable {
  let doc: Doc
  let descriptors: [WireTensor.Descriptor]

  func encode(to encoder: Encoder) throws {
    try doc.encode(to: encoder)
    if !descriptors.isEmpty {
      var container = encoder.container(keyedBy: AnyKey.self)
      try container.encode(descriptors, forKey: AnyKey("tensors"))
    }
  }
}
