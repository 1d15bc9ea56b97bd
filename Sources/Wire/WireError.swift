/// A protocol error: the code a receiver answers with and a message that names the offending
/// field, key or value (it becomes the `ERROR` doc's `message`).
public struct WireError: Error, Hashable, Sendable, CustomStringConvertible {
  public var code: ErrorCode
  public var message: String

  public init(_ code: ErrorCode, _ message: String) {
    self.code = code
    self.message = message
  }

  /// Whether the connection is closed after answering this error.
  public var closesConnection: Bool { code.closesConnection }

  public var description: String { "\(code.name): \(message)" }
}
