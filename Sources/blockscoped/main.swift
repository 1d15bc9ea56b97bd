import ArgumentParser
import Daemon
import Engine
import Foundation
import Glibc

/// blockscoped: keeps trained models and Gram caches resident and answers the protocol of
/// Protocol/SPEC.md on a Unix socket.
struct BlockscopedCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "blockscoped",
    abstract: "The Blockscope daemon: trains and analyses models for `blockscope` clients over a Unix socket.",
    discussion: """
      Runs in the foreground (as systemd expects) and prints one line once it is listening. \
      SIGTERM or SIGINT (or a SHUTDOWN request) stops it: training jobs checkpoint, clients are \
      answered, the socket is removed, and it exits 0. --detach runs it in the background \
      instead; the command returns once the socket accepts connections.

      Socket activation: started by systemd (tools/systemd/blockscoped.socket) or \
      systemd-socket-activate with LISTEN_PID set to its pid and LISTEN_FDS=1, it serves the \
      listening Unix socket passed as fd 3 instead of binding --socket, and leaves that socket's \
      file in place when it stops (the service manager still listens on it). --detach cannot be \
      combined with it.

      Datasets: a dataset's directory comes from, first found: --data NAME=DIR; the environment \
      variable BLOCKSCOPE_DATA (NAME=DIR entries separated by ':', e.g. \
      cifar10=/data/c10:cifar100=/data/c100); the config file $XDG_CONFIG_HOME/blockscope/config.json \
      (default ~/.config/blockscope/config.json), e.g. {"datasets": {"cifar10": "/data/cifar"}}, \
      relative paths relative to the file; else the default directory \
      $XDG_DATA_HOME/blockscope/datasets/NAME (default ~/.local/share/blockscope/datasets/NAME), \
      where `blockscope data fetch NAME` unpacks, if it exists (Fashion-MNIST then falls back to \
      /usr/share/datasets/fashion-mnist). NAME is cifar10, cifar100 or fashion-mnist. The \
      variable and the file are read at start-up: a malformed one stops the daemon from \
      starting. Files that appear in a directory later are found on next use.
      """)

  @Option(help: ArgumentHelp("The socket to listen on.",
                             discussion: "Default: $XDG_RUNTIME_DIR/blockscope/blockscoped.sock, or /tmp/blockscope-UID/blockscoped.sock without XDG_RUNTIME_DIR.",
                             valueName: "path"))
  var socket: String?

  @Option(help: ArgumentHelp("The store directory (models, jobs, logs).",
                             discussion: "Default: $XDG_DATA_HOME/blockscope, or ~/.local/share/blockscope.",
                             valueName: "dir"))
  var store: String?

  @Option(name: .customLong("cache-mb"), help: ArgumentHelp("The Gram cache's budget in MiB.", valueName: "n"))
  var cacheMB: Int = 1024

  @Option(help: ArgumentHelp("Worker threads that answer requests.", valueName: "n"))
  var workers: Int = 4

  @Option(name: .customLong("parallel-jobs"),
          help: ArgumentHelp("Training jobs run at the same time (default 1: one after another).",
                             discussion: "Above 1, a job that names no threads gets the online CPUs divided by this.",
                             valueName: "n"))
  var parallelJobs: Int = 1

  @Option(name: .customLong("training-threads"),
          help: ArgumentHelp("Kernel threads of a training job whose TRAIN names none (default: every online CPU, or BLOCKSCOPE_THREADS).",
                             valueName: "n"))
  var trainingThreads: Int?

  @Option(name: .customLong("analysis-threads"),
          help: ArgumentHelp("Kernel threads of each analysis request (default: every online CPU, or BLOCKSCOPE_THREADS).",
                             discussion: "Every job and request computes on threads of its own: one never changes another's thread count or numbers. A study runs as many analyses at once as fit at this thread count in the CPUs its training jobs leave free.",
                             valueName: "n"))
  var analysisThreads: Int?

  @Option(name: .customLong("data"),
          help: ArgumentHelp("Where a dataset's files are (repeatable), e.g. --data cifar10=/data/cifar-10-batches-bin.",
                             discussion: "Wins over BLOCKSCOPE_DATA and the config file (see the overview).",
                             valueName: "name=dir"))
  var data: [String] = []

  @Option(help: ArgumentHelp("The blockscope-engine a study's Slurm array tasks run (default: the one beside this blockscoped).",
                             discussion: "Every compute node must see it at this path.", valueName: "path"))
  var engine: String?

  @Flag(help: "Run in the background; return once the socket accepts connections.")
  var detach = false

  @Option(help: ArgumentHelp("Append log lines to this file (default with --detach: STORE/blockscoped.log; otherwise stderr).",
                             valueName: "file"))
  var log: String?

  func validate() throws {
    if let socket, socket.isEmpty { throw ValidationError("--socket needs a path") }
    if let socket, socket.utf8.count > 107 {
      throw ValidationError("--socket \(socket) is \(socket.utf8.count) bytes long; a Unix socket path holds at most 107")
    }
    if let store, store.isEmpty { throw ValidationError("--store needs a directory") }
    if let log, log.isEmpty { throw ValidationError("--log needs a file") }
    guard cacheMB >= 1 && cacheMB <= 1 << 30 else {
      throw ValidationError("--cache-mb must be from 1 to \(1 << 30), not \(cacheMB)")
    }
    guard workers >= 1 && workers <= 256 else {
      throw ValidationError("--workers must be from 1 to 256, not \(workers)")
    }
    guard parallelJobs >= 1 && parallelJobs <= 64 else {
      throw ValidationError("--parallel-jobs must be from 1 to 64, not \(parallelJobs)")
    }
    for (flag, value) in [("--training-threads", trainingThreads), ("--analysis-threads", analysisThreads)] {
      if let value, !(1...64).contains(value) {
        throw ValidationError("\(flag) must be from 1 to 64, not \(value)")
      }
    }
    do {
      _ = try DatasetLocations.parseEntries(data, what: "--data")
    } catch let error as DatasetLocationError {
      throw ValidationError(error.message)
    }
  }

  func run() throws {
    // First, so that the variables are gone before anything could start a child that
    // inherits them.
    let activated: SocketActivation.Listener?
    do {
      activated = try SocketActivation.takeListener()
    } catch {
      fail("\(error)")
    }
    if activated != nil && detach {
      // Forking would change the pid LISTEN_PID names and close the passed descriptor; the
      // service manager keeps the daemon in the background already.
      fail("--detach cannot be combined with socket activation (LISTEN_FDS): the service manager runs blockscoped in the background already; start it without --detach")
    }
    let environment = ProcessInfo.processInfo.environment
    // Before any fork, so that a bad BLOCKSCOPE_DATA or config file is reported by the command
    // that started the daemon (DaemonLauncher shows it too).
    let datasetLocations: DatasetLocations
    do {
      datasetLocations = try DatasetLocations.load(commandLine: data, environment: environment)
    } catch {
      fail("\(error)")
    }
    let requestedSocket = absolute(socket ?? SocketLocation.defaultPath(environment: environment))
    if let activated, let socket, activated.path != requestedSocket {
      DaemonLog.standardError("--socket \(socket) is not used: serving the socket-activated \(activated.path.isEmpty ? "(unnamed) socket" : activated.path)")
    }
    let configuration = DaemonConfiguration(
      socketPath: activated.map { $0.path.isEmpty ? "(unnamed socket, fd \($0.fd))" : $0.path } ?? requestedSocket,
      activatedListener: activated?.fd,
      strictDirectory: socket == nil,
      storePath: absolute(store ?? Self.defaultStore(environment)),
      cacheBytes: cacheMB << 20,
      workers: workers,
      parallelJobs: parallelJobs,
      trainingThreads: trainingThreads,
      analysisThreads: analysisThreads,
      datasetLocations: datasetLocations,
      engineExecutable: engine.map(absolute))
    do {
      try FileManager.default.createDirectory(atPath: configuration.storePath, withIntermediateDirectories: true,
                                              attributes: [.posixPermissions: 0o700])
    } catch {
      fail("cannot create the store directory \(configuration.storePath): \(error.localizedDescription)")
    }
    let logPath = log.map(absolute) ?? (detach ? (configuration.storePath as NSString).appendingPathComponent("blockscoped.log") : nil)
    var logFD: Int32 = -1
    if let logPath {
      logFD = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
      if logFD < 0 { fail("cannot open the log file \(logPath): \(String(cString: strerror(errno)))") }
    }
    if detach {
      runDetached(configuration, logFD: logFD, logPath: logPath ?? "")
    }
    if logFD >= 0 { dup2(logFD, 2) }
    let status = serve(configuration) { result in
      switch result {
      case .success:
        if let fd = configuration.activatedListener {
          print("blockscoped listening on \(configuration.socketPath) (store \(configuration.storePath); socket-activated: fd \(fd) from the service manager, left in place at exit)")
        } else {
          print("blockscoped listening on \(configuration.socketPath) (store \(configuration.storePath))")
        }
        fflush(nil)
      case .failure(let message):
        fail(message)
      }
    }
    throw ExitCode(status)
  }

  static func defaultStore(_ environment: [String: String]) -> String {
    if let data = environment["XDG_DATA_HOME"], !data.isEmpty {
      return (data as NSString).appendingPathComponent("blockscope")
    }
    let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
    return (home as NSString).appendingPathComponent(".local/share/blockscope")
  }

  /// Double fork and setsid; the parent exits 0 once the grandchild reports that the socket
  /// accepts connections, or 1 with the grandchild's error.
  private func runDetached(_ configuration: DaemonConfiguration, logFD: Int32, logPath: String) -> Never {
    var fds: [Int32] = [-1, -1]
    guard pipe(&fds) == 0 else { fail("pipe: \(String(cString: strerror(errno)))") }
    let (readEnd, writeEnd) = (fds[0], fds[1])
    fflush(nil)
    let child = fork()
    if child < 0 { fail("fork: \(String(cString: strerror(errno)))") }
    if child > 0 {
      close(writeEnd)
      var message: [UInt8] = []
      var chunk = [UInt8](repeating: 0, count: 4096)
      while true {
        let count = read(readEnd, &chunk, chunk.count)
        if count < 0 && errno == EINTR { continue }
        if count <= 0 { break }
        message.append(contentsOf: chunk[0..<count])
      }
      var status: Int32 = 0
      while waitpid(child, &status, 0) < 0 && errno == EINTR {}
      let text = String(decoding: message, as: UTF8.self)
      if text.hasPrefix("OK ") {
        let pid = text.dropFirst(3).trimmingCharacters(in: .whitespacesAndNewlines)
        print("blockscoped listening on \(configuration.socketPath) (store \(configuration.storePath), pid \(pid), log \(logPath))")
        Glibc.exit(0)
      }
      fail(text.isEmpty ? "the daemon exited before it was listening; see \(logPath)" : text)
    }
    // The first child: a new session without a controlling terminal, then the daemon in a
    // grandchild that can never acquire one.
    close(readEnd)
    _ = setsid()
    let grandchild = fork()
    if grandchild != 0 {
      if grandchild < 0 { report(writeEnd, "fork: \(String(cString: strerror(errno)))") }
      _exit(grandchild < 0 ? 1 : 0)
    }
    _ = chdir("/")
    // Descriptors inherited from whoever started us (a pipe or socket its parent waits on to
    // see us exit, say) must not stay open for the daemon's lifetime.
    closeInheritedDescriptors(keeping: [logFD, writeEnd])
    let null = open("/dev/null", O_RDWR)
    if null >= 0 { dup2(null, 0) }
    if logFD >= 0 {
      dup2(logFD, 1)
      dup2(logFD, 2)
    }
    let status = serve(configuration) { result in
      switch result {
      case .success:
        DaemonLog.standardError("listening on \(configuration.socketPath) (store \(configuration.storePath))")
        report(writeEnd, "OK \(getpid())\n")
      case .failure(let message):
        DaemonLog.standardError(message)
        report(writeEnd, message)
      }
      close(writeEnd)
    }
    Glibc.exit(status)
  }
}

