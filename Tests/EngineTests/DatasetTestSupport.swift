import CZlib
import Foundation
import XCTest

@testable import Engine

/// Helpers for the dataset tests: a scratch directory, crafted files, gzip.
final class DatasetScratch {
  let url: URL
  var path: String { url.path }

  init() throws {
    url = FileManager.default.temporaryDirectory
      .appendingPathComponent("blockscope-dataset-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  }

  deinit { try? FileManager.default.removeItem(at: url) }

  /// Writes `bytes` to `name` (subdirectories created); returns the full path.
  @discardableResult
  func write(_ name: String, _ bytes: [UInt8]) throws -> String {
    let file = url.appendingPathComponent(name)
    try FileManager.default.createDirectory(at: file.deletingLastPathComponent(),
                                            withIntermediateDirectories: true)
    try Data(bytes).write(to: file)
    return file.path
  }

  func file(_ name: String) -> String { url.appendingPathComponent(name).path }

  func remove(_ name: String) throws { try FileManager.default.removeItem(at: url.appendingPathComponent(name)) }
}

/// gzip-compresses bytes with zlib's gz* file API (through a temporary file).
func gzipped(_ bytes: [UInt8]) throws -> [UInt8] {
  let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("gz-\(UUID().uuidString).gz")
  defer { try? FileManager.default.removeItem(at: tmp) }
  guard let gz = gzopen(tmp.path, "wb") else { throw NSError(domain: "gzopen", code: 1) }
  let written = bytes.withUnsafeBytes { gzwrite(gz, $0.baseAddress, UInt32($0.count)) }
  guard gzclose(gz) == Z_OK, Int(written) == bytes.count else { throw NSError(domain: "gzwrite", code: 2) }
  return [UInt8](try Data(contentsOf: tmp))
}

func bigEndian32(_ v: Int) -> [UInt8] {
  [UInt8((v >> 24) & 0xFF), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
}

/// An IDX image file: magic, count, rows, cols, pixels.
func idxImages(count: Int, rows: Int, cols: Int, magic: Int = 0x803,
               pixel: (Int, Int, Int) -> UInt8) -> [UInt8] {
  var out = bigEndian32(magic) + bigEndian32(count) + bigEndian32(rows) + bigEndian32(cols)
  for n in 0..<count { for y in 0..<rows { for x in 0..<cols { out.append(pixel(n, y, x)) } } }
  return out
}

/// An IDX label file.
func idxLabels(_ labels: [UInt8], magic: Int = 0x801) -> [UInt8] {
  bigEndian32(magic) + bigEndian32(labels.count) + labels
}

/// Asserts that `body` throws a `DatasetError` whose description names `path` and contains
/// `message`; returns the error.
@discardableResult
func assertDatasetError<T>(_ body: @autoclosure () throws -> T, path: String?, _ message: String,
                           file: StaticString = #filePath, line: UInt = #line) -> DatasetError? {
  do {
    _ = try body()
    XCTFail("expected a DatasetError containing \"\(message)\"", file: file, line: line)
    return nil
  } catch let error as DatasetError {
    let text = error.description
    if let path {
      XCTAssertTrue(text.contains(path), "\"\(text)\" does not name \(path)", file: file, line: line)
      XCTAssertEqual(error.path, path, file: file, line: line)
    }
    XCTAssertTrue(text.contains(message), "\"\(text)\" does not contain \"\(message)\"", file: file, line: line)
    return error
  } catch {
    XCTFail("expected a DatasetError, got \(error)", file: file, line: line)
    return nil
  }
}
