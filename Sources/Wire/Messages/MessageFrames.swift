// Building frames from typed docs, and reading typed docs from frames.

extension Frame {
  /// A frame carrying `doc` (and tensors). Throws `RESULT_TOO_LARGE` when the doc exceeds
  /// 4 MiB or the frame its type's limit (section 5): sending it would only get the
  /// connection closed.
  public static func message(type: MessageType, requestID: UInt64, doc: some Encodable,
                             tensors: [WireTensor] = [], flags: FrameFlags = [],
                             version: UInt8 = FrameHeader.currentVersion) throws -> Frame {
    let payload = try Payload.encode(doc, tensors: tensors)
    if payload.doc.count > Payload.maxDocLength {
      throw WireError(.resultTooLarge,
                      "the \(type.name) doc is \(payload.doc.count) bytes, more than \(Payload.maxDocLength)")
    }
    let length = FrameHeader.headerSize + payload.encodedCount
    if length > type.limit {
      throw WireError(.resultTooLarge,
                      "a \(type.name) frame of length \(length) exceeds the limit of \(type.limit)")
    }
    return Frame(version: version, flags: flags, type: type, requestID: requestID,
                 payload: payload.encoded())
  }

  /// An `ERROR` frame. Connection errors (code < 100) carry request id 0 by convention;
  /// pass the request's id for request errors.
  public static func error(_ code: ErrorCode, _ message: String, requestID: UInt64,
                           version: UInt8 = FrameHeader.currentVersion) -> Frame {
    error(ErrorDoc(code, message), requestID: requestID, version: version)
  }

  /// An `ERROR` frame for a protocol error.
  public static func error(_ error: WireError, requestID: UInt64,
                           version: UInt8 = FrameHeader.currentVersion) -> Frame {
    Frame.error(ErrorDoc(error), requestID: requestID, version: version)
  }

  /// An `ERROR` frame with this doc. A message too long for the frame is shortened.
  public static func error(_ doc: ErrorDoc, requestID: UInt64,
                           version: UInt8 = FrameHeader.currentVersion) -> Frame {
    var doc = doc
    let maxMessageBytes = 64 << 10
    if doc.message.utf8.count > maxMessageBytes {
      doc.message = String(decoding: doc.message.utf8.prefix(maxMessageBytes), as: UTF8.self) + "..."
    }
    // A doc of strings, an integer and a boolean always encodes.
    let payload = try! Payload.encode(doc)
    return Frame(version: version, type: .error, requestID: requestID, payload: payload.encoded())
  }

  /// The payload parsed and its doc decoded as `T`.
  public func decodeDoc<T: Decodable>(_: T.Type) throws(WireError) -> T {
    try parsedPayload().decode(T.self)
  }
}
