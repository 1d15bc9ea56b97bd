import Engine

/// Runs a model in inference mode over example batches and hands each selected
/// representation of each batch to a consumer, one at a time. Only one batch's activations
/// exist at any moment (the model's own buffers), never all layers for all examples.
public enum ActivationStream {
  public struct Batch {
    public let index: Int
    public let positions: [Int]
    public var count: Int { positions.count }
  }

  public struct Cancelled: Error, CustomStringConvertible {
    public var description: String { "cancelled" }
  }

  /// - body: (batch, representation, activations [batch.count][rep.features]); the pointer is
  ///   valid only during the call. Errors thrown by body stop the stream and are rethrown.
  /// - onlyIf: called once per batch with its index; batches it rejects are skipped without a
  ///   forward pass (e.g. everything already cached).
  public static func run(model: ResNet, data: Dataset, batches: [[Int]],
                         representations: [Representation], context: KernelContext,
                         needs: ((Int) -> Set<String>)? = nil,
                         shouldStop: () -> Bool = { false },
                         body: (Batch, Representation, UnsafePointer<Float>) throws -> Void) throws {
    guard data.height == model.config.inputHeight, data.width == model.config.inputWidth,
          data.channels == model.config.inputChannels else {
      throw StreamError.shape(
        "data is \(data.height)x\(data.width)x\(data.channels), the model takes "
        + "\(model.config.inputHeight)x\(model.config.inputWidth)x\(model.config.inputChannels)")
    }
    let capacity = batches.map(\.count).max() ?? 0
    guard capacity > 0 else { return }
    let input = Tensor([capacity * data.imageSize])
    let all = Set(representations.map(\.name))
    var rng = RandomSource(seed: 0)
    for (b, positions) in batches.enumerated() {
      if shouldStop() { throw Cancelled() }
      let wanted = needs.map { $0(b).intersection(all) } ?? all
      if wanted.isEmpty { continue }
      BatchLoader.fill(input.data, from: data, positions: positions[...], augment: false,
                       rng: &rng, context: context)
      let batch = Batch(index: b, positions: positions)
      var failure: Error?
      // infer's tap is an optional (so formally escaping) closure; it is only called during
      // the infer call.
      try withoutActuallyEscaping(body) { body in
        _ = try model.infer(input.data, n: positions.count, context: context, wants: { wanted.contains($0.name) },
                            tap: { rep, p in
                              guard failure == nil else { return }
                              do { try body(batch, rep, p) } catch { failure = error }
                            })
      }
      if let failure { throw failure }
    }
  }

  public enum StreamError: Error, CustomStringConvertible {
    case shape(String)
    public var description: String {
      switch self { case .shape(let s): return "wrong input shape: \(s)" }
    }
  }
}
