import Foundation
import XCTest

/// The analysis subcommands of the built binary: outputs, exit codes, bad input.
final class AnalysisToolTests: XCTestCase {
  func run(_ args: [String]) throws -> EngineToolTests.Result { try EngineToolTests.run(args) }

  override func setUpWithError() throws {
    try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: EngineToolTests.binary.path))
  }

  func testAnalyzeWritesEveryReportForATrainedModel() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bs-analyze-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let ckpt = dir.appendingPathComponent("m.bsckpt").path
    let t = try run(["train", "--dataset", "synthetic", "--depth", "8", "--width", "0.25",
                          "--fraction", "0.02", "--epochs", "1", "--batch-size", "50", "--checkpoint", ckpt,
                          "--test-examples", "300"])
    XCTAssertEqual(t.status, 0, t.stderr)
    XCTAssertTrue(t.stdout.contains("100 training / 300 test images"), t.stdout)
    let out = dir.appendingPathComponent("analysis").path
    let r = try run(["analyze", "--checkpoint", ckpt, "--out", out, "--examples", "64",
                          "--batch-size", "16", "--passes", "2", "--pc-examples", "32",
                          "--probe-epochs", "1", "--bootstrap", "10"])
    XCTAssertEqual(r.status, 0, r.stderr + r.stdout)
    for f in ["heatmap.json", "heatmap.csv", "blocks.json", "pc.json", "probes.json", "deletion.json"] {
      XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + f), f)
    }
    XCTAssertTrue(r.stdout.contains("heatmap: 30 representations, 8 batches of 16"), r.stdout)
    XCTAssertTrue(r.stdout.contains("block structure"), r.stdout)
    XCTAssertTrue(r.stdout.contains("linear probes"), r.stdout)
    XCTAssertTrue(r.stdout.contains("block deletion"), r.stdout)
    let heat = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/heatmap.json"))) as! [String: Any]
    XCTAssertEqual((heat["rowNames"] as! [String]).count, 30)
    XCTAssertEqual((heat["values"] as! [Double]).count, 900)
    XCTAssertEqual((heat["standardErrors"] as! [Double]).count, 900)
    let csv = try String(contentsOfFile: out + "/heatmap.csv", encoding: .utf8).split(separator: "\n")
    XCTAssertEqual(csv.count, 31)
    XCTAssertTrue(csv[0].hasPrefix("representation,input,stem.conv"))
    // The calibration table from the saved heatmap.
    let b = try run(["blocks", out + "/heatmap.json", "--thresholds", "0.5,0.9"])
    XCTAssertEqual(b.status, 0, b.stderr)
    XCTAssertTrue(b.stdout.contains("t=0.50 span,cover,contrast | t=0.90 span,cover,contrast"), b.stdout)
    XCTAssertTrue(b.stdout.contains("score "), b.stdout)
    // The same table from the CSV (the CLI's format too): the same verdicts, cell for cell.
    let c = try run(["blocks", out + "/heatmap.csv", "--thresholds", "0.5,0.9"])
    XCTAssertEqual(c.status, 0, c.stderr)
    let rows = { (text: String) in text.split(separator: "\n").dropFirst().map { $0.drop(while: { $0 != " " }) } }
    XCTAssertEqual(rows(c.stdout), rows(b.stdout))
    let broken = dir.appendingPathComponent("broken.csv").path
    try Data(",a,b\na,1,x\nb,x,1\n".utf8).write(to: URL(fileURLWithPath: broken))
    let bad = try run(["blocks", broken])
    XCTAssertEqual(bad.status, 1)
    XCTAssertTrue(bad.stderr.contains("not a number"), bad.stderr)
    let missing = try run(["blocks", dir.appendingPathComponent("none.json").path])
    XCTAssertEqual(missing.status, 1)
    XCTAssertTrue(missing.stderr.contains("none.json"), missing.stderr)
  }

  func testAnalyzeRefusesMissingAndCorruptCheckpoints() throws {
    let r = try run(["analyze", "--checkpoint", "/nonexistent/m.bsckpt", "--out", "/tmp/x"])
    XCTAssertEqual(r.status, 1)
    XCTAssertTrue(r.stderr.contains("/nonexistent/m.bsckpt"), r.stderr)
    let bad = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(getpid()).bsckpt").path
    try Data("BSCKPT not really".utf8).write(to: URL(fileURLWithPath: bad))
    defer { try? FileManager.default.removeItem(atPath: bad) }
    let c = try run(["analyze", "--checkpoint", bad, "--out", "/tmp/x"])
    XCTAssertEqual(c.status, 1)
    XCTAssertTrue(c.stderr.contains(bad), c.stderr)
    let u = try run(["analyze", "--checkpoint", bad, "--out", "/tmp/x", "--estimator", "cosine"])
    XCTAssertEqual(u.status, 64)
  }

  func testBenchCKAJSONHasTheDocumentedKeys() throws {
    let r = try run(["bench-cka", "--depth", "8", "--width", "0.25", "--batches", "2",
                          "--batch-size", "8", "--json"])
    XCTAssertEqual(r.status, 0, r.stderr)
    let line = r.stdout.split(separator: "\n").first.map(String.init) ?? ""
    let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
    for key in ["model", "representations", "examples", "seconds_scratch", "seconds_cached", "peak_rss_mb"] {
      XCTAssertNotNil(obj[key], key)
    }
    XCTAssertEqual(obj["representations"] as? Int, 30)
    XCTAssertEqual(obj["examples"] as? Int, 16)
  }
}
