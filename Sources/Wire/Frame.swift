/// One decoded (or to-be-encoded) frame: the header fields that matter after validation and
/// the raw payload (SPEC.md section 3; `Payload.parse` reads it).
public struct Frame: Hashable, Sendable {
  public var version: UInt8
  public var flags: FrameFlags
  public var type: MessageType
  /// Chosen by the client; responses and events echo it; connection errors carry 0.
  public var requestID: UInt64
  public var payload: [UInt8]

  public init(version: UInt8 = FrameHeader.currentVersion, flags: FrameFlags = [],
              type: MessageType, requestID: UInt64, payload: [UInt8]) {
    self.version = version
    self.flags = flags
    self.type = type
    self.requestID = requestID
    self.payload = payload
  }

  /// The frame's `length` field: header plus payload bytes.
  public var length: Int { FrameHeader.headerSize + payload.count }

  /// Whether `length` is within the limit of the frame's type (section 5). A sender checks
  /// this before sending: the receiver would reject the frame and close the connection.
  public var isWithinLimit: Bool { length <= type.limit }

  public var header: FrameHeader {
    FrameHeader(length: UInt32(length), version: version, flags: flags, rawType: type.rawValue,
                requestID: requestID)
  }

  /// The frame's bytes: length, header, payload.
  public func encoded() -> [UInt8] {
    precondition(length <= Int(UInt32.max), "a payload of \(payload.count) bytes cannot be framed")
    var bytes: [UInt8] = []
    bytes.reserveCapacity(FrameHeader.prefixSize + length)
    header.encode(into: &bytes)
    bytes.append(contentsOf: payload)
    return bytes
  }

  /// The payload, parsed and checked (section 3).
  public func parsedPayload() throws(WireError) -> Payload {
    try Payload.parse(payload)
  }
}
