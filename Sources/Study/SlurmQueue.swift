/// A Slurm array task's state as `squeue` or `sacct` reports it.
public struct SlurmTaskState: Hashable, Sendable {
  /// `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `CANCELLED`, `TIMEOUT`, ... (the first word:
  /// sacct's `CANCELLED by 0` is `CANCELLED`).
  public var state: String
  /// squeue's reason (`None` dropped) or sacct's exit code when it is not `0:0`.
  public var reason: String?
  public init(state: String, reason: String? = nil) {
    self.state = state
    self.reason = reason
  }

  /// Slurm will still run (or is running) the task.
  public var isActive: Bool {
    ["PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD",
     "RESIZING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD"].contains(state)
  }
}

/// Parsers for what the slurm executor reads from Slurm's tools, pure and tolerant: a line
/// that is not understood is skipped (Slurm versions differ in details), never trusted.
/// Results are keyed by array job id, then task index.
public enum SlurmQueue {
  public typealias States = [String: [Int: SlurmTaskState]]

  /// Tasks one array line may name at most (a range is expanded).
  static let maxTasksPerLine = 100_000

  /// `squeue --noheader --array --states=all --jobs=IDS --format=%i|%T|%r`: lines
  /// `123_4|RUNNING|None`; pending elements may still come combined, `123_[5-7,9%2]|PENDING|...`.
  public static func parseSqueue(_ text: String) -> States {
    var out: States = [:]
    for line in text.split(whereSeparator: \.isNewline) {
      let f = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingSpaces }
      guard f.count >= 2, let (job, tasks) = arrayElements(f[0]), let state = stateWord(f[1]) else { continue }
      let reason = f.count >= 3 && !f[2].isEmpty && f[2] != "None" && f[2] != "(null)" ? f[2] : nil
      for t in tasks { out[job, default: [:]][t] = SlurmTaskState(state: state, reason: reason) }
    }
    return out
  }

  /// `sacct --noheader --parsable2 --jobs=IDS --format=JobID,State,ExitCode`: lines
  /// `123_4|FAILED|1:0`; steps (`123_4.batch`) are skipped.
  public static func parseSacct(_ text: String) -> States {
    var out: States = [:]
    for line in text.split(whereSeparator: \.isNewline) {
      let f = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingSpaces }
      guard f.count >= 2, !f[0].contains("."), let (job, tasks) = arrayElements(f[0]),
            let state = stateWord(f[1]) else { continue }
      let reason = f.count >= 3 && !f[2].isEmpty && f[2] != "0:0" ? "exit code \(f[2])" : nil
      for t in tasks { out[job, default: [:]][t] = SlurmTaskState(state: state, reason: reason) }
    }
    return out
  }

  /// `123_4` -> ("123", [4]); `123_[1-3,7%2]` -> ("123", [1, 2, 3, 7]); nil otherwise.
  static func arrayElements(_ id: String) -> (String, [Int])? {
    guard let us = id.firstIndex(of: "_") else { return nil }
    let job = String(id[..<us])
    guard !job.isEmpty, job.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
    var rest = id[id.index(after: us)...]
    if rest.hasPrefix("[") {
      guard rest.hasSuffix("]") else { return nil }
      rest = rest.dropFirst().dropLast()
      guard let tasks = expand(String(rest)) else { return nil }
      return (job, tasks)
    }
    guard let t = Int(rest), t >= 0 else { return nil }
    return (job, [t])
  }

  /// `1-3,7%2` -> [1, 2, 3, 7] (the `%M` limit ignored); nil when malformed or too many.
  static func expand(_ spec: String) -> [Int]? {
    let body = spec.split(separator: "%", maxSplits: 1, omittingEmptySubsequences: false)[0]
    var out: [Int] = []
    for part in body.split(separator: ",", omittingEmptySubsequences: false) {
      // `1-7:2` (a step) is Slurm syntax too.
      let stepParts = part.split(separator: ":", omittingEmptySubsequences: false)
      guard stepParts.count <= 2 else { return nil }
      let step = stepParts.count == 2 ? Int(stepParts[1]) : 1
      let bounds = stepParts[0].split(separator: "-", omittingEmptySubsequences: false)
      guard let step, step >= 1, bounds.count <= 2, let lo = Int(bounds[0]), lo >= 0 else { return nil }
      let hi = bounds.count == 2 ? Int(bounds[1]) : lo
      guard let hi, hi >= lo, (hi - lo) / step + out.count < maxTasksPerLine else { return nil }
      out.append(contentsOf: stride(from: lo, through: hi, by: step))
    }
    return out
  }

  /// `CANCELLED by 0` -> `CANCELLED`; nil unless an upper-case word.
  static func stateWord(_ field: String) -> String? {
    guard let word = field.split(separator: " ").first, !word.isEmpty,
          word.utf8.allSatisfy({ ($0 >= 0x41 && $0 <= 0x5A) || $0 == UInt8(ascii: "_") }) else { return nil }
    return String(word)
  }
}

extension Substring {
  var trimmingSpaces: String {
    String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" || $0 == "\r" }).reversed())
  }
}
