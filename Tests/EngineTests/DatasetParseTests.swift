import Foundation
import XCTest

@testable import Engine

/// The loaders' in-memory entry points (`CIFAR.parseRecords`, `IDX.parseImages` and
/// `parseLabels`, which the fuzz harnesses call): the same dataset as reading the file, and
/// errors that name the given source.
final class DatasetParseTests: XCTestCase {
  func testCIFARParseMatchesReadingTheFile() throws {
    let s = try DatasetScratch()
    for (labelBytes, labelIndex, numClasses, labels) in [(1, 0, 10, [[UInt8(3)], [9]]),
                                                         (2, 1, 100, [[19, 99], [0, 42]])] {
      let bytes = DatasetLoaderTests.cifarRecords(file: 1, labels: labels)
      let path = try s.write("records-\(labelBytes).bin", bytes)
      let read = try CIFAR.readRecords(paths: [path], labelBytes: labelBytes, labelIndex: labelIndex,
                                       numClasses: numClasses, name: "n")
      let parsed = try CIFAR.parseRecords(bytes, labelBytes: labelBytes, labelIndex: labelIndex,
                                          numClasses: numClasses, name: "n", source: "memory")
      XCTAssertEqual(parsed.pixels, read.pixels)
      XCTAssertEqual(parsed.labels, read.labels)
      XCTAssertEqual(parsed.ids, read.ids)
      XCTAssertEqual([parsed.height, parsed.width, parsed.channels, parsed.numClasses], [32, 32, 3, numClasses])
    }
  }

  func testCIFARParseErrorsNameTheSource() {
    let record = DatasetLoaderTests.cifarRecords(file: 0, labels: [[4]])
    assertDatasetError(try CIFAR.parseRecords([], labelBytes: 1, labelIndex: 0, numClasses: 10,
                                              name: "n", source: "src"),
                       path: "src", "truncated: empty file")
    assertDatasetError(try CIFAR.parseRecords(Array(record.dropLast()), labelBytes: 1, labelIndex: 0,
                                              numClasses: 10, name: "n", source: "src"),
                       path: "src", "3072 bytes is not a multiple of the 3073-byte record")
    assertDatasetError(try CIFAR.parseRecords(record + [10] + record.dropFirst(), labelBytes: 1,
                                              labelIndex: 0, numClasses: 10, name: "n", source: "src"),
                       path: "src", "label 10 out of range 0..<10 at record 1")
  }

  func testIDXParseMatchesReadingTheFilePlainAndGzip() throws {
    let s = try DatasetScratch()
    let images = idxImages(count: 2, rows: 3, cols: 4) { n, y, x in UInt8(n * 100 + y * 10 + x) }
    let labels = idxLabels([9, 0])
    for gzip in [false, true] {
      let imageBytes = gzip ? try gzipped(images) : images
      let labelBytes = gzip ? try gzipped(labels) : labels
      let read = try IDX.readImages(path: try s.write("images\(gzip ? ".gz" : "")", imageBytes))
      let parsed = try IDX.parseImages(imageBytes, source: "memory")
      XCTAssertEqual([parsed.count, parsed.height, parsed.width], [2, 3, 4])
      XCTAssertEqual(parsed.pixels, read.pixels)
      XCTAssertEqual(parsed.pixels, Array(images.dropFirst(16)))
      XCTAssertEqual(try IDX.parseLabels(labelBytes, numClasses: 10, source: "memory"), [9, 0])
      XCTAssertEqual(try IDX.readLabels(path: try s.write("labels\(gzip ? ".gz" : "")", labelBytes), numClasses: 10),
                     [9, 0])
    }
  }

  func testIDXParseErrorsNameTheSource() {
    assertDatasetError(try IDX.parseImages(idxLabels([1]), source: "src"), path: "src",
                       "bad IDX magic 0x00000801 (expected 0x00000803)")
    assertDatasetError(try IDX.parseLabels(idxLabels([10]), numClasses: 10, source: "src"), path: "src",
                       "label 10 out of range 0..<10 at record 0")
    // A ".gz" source must be gzip, as a ".gz" path must.
    assertDatasetError(try IDX.parseLabels(idxLabels([1]), numClasses: 10, source: "src.gz"), path: "src.gz",
                       "not a gzip file")
    assertDatasetError(try IDX.parseImages([0x1f, 0x8b, 8, 0], source: "src"), path: "src", "corrupt gzip stream")
  }
}
