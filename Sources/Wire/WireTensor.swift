// SPEC.md section 3: a tensor is a descriptor in the doc (`name`, `dtype`, `shape`) and
// `product(shape) * size(dtype)` bytes after the doc, little-endian, row-major.

/// One tensor of a payload: its descriptor and its little-endian bytes.
public struct WireTensor: Hashable, Sendable {
  /// The element types of the protocol. `f16` (IEEE binary16) and `bf16` (bfloat16, the top
  /// half of an f32) carry activations from tools that compute in them; receivers widen them.
  public enum DType: String, CaseIterable, Codable, Hashable, Sendable {
    case f32, f64, i32, u8, f16, bf16

    public init(from decoder: Decoder) throws {
      let container = try decoder.singleValueContainer()
      let text = try container.decode(String.self)
      guard let dtype = Self(rawValue: text) else {
        throw DecodingError.dataCorrupted(DecodingError.Context(
          codingPath: container.codingPath,
          debugDescription: "dtype \"\(text)\" is not one of f32, f64, i32, u8, f16, bf16"))
      }
      self = dtype
    }

    /// Bytes per element.
    public var byteWidth: Int {
      switch self {
      case .f32, .i32: return 4
      case .f64: return 8
      case .u8: return 1
      case .f16, .bf16: return 2
      }
    }
  }

  public var name: String
  public var dtype: DType
  /// Dimensions, outermost first; `[]` is a scalar (one element).
  public var shape: [Int]
  /// `elementCount * dtype.byteWidth` bytes, little-endian, row-major.
  public var bytes: [UInt8]

  /// A tensor from raw little-endian bytes, whose count must match the shape.
  public init(name: String, dtype: DType, shape: [Int], bytes: [UInt8]) {
    precondition(Self.byteCount(dtype: dtype, shape: shape) == bytes.count,
                 "tensor '\(name)': \(bytes.count) bytes do not fit \(dtype.rawValue)\(shape)")
    self.name = name
    self.dtype = dtype
    self.shape = shape
    self.bytes = bytes
  }

  public init(name: String, floats: [Float], shape: [Int]) {
    self.init(name: name, dtype: .f32, shape: shape, bytes: littleEndianBytes(of: floats))
  }

  public init(name: String, doubles: [Double], shape: [Int]) {
    self.init(name: name, dtype: .f64, shape: shape, bytes: littleEndianBytes(of: doubles))
  }

  public init(name: String, int32s: [Int32], shape: [Int]) {
    self.init(name: name, dtype: .i32, shape: shape, bytes: littleEndianBytes(of: int32s))
  }

  public init(name: String, uint8s: [UInt8], shape: [Int]) {
    self.init(name: name, dtype: .u8, shape: shape, bytes: uint8s)
  }

  /// `product(shape) * dtype.byteWidth`; nil for a negative dimension or on overflow.
  public static func byteCount(dtype: DType, shape: [Int]) -> Int? {
    var count = dtype.byteWidth
    for dimension in shape {
      guard dimension >= 0 else { return nil }
      let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
      guard !overflow else { return nil }
      count = product
    }
    return count
  }

  /// `product(shape)`.
  public var elementCount: Int { bytes.count / dtype.byteWidth }

  /// The values of an `f32` tensor; nil for another dtype.
  public var floats: [Float]? { dtype == .f32 ? values(of: Float.self) : nil }
  /// The values of an `f64` tensor; nil for another dtype.
  public var doubles: [Double]? { dtype == .f64 ? values(of: Double.self) : nil }
  /// The values of an `i32` tensor; nil for another dtype.
  public var int32s: [Int32]? { dtype == .i32 ? values(of: Int32.self) : nil }
  /// The values of a `u8` tensor; nil for another dtype.
  public var uint8s: [UInt8]? { dtype == .u8 ? bytes : nil }

  /// The values of any dtype, widened to Double (exact for every dtype).
  public var valuesAsDoubles: [Double] {
    switch dtype {
    case .f32, .f16, .bf16: return widenedFloats!.map(Double.init)
    case .f64: return values(of: Double.self)
    case .i32: return values(of: Int32.self).map(Double.init)
    case .u8: return bytes.map(Double.init)
    }
  }

  /// The values of an `f32`, `f16` or `bf16` tensor as Float (widening is exact: every f16 and
  /// bf16 value, subnormals, infinities and NaN included, is an f32); nil for other dtypes.
  public var widenedFloats: [Float]? {
    bytes.withUnsafeBytes { Self.widenedFloats(dtype: dtype, bytes: $0) }
  }

