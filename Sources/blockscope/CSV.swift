import Foundation

// CSV as RFC 4180 writes it: fields separated by commas, records by CRLF... except that this
// writer ends records with "\n" (what numpy.loadtxt, pandas and spreadsheets all read), and
// quotes a field only when it holds a comma, a quote or a line break.

enum CSV {
  /// One field, quoted when needed (quotes doubled inside).
  static func field(_ text: String) -> String {
    let needsQuotes = text.contains { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }
      || text.first == " " || text.last == " "
    guard needsQuotes else { return text }
    return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
  }

  static func record(_ fields: [String]) -> String {
    fields.map(field).joined(separator: ",") + "\n"
  }

  /// A matrix with its row and column names: a header row (an empty corner cell, then the
  /// column names), then per row its name and its values. A nil value is an empty field
  /// (pandas reads it as NaN); numbers are written in the shortest form that reads back to
  /// the same Double.
  static func matrix(_ values: [Double?], rowNames: [String], columnNames: [String]) -> String {
    precondition(values.count == rowNames.count * columnNames.count,
                 "\(values.count) values for \(rowNames.count) x \(columnNames.count)")
    var text = record([""] + columnNames)
    for (row, name) in rowNames.enumerated() {
      var fields = [name]
      for column in 0..<columnNames.count {
        if let value = values[row * columnNames.count + column], value.isFinite {
          fields.append(Format.exact(value))
        } else {
          fields.append("")
        }
      }
      text += record(fields)
    }
    return text
  }

  /// Splits CSV text into records of fields (quoted fields, doubled quotes, "\n" or "\r\n").
  static func parse(_ text: String) -> [[String]] {
    var records: [[String]] = []
    var record: [String] = []
    var field = ""
    var inQuotes = false
    var iterator = Array(text).makeIterator()
    var pending: Character? = nil
    func next() -> Character? {
      if let c = pending { pending = nil; return c }
      return iterator.next()
    }
    var sawAnything = false
    while let c = next() {
      sawAnything = true
      if inQuotes {
        if c == "\"" {
          if let following = next() {
            if following == "\"" { field.append("\"") } else { inQuotes = false; pending = following }
          } else {
            inQuotes = false
          }
        } else {
          field.append(c)
        }
        continue
      }
      switch c {
      case "\"": inQuotes = true
      case ",":
        record.append(field)
        field = ""
      case "\n", "\r\n", "\r":
        record.append(field)
        records.append(record)
        record = []
        field = ""
        sawAnything = false
      default: field.append(c)
      }
    }
    if sawAnything {
      record.append(field)
      records.append(record)
    }
    return records
  }
}
