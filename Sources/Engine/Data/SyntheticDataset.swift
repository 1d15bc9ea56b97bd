import Foundation

/// Synthetic, learnable image data for tests and smoke runs.
///
/// Every class has a prototype image: a per-channel base colour plus two low-frequency
/// sinusoidal patterns with random per-channel amplitudes (smooth, so random crops and flips
/// keep most of the class signal). An example is its class's prototype plus independent
/// Gaussian pixel noise, clamped to [0, 1] and quantised to bytes. Labels are balanced
/// (counts differ by at most one) and in shuffled order. Everything is a deterministic
/// function of the seeds.
extension Dataset {
  /// `count` examples of `numClasses` classes. `noise` is the noise standard deviation in
  /// units of the full pixel range. Prototypes come from `prototypeSeed` (default: `seed`), so
  /// two sets with different `seed` and the same `prototypeSeed` are draws of the same task.
  public static func synthetic(count: Int, height: Int, width: Int, channels: Int,
                               numClasses: Int, seed: UInt64, noise: Double = 0.2,
                               prototypeSeed: UInt64? = nil) -> Dataset {
    precondition(count >= 0 && height > 0 && width > 0 && channels > 0 && numClasses > 0,
                 "synthetic: bad shape")
    let size = height * width * channels
    let prototypes = syntheticPrototypes(height: height, width: width, channels: channels,
                                         numClasses: numClasses, seed: prototypeSeed ?? seed)
    var rng = RandomSource(seed: seed, stream: 0x5359_4E54_4845_5449)  // "SYNTHETI"
    var labels = (0..<count).map { Int32($0 % numClasses) }
    if count > 1 {
      for i in stride(from: count - 1, to: 0, by: -1) { labels.swapAt(i, rng.below(i + 1)) }
    }
    var pixels = [UInt8](repeating: 0, count: count * size)
    pixels.withUnsafeMutableBufferPointer { out in
      prototypes.withUnsafeBufferPointer { protos in
        var spare: Double? = nil  // Box-Muller gives normals in pairs
        for n in 0..<count {
          let proto = protos.baseAddress! + Int(labels[n]) * size
          let dst = out.baseAddress! + n * size
          for i in 0..<size {
            let z: Double
            if let s = spare {
              z = s
              spare = nil
            } else {
              var u1 = rng.uniform()
              while u1 <= Double.leastNonzeroMagnitude { u1 = rng.uniform() }
              let r = (-2 * log(u1)).squareRoot(), theta = 2 * Double.pi * rng.uniform()
              z = r * cos(theta)
              spare = r * sin(theta)
            }
            let v = min(1, max(0, proto[i] + noise * z))
            dst[i] = UInt8((v * 255).rounded())
          }
        }
      }
    }
    return Dataset(name: "synthetic", height: height, width: width, channels: channels,
                   numClasses: numClasses, pixels: pixels, labels: labels)
  }

  /// [numClasses][height][width][channels] prototype values in [0, 1].
  static func syntheticPrototypes(height: Int, width: Int, channels: Int, numClasses: Int,
                                  seed: UInt64) -> [Double] {
    var rng = RandomSource(seed: seed, stream: 0x5052_4F54_4F54_5950)  // "PROTOTYP"
    let size = height * width * channels
    var out = [Double](repeating: 0, count: numClasses * size)
    for k in 0..<numClasses {
      let base = (0..<channels).map { _ in 0.2 + 0.6 * rng.uniform() }
      // Two plane waves: frequencies 0.5..2.5 cycles per image, random phase and direction.
      var waves = [(fy: Double, fx: Double, phase: Double, amp: [Double])]()
      for _ in 0..<2 {
        let fy = (0.5 + 2 * rng.uniform()) * (rng.uniform() < 0.5 ? -1 : 1)
        let fx = 0.5 + 2 * rng.uniform()
        let phase = 2 * Double.pi * rng.uniform()
        let amp = (0..<channels).map { _ in 0.25 * (2 * rng.uniform() - 1) }
        waves.append((fy, fx, phase, amp))
      }
      for y in 0..<height {
        for x in 0..<width {
          for c in 0..<channels {
            var v = base[c]
            for w in waves {
              let t = 2 * Double.pi * (w.fy * Double(y) / Double(height) + w.fx * Double(x) / Double(width))
              v += w.amp[c] * sin(t + w.phase)
            }
            out[k * size + (y * width + x) * channels + c] = min(1, max(0, v))
          }
        }
      }
    }
    return out
  }
}

extension DatasetSplits {
  /// A synthetic task: training and test sets drawn independently from the same prototypes.
  public static func synthetic(trainCount: Int, testCount: Int, height: Int = 32, width: Int = 32,
                               channels: Int = 3, numClasses: Int = 10, seed: UInt64,
                               noise: Double = 0.2) -> DatasetSplits {
    var rng = RandomSource(seed: seed, stream: 0x5350_4C49_5453)  // "SPLITS"
    let trainSeed = rng.next(), testSeed = rng.next()
    let train = Dataset.synthetic(count: trainCount, height: height, width: width, channels: channels,
                                  numClasses: numClasses, seed: trainSeed, noise: noise,
                                  prototypeSeed: seed)
    let test = Dataset.synthetic(count: testCount, height: height, width: width, channels: channels,
                                 numClasses: numClasses, seed: testSeed, noise: noise,
                                 prototypeSeed: seed)
    return DatasetSplits(train: train, test: test)
  }
}
