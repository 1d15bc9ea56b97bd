import Foundation

/// Reading IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed.
///
/// Header: a big-endian magic 0x000008NN (unsigned bytes, NN dimensions), then NN big-endian
/// UInt32 dimensions, then the data. Image files are 0x00000803 (count, rows, cols), label
/// files 0x00000801 (count). Dimensions are capped (count <= `maxCount`, rows and cols <=
/// `maxSide`) and the data length the header implies must match the real (decompressed) file
/// exactly; for a gzip file the implied length is also checked against what the compressed
/// file could possibly hold before reading on.
public enum IDX {
  public static let imagesMagic: UInt32 = 0x0000_0803
  public static let labelsMagic: UInt32 = 0x0000_0801
  public static let maxCount = 10_000_000
  public static let maxSide = 4096

  /// The images of an IDX image file: (count, height, width, pixels row-major).
  public static func readImages(path: String) throws -> (count: Int, height: Int, width: Int, pixels: [UInt8]) {
    try parseImages(DataFile.readAll(path), source: path)
  }

  /// The labels of an IDX label file, each checked to be in 0..<numClasses.
  public static func readLabels(path: String, numClasses: Int) throws -> [Int32] {
    try parseLabels(DataFile.readAll(path), numClasses: numClasses, source: path)
  }

  /// `readImages` on a file's bytes already in memory (plain or gzip); errors name `source`,
  /// and a `source` ending in ".gz" must be gzip, as a path would.
  public static func parseImages(_ raw: [UInt8], source: String) throws
    -> (count: Int, height: Int, width: Int, pixels: [UInt8]) {
    let (dims, data) = try parse(raw, path: source, magic: imagesMagic)
    return (dims[0], dims[1], dims[2], data)
  }

  /// `readLabels` on a file's bytes already in memory (see `parseImages`).
  public static func parseLabels(_ raw: [UInt8], numClasses: Int, source: String) throws -> [Int32] {
    let (_, data) = try parse(raw, path: source, magic: labelsMagic)
    var labels = [Int32]()
    labels.reserveCapacity(data.count)
    for (i, b) in data.enumerated() {
      guard Int(b) < numClasses else {
        throw DatasetError.labelOutOfRange(path: source, label: Int(b), numClasses: numClasses, record: i)
      }
      labels.append(Int32(b))
    }
    return labels
  }

  /// An image file and its label file as one dataset (ids 0..<count in file order).
  public static func readDataset(imagesPath: String, labelsPath: String, numClasses: Int,
                                 name: String) throws -> Dataset {
    let images = try readImages(path: imagesPath)
    let labels = try readLabels(path: labelsPath, numClasses: numClasses)
    guard images.count == labels.count else {
      throw DatasetError.countMismatch(imagesPath: imagesPath, images: images.count,
                                       labelsPath: labelsPath, labels: labels.count)
    }
    return Dataset(name: name, height: images.height, width: images.width, channels: 1,
                   numClasses: numClasses, pixels: images.pixels, labels: labels)
  }

  /// The path to read for an IDX file given without extension: the plain file if present,
  /// else `<path>.gz`; missing if neither.
  public static func resolve(_ path: String) throws -> String {
    if DataFile.isRegularFile(path) { return path }
    if DataFile.isRegularFile(path + ".gz") { return path + ".gz" }
    if FileManager.default.fileExists(atPath: path) { throw DatasetError.notAFile(path: path) }
    throw DatasetError.missing(path: path, hint: "nor \(path).gz")
  }

  // MARK: - Internals

