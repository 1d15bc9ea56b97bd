import Foundation

/// A progress display: redraws one line on a terminal, prints plain lines otherwise (logs,
/// pipes), at most a few times per second.
final class ProgressLine {
  private let isTTY = isatty(STDERR_FILENO) == 1
  private var lastDraw = Date.distantPast
  private var drawn = false

  func update(_ text: @autoclosure () -> String, force: Bool = false) {
    let now = Date()
    let interval = isTTY ? 0.1 : 10.0
    guard force || now.timeIntervalSince(lastDraw) >= interval else { return }
    lastDraw = now
    if isTTY {
      FileHandle.standardError.write(Data(("\r\u{1B}[K" + text()).utf8))
      drawn = true
    } else {
      FileHandle.standardError.write(Data((text() + "\n").utf8))
    }
  }

  /// Ends the progress line and prints a permanent one to stdout.
  func finish(_ line: String) {
    if isTTY && drawn { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    drawn = false
    print(line)
    fflush(nil)
  }

  static func bar(_ fraction: Double, width: Int = 24) -> String {
    let f = min(max(fraction, 0), 1)
    let full = Int(f * Double(width))
    return "[" + String(repeating: "#", count: full) + String(repeating: ".", count: width - full) + "]"
  }
}
