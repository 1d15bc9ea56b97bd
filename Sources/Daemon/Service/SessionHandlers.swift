import Analysis
import Engine
import Foundation
import Wire

/// Bounds on foreign models (SPEC.md section 7, "Foreign models").
enum SessionLimits {
  static let maxFingerprintBytes = 128
  static let maxRepresentations = 4096
  static let maxNameBytes = 128
  /// A representation's features per example (the frame limit bounds a batch's bytes anyway).
  static let maxFeatures = 1 << 26
  static let maxBatchKeyBytes = 256
  /// A batch's Grams are n^2 floats per representation: as HEATMAP's batch_size.
  static let maxExamples = AnalysisLimits.maxHeatmapBatch
}

extension DaemonService {
  // MARK: SESSION_OPEN

  func sessionOpen(_ request: IncomingRequest, _ reply: ReplyChannel) throws {
    let r = try request.decode(SessionOpenRequest.self)
    try ModelStore.validateName(r.model)
    try checkText(r.fingerprint, key: "fingerprint", maxBytes: SessionLimits.maxFingerprintBytes)
    guard (1...SessionLimits.maxRepresentations).contains(r.representations.count) else {
      throw invalid("representations", "\(r.representations.count) representations; 1 to \(SessionLimits.maxRepresentations)")
    }
    var seen = Set<String>()
    var lastBlock = -1
    for (i, rep) in r.representations.enumerated() {
      let key = "representations[\(i)]"
      try checkText(rep.name, key: key + ".name", maxBytes: SessionLimits.maxNameBytes)
      guard seen.insert(rep.name).inserted else { throw invalid(key + ".name", "\"\(rep.name)\" is declared twice") }
      guard rep.shape.allSatisfy({ $0 >= 1 }), let features = rep.features,
            (1...SessionLimits.maxFeatures).contains(features) else {
        throw invalid(key + ".shape", "\(rep.shape): per-example dimensions, each at least 1, "
                      + "at most \(SessionLimits.maxFeatures) features in all ([] is one feature)")
      }
      if let block = rep.block {
        guard block >= 0, block >= lastBlock else {
          throw invalid(key + ".block", "\(block): blocks are numbered from 0 in forward order "
                        + "(non-decreasing over the representations)")
        }
        lastBlock = block
      }
      if let affine = rep.channelAffine {
        try checkChannelAffine(affine, of: rep, declared: r.representations[..<i], key: key + ".channel_affine")
      }
    }
    try respond(reply, .sessionOpenOK, try sessions.open(name: r.model, fingerprint: r.fingerprint,
                                                          representations: r.representations))
  }

  /// A derived representation's declaration: the representation it maps is declared before it,
  /// is not derived itself, has no other derived one, has its shape, and that shape is
  /// channels first with one finite scale and shift per channel.
  private func checkChannelAffine(_ affine: ChannelAffine, of rep: ForeignRepresentation,
                                  declared before: ArraySlice<ForeignRepresentation>, key: String) throws(WireError) {
    guard let source = before.first(where: { $0.name == affine.of }) else {
      throw invalid(key + ".of", "\"\(affine.of)\" is not a representation declared before \(rep.name)")
    }
    guard source.channelAffine == nil else {
      throw invalid(key + ".of", "\(affine.of) is itself derived; derive from the representation it maps")
    }
    if let other = before.first(where: { $0.channelAffine?.of == affine.of }) {
      throw invalid(key + ".of", "\(other.name) is already derived from \(affine.of) (one per representation)")
    }
    guard source.shape == rep.shape, let channels = rep.shape.first else {
      throw invalid(key + ".of", "\(rep.name) has shape \(rep.shape) and \(affine.of) \(source.shape): a "
                    + "per-channel affine map keeps the shape, whose first dimension is the channels")
    }
    for (name, values) in [("scale", affine.scale), ("shift", affine.shift)] {
      guard values.count == channels else {
        throw invalid(key + "." + name, "\(values.count) values; one per channel (\(channels))")
      }
      guard values.allSatisfy({ $0.isFinite && abs($0) <= Double(Float.greatestFiniteMagnitude) }) else {
        throw invalid(key + "." + name, "holds a value that is not a finite float")
      }
    }
  }

