import Engine

/// Which representations an analysis looks at. Names follow `ResNetConfig.representations`.
public enum RepresentationSelector: Sendable, Equatable {
  /// Every representation (21n+9 for the residual net).
  case all
  /// The output of every block (after the final ReLU).
  case blockOutputs
  /// The output of every residual add (before the final ReLU).
  case adds
  /// Names matching a glob pattern: `*` any run of characters, `?` one character;
  /// several patterns separated by commas ("s2.*.out,pool").
  case pattern(String)
  /// Exactly these names, in forward order; unknown names are an error.
  case names([String])

  public enum SelectionError: Error, CustomStringConvertible, Equatable {
    case unknown([String])
    case empty(String)
    public var description: String {
      switch self {
      case .unknown(let n): return "unknown representation(s): \(n.joined(separator: ", "))"
      case .empty(let what): return "no representation matches \(what)"
      }
    }
  }

  /// The selected representations of a model, in forward order.
  public func select(from config: ResNetConfig) throws -> [Representation] {
    let reps = config.representations
    let chosen: [Representation]
    switch self {
    case .all: chosen = reps
    case .blockOutputs: chosen = reps.filter { $0.kind == .blockOutput }
    case .adds: chosen = reps.filter { $0.kind == .add }
    case .pattern(let p):
      let globs = p.split(separator: ",").map { String($0).trimmingSpaces }
      chosen = reps.filter { r in globs.contains { Self.glob($0, matches: r.name) } }
    case .names(let names):
      let known = Set(reps.map(\.name))
      let missing = names.filter { !known.contains($0) }
      if !missing.isEmpty { throw SelectionError.unknown(missing) }
      let wanted = Set(names)
      chosen = reps.filter { wanted.contains($0.name) }
    }
    if chosen.isEmpty { throw SelectionError.empty("\(self)") }
    return chosen
  }

  /// The selected names among a foreign model's declared representations, in declared order.
  /// `blocks` and `adds` need a ResNet's representation kinds, which a foreign model has not.
  public func select(names declared: [String]) throws -> [String] {
    let chosen: [String]
    switch self {
    case .all: chosen = declared
    case .blockOutputs, .adds:
      throw SelectionError.empty("\(self == .adds ? "adds" : "blocks") (a foreign model's representations have no kinds: name them or use glob patterns)")
    case .pattern(let p):
      let globs = p.split(separator: ",").map { String($0).trimmingSpaces }
      chosen = declared.filter { r in globs.contains { Self.glob($0, matches: r) } }
    case .names(let names):
      let known = Set(declared)
      let missing = names.filter { !known.contains($0) }
      if !missing.isEmpty { throw SelectionError.unknown(missing) }
      let wanted = Set(names)
      chosen = declared.filter { wanted.contains($0) }
    }
    if chosen.isEmpty { throw SelectionError.empty("\(self)") }
    return chosen
  }

  /// Glob match with `*` and `?` (iterative, linear backtracking).
  static func glob(_ pattern: String, matches name: String) -> Bool {
    let p = Array(pattern.utf8), s = Array(name.utf8)
    var pi = 0, si = 0, star = -1, mark = 0
    while si < s.count {
      if pi < p.count && (p[pi] == UInt8(ascii: "?") || p[pi] == s[si]) {
        pi += 1; si += 1
      } else if pi < p.count && p[pi] == UInt8(ascii: "*") {
        star = pi; mark = si; pi += 1
      } else if star >= 0 {
        pi = star + 1; mark += 1; si = mark
      } else {
        return false
      }
    }
    while pi < p.count && p[pi] == UInt8(ascii: "*") { pi += 1 }
    return pi == p.count
  }
}

extension String {
  var trimmingSpaces: String {
    var s = Substring(self)
    while s.first == " " { s = s.dropFirst() }
    while s.last == " " { s = s.dropLast() }
    return String(s)
  }
}
