import Foundation
import XCTest

@testable import Engine

final class DatasetLoaderTests: XCTestCase {
  // MARK: - CIFAR crafting

  /// Pixel value of channel c at plane position p of record r of file f.
  static func cifarPixel(file f: Int, record r: Int, channel c: Int, position p: Int) -> UInt8 {
    UInt8((r * 7 + c * 85 + p * 3 + f * 31) & 0xFF)
  }

  static func cifarRecords(file f: Int, labels: [[UInt8]]) -> [UInt8] {
    var out = [UInt8]()
    for (r, labelBytes) in labels.enumerated() {
      out += labelBytes
      for c in 0..<3 { for p in 0..<1024 { out.append(cifarPixel(file: f, record: r, channel: c, position: p)) } }
    }
    return out
  }

  static let cifar10TrainCounts = [3, 2, 1, 2, 3]

  /// CIFAR-10 files under `dir`; label of global train record i is (3 i) % 10, test (i + 5) % 10.
  static func writeCIFAR10(_ s: DatasetScratch, dir: String = "c10") throws {
    var i = 0
    for (f, n) in cifar10TrainCounts.enumerated() {
      let labels = (0..<n).map { _ -> [UInt8] in defer { i += 1 }; return [UInt8((3 * i) % 10)] }
      try s.write("\(dir)/data_batch_\(f + 1).bin", cifarRecords(file: f, labels: labels))
    }
    try s.write("\(dir)/test_batch.bin", cifarRecords(file: 9, labels: [[5], [6]]))
  }

  func checkHWC(_ ds: Dataset, example n: Int, file f: Int, record r: Int,
                line: UInt = #line) {
    for y in 0..<32 {
      for x in 0..<32 {
        for c in 0..<3 {
          let got = ds.pixels[((n * 32 + y) * 32 + x) * 3 + c]
          let want = Self.cifarPixel(file: f, record: r, channel: c, position: y * 32 + x)
          if got != want {
            XCTFail("example \(n) y \(y) x \(x) c \(c): \(got) != \(want)", line: line)
            return
          }
        }
      }
    }
  }

  // MARK: - CIFAR-10

  func testCIFAR10LayoutLabelsAndIds() throws {
    let s = try DatasetScratch()
    try Self.writeCIFAR10(s)
    let splits = try CIFAR10.load(directory: s.file("c10"))
    let train = splits.train, test = splits.test
    XCTAssertEqual(train.count, 11)
    XCTAssertEqual(test.count, 2)
    for ds in [train, test] {
      XCTAssertEqual(ds.name, "cifar10")
      XCTAssertEqual([ds.height, ds.width, ds.channels, ds.numClasses], [32, 32, 3, 10])
      XCTAssertEqual(ds.pixels.count, ds.count * 3072)
    }
    XCTAssertEqual(train.labels, (0..<11).map { Int32((3 * $0) % 10) })
    XCTAssertEqual(train.ids, Array(0..<11))
    XCTAssertEqual(test.labels, [5, 6])
    XCTAssertEqual(test.ids, [0, 1])
    // Every example: CHW planes of its record -> HWC, in file order across the batches.
    var n = 0
    for (f, count) in Self.cifar10TrainCounts.enumerated() {
      for r in 0..<count { checkHWC(train, example: n, file: f, record: r); n += 1 }
    }
    checkHWC(test, example: 0, file: 9, record: 0)
    checkHWC(test, example: 1, file: 9, record: 1)
    // Spot check against the raw formula: example 3 is file 1 record 0; (y 2, x 5, green).
    let position = 2 * 32 + 5
    let expected = UInt8((85 + position * 3 + 31) & 0xFF)
    XCTAssertEqual(train.pixels[3 * 3072 + position * 3 + 1], expected)
  }

  func testCIFAR10ParentDirectoryAndLoaderSpec() throws {
    let s = try DatasetScratch()
    try Self.writeCIFAR10(s, dir: "cifar-10-batches-bin")
    let direct = try CIFAR10.load(directory: s.path)
    XCTAssertEqual(direct.train.count, 11)
    let viaSpec = try DatasetLoader.load(DataSpec(dataset: "cifar10", path: s.path))
    XCTAssertEqual(viaSpec.train.pixels, direct.train.pixels)
    XCTAssertEqual(viaSpec.train.labels, direct.train.labels)
    XCTAssertEqual(viaSpec.test.ids, [0, 1])
    let spelled = try DatasetLoader.load(DataSpec(dataset: "CIFAR-10", path: s.path + "/"))
    XCTAssertEqual(spelled.train.count, 11)
  }

