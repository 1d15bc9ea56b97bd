/// Everything that can go wrong reading a dataset. The description of every file-level error
/// starts with the file's full path, then says what is wrong with it; loaders never trap on
/// malformed input and never allocate what a header merely claims before checking it against
/// the real size of the data.
public enum DatasetError: Error, CustomStringConvertible, Equatable, Sendable {
  /// The file (or directory) does not exist; `hint` says where else was looked.
  case missing(path: String, hint: String? = nil)
  /// The path exists but is not a regular file (a directory, say).
  case notAFile(path: String)
  /// The path exists but is not a directory where a data directory was expected.
  case notADirectory(path: String)
  /// The file exists but could not be opened or read (permissions, I/O error).
  case unreadable(path: String, reason: String)
  /// A record-structured file (CIFAR) whose length is zero or not a multiple of the record.
  case truncated(path: String, bytes: Int, recordSize: Int)
  /// An IDX file whose magic number is not the one expected.
  case badMagic(path: String, found: UInt32, expected: UInt32)
  /// An IDX header with implausible dimensions (zero, or above the sanity caps).
  case badHeader(path: String, reason: String)
  /// An IDX file whose (decompressed) length disagrees with what its header implies.
  case lengthMismatch(path: String, bytes: Int, expected: Int, compressed: Bool)
  /// A label outside 0..<numClasses; `record` is 0-based within the file.
  case labelOutOfRange(path: String, label: Int, numClasses: Int, record: Int)
  /// An IDX image file and its label file hold different numbers of examples.
  case countMismatch(imagesPath: String, images: Int, labelsPath: String, labels: Int)
  /// A file that must be gzip (a `.gz` name) does not start with the gzip magic.
  case notGzip(path: String)
  /// A gzip stream zlib rejected, or that ends early / is followed by garbage.
  case corruptGzip(path: String, reason: String)
  /// Test images whose shape differs from the training images'.
  case shapeMismatch(path: String, found: String, expected: String)
  /// A dataset that has no default location was requested without a path.
  case pathRequired(dataset: String, expected: String)
  /// `DataSpec.dataset` names no known dataset.
  case unknownDataset(String)
  /// A subset fraction outside (0, 1] (or NaN).
  case badFraction(Double)
  /// A subset fraction so small it selects no example at all.
  case emptySubset(fraction: Double, count: Int)

  /// The file the error is about, if it is about one.
  public var path: String? {
    switch self {
    case .missing(let p, _), .notAFile(let p), .notADirectory(let p), .unreadable(let p, _), .truncated(let p, _, _),
         .badMagic(let p, _, _), .badHeader(let p, _), .lengthMismatch(let p, _, _, _),
         .labelOutOfRange(let p, _, _, _), .notGzip(let p), .corruptGzip(let p, _),
         .shapeMismatch(let p, _, _):
      return p
    case .countMismatch(let p, _, _, _):
      return p
    case .pathRequired, .unknownDataset, .badFraction, .emptySubset:
      return nil
    }
  }

  public var description: String {
    switch self {
    case .missing(let p, let hint):
      return "\(p): missing" + (hint.map { " (\($0))" } ?? "")
    case .notAFile(let p):
      return "\(p): not a regular file"
    case .notADirectory(let p):
      return "\(p): not a directory"
    case .unreadable(let p, let reason):
      return "\(p): unreadable (\(reason))"
    case .truncated(let p, let bytes, let record):
      if bytes == 0 { return "\(p): truncated: empty file (0 bytes, records are \(record) bytes)" }
      return "\(p): truncated: \(bytes) bytes is not a multiple of the \(record)-byte record"
    case .badMagic(let p, let found, let expected):
      return "\(p): bad IDX magic \(hex(found)) (expected \(hex(expected)))"
    case .badHeader(let p, let reason):
      return "\(p): bad IDX header: \(reason)"
    case .lengthMismatch(let p, let bytes, let expected, let compressed):
      let what = compressed ? "decompressed data is" : "file is"
      if bytes < expected {
        return "\(p): truncated: \(what) \(bytes) bytes, the IDX header implies \(expected)"
      }
      return "\(p): \(what) \(bytes) bytes, more than the \(expected) the IDX header implies"
    case .labelOutOfRange(let p, let label, let n, let record):
      return "\(p): label \(label) out of range 0..<\(n) at record \(record)"
    case .countMismatch(let ip, let images, let lp, let labels):
      return "\(ip): images (\(images)) and labels (\(labels)) disagree (labels from \(lp))"
    case .notGzip(let p):
      return "\(p): not a gzip file (no 1f 8b magic)"
    case .corruptGzip(let p, let reason):
      return "\(p): corrupt gzip stream (\(reason))"
    case .shapeMismatch(let p, let found, let expected):
      return "\(p): images are \(found) but the training images are \(expected)"
    case .pathRequired(let dataset, let expected):
      return "\(dataset): no data path given; set it to \(expected)"
    case .unknownDataset(let name):
      return "unknown dataset \"\(name)\" (known: \(DatasetLoader.knownDatasets.joined(separator: ", ")))"
    case .badFraction(let f):
      return "subset fraction \(f) is outside (0, 1]"
    case .emptySubset(let f, let count):
      return "subset fraction \(f) of \(count) examples selects no example"
    }
  }
}

private func hex(_ v: UInt32) -> String {
  let digits = String(v, radix: 16)
  return "0x" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
}
