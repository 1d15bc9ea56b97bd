/// The CIFAR ResNet family of Nguyen et al. 2021: depth 6n+2, stage widths 16k/32k/64k,
/// post-activation basic blocks, residual or plain.
public struct ResNetConfig: Codable, Equatable, Sendable {
  public var depth: Int
  public var widthMultiplier: Double
  public var residual: Bool
  public var inputHeight: Int
  public var inputWidth: Int
  public var inputChannels: Int
  public var numClasses: Int

  public init(depth: Int, widthMultiplier: Double = 1, residual: Bool = true,
              inputHeight: Int = 32, inputWidth: Int = 32, inputChannels: Int = 3,
              numClasses: Int = 10) {
    self.depth = depth
    self.widthMultiplier = widthMultiplier
    self.residual = residual
    self.inputHeight = inputHeight
    self.inputWidth = inputWidth
    self.inputChannels = inputChannels
    self.numClasses = numClasses
  }

  /// Blocks per stage.
  public var blocksPerStage: Int { (depth - 2) / 6 }

  /// Channels of the three stages: 16k, 32k, 64k rounded to the nearest integer (at least 1).
  public var stageChannels: [Int] {
    [16.0, 32.0, 64.0].map { Swift.max(1, Int(($0 * widthMultiplier).rounded())) }
  }

  /// Short stable name, e.g. "resnet20-k1", "plain56-k0.5".
  public var name: String {
    let k = widthMultiplier == widthMultiplier.rounded()
      ? String(Int(widthMultiplier)) : String(widthMultiplier)
    return "\(residual ? "resnet" : "plain")\(depth)-k\(k)"
  }

  public enum Invalid: Error, CustomStringConvertible {
    case depth(Int), width(Double), input(String), classes(Int)
    public var description: String {
      switch self {
      case .depth(let d): return "depth \(d) is not 6n+2 with n >= 1 (8, 14, 20, ..., 164)"
      case .width(let k): return "width multiplier \(k) must be positive and give at most 4096 channels"
      case .input(let s):
        return "input shape \(s) is not usable (need 4x4 to \(ResNetConfig.maxInputSide)x\(ResNetConfig.maxInputSide), 1-16 channels)"
      case .classes(let c): return "number of classes \(c) must be from 2 to \(ResNetConfig.maxClasses)"
      }
    }
  }

  /// The largest input side: the largest images a dataset loader reads (`IDX.maxSide`). Bounds
  /// keep every size derived from a configuration (activations, MACs) far from overflow, even
  /// for one read from a corrupt or hostile checkpoint.
  public static let maxInputSide = 4096
  /// Labels are one byte in every dataset format Blockscope reads.
  public static let maxClasses = 256

  public func validate() throws {
    guard depth >= 8, (depth - 2) % 6 == 0, depth <= 6 * 200 + 2 else { throw Invalid.depth(depth) }
    guard widthMultiplier > 0, widthMultiplier.isFinite, 64 * widthMultiplier <= 4096 else {
      throw Invalid.width(widthMultiplier)
    }
    let sides = 4...Self.maxInputSide
    guard sides.contains(inputHeight), sides.contains(inputWidth), (1...16).contains(inputChannels) else {
      throw Invalid.input("\(inputHeight)x\(inputWidth)x\(inputChannels)")
    }
    guard (2...Self.maxClasses).contains(numClasses) else { throw Invalid.classes(numClasses) }
  }
}