  // MARK: SESSION_BATCH

  func sessionBatch(_ request: IncomingRequest, _ reply: ReplyChannel) throws {
    // A frame carries up to 64 MiB of activations, in its payload or in a memfd that came with
    // it; either way they are read where they lie (f32 at an aligned offset is never copied).
    let layout = try Payload.Layout.of(request.payload)
    let r = try layout.docPayload.decode(SessionBatchRequest.self)
    let (session, definition) = try sessions.session(r.session)
    try checkText(r.batch, key: "batch", maxBytes: SessionLimits.maxBatchKeyBytes)
    let (batchKey, reference) = try resolveBatch(r.batch, key: "batch")
    let target = BatchTarget(fingerprint: session.fingerprint, modelName: session.name, definition: definition,
                             batchKey: batchKey, batchName: r.batch, reference: reference)
    let context = analysisContext()
    let stored: (received: [String], examples: Int)
    if let shared = r.memfd {
      guard layout.tensors.isEmpty else {
        throw invalid("memfd", "the frame also carries tensors in its payload: a batch's tensors are in one or the other")
      }
      guard !shared.isEmpty else {
        throw invalid("memfd", "empty: list the tensors the memfd holds ({name, dtype, shape, offset})")
      }
      guard let descriptor = request.descriptor else {
        throw invalid("memfd", "no file descriptor came with this frame: send the memfd with SCM_RIGHTS, "
                      + "in a sendmsg that carries only this frame's bytes")
      }
      let mapping = try SharedBatchMapping(descriptor.fd, tensors: shared,
                                           reusing: reply.connection?.object(MemfdMappings.self) { MemfdMappings() })
      stored = try ingest(shared.indices.map { (shared[$0].descriptor, mapping.bytes(at: $0)) },
                          into: target, context: context)
    } else {
      guard !layout.tensors.isEmpty else {
        throw invalid("tensors", "none: SESSION_BATCH carries one tensor per representation, named after it")
      }
      stored = try request.payload.withUnsafeBytes { payload in
        try ingest(layout.tensors.map { ($0.descriptor, UnsafeRawBufferPointer(rebasing: payload[$0.bytes])) },
                   into: target, context: context)
      }
    }
    let pending = sessions.record(session.fingerprint, batch: batchKey, received: stored.received)
    try respond(reply, .sessionBatchOK, SessionBatchResponse(batch: r.batch, representations: stored.received,
                                                            examples: stored.examples, pending: pending))
  }

  /// Where one SESSION_BATCH frame goes.
  struct BatchTarget {
    let fingerprint: String
    let modelName: String
    let definition: SessionManager.Definition
    let batchKey: UInt64
    let batchName: String
    let reference: DatasetReference?
  }

