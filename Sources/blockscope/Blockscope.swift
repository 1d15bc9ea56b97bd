import ArgumentParser
import Foundation
import Wire

/// `blockscope`: the command line of the blockscoped daemon. Every subcommand is one request
/// (SPEC.md section 7) sent over the daemon's Unix socket; the CLI itself computes nothing
/// beyond reading and writing files (.npy, CSV, PNG, JSON).
///
/// Exit status: 0 success; 1 the daemon answered an error, or a file or connection failed;
/// 2 a watched training job ended without finishing (cancelled or interrupted: resumable);
/// 3 no daemon answers at the socket (and none could be started); 64 usage errors.
@main
struct Blockscope: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "blockscope",
    abstract: "Train ResNets and compare their representations through the blockscoped daemon.",
    discussion: """
      Each subcommand sends one request to blockscoped over its Unix socket. When no daemon \
      answers, one is started (blockscoped --socket PATH --store DIR --detach) unless \
      --no-start is given.

      Exit status: 0 success; 1 the daemon answered an error or a file or connection failed; \
      2 a watched job ended cancelled or interrupted (resume it); 3 no daemon at the socket; \
      64 usage error.
      """,
    subcommands: [
      StatusCommand.self, DatasetsCommand.self, DataCommand.self,
      TrainCommand.self, JobsCommand.self, WatchCommand.self, CancelCommand.self,
      ResumeCommand.self,
      ModelsCommand.self, DescribeCommand.self, DeleteCommand.self,
      HeatmapCommand.self, PCCommand.self, ProbeCommand.self, DeleteBlocksCommand.self,
      CompareCommand.self, CKACommand.self, ExportCommand.self, ForeignCommand.self,
      StudyCommand.self, ReportCommand.self,
      ShutdownCommand.self,
    ])
}

/// The exit codes of the CLI besides 0 and ArgumentParser's 64 (usage).
enum ExitStatus {
  /// The daemon answered an ERROR, or a file, connection or protocol operation failed.
  static let failure = ExitCode(1)
  /// A watched job ended `cancelled` or `interrupted` (it can be resumed).
  static let jobNotFinished = ExitCode(2)
  /// Nothing answers at the socket and no daemon could be started.
  static let noDaemon = ExitCode(3)
}

/// Options every subcommand takes.
struct GlobalOptions: ParsableArguments {
  @Option(name: .customLong("socket"), help: ArgumentHelp(
    "The daemon's socket (default: \(SocketPath.defaultPath())).", valueName: "path"))
  var socket: String?

  @Flag(help: "Machine output: the response as one JSON object on stdout (tensors summarised or written to files); no progress bars.")
  var json = false

  @Flag(name: .customLong("no-start"), help: "Do not start a daemon when none answers at the socket (exit 3 instead).")
  var noStart = false

  @Option(help: ArgumentHelp(
    "The model store of a daemon started by this command (default: the daemon's own).",
    valueName: "dir"))
  var store: String?

  var socketPath: String { socket ?? SocketPath.defaultPath() }

  func validate() throws {
    if let socket {
      if socket.isEmpty { throw ValidationError("--socket must not be empty") }
      if socket.utf8.count > SocketPath.maxLength {
        throw ValidationError("--socket path is \(socket.utf8.count) bytes; a Unix socket path holds at most \(SocketPath.maxLength)")
      }
    }
    if let store, store.isEmpty { throw ValidationError("--store must not be empty") }
  }

  /// A connection to the daemon, starting one first unless `--no-start` (or `autoStart`
  /// false). Prints how to start one and exits 3 when none answers.
  func connect(autoStart: Bool = true) throws -> DaemonClient {
    let launcher = DaemonLauncher(socketPath: socketPath, store: store, quiet: json)
    do {
      return try launcher.connect(autoStart: autoStart && !noStart)
    } catch let error as ClientError {
      switch error {
      case .noDaemon(_, let reason):
        var message = "no daemon at \(socketPath); start it with: \(launcher.startCommandLine)"
        if let reason, !reason.isEmpty { message += "\n  (\(reason))" }
        printError(message)
        throw ExitStatus.noDaemon
      default:
        printError("blockscope: \(error)")
        throw ExitStatus.failure
      }
    }
  }

  /// Runs `body` with a connection and turns the client's errors into messages and exit
  /// codes: an ERROR frame prints `NAME (code): message` and exits 1.
  func withDaemon<T>(autoStart: Bool = true, _ body: (DaemonClient) throws -> T) throws -> T {
    let client = try connect(autoStart: autoStart)
    defer { client.close() }
    do {
      return try body(client)
    } catch let error as DaemonError {
      printError("blockscope: \(error)")
      throw ExitStatus.failure
    } catch let error as ClientError {
      printError("blockscope: \(error)")
      throw ExitStatus.failure
    } catch let error as OutputError {
      printError("blockscope: \(error)")
      throw ExitStatus.failure
    }
  }
}

/// Socket path rules of SPEC.md section 1.
enum SocketPath {
  /// `sun_path` holds 108 bytes including the terminating NUL.
  static let maxLength = 107

  /// `$XDG_RUNTIME_DIR/blockscope/blockscoped.sock`; without `XDG_RUNTIME_DIR` (or when it
  /// is empty), `/tmp/blockscope-UID/blockscoped.sock`.
  static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment,
                          uid: UInt32 = getuid()) -> String {
    if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty {
      return runtime + "/blockscope/blockscoped.sock"
    }
    return "/tmp/blockscope-\(uid)/blockscoped.sock"
  }
}

/// A line on stderr.
func printError(_ message: String) {
  FileHandle.standardError.write(Data((message + "\n").utf8))
}