  func testCIFARPathRequired() {
    for name in ["cifar10", "cifar100", "cifar100-coarse"] {
      assertDatasetError(try DatasetLoader.load(DataSpec(dataset: name)), path: nil, "no data path given")
      assertDatasetError(try DatasetLoader.load(DataSpec(dataset: name, path: "")), path: nil, "\(name): no data path")
    }
  }

  func testCIFAR10MissingFiles() throws {
    let s = try DatasetScratch()
    try Self.writeCIFAR10(s)
    try s.remove("c10/test_batch.bin")
    assertDatasetError(try CIFAR10.load(directory: s.file("c10")), path: s.file("c10/test_batch.bin"), "missing")
    try s.remove("c10/data_batch_3.bin")
    assertDatasetError(try CIFAR10.load(directory: s.file("c10")), path: s.file("c10/data_batch_3.bin"), "missing")
    // Neither the directory nor its cifar-10-batches-bin child has the files.
    assertDatasetError(try CIFAR10.load(directory: s.path), path: s.file("data_batch_1.bin"),
                       "missing (nor \(s.file("cifar-10-batches-bin/data_batch_1.bin")))")
    assertDatasetError(try CIFAR10.load(directory: s.file("nowhere")), path: s.file("nowhere"), "missing")
    assertDatasetError(try CIFAR10.load(directory: s.file("c10/data_batch_1.bin")),
                       path: s.file("c10/data_batch_1.bin"), "not a directory")
  }

  func testCIFARTruncated() throws {
    let s = try DatasetScratch()
    try Self.writeCIFAR10(s)
    let full = Self.cifarRecords(file: 0, labels: Array(repeating: [1], count: 10))
    let path = try s.write("c10/data_batch_2.bin", Array(full.dropLast()))  // 30729 bytes
    assertDatasetError(try CIFAR10.load(directory: s.file("c10")), path: path,
                       "truncated: 30729 bytes is not a multiple of the 3073-byte record")
    try s.write("c10/data_batch_2.bin", [])
    assertDatasetError(try CIFAR10.load(directory: s.file("c10")), path: path, "truncated: empty file")
  }

  func testCIFARLabelOutOfRange() throws {
    let s = try DatasetScratch()
    try Self.writeCIFAR10(s)
    var labels = Array(repeating: [UInt8(3)], count: 60)
    labels[57] = [12]
    let path = try s.write("c10/data_batch_5.bin", Self.cifarRecords(file: 4, labels: labels))
    assertDatasetError(try CIFAR10.load(directory: s.file("c10")), path: path,
                       "label 12 out of range 0..<10 at record 57")
  }

  // MARK: - CIFAR-100

  func testCIFAR100FineAndCoarse() throws {
    let s = try DatasetScratch()
    let trainLabels: [[UInt8]] = [[19, 99], [0, 0], [7, 42], [3, 64]]
    try s.write("cifar-100-binary/train.bin", Self.cifarRecords(file: 0, labels: trainLabels))
    try s.write("cifar-100-binary/test.bin", Self.cifarRecords(file: 1, labels: [[1, 2], [5, 77]]))
    for dir in [s.path, s.file("cifar-100-binary")] {
      let fine = try CIFAR100.load(directory: dir)
      XCTAssertEqual(fine.train.labels, [99, 0, 42, 64])
      XCTAssertEqual(fine.test.labels, [2, 77])
      XCTAssertEqual(fine.train.numClasses, 100)
      XCTAssertEqual(fine.train.name, "cifar100")
      XCTAssertEqual(fine.train.ids, [0, 1, 2, 3])
      XCTAssertEqual(fine.test.ids, [0, 1])
      for r in 0..<4 { checkHWC(fine.train, example: r, file: 0, record: r) }
      for r in 0..<2 { checkHWC(fine.test, example: r, file: 1, record: r) }
      let coarse = try CIFAR100.load(directory: dir, labels: .coarse)
      XCTAssertEqual(coarse.train.labels, [19, 0, 7, 3])
      XCTAssertEqual(coarse.test.labels, [1, 5])
      XCTAssertEqual(coarse.train.numClasses, 20)
      XCTAssertEqual(coarse.train.pixels, fine.train.pixels)
    }
    let viaSpec = try DatasetLoader.load(DataSpec(dataset: "cifar100-coarse", path: s.path))
    XCTAssertEqual(viaSpec.train.labels, [19, 0, 7, 3])
    XCTAssertEqual(try DatasetLoader.load(DataSpec(dataset: "cifar100", path: s.path)).train.labels, [99, 0, 42, 64])
  }

