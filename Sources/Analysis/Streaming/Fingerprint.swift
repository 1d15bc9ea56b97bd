import Engine

/// 64-bit FNV-1a over bytes, 8 at a time: the identity of models and example batches in the
/// Gram cache. Not cryptographic; collisions between different weights or batches are as
/// unlikely as any 64-bit hash's.
public struct Fingerprint: Sendable {
  public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325
  public init() {}

  public mutating func add(_ bytes: UnsafeRawBufferPointer) {
    var h = value
    var i = 0
    let n = bytes.count
    while i + 8 <= n {
      h = (h ^ bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0x0000_0100_0000_01b3
      i += 8
    }
    while i < n {
      h = (h ^ UInt64(bytes[i])) &* 0x0000_0100_0000_01b3
      i += 1
    }
    value = h
  }

  public mutating func add(_ string: String) {
    var s = string
    s.withUTF8 { add(UnsafeRawBufferPointer($0)) }
    add(UInt64(string.utf8.count))
  }

  public mutating func add(_ v: UInt64) {
    withUnsafeBytes(of: v) { add($0) }
  }

  /// A model: its configuration and every parameter and buffer (running statistics).
  public static func of(_ model: ResNet) -> UInt64 {
    var f = Fingerprint()
    f.add(model.config.name)
    f.add(UInt64(model.config.inputHeight * 1_000_000 + model.config.inputWidth * 1000
                 + model.config.inputChannels))
    f.add(UInt64(model.config.numClasses))
    for p in model.parameters {
      f.add(p.name)
      f.add(UnsafeRawBufferPointer(start: p.value.data, count: p.value.count * 4))
    }
    for (name, t) in model.buffers {
      f.add(name)
      f.add(UnsafeRawBufferPointer(start: t.data, count: t.count * 4))
    }
    return f.value
  }

  /// An example batch: the images themselves (so the key is the content, whatever split or
  /// subset they came from), in order, and their count.
  public static func of(batch positions: [Int], in data: Dataset) -> UInt64 {
    var f = Fingerprint()
    f.add(UInt64(positions.count))
    f.add(UInt64(data.height * 1_000_000 + data.width * 1000 + data.channels))
    let size = data.imageSize
    data.pixels.withUnsafeBytes { px in
      for p in positions {
        f.add(UnsafeRawBufferPointer(rebasing: px[(p * size)..<((p + 1) * size)]))
      }
    }
    return f.value
  }
}
