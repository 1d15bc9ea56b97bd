// SPEC.md section 7, "Common shapes".

/// Which representations an analysis looks at: `"all"`, `"blocks"` (block outputs), `"adds"`,
/// a comma list of glob patterns (`"s2.*.out,pool"`), or a JSON array of exact names.
public enum LayerSelector: Codable, Hashable, Sendable {
  case all
  case blocks
  case adds
  /// Comma-separated glob patterns (`*`, `?`).
  case patterns(String)
  /// Exactly these representation names.
  case names([String])

  /// The selector's string form, or nil for `.names`.
  public var stringValue: String? {
    switch self {
    case .all: return "all"
    case .blocks: return "blocks"
    case .adds: return "adds"
    case .patterns(let patterns): return patterns
    case .names: return nil
    }
  }

  /// The selector a string stands for.
  public init(_ text: String) {
    switch text {
    case "all": self = .all
    case "blocks": self = .blocks
    case "adds": self = .adds
    default: self = .patterns(text)
    }
  }

  public init(from decoder: Decoder) throws {
    let container = try decoder.singleValueContainer()
    if let text = try? container.decode(String.self) {
      self.init(text)
    } else if let names = try? container.decode([String].self) {
      self = .names(names)
    } else {
      throw DecodingError.typeMismatch(LayerSelector.self, DecodingError.Context(
        codingPath: container.codingPath,
        debugDescription: "a selector is a string or an array of representation names"))
    }
  }

  public func encode(to encoder: Encoder) throws {
    var container = encoder.singleValueContainer()
    switch self {
    case .names(let names): try container.encode(names)
    default: try container.encode(stringValue!)
    }
  }
}

/// Which examples of a dataset: the first `count` of a split (all when nil), or explicit ids.
public struct ExampleSelection: Codable, Hashable, Sendable {
  public enum Split: String, WireStringEnum {
    case test, train
  }

  public var split: Split
  /// The first `count` examples of the split; nil (with `ids` nil): all of them.
  public var count: Int?
  /// Explicit example indices, instead of `count` (the spec does not say what both mean).
  public var ids: [Int]?

  public init(split: Split, count: Int? = nil, ids: [Int]? = nil) {
    self.split = split
    self.count = count
    self.ids = ids
  }

  enum CodingKeys: String, CodingKey { case split, count, ids }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(split: try c.value(.split), count: try c.ifPresent(.count), ids: try c.ifPresent(.ids))
  }
}

/// A training job's state. `interrupted`: the daemon stopped or died while it ran; resumable.
public enum JobState: String, WireStringEnum {
  case queued, running, finished, failed, cancelled, interrupted

  /// Whether the job has stopped for good or until resumed.
  public var hasEnded: Bool { self != .queued && self != .running }
}

/// A request whose doc is one job id (`WATCH`, `CANCEL`).
public struct JobRequest: Codable, Hashable, Sendable {
  public var job: UInt64

  public init(job: UInt64) { self.job = job }

  enum CodingKeys: String, CodingKey { case job }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(job: try c.value(.job))
  }
}

/// A request whose doc is one model name (`DESCRIBE`, `DELETE_MODEL`).
public struct ModelRequest: Codable, Hashable, Sendable {
  public var model: String

  public init(model: String) { self.model = model }

  enum CodingKeys: String, CodingKey { case model }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(model: try c.value(.model))
  }

  /// `[A-Za-z0-9._-]{1,64}`, not starting with `.`.
  public static func isValidName(_ name: String) -> Bool {
    let bytes = Array(name.utf8)
    guard (1...64).contains(bytes.count), bytes.first != UInt8(ascii: ".") else { return false }
    return bytes.allSatisfy { byte in
      switch byte {
      case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
           UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"),
           UInt8(ascii: "-"):
        return true
      default:
        return false
      }
    }
  }
}
