// Blockscope checkpoint file format, version 1 (also in docs/CHECKPOINT.md)
// ==========================================================================
//
// One self-contained binary file per checkpoint. All integers are little-endian; all offsets
// are in bytes from the start of the file.
//
//   offset   size  field
//   0        8     magic "BSCKPT\r\n" = 42 53 43 4B 50 54 0D 0A. Like PNG's signature, the
//                  CR LF pair makes a text-mode transfer (CRLF <-> LF conversion) show up as a
//                  bad magic instead of as mysteriously corrupt numbers.
//   8        4     u32 format version = 1
//   12       4     u32 flags = 0 (version 1 defines no flags; readers reject any set bit)
//   16       8     u64 total file length L, checksum included
//   24       4     u32 header length H
//   28       H     header: UTF-8 JSON object (below)
//   28+H     ..    zero padding up to D = 28+H rounded up to a multiple of 64
//   D        ..    tensor data: each tensor's values as raw IEEE-754 binary32, little-endian,
//                  in row-major order of its shape, starting at its own 64-byte aligned
//                  "offset"; zero padding between tensors
//   L-8      8     u64 CRC-64/XZ of bytes [0, L-8), i.e. of everything before it
//
// Header JSON (keys sorted by the writer; unknown keys are ignored by readers):
//   { "model":    ResNetConfig (Codable fields),
//     "training": TrainConfig,
//     "data":     DataSpec,
//     "history":  [EpochRecord],
//     "epochsCompleted": Int >= 0,
//     "metadata": { String: String },
//     "tensors":  [ { "name": String, "shape": [Int], "offset": Int, "count": Int } ] }
// Non-finite Doubles in the header (e.g. a diverged loss in the history) are written as the
// strings "nan", "inf" and "-inf". "tensors" keeps the checkpoint's tensor order; "count" is
// the number of fp32 values (4 * count bytes at "offset").
//
// The writer places the tensors in order: the first at D, each next one at the first multiple
// of 64 at or after the end of the previous one; the checksum follows the last tensor's data
// directly (L - 8 = end of the last tensor, or D when there are none). Encoding is
// deterministic: equal checkpoints give identical bytes.
//
// A reader checks, in this order, before trusting any length or offset it has not yet checked
// against the real byte count: the magic; the version (== 1); L == the actual file size; the
// checksum; flags == 0; 28 + H <= L - 8; the JSON; then per tensor: a non-empty unique name,
// no negative dimension, shape product (without overflow) == count, offset a multiple of 64,
// D <= offset and offset + 4 * count <= L - 8; no two tensors overlap; and every byte of
// [28+H, L-8) outside the tensors (the padding) is zero, so each checkpoint has exactly one
// valid encoding. Non-finite float values inside tensors are data and are accepted.
//
// Why CRC-64/XZ and not CRC-32C:
// - Both detect every error burst no longer than their width, hence every single changed byte
//   (and any change within 8, resp. 4, consecutive bytes) with certainty; a truncation or
//   length change is caught by the length field anyway.
// - For random large-scale damage (a torn write, a 4 KiB block of garbage in a 100 MB file,
//   bad RAM during a copy) a CRC-32 misses 1 in 2^32 cases, a CRC-64 1 in 2^64. Across many
//   checkpoints copied around over years the former is not quite negligible; the latter is,
//   and costs only 4 more bytes.
// - CRC-32C's edge is the SSE4.2 / ARMv8 crc32 instruction, which pure Swift cannot reach
//   portably; as table-driven software (slicing-by-8 here) the two run at about the same speed.
// - CRC-64/XZ is a standard (xz, Go's crc64.ECMA), so files can be checked with other tools.
// It is an integrity check against accidents, not authentication against tampering.
//
// Versioning: anything an old reader would misread (a new field in the fixed preamble, a
// different element type or checksum) bumps the version; optional additions to the JSON
// header do not. Readers reject versions they do not know, naming both.

import Foundation