  func testCIFAR100Errors() throws {
    let s = try DatasetScratch()
    // Coarse label 20 is out of range for coarse only; the fine label is fine.
    let train = try s.write("train.bin", Self.cifarRecords(file: 0, labels: [[1, 2], [20, 50]]))
    try s.write("test.bin", Self.cifarRecords(file: 1, labels: [[1, 2]]))
    XCTAssertEqual(try CIFAR100.load(directory: s.path).train.labels, [2, 50])
    assertDatasetError(try CIFAR100.load(directory: s.path, labels: .coarse), path: train,
                       "label 20 out of range 0..<20 at record 1")
    try s.write("train.bin", Self.cifarRecords(file: 0, labels: [[1, 100]]))
    assertDatasetError(try CIFAR100.load(directory: s.path), path: train, "label 100 out of range 0..<100 at record 0")
    // A CIFAR-10 sized record is not a CIFAR-100 record.
    try s.write("train.bin", Self.cifarRecords(file: 0, labels: [[1], [2]]))
    assertDatasetError(try CIFAR100.load(directory: s.path), path: train,
                       "truncated: 6146 bytes is not a multiple of the 3074-byte record")
    try s.remove("test.bin")
    try s.write("train.bin", Self.cifarRecords(file: 0, labels: [[1, 2]]))
    assertDatasetError(try CIFAR100.load(directory: s.path), path: s.file("test.bin"), "missing")
  }

  // MARK: - IDX / Fashion-MNIST

  static func idxPixel(_ n: Int, _ y: Int, _ x: Int) -> UInt8 { UInt8((n * 50 + y * 10 + x) & 0xFF) }

  /// A small Fashion-MNIST-like directory: 3 train and 2 test images of 4 rows x 5 cols.
  static func writeIDX(_ s: DatasetScratch, gzipTrain: Bool, gzipTest: Bool) throws {
    func put(_ name: String, _ bytes: [UInt8], _ gz: Bool) throws {
      if gz { try s.write(name + ".gz", gzipped(bytes)) } else { try s.write(name, bytes) }
    }
    try put("train-images-idx3-ubyte", idxImages(count: 3, rows: 4, cols: 5, pixel: idxPixel), gzipTrain)
    try put("train-labels-idx1-ubyte", idxLabels([9, 0, 4]), gzipTrain)
    try put("t10k-images-idx3-ubyte", idxImages(count: 2, rows: 4, cols: 5, pixel: { idxPixel($0 + 100, $1, $2) }), gzipTest)
    try put("t10k-labels-idx1-ubyte", idxLabels([1, 2]), gzipTest)
  }

  func testIDXPlainGzipAndMixed() throws {
    for (gzTrain, gzTest) in [(false, false), (true, true), (true, false), (false, true)] {
      let s = try DatasetScratch()
      try Self.writeIDX(s, gzipTrain: gzTrain, gzipTest: gzTest)
      let splits = try FashionMNIST.load(directory: s.path)
      let train = splits.train, test = splits.test
      XCTAssertEqual([train.height, train.width, train.channels, train.numClasses], [4, 5, 1, 10])
      XCTAssertEqual(train.name, "fashion-mnist")
      XCTAssertEqual(train.labels, [9, 0, 4])
      XCTAssertEqual(train.ids, [0, 1, 2])
      XCTAssertEqual(test.labels, [1, 2])
      XCTAssertEqual(test.ids, [0, 1])
      for n in 0..<3 { for y in 0..<4 { for x in 0..<5 {
        XCTAssertEqual(train.pixels[(n * 4 + y) * 5 + x], Self.idxPixel(n, y, x))
      } } }
      for n in 0..<2 { for y in 0..<4 { for x in 0..<5 {
        XCTAssertEqual(test.pixels[(n * 4 + y) * 5 + x], Self.idxPixel(n + 100, y, x))
      } } }
      let viaSpec = try DatasetLoader.load(DataSpec(dataset: "fashion-mnist", path: s.path))
      XCTAssertEqual(viaSpec.train.pixels, train.pixels)
    }
  }

