/// 2x2 spatial average pooling of NHWC activations, stride 2, before a probe flattens them.
///
/// Odd sizes: floor. An odd height or width drops its last row or column (7x7 -> 3x3, as
/// PyTorch's AvgPool2d(2) does); a dimension of size 1 is kept as is (window 1 along it), so
/// pooling never produces an empty activation.
public enum SpatialPooling {
  /// Output (height, width) of `average2x2` for an input of height x width.
  public static func pooledSize(height: Int, width: Int) -> (height: Int, width: Int) {
    (height >= 2 ? height / 2 : height, width >= 2 ? width / 2 : width)
  }

  /// x: [n][height][width][channels] -> y: [n][oh][ow][channels] (see `pooledSize`).
  public static func average2x2(_ x: UnsafePointer<Float>, n: Int, height: Int, width: Int,
                                channels c: Int, into y: UnsafeMutablePointer<Float>) {
    let (oh, ow) = pooledSize(height: height, width: width)
    let wy = height >= 2 ? 2 : 1, wx = width >= 2 ? 2 : 1
    let scale = 1 / Float(wy * wx)
    for i in 0..<n {
      let src = x + i * height * width * c, dst = y + i * oh * ow * c
      for oy in 0..<oh {
        for ox in 0..<ow {
          let out = dst + (oy * ow + ox) * c
          for ch in 0..<c { out[ch] = 0 }
          for dy in 0..<wy {
            for dx in 0..<wx {
              let p = src + ((oy * wy + dy) * width + (ox * wx + dx)) * c
              for ch in 0..<c { out[ch] += p[ch] }
            }
          }
          for ch in 0..<c { out[ch] *= scale }
        }
      }
    }
  }
}
