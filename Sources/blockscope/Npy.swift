import Foundation
import Wire

// NumPy's .npy format (numpy.lib.format): the magic "\x93NUMPY", a version, a header length,
// a Python dict literal {'descr': ..., 'fortran_order': ..., 'shape': (...), } padded with
// spaces and a newline so that the data starts at a multiple of 64 bytes, then the data.
//
// Written: format 1.0 (2.0 only when the header would not fit a u16), C order, the four
// dtypes of the protocol: '<f8', '<f4', '<i4', '|u1'. The header is byte-identical to what
// numpy >= 1.24 writes (including its spare room for growing the first axis).
// Read: formats 1.0, 2.0 and 3.0 with the same four dtypes in C order; anything else (other
// dtypes, big-endian data, Fortran order, object arrays, truncated or trailing bytes) is
// refused with the reason.

/// An n-dimensional array as stored in a .npy file: protocol dtype, shape, little-endian bytes.
struct NpyArray: Equatable {
  var dtype: WireTensor.DType
  var shape: [Int]
  /// Row-major, little-endian; `product(shape) * dtype.byteWidth` bytes.
  var bytes: [UInt8]

  init(dtype: WireTensor.DType, shape: [Int], bytes: [UInt8]) {
    precondition(WireTensor.byteCount(dtype: dtype, shape: shape) == bytes.count,
                 "\(bytes.count) bytes do not fit \(dtype.rawValue)\(shape)")
    self.dtype = dtype
    self.shape = shape
    self.bytes = bytes
  }

  init(_ tensor: WireTensor) {
    self.init(dtype: tensor.dtype, shape: tensor.shape, bytes: tensor.bytes)
  }

  init(doubles: [Double], shape: [Int]) {
    self.init(WireTensor(name: "npy", doubles: doubles, shape: shape))
  }

  init(floats: [Float], shape: [Int]) {
    self.init(WireTensor(name: "npy", floats: floats, shape: shape))
  }

  init(int32s: [Int32], shape: [Int]) {
    self.init(WireTensor(name: "npy", int32s: int32s, shape: shape))
  }

  init(uint8s: [UInt8], shape: [Int]) {
    self.init(dtype: .u8, shape: shape, bytes: uint8s)
  }

  func tensor(named name: String) -> WireTensor {
    WireTensor(name: name, dtype: dtype, shape: shape, bytes: bytes)
  }

  /// The values widened to Double.
  var doubles: [Double] { tensor(named: "npy").valuesAsDoubles }
}