  func testIDXBadMagic() throws {
    let s = try DatasetScratch()
    try Self.writeIDX(s, gzipTrain: false, gzipTest: true)
    let images = try s.write("train-images-idx3-ubyte", idxLabels([1, 2, 3]))
    assertDatasetError(try FashionMNIST.load(directory: s.path), path: images,
                       "bad IDX magic 0x00000801 (expected 0x00000803)")
    try Self.writeIDX(s, gzipTrain: false, gzipTest: true)
    let labels = try s.write("t10k-labels-idx1-ubyte.gz", gzipped(idxImages(count: 2, rows: 1, cols: 1) { _, _, _ in 0 }))
    assertDatasetError(try FashionMNIST.load(directory: s.path), path: labels,
                       "bad IDX magic 0x00000803 (expected 0x00000801)")
  }

  func testIDXLabelOutOfRange() throws {
    let s = try DatasetScratch()
    try Self.writeIDX(s, gzipTrain: true, gzipTest: false)
    try s.write("train-images-idx3-ubyte.gz", gzipped(idxImages(count: 60, rows: 2, cols: 2) { _, _, _ in 7 }))
    var labels = [UInt8](repeating: 3, count: 60)
    labels[57] = 12
    let path = try s.write("train-labels-idx1-ubyte.gz", gzipped(idxLabels(labels)))
    assertDatasetError(try FashionMNIST.load(directory: s.path), path: path, "label 12 out of range 0..<10 at record 57")
  }

  func testIDXCountMismatch() throws {
    let s = try DatasetScratch()
    try Self.writeIDX(s, gzipTrain: false, gzipTest: false)
    try s.write("t10k-labels-idx1-ubyte", idxLabels([1, 2, 3]))
    assertDatasetError(try FashionMNIST.load(directory: s.path), path: s.file("t10k-images-idx3-ubyte"),
                       "images (2) and labels (3) disagree (labels from \(s.file("t10k-labels-idx1-ubyte")))")
  }

  func testIDXLengthAgainstHeader() throws {
    let s = try DatasetScratch()
    try Self.writeIDX(s, gzipTrain: false, gzipTest: false)
    let good = idxImages(count: 3, rows: 4, cols: 5, pixel: Self.idxPixel)  // 16 + 60 bytes
    let images = try s.write("train-images-idx3-ubyte", Array(good.dropLast()))
    assertDatasetError(try FashionMNIST.load(directory: s.path), path: images,
                       "truncated: file is 75 bytes, the IDX header implies 76")
    try s.write("train-images-idx3-ubyte", good + [0])
    assertDatasetError(try FashionMNIST.load(directory: s.path), path: images,
                       "file is 77 bytes, more than the 76 the IDX header implies")
    try s.write("train-images-idx3-ubyte", Array(good.prefix(10)))
    assertDatasetError(try FashionMNIST.load(directory: s.path), path: images,
                       "bad IDX header: truncated: 10 bytes, the header needs 16")
    try s.write("train-images-idx3-ubyte", [])
    assertDatasetError(try FashionMNIST.load(directory: s.path), path: images, "truncated: 0 bytes")
    // Same in a gzip file: the decompressed length is what counts.
    try s.remove("train-images-idx3-ubyte")
    let gz = try s.write("train-images-idx3-ubyte.gz", gzipped(Array(good.dropLast(7))))
    assertDatasetError(try FashionMNIST.load(directory: s.path), path: gz,
                       "truncated: decompressed data is 69 bytes, the IDX header implies 76")
    try s.write("train-images-idx3-ubyte.gz", gzipped(good + [1, 2]))
    assertDatasetError(try FashionMNIST.load(directory: s.path), path: gz,
                       "decompressed data is 78 bytes, more than the 76")
  }