  /// Checks every tensor of a frame (name, dtype, shape, example count) before any Gram is
  /// computed; then computes and stores the Gram of each in order. Non-finite values are found
  /// in the Grams (no pass over the activations of its own), and a frame refused at any point
  /// leaves nothing behind. Returns the representations stored and the batch's example count.
  private func ingest(_ tensors: [(descriptor: WireTensor.Descriptor, bytes: UnsafeRawBufferPointer)],
                      into target: BatchTarget, context: KernelContext) throws -> (received: [String], examples: Int) {
    let declared = target.definition.declared
    var inputs: [(rep: ForeignRepresentation, values: ActivationValues)] = []
    var first: (name: String, n: Int)?
    for (t, bytes) in tensors where !inputs.contains(where: { $0.rep.name == t.name }) {
      guard let rep = declared.first(where: { $0.name == t.name }) else {
        throw notFound("tensor '\(t.name)': model \"\(target.modelName)\" declared no such representation "
                       + "(declared: \(declared.prefix(8).map(\.name).joined(separator: ", "))"
                       + (declared.count > 8 ? ", ..." : "") + ")")
      }
      if let affine = rep.channelAffine {
        throw invalid("tensors", "tensor '\(t.name)': \(rep.name) was declared a channel_affine of \(affine.of); "
                      + "its Gram comes with \(affine.of)'s, so it is not sent")
      }
      guard let values = ActivationValues(dtype: t.dtype, bytes: bytes) else {
        throw invalid("tensors", "tensor '\(t.name)' is \(t.dtype.rawValue); activations are f32, f16 or bf16")
      }
      guard t.shape.count == rep.shape.count + 1, Array(t.shape.dropFirst()) == rep.shape else {
        throw invalid("tensors", "tensor '\(t.name)' has shape \(t.shape); representation \(rep.name) "
                      + "was declared \(rep.shape), so its tensor is [n] + \(rep.shape)")
      }
      let n = t.shape[0]
      if let first, first.n != n {
        throw invalid("tensors", "tensor '\(t.name)' has \(n) examples but '\(first.name)' has \(first.n): "
                      + "every representation of one batch has the same examples")
      }
      first = first ?? (t.name, n)
      inputs.append((rep, values))
    }
    let n = first!.n
    guard (4...SessionLimits.maxExamples).contains(n) else {
      throw invalid("tensors", "a batch of \(n) examples; 4 to \(SessionLimits.maxExamples) (the unbiased estimator needs 4)")
    }
    if let reference = target.reference, reference.count != n {
      throw invalid("tensors", "the batch \(reference.text) is \(reference.count) examples; the tensors have \(n)")
    }

    try sessions.reserve(target.fingerprint, batch: target.batchKey, name: target.batchName, examples: n,
                         reference: target.reference)
    // Each source's derived representation (SESSION_OPEN allows one per source).
    let derivedOf = Dictionary(declared.compactMap { d in d.channelAffine.map { ($0.of, d) } },
                               uniquingKeysWith: { first, _ in first })
    var received: [String] = []
    let additions = ForeignGrams.Additions()
    // A refused frame stores nothing: what its earlier tensors added is taken back.
    func rollBack() {
      sessions.grams.undo(additions)
      sessions.record(target.fingerprint, batch: target.batchKey, received: [])
    }
    do {
      for (rep, values) in inputs {
        if let derived = derivedOf[rep.name], let affine = derived.channelAffine {
          let channels = rep.shape[0], features = rep.features ?? 0
          try values.withFloats { x in
            _ = try sessions.grams.ingest(target.definition.model, representation: rep.name, derived: derived.name,
                                          scale: affine.scale.map { Float($0) }, shift: affine.shift.map { Float($0) },
                                          batchKey: target.batchKey, batchName: target.batchName,
                                          activations: x.baseAddress!, examples: n, channels: channels,
                                          positions: features / channels, additions: additions, context: context)
          }
          received += [rep.name, derived.name]
          continue
        }
        try values.withFloats { x in
          _ = try sessions.grams.ingest(target.definition.model, representation: rep.name, batchKey: target.batchKey,
                                        batchName: target.batchName, activations: x.baseAddress!, examples: n,
                                        features: rep.features ?? 0, additions: additions, context: context)
        }
        received.append(rep.name)
      }
    } catch ForeignGramError.nonFinite(let name) {
      rollBack()
      throw nonFiniteError(name, inputs, context: context)
    } catch {
      rollBack()
      throw error
    }
    return (received, n)
  }

  /// The error of a tensor whose Gram is not finite (found after the Gram, not by a pass of
  /// its own): the first NaN or infinity in it, else values too large for f32 products.
  private func nonFiniteError(_ name: String, _ inputs: [(rep: ForeignRepresentation, values: ActivationValues)],
                              context: KernelContext) -> WireError {
    guard let (rep, values) = inputs.first(where: { $0.rep.name == name }) else {
      return invalid("tensors", "representation '\(name)' (a channel_affine map) has a Gram too large "
                     + "for f32: its scale makes the values overflow")
    }
    if let bad = values.withFloats({ context.firstNonfinite($0) }) {
      let value = values.withFloats { $0[bad] }
      return invalid("tensors", "tensor '\(name)' holds a non-finite value (\(value) at example "
                     + "\(bad / max(1, rep.features ?? 1)))")
    }
    return invalid("tensors", "tensor '\(name)' has values too large for f32: its Gram overflows "
                   + "(scale the activations down)")
  }

