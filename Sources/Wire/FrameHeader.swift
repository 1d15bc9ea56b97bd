// SPEC.md section 2: every frame is a u32 length, a 16-byte header and a payload, all integers
// little-endian. The length counts the header and the payload, not itself.

/// Bit flags of a frame header. Only bit 0 is defined; a receiver rejects the others
/// (`MALFORMED_HEADER`).
public struct FrameFlags: OptionSet, Hashable, Sendable {
  public let rawValue: UInt8
  public init(rawValue: UInt8) { self.rawValue = rawValue }

  /// On a request: send no `PROGRESS` events for it.
  public static let quiet = FrameFlags(rawValue: 1 << 0)
  /// Every bit protocol version 1 defines.
  public static let defined: FrameFlags = [.quiet]
}

/// The header fields of one frame, as they are on the wire (nothing validated).
public struct FrameHeader: Hashable, Sendable {
  /// The two magic bytes, `"BS"`.
  public static let magicBytes: [UInt8] = [0x42, 0x53]
  /// The magic bytes read as a little-endian u16.
  public static let magicValue: UInt16 = 0x5342
  /// Bytes of the length field that precedes the header.
  public static let prefixSize = 4
  /// Bytes of the header proper (what `length` counts besides the payload).
  public static let headerSize = 16
  /// Bytes from the start of a frame to its payload.
  public static let encodedSize = prefixSize + headerSize
  /// The version this implementation encodes by default, and the one every `HELLO` carries.
  public static let currentVersion: UInt8 = 1
  /// The header versions this implementation reads.
  public static let supportedVersions: ClosedRange<UInt8> = 1...1
  /// No frame of any type is longer than this (`length` > 2^30 is `FRAME_TOO_LARGE` before
  /// the type is known).
  public static let maxLength = 1 << 30

  /// Header plus payload bytes.
  public var length: UInt32
  /// The magic bytes read as a little-endian u16 (`magicValue` when valid).
  public var magic: UInt16
  public var version: UInt8
  public var flags: FrameFlags
  /// The type as sent; `MessageType(rawValue:)` says whether it is one the spec defines.
  public var rawType: UInt16
  public var reserved: UInt16
  public var requestID: UInt64

  public init(length: UInt32, version: UInt8 = FrameHeader.currentVersion, flags: FrameFlags = [],
              rawType: UInt16, reserved: UInt16 = 0, requestID: UInt64) {
    self.length = length
    self.magic = Self.magicValue
    self.version = version
    self.flags = flags
    self.rawType = rawType
    self.reserved = reserved
    self.requestID = requestID
  }

  public var hasMagic: Bool { magic == Self.magicValue }

  /// Appends the length field and the header (`encodedSize` bytes).
  public func encode(into bytes: inout [UInt8]) {
    bytes.appendLittleEndian(length)
    bytes.appendLittleEndian(magic)
    bytes.append(version)
    bytes.append(flags.rawValue)
    bytes.appendLittleEndian(rawType)
    bytes.appendLittleEndian(reserved)
    bytes.appendLittleEndian(requestID)
  }

  /// Reads the length field and header from `encodedSize` bytes starting at `offset`.
  public static func decode(_ bytes: [UInt8], at offset: Int = 0) -> FrameHeader {
    precondition(offset >= 0 && bytes.count - offset >= encodedSize, "a frame header needs 20 bytes")
    var header = FrameHeader(
      length: bytes.readLittleEndian(UInt32.self, at: offset),
      version: bytes[offset + 6],
      flags: FrameFlags(rawValue: bytes[offset + 7]),
      rawType: bytes.readLittleEndian(UInt16.self, at: offset + 8),
      reserved: bytes.readLittleEndian(UInt16.self, at: offset + 10),
      requestID: bytes.readLittleEndian(UInt64.self, at: offset + 12))
    header.magic = bytes.readLittleEndian(UInt16.self, at: offset + 4)
    return header
  }
}

extension Array where Element == UInt8 {
  @inlinable
  mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
    var v = value.littleEndian
    Swift.withUnsafeBytes(of: &v) { append(contentsOf: $0) }
  }

  /// Reads a little-endian integer at a byte offset (any alignment).
  @inlinable
  func readLittleEndian<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
    precondition(offset >= 0 && offset + MemoryLayout<T>.size <= count)
    return withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
  }
}
