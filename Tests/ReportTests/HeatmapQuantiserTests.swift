import XCTest
@testable import Report

final class HeatmapQuantiserTests: XCTestCase {
  private func random(_ n: Int, seed: UInt64, range: ClosedRange<Double>) -> [Double] {
    var rng = SyntheticReport.Rng(seed)
    return (0..<n).map { _ in range.lowerBound + rng.uniform() * (range.upperBound - range.lowerBound) }
  }

  func testRoundTripWithinHalfAStep() throws {
    for bits in [8, 16] {
      let rows = 37, columns = 23
      var values = random(rows * columns, seed: 7, range: -0.2...1.3)
      values[5] = -0.2
      values[6] = 1.3
      let h = HeatmapQuantiser.quantise(values: values, defined: Array(repeating: true, count: values.count),
                                        rows: rows, columns: columns, rowNames: "a", columnNames: "b", bits: bits)
      XCTAssertEqual(h.bits, bits)
      XCTAssertEqual(h.lo, -0.2, accuracy: 1e-12)
      XCTAssertEqual(h.hi, 1.3, accuracy: 1e-12)
      let bound = (h.hi - h.lo) / Double((1 << bits) - 2) / 2
      XCTAssertEqual(HeatmapQuantiser.maxError(h), bound, accuracy: 1e-15)
      let back = try HeatmapQuantiser.dequantise(h)
      var worst = 0.0
      for (v, b) in zip(values, back.values) {
        let b = try XCTUnwrap(b)
        worst = max(worst, abs(v - b))
      }
      XCTAssertLessThanOrEqual(worst, bound * (1 + 1e-9), "bits \(bits)")
      XCTAssertGreaterThan(worst, bound * 0.5, "bits \(bits): the bound should be tight")
      XCTAssertEqual(Data(base64Encoded: h.values)?.count, rows * columns * bits / 8)
    }
  }

  func testSixteenBitsIsFinerThanEight() throws {
    let values = random(400, seed: 3, range: 0...1)
    let defined = Array(repeating: true, count: 400)
    let e8 = HeatmapQuantiser.quantise(values: values, defined: defined, rows: 20, columns: 20, rowNames: "a", columnNames: "a", bits: 8)
    let e16 = HeatmapQuantiser.quantise(values: values, defined: defined, rows: 20, columns: 20, rowNames: "a", columnNames: "a", bits: 16)
    XCTAssertLessThan(HeatmapQuantiser.maxError(e16), 1e-5)
    XCTAssertLessThan(HeatmapQuantiser.maxError(e8), 0.002)
    let back = try HeatmapQuantiser.dequantise(e16)
    for (v, b) in zip(values, back.values) { XCTAssertEqual(v, b!, accuracy: 1e-5) }
  }

  func testRangeIsAtLeastZeroToOne() {
    let h = HeatmapQuantiser.quantise(values: [0.4, 0.5, 0.6, 0.7], defined: [true, true, true, true], rows: 2, columns: 2,
                                      rowNames: "a", columnNames: "a", bits: 8)
    XCTAssertEqual(h.lo, 0)
    XCTAssertEqual(h.hi, 1)
    // Codes: round(v * 254).
    XCTAssertEqual([UInt8](Data(base64Encoded: h.values)!), [102, 127, 152, 178])
  }

  func testUndefinedAndNonFiniteCells() throws {
    for bits in [8, 16] {
      let values: [Double] = [0.5, .nan, .infinity, -.infinity, 0.25, 7.0]
      let defined = [true, true, true, true, false, false]
      let se: [Double] = [0.01, 0.02, 0.03, 0.04, 0.05, .nan]
      let h = HeatmapQuantiser.quantise(values: values, defined: defined, rows: 2, columns: 3, rowNames: "a",
                                        columnNames: "b", bits: bits, standardErrors: se)
      // Undefined and non-finite cells neither widen the range nor get a value.
      XCTAssertEqual(h.lo, 0)
      XCTAssertEqual(h.hi, 1)
      let back = try HeatmapQuantiser.dequantise(h)
      XCTAssertEqual(back.values[0]!, 0.5, accuracy: HeatmapQuantiser.maxError(h))
      for i in 1..<6 { XCTAssertNil(back.values[i], "cell \(i), bits \(bits)") }
      let bytes = [UInt8](Data(base64Encoded: h.values)!)
      let undefined = bits == 8 ? [UInt8(255)] : [UInt8(255), UInt8(255)]
      for i in 1..<6 { XCTAssertEqual(Array(bytes[(i * bits / 8)..<((i + 1) * bits / 8)]), undefined) }
      // Standard errors: only the defined finite cell has one; se_max is its value.
      XCTAssertEqual(h.seMax, 0.01)
      let ses = try XCTUnwrap(back.standardErrors)
      XCTAssertEqual(ses[0]!, 0.01, accuracy: 1e-12)
      for i in 1..<6 { XCTAssertNil(ses[i]) }
      XCTAssertEqual([UInt8](Data(base64Encoded: h.standardErrors!)!), [254, 255, 255, 255, 255, 255])
    }
  }

  func testStandardErrorsRoundTrip() throws {
    let n = 64
    let values = random(n, seed: 11, range: 0...1)
    let se = random(n, seed: 12, range: 0...0.05)
    let h = HeatmapQuantiser.quantise(values: values, defined: Array(repeating: true, count: n), rows: 8, columns: 8,
                                      rowNames: "a", columnNames: "a", bits: 16, standardErrors: se)
    let back = try HeatmapQuantiser.dequantise(h)
    let bound = HeatmapQuantiser.maxStandardErrorError(h)
    XCTAssertEqual(h.seMax!, se.max()!, accuracy: 0)
    for (s, b) in zip(se, back.standardErrors!) { XCTAssertEqual(s, b!, accuracy: bound * (1 + 1e-9)) }
  }

  func testAllUndefinedHeatmapStillHasARange() throws {
    let h = HeatmapQuantiser.quantise(values: [.nan, .nan], defined: [false, false], rows: 1, columns: 2,
                                      rowNames: "a", columnNames: "b", bits: 16)
    XCTAssertLessThan(h.lo, h.hi)
    XCTAssertEqual(try HeatmapQuantiser.dequantise(h).values, [nil, nil])
  }

  func testDequantiseRejectsMalformedData() {
    var h = HeatmapQuantiser.quantise(values: [0, 1], defined: [true, true], rows: 1, columns: 2, rowNames: "a",
                                      columnNames: "b", bits: 8)
    h.rows = 2
    XCTAssertThrowsError(try HeatmapQuantiser.dequantise(h)) { error in
      XCTAssertEqual(error as? HeatmapQuantiser.DecodingError, .wrongLength(field: "values", expected: 4, got: 2))
    }
    h.rows = 1
    h.values = "not base64!"
    XCTAssertThrowsError(try HeatmapQuantiser.dequantise(h))
    h.bits = 12
    XCTAssertThrowsError(try HeatmapQuantiser.dequantise(h))
  }
}
