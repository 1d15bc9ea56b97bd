import Foundation

/// A dense fp32 tensor on a 64-byte aligned buffer (NHWC for activations). A reference type:
/// layers keep their activation and gradient buffers across steps and hand raw pointers to the
/// C kernels.
public final class Tensor: @unchecked Sendable {
  public private(set) var shape: [Int]
  public let capacity: Int
  public let data: UnsafeMutablePointer<Float>

  public var count: Int { shape.reduce(1, *) }

  /// Bytes mapped with mmap (0: the buffer came from aligned_alloc).
  private let mappedBytes: Int

  /// From this size on a buffer is mapped with MAP_POPULATE instead of allocated and zeroed:
  /// fresh anonymous pages are zero already, and one populating mmap maps them about 2x faster
  /// than first-touch page faults on the development VM (a Gram cache grows by ~50 MB per
  /// batch; docs/PERFORMANCE.md, "Gram phase: transpose, centring, page mapping").
  static let mapThreshold = 1 << 20

  /// Zero-filled tensor of the given shape.
  public init(_ shape: [Int]) {
    precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
    self.shape = shape
    self.capacity = Swift.max(1, shape.reduce(1, *))
    let bytes = (capacity * MemoryLayout<Float>.stride + 63) & ~63
    if bytes >= Tensor.mapThreshold,
       let p = mmap(nil, bytes, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0),
       p != MAP_FAILED {
      mappedBytes = bytes
      data = p.bindMemory(to: Float.self, capacity: capacity)   // page-aligned, zero-filled
      return
    }
    guard let raw = aligned_alloc(64, bytes) else {
      fatalError("out of memory allocating a tensor of \(bytes) bytes")
    }
    mappedBytes = 0
    data = raw.bindMemory(to: Float.self, capacity: capacity)
    data.initialize(repeating: 0, count: capacity)
  }

  public convenience init(_ shape: [Int], values: [Float]) {
    self.init(shape)
    precondition(values.count == count, "\(values.count) values for shape \(shape)")
    values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: values.count) }
  }

  deinit {
    if mappedBytes > 0 { munmap(data, mappedBytes) } else { free(data) }
  }

  /// Changes the logical shape within the allocated capacity (e.g. a smaller last batch).
  public func reshape(_ newShape: [Int]) {
    precondition(newShape.reduce(1, *) <= capacity,
                 "reshape \(newShape) exceeds capacity \(capacity)")
    shape = newShape
  }

  public var array: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

  public func zero() { data.update(repeating: 0, count: count) }

  public func copy(from other: Tensor) {
    precondition(other.count == count, "copy of \(other.shape) into \(shape)")
    data.update(from: other.data, count: count)
  }

  public subscript(i: Int) -> Float {
    get { data[i] }
    set { data[i] = newValue }
  }
}
