import Foundation
import Glibc

/// Connects to the daemon, starting one when nothing answers at the socket:
/// `blockscoped --socket PATH [--store DIR] --detach`, the binary next to this executable or
/// else on `PATH`, then waits (bounded) until it answers HELLO.
struct DaemonLauncher {
  var socketPath: String
  var store: String?
  /// No "started blockscoped" note on stderr (--json).
  var quiet: Bool
  /// How long a started daemon may take to answer.
  var startTimeout: Double = 10

  static let daemonName = "blockscoped"

  /// The command a user would run; `DIR` when no store was given.
  var startCommandLine: String {
    "\(Self.daemonName) --socket \(shellQuoted(socketPath)) --store \(store.map(shellQuoted) ?? "DIR")"
  }

  func connect(autoStart: Bool) throws -> DaemonClient {
    do {
      return try DaemonClient(socketPath: socketPath)
    } catch ClientError.noDaemon(let path, let reason) {
      guard autoStart else { throw ClientError.noDaemon(path: path, reason: reason) }
    }
    return try start()
  }

  /// Starts the daemon and returns a connection to it; `.noDaemon` with the reason when it
  /// cannot be started or does not answer in time.
  func start() throws -> DaemonClient {
    guard let executable = Self.locateDaemon() else {
      throw ClientError.noDaemon(path: socketPath, reason: "\(Self.daemonName) was found neither next to \(Self.ownExecutable() ?? "this program") nor on PATH")
    }
    var arguments = [executable, "--socket", socketPath]
    if let store { arguments += ["--store", store] }
    arguments.append("--detach")

    // The daemon's early messages (a refused socket directory, a bad store) go to a temporary
    // file, shown if it fails to come up. A detached daemon may keep the file open: it is
    // unlinked right away and read through the descriptor kept here.
    var template = Array("/tmp/blockscope-start-XXXXXX".utf8CString)
    let logFD = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    if logFD >= 0 { template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) } }
    defer { if logFD >= 0 { Glibc.close(logFD) } }

    let pid: pid_t
    do {
      pid = try spawn(arguments, stderrFD: logFD)
    } catch let error as ClientError {
      throw ClientError.noDaemon(path: socketPath, reason: "starting \(executable) failed: \(error)")
    }
    if !quiet {
      printError("blockscope: no daemon at \(socketPath); started \(executable) (pid \(pid))")
    }

    let deadline = Date().addingTimeInterval(startTimeout)
    var exitStatus: Int32?
    var lastError: Error?
    while true {
      if exitStatus == nil {
        var status: Int32 = 0
        let reaped = waitpid(pid, &status, WNOHANG)
        if reaped == pid {
          exitStatus = status
          if !Self.exitedCleanly(status) {
            throw ClientError.noDaemon(path: socketPath, reason: "\(Self.daemonName) \(Self.describe(status))"
                                       + Self.log(logFD))
          }
        }
      }
      do {
        let client = try DaemonClient(socketPath: socketPath)
        if exitStatus == nil { Self.reap(pid, within: 2) }
        return client
      } catch ClientError.noDaemon {
        // Not listening yet.
      } catch {
        lastError = error
      }
      if Date() >= deadline {
        let why = lastError.map { ": \($0)" } ?? ""
        throw ClientError.noDaemon(
          path: socketPath,
          reason: "\(Self.daemonName) (pid \(pid)) did not answer within \(Int(startTimeout)) s\(why)" + Self.log(logFD))
      }
      usleep(50_000)
    }
  }

  /// Collects the exit of the `--detach` parent (it returns as soon as the daemon listens),
  /// waiting at most `seconds`, so that a long command leaves no zombie behind.
  static func reap(_ pid: pid_t, within seconds: Double) {
    let deadline = Date().addingTimeInterval(seconds)
    var status: Int32 = 0
    while waitpid(pid, &status, WNOHANG) == 0 && Date() < deadline { usleep(10_000) }
  }

  /// `posix_spawn` with stdin and stdout on /dev/null and stderr on `stderrFD`.
  private func spawn(_ arguments: [String], stderrFD: Int32) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    if stderrFD >= 0 {
      posix_spawn_file_actions_adddup2(&actions, stderrFD, 2)
    } else {
      posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    }
    // Nothing else of this process reaches the daemon: an inherited descriptor (such as the
    // pipe of whoever runs this command) would otherwise stay open as long as the daemon
    // runs. (posix_spawn_file_actions_addclosefrom_np would do it but is a GNU extension.)
    Self.markDescriptorsCloseOnExec()
    var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
    argv.append(nil)
    // The environment as ProcessInfo reads it (the C global `environ` is shared mutable
    // state to Swift 6).
    var envp: [UnsafeMutablePointer<CChar>?] = ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") }
    envp.append(nil)
    defer { for pointer in argv + envp { free(pointer) } }
    var pid: pid_t = 0
    let result = posix_spawn(&pid, arguments[0], &actions, nil, argv, envp)
    guard result == 0 else {
      throw ClientError.system(call: "posix_spawn", subject: arguments[0], errno: result)
    }
    return pid
  }

  /// Sets FD_CLOEXEC on every open descriptor above 2 (listed in /proc/self/fd).
  static func markDescriptorsCloseOnExec() {
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return }
    for name in names {
      guard let fd = Int32(name), fd > 2 else { continue }
      let flags = fcntl(fd, F_GETFD)
      if flags >= 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
    }
  }

  /// `blockscoped` next to this executable (a build directory or an install prefix), else
  /// the first on `PATH`.
  static func locateDaemon(environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
    if let own = ownExecutable() {
      let sibling = (own as NSString).deletingLastPathComponent + "/" + daemonName
      if access(sibling, X_OK) == 0 { return sibling }
    }
    for directory in (environment["PATH"] ?? "").split(separator: ":") where !directory.isEmpty {
      let candidate = "\(directory)/\(daemonName)"
      if access(candidate, X_OK) == 0 { return candidate }
    }
    return nil
  }

  /// This process's executable, symlinks resolved.
  static func ownExecutable() -> String? {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    if count > 0 {
      return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
    let argument = CommandLine.arguments.first ?? ""
    return argument.contains("/") ? argument : nil
  }

  static func exitedCleanly(_ status: Int32) -> Bool {
    (status & 0x7F) == 0 && ((status >> 8) & 0xFF) == 0
  }

  static func describe(_ status: Int32) -> String {
    if (status & 0x7F) == 0 { return "exited with status \((status >> 8) & 0xFF)" }
    return "was killed by signal \(status & 0x7F)"
  }

  /// What the started daemon wrote to stderr, as a suffix for a message.
  static func log(_ fd: Int32) -> String {
    guard fd >= 0, lseek(fd, 0, SEEK_SET) == 0 else { return "" }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while bytes.count < 16384 {
      let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
      if count < 0 && errno == EINTR { continue }
      if count <= 0 { break }
      bytes += chunk[0..<count]
    }
    let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    return text.isEmpty ? "" : "; it said:\n" + text
  }
}

/// The text quoted for a POSIX shell when it holds anything but safe characters.
func shellQuoted(_ text: String) -> String {
  let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%")
  if !text.isEmpty && text.allSatisfy({ safe.contains($0) }) { return text }
  return "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
}