  /// Header dimensions and data of an IDX file's bytes (`path` names it in errors) whose
  /// magic must be `magic`.
  static func parse(_ raw: [UInt8], path: String, magic: UInt32) throws -> (dims: [Int], data: [UInt8]) {
    let gzipped = GzipReader.isGzip(raw)
    if !gzipped && path.hasSuffix(".gz") { throw DatasetError.notGzip(path: path) }
    let ndims = Int(magic & 0xFF)
    let headerSize = 4 + 4 * ndims

    let gz = gzipped ? try GzipReader(path: path, compressed: raw) : nil
    let header: [UInt8] = try gz?.read(headerSize) ?? Array(raw.prefix(headerSize))
    if header.count >= 4 {
      let found = bigEndian(header, 0)
      guard found == magic else { throw DatasetError.badMagic(path: path, found: found, expected: magic) }
    }
    guard header.count == headerSize else {
      throw DatasetError.badHeader(
        path: path, reason: "truncated: \(header.count) bytes, the header needs \(headerSize)")
    }
    var dims = [Int]()
    for d in 0..<ndims {
      let v = Int(bigEndian(header, 4 + 4 * d))
      let cap = d == 0 ? maxCount : maxSide
      guard v >= 1 && v <= cap else {
        let what = d == 0 ? "count" : (d == 1 ? "rows" : "cols")
        throw DatasetError.badHeader(path: path, reason: "\(what) \(v) is outside 1...\(cap)")
      }
      dims.append(v)
    }
    let dataSize = dims.reduce(1, *)  // <= 1e7 * 4096 * 4096: no overflow in Int64
    let expected = headerSize + dataSize

    guard let gz else {
      guard raw.count == expected else {
        throw DatasetError.lengthMismatch(path: path, bytes: raw.count, expected: expected, compressed: false)
      }
      return (dims, Array(raw[headerSize...]))
    }
    // Compressed: the real size is only known by decompressing, so first refuse what the
    // compressed file cannot hold, then read incrementally and verify the stream's end.
    let bound = gz.compressedSize * GzipReader.maxRatio + 1024
    guard expected <= bound else {
      throw DatasetError.badHeader(
        path: path,
        reason: "dimensions \(dims.map(String.init).joined(separator: " x ")) imply \(expected) bytes, "
          + "more than the \(gz.compressedSize)-byte gzip file can hold")
    }
    let data = try gz.read(dataSize)
    guard data.count == dataSize else {
      throw DatasetError.lengthMismatch(path: path, bytes: headerSize + data.count, expected: expected,
                                        compressed: true)
    }
    let extra = try gz.skipToEnd()
    guard extra == 0 else {
      throw DatasetError.lengthMismatch(path: path, bytes: expected + extra, expected: expected, compressed: true)
    }
    return (dims, data)
  }

  private static func bigEndian(_ b: [UInt8], _ i: Int) -> UInt32 {
    UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
  }
}

/// Fashion-MNIST (Xiao et al. 2017): 60000 training and 10000 test 28x28 grey images in 10
/// classes, as IDX files `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
/// `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each plain or `.gz`.
public enum FashionMNIST {
  /// Where the Debian package dataset-fashion-mnist installs the (gzipped) files.
  public static let defaultDirectory = "/usr/share/datasets/fashion-mnist"
  public static let numClasses = 10

  public static func load(directory: String = defaultDirectory) throws -> DatasetSplits {
    let dir = DataFile.absolute(directory)
    guard DataFile.isDirectory(dir) else {
      if FileManager.default.fileExists(atPath: dir) { throw DatasetError.notADirectory(path: dir) }
      throw DatasetError.missing(path: dir, hint: "no Fashion-MNIST directory there; install dataset-fashion-mnist or give the path")
    }
    func file(_ name: String) throws -> String { try IDX.resolve(DataFile.join(dir, name)) }
    let train = try IDX.readDataset(imagesPath: file("train-images-idx3-ubyte"),
                                    labelsPath: file("train-labels-idx1-ubyte"),
                                    numClasses: numClasses, name: "fashion-mnist")
    let testImages = try file("t10k-images-idx3-ubyte")
    let test = try IDX.readDataset(imagesPath: testImages,
                                   labelsPath: file("t10k-labels-idx1-ubyte"),
                                   numClasses: numClasses, name: "fashion-mnist")
    guard test.height == train.height && test.width == train.width else {
      throw DatasetError.shapeMismatch(path: testImages, found: "\(test.height)x\(test.width)",
                                       expected: "\(train.height)x\(train.width)")
    }
    return DatasetSplits(train: train, test: test)
  }
}
