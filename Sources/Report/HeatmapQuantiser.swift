import Foundation

/// Turns a full-precision heatmap into the display encoding documented on `QuantisedHeatmap`,
/// and back (for tests and tools).
///
/// Encoding: `lo = min(0, smallest defined value)`, `hi = max(1, largest defined value)` (so
/// every CKA heatmap shares the 0...1 colour scale and `hi > lo` always holds); a defined
/// finite value `v` gets `code = round((v - lo) / (hi - lo) * (2^bits - 2))`, which
/// `dequantise` reads back within `(hi - lo) / (2^bits - 2) / 2`; an undefined cell, or a
/// NaN or infinity, gets code `2^bits - 1`. Codes are little-endian `bits`-bit unsigned
/// integers, row-major, base64.
///
/// Standard errors (optional): `se_max` = the largest finite non-negative standard error of a
/// defined cell; `code = round(se / se_max * 254)` as u8, 255 where the cell or its standard
/// error is undefined (negative or non-finite).
public enum HeatmapQuantiser {
  public enum DecodingError: Error, CustomStringConvertible, Equatable {
    case unsupportedBits(Int)
    case badBase64(field: String)
    case wrongLength(field: String, expected: Int, got: Int)

    public var description: String {
      switch self {
      case let .unsupportedBits(b): return "heatmap: unsupported bits \(b) (8 or 16)"
      case let .badBase64(f): return "heatmap: \(f) is not base64"
      case let .wrongLength(f, e, g): return "heatmap: \(f) holds \(g) bytes, expected \(e)"
      }
    }
  }

  /// A heatmap read back: `nil` for undefined cells.
  public struct Dequantised: Equatable, Sendable {
    public var values: [Double?]
    public var standardErrors: [Double?]?
  }

  public static func quantise(values: [Double], defined: [Bool], rows: Int, columns: Int,
                              rowNames: String, columnNames: String, bits: Int,
                              standardErrors: [Double]? = nil) -> QuantisedHeatmap {
    let count = rows * columns
    precondition(rows >= 0 && columns >= 0, "heatmap: negative size")
    precondition(values.count == count, "heatmap: \(values.count) values for \(rows) x \(columns)")
    precondition(defined.count == count, "heatmap: \(defined.count) defined flags for \(rows) x \(columns)")
    precondition(bits == 8 || bits == 16, "heatmap: bits must be 8 or 16, not \(bits)")
    if let se = standardErrors {
      precondition(se.count == count, "heatmap: \(se.count) standard errors for \(rows) x \(columns)")
    }

    var lo = 0.0, hi = 1.0
    for i in 0..<count where defined[i] && values[i].isFinite {
      lo = Swift.min(lo, values[i])
      hi = Swift.max(hi, values[i])
    }
    let undefinedCode = (1 << bits) - 1
    let top = Double(undefinedCode - 1)
    let scale = top / (hi - lo)

    var bytes = [UInt8]()
    bytes.reserveCapacity(count * bits / 8)
    for i in 0..<count {
      var code = undefinedCode
      if defined[i], values[i].isFinite {
        code = Int(Swift.min(top, Swift.max(0, ((values[i] - lo) * scale).rounded())))
      }
      bytes.append(UInt8(code & 0xff))
      if bits == 16 { bytes.append(UInt8(code >> 8)) }
    }

    var seText: String?
    var seMax: Double?
    if let se = standardErrors {
      var m = 0.0
      for i in 0..<count where defined[i] && values[i].isFinite && se[i].isFinite && se[i] >= 0 {
        m = Swift.max(m, se[i])
      }
      var codes = [UInt8](repeating: 255, count: count)
      for i in 0..<count where defined[i] && values[i].isFinite && se[i].isFinite && se[i] >= 0 {
        codes[i] = m > 0 ? UInt8(Swift.min(254, (se[i] / m * 254).rounded())) : 0
      }
      seText = Data(codes).base64EncodedString()
      seMax = m
    }

    return QuantisedHeatmap(rowNames: rowNames, columnNames: columnNames, rows: rows,
                            columns: columns, bits: bits, lo: lo, hi: hi,
                            values: Data(bytes).base64EncodedString(), standardErrors: seText,
                            seMax: seMax)
  }

  /// The largest difference between a defined finite value and its dequantised copy.
  public static func maxError(_ h: QuantisedHeatmap) -> Double {
    (h.hi - h.lo) / Double((1 << h.bits) - 2) / 2
  }

  /// The largest difference between a standard error and its dequantised copy.
  public static func maxStandardErrorError(_ h: QuantisedHeatmap) -> Double {
    (h.seMax ?? 0) / 254 / 2
  }

  public static func dequantise(_ h: QuantisedHeatmap) throws -> Dequantised {
    guard h.bits == 8 || h.bits == 16 else { throw DecodingError.unsupportedBits(h.bits) }
    let count = h.rows * h.columns
    guard let data = Data(base64Encoded: h.values) else { throw DecodingError.badBase64(field: "values") }
    let bytes = [UInt8](data)
    let width = h.bits / 8
    guard bytes.count == count * width else {
      throw DecodingError.wrongLength(field: "values", expected: count * width, got: bytes.count)
    }
    let undefinedCode = (1 << h.bits) - 1
    let step = (h.hi - h.lo) / Double(undefinedCode - 1)
    var values = [Double?](repeating: nil, count: count)
    for i in 0..<count {
      let code = width == 1 ? Int(bytes[i]) : Int(bytes[2 * i]) | Int(bytes[2 * i + 1]) << 8
      if code != undefinedCode { values[i] = h.lo + Double(code) * step }
    }
    var ses: [Double?]?
    if let text = h.standardErrors {
      guard let data = Data(base64Encoded: text) else { throw DecodingError.badBase64(field: "standard_errors") }
      let codes = [UInt8](data)
      guard codes.count == count else {
        throw DecodingError.wrongLength(field: "standard_errors", expected: count, got: codes.count)
      }
      let m = h.seMax ?? 0
      ses = codes.map { $0 == 255 ? nil : Double($0) * m / 254 }
    }
    return Dequantised(values: values, standardErrors: ses)
  }
}