/// What `serve` needs, resolved once before any fork.
struct DaemonConfiguration {
  var socketPath: String
  /// The listening socket a service manager passed (socket activation), served instead of
  /// binding `socketPath`.
  var activatedListener: Int32?
  var strictDirectory: Bool
  var storePath: String
  var cacheBytes: Int
  var workers: Int
  var parallelJobs: Int
  var trainingThreads: Int?
  var analysisThreads: Int?
  var datasetLocations: DatasetLocations
  var engineExecutable: String?
}

enum Startup {
  case success
  case failure(String)
}

/// Listens, opens the service, reports (`ready`), and serves until stopped. Returns the exit
/// status.
func serve(_ configuration: DaemonConfiguration, ready: (Startup) -> Void) -> Int32 {
  // Before any thread starts: a fixed mmap threshold keeps the Gram cache's churn from
  // fragmenting the heap (docs/RELIABILITY.md, "soak").
  // BLOCKSCOPE_MMAP_THRESHOLD=BYTES sets another (0: glibc's own sliding threshold), for
  // measuring what the policy costs.
  let threshold = ProcessInfo.processInfo.environment["BLOCKSCOPE_MMAP_THRESHOLD"].flatMap { Int($0) }
    ?? AllocatorPolicy.daemonMmapThreshold
  if threshold > 0 { AllocatorPolicy.fixMmapThreshold(threshold) }
  var transportOptions = TransportOptions(
    socketPath: configuration.socketPath, strictDirectory: configuration.strictDirectory,
    workers: configuration.workers, handleSignals: true)
  transportOptions.activatedListener = configuration.activatedListener
  let transport = DaemonTransport(options: transportOptions)
  do {
    try transport.listen()
  } catch {
    ready(.failure("\(error)"))
    return 1
  }
  let service: DaemonService
  do {
    var options = ServiceOptions(
      storeDirectory: configuration.storePath, cacheBytes: configuration.cacheBytes,
      datasetLocations: configuration.datasetLocations,
      trainingThreads: configuration.trainingThreads)
    options.analysisThreads = configuration.analysisThreads
    options.parallelJobs = configuration.parallelJobs
    options.engineExecutable = configuration.engineExecutable
    service = try DaemonService(options: options)
  } catch {
    transport.abandon()
    ready(.failure("cannot open the store \(configuration.storePath): \(error)"))
    return 1
  }
  ready(.success)
  do {
    try transport.run(service: service)
  } catch {
    DaemonLog.standardError("\(error)")
    return 1
  }
  DaemonLog.standardError("stopped")
  return 0
}

