import Foundation
import XCTest
@testable import Engine

final class CheckpointTests: XCTestCase {
  typealias Problem = CheckpointError.Problem

  // MARK: Fixtures

  static func sample(big: Bool = false) -> Checkpoint {
    var tensors = [
      NamedTensor(name: "s1.b1.conv1.weight", shape: [2, 3], values: [1, -2, 3.5, 0, -0.0, 1e-30]),
      NamedTensor(name: "s1.b1.bn1.running_mean", shape: [3], values: [0.25, 0.5, 0.75]),
      NamedTensor(name: "empty", shape: [0, 4], values: []),
      NamedTensor(name: "scalar", shape: [], values: [42]),
      NamedTensor(name: "opt.s1.b1.conv1.weight.momentum", shape: [2, 3],
                  values: [.greatestFiniteMagnitude, -.leastNonzeroMagnitude, 7, 8, 9, 10]),
    ]
    if big {
      var rng = RandomSource(seed: 20)
      tensors.append(NamedTensor(name: "big", shape: [1000, 37],
                                 values: (0..<37_000).map { _ in Float.random(in: -1...1, using: &rng) }))
    }
    return Checkpoint(
      model: ResNetConfig(depth: 8, widthMultiplier: 0.5, residual: false),
      training: TrainConfig(epochs: 3, batchSize: 64, learningRate: 0.1, seed: .max),
      data: DataSpec(dataset: "synthetic", fraction: 0.25, subset: .stratified, path: "/data/x y"),
      history: [
        EpochRecord(epoch: 1, trainLoss: 2.3, trainAccuracy: 0.1, testLoss: 2.2, testAccuracy: 0.12,
                    learningRate: 0.1, seconds: 1.5, imagesPerSecond: 1234.5),
        EpochRecord(epoch: 2, trainLoss: 0.1, trainAccuracy: 1e-300, testLoss: 1.0 / 3,
                    testAccuracy: 0.5, learningRate: 0.05, seconds: 1.25, imagesPerSecond: 99),
      ],
      epochsCompleted: 2,
      tensors: tensors,
      metadata: ["git": "abc123", "note": "ünïcode \"quoted\"\nline 2", "": "empty key"])
  }

  var dir = ""

  override func setUpWithError() throws {
    dir = NSTemporaryDirectory() + "blockscope-ckpt-test-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
  }

  override func tearDownWithError() throws {
    #if DEBUG
    CheckpointFaultInjection.hook = nil
    #endif
    chmod(dir, 0o755)
    try? FileManager.default.removeItem(atPath: dir)
  }

