import Foundation
import XCTest
@testable import Report

final class ReportPageTests: XCTestCase {
  static let synthetic = SyntheticReport.make()

  /// The embedded JSON text of a page.
  private func embeddedJSON(_ html: String) throws -> String {
    let open = "<script id=\"report-data\" type=\"application/json\">"
    let start = try XCTUnwrap(html.range(of: open)).upperBound
    let end = try XCTUnwrap(html.range(of: "</script>", range: start..<html.endIndex)).lowerBound
    return String(html[start..<end])
  }

  func testEncodedUsesSnakeCaseSortedKeys() throws {
    let bytes = try Self.synthetic.encoded()
    let text = String(decoding: bytes, as: UTF8.self)
    for key in ["\"name_lists\"", "\"cross_seed\"", "\"cross_architecture\"", "\"test_accuracy\"", "\"near_chance\"",
                "\"heatmap_no_pc1\"", "\"pc1_fraction\"", "\"pc1_cosine\"", "\"row_names\"", "\"column_names\"",
                "\"standard_errors\"", "\"se_max\"", "\"block_ranges\"", "\"first_name\"", "\"stage_tails\"",
                "\"intact_accuracy\"", "\"snapshot_epochs\"", "\"plain_widths\"", "\"model_a\"", "\"x_accuracy\"",
                "\"null_accuracy_a\"", "\"class_index\"", "\"significant_fraction\"", "\"mean_accuracy\""] {
      XCTAssertTrue(text.contains(key), "missing \(key)")
    }
    for camel in ["nameLists", "testAccuracy", "heatmapNoPC1", "pc1Fraction", "rowNames", "seMax", "modelA"] {
      XCTAssertFalse(text.contains("\"\(camel)\""), "camelCase key \(camel)")
    }
    // name_lists' keys are data (heatmaps refer to them): not converted.
    let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    let lists = try XCTUnwrap(object["name_lists"] as? [String: Any])
    XCTAssertEqual(Set(lists.keys), Set(Self.synthetic.nameLists.keys))
    // Sorted keys (top level and inside study).
    XCTAssertTrue(text.hasPrefix("{\"cross_architecture\":["))
    XCTAssertTrue(text.contains(",\"study\":{\"classes\":"))
    XCTAssertTrue(text.hasSuffix("}}"))
    // And it reads back.
    XCTAssertTrue(try decodeReport(Data(bytes)) == Self.synthetic, "the JSON does not read back to the same data")
  }

