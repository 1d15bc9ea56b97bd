// An incremental frame decoder in the manner of hiredis's reader: bytes go in as they are
// read from the socket (`feed`), complete frames come out (`next`). It does no I/O and keeps
// no state besides its buffer, so the daemon and the CLI drive it from any event loop.
//
// Memory: the buffer holds only bytes that were fed. A frame's claimed length is checked
// against the limits (SPEC.md section 2) but never used to reserve space, so a peer that
// announces 1 GiB and sends 20 bytes costs 20 bytes.

/// Splits a byte stream into checked frames.
public struct FrameDecoder: Sendable {
  /// Which side of the connection decodes: the daemon accepts requests, a client accepts
  /// responses and events; both accept `ERROR`.
  public enum Role: Sendable {
    /// The daemon: request types and `ERROR` (a client may send one before closing).
    case server
    /// A client: response types, `PROGRESS` and `ERROR`.
    case client
  }

  public let role: Role
  /// Header versions read at all (others: `UNSUPPORTED_VERSION`).
  public let supportedVersions: ClosedRange<UInt8>
  /// Set once `HELLO` has chosen a version: frames in any other supported version are then
  /// `VERSION_MISMATCH`. Checked here rather than after decoding so that a header with
  /// several faults reports the one the spec lists first.
  public var negotiatedVersion: UInt8?

  /// Bytes fed and not yet consumed live in `buffer[start...]`.
  private var buffer: [UInt8] = []
  private var start = 0
  /// The first error; every later `next()` throws it again.
  public private(set) var failure: WireError?

  /// After a large frame the buffer's storage is released rather than kept for reuse.
  static let retainedCapacity = 1 << 20

  public init(role: Role, supportedVersions: ClosedRange<UInt8> = FrameHeader.supportedVersions) {
    self.role = role
    self.supportedVersions = supportedVersions
  }

  /// Bytes fed that no returned frame has consumed yet.
  public var bufferedByteCount: Int { buffer.count - start }

  /// Whether the stream stopped inside a frame: at end of stream this frame is dropped
  /// unanswered (section 2).
  public var hasPartialFrame: Bool { bufferedByteCount > 0 }

  /// The storage the buffer holds (for tests of the no-reservation rule).
  var bufferCapacity: Int { buffer.capacity }

  /// Appends bytes read from the connection. Ignored once the decoder has failed.
  public mutating func feed(_ bytes: some Collection<UInt8>) {
    guard failure == nil, !bytes.isEmpty else { return }
    compact()
    buffer.append(contentsOf: bytes)
  }

  /// Appends bytes read from the connection. Ignored once the decoder has failed.
  public mutating func feed(_ bytes: UnsafeRawBufferPointer) {
    guard failure == nil, !bytes.isEmpty else { return }
    compact()
    buffer.append(contentsOf: bytes)
  }

  /// The next complete frame, nil when more bytes are needed. Throws the first violation of
  /// section 2 as soon as the bytes that show it are in, and then on every later call.
  public mutating func next() throws(WireError) -> Frame? {
    if let failure { throw failure }
    do throws(WireError) {
      return try decodeFrame()
    } catch {
      failure = error
      buffer = []
      start = 0
      throw error
    }
  }

  private mutating func decodeFrame() throws(WireError) -> Frame? {
    let available = bufferedByteCount
    guard available >= FrameHeader.prefixSize else { return nil }

    // 1. The length alone.
    let length = Int(buffer.readLittleEndian(UInt32.self, at: start))
    if length < FrameHeader.headerSize {
      throw WireError(.frameTooShort,
                      "frame length \(length) is shorter than the \(FrameHeader.headerSize)-byte header")
    }
    if length > FrameHeader.maxLength {
      throw WireError(.frameTooLarge,
                      "frame length \(length) exceeds the protocol's maximum of \(FrameHeader.maxLength)")
    }

    // 2. The header.
    guard available >= FrameHeader.encodedSize else { return nil }
    let header = FrameHeader.decode(buffer, at: start)
    let type = try check(header)

    // 3. The payload, once all of it is in.
    let end = start + FrameHeader.prefixSize + length
    guard buffer.count >= end else { return nil }
    let frame = Frame(version: header.version, flags: header.flags, type: type,
                      requestID: header.requestID,
                      payload: Array(buffer[(start + FrameHeader.encodedSize)..<end]))
    start = end
    if start == buffer.count { releaseConsumed() }
    return frame
  }

  /// Section 2, step 2, in the spec's order.
  private func check(_ header: FrameHeader) throws(WireError) -> MessageType {
    if !header.hasMagic {
      let first = hexByte(UInt8(header.magic & 0xFF)), second = hexByte(UInt8(header.magic >> 8))
      throw WireError(.badMagic, "magic bytes are 0x\(first) 0x\(second), not 0x42 0x53 (\"BS\")")
    }
    if !supportedVersions.contains(header.version) {
      throw WireError(.unsupportedVersion,
                      "header version \(header.version) is not spoken (this side speaks "
                      + "\(supportedVersions.lowerBound)...\(supportedVersions.upperBound))")
    }
    if let negotiatedVersion, header.version != negotiatedVersion {
      throw WireError(.versionMismatch,
                      "header version \(header.version) differs from the negotiated version \(negotiatedVersion)")
    }
    if !header.flags.subtracting(.defined).isEmpty {
      throw WireError(.malformedHeader,
                      "undefined flag bits set: flags are 0x\(hexByte(header.flags.rawValue))")
    }
    if header.reserved != 0 {
      throw WireError(.malformedHeader, "reserved header field is \(hex(header.reserved)), not 0")
    }
    guard let type = MessageType(rawValue: header.rawType) else {
      throw WireError(.unknownType, "message type \(hex(header.rawType)) is not defined")
    }
    switch role {
    case .server where type.isResponse || type.isEvent:
      throw WireError(.notARequest, "\(type.debugName) is not a request; a client sends requests only")
    case .client where type.isRequest:
      // The spec names no code for a request arriving at a client; it is a type this side
      // cannot receive.
      throw WireError(.unknownType, "\(type.debugName) is a request; a client receives none")
    default:
      break
    }
    let length = Int(header.length)
    if length > type.limit {
      throw WireError(.frameTooLarge,
                      "frame length \(length) exceeds the \(type.name) limit of \(type.limit)")
    }
    return type
  }

  /// Drops consumed bytes before more are appended. Moving the unconsumed bytes only when at
  /// least as many were consumed keeps the cost linear in the bytes fed.
  private mutating func compact() {
    if start == buffer.count {
      releaseConsumed()
    } else if start > 0 && start >= buffer.count - start {
      buffer.removeSubrange(0..<start)
      start = 0
    }
  }

  private mutating func releaseConsumed() {
    if buffer.capacity > Self.retainedCapacity {
      buffer = []
    } else {
      buffer.removeAll(keepingCapacity: true)
    }
    start = 0
  }
}
