import Engine
import Foundation
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// RFC 3339 UTC with seconds: `2026-12-02T01:20:05Z` (thread-safe, no formatter object).
func rfc3339(_ date: Date = Date()) -> String {
  var t = time_t(date.timeIntervalSince1970.rounded(.down))
  var parts = tm()
  gmtime_r(&t, &parts)
  return String(format: "%04d-%02d-%02dT%02d:%02d:%02dZ", Int(parts.tm_year) + 1900,
                Int(parts.tm_mon) + 1, Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min),
                Int(parts.tm_sec))
}

/// A model or batch fingerprint as 16 hex digits.
func hex16(_ value: UInt64) -> String {
  let digits = String(value, radix: 16)
  return String(repeating: "0", count: max(0, 16 - digits.count)) + digits
}

/// VmRSS and VmHWM of /proc/self/status, in bytes (0 when unreadable).
func residentSetBytes() -> (current: Int, peak: Int) {
  guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else {
    return (0, 0)
  }
  var current = 0, peak = 0
  for line in text.split(separator: "\n") {
    let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
    guard fields.count >= 2, let kib = Int(fields[1]) else { continue }
    if fields[0] == "VmRSS:" { current = kib * 1024 }
    if fields[0] == "VmHWM:" { peak = kib * 1024 }
  }
  return (current, peak)
}

/// What identifies one version of a file: a replaced file (rename over it) has another inode
/// or modification time, so cached facts about the old one are not reused.
struct FileStamp: Hashable, Sendable {
  var device: UInt64
  var inode: UInt64
  var size: Int
  var modifiedSeconds: Int
  var modifiedNanoseconds: Int

  var modified: Date {
    Date(timeIntervalSince1970: Double(modifiedSeconds) + Double(modifiedNanoseconds) * 1e-9)
  }

  /// nil when the path does not exist; other failures throw IO_ERROR naming the call.
  static func of(_ path: String) throws(WireError) -> FileStamp? {
    var st = stat()
    guard stat(path, &st) == 0 else {
      let code = errno
      if code == ENOENT || code == ENOTDIR { return nil }
      throw fileError("stat", path, code)
    }
    return FileStamp(device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int(st.st_size),
                     modifiedSeconds: Int(st.st_mtim.tv_sec),
                     modifiedNanoseconds: Int(st.st_mtim.tv_nsec))
  }
}

/// A mutex-protected value.
final class Locked<Value>: @unchecked Sendable {
  private let lock = NSLock()
  private var value: Value
  init(_ value: Value) { self.value = value }
  func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
    lock.lock()
    defer { lock.unlock() }
    return try body(&value)
  }
  var current: Value { withLock { $0 } }
}

/// PROGRESS events of one request, at most one per `interval` seconds; a phase's last event
/// (done == total) and forced ones always go out.
final class ProgressSender: @unchecked Sendable {
  private let reply: ReplyChannel
  private let interval: Double
  private var last: Double = -.infinity
  private let lock = NSLock()

  init(_ reply: ReplyChannel, interval: Double) {
    self.reply = reply
    self.interval = interval
  }

  func send(_ event: ProgressEvent, force: Bool = false) {
    let now = monotonicSeconds()
    lock.lock()
    let due = force || event.done >= event.total || now - last >= interval
    if due { last = now }
    lock.unlock()
    if due { reply.progress(event) }
  }

  func send(phase: String, done: Int, total: Int, message: String? = nil) {
    send(ProgressEvent(phase: phase, done: done, total: total, message: message))
  }
}

func monotonicSeconds() -> Double {
  var ts = timespec()
  clock_gettime(CLOCK_MONOTONIC, &ts)
  return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// A doc must encode (JSON has no NaN): checked before it is handed to the channel, so that a
/// non-finite number is an INTERNAL error naming the message instead of a lost answer.
func checkEncodable<T: Encodable>(_ doc: T, _ type: MessageType) throws(WireError) {
  do {
    _ = try Payload.encode(doc)
  } catch {
    throw WireError(.internal, "the \(type.name) doc cannot be encoded: \(error)")
  }
}

/// Representation kinds as the protocol writes them (snake_case).
func kindName(_ raw: String) -> String {
  var out = ""
  for ch in raw {
    if ch.isUppercase {
      out += "_" + ch.lowercased()
    } else {
      out.append(ch)
    }
  }
  return out
}

/// Writes a small store file (a job record, a study record, a study result) like a checkpoint:
/// temporary file, fsync, rename, directory fsync. NO_SPACE / IO_ERROR name the call and path;
/// a failed directory fsync after the rename is only logged (the new file is in place).
func writeFileAtomically(_ bytes: [UInt8], to path: String, what: String) throws(WireError) {
  do {
    try CheckpointFiles.writeAtomically(bytes, to: path)
  } catch let e as CheckpointError {
    switch e.problem {
    case .io(_, let syscall, let on, let code):
      throw fileError(syscall, on, code, "\(what) \(path) was not replaced")
    case .notDurable(let syscall, let on, let code):
      FileHandle.standardError.write(Data("blockscoped: \(path): \(syscall)(\(on)): \(errnoDescription(code))\n".utf8))
    default:
      throw WireError(.internal, e.description)
    }
  } catch {
    throw WireError(.internal, "\(error)")
  }
}
