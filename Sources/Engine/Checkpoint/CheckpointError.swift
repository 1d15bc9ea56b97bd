import Foundation

/// Why a checkpoint could not be read, written or accepted. `file` names the checkpoint (a path,
/// or the `source` given to `Checkpoint.decode`); `problem` says what is wrong and is
/// machine-matchable; `description` is one line for a human.
public struct CheckpointError: Error, CustomStringConvertible, Equatable, Sendable {
  public enum Problem: Equatable, Sendable {
    /// The first bytes are not the magic "BSCKPT\r\n" (shows up to 8 bytes found).
    case notACheckpoint(firstBytes: [UInt8])
    /// Shorter than its length field says, or (expectedBytes nil) too short to hold even the
    /// fixed 28-byte preamble and the 8-byte checksum.
    case truncated(fileBytes: Int, expectedBytes: UInt64?)
    /// Longer than its length field says.
    case trailingBytes(fileBytes: Int, expectedBytes: UInt64)
    case unsupportedVersion(found: UInt32, supported: UInt32)
    case unsupportedFlags(found: UInt32)
    case checksumMismatch(stored: UInt64, computed: UInt64)
    /// The length fields or the JSON header are malformed or inconsistent.
    case badHeader(String)
    /// A tensor's table entry or data is inconsistent (range, overlap, shape, alignment, name).
    case badTensor(name: String, String)
    /// An in-memory checkpoint that cannot be saved (e.g. a shape that does not match its values).
    case invalid(String)
    /// A system call failed; nothing was changed at the target path.
    case io(operation: String, syscall: String, path: String, errno: Int32)
    /// The new file was renamed into place but the directory could not be fsynced, so the
    /// rename may not survive a crash.
    case notDurable(syscall: String, path: String, errno: Int32)
  }

  public var file: String
  public var problem: Problem

  public init(file: String, problem: Problem) {
    self.file = file
    self.problem = problem
  }

  public var description: String { "checkpoint \(file): \(problem.text)" }
}

extension CheckpointError.Problem {
  var text: String {
    switch self {
    case .notACheckpoint(let first):
      let hex = first.map { String(format: "%02x", $0) }.joined(separator: " ")
      return "not a Blockscope checkpoint: bad magic (expected \"BSCKPT\\r\\n\" = "
        + "42 53 43 4b 50 54 0d 0a, found \(first.isEmpty ? "nothing" : hex))"
        + (first.starts(with: Array("BSCKPT".utf8)) ? "; line endings were probably converted by a text-mode transfer" : "")
    case .truncated(let n, let expected?):
      return "truncated: file has \(n) bytes, header says \(expected)"
    case .truncated(let n, nil):
      return "truncated: file has \(n) bytes, fewer than the \(CheckpointFormat.minimumFileLength) of the smallest checkpoint"
    case .trailingBytes(let n, let expected):
      return "length mismatch: file has \(n) bytes, header says \(expected) (extra data after the checksum)"
    case .unsupportedVersion(let found, let supported):
      return "unsupported format version \(found); this build reads version \(supported)"
        + (found > supported && found < 1000 ? " (written by a newer Blockscope?)" : " (corrupt file?)")
    case .unsupportedFlags(let flags):
      return "unsupported flags 0x\(String(flags, radix: 16)) (version \(CheckpointFormat.version) defines none)"
    case .checksumMismatch(let stored, let computed):
      return "checksum mismatch: stored CRC-64 0x\(hex64(stored)), computed 0x\(hex64(computed)); the file is corrupt"
    case .badHeader(let what):
      return "bad header: \(what)"
    case .badTensor(let name, let what):
      return "bad tensor \"\(name)\": \(what)"
    case .invalid(let what):
      return "invalid checkpoint: \(what)"
    case .io(let operation, let syscall, let path, let code):
      let tail = operation == "save" ? "; the existing file (if any) was not modified" : ""
      return "\(operation) failed: \(syscall)(\(path)): \(errnoText(code))\(tail)"
    case .notDurable(let syscall, let path, let code):
      return "saved, but \(syscall)(\(path)) failed: \(errnoText(code)); the new file may not survive a crash"
    }
  }
}

private func hex64(_ v: UInt64) -> String {
  let s = String(v, radix: 16)
  return String(repeating: "0", count: 16 - s.count) + s
}

/// "No space left on device (ENOSPC)".
func errnoText(_ code: Int32) -> String {
  let names: [Int32: String] = [
    EPERM: "EPERM", ENOENT: "ENOENT", EINTR: "EINTR", EIO: "EIO", EBADF: "EBADF",
    EACCES: "EACCES", EEXIST: "EEXIST", EXDEV: "EXDEV", ENOTDIR: "ENOTDIR", EISDIR: "EISDIR",
    EINVAL: "EINVAL", EMFILE: "EMFILE", ENFILE: "ENFILE", EFBIG: "EFBIG", ENOSPC: "ENOSPC",
    EROFS: "EROFS", ENAMETOOLONG: "ENAMETOOLONG", EDQUOT: "EDQUOT", ENOMEM: "ENOMEM",
    EBUSY: "EBUSY", ELOOP: "ELOOP", ETXTBSY: "ETXTBSY",
  ]
  let message = String(cString: strerror(code))
  return "\(message) (\(names[code] ?? "errno \(code)"))"
}
