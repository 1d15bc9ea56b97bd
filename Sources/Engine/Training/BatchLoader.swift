import CKernels

/// Fills a model input buffer with a batch of dataset images as [0, 1] floats, with or without
/// the training augmentation (reflect-pad 4, random crop, random horizontal flip). The random
/// choices come from the caller's generator, so a seed fixes them.
public enum BatchLoader {
  public static let padding = 4

  /// positions: indices into `data`; dst: [positions.count][H][W][C].
  public static func fill(_ dst: UnsafeMutablePointer<Float>, from data: Dataset,
                          positions: ArraySlice<Int>, augment: Bool,
                          rng: inout RandomSource) {
    let (h, w, c, size) = (Int32(data.height), Int32(data.width), Int32(data.channels), data.imageSize)
    data.pixels.withUnsafeBufferPointer { px in
      for (i, p) in positions.enumerated() {
        let src = px.baseAddress! + p * size
        let out = dst + i * size
        if augment {
          let oy = rng.below(2 * padding + 1), ox = rng.below(2 * padding + 1)
          let flip = rng.below(2)
          bs_augment(src, h, w, c, Int32(padding), Int32(oy), Int32(ox), Int32(flip), out)
        } else {
          bs_augment(src, h, w, c, 0, 0, 0, 0, out)
        }
      }
    }
  }
}
