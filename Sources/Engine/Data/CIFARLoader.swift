import Foundation

/// The CIFAR binary format (Krizhevsky 2009): fixed-size records of label byte(s) followed by
/// 3072 pixel bytes, the 1024 red, then 1024 green, then 1024 blue values of a 32x32 image,
/// each plane row-major. Loaded as NHWC (`Dataset`'s layout); ids are the record index in file
/// order across the files (training and test numbered separately from 0). Every file's length
/// must be a positive multiple of the record size; any number of records per file is accepted.
public enum CIFAR {
  public static let side = 32
  public static let channels = 3
  public static let imageBytes = side * side * channels  // 3072

  /// Reads the given record files in order into one dataset. `labelBytes` label bytes open
  /// each record; the one at `labelIndex` is used and must be below `numClasses`.
  public static func readRecords(paths: [String], labelBytes: Int, labelIndex: Int,
                                 numClasses: Int, name: String) throws -> Dataset {
    precondition(labelIndex >= 0 && labelIndex < labelBytes)
    let recordSize = labelBytes + imageBytes
    // Validate every file's length before reading (and allocating for) any of them.
    var counts = [Int]()
    for path in paths {
      let size = try DataFile.size(path)
      guard size > 0 && size % recordSize == 0 else {
        throw DatasetError.truncated(path: path, bytes: size, recordSize: recordSize)
      }
      counts.append(size / recordSize)
    }
    let total = counts.reduce(0, +)
    guard total <= Int(Int32.max) else {
      throw DatasetError.unreadable(path: paths.last ?? "", reason: "\(total) records overflow the Int32 ids")
    }
    var pixels = [UInt8](repeating: 0, count: total * imageBytes)
    var labels = [Int32]()
    labels.reserveCapacity(total)
    var next = 0  // records converted so far
    for (path, expectedCount) in zip(paths, counts) {
      let raw = try DataFile.readAll(path)
      guard raw.count == expectedCount * recordSize else {  // changed under us
        throw DatasetError.truncated(path: path, bytes: raw.count, recordSize: recordSize)
      }
      try convert(raw, count: expectedCount, labelBytes: labelBytes, labelIndex: labelIndex,
                  numClasses: numClasses, path: path, into: &pixels, at: next, labels: &labels)
      next += expectedCount
    }
    return Dataset(name: name, height: side, width: side, channels: channels,
                   numClasses: numClasses, pixels: pixels, labels: labels)
  }

  /// `readRecords` of one file whose bytes are already in memory; errors name `source`.
  public static func parseRecords(_ raw: [UInt8], labelBytes: Int, labelIndex: Int,
                                  numClasses: Int, name: String, source: String) throws -> Dataset {
    precondition(labelIndex >= 0 && labelIndex < labelBytes)
    let recordSize = labelBytes + imageBytes
    guard raw.count > 0 && raw.count % recordSize == 0 else {
      throw DatasetError.truncated(path: source, bytes: raw.count, recordSize: recordSize)
    }
    let count = raw.count / recordSize
    var pixels = [UInt8](repeating: 0, count: count * imageBytes)
    var labels = [Int32]()
    labels.reserveCapacity(count)
    try convert(raw, count: count, labelBytes: labelBytes, labelIndex: labelIndex,
                numClasses: numClasses, path: source, into: &pixels, at: 0, labels: &labels)
    return Dataset(name: name, height: side, width: side, channels: channels,
                   numClasses: numClasses, pixels: pixels, labels: labels)
  }