/// Closes every descriptor above stderr but `keeping`.
func closeInheritedDescriptors(keeping: Set<Int32>) {
  let open: [Int32]
  if let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
    open = names.compactMap { Int32($0) }
  } else {
    open = Array(3..<Int32(clamping: min(sysconf(Int32(_SC_OPEN_MAX)), 65536)))
  }
  for fd in open where fd > 2 && !keeping.contains(fd) { close(fd) }
}

/// Writes a message to the detach handshake pipe.
func report(_ fd: Int32, _ message: String) {
  let bytes = Array(message.utf8)
  var offset = 0
  while offset < bytes.count {
    let count = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
    if count < 0 && errno == EINTR { continue }
    if count <= 0 { return }
    offset += count
  }
}

func fail(_ message: String) -> Never {
  FileHandle.standardError.write(Data("blockscoped: \(message)\n".utf8))
  Glibc.exit(1)
}

func absolute(_ path: String) -> String {
  let expanded = (path as NSString).expandingTildeInPath
  if expanded.hasPrefix("/") { return (expanded as NSString).standardizingPath }
  let cwd = FileManager.default.currentDirectoryPath
  return ((cwd as NSString).appendingPathComponent(expanded) as NSString).standardizingPath
}

BLASCore.reexecIfUntuned()
BlockscopedCommand.main()
