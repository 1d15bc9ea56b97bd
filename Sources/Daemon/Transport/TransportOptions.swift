import Foundation
import Glibc

/// Decides whether a connecting peer is served, from its SO_PEERCRED credentials (read before
/// any byte of the connection). A refused peer gets PERMISSION_DENIED and is closed.
public typealias PeerCheck = @Sendable (_ pid: pid_t, _ uid: uid_t, _ gid: gid_t) -> Bool

/// The daemon's version string (HELLO_OK's `server_version`).
public enum BlockscopedVersion {
  public static let string = "0.1.0"
}

/// Where the daemon's log lines go (stderr by default; the log file when detached).
public struct DaemonLog: Sendable {
  private let sink: @Sendable (String) -> Void

  public init(_ sink: @escaping @Sendable (String) -> Void) { self.sink = sink }

  public func callAsFunction(_ message: String) { sink(message) }

  /// `2026-12-02T01:23:45Z blockscoped[PID]: message` on stderr, one write per line.
  public static let standardError = DaemonLog { message in
    var now = time(nil)
    var parts = tm()
    gmtime_r(&now, &parts)
    var stamp = [CChar](repeating: 0, count: 32)
    strftime(&stamp, stamp.count, "%Y-%m-%dT%H:%M:%SZ", &parts)
    let date = stamp.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    let line = "\(date) blockscoped[\(getpid())]: \(message)\n"
    let bytes = Array(line.utf8)
    bytes.withUnsafeBytes { raw in
      var offset = 0
      while offset < raw.count {
        let written = write(2, raw.baseAddress! + offset, raw.count - offset)
        if written < 0 && errno == EINTR { continue }
        if written <= 0 { return }
        offset += written
      }
    }
  }

  /// Drops everything (tests).
  public static let silent = DaemonLog { _ in }
}

/// How the transport listens and serves.
public struct TransportOptions: Sendable {
  /// The socket's path.
  public var socketPath: String
  /// A socket already listening, passed by a service manager (`SocketActivation`): served
  /// instead of binding `socketPath` (then only its name in logs and STATUS), and its file is
  /// left in place at exit, for the manager that still listens on it.
  public var activatedListener: Int32? = nil
  /// Whether `socketPath` is the default location, whose directory gets the strict checks of
  /// SPEC.md section 1 (owned by this user, mode 0700); an explicit path gets lighter ones.
  public var strictDirectory: Bool
  /// Worker threads that run the service's handlers.
  public var workers: Int
  /// Connections served at once; more are sent SERVER_BUSY and closed.
  public var maxConnections: Int
  /// Unsent output above which a connection is not read from and its PROGRESS events are
  /// coalesced.
  public var highWaterBytes: Int
  /// Unsent output below which a paused connection is read from again.
  public var lowWaterBytes: Int
  /// Stop gracefully on SIGTERM and SIGINT (the daemon; tests in-process leave them alone).
  public var handleSignals: Bool
  /// HELLO_OK's `server_version`.
  public var serverVersion: String
  /// Which peers are served (default: the daemon's own uid).
  public var peerCheck: PeerCheck
  /// Seconds a closing connection may take to take its last frames before it is cut.
  public var closeTimeout: Double
  /// Seconds a new connection may take to send its HELLO (SPEC section 5); then TIMEOUT.
  public var helloTimeout: Double
  /// Seconds from the first byte of a frame to its last (SPEC section 5); then TIMEOUT. A peer
  /// trickling a frame byte by byte cannot hold a connection slot for longer.
  public var frameTimeout: Double
  /// Seconds after the service's `shutdown()` returns that in-flight requests may still be
  /// answered before they are refused with SHUTTING_DOWN.
  public var shutdownGrace: Double
  /// Seconds after that for the last frames to be written before every connection is cut.
  public var shutdownFlushTimeout: Double
  public var log: DaemonLog

  public init(socketPath: String, strictDirectory: Bool = false, workers: Int = 4,
              maxConnections: Int = 256, highWaterBytes: Int = 64 << 20, lowWaterBytes: Int = 16 << 20,
              handleSignals: Bool = false, serverVersion: String = BlockscopedVersion.string,
              peerCheck: @escaping PeerCheck = TransportOptions.sameUser,
              closeTimeout: Double = 10, shutdownGrace: Double = 2, shutdownFlushTimeout: Double = 5,
              helloTimeout: Double = 10, frameTimeout: Double = 30,
              log: DaemonLog = .standardError) {
    self.socketPath = socketPath
    self.strictDirectory = strictDirectory
    self.workers = workers
    self.maxConnections = maxConnections
    self.highWaterBytes = highWaterBytes
    self.lowWaterBytes = lowWaterBytes
    self.handleSignals = handleSignals
    self.serverVersion = serverVersion
    self.peerCheck = peerCheck
    self.closeTimeout = closeTimeout
    self.helloTimeout = helloTimeout
    self.frameTimeout = frameTimeout
    self.shutdownGrace = shutdownGrace
    self.shutdownFlushTimeout = shutdownFlushTimeout
    self.log = log
  }

  /// The peer runs as the daemon's (effective) uid: SO_PEERCRED reports effective ids.
  public static let sameUser: PeerCheck = { _, uid, _ in uid == geteuid() }
}
