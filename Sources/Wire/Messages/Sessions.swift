// SPEC.md section 7, "Foreign models": SESSION_OPEN (0x001C), SESSION_BATCH (0x001D),
// SESSION_CLOSE (0x001E), FOREIGN_MODELS (0x001F). Another tool's network (PyTorch, JAX) sends
// its activations batch by batch; the daemon keeps only their Grams.

/// One representation a session declares: its name and the dimensions of one example.
public struct ForeignRepresentation: Codable, Hashable, Sendable {
  public var name: String
  /// Per-example dimensions (`[64, 8, 8]`); a batch's tensor is `[n] + shape`.
  public var shape: [Int]
  /// The residual block it belongs to (0, 1, ... in forward order); nil: outside every block.
  /// Only block-structure detection reads it.
  public var block: Int?
  /// Declares this representation a per-channel affine map of an earlier one (an inference
  /// BatchNorm of its convolution): it is never sent, its Gram comes from the other's
  /// per-channel Grams (SPEC.md section 7, "Derived representations").
  public var channelAffine: ChannelAffine?

  public init(name: String, shape: [Int], block: Int? = nil, channelAffine: ChannelAffine? = nil) {
    self.name = name
    self.shape = shape
    self.block = block
    self.channelAffine = channelAffine
  }

  /// The product of `shape` (features per example); nil on overflow or a negative dimension.
  public var features: Int? {
    var product = 1
    for d in shape {
      guard d >= 0 else { return nil }
      let (p, overflow) = product.multipliedReportingOverflow(by: d)
      if overflow { return nil }
      product = p
    }
    return product
  }

  enum CodingKeys: String, CodingKey {
    case name, shape, block
    case channelAffine = "channel_affine"
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(name: try c.value(.name), shape: try c.value(.shape), block: try c.ifPresent(.block),
              channelAffine: try c.ifPresent(.channelAffine))
  }
}

/// `y[c, ...] = scale[c] * x[c, ...] + shift[c]` with x the representation named `of` (declared
/// before, with the same shape, its first per-example dimension the channels).
public struct ChannelAffine: Codable, Hashable, Sendable {
  public var of: String
  public var scale: [Double]
  public var shift: [Double]

  public init(of: String, scale: [Double], shift: [Double]) {
    self.of = of
    self.scale = scale
    self.shift = shift
  }

  enum CodingKeys: String, CodingKey { case of, scale, shift }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(of: try c.value(.of), scale: try c.value(.scale), shift: try c.value(.shift))
  }
}

/// `SESSION_OPEN`: a foreign model's name, its client-chosen fingerprint and representations.
public struct SessionOpenRequest: Codable, Hashable, Sendable {
  public var model: String
  public var fingerprint: String
  public var representations: [ForeignRepresentation]

  public init(model: String, fingerprint: String, representations: [ForeignRepresentation]) {
    self.model = model
    self.fingerprint = fingerprint
    self.representations = representations
  }

  enum CodingKeys: String, CodingKey { case model, fingerprint, representations }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(model: try c.value(.model), fingerprint: try c.value(.fingerprint),
              representations: try c.value(.representations))
  }
}

/// `SESSION_OPEN_OK`.
public struct SessionOpenResponse: Codable, Hashable, Sendable {
  public var session: UInt64
  public var model: String
  public var fingerprint: String
  /// The foreign model's Gram cache key, 16 hex digits.
  public var key: String
  /// The fingerprint was known (under this or another name) with these representations: the
  /// batches it already holds count for this session too.
  public var reopened: Bool
  /// The fingerprint `model` was bound to before this request, when it was another one.
  public var replaced: String?

  public init(session: UInt64, model: String, fingerprint: String, key: String, reopened: Bool,
              replaced: String? = nil) {
    self.session = session
    self.model = model
    self.fingerprint = fingerprint
    self.key = key
    self.reopened = reopened
    self.replaced = replaced
  }

  enum CodingKeys: String, CodingKey { case session, model, fingerprint, key, reopened, replaced }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(session: try c.value(.session), model: try c.value(.model),
              fingerprint: try c.value(.fingerprint), key: try c.value(.key),
              reopened: try c.value(.reopened), replaced: try c.ifPresent(.replaced))
  }
}

