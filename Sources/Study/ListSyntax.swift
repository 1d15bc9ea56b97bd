/// The command line's list shorthand for a study's axes: `14,20,56`, `0-4` (a range of
/// integers, both ends included), `1,0.25,0.06`, and mixes (`0-2,7`).
public enum ListSyntax {
  public struct Problem: Error, Equatable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
  }

  public static func integers(_ text: String) throws(Problem) -> [Int] {
    var out: [Int] = []
    for part in try parts(text) {
      if let dash = part.firstIndex(of: "-"), dash != part.startIndex {
        guard let a = Int(part[..<dash]), let b = Int(part[part.index(after: dash)...]), a <= b, b - a < 100_000 else {
          throw Problem(message: "'\(part)' is not a range a-b of integers with a <= b")
        }
        out += Array(a...b)
      } else {
        guard let v = Int(part) else { throw Problem(message: "'\(part)' is not an integer") }
        out.append(v)
      }
    }
    return out
  }

  public static func unsigned(_ text: String) throws(Problem) -> [UInt64] {
    let values = try integers(text)
    if let bad = values.first(where: { $0 < 0 }) { throw Problem(message: "\(bad) is negative") }
    return values.map { UInt64($0) }
  }

  public static func numbers(_ text: String) throws(Problem) -> [Double] {
    try parts(text).map { part throws(Problem) in
      guard let v = Double(part), v.isFinite else { throw Problem(message: "'\(part)' is not a number") }
      return v
    }
  }

  private static func parts(_ text: String) throws(Problem) -> [Substring] {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false).map {
      $0.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed()
    }.map { Substring(String($0)) }
    if parts.contains(where: \.isEmpty) { throw Problem(message: "'\(text)' has an empty item") }
    return parts
  }
}