enum Npy {
  static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)
  /// numpy's `GROWTH_AXIS_MAX_DIGITS`: spare header room so the first axis can grow in place.
  static let growthAxisMaxDigits = 21
  /// numpy refuses headers longer than this by default (`max_header_size`).
  static let maxHeaderLength = 10000

  static func descr(_ dtype: WireTensor.DType) -> String {
    switch dtype {
    case .f64: return "<f8"
    case .f32: return "<f4"
    case .i32: return "<i4"
    case .u8: return "|u1"
    case .f16: return "<f2"
    // numpy has no bfloat16: its bits, as ml_dtypes-less numpy would hold them.
    case .bf16: return "<u2"
    }
  }

  // MARK: Writing

  /// The file's bytes.
  static func encode(_ array: NpyArray) -> [UInt8] {
    header(descr: descr(array.dtype), shape: array.shape) + array.bytes
  }

  static func write(_ array: NpyArray, to path: String) throws {
    try Files.write(encode(array), to: path)
  }

  /// Python's repr of a tuple of ints: `()`, `(3,)`, `(3, 4)`.
  static func shapeRepr(_ shape: [Int]) -> String {
    switch shape.count {
    case 0: return "()"
    case 1: return "(\(shape[0]),)"
    default: return "(" + shape.map(String.init).joined(separator: ", ") + ")"
    }
  }

  static func header(descr: String, shape: [Int]) -> [UInt8] {
    var dict = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeRepr(shape)), }"
    if let first = shape.first {
      dict += String(repeating: " ", count: max(0, growthAxisMaxDigits - String(first).count))
    }
    let text = Array(dict.utf8)
    let withNewline = text.count + 1
    var version: [UInt8] = [1, 0]
    var sizeBytes = 2
    var padding = 64 - ((magic.count + 2 + sizeBytes + withNewline) % 64)
    if withNewline + padding > Int(UInt16.max) {
      version = [2, 0]
      sizeBytes = 4
      padding = 64 - ((magic.count + 2 + sizeBytes + withNewline) % 64)
    }
    // numpy pads even when already aligned (64 - 0 = 64 spaces), and so does this.
    let headerLength = withNewline + padding
    var bytes = magic + version
    for i in 0..<sizeBytes { bytes.append(UInt8(truncatingIfNeeded: headerLength >> (8 * i))) }
    bytes += text
    bytes += Array(repeating: UInt8(ascii: " "), count: padding)
    bytes.append(UInt8(ascii: "\n"))
    return bytes
  }

  // MARK: Reading

  static func read(_ path: String) throws -> NpyArray {
    try decode(try Files.read(path), name: path)
  }

  /// Parses a .npy file's bytes; `name` appears in error messages.
  static func decode(_ bytes: [UInt8], name: String = "<npy>") throws -> NpyArray {
    func fail(_ message: String) -> OutputError { OutputError("\(name): \(message)") }
    guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
      throw fail("not a .npy file (no \\x93NUMPY magic)")
    }
    let (major, minor) = (bytes[6], bytes[7])
    let sizeBytes: Int
    switch (major, minor) {
    case (1, 0): sizeBytes = 2
    case (2, 0), (3, 0): sizeBytes = 4
    default: throw fail(".npy format version \(major).\(minor) is not supported (1.0, 2.0, 3.0 are)")
    }
    guard bytes.count >= 8 + sizeBytes else { throw fail("truncated .npy header") }
    var headerLength = 0
    for i in 0..<sizeBytes { headerLength |= Int(bytes[8 + i]) << (8 * i) }
    guard headerLength <= maxHeaderLength else {
      throw fail(".npy header of \(headerLength) bytes is implausibly large")
    }
    let start = 8 + sizeBytes
    guard bytes.count >= start + headerLength else { throw fail("truncated .npy header") }
    let headerBytes = Array(bytes[start..<(start + headerLength)])
    // 1.0 and 2.0 headers are latin-1, 3.0 UTF-8; the keys and values read here are ASCII.
    let text = major == 3 ? String(decoding: headerBytes, as: UTF8.self)
                          : String(headerBytes.map { Character(Unicode.Scalar($0)) })
    let header: HeaderDict
    do {
      header = try HeaderDict.parse(text)
    } catch let error as OutputError {
      throw fail("unreadable .npy header \(text.trimmingCharacters(in: .whitespacesAndNewlines)): \(error.message)")
    }
    guard !header.fortranOrder else {
      throw fail("the array is stored in Fortran (column-major) order; only C order is read: save np.ascontiguousarray(a) instead")
    }
    guard let dtype = Self.dtype(descr: header.descr) else {
      throw fail("dtype '\(header.descr)' is not supported: only little-endian float64 ('<f8'), float32 ('<f4'), int32 ('<i4') and uint8 ('|u1') are read; convert with a.astype(np.float64) before np.save")
    }
    guard let size = WireTensor.byteCount(dtype: dtype, shape: header.shape) else {
      throw fail("shape \(shapeRepr(header.shape)) is too large")
    }
    let dataStart = start + headerLength
    let available = bytes.count - dataStart
    guard available >= size else {
      throw fail("truncated .npy data: \(available) bytes for \(dtype.rawValue)\(header.shape), \(size) expected")
    }
    guard available == size else {
      throw fail("\(available - size) unexpected bytes after the .npy data")
    }
    return NpyArray(dtype: dtype, shape: header.shape, bytes: Array(bytes[dataStart...]))
  }

  static func dtype(descr: String) -> WireTensor.DType? {
    switch descr {
    case "<f8": return .f64
    case "<f4": return .f32
    case "<i4": return .i32
    case "<f2": return .f16
    case "|u1", "<u1", "u1", ">u1", "=u1": return .u8
    default: return nil
    }
  }

  /// The three keys of a .npy header, read from its Python dict literal.
  struct HeaderDict {
    var descr: String
    var fortranOrder: Bool
    var shape: [Int]

    /// A small parser for exactly what numpy writes: string keys; a string, True/False or a
    /// tuple of integers as values; optional trailing commas; whitespace anywhere.
    static func parse(_ text: String) throws -> HeaderDict {
      var scanner = HeaderScanner(Array(text.unicodeScalars))
      try scanner.expect("{")
      var descr: String?
      var fortran: Bool?
      var shape: [Int]?
      while true {
        scanner.skipSpace()
        if scanner.consume("}") { break }
        let key = try scanner.string()
        scanner.skipSpace()
        try scanner.expect(":")
        scanner.skipSpace()
        switch key {
        case "descr":
          guard scanner.peek == "'" || scanner.peek == "\"" else {
            throw OutputError("descr is not a simple dtype string (structured arrays are not read)")
          }
          descr = try scanner.string()
        case "fortran_order":
          fortran = try scanner.boolean()
        case "shape":
          shape = try scanner.tuple()
        default:
          throw OutputError("unexpected key '\(key)'")
        }
        scanner.skipSpace()
        if scanner.consume(",") { continue }
        scanner.skipSpace()
        try scanner.expect("}")
        break
      }
      guard let descr, let fortran, let shape else {
        throw OutputError("the header lacks descr, fortran_order or shape")
      }
      return HeaderDict(descr: descr, fortranOrder: fortran, shape: shape)
    }
  }

  private struct HeaderScanner {
    var scalars: [Unicode.Scalar]
    var position = 0

    init(_ scalars: [Unicode.Scalar]) { self.scalars = scalars }

    var peek: Unicode.Scalar? { position < scalars.count ? scalars[position] : nil }

    mutating func skipSpace() {
      while let c = peek, c == " " || c == "\t" || c == "\n" || c == "\r" { position += 1 }
    }

    mutating func consume(_ c: Unicode.Scalar) -> Bool {
      if peek == c {
        position += 1
        return true
      }
      return false
    }

    mutating func expect(_ c: Unicode.Scalar) throws {
      skipSpace()
      guard consume(c) else { throw OutputError("expected '\(c)' at offset \(position)") }
    }

    mutating func string() throws -> String {
      guard let quote = peek, quote == "'" || quote == "\"" else {
        throw OutputError("expected a string at offset \(position)")
      }
      position += 1
      var result = ""
      while let c = peek, c != quote {
        result.unicodeScalars.append(c)
        position += 1
      }
      guard consume(quote) else { throw OutputError("unterminated string") }
      return result
    }

    mutating func boolean() throws -> Bool {
      if word("True") { return true }
      if word("False") { return false }
      throw OutputError("expected True or False at offset \(position)")
    }

    mutating func word(_ text: String) -> Bool {
      let target = Array(text.unicodeScalars)
      guard position + target.count <= scalars.count,
            Array(scalars[position..<(position + target.count)]) == target else { return false }
      position += target.count
      return true
    }

    mutating func tuple() throws -> [Int] {
      try expect("(")
      var values: [Int] = []
      while true {
        skipSpace()
        if consume(")") { return values }
        var digits = ""
        while let c = peek, ("0"..."9").contains(c) {
          digits.unicodeScalars.append(c)
          position += 1
        }
        // numpy may write long integers as 3L (Python 2 files).
        _ = consume("L")
        guard let value = Int(digits) else { throw OutputError("expected a non-negative integer in the shape at offset \(position)") }
        values.append(value)
        skipSpace()
        if consume(",") { continue }
        try expect(")")
        return values
      }
    }
  }
}
