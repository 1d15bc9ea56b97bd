import Foundation
import Glibc

// Socket activation, as sd_listen_fds(3) defines it: a service manager (systemd with
// tools/systemd/blockscoped.socket, or systemd-socket-activate) binds and listens on the socket
// itself and starts the daemon with it open as fd 3, announced by two environment variables:
// LISTEN_PID, the process they are meant for (a child that merely inherited them must ignore
// them), and LISTEN_FDS, how many descriptors are passed from fd 3 on. The protocol is nothing
// more, so no libsystemd. The daemon then serves that socket instead of binding one, and leaves
// its file in place at exit: the manager keeps listening on it and starts the daemon again on
// the next connection.

public enum SocketActivation {
  /// The first passed descriptor (SD_LISTEN_FDS_START).
  public static let firstDescriptor: Int32 = 3

  /// The variables of the protocol; LISTEN_FDNAMES (names of the descriptors) is not needed
  /// for a single socket but is removed with the others.
  static let variables = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"]

  /// A listening socket passed by a service manager.
  public struct Listener: Equatable, Sendable {
    public var fd: Int32
    /// The path it is bound to; "@name" for an abstract socket, "" for an unnamed one.
    public var path: String
  }

  /// The socket passed to this process, checked, or nil when none was (no variables, or
  /// variables meant for another process). Removes the variables from the environment either
  /// way, as sd_listen_fds(unset_environment: 1) does, so that nothing started later takes
  /// them for its own.
  public static func takeListener() throws(TransportError) -> Listener? {
    let environment = ProcessInfo.processInfo.environment
    for name in variables { unsetenv(name) }
    guard let fd = try passedDescriptor(environment: environment, pid: getpid()) else { return nil }
    return try checkedListener(fd)
  }

  /// The descriptor the variables pass to process `pid`, or nil when they pass none to it.
  static func passedDescriptor(environment: [String: String], pid: pid_t) throws(TransportError) -> Int32? {
    guard let pidText = environment["LISTEN_PID"] else { return nil }
    guard let target = pid_t(pidText), target > 0 else {
      throw .socketActivation("LISTEN_PID=\(pidText) is not a process id")
    }
    // Inherited from an activated parent: not ours (sd_listen_fds answers 0 too).
    guard target == pid else { return nil }
    guard let countText = environment["LISTEN_FDS"] else { return nil }
    guard let count = Int(countText), count >= 0 else {
      throw .socketActivation("LISTEN_FDS=\(countText) is not a number of descriptors")
    }
    if count == 0 { return nil }
    // Serving only the first of several would leave the others' clients waiting forever.
    guard count == 1 else {
      throw .socketActivation("LISTEN_FDS=\(count), but blockscoped serves exactly one socket (one ListenStream= in its .socket unit)")
    }
    return firstDescriptor
  }

  /// Checks that `fd` is a listening Unix stream socket and names the path it is bound to.
  static func checkedListener(_ fd: Int32) throws(TransportError) -> Listener {
    let what = "fd \(fd), passed by LISTEN_FDS,"
    let domain: Int32
    do {
      domain = try Sys.socketOption(fd, SO_DOMAIN, "SO_DOMAIN")
    } catch {
      switch error {
      case .syscall(_, _, ENOTSOCK):
        throw .socketActivation("\(what) is not a socket (\(Sys.fileKind(fd)))")
      case .syscall(_, _, EBADF):
        throw .socketActivation("\(what) is not open")
      default:
        throw error
      }
    }
    guard domain == AF_UNIX else {
      throw .socketActivation("\(what) is not a Unix socket (address family \(domain), not AF_UNIX); blockscoped listens on a path")
    }
    let type = try Sys.socketOption(fd, SO_TYPE, "SO_TYPE")
    guard type == Int32(SOCK_STREAM.rawValue) else {
      throw .socketActivation("\(what) is not a stream socket (type \(type), not SOCK_STREAM); use ListenStream=")
    }
    guard try Sys.socketOption(fd, SO_ACCEPTCONN, "SO_ACCEPTCONN") != 0 else {
      throw .socketActivation("\(what) is a Unix stream socket that is not listening (a connection, or never passed to listen(2))")
    }
    return Listener(fd: fd, path: try Sys.socketPath(fd))
  }
}
