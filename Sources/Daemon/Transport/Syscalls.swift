import CLibUV
import Foundation
import Glibc

// Every system call the transport makes goes through one of the wrappers below: each retries
// EINTR and turns a failure into a `TransportError` naming the call and what it was applied to.

/// Why the transport could not start or keep going.
public enum TransportError: Error, Equatable, Sendable, CustomStringConvertible {
  /// A system call failed: the call, what it was applied to (a path; may be empty), errno.
  case syscall(String, String, Int32)
  /// A libuv call failed: the call and libuv's (negative) error code.
  case libuv(String, Int32)
  /// The socket's directory is not safe: the directory and why.
  case unsafeDirectory(String, String)
  /// A daemon answers on the socket path already.
  case alreadyListening(String)
  /// The socket path cannot be used: the path and why.
  case badSocketPath(String, String)
  /// `run` was called before `listen`, or twice.
  case notListening
  /// The socket passed by a service manager (LISTEN_FDS) cannot be served: why.
  case socketActivation(String)

  public var description: String {
    switch self {
    case let .syscall(call, subject, code):
      let what = subject.isEmpty ? call : "\(call)(\(subject))"
      return "\(what): \(String(cString: strerror(code)))"
    case let .libuv(call, code):
      return "\(call): \(String(cString: uv_strerror(code)))"
    case let .unsafeDirectory(path, reason):
      return "refusing to use the socket directory \(path): \(reason)"
    case let .alreadyListening(path):
      return "another blockscoped is listening on \(path)"
    case let .badSocketPath(path, reason):
      return "cannot use the socket path \(path): \(reason)"
    case .notListening:
      return "the transport is not listening"
    case let .socketActivation(reason):
      return "socket activation: \(reason)"
    }
  }
}

enum Sys {
  /// Runs `body` until it does not fail with EINTR; a negative result is thrown with errno.
  @discardableResult
  static func call(_ name: String, _ subject: String = "", _ body: () -> Int32) throws(TransportError) -> Int32 {
    while true {
      let result = body()
      if result >= 0 { return result }
      let code = errno
      if code == EINTR { continue }
      throw .syscall(name, subject, code)
    }
  }

  /// Like `call`, but returns errno instead of throwing (for callers that branch on it).
  static func attempt(_ body: () -> Int32) -> (result: Int32, errno: Int32) {
    while true {
      let result = body()
      if result >= 0 { return (result, 0) }
      let code = errno
      if code != EINTR { return (result, code) }
    }
  }

  /// close(2) is never retried: on Linux the descriptor is released even when it reports EINTR.
  static func close(_ fd: Int32) {
    if fd >= 0 { _ = Glibc.close(fd) }
  }

  static let fileTypeMask: mode_t = 0o170000
  static let socketType: mode_t = 0o140000
  static let directoryType: mode_t = 0o040000

  /// lstat(2) (or stat(2) when `follow`); nil when the path does not exist.
  static func status(_ path: String, follow: Bool = false) throws(TransportError) -> stat? {
    var info = stat()
    let (result, code) = attempt { follow ? stat(path, &info) : lstat(path, &info) }
    if result == 0 { return info }
    if code == ENOENT { return nil }
    throw .syscall(follow ? "stat" : "lstat", path, code)
  }

  /// A new Unix stream socket, close-on-exec, optionally non-blocking.
  static func unixSocket(nonBlocking: Bool) throws(TransportError) -> Int32 {
    var type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
    if nonBlocking { type |= Int32(SOCK_NONBLOCK.rawValue) }
    return try call("socket") { socket(AF_UNIX, type, 0) }
  }

  /// The largest path a `sockaddr_un` holds (with its terminating NUL).
  static let maxSocketPathBytes = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

