import Foundation
import Glibc
import Wire

/// A file could not be read or written, or its contents are not what a command needs.
struct OutputError: Error, CustomStringConvertible {
  var message: String
  init(_ message: String) { self.message = message }
  var description: String { message }

  /// A failed system call on a path: `open(out/heatmap.png): No such file or directory`.
  static func system(_ call: String, _ path: String, _ code: Int32 = errno) -> OutputError {
    OutputError("\(call)(\(path)): \(String(cString: strerror(code)))")
  }
}

// MARK: Files

enum Files {
  /// Writes the bytes to `path` through a temporary file in the same directory and a rename,
  /// so that a failure never leaves a truncated file under the final name.
  static func write(_ bytes: [UInt8], to path: String) throws {
    let temporary = path + ".tmp-\(getpid())"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw OutputError.system("open", temporary) }
    var offset = 0
    while offset < bytes.count {
      let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
      if written < 0 {
        if errno == EINTR { continue }
        let error = OutputError.system("write", temporary)
        Glibc.close(fd)
        unlink(temporary)
        throw error
      }
      offset += written
    }
    if Glibc.close(fd) != 0 {
      let error = OutputError.system("close", temporary)
      unlink(temporary)
      throw error
    }
    if rename(temporary, path) != 0 {
      let error = OutputError.system("rename", path)
      unlink(temporary)
      throw error
    }
  }

  static func write(_ text: String, to path: String) throws {
    try write(Array(text.utf8), to: path)
  }

  static func read(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw OutputError.system("open", path) }
    defer { Glibc.close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    while true {
      let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
      if count < 0 {
        if errno == EINTR { continue }
        throw OutputError.system("read", path)
      }
      if count == 0 { return bytes }
      bytes += chunk[0..<count]
    }
  }

  /// Creates the directory (and its parents) if needed.
  static func makeDirectory(_ path: String) throws {
    do {
      try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    } catch {
      throw OutputError("cannot create the directory \(path): \(error.localizedDescription)")
    }
  }

  static func join(_ directory: String, _ name: String) -> String {
    directory.hasSuffix("/") ? directory + name : directory + "/" + name
  }
}

// MARK: JSON

enum JSONOutput {
  /// Serialises a JSON value: sorted keys, pretty-printed, `/` unescaped.
  static func text(_ value: Any) throws -> String {
    guard JSONSerialization.isValidJSONObject(value) else {
      throw OutputError("internal: the output is not a JSON object")
    }
    let data = try JSONSerialization.data(
      withJSONObject: value, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    return String(decoding: data, as: UTF8.self)
  }

  /// Prints one JSON object on stdout.
  static func print(_ value: Any) throws {
    Swift.print(try text(value))
  }

  /// A Wire doc as a JSON object (for --json: the request that was sent, ...).
  static func object(_ doc: some Encodable) throws -> [String: Any] {
    let payload = try Payload.encode(doc)
    guard let object = try JSONSerialization.jsonObject(with: Data(payload.doc)) as? [String: Any] else {
      throw OutputError("internal: a doc did not encode as a JSON object")
    }
    return object
  }

  /// A tensor's summary: its descriptor, plus the file it was written to.
  static func summary(_ tensor: WireTensor, file: String? = nil) -> [String: Any] {
    var summary: [String: Any] = ["name": tensor.name, "dtype": tensor.dtype.rawValue, "shape": tensor.shape]
    if let file { summary["file"] = file }
    return summary
  }

  /// A matrix as nested arrays, nil entries as JSON null.
  static func matrix(_ values: [Double?], rows: Int, columns: Int) -> [[Any]] {
    (0..<rows).map { row in
      (0..<columns).map { column -> Any in
        guard let value = values[row * columns + column], value.isFinite else { return NSNull() }
        return value
      }
    }
  }
}

extension DaemonResponse {
  /// The doc for --json: as received, with `tensors` replaced by summaries (name, dtype,
  /// shape, and the file when one was written).
  func jsonOutput(files: [String: String] = [:]) throws -> [String: Any] {
    var object = try jsonObject()
    if !payload.tensors.isEmpty {
      object["tensors"] = payload.tensors.map { JSONOutput.summary($0, file: files[$0.name]) }
    }
    return object
  }
}

// MARK: Text

/// A plain-text table: columns padded to their widest cell, numbers right-aligned.
struct TextTable {
  var headers: [String]
  /// Right-aligned columns.
  var rightAligned: Set<Int> = []
  private(set) var rows: [[String]] = []

  init(_ headers: [String], rightAligned: Set<Int> = []) {
    self.headers = headers
    self.rightAligned = rightAligned
  }

  mutating func add(_ row: [String]) {
    rows.append(row + Array(repeating: "", count: max(0, headers.count - row.count)))
  }

  func render() -> String {
    var widths = headers.map(\.count)
    for row in rows {
      for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
    }
    func line(_ cells: [String]) -> String {
      var parts: [String] = []
      for (i, cell) in cells.enumerated() where i < widths.count {
        let pad = String(repeating: " ", count: widths[i] - cell.count)
        parts.append(rightAligned.contains(i) ? pad + cell : (i == cells.count - 1 ? cell : cell + pad))
      }
      return parts.joined(separator: "  ")
    }
    return ([line(headers)] + rows.map(line)).joined(separator: "\n")
  }
}

enum Format {
  /// `51.23%`; `-` when nil.
  static func percent(_ value: Double?, digits: Int = 2) -> String {
    guard let value, value.isFinite else { return "-" }
    return String(format: "%.\(digits)f%%", 100 * value)
  }

  static func number(_ value: Double?, digits: Int = 4) -> String {
    guard let value else { return "-" }
    guard value.isFinite else { return "\(value)" }
    return String(format: "%.\(digits)f", value)
  }

  /// `1.5 KiB`, `3.2 MiB`.
  static func bytes(_ count: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(count)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
      value /= 1024
      unit += 1
    }
    return unit == 0 ? "\(count) B" : String(format: "%.1f", value) + " " + units[unit]
  }

  /// `1h02m03s`, `4m05s`, `6.2s`.
  static func duration(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0 else { return "-" }
    if seconds < 60 { return String(format: "%.1fs", seconds) }
    let total = Int(seconds.rounded())
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60)
    return h > 0 ? String(format: "%dh%02dm%02ds", h, m, s) : String(format: "%dm%02ds", m, s)
  }

  /// Shortest round-trip decimal (Swift's description), for CSV and messages.
  static func exact(_ value: Double) -> String { "\(value)" }
}
