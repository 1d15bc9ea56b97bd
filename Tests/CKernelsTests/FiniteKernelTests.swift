import CKernels
import XCTest

/// bs_find_nonfinite's variants against its reference (KernelVariantTests dispatches here), and
/// the reference itself against Swift's isFinite.
extension KernelVariantTests {
  typealias FindNonfiniteFn = @convention(c) (UnsafePointer<Float>?, Int, UnsafeMutablePointer<Int>?) -> Void

  /// Exact: the index of the first NaN/Inf, or n. Every length of `lengths` with no special
  /// value, one at every position (in the vector body and in the scalar tail), and two (the
  /// first must win); the largest finite values and subnormals are finite.
  func checkFindNonfinite(_ v: KernelVariant, _ ref: KernelVariant) {
    let f = v.cast(FindNonfiniteFn.self), r = ref.cast(FindNonfiniteFn.self)
    var rng = TestRNG(seed: 43)
    var mm = Mismatches("bs_find_nonfinite \(v.isaName)")
    let finiteEdges: [Float] = [.greatestFiniteMagnitude, -.greatestFiniteMagnitude,
                                .leastNonzeroMagnitude, -0.0, .leastNormalMagnitude]
    for n in Self.lengths + [64, 128, 129, 200] {
      let base = (0..<n).map { i in i % 7 == 3 ? finiteEdges[i % finiteEdges.count] : rng.float(-1e6, 1e6) }
      var cases: [(String, [Float])] = [("all finite", base)]
      for special in [Float.nan, .infinity, -.infinity, -Float.nan] {
        for at in Set([0, n / 3, n / 2, n - 1].filter { $0 >= 0 && $0 < n }) {
          var x = base
          x[at] = special
          cases.append(("\(special) at \(at)", x))
          if at + 5 < n {
            x[at + 5] = .nan
            cases.append(("\(special) at \(at), NaN at \(at + 5)", x))
          }
        }
      }
      for (label, xs) in cases {
        let x = GuardedBuffer(xs)
        var want = -1, got = -2
        r(x.ptr, n, &want)
        f(x.ptr, n, &got)
        let truth = xs.firstIndex(where: { !$0.isFinite }) ?? n
        mm.check(want == truth, "n\(n) \(label): reference says \(want), isFinite says \(truth)")
        mm.check(got == want, "n\(n) \(label): \(got), reference \(want)")
      }
    }
    mm.report()
  }
}
