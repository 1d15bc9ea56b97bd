import CZlib
import Engine

// Dataset files as `DatasetLoader` reads them, through the loaders' in-memory entry points
// (`CIFAR.parseRecords`, `IDX.parseImages` / `parseLabels`: the file-reading functions are
// these after one read of the whole file).
//
// Properties checked besides "no trap": a file that loads gives a dataset whose sizes agree
// with the file's (labels in range, pixel count = images x image size).

/// The `cifar` and `idx` harnesses.
public enum DatasetHarness {
  /// The input as a CIFAR-10 file and as a CIFAR-100 file with fine and with coarse labels.
  public static func runCIFAR(_ data: [UInt8]) throws(FuzzViolation) {
    for (labelBytes, labelIndex, numClasses) in [(1, 0, 10), (2, 1, 100), (2, 0, 20)] {
      let dataset: Dataset
      do {
        dataset = try CIFAR.parseRecords(data, labelBytes: labelBytes, labelIndex: labelIndex,
                                         numClasses: numClasses, name: "fuzz", source: "fuzz.bin")
      } catch {
        try expectDatasetError(error, "CIFAR.parseRecords")
        continue
      }
      let records = data.count / (labelBytes + CIFAR.imageBytes)
      guard data.count % (labelBytes + CIFAR.imageBytes) == 0, dataset.count == records,
            dataset.pixels.count == records * CIFAR.imageBytes,
            dataset.labels.allSatisfy({ $0 >= 0 && Int($0) < numClasses }) else {
        throw FuzzViolation("a CIFAR file of \(data.count) bytes loaded as \(dataset.count) images, "
                            + "\(dataset.pixels.count) pixel bytes")
      }
    }
  }

  /// The input as an IDX image file and as an IDX label file, as it is; and, when it is not
  /// gzip already, gzip-compressed (so that every plain input also tests the gzip path).
  public static func runIDX(_ data: [UInt8]) throws(FuzzViolation) {
    try parseIDX(data, source: "fuzz-idx")
    if !(data.count >= 2 && data[0] == 0x1f && data[1] == 0x8b), let compressed = gzip(data) {
      try parseIDX(compressed, source: "fuzz-idx.gz")
    }
  }

  private static func parseIDX(_ file: [UInt8], source: String) throws(FuzzViolation) {
    do {
      let images = try IDX.parseImages(file, source: source)
      guard images.count >= 1, images.height >= 1, images.width >= 1,
            images.pixels.count == images.count * images.height * images.width else {
        throw FuzzViolation("an IDX image file loaded as \(images.count) x \(images.height) x "
                            + "\(images.width) images with \(images.pixels.count) pixel bytes")
      }
    } catch let violation as FuzzViolation {
      throw violation
    } catch {
      try expectDatasetError(error, "IDX.parseImages")
    }
    do {
      let labels = try IDX.parseLabels(file, numClasses: 10, source: source)
      guard !labels.isEmpty, labels.allSatisfy({ (0..<10).contains($0) }) else {
        throw FuzzViolation("an IDX label file loaded as \(labels.count) labels outside 0..<10")
      }
    } catch let violation as FuzzViolation {
      throw violation
    } catch {
      try expectDatasetError(error, "IDX.parseLabels")
    }
  }

  /// Loaders throw `DatasetError` and nothing else.
  private static func expectDatasetError(_ error: any Error, _ function: String) throws(FuzzViolation) {
    guard error is DatasetError else {
      throw FuzzViolation("\(function) threw \(type(of: error)), not a DatasetError: \(error)")
    }
  }

  /// The bytes as one gzip member (zlib deflate with gzip framing); nil if zlib fails.
  static func gzip(_ bytes: [UInt8]) -> [UInt8]? {
    var stream = z_stream()
    guard deflateInit2_(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                        Z_DEFAULT_STRATEGY, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
      return nil
    }
    defer { deflateEnd(&stream) }
    var input = bytes
    var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(bytes.count))) + 32)
    let status = input.withUnsafeMutableBufferPointer { inBuffer in
      output.withUnsafeMutableBufferPointer { outBuffer in
        stream.next_in = inBuffer.baseAddress
        stream.avail_in = UInt32(inBuffer.count)
        stream.next_out = outBuffer.baseAddress
        stream.avail_out = UInt32(outBuffer.count)
        return deflate(&stream, Z_FINISH)
      }
    }
    guard status == Z_STREAM_END else { return nil }
    return Array(output.prefix(Int(stream.total_out)))
  }
}