/// Everything needed to resume or inspect a training run: the configuration, the epochs so far,
/// and all state as named fp32 tensors (model weights, batch-norm running statistics, optimizer
/// momentum buffers, e.g. "s1.b1.conv1.weight", "s1.b1.bn1.running_mean",
/// "opt.s1.b1.conv1.weight.momentum"). Stored in the binary format described at the top of
/// this file; see `encode()`, `decode(_:source:)`, `save(to:)` and `load(from:)`.
public struct Checkpoint: Equatable, Sendable {
  public var model: ResNetConfig
  public var training: TrainConfig
  public var data: DataSpec
  public var history: [EpochRecord]
  public var epochsCompleted: Int
  /// In a fixed order; names must be unique.
  public var tensors: [NamedTensor]
  public var metadata: [String: String]

  public init(model: ResNetConfig, training: TrainConfig, data: DataSpec,
              history: [EpochRecord] = [], epochsCompleted: Int = 0,
              tensors: [NamedTensor] = [], metadata: [String: String] = [:]) {
    self.model = model
    self.training = training
    self.data = data
    self.history = history
    self.epochsCompleted = epochsCompleted
    self.tensors = tensors
    self.metadata = metadata
  }

  /// The tensor with this name, if any.
  public func tensor(named name: String) -> NamedTensor? {
    tensors.first { $0.name == name }
  }

  /// Throws `CheckpointError` (`.invalid`) if the checkpoint cannot be encoded: a tensor whose
  /// shape does not match its value count, a negative dimension, an empty or duplicate name,
  /// or a negative `epochsCompleted`. `save(to:)` calls this; `encode()` requires it to pass.
  public func validate() throws {
    if let problem = validationProblem() {
      throw CheckpointError(file: "(in memory)", problem: .invalid(problem))
    }
  }

  func validationProblem() -> String? {
    guard epochsCompleted >= 0 else { return "epochsCompleted \(epochsCompleted) is negative" }
    var seen = Set<String>()
    for (i, t) in tensors.enumerated() {
      if let p = t.problem() { return "tensors[\(i)] \"\(t.name)\": \(p)" }
      guard seen.insert(t.name).inserted else { return "duplicate tensor name \"\(t.name)\"" }
    }
    return nil
  }
}

/// One named fp32 tensor, values in row-major order of `shape`. (Equatable compares values
/// with `==`, so a tensor holding NaN is not equal to itself; compare `bitPattern`s for that.)
public struct NamedTensor: Equatable, Sendable {
  public var name: String
  public var shape: [Int]
  public var values: [Float]

  /// Requires `values.count` to equal the product of `shape` (and no negative dimension).
  public init(name: String, shape: [Int], values: [Float]) {
    self.name = name
    self.shape = shape
    self.values = values
    if let p = problem(ignoringName: true) { preconditionFailure("NamedTensor \"\(name)\": \(p)") }
  }

  /// A copy of a tensor's current shape and values.
  public init(name: String, tensor: Tensor) {
    self.init(name: name, shape: tensor.shape, values: tensor.array)
  }

  /// Throws `CheckpointError` (`.invalid`) if the shape does not match the values or the name
  /// is empty. (The public fields can be changed after `init`.)
  public func validate() throws {
    if let p = problem() {
      throw CheckpointError(file: "(in memory)", problem: .invalid("tensor \"\(name)\": \(p)"))
    }
  }

  func problem(ignoringName: Bool = false) -> String? {
    if !ignoringName && name.isEmpty { return "empty name" }
    guard let n = elementCount(of: shape) else {
      return "shape \(shape) has a negative dimension or too many elements"
    }
    guard n == values.count else {
      return "shape \(shape) has \(n) elements but there are \(values.count) values"
    }
    return nil
  }
}

/// Product of the dimensions, or nil if one is negative or the product overflows.
func elementCount(of shape: [Int]) -> Int? {
  var n = 1
  for d in shape {
    guard d >= 0 else { return nil }
    let (p, overflow) = n.multipliedReportingOverflow(by: d)
    guard !overflow else { return nil }
    n = p
  }
  return n
}

/// Constants of the on-disk format.
enum CheckpointFormat {
  static let magic: [UInt8] = Array("BSCKPT\r\n".utf8)
  static let version: UInt32 = 1
  static let alignment = 64
  /// magic + version + flags + length + header length.
  static let preambleLength = 28
  static let checksumLength = 8
  static let minimumFileLength = preambleLength + checksumLength

