/// One recorded representation of the network: a stable, readable name and its per-example
/// shape (NHWC, so flattening is H*W*C in memory order).
public struct Representation: Codable, Equatable, Hashable, Sendable {
  public enum Kind: String, Codable, Sendable {
    case input, conv, bn, relu, shortcut, add, blockOutput, pool, logits, probs
  }
  public var name: String
  public var kind: Kind
  public var height: Int
  public var width: Int
  public var channels: Int
  /// "sX.bY" for representations inside a block, nil outside.
  public var block: String?

  public var features: Int { height * width * channels }

  public init(name: String, kind: Kind, height: Int, width: Int, channels: Int, block: String?) {
    self.name = name
    self.kind = kind
    self.height = height
    self.width = width
    self.channels = channels
    self.block = block
  }
}

extension ResNetConfig {
  /// Every representation in forward order: input, stem.conv, stem.bn, stem.relu, then per
  /// block sX.bY.conv1, .bn1, .relu1, .conv2, .bn2, [.shortcut], [.add], .out, then pool,
  /// logits, probs. 21n+9 for the residual net, 18n+7 for the plain one.
  public var representations: [Representation] {
    var reps: [Representation] = []
    func add(_ name: String, _ kind: Representation.Kind, _ h: Int, _ w: Int, _ c: Int,
             _ block: String? = nil) {
      reps.append(Representation(name: name, kind: kind, height: h, width: w, channels: c,
                                 block: block))
    }
    let ch = stageChannels
    add("input", .input, inputHeight, inputWidth, inputChannels)
    add("stem.conv", .conv, inputHeight, inputWidth, ch[0])
    add("stem.bn", .bn, inputHeight, inputWidth, ch[0])
    add("stem.relu", .relu, inputHeight, inputWidth, ch[0])
    for b in blocks {
      let (h, w, c, p) = (b.outHeight, b.outWidth, b.outChannels, b.name)
      add("\(p).conv1", .conv, h, w, c, p)
      add("\(p).bn1", .bn, h, w, c, p)
      add("\(p).relu1", .relu, h, w, c, p)
      add("\(p).conv2", .conv, h, w, c, p)
      add("\(p).bn2", .bn, h, w, c, p)
      if residual {
        if b.projection { add("\(p).shortcut", .shortcut, h, w, c, p) }
        add("\(p).add", .add, h, w, c, p)
      }
      add("\(p).out", .blockOutput, h, w, c, p)
    }
    add("pool", .pool, 1, 1, ch[2])
    add("logits", .logits, 1, 1, numClasses)
    add("probs", .probs, 1, 1, numClasses)
    return reps
  }

  /// The geometry of every block.
  public var blocks: [BlockSpec] {
    var specs: [BlockSpec] = []
    var (h, w, c) = (inputHeight, inputWidth, stageChannels[0])
    for stage in 0..<3 {
      for i in 0..<blocksPerStage {
        let stride = (stage > 0 && i == 0) ? 2 : 1
        let outC = stageChannels[stage]
        let oh = (h + 2 - 3) / stride + 1, ow = (w + 2 - 3) / stride + 1
        specs.append(BlockSpec(stage: stage + 1, index: i + 1, inHeight: h, inWidth: w,
                               inChannels: c, outHeight: oh, outWidth: ow, outChannels: outC,
                               stride: stride, projection: residual && (stride != 1 || c != outC)))
        (h, w, c) = (oh, ow, outC)
      }
    }
    return specs
  }

  /// Multiply-accumulates of one forward pass of one example (convolutions and the head).
  public var forwardMACs: Int {
    let ch = stageChannels
    var macs = inputHeight * inputWidth * ch[0] * 9 * inputChannels
    for b in blocks {
      let pix = b.outHeight * b.outWidth
      macs += pix * b.outChannels * 9 * b.inChannels + pix * b.outChannels * 9 * b.outChannels
      if b.projection { macs += pix * b.outChannels * b.inChannels }
    }
    return macs + ch[2] * numClasses
  }
}

/// The geometry of one basic block.
public struct BlockSpec: Equatable, Sendable {
  public var stage: Int, index: Int
  public var inHeight: Int, inWidth: Int, inChannels: Int
  public var outHeight: Int, outWidth: Int, outChannels: Int
  public var stride: Int
  /// The first block of stages 2 and 3 of the residual net: 1x1 stride-2 conv shortcut.
  public var projection: Bool
  public var name: String { "s\(stage).b\(index)" }
  /// Bypassing the block (output := input) is possible only when shapes agree and the
  /// shortcut is the identity.
  public var removable: Bool {
    !projection && stride == 1 && inChannels == outChannels
  }
}
