import CKernels
import Foundation
import XCTest

// The C types of the Gram micro-kernels (see BS_OPS in ckernels.h).
typealias CenterColumnsFn = @convention(c) (
  UnsafePointer<Float>?, Int32, Int, Int, UnsafeMutablePointer<Float>?, Int) -> Void
typealias GramFn = @convention(c) (
  UnsafePointer<Float>?, Int32, Int, Int, UnsafeMutablePointer<Float>?) -> Void
typealias CenteringFn = @convention(c) (
  UnsafePointer<Float>?, Int32, UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Double>?) -> Void
typealias PackUpperFn = @convention(c) (
  UnsafePointer<Float>?, Int32, Float, UnsafeMutablePointer<Float>?) -> Void
typealias SqdistFn = @convention(c) (UnsafePointer<Float>?, Int32, UnsafeMutablePointer<Float>?) -> Void
typealias ExpScaledFn = @convention(c) (UnsafePointer<Float>?, Int, Float, UnsafeMutablePointer<Float>?) -> Void

/// Sizes below, at and above the 8 and 16 lanes, for the m x m Gram kernels.
let gramSizes = [4, 5, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 64, 67]

/// A random symmetric m x m matrix.
func randomSymmetric(_ m: Int, _ rng: inout TestRNG) -> [Float] {
  var k = [Float](repeating: 0, count: m * m)
  for i in 0..<m { for j in i..<m { let v = rng.float(); k[i * m + j] = v; k[j * m + i] = v } }
  return k
}

extension KernelVariantTests {
  /// bs_center_columns: the variants accumulate the means in double in the reference's order,
  /// so the results are bit-identical. Columns 0...70 and 1031 (blocks of 512 + tails), rows
  /// 1...9, 256, and a row stride larger than the width; y at x's stride, compact (ldy = d,
  /// the Gram panels) and wider (the columns in between keep their fill), and in place.
  func checkCenterColumns(_ v: KernelVariant, _ ref: KernelVariant) {
    let f = v.cast(CenterColumnsFn.self), r = ref.cast(CenterColumnsFn.self)
    var rng = TestRNG(seed: 71)
    var mm = Mismatches("bs_center_columns \(v.isaName)")
    for m in [1, 2, 3, 9, 256] {
      for d in Array(0...40) + [63, 64, 65, 511, 512, 513, 1031] where m * d < 300_000 {
        let ld = d + (d % 3)
        let xv = rng.floats(m * ld, -1, 3)
        let x = GuardedBuffer(xv)
        for ldy in Set([ld, d, d + 5]) {
          let want = GuardedBuffer(count: m * ldy, fill: 5), got = GuardedBuffer(count: m * ldy, fill: 5)
          r(x.ptr, Int32(m), d, ld, want.ptr, ldy)
          f(x.ptr, Int32(m), d, ld, got.ptr, ldy)
          for i in 0..<(m * ldy) where !sameFloat(got.ptr[i], want.ptr[i]) {
            mm.fail("m=\(m) d=\(d) ldy=\(ldy) [\(i)] \(got.ptr[i]) != \(want.ptr[i])"); break
          }
          for i in 0..<m {
            for j in d..<ldy where got.ptr[i * ldy + j] != 5 || want.ptr[i * ldy + j] != 5 {
              mm.fail("m=\(m) d=\(d) ldy=\(ldy) wrote y[\(i)][\(j)] past column d"); break
            }
          }
          mm.check(got.guardsIntact && want.guardsIntact, "m=\(m) d=\(d) ldy=\(ldy) wrote out of bounds")
          if ldy == ld {   // in place: the same result
            let inPlace = GuardedBuffer(xv)
            f(inPlace.ptr, Int32(m), d, ld, inPlace.ptr, ld)
            for i in 0..<m {
              for j in 0..<d where !sameFloat(inPlace.ptr[i * ld + j], want.ptr[i * ld + j]) {
                mm.fail("m=\(m) d=\(d) in place [\(i)][\(j)] differs"); break
              }
            }
          }
        }
        mm.check(x.guardsIntact, "m=\(m) d=\(d) wrote into x")
      }
    }
    mm.report()
  }

  /// bs_gram: the BLAS variant sums in float in its own order; |error| <= d u sum_k |x_ik x_jk|
  /// (a generous bound for any summation order, plus the reference's own double rounding).
  func checkGram(_ v: KernelVariant, _ ref: KernelVariant) {
    let f = v.cast(GramFn.self), r = ref.cast(GramFn.self)
    var rng = TestRNG(seed: 72)
    var mm = Mismatches("bs_gram \(v.isaName)")
    for m in [1, 2, 7, 8, 9, 17, 33] {
      for d in [1, 3, 8, 16, 17, 100, 1000] {
        let ld = d + 2
        let xs = rng.floats(m * ld)
        let x = GuardedBuffer(xs)
        let want = GuardedBuffer(count: m * m), got = GuardedBuffer(count: m * m)
        r(x.ptr, Int32(m), d, ld, want.ptr)
        f(x.ptr, Int32(m), d, ld, got.ptr)
        for i in 0..<m {
          for j in 0..<m {
            var abs = 0.0
            for k in 0..<d { abs += Swift.abs(Double(xs[i * ld + k]) * Double(xs[j * ld + k])) }
            let tol = Double(d + 2) * floatU * abs + 1e-30
            let (g, w) = (Double(got.ptr[i * m + j]), Double(want.ptr[i * m + j]))
            mm.check(Swift.abs(g - w) <= tol, "m=\(m) d=\(d) (\(i),\(j)) \(g) vs \(w)")
            mm.check(got.ptr[i * m + j] == got.ptr[j * m + i], "m=\(m) d=\(d) not symmetric")
          }
        }
        mm.check(got.guardsIntact, "m=\(m) d=\(d) wrote out of bounds")
      }
    }
    mm.report()
  }

