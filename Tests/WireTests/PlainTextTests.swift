import XCTest

@testable import Wire

/// The byte class shared by result keys, Slurm options and job script paths.
final class PlainTextTests: XCTestCase {
  func testLettersDigitsAndOnlyTheGivenPunctuation() {
    let text = PlainText(punctuation: "._-")
    XCTAssertTrue(text.accepts("r14-k1_cifar10.f0.06"))
    XCTAssertTrue(text.accepts(""))
    for bad in ["a b", "a/b", "a$b", "a;b", "a\nb", "ä", "a\u{0}b", "`x`", "a+b"] {
      XCTAssertFalse(text.accepts(bad), bad)
    }
    // Every byte: the 62 alphanumerics and the 3 punctuation characters, nothing else.
    XCTAssertEqual((0...255).filter { text.contains(UInt8($0)) }.count, 62 + 3)
    XCTAssertTrue(PlainText(punctuation: "+").accepts("a+b"))
    XCTAssertTrue(StudyExecutor.optionText.accepts("gpu:2,debug"))
    XCTAssertFalse(StudyExecutor.optionText.accepts("--wrap=rm"))
  }
}
