import Foundation
import Glibc
import Wire

/// The memfd of a shared-memory SESSION_BATCH (SPEC.md section 7, "Shared-memory batches"),
/// mapped read-only, with each tensor's byte range. Nothing in the frame is trusted: the
/// descriptor must be a regular file sealed against shrinking (so a mapped page can never
/// vanish under a reader, which would be SIGBUS for the whole daemon), and every tensor's
/// offset and size are checked against the file's size, with overflow checks, before any byte
/// is read. The mapping comes from the connection's `MemfdMappings` when it has one.
final class SharedBatchMapping {
  // <linux/fcntl.h>; Glibc does not export them as constants to Swift.
  private static let getSeals: Int32 = 1024 + 10     // F_GET_SEALS
  private static let sealShrink: Int32 = 0x0002      // F_SEAL_SHRINK

  /// The byte range of each tensor, in the order given (checked against the file's size).
  let ranges: [Range<Int>]
  private let file: MappedMemfd

  init(_ fd: Int32, tensors: [SessionBatchRequest.SharedTensor], reusing mappings: MemfdMappings?) throws(WireError) {
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
    let identity = MappedMemfd.Identity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    let size = Int(info.st_size)
    ranges = try SessionBatchRequest.sharedRanges(tensors, fileSize: size)
    if let mappings {
      file = try mappings.mapping(fd, identity: identity, size: size)
    } else {
      file = try MappedMemfd(fd, identity: identity, size: size)
    }
  }

  /// The bytes of the tensor at `index` of those checked in `init`.
  func bytes(at index: Int) -> UnsafeRawBufferPointer {
    let range = ranges[index]
    guard let base = file.base, !range.isEmpty else { return UnsafeRawBufferPointer(start: nil, count: 0) }
    return UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count)
  }
}

/// A memfd mapped read-only and whole; unmapped when the last user lets go.
final class MappedMemfd: @unchecked Sendable {
  /// A file's identity. A held mapping keeps its file alive, so while one is held its inode
  /// cannot name another file.
  struct Identity: Hashable {
    let device: UInt64
    let inode: UInt64
  }

  let identity: Identity
  let size: Int
  let base: UnsafeRawPointer?

  init(_ fd: Int32, identity: Identity, size: Int) throws(WireError) {
    self.identity = identity
    self.size = size
    guard size > 0 else {
      base = nil
      return
    }
    let mapped = mmap(nil, size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0)
    guard let mapped, mapped != MAP_FAILED else {
      throw WireError(.ioError, "mmap of the memfd (\(size) bytes) failed: \(String(cString: strerror(errno)))")
    }
    base = UnsafeRawPointer(mapped)
  }

  deinit {
    if let base { munmap(UnsafeMutableRawPointer(mutating: base), size) }
  }
}

/// The memfds one connection has sent, kept mapped for its next frames. A client writes its
/// batches into the same few memfds over and over, and mapping one costs about as much as
/// computing a tenth of its Grams (page tables for 64 MiB: ~8 ms); a kept mapping sees the
/// client's new bytes (MAP_SHARED). Bounded in count and bytes, least recently used first
/// out; everything goes when the connection closes (a kept mapping keeps the client's memory
/// alive after it closes its memfd).
final class MemfdMappings: @unchecked Sendable {
  static let maxFiles = 4
  static let maxBytes = 1 << 30

  private let lock = NSLock()
  /// Least recently used first.
  private var files: [MappedMemfd] = []

  /// The kept mapping of this file if it covers `size` bytes, else a new one (kept when it
  /// fits the bounds). A file only grows (it is sealed against shrinking), so a kept mapping
  /// of it is never longer than the file.
  func mapping(_ fd: Int32, identity: MappedMemfd.Identity, size: Int) throws(WireError) -> MappedMemfd {
    lock.lock()
    defer { lock.unlock() }
    if let i = files.firstIndex(where: { $0.identity == identity }) {
      let kept = files.remove(at: i)
      if kept.size >= size {
        files.append(kept)
        return kept
      }
    }
    let mapped = try MappedMemfd(fd, identity: identity, size: size)
    guard size > 0, size <= Self.maxBytes else { return mapped }
    files.append(mapped)
    while files.count > Self.maxFiles || files.reduce(0, { $0 + $1.size }) > Self.maxBytes {
      files.removeFirst()
    }
    return mapped
  }

  /// How many mappings are kept (for tests).
  var count: Int { lock.withLock { files.count } }
}
