import Engine
import Foundation

// Checkpoint files as the daemon's model store and `blockscope-engine` read them
// (`Checkpoint.decode`, which `Checkpoint.load` runs on a file's bytes).
//
// A mutated file almost always fails the length field or the CRC-64, which the reader checks
// first; so each input is decoded twice, as it is and with its length field and checksum
// repaired. An input that does not start with the magic is also taken as a header's JSON
// text and wrapped in a valid container (lengths, zero data up to its tensors' ends,
// checksum), so that mutations of the tensor table and the configuration reach their checks
// without having to keep the binary fields consistent.
//
// Properties checked besides "no trap": a checkpoint that decodes gives a network or a clear
// `ResNetConfig.Invalid` / `ModelState.Mismatch`, and it encodes again to bytes that decode
// and encode to the same bytes (encoding is deterministic, and NaN weights compare equal as
// bytes where they would not as floats).

/// The `checkpoint` harness.
public enum CheckpointHarness {
  static let magic: [UInt8] = Array("BSCKPT\r\n".utf8)
  /// magic, version, flags, length, header length; then the 8-byte checksum at the end.
  static let preambleLength = 28
  static let checksumLength = 8

  public static func run(_ data: [UInt8]) throws(FuzzViolation) {
    try decodeAndCheck(data)
    if let repaired = repaired(data), repaired != data {
      try decodeAndCheck(repaired)
    }
    if !data.starts(with: magic.prefix(1)) {
      try decodeAndCheck(wrapped(header: data))
    }
  }

  static func decodeAndCheck(_ bytes: [UInt8]) throws(FuzzViolation) {
    let checkpoint: Checkpoint
    do {
      checkpoint = try Checkpoint.decode(bytes, source: "fuzz")
    } catch is CheckpointError {
      return
    } catch {
      throw FuzzViolation("Checkpoint.decode threw \(type(of: error)), not a CheckpointError: \(error)")
    }
    // What the daemon's model store does next with every checkpoint it reads: build the
    // network its configuration describes and copy the weights in. A bad configuration or a
    // missing tensor must be a clear error, not a trap or an allocation the file cannot fill.
    do {
      _ = try ModelState.model(from: checkpoint, source: "fuzz")
    } catch is ResNetConfig.Invalid {
    } catch is ModelState.Mismatch {
    } catch {
      throw FuzzViolation("ModelState.model threw \(type(of: error)): \(error)")
    }
    let encoded = checkpoint.encode()
    let again: Checkpoint
    do {
      again = try Checkpoint.decode(encoded, source: "fuzz re-encoded")
    } catch {
      throw FuzzViolation("a decoded checkpoint, encoded again, fails to decode: \(error)")
    }
    guard again.encode() == encoded else {
      throw FuzzViolation("a decoded checkpoint changes when encoded, decoded and encoded again")
    }
  }

  /// The input with the length field set to its size and the checksum recomputed; nil when
  /// it does not start with the magic or is too short to hold a preamble and a checksum.
  static func repaired(_ data: [UInt8]) -> [UInt8]? {
    guard data.count >= preambleLength + checksumLength, data.starts(with: magic) else { return nil }
    var bytes = data
    let length = UInt64(bytes.count)
    for i in 0..<8 { bytes[16 + i] = UInt8(truncatingIfNeeded: length >> (8 * i)) }
    let crc = crc64(bytes[0..<(bytes.count - checksumLength)])
    for i in 0..<8 { bytes[bytes.count - checksumLength + i] = UInt8(truncatingIfNeeded: crc >> (8 * i)) }
    return bytes
  }

  /// A checkpoint file whose header is `header` (any bytes): zero padding to the data area,
  /// zero data up to the end of the last tensor the header's table names (when it parses as
  /// JSON; ends past 1 MiB are ignored), and a correct length and checksum.
  static func wrapped(header: [UInt8]) -> [UInt8] {
    let dataStart = (preambleLength + header.count + 63) / 64 * 64
    var end = dataStart
    if let object = try? JSONSerialization.jsonObject(with: Data(header)) as? [String: Any],
       let tensors = object["tensors"] as? [[String: Any]] {
      for tensor in tensors {
        if let offset = tensor["offset"] as? Int, let count = tensor["count"] as? Int,
           (0...(1 << 20)).contains(offset), (0...(1 << 18)).contains(count) {
          end = max(end, offset + 4 * count)
        }
      }
    }
    var bytes = magic
    bytes += [1, 0, 0, 0, 0, 0, 0, 0]   // version 1, flags 0
    bytes += [UInt8](repeating: 0, count: 8)   // the length, set below
    let headerLength = UInt32(header.count)
    for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: headerLength >> (8 * i))) }
    bytes += header
    bytes += [UInt8](repeating: 0, count: end - bytes.count + checksumLength)
    return repaired(bytes) ?? bytes
  }

  /// CRC-64/XZ, bytewise (the format's checksum; Engine's own is internal and sliced-by-8).
  static func crc64(_ bytes: ArraySlice<UInt8>) -> UInt64 {
    var crc = UInt64.max
    for byte in bytes { crc = crcTable[Int((crc ^ UInt64(byte)) & 0xFF)] ^ (crc >> 8) }
    return ~crc
  }

  private static let crcTable: [UInt64] = (0..<256).map { i in
    var c = UInt64(i)
    for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0xC96C_5795_D787_0F42 : c >> 1 }
    return c
  }
}
