import Foundation
import XCTest
@testable import blockscope
import Wire

final class OutputTests: XCTestCase {
  /// A HEATMAP_OK response as the client receives it (encoded, then parsed).
  func heatmapResponse(rows: [String], columns: [String], cka: [Double], defined: [UInt8],
                       ckaShape: [Int]? = nil) throws -> DaemonResponse {
    let doc = HeatmapResponse(
      rowNames: rows, columnNames: columns, estimator: .unbiased, removePC1: false,
      diagnostics: [.init(kind: "constant", message: "s1.b0.relu1 is constant", representations: ["b"])],
      provenance: .init(model: "m", modelFingerprint: "0123456789abcdef", split: .test, batchSize: 4, passes: 1,
                        seed: 0, bootstrap: 0, bootstrapSeed: 0, droppedExamples: 0),
      stats: .init(batches: 1, forwardPasses: 1, gramsComputed: 2, formsDerived: 2, cacheHits: 0, seconds: 0.5),
      blockStructure: .init(threshold: 0.9, minBlocks: 2, blockScore: 0.5, hasBlockStructure: true,
                            ranges: [.init(first: 0, last: 1, blocksSpanned: 2, meanCka: 0.95, minCka: 0.9)]))
    let tensors = [
      WireTensor(name: "cka", doubles: cka, shape: ckaShape ?? [rows.count, columns.count]),
      WireTensor(name: "defined", uint8s: defined, shape: [rows.count, columns.count]),
      WireTensor(name: "batch_example_ids", int32s: [0, 1, 2, 3], shape: [1, 4]),
    ]
    let frame = try Frame.message(type: .heatmapOK, requestID: 1, doc: doc, tensors: tensors)
    return DaemonResponse(type: .heatmapOK, payload: try frame.parsedPayload())
  }

  func testHeatmapResultWritesTheFourFiles() throws {
    let response = try heatmapResponse(rows: ["a", "b"], columns: ["a", "b"], cka: [1, 0, 0.5, 1],
                                       defined: [1, 0, 1, 1])
    let result = try HeatmapResult(response)
    XCTAssertEqual(result.values, [1, nil, 0.5, 1])
    XCTAssertTrue(result.summary().contains("block structure: yes"), result.summary())
    XCTAssertTrue(result.summary().contains("a .. b  (rows 0-1, 2 blocks"), result.summary())
    XCTAssertTrue(result.summary().contains("constant: s1.b0.relu1 is constant [b]"), result.summary())

    let directory = try temporaryDirectory("heatmap-files") + "/nested/out"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let files = try result.write(to: directory, request: HeatmapRequest(model: "m"))
    XCTAssertEqual(Set(files.keys), ["png", "npy", "csv", "json"])
    let npy = try Npy.read(files["npy"]!)
    XCTAssertEqual(npy.shape, [2, 2])
    XCTAssertEqual(npy.doubles[0], 1)
    XCTAssertTrue(npy.doubles[1].isNaN)
    XCTAssertEqual(try String(contentsOfFile: files["csv"]!, encoding: .utf8), ",a,b\na,1.0,\nb,0.5,1.0\n")
    let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: files["json"]!))) as? [String: Any])
    XCTAssertEqual(json["row_names"] as? [String], ["a", "b"])
    XCTAssertEqual(json["undefined_cells"] as? Int, 1)
    XCTAssertEqual((json["request"] as? [String: Any])?["model"] as? String, "m")
    XCTAssertNotNil(json["block_structure"] as? [String: Any])
    let tensors = try XCTUnwrap(json["tensors"] as? [[String: Any]])
    XCTAssertEqual(tensors.first { $0["name"] as? String == "cka" }?["file"] as? String, files["npy"])
    XCTAssertEqual(tensors.first { $0["name"] as? String == "batch_example_ids" }?["shape"] as? [Int], [1, 4])
    let png = try DecodedPNG(path: files["png"]!)
    XCTAssertEqual(png.width, result.image.layout.width)
  }

  func testAHeatmapWhoseMatrixDoesNotMatchItsNamesIsRefused() throws {
    let response = try heatmapResponse(rows: ["a", "b"], columns: ["a", "b"], cka: [1, 0, 0.5, 1, 2, 3],
                                       defined: [1, 1, 1, 1], ckaShape: [3, 2])
    XCTAssertThrowsError(try HeatmapResult(response)) { error in
      guard case ClientError.protocolViolation(let wire) = error else { return XCTFail("\(error)") }
      XCTAssertTrue(wire.message.contains("expected f64[2, 2]"), wire.message)
    }
  }

  func testTablesAndFormats() {
    var table = TextTable(["NAME", "N"], rightAligned: [1])
    table.add(["long-name", "5"])
    table.add(["x", "1234"])
    XCTAssertEqual(table.render(), "NAME          N\nlong-name     5\nx          1234")
    XCTAssertEqual(Format.percent(0.51234), "51.23%")
    XCTAssertEqual(Format.percent(nil), "-")
    XCTAssertEqual(Format.bytes(512), "512 B")
    XCTAssertEqual(Format.bytes(3 << 20), "3.0 MiB")
    XCTAssertEqual(Format.duration(5.25), "5.2s")
    XCTAssertEqual(Format.duration(3723), "1h02m03s")
    XCTAssertEqual(Format.duration(65), "1m05s")
    XCTAssertEqual(JSONOutput.matrix([1, nil, .nan, 2], rows: 2, columns: 2).map { $0.map { $0 is NSNull } },
                   [[false, true], [true, false]])
  }
}
