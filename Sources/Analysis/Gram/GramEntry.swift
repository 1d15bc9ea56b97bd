import Engine

/// What a cached Gram vector is. All are symmetric m x m matrices stored as their upper
/// triangle, row by row (m(m+1)/2 floats).
/// - centred: K_c, the Gram of the batch's column-centred features (= HKH), stored exactly
///   (diagonal unscaled). Every other form derives from it without a forward pass.
/// - the others are "dot-ready": packed by bs_pack_upper with the diagonal divided by sqrt 2
///   and a scale, so that 2 <a, b> is the HSIC of the batch:
///   unbiased: U(K_c) / sqrt(m(m-3)) -> HSIC1;  biased: K_c / (m-1) -> HSIC0;
///   rbf: H K_rbf H / (m-1) -> HSIC0 of the RBF kernel (median bandwidth, threshold 0.5);
///   *WithoutPC1: the same after removing the batch's first principal component,
///   K_c - lambda1 u1 u1^T (Nguyen et al. 2021; docs/ANALYSIS.md, "CKA").
public enum GramForm: String, Codable, Sendable, Hashable, CaseIterable {
  case centred, unbiased, biased, rbf, unbiasedWithoutPC1, biasedWithoutPC1
}

/// The identity of a cached Gram: which model (Fingerprint.of(model)), which representation,
/// which example batch (Fingerprint.of(batch:in:)), which form.
public struct GramKey: Hashable, Sendable {
  public var model: UInt64
  public var representation: String
  public var batch: UInt64
  public var form: GramForm
  public init(model: UInt64, representation: String, batch: UInt64, form: GramForm) {
    self.model = model
    self.representation = representation
    self.batch = batch
    self.form = form
  }
}

/// One packed Gram vector. Immutable once built; shared by the cache and its readers (a
/// reader keeps an entry alive after eviction).
///
/// The dot-ready vectors of one model and batch are built side by side in one slab, at a fixed
/// stride, so that a heatmap's product reads them in place (bs_pairwise_dots detects the
/// constant stride and skips its gather copy). The slab is freed when its last entry is: the
/// cache budget counts entries, so a slab whose entries were evicted only in part holds its
/// memory until the rest go (LRU evicts a batch's entries together in practice).
public final class GramEntry: @unchecked Sendable {
  public let m: Int
  public let form: GramForm
  /// The batch's variance relative to its raw energy, trace(K_c) / sum x^2 (centred entries;
  /// derived ones inherit it). Below `GramEntry.constantThreshold` the representation is
  /// constant over the batch up to float rounding, and its derived forms are zero.
  public internal(set) var relativeVariance: Double = 1
  /// False when the Gram holds a NaN or an infinity: its input held one (centring spreads a
  /// non-finite value over its column, so every such input reaches the diagonal), or its
  /// values were too large for f32 products.
  public internal(set) var isFinite = true
  /// Variation below ~256 ulps of the activations' magnitude ((256 u)^2 relative variance) is
  /// indistinguishable from rounding: identical inputs through BN layers land there, not at 0.
  public static let constantThreshold = 2.3e-10
  public var isConstant: Bool { relativeVariance <= GramEntry.constantThreshold }
  /// Aligned slab holding this entry's `count` floats at `offset`.
  let slab: Tensor
  let offset: Int
  var data: UnsafeMutablePointer<Float> { slab.data + offset }
  public var count: Int { m * (m + 1) / 2 }
  public var pointer: UnsafePointer<Float> { UnsafePointer(data) }
  public var bytes: Int { count * 4 + 128 }

  /// Floats between consecutive entries of a slab (64-byte aligned).
  public static func stride(m: Int) -> Int { (m * (m + 1) / 2 + 15) / 16 * 16 }

  init(m: Int, form: GramForm) {
    self.m = m
    self.form = form
    slab = Tensor([max(1, m * (m + 1) / 2)])
    offset = 0
  }

  /// The entry at position `index` of a slab of GramEntry.stride(m: m) * n floats.
  init(m: Int, form: GramForm, slab: Tensor, index: Int) {
    self.m = m
    self.form = form
    self.slab = slab
    offset = index * GramEntry.stride(m: m)
    precondition(offset + m * (m + 1) / 2 <= slab.capacity)
  }

  func zero() { data.update(repeating: 0, count: count) }

  public var values: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }
}
