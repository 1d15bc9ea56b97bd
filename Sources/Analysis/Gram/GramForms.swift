import CKernels
import Engine

/// Builds Gram entries: the centred Gram of a batch's activations, and every other form from
/// it (no forward pass).
public enum GramForms {
  /// K_c of activations x: [m][d] (column-centred, then X X^T; see bs_gram_centered). The
  /// full m x m matrix is left in `full` (if given, at least m*m floats), from where a form
  /// can be derived without unpacking.
  public static func centred(_ x: UnsafePointer<Float>, m: Int, d: Int,
                             full given: Tensor? = nil, slot: (Tensor, Int)? = nil,
                             context: KernelContext) throws -> GramEntry {
    let full = given ?? Tensor([m * m])
    precondition(full.capacity >= m * m)
    var meanSq = 0.0
    guard bs_gram_centered(context.pointer, x, Int32(m), d, full.data, &meanSq) == BS_OK else {
      throw GramError.outOfMemory
    }
    return entry(full: full, m: m, meanSq: meanSq, slot: slot, context: context)
  }

  /// The centred entries of NHWC activations x: [m][positions][channels] (NCHW,
  /// [m][channels][positions], with `channelsFirst`) and of the per-channel affine map
  /// y = scale_c x + shift_c of them (an inference BatchNorm), both from one pass of per-channel
  /// Grams Kc (bs_gram_centered_channels): K_x = sum_c Kc, K_y = sum_c scale_c^2 Kc, since
  /// centring removes shift_c. The full matrices are left in `full` and `affineFull`.
  public static func centredWithAffine(_ x: UnsafePointer<Float>, m: Int, positions: Int, channels: Int,
                                       channelsFirst: Bool = false,
                                       scale: [Float], shift: [Float], full: Tensor, affineFull: Tensor,
                                       slot: (Tensor, Int)? = nil,
                                       affineSlot: (Tensor, Int)? = nil,
                                       context: KernelContext) throws -> (GramEntry, GramEntry) {
    precondition(scale.count == channels && shift.count == channels, "one scale and shift per channel")
    precondition(full.capacity >= m * m && affineFull.capacity >= m * m)
    let weights = scale.map { $0 * $0 }
    var sums = [Double](repeating: 0, count: 2 * channels)
    let channelGrams = channelsFirst ? bs_gram_centered_channels_nchw : bs_gram_centered_channels
    guard channelGrams(context.pointer, x, Int32(m), positions, Int32(channels), weights, full.data,
                       affineFull.data, &sums) == BS_OK else { throw GramError.outOfMemory }
    // Sum over features of the squared column means: of x, and of y (mean_y = a mean_x + b).
    var meanSq = 0.0, affineMeanSq = 0.0
    for c in 0..<channels {
      let a = Double(scale[c]), b = Double(shift[c]), s1 = sums[2 * c], s2 = sums[2 * c + 1]
      meanSq += s2
      affineMeanSq += a * a * s2 + 2 * a * b * s1 + Double(positions) * b * b
    }
    return (entry(full: full, m: m, meanSq: meanSq, slot: slot, context: context),
            entry(full: affineFull, m: m, meanSq: affineMeanSq, slot: affineSlot, context: context))
  }

  /// A centred entry from its full matrix and the sum of the squared column means.
  static func entry(full: Tensor, m: Int, meanSq: Double, slot: (Tensor, Int)?,
                    context: KernelContext) -> GramEntry {
    let e = slot.map { GramEntry(m: m, form: .centred, slab: $0.0, index: $0.1) } ?? GramEntry(m: m, form: .centred)
    var trace = 0.0
    for i in 0..<m { trace += Double(full.data[i * m + i]) }
    let energy = Double(m) * meanSq + trace
    e.relativeVariance = energy > 0 ? trace / energy : 0
    e.isFinite = trace.isFinite && meanSq.isFinite
    context.kernels.bs_pack_upper(full.data, Int32(m), 1, e.data)
    // Keep the diagonal exact (bs_pack_upper divides it by sqrt 2).
    var o = 0
    for i in 0..<m {
      e.data[o] = full.data[i * m + i]
      o += m - i
    }
    return e
  }

  /// The full m x m matrix of a `centred` entry.
  public static func unpack(_ e: GramEntry) -> Tensor {
    let m = e.m
    let full = Tensor([m * m])
    var o = 0
    for i in 0..<m {
      for j in i..<m {
        let v = e.data[o]
        full.data[i * m + j] = v
        full.data[j * m + i] = v
        o += 1
      }
    }
    return full
  }

  public enum GramError: Error, CustomStringConvertible, Equatable {
    case outOfMemory
    /// The eigensolver failed: what it said.
    case eigen(String)
    case notCentred(GramForm)
    public var description: String {
      switch self {
      case .outOfMemory: return "out of memory computing a Gram matrix"
      case .eigen(let message): return message
      case .notCentred(let f): return "forms derive from the centred Gram, not from \(f)"
      }
    }
  }

