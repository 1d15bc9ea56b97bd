import Wire

/// Content-addressed model names: a study's model is named after everything that decides its
/// weights, so the same recipe declared by any study (or twice) names the same stored model
/// and is trained once. `r44-k1-fashion-mnist-f0.03-s0-e15-1a2b3c4d`: a readable prefix and
/// 32 bits of a 64-bit FNV-1a hash of the canonical recipe (the daemon also compares the
/// stored model's recipe before reusing it, so a hash collision cannot reuse a wrong model).
public enum RecipeName {
  /// The recipe's canonical text: every key that changes the trained weights, in a fixed
  /// order, numbers in their shortest round-trip form. Not the model name, threads or
  /// snapshots (they change nothing in the weights).
  public static func canonical(_ r: TrainRequest) -> String {
    [
      "blockscope-recipe-1",
      "depth=\(r.depth)", "width=\(r.width)", "plain=\(r.plain)", "dataset=\(r.dataset)",
      "fraction=\(r.fraction)", "stratified=\(r.stratified)", "epochs=\(r.epochs)",
      "batch_size=\(r.batchSize)", "lr=\(r.lr)", "weight_decay=\(r.weightDecay)",
      "warmup_epochs=\(r.warmupEpochs)", "augment=\(r.augment)", "seed=\(r.seed)",
      "test_examples=\(r.testExamples.map(String.init) ?? "all")",
    ].joined(separator: "|")
  }

  public static func hash(_ r: TrainRequest) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in canonical(r).utf8 {
      h ^= UInt64(byte)
      h = h &* 0x0000_0100_0000_01B3
    }
    return h
  }

  public static func name(of r: TrainRequest) -> String {
    let digits = String(hash(r) >> 32, radix: 16)
    let hex = String(repeating: "0", count: 8 - digits.count) + digits
    return "\(r.plain ? "p" : "r")\(r.depth)-k\(shortNumber(r.width))-\(r.dataset)-f\(shortNumber(r.fraction))"
      + "-s\(r.seed)-e\(r.epochs)-\(hex)"
  }

  /// The snapshot of `model` after `epoch` epochs (a stored model of its own).
  public static func snapshot(_ model: String, epoch: Int) -> String { "\(model).e\(epoch)" }

  /// Whether two recipes train the same weights.
  public static func sameWeights(_ a: TrainRequest, _ b: TrainRequest) -> Bool {
    canonical(a) == canonical(b)
  }
}
