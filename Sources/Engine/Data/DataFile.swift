import CZlib
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// File-system helpers for the dataset loaders: every failure becomes a `DatasetError` naming
/// the file.
enum DataFile {
  /// The absolute, tilde-expanded, standardised form of a path (for reading and for messages).
  static func absolute(_ path: String) -> String {
    let expanded = (path as NSString).expandingTildeInPath
    return URL(fileURLWithPath: expanded).standardizedFileURL.path
  }

  static func join(_ directory: String, _ name: String) -> String {
    directory.hasSuffix("/") ? directory + name : directory + "/" + name
  }

  static func isRegularFile(_ path: String) -> Bool {
    var isDir: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && !isDir.boolValue
  }

  static func isDirectory(_ path: String) -> Bool {
    var isDir: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
  }

  /// The size in bytes of a regular file (errors: missing, not a file, unreadable).
  static func size(_ path: String) throws -> Int {
    var st = stat()
    guard stat(path, &st) == 0 else {
      let e = errno
      if e == ENOENT || e == ENOTDIR { throw DatasetError.missing(path: path) }
      throw DatasetError.unreadable(path: path, reason: String(cString: strerror(e)))
    }
    guard (st.st_mode & S_IFMT) == S_IFREG else { throw DatasetError.notAFile(path: path) }
    return Int(st.st_size)
  }

  /// The whole content of a regular file. The buffer is sized from the file system's size of
  /// the file (never from anything the file claims), and refused above `maxBytes`.
  static func readAll(_ path: String, maxBytes: Int = 1 << 33) throws -> [UInt8] {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else {
      let e = errno
      if e == ENOENT || e == ENOTDIR { throw DatasetError.missing(path: path) }
      throw DatasetError.unreadable(path: path, reason: String(cString: strerror(e)))
    }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else {
      throw DatasetError.unreadable(path: path, reason: String(cString: strerror(errno)))
    }
    guard (st.st_mode & S_IFMT) == S_IFREG else { throw DatasetError.notAFile(path: path) }
    let size = Int(st.st_size)
    guard size <= maxBytes else {
      throw DatasetError.unreadable(
        path: path, reason: "\(size) bytes is more than the \(maxBytes)-byte limit")
    }
    if size == 0 { return [] }
    var failure: Int32 = 0
    let bytes = [UInt8](unsafeUninitializedCapacity: size) { buf, initialized in
      var done = 0
      while done < size {
        let n = read(fd, buf.baseAddress! + done, size - done)
        if n > 0 {
          done += n
        } else if n == 0 {
          break  // the file shrank under us: keep what is there, the callers check lengths
        } else if errno != EINTR {
          failure = errno
          break
        }
      }
      initialized = done
    }
    if failure != 0 {
      throw DatasetError.unreadable(path: path, reason: String(cString: strerror(failure)))
    }
    return bytes
  }
}

/// A gzip decompressor over a compressed file already in memory (zlib `inflate` with
/// 16 + MAX_WBITS, i.e. gzip framing with CRC-32 and length checks). Output is produced on
/// demand, so a caller can read and validate a header before deciding how much to read.
/// Concatenated gzip members are read as one stream; zero padding after the last member is
/// ignored; anything else after it is an error.
final class GzipReader {
  let path: String
  private let input: [UInt8]
  private var consumed = 0
  private let stream: UnsafeMutablePointer<z_stream>
  private var initialized = false
  private(set) var finished = false
  /// Decompressed bytes delivered so far.
  private(set) var produced = 0

  /// The largest ratio deflate can reach (about 1032:1): a bound on how much a compressed
  /// file of a given size can decompress to.
  static let maxRatio = 1032

  var compressedSize: Int { input.count }

  static func isGzip(_ bytes: [UInt8]) -> Bool {
    bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
  }

  init(path: String, compressed: [UInt8]) throws {
    guard GzipReader.isGzip(compressed) else { throw DatasetError.notGzip(path: path) }
    self.path = path
    self.input = compressed
    stream = .allocate(capacity: 1)
    stream.initialize(to: z_stream())
    let rc = inflateInit2_(stream, 16 + MAX_WBITS, zlibVersion(),
                           Int32(MemoryLayout<z_stream>.size))
    guard rc == Z_OK else { throw DatasetError.corruptGzip(path: path, reason: "inflateInit2 failed (\(rc))") }
    initialized = true
  }

