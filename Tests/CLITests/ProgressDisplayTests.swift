import XCTest
@testable import blockscope
import Wire

/// Collects what a ProgressDisplay writes, on a clock the test moves.
final class ProgressRecorder {
  var output = ""
  var time = 0.0
}

final class ProgressDisplayTests: XCTestCase {
  func step(_ step: Int, of steps: Int, epoch: Int = 1, loss: Double = 0.6931, accuracy: Double = 0.512) -> ProgressEvent {
    ProgressEvent(phase: "step", done: step, total: steps, job: 3, epoch: epoch, epochs: 2,
                  metrics: ["loss": loss, "accuracy": accuracy, "images_per_second": 1234.4])
  }

  func makeDisplay(_ mode: ProgressDisplay.Mode, _ recorder: ProgressRecorder) -> ProgressDisplay {
    ProgressDisplay(mode: mode, plainInterval: 5, sink: { recorder.output += $0 }, now: { recorder.time })
  }

  func testPlainLinesAreRateLimitedAndEpochsAlwaysPrinted() {
    let recorder = ProgressRecorder()
    var display = makeDisplay(.plain, recorder)
    for second in 0..<12 {
      recorder.time = Double(second)
      display.handle(step(second + 1, of: 40))
    }
    var lines = recorder.output.split(separator: "\n")
    XCTAssertEqual(lines.count, 3, recorder.output)  // t = 0, 5, 10
    XCTAssertFalse(recorder.output.contains("\r"))
    XCTAssertFalse(recorder.output.contains("\u{1B}"))
    XCTAssertTrue(lines[0].hasPrefix("epoch 1/2  ["), String(lines[0]))
    XCTAssertTrue(lines[1].contains("step 6/40"), String(lines[1]))
    XCTAssertTrue(lines[2].contains("step 11/40"), String(lines[2]))

    recorder.time = 10.5
    let epochEnd = ProgressEvent(phase: "epoch", done: 1, total: 2, job: 3, epoch: 1, epochs: 2,
                                 metrics: ["train_loss": 0.5, "train_accuracy": 0.8, "test_accuracy": 0.75])
    display.handle(epochEnd)
    display.handle(epochEnd)  // the same epoch again: printed once
    lines = recorder.output.split(separator: "\n")
    XCTAssertEqual(lines.count, 4, recorder.output)
    XCTAssertEqual(String(lines[3]), "epoch 1/2  loss 0.5000  acc 80.0%  test acc 75.0%")
    // Right after the epoch line, steps wait for the interval again.
    recorder.time = 11
    display.handle(step(1, of: 40, epoch: 2))
    XCTAssertEqual(recorder.output.split(separator: "\n").count, 4)
  }

  func testTerminalRedrawsOneLineInPlace() {
    let recorder = ProgressRecorder()
    var display = makeDisplay(.terminal, recorder)
    display.handle(step(1, of: 40))
    recorder.time = 0.05
    display.handle(step(2, of: 40))  // within 0.1 s: skipped
    recorder.time = 0.2
    display.handle(step(3, of: 40))
    XCTAssertEqual(recorder.output.components(separatedBy: "\r\u{1B}[K").count - 1, 2, recorder.output)
    XCTAssertFalse(recorder.output.contains("\n"))
    XCTAssertTrue(recorder.output.hasSuffix("epoch 1/2  [" + String(repeating: ".", count: 12) + "]  step 3/40  loss 0.6931  acc 51.2%  1234 img/s"),
                  recorder.output)
    recorder.output = ""
    display.handle(ProgressEvent(phase: "epoch", done: 1, total: 2, epoch: 1, epochs: 2, metrics: ["test_accuracy": 0.5]))
    XCTAssertEqual(recorder.output, "\r\u{1B}[Kepoch 1/2  test acc 50.0%\n")
    recorder.output = ""
    display.finish()
    XCTAssertEqual(recorder.output, "")  // nothing redrawable is on screen any more
  }

  func testARedrawnLineIsCutToTheTerminalWidth() {
    let recorder = ProgressRecorder()
    var display = makeDisplay(.terminal, recorder)
    display.columns = 30
    display.handle(step(1, of: 40))
    XCTAssertEqual(recorder.output, "\r\u{1B}[K" + String(ProgressDisplay.line(step(1, of: 40)).prefix(29)))
    // The learning rate stays out of the redrawn line.
    let withLR = ProgressEvent(phase: "step", done: 1, total: 2, epoch: 1, epochs: 1, metrics: ["loss": 1, "lr": 0.05])
    XCTAssertFalse(ProgressDisplay.line(withLR).contains("lr"))
    XCTAssertTrue(ProgressDisplay.epochLine(ProgressEvent(phase: "epoch", done: 1, total: 1, metrics: ["lr": 0.05]))
      .contains("lr 0.05000"))
  }

  func testAnalysisPhasesAndOff() {
    XCTAssertEqual(ProgressDisplay.line(ProgressEvent(phase: "forward", done: 5, total: 10)),
                   "forward  [##########..........]  5/10")
    XCTAssertEqual(ProgressDisplay.line(ProgressEvent(phase: "grams", done: 0, total: 0, message: "warming up")),
                   "grams  [....................]  0/0  warming up")
    XCTAssertEqual(ProgressDisplay.bar(1.5, width: 4), "[####]")
    XCTAssertEqual(ProgressDisplay.bar(.nan, width: 4), "[....]")
    let recorder = ProgressRecorder()
    var off = makeDisplay(.off, recorder)
    off.handle(step(1, of: 2))
    off.handle(ProgressEvent(phase: "epoch", done: 1, total: 1))
    off.finish()
    XCTAssertEqual(recorder.output, "")
    XCTAssertFalse(off.isEnabled)
    XCTAssertEqual(ProgressDisplay.metricTexts(["zeta": 2, "loss": 1]), ["loss 1.0000", "zeta 2.0000"])
  }
}
