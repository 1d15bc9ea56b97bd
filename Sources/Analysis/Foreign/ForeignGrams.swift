import CKernels
import Engine
import Foundation

public enum ForeignGramError: Error, CustomStringConvertible, Equatable {
  case unknownRepresentation(String)
  case shape(String)
  case nonFinite(String)
  /// The batch key was used before with other data (another Gram for the same key).
  case batchKeyReused(representation: String, batch: String)
  /// A heatmap needs a Gram the cache does not hold (never sent, or evicted).
  case missing([String])

  public var description: String {
    switch self {
    case .unknownRepresentation(let r): return "representation \(r) was not declared by the session"
    case .shape(let s): return s
    case .nonFinite(let r): return "representation \(r) holds NaN or infinite values"
    case .batchKeyReused(let r, let b):
      return "batch \(b) of representation \(r) was sent before with other data: a batch key names one set of examples"
    case .missing(let keys):
      return "no Gram for " + keys.prefix(5).joined(separator: ", ")
        + (keys.count > 5 ? " and \(keys.count - 5) more" : "")
        + " (never sent, or evicted from the cache: send the batch again)"
    }
  }
}

/// Foreign activations in, centred Grams out: each arriving batch of a representation
/// ([n][features] fp32, any layout: CKA does not depend on the order of features) becomes its
/// centred Gram entry in the cache, and the activations are not kept. A batch key names one set
/// of examples: the same key with different data is refused (the entries' contents are
/// compared by a hash of the packed Gram).
public final class ForeignGrams: @unchecked Sendable {
  public let cache: GramCache
  private let lock = NSLock()
  /// (model key, representation, batch key) -> hash of the packed centred Gram.
  private var seen: [GramKey: UInt64] = [:]

  public init(cache: GramCache) { self.cache = cache }

  /// What one frame has added (keys cached for the first time), so that a frame refused after
  /// some of its tensors went in can be taken back whole (`undo`).
  public final class Additions {
    fileprivate var keys: [GramKey] = []
    public init() {}
  }

  /// Ingests one representation of one batch; returns the centred entry (also in the cache).
  /// Non-finite values are found in the Gram, not by a pass over the activations: a NaN or an
  /// infinity in x makes a diagonal entry non-finite (through its column's mean), and so does a
  /// finite x too large for f32 products. Such a batch is refused (`nonFinite`), nothing cached.
  @discardableResult
  public func ingest(_ model: ForeignModel, representation: String, batchKey: UInt64,
                     batchName: String, activations x: UnsafePointer<Float>, examples n: Int,
                     features d: Int, additions: Additions? = nil, context: KernelContext) throws -> GramEntry {
    guard let rep = model.representation(representation) else {
      throw ForeignGramError.unknownRepresentation(representation)
    }
    guard d == rep.features else {
      throw ForeignGramError.shape("representation \(representation) has \(rep.features) features per example; the batch has \(d)")
    }
    guard n >= 4 else { throw ForeignGramError.shape("a batch needs at least 4 examples (the unbiased estimator), got \(n)") }
    let entry = try GramForms.centred(x, m: n, d: d, context: context)
    guard entry.isFinite else { throw ForeignGramError.nonFinite(representation) }
    try store([(representation, entry)], model: model, batchKey: batchKey, batchName: batchName, additions: additions)
    return entry
  }

  /// Ingests one representation of one batch, laid out channels first ([n][C][positions]),
  /// together with a representation derived from it, y[c] = scale[c] x[c] + shift[c] (its Gram
  /// from x's per-channel Grams: y itself never arrives). Returns both entries. Non-finite
  /// values as in the other `ingest`.
  @discardableResult
  public func ingest(_ model: ForeignModel, representation: String, derived: String, scale: [Float],
                     shift: [Float], batchKey: UInt64, batchName: String, activations x: UnsafePointer<Float>,
                     examples n: Int, channels: Int, positions: Int, additions: Additions? = nil,
                     context: KernelContext) throws -> (GramEntry, GramEntry) {
    guard let rep = model.representation(representation) else {
      throw ForeignGramError.unknownRepresentation(representation)
    }
    guard channels * positions == rep.features, scale.count == channels, shift.count == channels else {
      throw ForeignGramError.shape("representation \(representation) has \(rep.features) features per example, "
                                   + "not \(channels) channels of \(positions) positions with one scale and shift each")
    }
    guard n >= 4 else { throw ForeignGramError.shape("a batch needs at least 4 examples (the unbiased estimator), got \(n)") }
    let (entry, derivedEntry) = try GramForms.centredWithAffine(
      x, m: n, positions: positions, channels: channels, channelsFirst: true, scale: scale,
      shift: shift, full: Tensor([n * n]), affineFull: Tensor([n * n]), context: context)
    guard entry.isFinite else { throw ForeignGramError.nonFinite(representation) }
    guard derivedEntry.isFinite else { throw ForeignGramError.nonFinite(derived) }
    try store([(representation, entry), (derived, derivedEntry)], model: model, batchKey: batchKey,
              batchName: batchName, additions: additions)
    return (entry, derivedEntry)
  }

  /// Takes back what a frame added: its first-time keys leave the cache and the record of
  /// batch contents (keys that held the same data before the frame stay).
  public func undo(_ additions: Additions) {
    lock.withLock { for key in additions.keys { seen[key] = nil } }
    for key in additions.keys { cache.remove(key) }
    additions.keys.removeAll()
  }

  /// Caches the entries, refusing (and caching none of them) when a batch key was used before
  /// with other data: the entries' contents are compared by a hash of the packed Gram.
  private func store(_ entries: [(String, GramEntry)], model: ForeignModel, batchKey: UInt64,
                     batchName: String, additions: Additions?) throws {
    let hashed = entries.map { rep, entry -> (GramKey, UInt64, GramEntry) in
      var f = Fingerprint()
      f.add(UnsafeRawBufferPointer(start: entry.pointer, count: entry.count * 4))
      return (GramKey(model: model.key, representation: rep, batch: batchKey, form: .centred), f.value, entry)
    }
    try lock.withLock {
      for (key, value, _) in hashed {
        if let old = seen[key], old != value {
          throw ForeignGramError.batchKeyReused(representation: key.representation, batch: batchName)
        }
      }
      for (key, value, _) in hashed where seen.updateValue(value, forKey: key) == nil {
        additions?.keys.append(key)
      }
    }
    for (key, _, entry) in hashed { cache.insert(entry, for: key) }
  }

  /// Forgets what a model's batches held (its Grams stay in the cache until evicted).
  public func forget(model key: UInt64) {
    lock.withLock { seen = seen.filter { $0.key.model != key } }
  }
}
