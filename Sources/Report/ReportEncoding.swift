import Foundation

/// Why a `ReportData` could not be turned into JSON.
public enum ReportEncodingError: Error, CustomStringConvertible, Equatable {
  /// A NaN or infinity at `path` (e.g. `models[3].testAccuracy`): JSON has no such numbers,
  /// and the report types are meant to carry `nil` instead.
  case nonFiniteValue(path: String, value: String)
  case invalidValue(path: String, reason: String)

  public var description: String {
    switch self {
    case let .nonFiniteValue(path, value):
      return "report data: non-finite number \(value) at \(path) (JSON has no NaN or infinity; use nil)"
    case let .invalidValue(path, reason):
      return "report data: cannot encode the value at \(path): \(reason)"
    }
  }
}

extension ReportData {
  /// The page's embedded JSON: keys in snake_case (`name_lists`, `heatmap_no_pc1`, ...), sorted,
  /// compact. The keys of `nameLists` are data, not field names: they are kept as they are.
  /// Throws `ReportEncodingError.nonFiniteValue` naming the field if a NaN or infinity slipped
  /// in.
  public func encoded() throws -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.keyEncodingStrategy = .convertToSnakeCase
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    encoder.nonConformingFloatEncodingStrategy = .throw
    do {
      return [UInt8](try encoder.encode(self))
    } catch let EncodingError.invalidValue(value, context) {
      let path = ReportData.describe(context.codingPath)
      if let d = value as? Double, !d.isFinite {
        throw ReportEncodingError.nonFiniteValue(path: path, value: "\(d)")
      }
      if let f = value as? Float, !f.isFinite {
        throw ReportEncodingError.nonFiniteValue(path: path, value: "\(f)")
      }
      throw ReportEncodingError.invalidValue(path: path, reason: context.debugDescription)
    }
  }

  /// `models[3].heatmap.lo` from a coding path.
  static func describe(_ path: [CodingKey]) -> String {
    var out = ""
    for key in path {
      if let i = key.intValue {
        out += "[\(i)]"
      } else {
        out += out.isEmpty ? key.stringValue : "." + key.stringValue
      }
    }
    return out.isEmpty ? "(top level)" : out
  }
}