  // MARK: SESSION_CLOSE, FOREIGN_MODELS

  func sessionClose(_ request: IncomingRequest, _ reply: ReplyChannel) throws {
    let r = try request.decode(SessionCloseRequest.self)
    try respond(reply, .sessionCloseOK, try sessions.close(r.session))
  }

  func foreignModels(_ request: IncomingRequest, _ reply: ReplyChannel) throws {
    _ = try request.decode(EmptyDoc.self)
    try respond(reply, .foreignModelsOK, sessions.list())
  }

  // MARK: Shared with HEATMAP

  /// A batch name's cache key: a dataset reference keyed by its images as the daemon keys its
  /// own batches (so stored models share it), else the client's key.
  func resolveBatch(_ text: String, key: String) throws(WireError) -> (key: UInt64, reference: DatasetReference?) {
    let reference: DatasetReference?
    do {
      reference = try DatasetReference.parse(text)
    } catch {
      throw invalid(key, error.description)
    }
    guard let reference else { return (ForeignModel.batchKey(text), nil) }
    let (split, positions) = try referencedExamples(reference, key: key)
    return (Fingerprint.of(batch: positions, in: split), reference)
  }

  /// The split a dataset reference names and the positions of its examples in it.
  func referencedExamples(_ reference: DatasetReference,
                          key: String) throws(WireError) -> (split: Dataset, positions: [Int]) {
    let splits: DatasetSplits
    do {
      splits = try datasets.splits(reference.dataset)
    } catch where error.code == .invalidArgument {
      throw invalid(key, "\(reference.text): unknown dataset \"\(reference.dataset)\" (known: "
                    + DatasetCache.listed.joined(separator: ", ") + ")")
    }
    let split = reference.split == .test ? splits.test : splits.train
    guard reference.end <= split.count else {
      throw notFound("\(reference.text): the \(reference.split.rawValue) split of \(reference.dataset) "
                     + "has \(split.count) examples")
    }
    return (split, Array(reference.start..<reference.end))
  }

  /// Names, fingerprints and keys: 1 to `maxBytes` UTF-8 bytes, no control characters.
  private func checkText(_ text: String, key: String, maxBytes: Int) throws(WireError) {
    guard (1...maxBytes).contains(text.utf8.count) else {
      throw invalid(key, "\(text.utf8.count) bytes; 1 to \(maxBytes)")
    }
    guard !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
      throw invalid(key, "contains a control character")
    }
  }
}

/// One SESSION_BATCH tensor's values as Float, read in place when they are f32 at a 4-byte
/// aligned address, else widened (f16, bf16) or copied (unaligned f32) once.
struct ActivationValues {
  private let bytes: UnsafeRawBufferPointer
  private let converted: [Float]?

  /// nil for dtypes other than f32, f16 and bf16.
  init?(dtype: WireTensor.DType, bytes: UnsafeRawBufferPointer) {
    self.bytes = bytes
    #if _endian(little)
    let inPlace = dtype == .f32 && bytes.count > 0
      && Int(bitPattern: bytes.baseAddress) % MemoryLayout<Float>.alignment == 0
    #else
    let inPlace = false
    #endif
    if inPlace {
      converted = nil
    } else {
      guard let floats = WireTensor.widenedFloats(dtype: dtype, bytes: bytes) else { return nil }
      converted = floats
    }
  }

  func withFloats<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
    if let converted { return try converted.withUnsafeBufferPointer(body) }
    return try bytes.withMemoryRebound(to: Float.self, body)
  }
}
