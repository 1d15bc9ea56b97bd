import Foundation
import Wire

/// Slurm's command-line tools (`sbatch`, `squeue`, `sacct`, `scancel`), run as child processes
/// with a deadline, on the calling worker thread (never the loop thread). They find the
/// cluster as the daemon's environment says (`SLURM_CONF`, munge's socket).
enum SlurmCommand {
  struct Result {
    var status: Int32
    var output: String
    var errors: String
    /// stderr's last line, else stdout's: what to quote in an error message.
    var complaint: String {
      let text = errors.isEmpty ? output : errors
      return text.split(whereSeparator: \.isNewline).last.map(String.init) ?? "(no output)"
    }
  }

  /// The tool's path on the daemon's PATH; EXECUTOR_FAILED naming it when absent.
  static func locate(_ tool: String) throws(WireError) -> String {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for dir in path.split(separator: ":") where !dir.isEmpty {
      let candidate = "\(dir)/\(tool)"
      if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    throw WireError(.executorFailed, "\(tool) is not on blockscoped's PATH (\(path)): the slurm executor "
                    + "needs Slurm's client tools where the daemon runs")
  }

  /// Runs `tool arguments` in `directory`; EXECUTOR_FAILED when it cannot start or outlives
  /// `timeout` seconds (it is then killed). A non-zero exit is the caller's to judge.
  static func run(_ tool: String, _ arguments: [String], in directory: String? = nil,
                  timeout: TimeInterval = 30) throws(WireError) -> Result {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try locate(tool))
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    let ended = DispatchSemaphore(value: 0)
    process.terminationHandler = { _ in ended.signal() }
    do {
      try process.run()
    } catch {
      throw WireError(.executorFailed, "\(tool) could not be started: \(error.localizedDescription)")
    }
    // Both pipes drained at once: a child that fills one while we read the other would block.
    let output = Locked(Data()), errors = Locked(Data())
    let readers = DispatchGroup()
    for (pipe, sink) in [(out, output), (err, errors)] {
      DispatchQueue.global().async(group: readers) {
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        sink.withLock { $0 = data }
      }
    }
    if ended.wait(timeout: .now() + timeout) == .timedOut {
      kill(process.processIdentifier, SIGKILL)
      ended.wait()
      readers.wait()
      throw WireError(.executorFailed, "\(tool) \(arguments.joined(separator: " ")) did not answer within "
                      + "\(Int(timeout)) s (is slurmctld reachable?)")
    }
    readers.wait()
    return Result(status: process.terminationStatus,
                  output: String(decoding: output.current, as: UTF8.self),
                  errors: String(decoding: errors.current, as: UTF8.self))
  }
}
