import Analysis
import Foundation
import Wire

/// Foreign models and the sessions that stream their activations (SPEC.md section 7, "Foreign
/// models"). Sessions belong to the daemon, not to a connection: a client that goes away
/// mid-batch loses only the frames it did not send. Everything here is in memory, like the
/// Grams it describes: a restarted daemon knows no foreign model.
///
/// A fingerprint is one model (its cache key); a name is bound to one fingerprint at a time
/// (rebinding a name to another fingerprint replaces the binding, not the old Grams).
final class SessionManager: @unchecked Sendable {
  /// Open sessions beyond this close the least recently used one (its Grams stay).
  static let maxSessions = 1024
  /// SESSION_CLOSE names at most this many incomplete batches.
  static let maxIncompleteNames = 100

  /// What one batch of a model holds.
  struct BatchRecord: Sendable {
    var name: String
    var examples: Int
    var received: Set<String>
    var reference: DatasetReference?
  }

  /// One fingerprint's declaration and batches (a snapshot when handed out).
  struct Definition: Sendable {
    var model: ForeignModel
    var declared: [ForeignRepresentation]
    var batches: [UInt64: BatchRecord] = [:]
    /// Batch keys in the order they were first received.
    var order: [UInt64] = []

    /// Batches holding every one of `representations`, in the order received.
    func batches(holding representations: [String]) -> [(key: UInt64, record: BatchRecord)] {
      order.compactMap { key in
        guard let record = batches[key], representations.allSatisfy(record.received.contains) else { return nil }
        return (key, record)
      }
    }
  }

  struct Session: Sendable {
    let id: UInt64
    let name: String
    let fingerprint: String
    var lastUsed: UInt64
  }

  let grams: ForeignGrams
  private let lock = NSLock()
  private var definitions: [String: Definition] = [:]
  private var names: [String: String] = [:]
  private var sessions: [UInt64: Session] = [:]
  private var nextID: UInt64 = 1
  private var clock: UInt64 = 0

  init(cache: GramCache) {
    grams = ForeignGrams(cache: cache)
  }

  // MARK: Sessions

  /// SESSION_OPEN after its doc was checked: a new session on `fingerprint`, `name` bound to it.
  /// CONFLICT when the fingerprint was declared with other representations.
  func open(name: String, fingerprint: String,
            representations: [ForeignRepresentation]) throws(WireError) -> SessionOpenResponse {
    let model = ForeignModel(name: name, fingerprint: fingerprint, representations: representations.map {
      ForeignModel.Representation(name: $0.name, features: $0.features ?? 0)
    })
    lock.lock()
    defer { lock.unlock() }
    do {
      var reopened = false
      if let known = definitions[fingerprint] {
        guard known.declared == representations else {
          throw WireError(.conflict, "fingerprint \"\(fingerprint)\" was opened with other representations "
                          + "(\(Self.describe(known.declared))); one fingerprint is one model: "
                          + "choose another fingerprint for another network")
        }
        reopened = true
      } else {
        definitions[fingerprint] = Definition(model: model, declared: representations)
      }
      let previous = names[name]
      names[name] = fingerprint
      let id = nextID
      nextID += 1
      clock += 1
      sessions[id] = Session(id: id, name: name, fingerprint: fingerprint, lastUsed: clock)
      if sessions.count > Self.maxSessions,
         let oldest = sessions.values.min(by: { $0.lastUsed < $1.lastUsed }) {
        sessions[oldest.id] = nil
        dropIfUnused(oldest.fingerprint)
      }
      if let previous, previous != fingerprint { dropIfUnused(previous) }
      return SessionOpenResponse(session: id, model: name, fingerprint: fingerprint,
                                 key: hex16(model.key), reopened: reopened,
                                 replaced: previous == fingerprint ? nil : previous)
    }
  }

  /// The session's model, marking the session used. NOT_FOUND for an unknown or closed id.
  func session(_ id: UInt64) throws(WireError) -> (session: Session, definition: Definition) {
    lock.lock()
    defer { lock.unlock() }
    do {
      guard var session = sessions[id], let definition = definitions[session.fingerprint] else {
        throw notFound("no session \(id) (closed, replaced by newer ones, or never opened; "
                       + "sessions do not outlive the daemon): open one with SESSION_OPEN")
      }
      clock += 1
      session.lastUsed = clock
      sessions[id] = session
      return (session, definition)
    }
  }