  func testCamelCaseNameListKeysSurvive() throws {
    var data = SyntheticReport.make(depths: [8], widths: [1], fractions: [1], seeds: [0], plainWidths: [], snapshotEpochs: [], populations: false)
    data.nameLists["resNet8Plain"] = data.nameLists["resnet8"]
    let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try data.encoded())) as? [String: Any])
    XCTAssertNotNil((object["name_lists"] as? [String: Any])?["resNet8Plain"])
  }

  func testNonFiniteValueFailsClearly() {
    var data = SyntheticReport.make(depths: [8], widths: [1], fractions: [1], seeds: [0], plainWidths: [], snapshotEpochs: [], populations: false)
    data.models[0].testAccuracy = .nan
    XCTAssertThrowsError(try data.encoded()) { error in
      guard case let .nonFiniteValue(path, _)? = error as? ReportEncodingError else {
        return XCTFail("unexpected \(error)")
      }
      XCTAssertEqual(path, "models[0].testAccuracy")
      XCTAssertTrue("\(error)".contains("models[0].testAccuracy"))
    }
    XCTAssertThrowsError(try ReportPage.html(data))
    data.models[0].testAccuracy = 0.5
    data.models[0].pc1Fraction = [0.5, .infinity]
    XCTAssertThrowsError(try data.encoded()) { error in
      XCTAssertTrue("\(error)".contains("models[0].pc1Fraction[1]"), "\(error)")
    }
  }

  func testScriptEndInNamesIsEscaped() throws {
    var data = SyntheticReport.make(depths: [8], widths: [1], fractions: [1], seeds: [0], plainWidths: [], snapshotEpochs: [], populations: false)
    let evil = "</script><script>alert(1)</script><!--"
    data.study.name = "evil" + evil
    data.models[0].notes.append(evil)
    data.nameLists["resnet8"]!.names[1] = "stem.</SCRIPT>conv"
    let html = try ReportPage.html(data)
    let json = try embeddedJSON(html)
    XCTAssertFalse(json.contains("<"), "a '<' left in the embedded JSON")
    XCTAssertTrue(json.contains("\\u003c/script>\\u003cscript>alert(1)\\u003c/script>\\u003c!--"))
    // The script element ends where it should, and the JSON reads back to the same data.
    XCTAssertTrue(try decodeReport(Data(json.utf8)) == data, "the embedded JSON does not read back to the same data")
    // The title is HTML-escaped.
    XCTAssertTrue(html.contains("<title>Blockscope report \u{2014} evil&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;!--</title>"))
    // Exactly the page's own script elements.
    XCTAssertEqual(html.components(separatedBy: "<script").count - 1, 2)
    XCTAssertEqual(html.components(separatedBy: "</script>").count - 1, 2)
  }

  func testPageIsSelfContained() throws {
    let html = try ReportPage.html(Self.synthetic)
    XCTAssertFalse(html.lowercased().contains("http://"), "an http:// URL in the page")
    XCTAssertFalse(html.lowercased().contains("https://"), "an https:// URL in the page")
    XCTAssertFalse(html.contains("//cdn"), "a CDN reference")
    for pattern in ["<link rel=\"stylesheet\"", "src=\"", "@import", "url(", "fetch(", "XMLHttpRequest", "import("] {
      XCTAssertFalse(html.contains(pattern), "external resource pattern \(pattern)")
    }
    XCTAssertTrue(html.hasPrefix("<!DOCTYPE html>"))
    XCTAssertTrue(html.contains("<script id=\"report-data\" type=\"application/json\">"))
    XCTAssertTrue(html.contains("<div id=\"tooltip\""))
    XCTAssertTrue(html.contains("window.blockscopeReport"))
    XCTAssertTrue(html.contains("Content-Security-Policy"))
  }

  func testSyntheticReportShape() throws {
    let d = Self.synthetic
    XCTAssertEqual(d.study.depths, [8, 14, 20, 56])
    XCTAssertEqual(d.nameLists["resnet20"]!.names.count, 72)
    XCTAssertEqual(d.nameLists["resnet56"]!.names.count, 198)
    XCTAssertEqual(d.nameLists["plain20"]!.names.count, 61)
    XCTAssertEqual(d.nameLists["resnet8"]!.names, [
      "input", "stem.conv", "stem.bn", "stem.relu",
      "s1.b1.conv1", "s1.b1.bn1", "s1.b1.relu1", "s1.b1.conv2", "s1.b1.bn2", "s1.b1.add", "s1.b1.out",
      "s2.b1.conv1", "s2.b1.bn1", "s2.b1.relu1", "s2.b1.conv2", "s2.b1.bn2", "s2.b1.shortcut", "s2.b1.add", "s2.b1.out",
      "s3.b1.conv1", "s3.b1.bn1", "s3.b1.relu1", "s3.b1.conv2", "s3.b1.bn2", "s3.b1.shortcut", "s3.b1.add", "s3.b1.out",
      "pool", "logits", "probs"])
    for (_, list) in d.nameLists { XCTAssertEqual(list.names.count, list.stages.count) }
    XCTAssertEqual(d.models.count, 4 * 2 * 2 * 2 + 4 * 2 * 2)
    // Every heatmap decodes and matches its name lists.
    for m in d.models {
      for h in [m.heatmap, m.heatmapNoPC1, m.pc1Cosine].compactMap({ $0 }) + m.snapshots.compactMap(\.heatmap) {
        XCTAssertEqual(h.rows, d.nameLists[h.rowNames]!.names.count)
        XCTAssertEqual(h.columns, d.nameLists[h.columnNames]!.names.count)
        XCTAssertEqual(try HeatmapQuantiser.dequantise(h).values.count, h.rows * h.columns)
      }
    }
    XCTAssertTrue(d.models.contains { $0.hasBlockStructure == true && !$0.nearChance })
    XCTAssertTrue(d.models.contains { $0.hasBlockStructure == false })
    XCTAssertTrue(d.models.contains { $0.nearChance })
    XCTAssertTrue(d.models.contains { $0.state == "queued" })
    XCTAssertTrue(d.models.contains { $0.heatmap?.rows == 198 })
    XCTAssertFalse(d.crossSeed.isEmpty)
    XCTAssertFalse(d.crossArchitecture.isEmpty)
    XCTAssertEqual(d.populations.count, 1)
    // Block structure: brighter inside the block than across its edge.
    let deep = try XCTUnwrap(d.models.first { $0.depth == 56 && $0.width == 1 && $0.seed == 0 && !$0.plain })
    let r = try XCTUnwrap(deep.blockRanges.first)
    let v = try HeatmapQuantiser.dequantise(deep.heatmap!).values
    let L = deep.heatmap!.rows
    XCTAssertGreaterThan(v[r.first * L + r.last]!, 0.85)
    XCTAssertLessThan(v[0 * L + r.last]!, 0.5)
    XCTAssertGreaterThan(deep.pc1Inside!, deep.pc1Outside! + 0.2)
  }

  /// Writes the synthetic report's page (and the data files it links to) into
  /// $BLOCKSCOPE_REPORT_FIXTURE_DIR for tools/report_browser_test.py; otherwise only renders it.
  func testWritesFixturePage() throws {
    let html = try ReportPage.html(Self.synthetic)
    XCTAssertGreaterThan(html.utf8.count, 100_000)
    guard let dir = ProcessInfo.processInfo.environment["BLOCKSCOPE_REPORT_FIXTURE_DIR"], !dir.isEmpty else { return }
    let fm = FileManager.default
    let root = URL(fileURLWithPath: dir, isDirectory: true)
    try fm.createDirectory(at: root.appendingPathComponent("data"), withIntermediateDirectories: true)
    try Data(html.utf8).write(to: root.appendingPathComponent("index.html"))
    for m in Self.synthetic.models {
      guard let h = m.heatmap, h.npy != nil || h.csv != nil else { continue }
      let values = try HeatmapQuantiser.dequantise(h).values.map { $0 ?? .nan }
      if let path = h.npy { try FixtureFiles.npy(values, rows: h.rows, columns: h.columns).write(to: root.appendingPathComponent(path)) }
      if let path = h.csv {
        let names = Self.synthetic.nameLists[h.columnNames]!.names
        try FixtureFiles.csv(values, rows: h.rows, columns: h.columns, names: names).write(to: root.appendingPathComponent(path))
      }
    }
    // A sparse study as a report sees it early on: one seed, no plain nets, no snapshots, most
    // models not trained yet, no populations.
    let sparseDir = root.appendingPathComponent("sparse", isDirectory: true)
    try fm.createDirectory(at: sparseDir, withIntermediateDirectories: true)
    try Data(try ReportPage.html(Self.sparse()).utf8).write(to: sparseDir.appendingPathComponent("index.html"))
    print("report fixture: \(root.appendingPathComponent("index.html").path) (\(html.utf8.count) bytes), sparse/index.html")
  }

  /// One seed, two depths, one width and fraction; only the shallow model trained (and without
  /// probes), the deep one queued.
  static func sparse() -> ReportData {
    var d = SyntheticReport.make(depths: [8, 20], widths: [1], fractions: [0.25], seeds: [0], plainWidths: [],
                                 snapshotEpochs: [], populations: false)
    for i in d.models.indices where d.models[i].depth == 20 {
      let m = d.models[i]
      d.models[i] = ModelEntry(model: m.model, depth: m.depth, width: m.width, fraction: m.fraction, seed: m.seed,
                               plain: m.plain, state: "queued")
    }
    for i in d.models.indices { d.models[i].probes = nil }
    d.crossArchitecture = []
    d.notes.append("Analyses still running: 1 of 2 models trained.")
    return d
  }

  func testSparsePageRenders() throws {
    let html = try ReportPage.html(Self.sparse())
    XCTAssertTrue(html.contains("\"state\":\"queued\""))
    XCTAssertFalse(html.contains("\"populations\":[{"))
  }
}

