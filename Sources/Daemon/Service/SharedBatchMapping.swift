import Glibc
import Wire

/// The memfd of a shared-memory SESSION_BATCH (SPEC.md section 7, "Shared-memory batches"),
/// mapped read-only for the length of one request. Nothing in the frame is trusted: the
/// descriptor must be a regular file sealed against shrinking (so a mapped page can never
/// vanish under a reader, which would be SIGBUS for the whole daemon), and every tensor's
/// offset and size are checked against the file's size, with overflow checks, before the file
/// is mapped.
final class SharedBatchMapping {
  // <linux/fcntl.h>; Glibc does not export them as constants to Swift.
  private static let getSeals: Int32 = 1024 + 10     // F_GET_SEALS
  private static let sealShrink: Int32 = 0x0002      // F_SEAL_SHRINK

  let size: Int
  private let base: UnsafeMutableRawPointer?

  init(_ fd: Int32, tensors: [SessionBatchRequest.SharedTensor]) throws(WireError) {
    var info = stat()
    guard fstat(fd, &info) == 0 else {
      throw invalid("memfd", "fstat of the descriptor that came with the frame failed: \(String(cString: strerror(errno)))")
    }
    guard info.st_mode & S_IFMT == S_IFREG else {
      throw invalid("memfd", "the descriptor that came with the frame is not a memfd (not a regular file)")
    }
    let seals = fcntl(fd, Self.getSeals)
    guard seals >= 0 else {
      throw invalid("memfd", "the descriptor that came with the frame is not a memfd (it takes no seals: "
                    + "\(String(cString: strerror(errno))))")
    }
    guard seals & Self.sealShrink != 0 else {
      throw invalid("memfd", "the memfd is not sealed against shrinking: create it with MFD_ALLOW_SEALING and add "
                    + "F_SEAL_SHRINK (fcntl F_ADD_SEALS) before sending it")
    }
    size = Int(info.st_size)
    for (i, t) in tensors.enumerated() {
      let key = "memfd[\(i)]"
      guard let count = WireTensor.byteCount(dtype: t.dtype, shape: t.shape) else {
        throw invalid(key + ".shape", "tensor '\(t.name)': \(t.shape) is negative or too large")
      }
      guard t.offset >= 0, t.offset % t.dtype.byteWidth == 0 else {
        throw invalid(key + ".offset", "tensor '\(t.name)': offset \(t.offset) is not a non-negative multiple of "
                      + "\(t.dtype.byteWidth) (the size of \(t.dtype.rawValue))")
      }
      guard t.offset <= size, count <= size - t.offset else {
        throw invalid(key + ".offset", "tensor '\(t.name)' (\(t.dtype.rawValue)\(t.shape), \(count) bytes at offset "
                      + "\(t.offset)) does not fit in the memfd, which holds \(size) bytes")
      }
    }
    guard size > 0 else {
      base = nil
      return
    }
    let mapped = mmap(nil, size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0)
    guard let mapped, mapped != MAP_FAILED else {
      throw WireError(.ioError, "mmap of the memfd (\(size) bytes) failed: \(String(cString: strerror(errno)))")
    }
    base = mapped
  }

  deinit {
    if let base { munmap(base, size) }
  }

  /// The bytes of one tensor checked in `init`.
  func bytes(of t: SessionBatchRequest.SharedTensor) -> UnsafeRawBufferPointer {
    let count = WireTensor.byteCount(dtype: t.dtype, shape: t.shape) ?? 0
    guard let base, count > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
    return UnsafeRawBufferPointer(start: base + t.offset, count: count)
  }
}
