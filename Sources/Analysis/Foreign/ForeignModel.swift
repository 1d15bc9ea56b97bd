import Engine

/// A network whose representations arrive from outside (a client's PyTorch or JAX model): its
/// name, the fingerprint its client chose (e.g. a checkpoint hash) and its representations.
/// Its Grams live in the same cache as a stored model's, under `key`, so every analysis that
/// needs only Grams works on it.
public struct ForeignModel: Sendable, Hashable {
  public struct Representation: Sendable, Hashable {
    public let name: String
    /// Features per example (the product of the dimensions after the first).
    public let features: Int
    public init(name: String, features: Int) {
      self.name = name
      self.features = features
    }
  }

  public let name: String
  public let fingerprint: String
  public let representations: [Representation]

  public init(name: String, fingerprint: String, representations: [Representation]) {
    self.name = name
    self.fingerprint = fingerprint
    self.representations = representations
  }

  /// The Gram cache's model key: the client's fingerprint, kept apart from stored models' keys
  /// (which hash weights) by a prefix.
  public var key: UInt64 { Self.key(fingerprint: fingerprint) }

  public static func key(fingerprint: String) -> UInt64 {
    var f = Fingerprint()
    f.add("foreign-model")
    f.add(fingerprint)
    return f.value
  }

  /// A client-chosen batch key ("ids:...", "my-batch-7") as a cache batch key. Dataset
  /// references are resolved to their images by the caller and keyed as stored models' batches
  /// are (`Fingerprint.of(batch:in:)`), so that foreign and stored models share them.
  public static func batchKey(_ key: String) -> UInt64 {
    var f = Fingerprint()
    f.add("foreign-batch")
    f.add(key)
    return f.value
  }

  public func representation(_ name: String) -> Representation? {
    representations.first { $0.name == name }
  }
}