/// Reads the page's JSON back. `.convertFromSnakeCase` alone would not do: it turns
/// `heatmap_no_pc1` into `heatmapNoPc1`, not the field's `heatmapNoPC1`.
func decodeReport(_ data: Data) throws -> ReportData {
  struct Key: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init(intValue: Int) { self.stringValue = String(intValue); self.intValue = intValue }
  }
  let decoder = JSONDecoder()
  decoder.keyDecodingStrategy = .custom { path in
    let key = path.last!
    if key.intValue != nil { return key }
    if key.stringValue == "heatmap_no_pc1" { return Key(stringValue: "heatmapNoPC1") }
    let parts = key.stringValue.split(separator: "_", omittingEmptySubsequences: false)
    guard parts.count > 1 else { return key }
    return Key(stringValue: String(parts[0]) + parts.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined())
  }
  return try decoder.decode(ReportData.self, from: data)
}

enum FixtureFiles {
  /// A float64 .npy (format 1.0, little-endian, C order).
  static func npy(_ values: [Double], rows: Int, columns: Int) -> Data {
    var header = "{'descr': '<f8', 'fortran_order': False, 'shape': (\(rows), \(columns)), }"
    let unpadded = 10 + header.utf8.count + 1
    header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
    var out = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
    let n = UInt16(header.utf8.count)
    out.append(contentsOf: [UInt8(n & 0xff), UInt8(n >> 8)])
    out.append(contentsOf: Array(header.utf8))
    for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { out.append(contentsOf: $0) } }
    return out
  }

  static func csv(_ values: [Double], rows: Int, columns: Int, names: [String]) -> Data {
    var text = "," + names.joined(separator: ",") + "\n"
    for r in 0..<rows {
      text += (r < names.count ? names[r] : "") + ","
      text += (0..<columns).map { values[r * columns + $0].isNaN ? "" : String(values[r * columns + $0]) }.joined(separator: ",") + "\n"
    }
    return Data(text.utf8)
  }
}