  func testIDXHeaderClaimsAreCappedAndChecked() throws {
    let s = try DatasetScratch()
    try Self.writeIDX(s, gzipTrain: false, gzipTest: false)
    let path = s.file("train-images-idx3-ubyte")
    // Dimensions beyond the caps, or zero.
    try s.write("train-images-idx3-ubyte", bigEndian32(0x803) + bigEndian32(0x7FFF_FFFF) + bigEndian32(28) + bigEndian32(28))
    assertDatasetError(try FashionMNIST.load(directory: s.path), path: path, "count 2147483647 is outside 1...10000000")
    try s.write("train-images-idx3-ubyte", bigEndian32(0x803) + bigEndian32(5) + bigEndian32(100_000) + bigEndian32(28))
    assertDatasetError(try FashionMNIST.load(directory: s.path), path: path, "rows 100000 is outside 1...4096")
    try s.write("train-images-idx3-ubyte", bigEndian32(0x803) + bigEndian32(5) + bigEndian32(28) + bigEndian32(0))
    assertDatasetError(try FashionMNIST.load(directory: s.path), path: path, "cols 0 is outside 1...4096")
    // Within the caps but far more than the file holds: refused from the real size.
    try s.write("train-images-idx3-ubyte", bigEndian32(0x803) + bigEndian32(10_000_000) + bigEndian32(4096) + bigEndian32(4096) + [1, 2, 3])
    assertDatasetError(try FashionMNIST.load(directory: s.path), path: path,
                       "truncated: file is 19 bytes, the IDX header implies 167772160000016")
    // In a gzip file: more than the compressed size could ever inflate to.
    try s.remove("train-images-idx3-ubyte")
    let gz = try s.write("train-images-idx3-ubyte.gz",
                         gzipped(bigEndian32(0x803) + bigEndian32(10_000_000) + bigEndian32(28) + bigEndian32(28)))
    assertDatasetError(try FashionMNIST.load(directory: s.path), path: gz,
                       "dimensions 10000000 x 28 x 28 imply 7840000016 bytes, more than the")
    // Within what the compressed file could hold, but the stream ends early.
    var rng = RandomSource(seed: 1)
    let noise = (0..<20_000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }  // incompressible
    try s.write("train-images-idx3-ubyte.gz",
                gzipped(bigEndian32(0x803) + bigEndian32(1000) + bigEndian32(28) + bigEndian32(28) + noise))
    assertDatasetError(try FashionMNIST.load(directory: s.path), path: gz,
                       "truncated: decompressed data is 20016 bytes, the IDX header implies 784016")
  }

  func testCorruptGzip() throws {
    let s = try DatasetScratch()
    try Self.writeIDX(s, gzipTrain: true, gzipTest: true)
    let path = s.file("t10k-images-idx3-ubyte.gz")
    let good = try gzipped(idxImages(count: 2, rows: 4, cols: 5) { Self.idxPixel($0 + 100, $1, $2) })
    // A flipped bit in the CRC-32 trailer.
    var badCRC = good
    badCRC[good.count - 8] ^= 0x01
    try s.write("t10k-images-idx3-ubyte.gz", badCRC)
    assertDatasetError(try FashionMNIST.load(directory: s.path), path: path, "corrupt gzip stream (incorrect data check)")
    // Cut short.
    try s.write("t10k-images-idx3-ubyte.gz", Array(good.dropLast(12)))
    assertDatasetError(try FashionMNIST.load(directory: s.path), path: path, "corrupt gzip stream (unexpected end of file")
    // Garbage after a valid gzip header.
    try s.write("t10k-images-idx3-ubyte.gz", Array(good.prefix(10)) + [UInt8](repeating: 0xFF, count: 50))
    assertDatasetError(try FashionMNIST.load(directory: s.path), path: path, "corrupt gzip stream (")
    // Trailing garbage after the stream; zero padding is tolerated.
    try s.write("t10k-images-idx3-ubyte.gz", good + [0x42, 0x43])
    assertDatasetError(try FashionMNIST.load(directory: s.path), path: path, "2 bytes of trailing garbage")
    try s.write("t10k-images-idx3-ubyte.gz", good + [0, 0, 0, 0])
    XCTAssertEqual(try FashionMNIST.load(directory: s.path).test.count, 2)
    // Two concatenated gzip members read as one stream.
    let raw = idxImages(count: 2, rows: 4, cols: 5) { Self.idxPixel($0 + 100, $1, $2) }
    try s.write("t10k-images-idx3-ubyte.gz", try gzipped(Array(raw.prefix(30))) + gzipped(Array(raw.dropFirst(30))))
    XCTAssertEqual(try FashionMNIST.load(directory: s.path).test.pixels, Array(raw.dropFirst(16)))
    // Not gzip at all despite the name.
    try s.write("t10k-images-idx3-ubyte.gz", raw)
    assertDatasetError(try FashionMNIST.load(directory: s.path), path: path, "not a gzip file")
    try s.write("t10k-images-idx3-ubyte.gz", [])
    assertDatasetError(try FashionMNIST.load(directory: s.path), path: path, "not a gzip file")
  }

