import Foundation
import Glibc

// SPEC.md section 1: where the socket lives and how it is made safe.
//
//   - Default `$XDG_RUNTIME_DIR/blockscope/blockscoped.sock` (an empty XDG_RUNTIME_DIR counts as
//     unset), else `/tmp/blockscope-UID/blockscoped.sock`; `--socket PATH` overrides.
//   - The directory is created 0700. The default directory must be ours and closed to group and
//     others (it may sit in a shared /tmp, where another user could have made it first). For a
//     path given with --socket the user chose the place: its directory must be ours or root's and
//     not writable by group or others unless sticky (like /tmp); the socket itself is 0600.
//   - A file at the path: a socket nobody answers on is stale and removed; one that answers means
//     another daemon (refuse to start); anything else is left alone (refuse to start).

public enum SocketLocation {
  public static let directoryName = "blockscope"
  public static let socketName = "blockscoped.sock"

  /// The default socket path for this environment and user.
  public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment,
                                 uid: uid_t = getuid()) -> String {
    if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty {
      return (runtime as NSString).appendingPathComponent("\(directoryName)/\(socketName)")
    }
    return "/tmp/\(directoryName)-\(uid)/\(socketName)"
  }

  /// The directory part of a socket path ("." for a bare name).
  static func directory(of path: String) -> String {
    let directory = (path as NSString).deletingLastPathComponent
    return directory.isEmpty ? "." : directory
  }

  /// Creates the socket's directory (0700) when missing and checks that it is safe.
  /// `strict`: the default location's rules; otherwise those of an explicit `--socket`.
  public static func prepareDirectory(_ directory: String, strict: Bool) throws(TransportError) {
    let me = geteuid()
    var info = try Sys.status(directory, follow: !strict)
    if info == nil {
      let (result, code) = Sys.attempt { mkdir(directory, 0o700) }
      if result == 0 {
        // mkdir's mode passes through the umask; make it exactly 0700.
        try Sys.call("chmod", directory) { chmod(directory, 0o700) }
      } else if code != EEXIST {
        throw .syscall("mkdir", directory, code)
      }
      info = try Sys.status(directory, follow: !strict)
    }
    guard let info else { throw .syscall("lstat", directory, ENOENT) }
    let mode = info.st_mode
    guard mode & Sys.fileTypeMask == Sys.directoryType else {
      throw .unsafeDirectory(directory, strict && mode & Sys.fileTypeMask == 0o120000
                             ? "it is a symbolic link" : "it is not a directory")
    }
    let permissions = mode & 0o7777
    if strict {
      guard info.st_uid == me else {
        throw .unsafeDirectory(directory, "it is owned by uid \(info.st_uid), not by this user (uid \(me))")
      }
      guard permissions & 0o077 == 0 else {
        throw .unsafeDirectory(directory, "its mode \(octal(permissions)) lets group or others in (chmod 700 it)")
      }
    } else {
      guard info.st_uid == me || info.st_uid == 0 else {
        throw .unsafeDirectory(directory, "it is owned by uid \(info.st_uid), neither this user (uid \(me)) nor root")
      }
      guard permissions & 0o022 == 0 || permissions & 0o1000 != 0 else {
        throw .unsafeDirectory(directory, "its mode \(octal(permissions)) lets group or others replace the socket")
      }
    }
  }

  /// Removes a stale socket at `path`; throws when a daemon answers there or the file is not a
  /// socket.
  public static func clearStale(_ path: String) throws(TransportError) {
    guard let info = try Sys.status(path) else { return }
    guard info.st_mode & Sys.fileTypeMask == Sys.socketType else {
      throw .badSocketPath(path, "a file that is not a socket is in the way")
    }
    let fd = try Sys.unixSocket(nonBlocking: true)
    defer { Sys.close(fd) }
    let (result, code) = try Sys.withAddress(path) { address, length in
      Sys.attempt { connect(fd, address, length) }
    }
    switch (result, code) {
    case (0, _), (_, EAGAIN), (_, EINPROGRESS):
      // Accepted, or the listener's backlog is full: somebody is listening.
      throw .alreadyListening(path)
    case (_, ECONNREFUSED):
      let (unlinked, unlinkCode) = Sys.attempt { unlink(path) }
      if unlinked != 0 && unlinkCode != ENOENT { throw .syscall("unlink", path, unlinkCode) }
    case (_, ENOENT):
      return
    default:
      throw .syscall("connect", path, code)
    }
  }

  /// The listening socket: bound, 0600, listening; non-blocking and close-on-exec.
  /// Returns the descriptor and the socket file's identity (to unlink only our own file later).
  static func listen(at path: String, backlog: Int32) throws(TransportError) -> (fd: Int32, device: UInt64, inode: UInt64) {
    let fd = try Sys.unixSocket(nonBlocking: true)
    var bound = false
    do throws(TransportError) {
      let (result, code) = try Sys.withAddress(path) { address, length in
        Sys.attempt { bind(fd, address, length) }
      }
      if result != 0 { throw .syscall("bind", path, code) }
      bound = true
      try Sys.call("chmod", path) { chmod(path, 0o600) }
      try Sys.call("listen", path) { Glibc.listen(fd, backlog) }
      guard let info = try Sys.status(path) else { throw .syscall("lstat", path, ENOENT) }
      return (fd, UInt64(info.st_dev), UInt64(info.st_ino))
    } catch {
      Sys.close(fd)
      if bound { _ = unlink(path) }
      throw error
    }
  }

  /// Unlinks the socket file if it is still the one we bound (a newer daemon may own the path).
  static func removeSocket(_ path: String, device: UInt64, inode: UInt64) {
    guard let info = try? Sys.status(path), UInt64(info.st_dev) == device, UInt64(info.st_ino) == inode
    else { return }
    _ = unlink(path)
  }

  private static func octal(_ mode: mode_t) -> String {
    let digits = String(mode, radix: 8)
    return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
  }
}
