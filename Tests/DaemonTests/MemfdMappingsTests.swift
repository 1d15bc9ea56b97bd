import Foundation
import Glibc
import Wire
import XCTest

@testable import Daemon

/// The memfd mappings a connection keeps between its frames (SharedBatchMapping.swift).
final class MemfdMappingsTests: XCTestCase {
  // <linux/memfd.h>, <linux/fcntl.h>
  private let allowSealing: UInt32 = 0x0002
  private let addSeals: Int32 = 1024 + 9
  private let sealShrink: Int32 = 0x0002
  // glibc's memfd_create (2.27+), which Swift's Glibc module does not export.
  private static let memfdCreate = unsafeBitCast(
    dlsym(UnsafeMutableRawPointer(bitPattern: 0), "memfd_create"),
    to: (@convention(c) (UnsafePointer<CChar>, UInt32) -> Int32).self)

  /// A sealed memfd holding `values`.
  private func memfd(_ values: [Float]) throws -> Int32 {
    let fd = Self.memfdCreate("test-batch", allowSealing)
    XCTAssertGreaterThanOrEqual(fd, 0)
    try write(fd, values)
    XCTAssertEqual(fcntl(fd, addSeals, sealShrink), 0)
    return fd
  }

  private func write(_ fd: Int32, _ values: [Float]) throws {
    let written = values.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    XCTAssertEqual(written, values.count * 4)
  }

  private func tensor(_ count: Int) -> SessionBatchRequest.SharedTensor {
    SessionBatchRequest.SharedTensor(name: "x", dtype: .f32, shape: [count], offset: 0)
  }

  private func floats(_ m: SharedBatchMapping) -> [Float] {
    Array(m.bytes(at: 0).bindMemory(to: Float.self))
  }

  func testAKeptMappingSeesNewBytesAndIsReplacedWhenTheFileGrows() throws {
    let mappings = MemfdMappings()
    let fd = try memfd((0..<1024).map(Float.init))
    defer { close(fd) }
    let first = try SharedBatchMapping(fd, tensors: [tensor(1024)], reusing: mappings)
    XCTAssertEqual(floats(first), (0..<1024).map(Float.init))
    // The client writes its next batch into the same memfd: the kept mapping shows it.
    try write(fd, (0..<1024).map { Float(-$0) })
    let second = try SharedBatchMapping(fd, tensors: [tensor(1024)], reusing: mappings)
    XCTAssertEqual(floats(second), (0..<1024).map { Float(-$0) })
    XCTAssertEqual(mappings.count, 1)
    // The file grows (a larger batch): mapped again, whole, and still one kept.
    XCTAssertEqual(ftruncate(fd, 4 * 4096), 0)
    try write(fd, (0..<4096).map { Float($0) * 0.5 })
    let grown = try SharedBatchMapping(fd, tensors: [tensor(4096)], reusing: mappings)
    XCTAssertEqual(floats(grown), (0..<4096).map { Float($0) * 0.5 })
    XCTAssertEqual(mappings.count, 1)
    // Offsets are still checked against the file, not the kept mapping.
    XCTAssertThrowsError(try SharedBatchMapping(fd, tensors: [tensor(4097)], reusing: mappings))
  }

  func testAtMostFourMemfdsAreKept() throws {
    let mappings = MemfdMappings()
    var fds: [Int32] = []
    defer { fds.forEach { close($0) } }
    for i in 0..<6 {
      fds.append(try memfd(Array(repeating: Float(i), count: 64)))
      let m = try SharedBatchMapping(fds[i], tensors: [tensor(64)], reusing: mappings)
      XCTAssertEqual(floats(m), Array(repeating: Float(i), count: 64))
      XCTAssertEqual(mappings.count, min(i + 1, MemfdMappings.maxFiles))
    }
  }

  func testAClosedConnectionDropsWhatItKept() {
    let scope = ConnectionScope()
    weak var kept: MemfdMappings?
    do {
      let made = scope.object(MemfdMappings.self) { MemfdMappings() }
      kept = made
      XCTAssertTrue(scope.object(MemfdMappings.self) { MemfdMappings() } === made)
    }
    XCTAssertNotNil(kept)
    scope.close()
    XCTAssertNil(kept)
    XCTAssertNil(scope.object(MemfdMappings.self) { MemfdMappings() })
  }
}