  deinit {
    if initialized { inflateEnd(stream) }
    stream.deinitialize(count: 1)
    stream.deallocate()
  }

  /// Decompresses up to `count` bytes into `buffer` (which must hold `count`); returns how many
  /// were written, fewer than `count` only at the (verified) end of the stream.
  func read(into buffer: UnsafeMutableRawBufferPointer, count: Int) throws -> Int {
    precondition(count <= buffer.count)
    guard count > 0, !finished else { return 0 }
    var written = 0
    try input.withUnsafeBufferPointer { ibuf in
      let inBase = ibuf.baseAddress!  // non-empty: checked in init
      let outBase = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
      while written < count && !finished {
        let availIn = min(ibuf.count - consumed, Int(UInt32.max))
        let chunk = min(count - written, 1 << 30)
        stream.pointee.next_in = UnsafeMutablePointer(mutating: inBase + consumed)
        stream.pointee.avail_in = UInt32(availIn)
        stream.pointee.next_out = outBase + written
        stream.pointee.avail_out = UInt32(chunk)
        let rc = inflate(stream, Z_NO_FLUSH)
        consumed += availIn - Int(stream.pointee.avail_in)
        written += chunk - Int(stream.pointee.avail_out)
        switch rc {
        case Z_OK:
          continue
        case Z_STREAM_END:
          try endOfMember()
        case Z_BUF_ERROR:
          // No progress possible with output room left: the input ran out mid-stream.
          throw DatasetError.corruptGzip(
            path: path, reason: "unexpected end of file after \(produced + written) decompressed bytes")
        default:
          let msg = stream.pointee.msg.map { String(cString: $0) } ?? "zlib error \(rc)"
          throw DatasetError.corruptGzip(path: path, reason: msg)
        }
      }
    }
    produced += written
    return written
  }

  /// Reads exactly `count` bytes (or fewer at the end of the stream), allocating chunk by chunk
  /// as data actually arrives rather than `count` up front.
  func read(_ count: Int) throws -> [UInt8] {
    let step = 1 << 24
    var chunks = [[UInt8]]()
    var total = 0
    while total < count {
      let want = min(step, count - total)
      var got = 0
      let chunk = try [UInt8](unsafeUninitializedCapacity: want) { buf, initialized in
        initialized = 0
        got = try read(into: UnsafeMutableRawBufferPointer(buf), count: want)
        initialized = got
      }
      chunks.append(chunk)
      total += got
      if got < want { break }
    }
    if chunks.count == 1 { return chunks[0] }
    return [UInt8](unsafeUninitializedCapacity: total) { buf, initialized in
      var offset = 0
      for chunk in chunks {
        guard !chunk.isEmpty else { continue }
        chunk.withUnsafeBufferPointer { src in
          UnsafeMutableRawPointer(buf.baseAddress! + offset)
            .copyMemory(from: src.baseAddress!, byteCount: src.count)
        }
        offset += chunk.count
      }
      initialized = total
    }
  }

  /// Decompresses whatever is left, verifying the stream to its end; returns its length.
  func skipToEnd() throws -> Int {
    var scratch = [UInt8](repeating: 0, count: 1 << 16)
    var total = 0
    while !finished {
      total += try scratch.withUnsafeMutableBytes { try read(into: $0, count: $0.count) }
    }
    return total
  }

  private func endOfMember() throws {
    let rest = input.count - consumed
    if rest == 0 {
      finished = true
    } else if rest >= 2 && input[consumed] == 0x1f && input[consumed + 1] == 0x8b {
      inflateReset(stream)  // another gzip member follows
    } else if input[consumed...].allSatisfy({ $0 == 0 }) {
      finished = true  // zero padding (as gzip(1) tolerates)
    } else {
      throw DatasetError.corruptGzip(
        path: path, reason: "\(rest) bytes of trailing garbage after the gzip stream")
    }
  }
}