/// `SESSION_BATCH`: one batch (or part of its representations). Its tensors are named after
/// representations: `f32|f16|bf16[n, ...shape]`.
public struct SessionBatchRequest: Codable, Hashable, Sendable {
  public var session: UInt64
  /// A client key, or a dataset reference `DATASET:SPLIT[a:b]` (`cifar10:test[0:256]`).
  public var batch: String
  /// The tensors live in the memfd that came with the frame (SPEC.md, "Shared-memory
  /// batches") instead of in the payload.
  public var memfd: [SharedTensor]?

  /// One tensor in a memfd: its descriptor and the byte offset of its data in the file.
  public struct SharedTensor: Codable, Hashable, Sendable {
    public var name: String
    public var dtype: WireTensor.DType
    public var shape: [Int]
    public var offset: Int

    public init(name: String, dtype: WireTensor.DType, shape: [Int], offset: Int) {
      self.name = name
      self.dtype = dtype
      self.shape = shape
      self.offset = offset
    }

    public var descriptor: WireTensor.Descriptor { .init(name: name, dtype: dtype, shape: shape) }
  }

  public init(session: UInt64, batch: String, memfd: [SharedTensor]? = nil) {
    self.session = session
    self.batch = batch
    self.memfd = memfd
  }

  enum CodingKeys: String, CodingKey { case session, batch, memfd }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(session: try c.value(.session), batch: try c.value(.batch), memfd: try c.ifPresent(.memfd))
  }
}

extension SessionBatchRequest {
  /// SPEC.md section 7, "Shared-memory batches": the byte range of every `memfd` tensor in a
  /// file of `fileSize` bytes. Each offset must be non-negative, a multiple of its dtype's size,
  /// and put the whole tensor inside the file (overflow-checked: nothing in the doc is
  /// trusted); otherwise `INVALID_ARGUMENT` naming the key.
  public static func sharedRanges(_ tensors: [SharedTensor], fileSize: Int) throws(WireError) -> [Range<Int>] {
    try tensors.enumerated().map { (i, t) throws(WireError) -> Range<Int> in
      let key = "memfd[\(i)]"
      guard let count = WireTensor.byteCount(dtype: t.dtype, shape: t.shape) else {
        throw WireError(.invalidArgument, "key '\(key).shape': tensor '\(t.name)': \(t.shape) is negative or too large")
      }
      guard t.offset >= 0, t.offset % t.dtype.byteWidth == 0 else {
        throw WireError(.invalidArgument, "key '\(key).offset': tensor '\(t.name)': offset \(t.offset) is not a "
                        + "non-negative multiple of \(t.dtype.byteWidth) (the size of \(t.dtype.rawValue))")
      }
      guard fileSize >= 0, t.offset <= fileSize, count <= fileSize - t.offset else {
        throw WireError(.invalidArgument, "key '\(key).offset': tensor '\(t.name)' (\(t.dtype.rawValue)\(t.shape), "
                        + "\(count) bytes at offset \(t.offset)) does not fit in the memfd, which holds \(fileSize) bytes")
      }
      return t.offset..<(t.offset + count)
    }
  }
}

/// `SESSION_BATCH_OK`.
public struct SessionBatchResponse: Codable, Hashable, Sendable {
  public var batch: String
  /// Received in this frame, in the frame's order.
  public var representations: [String]
  public var examples: Int
  /// Declared representations the model still lacks for this batch.
  public var pending: [String]

  public init(batch: String, representations: [String], examples: Int, pending: [String]) {
    self.batch = batch
    self.representations = representations
    self.examples = examples
    self.pending = pending
  }

  enum CodingKeys: String, CodingKey { case batch, representations, examples, pending }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(batch: try c.value(.batch), representations: try c.value(.representations),
              examples: try c.value(.examples), pending: try c.value(.pending))
  }
}

/// `SESSION_CLOSE`: doc `session`.
public struct SessionRequest: Codable, Hashable, Sendable {
  public var session: UInt64

  public init(session: UInt64) { self.session = session }

  enum CodingKeys: String, CodingKey { case session }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(session: try c.value(.session))
  }
}

public typealias SessionCloseRequest = SessionRequest

/// `SESSION_CLOSE_OK`: what the model holds after the session.
public struct SessionCloseResponse: Codable, Hashable, Sendable {
  public var session: UInt64
  public var model: String
  /// Batches with every declared representation.
  public var batches: Int
  /// Batches still lacking some representation (at most 100 names).
  public var incomplete: [String]

  public init(session: UInt64, model: String, batches: Int, incomplete: [String]) {
    self.session = session
    self.model = model
    self.batches = batches
    self.incomplete = incomplete
  }

