import CKernels

/// Fills a model input buffer with a batch of dataset images as [0, 1] floats, with or without
/// the training augmentation (reflect-pad 4, random crop, random horizontal flip). The random
/// choices are drawn here, in order, from the caller's generator (so a seed fixes them); the
/// pixel work is spread over the context's threads.
public enum BatchLoader {
  public static let padding = 4

  /// positions: indices into `data`; dst: [positions.count][H][W][C].
  public static func fill(_ dst: UnsafeMutablePointer<Float>, from data: Dataset,
                          positions: ArraySlice<Int>, augment: Bool,
                          rng: inout RandomSource, context: KernelContext) {
    let n = positions.count
    guard n > 0 else { return }
    let pos = positions.map { Int64($0) }
    // Without augmentation: pad 0 and zero offsets, the plain conversion.
    var oy = [Int32](repeating: 0, count: n), ox = oy, flip = oy
    if augment {
      for i in 0..<n {
        oy[i] = Int32(rng.below(2 * padding + 1))
        ox[i] = Int32(rng.below(2 * padding + 1))
        flip[i] = Int32(rng.below(2))
      }
    }
    data.pixels.withUnsafeBufferPointer { px in
      bs_augment_batch(context.pointer, px.baseAddress!, pos, Int32(n), Int32(data.height), Int32(data.width),
                       Int32(data.channels), augment ? Int32(padding) : 0, oy, ox, flip, dst)
    }
  }
}
