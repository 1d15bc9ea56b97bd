import XCTest
@testable import Report

final class ReportDataTests: XCTestCase {
  func testModelEntryDefaults() {
    let m = ModelEntry(model: "m", depth: 8, width: 1, fraction: 1, seed: 0, plain: false, state: "queued")
    XCTAssertFalse(m.nearChance)
    XCTAssertTrue(m.snapshots.isEmpty)
  }
}
