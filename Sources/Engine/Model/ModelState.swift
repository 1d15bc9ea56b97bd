/// Moves a model's state (weights, batch-norm running statistics and, for resuming, the
/// optimizer's momentum buffers) into and out of a Checkpoint.
public enum ModelState {
  public static let momentumPrefix = "opt."
  public static let momentumSuffix = ".momentum"

  /// Weights and running statistics, and the momentum buffers when `optimizer` is true.
  public static func tensors(of model: ResNet, optimizer: Bool) -> [NamedTensor] {
    var out = model.parameters.map { NamedTensor(name: $0.name, tensor: $0.value) }
    out += model.buffers.map { NamedTensor(name: $0.0, tensor: $0.1) }
    if optimizer {
      out += model.parameters.map {
        NamedTensor(name: momentumPrefix + $0.name + momentumSuffix, tensor: $0.momentum)
      }
    }
    return out
  }

  /// The resumable state of a trainer after its last finished epoch.
  public static func checkpoint(of trainer: Trainer, data: DataSpec,
                                metadata: [String: String] = [:]) -> Checkpoint {
    Checkpoint(model: trainer.model.config, training: trainer.config, data: data,
               history: trainer.history, epochsCompleted: trainer.epochsCompleted,
               tensors: tensors(of: trainer.model, optimizer: true), metadata: metadata)
  }

  public enum Mismatch: Error, CustomStringConvertible {
    case missing(String, source: String)
    case shape(String, expected: [Int], found: [Int], source: String)
    /// The configuration describes a network with more weights and statistics than the
    /// checkpoint's tensors hold in all.
    case tooSmall(model: String, needs: Int, holds: Int, source: String)
    public var description: String {
      switch self {
      case .missing(let n, let s): return "checkpoint \(s): tensor \(n) is missing"
      case .shape(let n, let e, let f, let s):
        return "checkpoint \(s): tensor \(n) has shape \(f), the model needs \(e)"
      case .tooSmall(let m, let needs, let holds, let s):
        return "checkpoint \(s): its \(m) model has \(needs) weights and statistics, "
          + "its tensors hold \(holds) values"
      }
    }
  }

  /// Copies a checkpoint's tensors into a model of the same configuration. Momentum buffers
  /// are restored when `optimizer` is true (they must then be present).
  public static func restore(_ ckpt: Checkpoint, into model: ResNet, optimizer: Bool,
                             source: String = "<memory>") throws {
    var byName = [String: NamedTensor]()
    for t in ckpt.tensors { byName[t.name] = t }
    var targets: [(String, Tensor)] = model.parameters.map { ($0.name, $0.value) } + model.buffers
    if optimizer {
      targets += model.parameters.map { (momentumPrefix + $0.name + momentumSuffix, $0.momentum) }
    }
    // Check everything before changing anything: a bad checkpoint leaves the model untouched.
    for (name, t) in targets {
      guard let src = byName[name] else { throw Mismatch.missing(name, source: source) }
      guard src.shape == t.shape else {
        throw Mismatch.shape(name, expected: t.shape, found: src.shape, source: source)
      }
    }
    for (name, t) in targets {
      byName[name]!.values.withUnsafeBufferPointer { t.data.update(from: $0.baseAddress!, count: t.count) }
    }
  }

  /// A model built from a checkpoint's configuration and weights. Fails with
  /// `ResNetConfig.Invalid` or `Mismatch` before allocating anything when the checkpoint cannot
  /// hold the network its configuration describes: the daemon reads every file in its store,
  /// and a corrupt one of a few bytes could otherwise ask for terabytes and take the daemon
  /// down (Tests/Fuzz/regressions/checkpoint).
  public static func model(from ckpt: Checkpoint, source: String = "<memory>") throws -> ResNet {
    try ckpt.model.validate()
    let needs = ckpt.model.stateFloatCount
    let holds = ckpt.tensors.reduce(0) { $0 + $1.values.count }
    guard needs <= holds else {
      throw Mismatch.tooSmall(model: ckpt.model.name, needs: needs, holds: holds, source: source)
    }
    let model = try ResNet(config: ckpt.model, seed: 0)
    try restore(ckpt, into: model, optimizer: false, source: source)
    return model
  }
}