  enum CodingKeys: String, CodingKey { case session, model, batches, incomplete }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(session: try c.value(.session), model: try c.value(.model),
              batches: try c.value(.batches), incomplete: try c.value(.incomplete))
  }
}

/// `FOREIGN_MODELS`: doc `{}`.
public typealias ForeignModelsRequest = EmptyDoc

/// `FOREIGN_MODELS_OK`: every foreign model name the daemon holds.
public struct ForeignModelsResponse: Codable, Hashable, Sendable {
  public struct Batch: Codable, Hashable, Sendable {
    public var batch: String
    public var examples: Int
    /// Representations received (Grams may since have been evicted from the cache).
    public var representations: Int

    public init(batch: String, examples: Int, representations: Int) {
      self.batch = batch
      self.examples = examples
      self.representations = representations
    }

    enum CodingKeys: String, CodingKey { case batch, examples, representations }

    public init(from decoder: Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      self.init(batch: try c.value(.batch), examples: try c.value(.examples),
                representations: try c.value(.representations))
    }
  }

  public struct Model: Codable, Hashable, Sendable {
    public var model: String
    public var fingerprint: String
    public var key: String
    public var representations: [ForeignRepresentation]
    /// Open sessions on this fingerprint.
    public var sessions: [UInt64]
    /// In the order they were first received.
    public var batches: [Batch]

    public init(model: String, fingerprint: String, key: String,
                representations: [ForeignRepresentation], sessions: [UInt64], batches: [Batch]) {
      self.model = model
      self.fingerprint = fingerprint
      self.key = key
      self.representations = representations
      self.sessions = sessions
      self.batches = batches
    }

    enum CodingKeys: String, CodingKey { case model, fingerprint, key, representations, sessions, batches }

    public init(from decoder: Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      self.init(model: try c.value(.model), fingerprint: try c.value(.fingerprint),
                key: try c.value(.key), representations: try c.value(.representations),
                sessions: try c.value(.sessions), batches: try c.value(.batches))
    }
  }

  public var models: [Model]

  public init(models: [Model]) { self.models = models }

  enum CodingKeys: String, CodingKey { case models }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(models: try c.value(.models))
  }
}

/// A batch named `DATASET:SPLIT[a:b]`: examples a..<b of a dataset's split, in order.
public struct DatasetReference: Hashable, Sendable {
  public var dataset: String
  public var split: ExampleSelection.Split
  public var start: Int
  public var end: Int

  public init(dataset: String, split: ExampleSelection.Split, start: Int, end: Int) {
    self.dataset = dataset
    self.split = split
    self.start = start
    self.end = end
  }

  public var count: Int { end - start }
  public var text: String { "\(dataset):\(split.rawValue)[\(start):\(end)]" }

  public enum ParseError: Error, Equatable, CustomStringConvertible {
    /// Looks like a reference (`NAME:WORD[...]`) but is not a valid one.
    case invalid(String)
    public var description: String {
      switch self { case .invalid(let s): return s }
    }
  }

  /// nil: not a reference (a client key). A string of the form `NAME:WORD[...]` must be a
  /// valid reference: `split` test or train, 0 <= a < b, decimal without signs.
  public static func parse(_ text: String) throws(ParseError) -> DatasetReference? {
    guard text.hasSuffix("]"), let colon = text.firstIndex(of: ":"),
          let open = text[colon...].firstIndex(of: "[") else { return nil }
    let dataset = String(text[..<colon]), splitText = String(text[text.index(after: colon)..<open])
    let inner = text[text.index(after: open)..<text.index(before: text.endIndex)]
    guard !dataset.isEmpty, !splitText.isEmpty,
          !dataset.contains("["), !splitText.contains(":") else { return nil }
    guard let split = ExampleSelection.Split(rawValue: splitText) else {
      throw .invalid("\"\(text)\": split \"\(splitText)\" is not test or train")
    }
    let parts = inner.split(separator: ":", omittingEmptySubsequences: false)
    func number(_ s: Substring) -> Int? {
      guard !s.isEmpty, s.count <= 9, s.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
      return Int(s)
    }
    guard parts.count == 2, let a = number(parts[0]), let b = number(parts[1]) else {
      throw .invalid("\"\(text)\": expected [a:b] with decimal a < b")
    }
    guard a < b else { throw .invalid("\"\(text)\": the range \(a):\(b) is empty") }
    return DatasetReference(dataset: dataset, split: split, start: a, end: b)
  }
}