  /// Checks the labels of `count` records of `raw` and converts their planar pixels to NHWC
  /// at image `first` of `pixels` (which must have room), appending the labels.
  private static func convert(_ raw: [UInt8], count: Int, labelBytes: Int, labelIndex: Int,
                              numClasses: Int, path: String, into pixels: inout [UInt8], at first: Int,
                              labels: inout [Int32]) throws {
    let recordSize = labelBytes + imageBytes
    precondition(raw.count >= count * recordSize && pixels.count >= (first + count) * imageBytes)
    try raw.withUnsafeBufferPointer { src in
      try pixels.withUnsafeMutableBufferPointer { dstAll in
        let plane = side * side
        for r in 0..<count {
          let rec = src.baseAddress! + r * recordSize
          let label = Int(rec[labelIndex])
          guard label < numClasses else {
            throw DatasetError.labelOutOfRange(path: path, label: label, numClasses: numClasses, record: r)
          }
          labels.append(Int32(label))
          let red = rec + labelBytes, green = red + plane, blue = green + plane
          let dst = dstAll.baseAddress! + (first + r) * imageBytes
          for p in 0..<plane {
            dst[3 * p] = red[p]
            dst[3 * p + 1] = green[p]
            dst[3 * p + 2] = blue[p]
          }
        }
      }
    }
  }

  /// The directory holding `marker`: `directory` itself, or its `subdirectory` child.
  static func resolveDirectory(_ directory: String, marker: String, subdirectory: String) throws -> String {
    let dir = DataFile.absolute(directory)
    if DataFile.isRegularFile(DataFile.join(dir, marker)) { return dir }
    let sub = DataFile.join(dir, subdirectory)
    if DataFile.isRegularFile(DataFile.join(sub, marker)) { return sub }
    if !FileManager.default.fileExists(atPath: dir) {
      throw DatasetError.missing(path: dir, hint: "the data directory does not exist")
    }
    if !DataFile.isDirectory(dir) { throw DatasetError.notADirectory(path: dir) }
    throw DatasetError.missing(path: DataFile.join(dir, marker),
                               hint: "nor \(DataFile.join(sub, marker))")
  }
}

/// CIFAR-10: 50000 training images in `data_batch_1.bin` ... `data_batch_5.bin` and 10000 test
/// images in `test_batch.bin`, 10 classes, records of 1 label byte + 3072 pixel bytes.
public enum CIFAR10 {
  public static let numClasses = 10
  public static let subdirectory = "cifar-10-batches-bin"
  public static let trainFiles = (1...5).map { "data_batch_\($0).bin" }
  public static let testFile = "test_batch.bin"

  /// Loads from `directory` (holding the .bin files) or from its parent holding
  /// `cifar-10-batches-bin/`.
  public static func load(directory: String) throws -> DatasetSplits {
    let dir = try CIFAR.resolveDirectory(directory, marker: trainFiles[0], subdirectory: subdirectory)
    let train = try CIFAR.readRecords(paths: trainFiles.map { DataFile.join(dir, $0) }, labelBytes: 1,
                                      labelIndex: 0, numClasses: numClasses, name: "cifar10")
    let test = try CIFAR.readRecords(paths: [DataFile.join(dir, testFile)], labelBytes: 1,
                                     labelIndex: 0, numClasses: numClasses, name: "cifar10")
    return DatasetSplits(train: train, test: test)
  }
}

/// CIFAR-100: 50000 training images in `train.bin`, 10000 test images in `test.bin`, records of
/// 2 label bytes (coarse superclass 0..<20, fine class 0..<100) + 3072 pixel bytes.
public enum CIFAR100 {
  public enum Labels: String, Sendable, CaseIterable {
    /// The 100 classes (the default).
    case fine
    /// The 20 superclasses.
    case coarse

    public var numClasses: Int { self == .fine ? 100 : 20 }
    var labelIndex: Int { self == .fine ? 1 : 0 }
  }

  public static let subdirectory = "cifar-100-binary"
  public static let trainFile = "train.bin"
  public static let testFile = "test.bin"

  /// Loads from `directory` (holding train.bin and test.bin) or from its parent holding
  /// `cifar-100-binary/`.
  public static func load(directory: String, labels: Labels = .fine) throws -> DatasetSplits {
    let dir = try CIFAR.resolveDirectory(directory, marker: trainFile, subdirectory: subdirectory)
    let name = labels == .fine ? "cifar100" : "cifar100-coarse"
    func read(_ file: String) throws -> Dataset {
      try CIFAR.readRecords(paths: [DataFile.join(dir, file)], labelBytes: 2,
                            labelIndex: labels.labelIndex, numClasses: labels.numClasses, name: name)
    }
    return DatasetSplits(train: try read(trainFile), test: try read(testFile))
  }
}
