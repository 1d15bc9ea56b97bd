#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

extension Checkpoint {
  /// Writes the checkpoint atomically: to a temporary file `.NAME.tmp-PID-RANDOM` in the target's
  /// directory, fsynced and closed, then renamed over `path`, then the directory is fsynced.
  /// After a crash `path` holds either the old or the new checkpoint, never a mix. Any failure
  /// throws a `CheckpointError` naming the system call and errno, removes the temporary file
  /// and leaves an existing file at `path` untouched (the one exception, `.notDurable`, is a
  /// failed directory fsync after the rename: the new file is in place but may not survive a
  /// crash). A symlink at `path` is replaced, not followed.
  public func save(to path: String) throws {
    if let problem = validationProblem() {
      throw CheckpointError(file: path, problem: .invalid(problem))
    }
    try CheckpointFiles.writeAtomically(encode(), to: path)
  }

  /// Reads and fully verifies a checkpoint file (see `decode(_:source:)`).
  public static func load(from path: String) throws -> Checkpoint {
    try decode(CheckpointFiles.readAll(path), source: path)
  }
}

#if DEBUG
/// Test seam (debug builds only): makes chosen system calls of `save`/`load` fail, or makes
/// writes short, as if the disk were full or flaky. `syscall` is "stat", "open", "write",
/// "fsync", "close", "rename", "open-dir", "fsync-dir", "fstat" or "read"; `path` the file it
/// acts on. Faults are keyed by path so that concurrent saves elsewhere are not affected.
enum CheckpointFault: Sendable {
  /// The call returns -1 with this errno (EINTR exercises the retry loop).
  case fail(Int32)
  /// A write transfers at most this many bytes (> 0).
  case shortWrite(Int)
}

enum CheckpointFaultInjection {
  typealias Hook = @Sendable (_ syscall: String, _ path: String) -> CheckpointFault?
  private final class Box: @unchecked Sendable {
    let lock = NSLock()
    var hook: Hook?
  }
  private static let box = Box()

  static var hook: Hook? {
    get { box.lock.lock(); defer { box.lock.unlock() }; return box.hook }
    set { box.lock.lock(); defer { box.lock.unlock() }; box.hook = newValue }
  }

  static func fault(_ syscall: String, _ path: String) -> CheckpointFault? {
    hook?(syscall, path)
  }
}
#endif

/// The system calls of save and load, each wrapped once: EINTR is retried, short writes are
/// continued, failures become `CheckpointError.io` naming the call, its path and errno.
public enum CheckpointFiles {
  /// Runs `body` (a system call returning -1 and setting errno on failure) until it does not
  /// fail with EINTR.
  @discardableResult
  static func call(_ operation: String, _ syscall: String, _ path: String, file: String,
                   _ body: () -> Int) throws -> Int {
    try call(operation, syscall, path, file: file) { (_: Int?) in body() }
  }

  /// As above; `body` gets the byte limit of an injected short write (always nil in release
  /// builds). The fault hook is consulted once per attempt.
  @discardableResult
  static func call(_ operation: String, _ syscall: String, _ path: String, file: String,
                   _ body: (_ shortWriteLimit: Int?) -> Int) throws -> Int {
    while true {
      var result: Int
      var code: Int32 = 0
      var limit: Int? = nil
      #if DEBUG
      let fault = CheckpointFaultInjection.fault(syscall, path)
      if case .shortWrite(let n)? = fault { limit = Swift.max(1, n) }
      if case .fail(let injected)? = fault {
        result = -1
        code = injected
      } else {
        result = body(limit)
        if result < 0 { code = errno }
      }
      #else
      result = body(limit)
      if result < 0 { code = errno }
      #endif
      if result >= 0 { return result }
      if code == EINTR { continue }
      throw CheckpointError(file: file, problem: .io(operation: operation, syscall: syscall,
                                                     path: path, errno: code))
    }
  }

  /// ("/a/b", "c.ckpt") for "/a/b/c.ckpt"; (".", "c.ckpt") for "c.ckpt"; ("/", "c") for "/c".
  static func split(_ path: String) -> (directory: String, name: String) {
    guard let slash = path.lastIndex(of: "/") else { return (".", path) }
    let dir = String(path[..<slash])
    return (dir.isEmpty ? "/" : dir, String(path[path.index(after: slash)...]))
  }