  /// `widenedFloats` of a tensor's little-endian bytes wherever they lie (a payload read in
  /// place); nil for dtypes other than f32, f16 and bf16.
  public static func widenedFloats(dtype: DType, bytes: UnsafeRawBufferPointer) -> [Float]? {
    switch dtype {
    case .f32:
      let count = bytes.count / 4
      return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
        #if _endian(little)
        UnsafeMutableRawBufferPointer(buffer).copyMemory(from: bytes)
        #else
        for i in 0..<count {
          buffer[i] = Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
        }
        #endif
        initialized = count
      }
    case .f16, .bf16:
      let count = bytes.count / 2
      let bf16 = dtype == .bf16
      return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
        for i in 0..<count {
          let bits = UInt16(bytes[2 * i]) | UInt16(bytes[2 * i + 1]) << 8
          buffer[i] = bf16 ? Float(bitPattern: UInt32(bits) << 16) : widenHalf(bits)
        }
        initialized = count
      }
    default: return nil
    }
  }

  /// The descriptor as it appears in the doc's `tensors` array.
  public var descriptor: Descriptor { Descriptor(name: name, dtype: dtype, shape: shape) }

  /// `{"name": ..., "dtype": ..., "shape": [...]}`.
  public struct Descriptor: Codable, Hashable, Sendable {
    public var name: String
    public var dtype: DType
    public var shape: [Int]

    public init(name: String, dtype: DType, shape: [Int]) {
      self.name = name
      self.dtype = dtype
      self.shape = shape
    }

    enum CodingKeys: String, CodingKey { case name, dtype, shape }

    public init(from decoder: Decoder) throws {
      let container = try decoder.container(keyedBy: CodingKeys.self)
      let shape: [Int] = try container.value(.shape)
      if let index = shape.firstIndex(where: { $0 < 0 }) {
        throw DecodingError.dataCorrupted(DecodingError.Context(
          codingPath: container.codingPath + [CodingKeys.shape, AnyKey(index: index)],
          debugDescription: "dimension \(shape[index]) is negative"))
      }
      self.init(name: try container.value(.name), dtype: try container.value(.dtype), shape: shape)
    }
  }

  private func values<T: WireScalar>(of _: T.Type) -> [T] {
    let count = bytes.count / MemoryLayout<T>.size
    return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
      bytes.withUnsafeBytes { source in
        #if _endian(little)
        UnsafeMutableRawBufferPointer(buffer).copyMemory(from: source)
        #else
        for i in 0..<count {
          buffer[i] = T(littleEndianBits: source.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size,
                                                               as: T.Bits.self))
        }
        #endif
      }
      initialized = count
    }
  }
}

/// IEEE binary16 bits to the equal Float (written out: Float16 is not on every platform).
func widenHalf(_ h: UInt16) -> Float {
  let sign = UInt32(h & 0x8000) << 16
  let exponent = Int((h >> 10) & 0x1F)
  let mantissa = UInt32(h & 0x3FF)
  switch exponent {
  case 0:
    // Zero or subnormal: mantissa x 2^-24, exact in Float.
    let magnitude = Float(mantissa) * 0x1p-24
    return sign != 0 ? -magnitude : magnitude
  case 0x1F:
    return Float(bitPattern: sign | 0x7F80_0000 | mantissa << 13)
  default:
    return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | mantissa << 13)
  }
}

/// Element types whose bytes are written as a little-endian bit pattern.
protocol WireScalar: BitwiseCopyable {
  associatedtype Bits: FixedWidthInteger
  var littleEndianBits: Bits { get }
  init(littleEndianBits: Bits)
}

extension Float: WireScalar {
  var littleEndianBits: UInt32 { bitPattern.littleEndian }
  init(littleEndianBits: UInt32) { self.init(bitPattern: UInt32(littleEndian: littleEndianBits)) }
}

extension Double: WireScalar {
  var littleEndianBits: UInt64 { bitPattern.littleEndian }
  init(littleEndianBits: UInt64) { self.init(bitPattern: UInt64(littleEndian: littleEndianBits)) }
}

extension Int32: WireScalar {
  var littleEndianBits: Int32 { littleEndian }
  init(littleEndianBits: Int32) { self.init(littleEndian: littleEndianBits) }
}

/// The values' bytes in little-endian order (a plain copy on little-endian hosts).
func littleEndianBytes<T: WireScalar>(of values: [T]) -> [UInt8] {
  #if _endian(little)
  return values.withUnsafeBytes { Array($0) }
  #else
  var bytes: [UInt8] = []
  bytes.reserveCapacity(values.count * MemoryLayout<T>.size)
  for value in values {
    var bits = value.littleEndianBits
    withUnsafeBytes(of: &bits) { bytes.append(contentsOf: $0) }
  }
  return bytes
  #endif
}
