import Foundation

/// numpy's legacy RandomState (MT19937 seeded by init_genrand, 53-bit doubles, polar
/// Box-Muller gauss), so the tests can rebuild the 2019 CKA demo's inputs
/// (np.random.seed(1337); X = randn(100, 10); Y = randn(100, 10) + X) without numpy.
struct NumpyRandomState {
  private var mt = [UInt32](repeating: 0, count: 624)
  private var index = 624
  private var cachedGauss: Double?

  init(seed: UInt32) {
    mt[0] = seed
    for i in 1..<624 {
      mt[i] = 1_812_433_253 &* (mt[i - 1] ^ (mt[i - 1] >> 30)) &+ UInt32(i)
    }
  }

  private mutating func twist() {
    for i in 0..<624 {
      let y = (mt[i] & 0x8000_0000) | (mt[(i + 1) % 624] & 0x7FFF_FFFF)
      mt[i] = mt[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1) != 0 ? 0x9908_B0DF : 0)
    }
    index = 0
  }

  mutating func nextUInt32() -> UInt32 {
    if index >= 624 { twist() }
    var y = mt[index]
    index += 1
    y ^= y >> 11
    y ^= (y << 7) & 0x9D2C_5680
    y ^= (y << 15) & 0xEFC6_0000
    y ^= y >> 18
    return y
  }

  mutating func nextDouble() -> Double {
    let a = Double(nextUInt32() >> 5), b = Double(nextUInt32() >> 6)
    return (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
  }

  mutating func gauss() -> Double {
    if let g = cachedGauss {
      cachedGauss = nil
      return g
    }
    var x1 = 0.0, x2 = 0.0, r2 = 0.0
    repeat {
      x1 = 2 * nextDouble() - 1
      x2 = 2 * nextDouble() - 1
      r2 = x1 * x1 + x2 * x2
    } while r2 >= 1 || r2 == 0
    let f = (-2 * Foundation.log(r2) / r2).squareRoot()
    cachedGauss = f * x1
    return f * x2
  }

  mutating func randn(_ rows: Int, _ cols: Int) -> [Double] {
    (0..<(rows * cols)).map { _ in gauss() }
  }
}