  static func align(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

  struct TensorEntry: Codable, Equatable {
    var name: String
    var shape: [Int]
    var offset: Int
    var count: Int
  }

  struct Header: Codable {
    var model: ResNetConfig
    var training: TrainConfig
    var data: DataSpec
    var history: [EpochRecord]
    var epochsCompleted: Int
    var metadata: [String: String]
    var tensors: [TensorEntry]
  }

  static func jsonEncoder() -> JSONEncoder {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    e.nonConformingFloatEncodingStrategy = .convertToString(
      positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    return e
  }

  static func jsonDecoder() -> JSONDecoder {
    let d = JSONDecoder()
    d.nonConformingFloatDecodingStrategy = .convertFromString(
      positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    return d
  }
}

// MARK: - Encoding

extension Checkpoint {
  /// The checkpoint in the binary format described at the top of this file. Deterministic.
  /// Requires `validate()` to pass (a programming error otherwise; `save(to:)` throws instead).
  public func encode() -> [UInt8] {
    if let problem = validationProblem() { preconditionFailure("Checkpoint.encode: \(problem)") }
    typealias F = CheckpointFormat

    // The tensor offsets depend on where the data starts, which depends on the header's length,
    // which depends on the digits of the offsets. Iterate from below to the least fixed point:
    // `need` is non-decreasing in `dataStart`, so this settles in a step or two.
    var dataStart = 0
    var header: [UInt8] = []
    var entries: [F.TensorEntry] = []
    var end = 0
    for _ in 0..<64 {
      entries = []
      var cursor = dataStart
      for t in tensors {
        let offset = F.align(cursor)
        entries.append(.init(name: t.name, shape: t.shape, offset: offset, count: t.values.count))
        cursor = offset + 4 * t.values.count
      }
      end = Swift.max(cursor, dataStart)
      let h = F.Header(model: model, training: training, data: data, history: history,
                       epochsCompleted: epochsCompleted, metadata: metadata, tensors: entries)
      do {
        header = Array(try F.jsonEncoder().encode(h))
      } catch {
        preconditionFailure("Checkpoint.encode: cannot encode the header as JSON: \(error)")
      }
      let need = F.align(F.preambleLength + header.count)
      if need == dataStart { break }
      dataStart = need
    }
    precondition(F.align(F.preambleLength + header.count) == dataStart,
                 "Checkpoint.encode: header layout did not converge")
    precondition(header.count <= Int(UInt32.max), "Checkpoint.encode: header too large")

    let total = end + F.checksumLength
    var out = [UInt8](repeating: 0, count: total)
    out.withUnsafeMutableBytes { raw in
      let base = raw.baseAddress!
      for (i, m) in F.magic.enumerated() { raw[i] = m }
      raw.storeBytes(of: F.version.littleEndian, toByteOffset: 8, as: UInt32.self)
      raw.storeBytes(of: UInt32(0).littleEndian, toByteOffset: 12, as: UInt32.self)
      raw.storeBytes(of: UInt64(total).littleEndian, toByteOffset: 16, as: UInt64.self)
      raw.storeBytes(of: UInt32(header.count).littleEndian, toByteOffset: 24, as: UInt32.self)
      header.withUnsafeBytes { h in
        (base + F.preambleLength).copyMemory(from: h.baseAddress!, byteCount: h.count)
      }
      for (t, e) in zip(tensors, entries) where e.count > 0 {
        t.values.withUnsafeBytes { v in
          (base + e.offset).copyMemory(from: v.baseAddress!, byteCount: v.count)
        }
        #if _endian(big)
        for j in 0..<e.count {
          let p = e.offset + 4 * j
          raw.storeBytes(of: raw.load(fromByteOffset: p, as: UInt32.self).littleEndian,
                         toByteOffset: p, as: UInt32.self)
        }
        #endif
      }
      let crc = CRC64.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<(total - F.checksumLength)]))
      raw.storeBytes(of: crc.littleEndian, toByteOffset: total - F.checksumLength, as: UInt64.self)
    }
    return out
  }
}

