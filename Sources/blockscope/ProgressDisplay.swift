import Foundation
import Glibc
import Wire

/// Shows PROGRESS events on stderr. On a terminal: one line redrawn in place (`\r`, erase to
/// the end of the line) at most ten times a second, with a bar, the epoch, step, loss,
/// accuracy and rate; a finished epoch leaves a permanent line. Otherwise (logs, pipes):
/// plain lines, one per finished epoch and at most one every `plainInterval` seconds
/// between them. The rendering is pure (`render`/`handle` return text) so tests drive it
/// with their own clock.
struct ProgressDisplay {
  enum Mode {
    /// Redraw one line in place.
    case terminal
    /// Plain lines, rate-limited.
    case plain
    /// Nothing (--json).
    case off
  }

  var mode: Mode
  /// Seconds between plain lines.
  var plainInterval: Double = 5
  /// Seconds between redraws on a terminal.
  var terminalInterval: Double = 0.1
  /// Where text goes (stderr by default).
  var sink: (String) -> Void
  /// The clock (seconds).
  var now: () -> Double
  /// The terminal's width: a redrawn line is cut to fit (a wrapped line cannot be redrawn).
  var columns: Int?

  private var lastOutput = -Double.infinity
  /// Whether a redrawable line is on screen.
  private var lineDrawn = false
  /// The last finished epoch printed as a permanent line.
  private var lastEpochLine: Int?
  /// The phase last shown: a new phase is shown at once.
  private var lastPhase: String?

  init(mode: Mode, plainInterval: Double = 5, sink: @escaping (String) -> Void = ProgressDisplay.writeToStderr,
       now: @escaping () -> Double = { Date().timeIntervalSinceReferenceDate }) {
    self.mode = mode
    self.plainInterval = plainInterval
    self.sink = sink
    self.now = now
  }

  /// `terminal` when stderr is a terminal, `plain` otherwise, `off` for --json.
  static func automatic(json: Bool) -> ProgressDisplay {
    if json { return ProgressDisplay(mode: .off) }
    guard isatty(STDERR_FILENO) == 1 else { return ProgressDisplay(mode: .plain) }
    var display = ProgressDisplay(mode: .terminal)
    var size = winsize()
    if ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 {
      display.columns = Int(size.ws_col)
    }
    return display
  }

  static func writeToStderr(_ text: String) {
    FileHandle.standardError.write(Data(text.utf8))
  }

  /// Whether events are wanted at all (QUIET is set on requests otherwise).
  var isEnabled: Bool { mode != .off }

  /// Shows one event (or not, by the mode and the rate limit).
  mutating func handle(_ event: ProgressEvent) {
    guard mode != .off else { return }
    let time = now()
    if event.phase == "epoch" {
      // A finished epoch: a permanent line, once per epoch.
      let epoch = event.epoch ?? event.done
      guard lastEpochLine != epoch else { return }
      lastEpochLine = epoch
      emitPermanent(Self.epochLine(event))
      lastOutput = time
      return
    }
    let newPhase = event.phase != lastPhase
    lastPhase = event.phase
    switch mode {
    case .terminal:
      guard time - lastOutput >= terminalInterval || event.done == event.total || newPhase else { return }
      var text = Self.line(event)
      if let columns, text.count > columns - 1 { text = String(text.prefix(max(0, columns - 1))) }
      sink("\r\u{1B}[K" + text)
      lineDrawn = true
      lastOutput = time
    case .plain:
      guard time - lastOutput >= plainInterval else { return }
      sink(Self.line(event) + "\n")
      lastOutput = time
    case .off:
      break
    }
  }

  /// A line that stays: clears the redrawn line first on a terminal.
  mutating func emitPermanent(_ text: String) {
    guard mode != .off else { return }
    if mode == .terminal && lineDrawn {
      sink("\r\u{1B}[K")
      lineDrawn = false
    }
    sink(text + "\n")
  }

  /// Clears the redrawn line (before the command prints its result).
  mutating func finish() {
    if mode == .terminal && lineDrawn {
      sink("\r\u{1B}[K")
      lineDrawn = false
    }
  }

  // MARK: Text

  /// `[########........]`
  static func bar(_ fraction: Double, width: Int = 20) -> String {
    let f = fraction.isFinite ? min(max(fraction, 0), 1) : 0
    let full = Int((f * Double(width)).rounded(.down))
    return "[" + String(repeating: "#", count: full) + String(repeating: ".", count: width - full) + "]"
  }

  /// The redrawn line: `epoch 2/30 [#####...] step 120/469  loss 0.4123  acc 85.3%  2510 img/s`
  /// for training, `forward [###.....] 3/10` for analyses.
  static func line(_ event: ProgressEvent) -> String {
    let fraction = event.total > 0 ? Double(event.done) / Double(event.total) : 0
    var parts: [String] = []
    if let epoch = event.epoch {
      parts.append("epoch \(epoch)" + (event.epochs.map { "/\($0)" } ?? ""))
      parts.append(bar(fraction, width: 12))  // keeps a training line within 80 columns
      parts.append((event.phase == "step" ? "step" : event.phase) + " \(event.done)/\(event.total)")
    } else {
      parts.append(event.phase)
      parts.append(bar(fraction))
      parts.append("\(event.done)/\(event.total)")
    }
    // The learning rate and times belong to the epoch's line, not the redrawn one.
    parts += metricTexts((event.metrics ?? [:]).filter { $0.key != "lr" && $0.key != "seconds" })
    if let message = event.message, !message.isEmpty { parts.append(message) }
    return parts.joined(separator: "  ")
  }

  /// The permanent line of a finished epoch: `epoch 2/30  loss 0.4123  acc 85.30%  test acc 84.10%`.
  static func epochLine(_ event: ProgressEvent) -> String {
    let epoch = event.epoch ?? event.done
    let epochs = event.epochs ?? event.total
    var parts = ["epoch \(epoch)/\(epochs)"]
    parts += metricTexts(event.metrics ?? [:])
    if let message = event.message, !message.isEmpty { parts.append(message) }
    return parts.joined(separator: "  ")
  }

  /// Known metrics first, in a fixed order and format, then any others as `key value`.
  static func metricTexts(_ metrics: [String: Double]) -> [String] {
    let known: [(key: String, label: String, kind: Int)] = [
      ("loss", "loss", 0), ("train_loss", "loss", 0), ("accuracy", "acc", 1),
      ("train_accuracy", "acc", 1), ("test_loss", "test loss", 0),
      ("test_accuracy", "test acc", 1), ("lr", "lr", 2), ("images_per_second", "", 3),
      ("seconds", "", 4),
    ]
    var texts: [String] = []
    var used: Set<String> = []
    for entry in known {
      guard let value = metrics[entry.key] else { continue }
      used.insert(entry.key)
      switch entry.kind {
      case 0: texts.append("\(entry.label) \(Format.number(value))")
      case 1: texts.append("\(entry.label) \(Format.percent(value, digits: 1))")
      case 2: texts.append("\(entry.label) \(Format.number(value, digits: 5))")
      case 3: texts.append(String(format: "%.0f img/s", value))
      default: texts.append(Format.duration(value))
      }
    }
    for key in metrics.keys.sorted() where !used.contains(key) {
      texts.append("\(key) \(Format.number(metrics[key]!))")
    }
    return texts
  }
}