  /// SESSION_CLOSE: the session ends; the model and its Grams stay.
  func close(_ id: UInt64) throws(WireError) -> SessionCloseResponse {
    lock.lock()
    defer { lock.unlock() }
    do {
      guard let session = sessions.removeValue(forKey: id) else {
        throw notFound("no session \(id) (closed, replaced by newer ones, or never opened)")
      }
      defer { dropIfUnused(session.fingerprint) }
      let definition = definitions[session.fingerprint]
      let all = definition?.declared.map(\.name) ?? []
      var complete = 0
      var incomplete: [String] = []
      for key in definition?.order ?? [] {
        guard let record = definition?.batches[key] else { continue }
        if all.allSatisfy(record.received.contains) {
          complete += 1
        } else if incomplete.count < Self.maxIncompleteNames {
          incomplete.append(record.name)
        }
      }
      return SessionCloseResponse(session: id, model: session.name, batches: complete, incomplete: incomplete)
    }
  }

  // MARK: Batches

  /// Before a batch's Grams are computed: its example count is recorded, or must equal the one
  /// recorded (CONFLICT naming both).
  func reserve(_ fingerprint: String, batch key: UInt64, name: String, examples: Int,
               reference: DatasetReference?) throws(WireError) {
    lock.lock()
    defer { lock.unlock() }
    do {
      guard var definition = definitions[fingerprint] else {
        throw notFound("the session's model was closed while the batch arrived; open a session again")
      }
      if let record = definition.batches[key] {
        guard record.examples == examples else {
          throw WireError(.conflict, "batch \(name) of model \"\(definition.model.name)\" holds \(record.examples) "
                          + "examples (from an earlier frame); this frame's tensors have \(examples): every "
                          + "representation of one batch has the same examples")
        }
        return
      }
      definition.batches[key] = BatchRecord(name: name, examples: examples, received: [], reference: reference)
      definition.order.append(key)
      definitions[fingerprint] = definition
    }
  }

  /// After a batch's Grams went into the cache: what the batch now holds. A batch that holds
  /// nothing (every representation of its first frame failed) is forgotten, so that its
  /// example count binds nothing. Returns the declared representations it still lacks.
  @discardableResult
  func record(_ fingerprint: String, batch key: UInt64, received: [String]) -> [String] {
    lock.withLock {
      guard var definition = definitions[fingerprint], var record = definition.batches[key] else { return [] }
      record.received.formUnion(received)
      if record.received.isEmpty {
        definition.batches[key] = nil
        definition.order.removeAll { $0 == key }
      } else {
        definition.batches[key] = record
      }
      definitions[fingerprint] = definition
      return definition.declared.map(\.name).filter { !record.received.contains($0) }
    }
  }

  // MARK: Lookups

  /// The model a name is bound to (a snapshot).
  func model(named name: String) -> Definition? {
    lock.withLock { names[name].flatMap { definitions[$0] } }
  }

  /// FOREIGN_MODELS: every name, sorted.
  func list() -> ForeignModelsResponse {
    lock.withLock {
      let models = names.keys.sorted().compactMap { name -> ForeignModelsResponse.Model? in
        guard let fingerprint = names[name], let d = definitions[fingerprint] else { return nil }
        let open = sessions.values.filter { $0.fingerprint == fingerprint }.map(\.id).sorted()
        let batches = d.order.compactMap { key in
          d.batches[key].map {
            ForeignModelsResponse.Batch(batch: $0.name, examples: $0.examples, representations: $0.received.count)
          }
        }
        return ForeignModelsResponse.Model(model: name, fingerprint: fingerprint, key: hex16(d.model.key),
                                           representations: d.declared, sessions: open, batches: batches)
      }
      return ForeignModelsResponse(models: models)
    }
  }

  // MARK: Private (lock held)

  /// A fingerprint no name and no session refers to is forgotten (its Grams stay in the cache
  /// until evicted; a new session on it starts its batch records afresh).
  private func dropIfUnused(_ fingerprint: String) {
    guard !names.values.contains(fingerprint),
          !sessions.values.contains(where: { $0.fingerprint == fingerprint }),
          let definition = definitions.removeValue(forKey: fingerprint) else { return }
    grams.forget(model: definition.model.key)
  }

  private static func describe(_ reps: [ForeignRepresentation]) -> String {
    let shown = reps.prefix(4).map { "\($0.name) \($0.shape)" }.joined(separator: ", ")
    return "\(reps.count): " + shown + (reps.count > 4 ? ", ..." : "")
  }
}
