// How docs are read (SPEC.md section 3): unknown keys are ignored, an optional key that is
// absent or null takes the spec's default, and a missing required key or a value of the wrong
// kind names the key. Every doc type decodes through the helpers below so that the key is
// named even where Foundation would not name it (a number out of range or not an integer).

/// A coding key made at run time (dynamic doc keys, array indices).
struct AnyKey: CodingKey, Hashable {
  var stringValue: String
  var intValue: Int?

  init(_ string: String) {
    stringValue = string
    intValue = nil
  }

  init(index: Int) {
    stringValue = String(index)
    intValue = index
  }

  init?(stringValue: String) { self.init(stringValue) }
  init?(intValue: Int) { self.init(index: intValue) }
}

extension KeyedDecodingContainer {
  /// A required key.
  func value<T: Decodable>(_ key: Key) throws -> T {
    try namingKey(key, T.self) { try decode(T.self, forKey: key) }
  }

  /// An optional key without a fixed default: nil when absent or null.
  func ifPresent<T: Decodable>(_ key: Key) throws -> T? {
    try namingKey(key, T.self) { try decodeIfPresent(T.self, forKey: key) }
  }

  /// An optional key with the spec's default, used when the key is absent or null.
  func value<T: Decodable>(_ key: Key, default defaultValue: T) throws -> T {
    try ifPresent(key) ?? defaultValue
  }

  /// Foundation reports a number that does not fit the type (1.5 for an integer, 300 for a
  /// u8) as an error without a key; this one names the key and the expected kind.
  private func namingKey<T, R>(_ key: Key, _: T.Type, _ body: () throws -> R) throws -> R {
    do {
      return try body()
    } catch let error as DecodingError {
      throw error
    } catch {
      throw DecodingError.dataCorrupted(DecodingError.Context(
        codingPath: codingPath + [key], debugDescription: "expected \(kind(of: T.self))",
        underlyingError: error))
    }
  }
}

/// "an integer from 0 to 255", "a string", ...: the kind of value a type is read from.
func kind(of type: Any.Type) -> String {
  if let integer = type as? any FixedWidthInteger.Type {
    return "an integer from \(integer.min) to \(integer.max)"
  }
  if type is any BinaryFloatingPoint.Type { return "a number" }
  if type == String.self { return "a string" }
  if type == Bool.self { return "a boolean" }
  if let array = type as? any DocArray.Type {
    return "an array, each element \(kind(of: array.elementType))"
  }
  let name = String(describing: type)
  if name.hasPrefix("Dictionary<") { return "an object" }
  if name.hasPrefix("Optional<") { return "a value" }
  return "a \(name)"
}

/// Arrays name their element kind in messages.
protocol DocArray {
  static var elementType: Any.Type { get }
}

extension Array: DocArray {
  static var elementType: Any.Type { Element.self }
}

/// A doc value that is one of a fixed set of strings. An unknown string is INVALID_ARGUMENT
/// listing the accepted ones.
public protocol WireStringEnum: RawRepresentable, CaseIterable, Codable, Hashable, Sendable
where RawValue == String {}

extension WireStringEnum {
  public init(from decoder: Decoder) throws {
    let container = try decoder.singleValueContainer()
    let text = try container.decode(String.self)
    guard let value = Self(rawValue: text) else {
      let accepted = Self.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
      throw DecodingError.dataCorrupted(DecodingError.Context(
        codingPath: container.codingPath, debugDescription: "\"\(text)\" is not one of \(accepted)"))
    }
    self = value
  }

  public func encode(to encoder: Encoder) throws {
    var container = encoder.singleValueContainer()
    try container.encode(rawValue)
  }
}

/// The doc `{}`: requests without keys (`STATUS`, `DATASETS`, `JOBS`, `MODELS`, `SHUTDOWN`).
public struct EmptyDoc: Codable, Hashable, Sendable {
  public init() {}

  public init(from decoder: Decoder) throws {
    _ = try decoder.container(keyedBy: AnyKey.self)
  }

  public func encode(to encoder: Encoder) throws {
    _ = encoder.container(keyedBy: AnyKey.self)
  }
}