  func listing() throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
  }

  /// The CheckpointError thrown by `body`, failing the test if it returns normally.
  func error(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> CheckpointError? {
    do {
      try body()
      XCTFail("expected a CheckpointError, got success", file: file, line: line)
    } catch let e as CheckpointError {
      return e
    } catch {
      XCTFail("expected a CheckpointError, got \(error)", file: file, line: line)
    }
    return nil
  }

  func decodeError(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> CheckpointError? {
    error({ _ = try Checkpoint.decode(bytes, source: "test.ckpt") }, file: file, line: line)
  }

  func u32(_ b: [UInt8], _ at: Int) -> UInt32 {
    (0..<4).reduce(UInt32(0)) { $0 | UInt32(b[at + $1]) << (8 * $1) }
  }

  func u64(_ b: [UInt8], _ at: Int) -> UInt64 {
    (0..<8).reduce(UInt64(0)) { $0 | UInt64(b[at + $1]) << (8 * $1) }
  }

  func put32(_ b: inout [UInt8], _ at: Int, _ v: UInt32) {
    for i in 0..<4 { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) }
  }

  func put64(_ b: inout [UInt8], _ at: Int, _ v: UInt64) {
    for i in 0..<8 { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) }
  }

  /// Recomputes the trailing checksum, so that a deliberate edit reaches the later checks.
  func resealed(_ bytes: [UInt8]) -> [UInt8] {
    var b = bytes
    put64(&b, b.count - 8, CRC64.referenceChecksum(Array(b[0..<(b.count - 8)])))
    return b
  }

  /// The sample's header as a JSON object.
  func sampleHeaderObject() throws -> [String: Any] {
    let b = Self.sample().encode()
    let h = Int(u32(b, 24))
    return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(b[28..<(28 + h)])) as? [String: Any])
  }

  /// Builds a file by hand: the header object with `tensors(D)` as its tensor table (D = where
  /// the data area starts, so offsets can be given relative to it), then `data` at D, then a
  /// correct checksum. Length fields are correct unless overridden.
  func assemble(_ object: [String: Any], tensors: (Int) -> [[String: Any]], data: [UInt8],
                version: UInt32 = 1, flags: UInt32 = 0) throws -> [UInt8] {
    var d = 0
    var header: [UInt8] = []
    for _ in 0..<10 {
      var o = object
      o["tensors"] = tensors(d)
      header = Array(try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]))
      let need = (28 + header.count + 63) / 64 * 64
      if need == d { break }
      d = need
    }
    var b = Array("BSCKPT\r\n".utf8) + [UInt8](repeating: 0, count: 20) + header
    b += [UInt8](repeating: 0, count: d - b.count) + data + [UInt8](repeating: 0, count: 8)
    put32(&b, 8, version)
    put32(&b, 12, flags)
    put64(&b, 16, UInt64(b.count))
    put32(&b, 24, UInt32(header.count))
    return resealed(b)
  }

  func floatBytes(_ values: [Float]) -> [UInt8] {
    values.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v.bitPattern >> (8 * $0)) } }
  }

  // MARK: CRC

  func testCRC64CheckValueAndSlicingMatchesReference() {
    XCTAssertEqual(CRC64.checksum(Array("123456789".utf8)), 0x995D_C9BB_DF19_39FA)
    XCTAssertEqual(CRC64.referenceChecksum(Array("123456789".utf8)), 0x995D_C9BB_DF19_39FA)
    XCTAssertEqual(CRC64.checksum([]), 0)
    var rng = RandomSource(seed: 139)
    for n in [1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 4099] {
      let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
      XCTAssertEqual(CRC64.checksum(bytes), CRC64.referenceChecksum(bytes), "length \(n)")
      // Unaligned start: the slicing loop uses unaligned 8-byte loads.
      let tail = Array(bytes.dropFirst())
      tail.withUnsafeBytes { raw in
        XCTAssertEqual(CRC64.checksum(raw), CRC64.referenceChecksum(tail))
      }
    }
  }

  // MARK: Round trips and layout

  func testEncodeDecodeRoundTrip() throws {
    let c = Self.sample(big: true)
    let bytes = c.encode()
    let back = try Checkpoint.decode(bytes, source: "memory")
    XCTAssertEqual(back, c)
    XCTAssertEqual(back.training.seed, UInt64.max)
    XCTAssertEqual(back.tensors.map(\.name), c.tensors.map(\.name))
    XCTAssertEqual(back.tensor(named: "scalar")?.values, [42])
    XCTAssertEqual(back.tensor(named: "s1.b1.conv1.weight")?.values[4].sign, .minus)   // -0.0 kept
    XCTAssertEqual(back.encode(), bytes, "encoding is deterministic and canonical")
    let empty = Checkpoint(model: ResNetConfig(depth: 20), training: TrainConfig(),
                           data: DataSpec(dataset: "cifar10"))
    XCTAssertEqual(try Checkpoint.decode(empty.encode(), source: "empty"), empty)
  }

  func testNonFiniteValuesAreDataAndKeepTheirBits() throws {
    let nanPayload = Float(bitPattern: 0x7FC0_1234)
    let values: [Float] = [.nan, .infinity, -.infinity, nanPayload, -.nan, .signalingNaN]
    var c = Self.sample()
    c.tensors.append(NamedTensor(name: "weird", shape: [6], values: values))
    c.history[0].trainLoss = .nan
    c.history[0].testLoss = .infinity
    c.history[1].testLoss = -.infinity
    let back = try Checkpoint.decode(c.encode(), source: "memory")
    XCTAssertEqual(back.tensor(named: "weird")?.values.map(\.bitPattern), values.map(\.bitPattern))
    XCTAssertTrue(back.history[0].trainLoss.isNaN)
    XCTAssertEqual(back.history[0].testLoss, .infinity)
    XCTAssertEqual(back.history[1].testLoss, -.infinity)
  }

  func testLayout() throws {
    let c = Self.sample()
    let b = c.encode()
    XCTAssertEqual(Array(b[0..<8]), [0x42, 0x53, 0x43, 0x4B, 0x50, 0x54, 0x0D, 0x0A])
    XCTAssertEqual(u32(b, 8), 1)
    XCTAssertEqual(u32(b, 12), 0)
    XCTAssertEqual(u64(b, 16), UInt64(b.count))
    let h = Int(u32(b, 24))
    let header = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(b[28..<(28 + h)])) as? [String: Any])
    XCTAssertEqual(Set(header.keys), ["model", "training", "data", "history", "epochsCompleted",
                                      "metadata", "tensors"])
    let entries = try XCTUnwrap(header["tensors"] as? [[String: Any]])
    XCTAssertEqual(entries.count, c.tensors.count)
    let dataStart = (28 + h + 63) / 64 * 64
    XCTAssertTrue(b[(28 + h)..<dataStart].allSatisfy { $0 == 0 })
    var previousEnd = dataStart
    for (e, t) in zip(entries, c.tensors) {
      let offset = try XCTUnwrap(e["offset"] as? Int)
      let count = try XCTUnwrap(e["count"] as? Int)
      XCTAssertEqual(e["name"] as? String, t.name)
      XCTAssertEqual(e["shape"] as? [Int], t.shape)
      XCTAssertEqual(count, t.values.count)
      XCTAssertEqual(offset % 64, 0, "\(t.name) aligned")
      XCTAssertGreaterThanOrEqual(offset, previousEnd)
      XCTAssertEqual(Array(b[offset..<(offset + 4 * count)]), floatBytes(t.values), t.name)
      previousEnd = offset + 4 * count
    }
    XCTAssertEqual(previousEnd, b.count - 8, "checksum follows the last tensor")
    XCTAssertEqual(u64(b, b.count - 8), CRC64.referenceChecksum(Array(b[0..<(b.count - 8)])))
  }

  func testSaveLoadRoundTrip() throws {
    let c = Self.sample(big: true)
    let path = dir + "/run.ckpt"
    try c.save(to: path)
    XCTAssertEqual(try Checkpoint.load(from: path), c)
    XCTAssertEqual(Array(try Data(contentsOf: URL(fileURLWithPath: path))), c.encode())
    XCTAssertEqual(try listing(), ["run.ckpt"])
  }

  func testSaveWithRelativePath() throws {
    let c = Self.sample()
    let cwd = FileManager.default.currentDirectoryPath
    XCTAssertTrue(FileManager.default.changeCurrentDirectoryPath(dir))
    defer { _ = FileManager.default.changeCurrentDirectoryPath(cwd) }
    try c.save(to: "relative.ckpt")
    XCTAssertEqual(try Checkpoint.load(from: "relative.ckpt"), c)
    XCTAssertEqual(try listing(), ["relative.ckpt"])
  }

  // MARK: Corruption

  func testEverySingleByteFlipIsDetected() throws {
    let good = Self.sample().encode()
    XCTAssertLessThan(good.count, 4096)
    for i in 0..<good.count {
      var b = good
      b[i] ^= 0xFF
      guard let e = decodeError(b) else { XCTFail("flip at \(i) decoded"); continue }
      XCTAssertEqual(e.file, "test.ckpt")
      switch (i, e.problem) {
      case (0..<8, .notACheckpoint): break
      case (8..<12, .unsupportedVersion(let found, 1)): XCTAssertNotEqual(found, 1)
      case (16..<24, .truncated), (16..<24, .trailingBytes): break
      case (12..<16, .checksumMismatch), (24..., .checksumMismatch): break
      default: XCTFail("flip at \(i): unexpected \(e)")
      }
    }
  }

  func testEveryTruncationIsDetected() throws {
    let good = Self.sample().encode()
    for n in 0..<good.count {
      guard let e = decodeError(Array(good[0..<n])) else { XCTFail("truncation to \(n) decoded"); continue }
      let expected: Problem = n < 24
        ? .truncated(fileBytes: n, expectedBytes: nil)
        : .truncated(fileBytes: n, expectedBytes: UInt64(good.count))
      XCTAssertEqual(e.problem, expected, "length \(n)")
    }
    let e = try XCTUnwrap(decodeError(Array(good.dropLast(100))))
    XCTAssertEqual(e.description,
                   "checkpoint test.ckpt: truncated: file has \(good.count - 100) bytes, header says \(good.count)")
  }

  func testTrailingBytesAreDetected() throws {
    let e = try XCTUnwrap(decodeError(Self.sample().encode() + [0]))
    guard case .trailingBytes = e.problem else { return XCTFail("\(e)") }
    XCTAssertTrue(e.description.contains("length mismatch"), e.description)
  }

  func testBadMagic() throws {
    let text = try XCTUnwrap(decodeError(Array("hello, world, this is a text file\n".utf8)))
    XCTAssertEqual(text.problem, .notACheckpoint(firstBytes: Array("hello, w".utf8)))
    XCTAssertTrue(text.description.contains("not a Blockscope checkpoint"), text.description)
    // What a text-mode transfer does: CRLF -> LF.
    var good = Self.sample().encode()
    good.remove(at: 6)
    let mangled = try XCTUnwrap(decodeError(good))
    XCTAssertTrue(mangled.description.contains("text-mode"), mangled.description)
    XCTAssertEqual(decodeError([0x42, 0x53, 0x00])?.problem, .notACheckpoint(firstBytes: [0x42, 0x53, 0x00]))
  }

  func testWrongVersion() throws {
    var b = Self.sample().encode()
    put32(&b, 8, 2)
    let e = try XCTUnwrap(decodeError(resealed(b)))
    XCTAssertEqual(e.problem, .unsupportedVersion(found: 2, supported: 1))
    XCTAssertTrue(e.description.contains("version 2"), e.description)
    XCTAssertTrue(e.description.contains("reads version 1"), e.description)
  }

  func testNonZeroFlagsWithValidChecksum() throws {
    var b = Self.sample().encode()
    put32(&b, 12, 4)
    XCTAssertEqual(decodeError(resealed(b))?.problem, .unsupportedFlags(found: 4))
  }

  func testChecksumMismatchMessage() throws {
    var b = Self.sample().encode()
    b[b.count - 20] ^= 1
    let e = try XCTUnwrap(decodeError(b))
    guard case .checksumMismatch(let stored, let computed) = e.problem else { return XCTFail("\(e)") }
    XCTAssertNotEqual(stored, computed)
    XCTAssertTrue(e.description.contains("checksum mismatch"), e.description)
  }

  func testGarbageJSONWithValidChecksum() throws {
    var b = Self.sample().encode()
    let h = Int(u32(b, 24))
    let garbage = Array("{\"model\": nope".utf8)
    for i in 0..<h { b[28 + i] = i < garbage.count ? garbage[i] : 0x20 }
    let e = try XCTUnwrap(decodeError(resealed(b)))
    guard case .badHeader(let what) = e.problem else { return XCTFail("\(e)") }
    XCTAssertTrue(what.contains("malformed JSON"), what)
    XCTAssertTrue(e.description.hasPrefix("checkpoint test.ckpt: bad header: malformed JSON"), e.description)
  }

  func testHeaderMissingKeyAndWrongTypes() throws {
    var object = try sampleHeaderObject()
    object["training"] = nil
    var b = try assemble(object, tensors: { _ in [] }, data: [])
    var e = try XCTUnwrap(decodeError(b))
    XCTAssertTrue(e.description.contains("missing key \"training\""), e.description)

    object = try sampleHeaderObject()
    object["epochsCompleted"] = "two"
    b = try assemble(object, tensors: { _ in [] }, data: [])
    e = try XCTUnwrap(decodeError(b))
    XCTAssertTrue(e.description.contains("epochsCompleted"), e.description)

    object = try sampleHeaderObject()
    object["epochsCompleted"] = -1
    b = try assemble(object, tensors: { _ in [] }, data: [])
    XCTAssertEqual(decodeError(b)?.problem, .badHeader("epochsCompleted -1 is negative"))

    // Not UTF-8 / not an object.
    b = Self.sample().encode()
    b[28] = 0xC3
    e = try XCTUnwrap(decodeError(resealed(b)))
    guard case .badHeader = e.problem else { return XCTFail("\(e)") }
  }

  func testHeaderLengthBeyondFileWithValidChecksum() throws {
    var b = Self.sample().encode()
    put32(&b, 24, UInt32.max)
    let e = try XCTUnwrap(decodeError(resealed(b)))
    guard case .badHeader(let what) = e.problem else { return XCTFail("\(e)") }
    XCTAssertTrue(what.contains("does not fit"), what)
  }

  func testHandAssembledFileDecodes() throws {
    // Sanity check of the `assemble` helper the following tests rely on.
    let object = try sampleHeaderObject()
    let b = try assemble(object, tensors: { d in
      [["name": "a", "shape": [2], "offset": d, "count": 2],
       ["name": "b", "shape": [1, 1], "offset": d + 64, "count": 1]]
    }, data: floatBytes([1, 2]) + [UInt8](repeating: 0, count: 56) + floatBytes([3]))
    let c = try Checkpoint.decode(b, source: "crafted")
    XCTAssertEqual(c.tensors, [NamedTensor(name: "a", shape: [2], values: [1, 2]),
                               NamedTensor(name: "b", shape: [1, 1], values: [3])])
  }

  /// Decodes a hand-built file with one tensor table and 256 bytes of data; returns the problem.
  func tensorTableProblem(_ table: @escaping (Int) -> [[String: Any]], data: [UInt8]? = nil,
                          file: StaticString = #filePath, line: UInt = #line) throws -> Problem? {
    let b = try assemble(try sampleHeaderObject(), tensors: table,
                         data: data ?? [UInt8](repeating: 0, count: 256))
    return decodeError(b, file: file, line: line)?.problem
  }

  func testTensorOffsetOutOfRangeWithValidChecksum() throws {
    let p = try tensorTableProblem { d in [["name": "w", "shape": [4], "offset": d + 1024, "count": 4]] }
    guard case .badTensor("w", let what)? = p else { return XCTFail("\(String(describing: p))") }
    XCTAssertTrue(what.contains("out of range"), what)
    // Ends exactly one float past the data area (into the checksum).
    let q = try tensorTableProblem { d in [["name": "w", "shape": [64], "offset": d + 64, "count": 64]] }
    guard case .badTensor("w", _)? = q else { return XCTFail("\(String(describing: q))") }
    // In range but the count would overflow offset + 4 * count.
    let huge = Int.max / 2
    let r = try tensorTableProblem { d in [["name": "w", "shape": [huge], "offset": d, "count": huge]] }
    guard case .badTensor("w", _)? = r else { return XCTFail("\(String(describing: r))") }
    let s = try tensorTableProblem { _ in [["name": "w", "shape": [1], "offset": Int.max - 63, "count": 1]] }
    guard case .badTensor("w", _)? = s else { return XCTFail("\(String(describing: s))") }
  }

  func testTensorTableErrors() throws {
    func expect(_ needle: String, _ table: @escaping (Int) -> [[String: Any]],
                line: UInt = #line) throws {
      let p = try tensorTableProblem(table, line: line)
      guard case .badTensor(_, let what)? = p else {
        return XCTFail("expected a tensor error, got \(String(describing: p))", line: line)
      }
      XCTAssertTrue(what.contains(needle), "\(what) should contain \(needle)", line: line)
    }
    try expect("before the data area") { d in [["name": "w", "shape": [1], "offset": d - 64, "count": 1]] }
    try expect("multiple of 64") { d in [["name": "w", "shape": [1], "offset": d + 4, "count": 1]] }
    try expect("multiple of 64") { _ in [["name": "w", "shape": [1], "offset": -64, "count": 1]] }
    try expect("count is 3") { d in [["name": "w", "shape": [2, 2], "offset": d, "count": 3]] }
    try expect("negative") { d in [["name": "w", "shape": [-1, -4], "offset": d, "count": 4]] }
    try expect("negative") { d in [["name": "w", "shape": [0], "offset": d, "count": -1]] }
    try expect("too many elements") { d in
      [["name": "w", "shape": [Int.max, 4], "offset": d, "count": 4]]
    }
    try expect("overlap") { d in
      [["name": "a", "shape": [32], "offset": d, "count": 32],
       ["name": "b", "shape": [1], "offset": d + 64, "count": 1]]
    }
    try expect("overlap") { d in
      [["name": "a", "shape": [4], "offset": d, "count": 4],
       ["name": "b", "shape": [4], "offset": d, "count": 4]]
    }
    try expect("duplicate name") { d in
      [["name": "a", "shape": [1], "offset": d, "count": 1],
       ["name": "a", "shape": [1], "offset": d + 64, "count": 1]]
    }
    try expect("empty name") { d in [["name": "", "shape": [1], "offset": d, "count": 1]] }
    // An empty tensor may sit where the next one starts; that is not an overlap.
    let b = try assemble(try sampleHeaderObject(), tensors: { d in
      [["name": "e", "shape": [0], "offset": d, "count": 0],
       ["name": "a", "shape": [1], "offset": d, "count": 1]]
    }, data: floatBytes([5]))
    XCTAssertEqual(try Checkpoint.decode(b, source: "crafted").tensors,
                   [NamedTensor(name: "e", shape: [0], values: []),
                    NamedTensor(name: "a", shape: [1], values: [5])])
  }

  func testNonZeroPaddingWithValidChecksum() throws {
    var data = [UInt8](repeating: 0, count: 128)
    data[100] = 1   // between tensor "a" (4 bytes at D) and the checksum
    let p = try tensorTableProblem({ d in [["name": "a", "shape": [1], "offset": d, "count": 1]] },
                                   data: data)
    guard case .badHeader(let what)? = p else { return XCTFail("\(String(describing: p))") }
    XCTAssertTrue(what.contains("padding"), what)
  }

  func testFuzzedFilesNeverDecodeWrongly() throws {
    // Random multi-byte damage and random garbage: always an error, never a trap.
    let good = Self.sample().encode()
    var rng = RandomSource(seed: 441)
    for _ in 0..<300 {
      var b = good
      for _ in 0..<Int.random(in: 1...8, using: &rng) {
        b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
      }
      if b == good { continue }
      _ = decodeError(b)
      // Past the checksum the header and tensor checks must hold: a CheckpointError, or (damage
      // inside tensor data, or header bytes that still spell a valid header) a checkpoint that
      // is consistent, i.e. survives its own encode/decode unchanged.
      do {
        let decoded = try Checkpoint.decode(resealed(b), source: "fuzz")
        let bytes = decoded.encode()   // compared as bytes: damaged data may hold NaN
        XCTAssertEqual(try Checkpoint.decode(bytes, source: "again").encode(), bytes)
      } catch is CheckpointError {
      } catch {
        XCTFail("resealed damage gave \(type(of: error)): \(error)")
      }
    }
    for n in [0, 1, 8, 35, 36, 100, 1000] {
      _ = decodeError((0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) })
    }
  }

  // MARK: Validation

  func testInvalidCheckpointIsNotSaved() throws {
    var c = Self.sample()
    c.tensors[0].values.removeLast()
    let path = dir + "/bad.ckpt"
    let e = try XCTUnwrap(error { try c.save(to: path) })
    guard case .invalid(let what) = e.problem else { return XCTFail("\(e)") }
    XCTAssertTrue(what.contains("s1.b1.conv1.weight"), what)
    XCTAssertEqual(try listing(), [])
    XCTAssertThrowsError(try c.validate())
    XCTAssertThrowsError(try c.tensors[0].validate())

    var d = Self.sample()
    d.tensors.append(d.tensors[1])
    XCTAssertThrowsError(try d.save(to: path)) { XCTAssertTrue("\($0)".contains("duplicate"), "\($0)") }
    XCTAssertEqual(try listing(), [])
    XCTAssertNoThrow(try Self.sample().validate())
  }

  // MARK: Saving and loading files

  func testSaveIntoMissingDirectoryFailsClearly() throws {
    let path = dir + "/no/such/dir/run.ckpt"
    let e = try XCTUnwrap(error { try Self.sample().save(to: path) })
    XCTAssertEqual(e.file, path)
    XCTAssertEqual(e.problem, .io(operation: "save", syscall: "stat", path: dir + "/no/such/dir", errno: ENOENT))
    XCTAssertTrue(e.description.contains("No such file or directory"), e.description)
    XCTAssertTrue(e.description.contains(dir + "/no/such/dir"), e.description)
    // A regular file where the directory should be.
    XCTAssertTrue(FileManager.default.createFile(atPath: dir + "/plain", contents: Data([1])))
    let f = try XCTUnwrap(error { try Self.sample().save(to: dir + "/plain/run.ckpt") })
    XCTAssertTrue(f.description.contains("ENOTDIR"), f.description)
  }

  func testSaveReplacesExistingFileAtomically() throws {
    let path = dir + "/run.ckpt"
    XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data("old contents".utf8)))
    var c = Self.sample()
    try c.save(to: path)
    XCTAssertEqual(try Checkpoint.load(from: path), c)
    c.epochsCompleted = 3
    c.metadata["second"] = "yes"
    try c.save(to: path)
    XCTAssertEqual(try Checkpoint.load(from: path), c)
    XCTAssertEqual(try listing(), ["run.ckpt"], "no temporary files left behind")
  }

  func testSaveOverDirectoryFailsAndCleansUp() throws {
    let path = dir + "/taken"
    try FileManager.default.createDirectory(atPath: path + "/inside", withIntermediateDirectories: true)
    let e = try XCTUnwrap(error { try Self.sample().save(to: path) })
    guard case .io(_, "rename", _, _) = e.problem else { return XCTFail("\(e)") }
    XCTAssertEqual(try listing(), ["taken"])
  }

  func testSaveIntoReadOnlyDirectoryLeavesOldFile() throws {
    guard geteuid() != 0 else {
      throw XCTSkip("running as root: permissions do not apply (see the fault-injection tests)")
    }
    let path = dir + "/run.ckpt"
    try Self.sample().save(to: path)
    let old = try Data(contentsOf: URL(fileURLWithPath: path))
    XCTAssertEqual(chmod(dir, 0o555), 0)
    var c = Self.sample()
    c.epochsCompleted = 9
    let e = try XCTUnwrap(error { try c.save(to: path) })
    guard case .io("save", "open", _, EACCES) = e.problem else { return XCTFail("\(e)") }
    XCTAssertTrue(e.description.contains("Permission denied"), e.description)
    XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), old)
    XCTAssertEqual(try listing(), ["run.ckpt"])
  }

  func testSaveWhereFilesCannotBeCreated() throws {
    // /proc refuses new files even for root.
    let e = try XCTUnwrap(error { try Self.sample().save(to: "/proc/blockscope-test.ckpt") })
    guard case .io("save", "open", let tmp, _) = e.problem else { return XCTFail("\(e)") }
    XCTAssertTrue(tmp.hasPrefix("/proc/.blockscope-test.ckpt.tmp-\(getpid())-"), tmp)
  }

  func testLoadErrorsNameTheFile() throws {
    let missing = dir + "/missing.ckpt"
    let e = try XCTUnwrap(error { _ = try Checkpoint.load(from: missing) })
    XCTAssertEqual(e.problem, .io(operation: "load", syscall: "open", path: missing, errno: ENOENT))
    XCTAssertTrue(e.description.hasPrefix("checkpoint \(missing): load failed: open("), e.description)
    XCTAssertNotNil(error { _ = try Checkpoint.load(from: dir) })   // a directory

    let path = dir + "/short.ckpt"
    let good = Self.sample().encode()
    XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(good.prefix(500))))
    let t = try XCTUnwrap(error { _ = try Checkpoint.load(from: path) })
    XCTAssertEqual(t.description, "checkpoint \(path): truncated: file has 500 bytes, header says \(good.count)")
  }

  // MARK: Injected faults (debug builds)

  #if DEBUG
  /// Saves a first checkpoint, injects `fault` for the second save into `dir`, and checks that
  /// it fails with `syscall`, the first file is intact and no temporary file is left.
  func checkFailedSave(_ syscall: String, errno code: Int32, line: UInt = #line,
                       _ fault: @escaping CheckpointFaultInjection.Hook) throws -> CheckpointError? {
    let path = dir + "/run.ckpt"
    let first = Self.sample()
    try first.save(to: path)
    var second = Self.sample(big: true)
    second.epochsCompleted = 7
    let prefix = dir
    CheckpointFaultInjection.hook = { s, p in p.hasPrefix(prefix) ? fault(s, p) : nil }
    defer { CheckpointFaultInjection.hook = nil }
    let e = error({ try second.save(to: path) }, line: line)
    CheckpointFaultInjection.hook = nil
    if let e {
      XCTAssertEqual(e.file, path, line: line)
      guard case .io("save", syscall, _, code) = e.problem else {
        XCTFail("expected \(syscall) to fail with errno \(code), got \(e)", line: line)
        return e
      }
    }
    XCTAssertEqual(try Checkpoint.load(from: path), first, "old checkpoint intact", line: line)
    XCTAssertEqual(try listing(), ["run.ckpt"], "temporary file removed", line: line)
    return e
  }

  func testWriteFailingWithENOSPC() throws {
    let e = try checkFailedSave("write", errno: ENOSPC) { s, _ in s == "write" ? .fail(ENOSPC) : nil }
    let text = try XCTUnwrap(e).description
    XCTAssertTrue(text.contains("write("), text)
    XCTAssertTrue(text.contains("No space left on device (ENOSPC)"), text)
    XCTAssertTrue(text.contains("not modified"), text)
  }

  func testDiskFullPartWayThrough() throws {
    // Short writes of 1000 bytes, then ENOSPC on the 20th call.
    final class Counter: @unchecked Sendable { var n = 0 }
    let calls = Counter()
    _ = try checkFailedSave("write", errno: ENOSPC) { s, _ in
      guard s == "write" else { return nil }
      calls.n += 1
      return calls.n >= 40 ? .fail(ENOSPC) : .shortWrite(1000)
    }
    XCTAssertGreaterThan(calls.n, 20)
  }

  func testFsyncCloseRenameAndOpenFailures() throws {
    _ = try checkFailedSave("fsync", errno: EIO) { s, _ in s == "fsync" ? .fail(EIO) : nil }
    _ = try checkFailedSave("close", errno: EIO) { s, _ in s == "close" ? .fail(EIO) : nil }
    _ = try checkFailedSave("rename", errno: EXDEV) { s, _ in s == "rename" ? .fail(EXDEV) : nil }
    _ = try checkFailedSave("open", errno: EMFILE) { s, _ in s == "open" ? .fail(EMFILE) : nil }
    _ = try checkFailedSave("open", errno: EDQUOT) { s, _ in s == "open" ? .fail(EDQUOT) : nil }
  }

  func testShortWritesAndEINTRAreRetried() throws {
    final class Counter: @unchecked Sendable { var interrupts = 0; var writes = 0 }
    let counter = Counter()
    let prefix = dir
    CheckpointFaultInjection.hook = { s, p in
      guard p.hasPrefix(prefix) else { return nil }
      if s == "write" {
        counter.writes += 1
        if counter.writes % 3 == 0 { counter.interrupts += 1; return .fail(EINTR) }
        return .shortWrite(777)
      }
      if ["open", "fsync", "rename", "fsync-dir", "read"].contains(s), counter.interrupts < 100 {
        counter.interrupts += 1
        return counter.interrupts % 2 == 0 ? .fail(EINTR) : nil
      }
      return nil
    }
    defer { CheckpointFaultInjection.hook = nil }
    let c = Self.sample(big: true)
    try c.save(to: dir + "/run.ckpt")
    XCTAssertEqual(try Checkpoint.load(from: dir + "/run.ckpt"), c)
    XCTAssertGreaterThan(counter.writes, c.encode().count / 777)
    XCTAssertGreaterThan(counter.interrupts, 10)
    XCTAssertEqual(try listing(), ["run.ckpt"])
  }

  func testDirectoryFsyncFailureReportsNotDurable() throws {
    let prefix = dir
    CheckpointFaultInjection.hook = { s, p in p.hasPrefix(prefix) && s == "fsync-dir" ? .fail(EIO) : nil }
    defer { CheckpointFaultInjection.hook = nil }
    let path = dir + "/run.ckpt"
    let e = try XCTUnwrap(error { try Self.sample().save(to: path) })
    XCTAssertEqual(e.problem, .notDurable(syscall: "fsync-dir", path: dir, errno: EIO))
    CheckpointFaultInjection.hook = nil
    XCTAssertEqual(try Checkpoint.load(from: path), Self.sample(), "the new file is in place")
    // EINVAL (file system cannot fsync directories) is not an error.
    CheckpointFaultInjection.hook = { s, p in p.hasPrefix(prefix) && s == "fsync-dir" ? .fail(EINVAL) : nil }
    XCTAssertNoThrow(try Self.sample().save(to: path))
  }

  func testReadFailureOnLoad() throws {
    let path = dir + "/run.ckpt"
    try Self.sample().save(to: path)
    CheckpointFaultInjection.hook = { s, p in p == path && s == "read" ? .fail(EIO) : nil }
    defer { CheckpointFaultInjection.hook = nil }
    let e = try XCTUnwrap(error { _ = try Checkpoint.load(from: path) })
    XCTAssertEqual(e.problem, .io(operation: "load", syscall: "read", path: path, errno: EIO))
    XCTAssertTrue(e.description.contains("Input/output error (EIO)"), e.description)
  }
  #endif

  // MARK: Speed (informational)

  func testLargeCheckpointThroughput() throws {
    let n = 4 << 20   // 16 MB of floats
    var c = Self.sample()
    c.tensors.append(NamedTensor(name: "large", shape: [n], values: (0..<n).map { Float($0 & 1023) }))
    let path = dir + "/large.ckpt"
    let t0 = Date()
    try c.save(to: path)
    let t1 = Date()
    let back = try Checkpoint.load(from: path)
    let t2 = Date()
    XCTAssertEqual(back.tensor(named: "large")?.values.count, n)
    XCTAssertEqual(back, c)
    let mb = Double(4 * n) / 1e6
    print(String(format: "checkpoint %.0f MB: save %.2f s, load %.2f s", mb,
                 t1.timeIntervalSince(t0), t2.timeIntervalSince(t1)))
  }
}