// MARK: - Decoding

extension Checkpoint {
  /// Parses and fully verifies a checkpoint. Never traps on malformed input: every problem is a
  /// `CheckpointError` whose `file` is `source` (a path, or any label for error messages).
  public static func decode(_ bytes: [UInt8], source: String) throws -> Checkpoint {
    try bytes.withUnsafeBytes { try decode(raw: $0, source: source) }
  }

  static func decode(raw: UnsafeRawBufferPointer, source: String) throws -> Checkpoint {
    typealias F = CheckpointFormat
    func fail(_ p: CheckpointError.Problem) -> CheckpointError {
      CheckpointError(file: source, problem: p)
    }
    // Only called on ranges already checked against raw.count.
    func u32(_ at: Int) -> UInt32 { UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
    func u64(_ at: Int) -> UInt64 { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }

    let n = raw.count
    let seen = Swift.min(n, F.magic.count)
    guard raw[0..<seen].elementsEqual(F.magic[0..<seen]) else {
      throw fail(.notACheckpoint(firstBytes: Array(raw[0..<seen])))
    }
    if n >= 12 {
      let version = u32(8)
      guard version == F.version else {
        throw fail(.unsupportedVersion(found: version, supported: F.version))
      }
    }
    guard n >= 24 else { throw fail(.truncated(fileBytes: n, expectedBytes: nil)) }
    let declared = u64(16)
    guard declared <= UInt64(n) else { throw fail(.truncated(fileBytes: n, expectedBytes: declared)) }
    guard declared == UInt64(n) else { throw fail(.trailingBytes(fileBytes: n, expectedBytes: declared)) }
    guard n >= F.minimumFileLength else { throw fail(.truncated(fileBytes: n, expectedBytes: nil)) }

    let dataEnd = n - F.checksumLength   // the checksum's offset
    let stored = u64(dataEnd)
    let computed = CRC64.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<dataEnd]))
    guard stored == computed else { throw fail(.checksumMismatch(stored: stored, computed: computed)) }

    let flags = u32(12)
    guard flags == 0 else { throw fail(.unsupportedFlags(found: flags)) }

    let headerLength = Int(u32(24))   // at most 2^32 - 1: no overflow below on 64-bit
    let headerEnd = F.preambleLength + headerLength
    guard headerEnd <= dataEnd else {
      throw fail(.badHeader("header length \(headerLength) does not fit in a \(n)-byte file "
                            + "(the checksum starts at \(dataEnd))"))
    }
    let dataStart = F.align(headerEnd)

    let header: F.Header
    do {
      let json = Data(UnsafeRawBufferPointer(rebasing: raw[F.preambleLength..<headerEnd]))
      header = try F.jsonDecoder().decode(F.Header.self, from: json)
    } catch {
      throw fail(.badHeader("malformed JSON: \(describeDecodingError(error))"))
    }
    guard header.epochsCompleted >= 0 else {
      throw fail(.badHeader("epochsCompleted \(header.epochsCompleted) is negative"))
    }

    // The tensor table: names, shapes, ranges.
    var indexByName: [String: Int] = [:]
    var ranges: [(start: Int, end: Int, index: Int)] = []
    for (i, e) in header.tensors.enumerated() {
      let label = e.name.isEmpty ? "tensors[\(i)]" : e.name
      func bad(_ what: String) -> CheckpointError { fail(.badTensor(name: label, what)) }
      guard !e.name.isEmpty else { throw bad("empty name") }
      if let j = indexByName.updateValue(i, forKey: e.name) {
        throw bad("duplicate name (tensors[\(j)] and tensors[\(i)])")
      }
      guard let product = elementCount(of: e.shape) else {
        throw bad("shape \(e.shape) has a negative dimension or too many elements")
      }
      guard e.count >= 0 else { throw bad("count \(e.count) is negative") }
      guard product == e.count else {
        throw bad("shape \(e.shape) has \(product) elements but count is \(e.count)")
      }
      guard e.offset >= 0, e.offset % F.alignment == 0 else {
        throw bad("offset \(e.offset) is not a non-negative multiple of \(F.alignment)")
      }
      guard e.offset >= dataStart else {
        throw bad("offset \(e.offset) lies before the data area, which starts at \(dataStart)")
      }
      let (bytes, o1) = e.count.multipliedReportingOverflow(by: 4)
      let (end, o2) = e.offset.addingReportingOverflow(bytes)
      guard !o1, !o2, end <= dataEnd else {
        throw bad("\(e.count) values at offset \(e.offset) run past the end of the data area "
                  + "at \(dataEnd) (out of range)")
      }
      ranges.append((e.offset, end, i))
    }

    // No overlaps; everything between header, tensors and checksum is zero padding.
    ranges.sort { ($0.start, $0.end) < ($1.start, $1.end) }
    var cursor = headerEnd
    var previous: (start: Int, end: Int, index: Int)? = nil
    for r in ranges {
      if let p = previous, r.start < p.end {
        throw fail(.badTensor(name: header.tensors[r.index].name,
                              "bytes [\(r.start), \(r.end)) overlap tensor \"\(header.tensors[p.index].name)\" at [\(p.start), \(p.end))"))
      }
      if let nz = firstNonZero(raw, from: cursor, to: r.start) {
        throw fail(.badHeader("padding byte at offset \(nz) is not zero"))
      }
      cursor = Swift.max(cursor, r.end)
      if r.end > r.start { previous = r }
    }
    if let nz = firstNonZero(raw, from: cursor, to: dataEnd) {
      throw fail(.badHeader("padding byte at offset \(nz) is not zero"))
    }

    let tensors = header.tensors.map { e -> NamedTensor in
      let values = [Float](unsafeUninitializedCapacity: e.count) { buffer, initialized in
        if e.count > 0 {
          UnsafeMutableRawBufferPointer(buffer).copyMemory(
            from: UnsafeRawBufferPointer(rebasing: raw[e.offset..<(e.offset + 4 * e.count)]))
        }
        #if _endian(big)
        for j in 0..<e.count { buffer[j] = Float(bitPattern: UInt32(littleEndian: buffer[j].bitPattern)) }
        #endif
        initialized = e.count
      }
      return NamedTensor(unchecked: e.name, shape: e.shape, values: values)
    }
    return Checkpoint(model: header.model, training: header.training, data: header.data,
                      history: header.history, epochsCompleted: header.epochsCompleted,
                      tensors: tensors, metadata: header.metadata)
  }
}