  func testIDXMissing() throws {
    let s = try DatasetScratch()
    try Self.writeIDX(s, gzipTrain: true, gzipTest: false)
    try s.remove("t10k-labels-idx1-ubyte")
    let path = s.file("t10k-labels-idx1-ubyte")
    assertDatasetError(try FashionMNIST.load(directory: s.path), path: path, "missing (nor \(path).gz)")
    assertDatasetError(try FashionMNIST.load(directory: s.file("absent")), path: s.file("absent"), "missing")
    assertDatasetError(try DatasetLoader.load(DataSpec(dataset: "fashion-mnist", path: s.file("absent"))),
                       path: s.file("absent"), "missing")
    // A directory where a file should be.
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    assertDatasetError(try FashionMNIST.load(directory: s.path), path: path, "not a regular file")
  }

  // MARK: - DatasetLoader

  func testLoaderRejectsUnknownDatasetAndBadFractions() throws {
    assertDatasetError(try DatasetLoader.load(DataSpec(dataset: "imagenet", path: "/x")), path: nil,
                       "unknown dataset \"imagenet\" (known: cifar10, cifar100, cifar100-coarse, fashion-mnist, synthetic)")
    // The fraction is validated before anything is read (this path does not exist).
    for f in [0, -0.5, 1.0000001, 2, .nan, .infinity] {
      assertDatasetError(try DatasetLoader.load(DataSpec(dataset: "cifar10", fraction: f, path: "/nonexistent")),
                         path: nil, "subset fraction \(f) is outside (0, 1]")
    }
  }

  func testLoaderAppliesSubsetToTrainOnly() throws {
    let s = try DatasetScratch()
    try Self.writeCIFAR10(s)
    let first = try DatasetLoader.load(DataSpec(dataset: "cifar10", fraction: 0.5, subset: .first, path: s.file("c10")))
    XCTAssertEqual(first.train.ids, [0, 1, 2, 3, 4, 5])  // round(5.5) = 6
    XCTAssertEqual(first.test.count, 2)
    checkHWC(first.train, example: 5, file: 2, record: 0)  // batches hold 3, 2, 1, ... records
    let strat = try DatasetLoader.load(DataSpec(dataset: "cifar10", fraction: 0.5, subset: .stratified, path: s.file("c10")))
    let again = try DatasetLoader.load(DataSpec(dataset: "cifar10", fraction: 0.5, subset: .stratified, path: s.file("c10")))
    XCTAssertEqual(strat.train.ids, again.train.ids)
    XCTAssertEqual(strat.train.ids, strat.train.ids.sorted())
    XCTAssertEqual(strat.test.count, 2)
    // Labels (3i) % 10 for i < 11: every class once, class 0 twice (i = 0, 10); round(0.5) = 1
    // example of each single-example class, round(1) = 1 of class 0.
    XCTAssertEqual(strat.train.count, 10)
    XCTAssertEqual(strat.train.classCounts(), Array(repeating: 1, count: 10))
  }

  func testLoaderSynthetic() throws {
    let splits = try DatasetLoader.load(DataSpec(dataset: "synthetic", fraction: 0.1, subset: .stratified))
    XCTAssertEqual(splits.train.count, DatasetLoader.syntheticTrainCount / 10)
    XCTAssertEqual(splits.test.count, DatasetLoader.syntheticTestCount)
    XCTAssertEqual(splits.train.classCounts(), Array(repeating: DatasetLoader.syntheticTrainCount / 100, count: 10))
  }
}