  /// Any file written like a checkpoint (the daemon's job records): temporary file in the
  /// target's directory, fsync, rename, directory fsync; see `Checkpoint.save(to:)`. Errors are
  /// `CheckpointError.io` / `.notDurable`; the DEBUG fault-injection seam applies.
  public static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
    let (dir, name) = split(path)
    func fail(_ syscall: String, _ on: String, _ code: Int32) -> CheckpointError {
      CheckpointError(file: path, problem: .io(operation: "save", syscall: syscall, path: on, errno: code))
    }
    guard !name.isEmpty, name != ".", name != ".." else { throw fail("open", path, EISDIR) }

    // A missing directory gets a clear message naming the directory, not the temporary file.
    var st = stat()
    try call("save", "stat", dir, file: path) { Int(stat(dir, &st)) }
    guard (st.st_mode & S_IFMT) == S_IFDIR else { throw fail("stat", dir, ENOTDIR) }

    // Keep the temporary name within NAME_MAX (255) for long target names.
    let stem = name.utf8.count > 200 ? String(decoding: name.utf8.prefix(200), as: UTF8.self) : name
    let suffix = String(UInt32.random(in: .min ... .max), radix: 16)
    let tmp = (dir == "/" ? "" : dir) + "/.\(stem).tmp-\(getpid())-\(suffix)"

    let fd = Int32(try call("save", "open", tmp, file: path) {
      Int(open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644))
    })
    var fdOpen = true
    var renamed = false
    defer {
      if fdOpen { _ = close(fd) }
      if !renamed { _ = unlink(tmp) }
    }

    try writeAll(fd, bytes, path: tmp, file: path)
    try call("save", "fsync", tmp, file: path) { Int(fsync(fd)) }
    // close is not retried on EINTR: on Linux the descriptor is released regardless, and the
    // data is already on disk after the fsync. Other errors (EIO on some file systems) count.
    fdOpen = false
    try call("save", "close", tmp, file: path) {
      let r = close(fd)
      return r != 0 && errno == EINTR ? 0 : Int(r)
    }
    try call("save", "rename", tmp, file: path) { Int(rename(tmp, path)) }
    renamed = true

    // Make the rename itself durable. EINVAL: the file system cannot fsync directories.
    do {
      let dfd = Int32(try call("save", "open-dir", dir, file: path) {
        Int(open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC))
      })
      defer { _ = close(dfd) }
      try call("save", "fsync-dir", dir, file: path) { Int(fsync(dfd)) }
    } catch let e as CheckpointError {
      if case .io(_, let syscall, let on, let code) = e.problem, code != EINVAL {
        throw CheckpointError(file: path, problem: .notDurable(syscall: syscall, path: on, errno: code))
      }
    }
  }

  /// write(2) until every byte is written (short writes continue, EINTR retries).
  static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String, file: String) throws {
    try bytes.withUnsafeBytes { raw in
      guard let base = raw.baseAddress else { return }
      var done = 0
      while done < raw.count {
        let chunk = Swift.min(raw.count - done, 1 << 30)
        let n = try call("save", "write", path, file: file) { (limit: Int?) in
          write(fd, base + done, Swift.min(chunk, limit ?? chunk))
        }
        // A regular file never accepts 0 of a non-zero count; do not spin if one does.
        guard n > 0 else {
          throw CheckpointError(file: file, problem: .io(operation: "save", syscall: "write",
                                                         path: path, errno: EIO))
        }
        done += n
      }
    }
  }

  /// The whole file (read until end of file; short reads continue, EINTR retries).
  static func readAll(_ path: String) throws -> [UInt8] {
    let fd = Int32(try call("load", "open", path, file: path) { Int(open(path, O_RDONLY | O_CLOEXEC)) })
    defer { _ = close(fd) }
    var st = stat()
    try call("load", "fstat", path, file: path) { Int(fstat(fd, &st)) }
    var bytes = [UInt8](repeating: 0, count: Swift.max(0, Int(st.st_size)) + 1)
    var filled = 0
    while true {
      if filled == bytes.count {   // the file grew since fstat
        bytes.append(contentsOf: repeatElement(0, count: Swift.max(bytes.count, 1 << 16)))
      }
      let n = try bytes.withUnsafeMutableBytes { raw in
        try call("load", "read", path, file: path) {
          read(fd, raw.baseAddress! + filled, raw.count - filled)
        }
      }
      if n == 0 { break }
      filled += n
    }
    bytes.removeLast(bytes.count - filled)
    return bytes
  }
}