  /// Why a form could not be built for a batch (it then contributes nothing to the sums).
  public enum Degenerate: Error, Equatable {
    case rbfBandwidthZero
  }

  /// Derives `form` from a centred entry, into its own memory or at `slot` (slab, index) of a
  /// slab. `full`, if given, holds the entry's full m x m matrix (as left by `centred`) and is
  /// used, and overwritten, instead of unpacking. Throws Degenerate when the batch has no
  /// such form.
  public static func derive(_ form: GramForm, from base: GramEntry, full: Tensor? = nil,
                            slot: (Tensor, Int)? = nil, context: KernelContext) throws -> GramEntry {
    let kernels = context.kernels
    guard base.form == .centred else { throw GramError.notCentred(base.form) }
    let m = base.m
    if form == .centred { return base }
    if base.isConstant {
      // Zero vector: the batch adds nothing to any sum, the self-similarity stays 0 if every
      // batch is constant, and the heatmap reports the representation as constant.
      let e = slot.map { GramEntry(m: m, form: form, slab: $0.0, index: $0.1) } ?? GramEntry(m: m, form: form)
      e.zero()
      e.relativeVariance = base.relativeVariance
      e.isFinite = base.isFinite
      return e
    }
    var k = full ?? unpack(base)
    switch form {
    case .unbiasedWithoutPC1, .biasedWithoutPC1:
      var lambda: Float = 0
      let u = Tensor([m])
      var info: Int32 = 0
      let st = bs_sym_top_eigen(k.data, Int32(m), &lambda, u.data, &info)
      guard st == BS_OK else { throw GramError.eigen(st.message(call: "LAPACKE_ssyevr", lapackInfo: info)) }
      if lambda > 0 {
        for i in 0..<m {
          let li = lambda * u.data[i]
          for j in 0..<m { k.data[i * m + j] -= li * u.data[j] }
        }
        // Re-symmetrize exactly (the float update above is symmetric up to rounding order).
        for i in 0..<m { for j in 0..<i { k.data[i * m + j] = k.data[j * m + i] } }
      }
    case .rbf:
      let d = Tensor([m * m])
      kernels.bs_gram_sqdist(k.data, Int32(m), d.data)
      let median = medianOf(d.data, count: m * m)
      guard median > 0 else { throw Degenerate.rbfBandwidthZero }
      let s2 = Float(FullBatchCKA.rbfThreshold * FullBatchCKA.rbfThreshold) * median
      kernels.bs_exp_scaled(d.data, m * m, -1 / (2 * s2), d.data)
      var r = [Double](repeating: 0, count: m)
      kernels.bs_hcenter(d.data, Int32(m), d.data, &r)
      k = d
    default:
      break
    }
    let e = slot.map { GramEntry(m: m, form: form, slab: $0.0, index: $0.1) } ?? GramEntry(m: m, form: form)
    e.relativeVariance = base.relativeVariance
    e.isFinite = base.isFinite
    switch form {
    case .unbiased, .unbiasedWithoutPC1:
      var r = [Double](repeating: 0, count: m)
      kernels.bs_ucenter(k.data, Int32(m), k.data, &r)
      kernels.bs_pack_upper(k.data, Int32(m), Float(1 / (Double(m) * Double(m - 3)).squareRoot()), e.data)
    case .biased, .biasedWithoutPC1, .rbf:
      kernels.bs_pack_upper(k.data, Int32(m), Float(1 / Double(m - 1)), e.data)
    case .centred:
      break
    }
    return e
  }

  /// numpy's median (mean of the middle two for an even count) of count floats, by selection.
  static func medianOf(_ p: UnsafePointer<Float>, count: Int) -> Float {
    var v = Array(UnsafeBufferPointer(start: p, count: count))
    func select(_ k: Int) -> Float {
      var lo = 0, hi = v.count - 1
      while lo < hi {
        let pivot = v[(lo + hi) / 2]
        var i = lo, j = hi
        while i <= j {
          while v[i] < pivot { i += 1 }
          while v[j] > pivot { j -= 1 }
          if i <= j { v.swapAt(i, j); i += 1; j -= 1 }
        }
        if k <= j { hi = j } else if k >= i { lo = i } else { return v[k] }
      }
      return v[k]
    }
    if count % 2 == 1 { return select(count / 2) }
    let upper = select(count / 2)
    // The largest value below the upper middle: the lower middle (v is partitioned at count/2).
    var lower = -Float.infinity
    for i in 0..<(count / 2) { lower = max(lower, v[i]) }
    return Float((Double(lower) + Double(upper)) / 2)
  }
}
