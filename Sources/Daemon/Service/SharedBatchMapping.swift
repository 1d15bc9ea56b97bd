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
  /// The byte range of each tensor, in the order given (checked against `size`).
  let ranges: [Range<Int>]
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
    ranges = try SessionBatchRequest.sharedRanges(tensors, fileSize: size)
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

  /// The bytes of the tensor at `index` of those checked in `init`.
  func bytes(at index: Int) -> UnsafeRawBufferPointer {
    let range = ranges[index]
    guard let base, !range.isEmpty else { return UnsafeRawBufferPointer(start: nil, count: 0) }
    return UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count)
  }
}