  /// Calls `body` with a `sockaddr_un` for `path`.
  static func withAddress<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) throws(TransportError) -> R {
    let bytes = Array(path.utf8)
    guard !bytes.isEmpty else { throw .badSocketPath(path, "the path is empty") }
    guard bytes.count <= maxSocketPathBytes else {
      throw .badSocketPath(path, "it is \(bytes.count) bytes long; a Unix socket path holds at most \(maxSocketPathBytes)")
    }
    guard !bytes.contains(0) else { throw .badSocketPath(path, "the path contains a NUL byte") }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
      raw.copyBytes(from: bytes)
      raw[bytes.count] = 0
    }
    let length = socklen_t(MemoryLayout.offset(of: \sockaddr_un.sun_path)! + bytes.count + 1)
    return withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
    }
  }

  /// accept(2): a connection from the (non-blocking) listener, made non-blocking and
  /// close-on-exec (glibc declares accept4 only under _GNU_SOURCE, which Swift's Glibc module
  /// lacks; the daemon never execs, so the window before FD_CLOEXEC does not matter).
  /// The descriptor, or -1 and errno (EAGAIN when none is waiting).
  static func accept(_ listener: Int32) -> (result: Int32, errno: Int32) {
    let (fd, code) = attempt { Glibc.accept(listener, nil, nil) }
    if fd >= 0 {
      _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
      let flags = fcntl(fd, F_GETFL)
      if flags >= 0 { _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
    }
    return (fd, code)
  }

  /// `struct ucred` (glibc declares it only under _GNU_SOURCE): pid, uid, gid.
  struct PeerCredentials {
    var pid: pid_t = 0
    var uid: uid_t = 0
    var gid: gid_t = 0
  }

  /// The peer's credentials (SO_PEERCRED) of a connected Unix socket.
  static func peerCredentials(_ fd: Int32) throws(TransportError) -> PeerCredentials {
    var credentials = PeerCredentials()
    var length = socklen_t(MemoryLayout<PeerCredentials>.size)
    try call("getsockopt", "SO_PEERCRED") { getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) }
    return credentials
  }

  /// An int-valued SOL_SOCKET option (getsockopt(2)); `name` names it in errors.
  static func socketOption(_ fd: Int32, _ option: Int32, _ name: String) throws(TransportError) -> Int32 {
    var value: Int32 = 0
    var length = socklen_t(MemoryLayout<Int32>.size)
    try call("getsockopt", name) { getsockopt(fd, SOL_SOCKET, option, &value, &length) }
    return value
  }

  /// Makes a descriptor we did not open ourselves (a socket-activated listener) non-blocking,
  /// as the accept loop needs, and close-on-exec.
  static func makeNonBlockingCloseOnExec(_ fd: Int32) throws(TransportError) {
    let flags = try call("fcntl", "F_GETFL") { fcntl(fd, F_GETFL) }
    try call("fcntl", "F_SETFL") { fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
    try call("fcntl", "F_SETFD") { fcntl(fd, F_SETFD, FD_CLOEXEC) }
  }

  /// The path a Unix socket is bound to (getsockname(2)): "@name" for an abstract socket, ""
  /// for an unnamed one.
  static func socketPath(_ fd: Int32) throws(TransportError) -> String {
    var address = sockaddr_un()
    var length = socklen_t(MemoryLayout<sockaddr_un>.size)
    let (result, code) = withUnsafeMutablePointer(to: &address) { pointer in
      pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in attempt { getsockname(fd, raw, &length) } }
    }
    if result != 0 { throw .syscall("getsockname", "", code) }
    let pathBytes = min(Int(length), MemoryLayout<sockaddr_un>.size) - MemoryLayout.offset(of: \sockaddr_un.sun_path)!
    guard pathBytes > 0 else { return "" }
    let bytes = withUnsafeBytes(of: &address.sun_path) { Array($0.prefix(pathBytes)) }
    if bytes.first == 0 { return "@" + String(decoding: bytes.dropFirst().prefix { $0 != 0 }, as: UTF8.self) }
    return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
  }

  /// What kind of file a descriptor is (fstat(2)), for error messages.
  static func fileKind(_ fd: Int32) -> String {
    var info = stat()
    guard attempt({ fstat(fd, &info) }).result == 0 else { return "fstat failed" }
    switch info.st_mode & fileTypeMask {
    case 0o100000: return "a regular file"
    case directoryType: return "a directory"
    case 0o010000: return "a pipe"
    case 0o020000: return "a character device"
    case 0o060000: return "a block device"
    case socketType: return "a socket"
    default: return "file type \(String(info.st_mode & fileTypeMask, radix: 8))"
    }
  }

  /// Writes as much of `bytes` as the socket takes now (non-blocking; no SIGPIPE).
  static func sendNow(_ fd: Int32, _ bytes: [UInt8]) {
    bytes.withUnsafeBytes { raw in
      var offset = 0
      while offset < raw.count {
        let (sent, _) = attemptSize { send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
        if sent <= 0 { return }
        offset += sent
      }
    }
  }

  static func attemptSize(_ body: () -> Int) -> (result: Int, errno: Int32) {
    while true {
      let result = body()
      if result >= 0 { return (result, 0) }
      let code = errno
      if code != EINTR { return (result, code) }
    }
  }
}