  /// bs_ucenter / bs_hcenter: the variants sum in double (U: rows ascending like the
  /// reference; H: sequentially) and then form the same double expression, so they match bit
  /// for bit; also in place.
  func checkCentering(_ v: KernelVariant, _ ref: KernelVariant) {
    let f = v.cast(CenteringFn.self), r = ref.cast(CenteringFn.self)
    var rng = TestRNG(seed: 73)
    var mm = Mismatches("\(v.op) \(v.isaName)")
    for m in gramSizes {
      for inPlace in [false, true] {
        let k = randomSymmetric(m, &rng)
        let x = GuardedBuffer(k), want = GuardedBuffer(count: m * m, fill: 9)
        let got = inPlace ? GuardedBuffer(k) : GuardedBuffer(count: m * m, fill: 9)
        var r1 = [Double](repeating: 0, count: m), r2 = r1
        r(x.ptr, Int32(m), want.ptr, &r1)
        f(UnsafePointer(inPlace ? got.ptr : x.ptr), Int32(m), got.ptr, &r2)
        for i in 0..<(m * m) where !sameFloat(got.ptr[i], want.ptr[i]) {
          mm.fail("m=\(m) inPlace=\(inPlace) [\(i)] \(got.ptr[i]) != \(want.ptr[i])"); break
        }
        mm.check(got.guardsIntact, "m=\(m) wrote out of bounds")
      }
    }
    mm.report()
  }

  /// bs_pack_upper: the same float products, bit for bit; output exactly m(m+1)/2 floats.
  func checkPackUpper(_ v: KernelVariant, _ ref: KernelVariant) {
    let f = v.cast(PackUpperFn.self), r = ref.cast(PackUpperFn.self)
    var rng = TestRNG(seed: 74)
    var mm = Mismatches("bs_pack_upper \(v.isaName)")
    for m in [1, 2, 3] + gramSizes {
      let a = GuardedBuffer(randomSymmetric(m, &rng))
      let n = m * (m + 1) / 2
      let want = GuardedBuffer(count: n), got = GuardedBuffer(count: n)
      r(a.ptr, Int32(m), 0.37, want.ptr)
      f(a.ptr, Int32(m), 0.37, got.ptr)
      for i in 0..<n where !sameFloat(got.ptr[i], want.ptr[i]) {
        mm.fail("m=\(m) [\(i)] \(got.ptr[i]) != \(want.ptr[i])"); break
      }
      mm.check(got.guardsIntact, "m=\(m) wrote out of bounds")
    }
    mm.report()
  }

  /// bs_gram_sqdist: (K_ii + K_jj) - 2 K_ij in float in the same order (2x is exact), bit for bit.
  func checkSqdist(_ v: KernelVariant, _ ref: KernelVariant) {
    let f = v.cast(SqdistFn.self), r = ref.cast(SqdistFn.self)
    var rng = TestRNG(seed: 75)
    var mm = Mismatches("bs_gram_sqdist \(v.isaName)")
    for m in [1, 2, 3] + gramSizes {
      let k = GuardedBuffer(randomSymmetric(m, &rng))
      let want = GuardedBuffer(count: m * m), got = GuardedBuffer(count: m * m)
      r(k.ptr, Int32(m), want.ptr)
      f(k.ptr, Int32(m), got.ptr)
      for i in 0..<(m * m) where !sameFloat(got.ptr[i], want.ptr[i]) {
        mm.fail("m=\(m) [\(i)] \(got.ptr[i]) != \(want.ptr[i])"); break
      }
      mm.check(got.guardsIntact, "m=\(m) wrote out of bounds")
    }
    mm.report()
  }

  /// bs_exp_scaled: a polynomial expf against libm's: relative error <= 4 u, or absolute
  /// <= 2^-126 where the result underflows (the variants flush below about -87.3 / -104).
  /// Exponents up to 88.3 (the contract; the RBF kernel only exponentiates values <= 0).
  func checkExpScaled(_ v: KernelVariant, _ ref: KernelVariant) {
    let f = v.cast(ExpScaledFn.self), r = ref.cast(ExpScaledFn.self)
    var rng = TestRNG(seed: 76)
    var mm = Mismatches("bs_exp_scaled \(v.isaName)")
    for n in Self.lengths {
      for a: Float in [-1, -0.5, 0.01, 3] {
        let xs = (0..<n).map { _ in rng.float(-40, 88.3 / max(1, a)) }
        let x = GuardedBuffer(xs), want = GuardedBuffer(count: n), got = GuardedBuffer(count: n)
        r(x.ptr, n, a, want.ptr)
        f(x.ptr, n, a, got.ptr)
        for i in 0..<n {
          let (g, w) = (Double(got.ptr[i]), Double(want.ptr[i]))
          mm.check(Swift.abs(g - w) <= 4 * floatU * Swift.abs(w) + 0x1p-126,
                   "n=\(n) a=\(a) x=\(xs[i]): \(g) vs \(w)")
        }
        mm.check(got.guardsIntact, "n=\(n) wrote out of bounds")
      }
    }
    mm.report()
  }
}
