import XCTest
import Engine
@testable import Analysis

final class RepresentationSelectorTests: XCTestCase {
  let config = ResNetConfig(depth: 20)

  func testKindsAndCounts() throws {
    XCTAssertEqual(try RepresentationSelector.all.select(from: config).count, 72)
    let outs = try RepresentationSelector.blockOutputs.select(from: config)
    XCTAssertEqual(outs.map(\.name).first, "s1.b1.out")
    XCTAssertEqual(outs.count, 9)
    XCTAssertEqual(try RepresentationSelector.adds.select(from: config).count, 9)
  }

  func testGlobPatternsKeepForwardOrder() throws {
    let names = try RepresentationSelector.pattern("pool, s2.*.out").select(from: config).map(\.name)
    XCTAssertEqual(names, ["s2.b1.out", "s2.b2.out", "s2.b3.out", "pool"])
    XCTAssertEqual(try RepresentationSelector.pattern("s?.b1.shortcut").select(from: config).count, 2)
    XCTAssertThrowsError(try RepresentationSelector.pattern("nothing*").select(from: config))
  }

  func testNamesMustExist() {
    XCTAssertThrowsError(try RepresentationSelector.names(["pool", "s9.b9.out"]).select(from: config)) {
      XCTAssertEqual($0 as? RepresentationSelector.SelectionError, .unknown(["s9.b9.out"]))
    }
  }

  func testGlob() {
    XCTAssertTrue(RepresentationSelector.glob("*", matches: ""))
    XCTAssertTrue(RepresentationSelector.glob("a*b*c", matches: "axxbyyc"))
    XCTAssertFalse(RepresentationSelector.glob("a*b*c", matches: "axxbyy"))
    XCTAssertTrue(RepresentationSelector.glob("s?.b1.*", matches: "s2.b1.add"))
  }
}