extension NamedTensor {
  /// For the decoder, which has already checked the shape.
  fileprivate init(unchecked name: String, shape: [Int], values: [Float]) {
    self.name = name
    self.shape = shape
    self.values = values
  }
}

/// Offset of the first non-zero byte in [from, to), if any (nil for an empty or inverted range).
private func firstNonZero(_ raw: UnsafeRawBufferPointer, from: Int, to: Int) -> Int? {
  guard from < to else { return nil }
  return raw[from..<to].firstIndex { $0 != 0 }
}

/// "at tensors[2].offset: Expected to decode Int but found a string" rather than the verbose
/// default description.
private func describeDecodingError(_ error: Error) -> String {
  func path(_ context: DecodingError.Context) -> String {
    var s = ""
    for key in context.codingPath {
      if let i = key.intValue { s += "[\(i)]" } else { s += (s.isEmpty ? "" : ".") + key.stringValue }
    }
    return s.isEmpty ? "top level" : s
  }
  func underlying(_ context: DecodingError.Context) -> String {
    guard let u = context.underlyingError else { return "" }
    let nested = (u as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(u)"
    return " (\(nested))"
  }
  guard let d = error as? DecodingError else { return "\(error)" }
  switch d {
  case .dataCorrupted(let c):
    return "at \(path(c)): \(c.debugDescription)\(underlying(c))"
  case .keyNotFound(let key, let c):
    return "at \(path(c)): missing key \"\(key.stringValue)\""
  case .typeMismatch(let type, let c):
    return "at \(path(c)): expected \(type): \(c.debugDescription)"
  case .valueNotFound(let type, let c):
    return "at \(path(c)): expected \(type) but found null"
  @unknown default:
    return "\(d)"
  }
}
