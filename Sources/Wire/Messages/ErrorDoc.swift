// SPEC.md section 6: the ERROR (0xFFFF) doc.

/// `ERROR`: a request's final frame in place of its response, or (request id 0, `close`) a
/// connection error.
public struct ErrorDoc: Codable, Hashable, Sendable {
  /// The numeric code; kept raw because a newer daemon may send codes this side does not know.
  public var code: UInt16
  /// The code's name, e.g. `NOT_FOUND`.
  public var name: String
  /// Human-readable; names the offending key, file or value.
  public var message: String
  /// The daemon closes the connection after this frame.
  public var close: Bool

  public init(code: UInt16, name: String, message: String, close: Bool) {
    self.code = code
    self.name = name
    self.message = message
    self.close = close
  }

  public init(_ code: ErrorCode, _ message: String) {
    self.init(code: code.rawValue, name: code.name, message: message, close: code.closesConnection)
  }

  public init(_ error: WireError) {
    self.init(error.code, error.message)
  }

  /// The code, if this side knows it.
  public var errorCode: ErrorCode? { ErrorCode(rawValue: code) }

  /// Whether the connection ends with this error: `close`, or a code below 100 (section 6:
  /// an unknown code below 100 is a connection error).
  public var closesConnection: Bool { close || ErrorCode.closesConnection(code: code) }

  enum CodingKeys: String, CodingKey { case code, name, message, close }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(code: try c.value(.code), name: try c.value(.name), message: try c.value(.message),
              close: try c.value(.close))
  }
}
