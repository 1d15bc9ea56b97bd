import CKernels
import Foundation
import XCTest

/// Every non-REF entry of kernels.inc (via bs_kernel_table) against its op's REF entry, on
/// random data over sizes below, at and above the vector widths (8 for AVX2, 16 for AVX-512)
/// and their multiples. Ops that are pure data movement or the same float operations in the
/// same order (ReLU, add, im2col/col2im, average pooling, augmentation) must match bit for bit;
/// ops where a variant uses FMA or float partial sums get a tolerance derived from the
/// computation (comments at each check). Variants the CPU cannot run are skipped, not failed.
final class KernelVariantTests: XCTestCase {
  /// Every op in BS_OPS. A new op in kernels.inc fails testTableCoversEveryOp until it gets a
  /// checker below.
  static let knownOps: Set<String> = [
    "bs_im2col", "bs_col2im", "bs_channel_sums", "bs_scale_shift", "bs_bn_backward_sums",
    "bs_channel_axpby", "bs_relu", "bs_relu_backward", "bs_add_relu", "bs_add",
    "bs_sgd_momentum", "bs_avgpool", "bs_avgpool_backward", "bs_augment", "bs_conv3x3_direct",
    "bs_conv3x3_direct_dw", "bs_center_columns", "bs_gram", "bs_ucenter", "bs_hcenter",
    "bs_pack_upper", "bs_gram_sqdist", "bs_exp_scaled", "bs_dots_acc", "bs_transpose",
    "bs_find_nonfinite", "bs_winograd_input", "bs_winograd_products", "bs_winograd_output",
    "bs_winograd_dy", "bs_winograd_dw_products",
  ]
  /// Below, at and above 8 and 16 lanes, and every kind of remainder after 32- and 16-channel
  /// chunks (40 = 32 + 8, 57 = 32 + 16 + 9).
  static let channelCounts = [1, 3, 7, 8, 9, 15, 16, 17, 24, 25, 32, 40, 57, 64]
  static let lengths = [0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 1000, 1031]

  func testTableCoversEveryOpWithAReferenceVariant() {
    let all = KernelVariant.all
    XCTAssertEqual(Set(all.map(\.op)), Self.knownOps)
    for op in Self.knownOps {
      XCTAssertNotNil(KernelVariant.reference(for: op), "\(op) has no REF entry")
    }
    var seen = Set<String>()
    for v in all {
      XCTAssertTrue(seen.insert("\(v.op)/\(v.isaName)").inserted, "duplicate \(v.op) \(v.isaName)")
    }
  }

  func testContextsSelectOnlySupportedISAs() {
    XCTAssertEqual(bs_isa_supported(defaultISA), 1)
    withKernels(isa: defaultISA) { ctx in
      XCTAssertEqual(bs_context_isa(ctx), defaultISA)
      for isa in [BS_ISA_REF, BS_ISA_AVX2, BS_ISA_AVX512] where bs_isa_supported(isa) == 0 {
        XCTAssertEqual(bs_context_set_isa(ctx, isa), BS_ERR_UNSUPPORTED, "accepted \(isa), which this CPU lacks")
        XCTAssertEqual(bs_context_isa(ctx), defaultISA)
      }
      var k = bs_kernels()
      for isa in [BS_ISA_REF, BS_ISA_AVX2, BS_ISA_AVX512] {
        XCTAssertEqual(bs_kernels_select(isa, &k), bs_isa_supported(isa) != 0 ? BS_OK : BS_ERR_UNSUPPORTED)
      }
    }
  }

  func testAVX2VariantsMatchReference() throws { try checkVariants(of: BS_ISA_AVX2) }
  func testAVX512VariantsMatchReference() throws { try checkVariants(of: BS_ISA_AVX512) }

  private func checkVariants(of isa: bs_isa) throws {
    let variants = KernelVariant.all.filter { $0.isa == isa }
    guard bs_isa_supported(isa) != 0 else {
      throw XCTSkip("this CPU cannot run \(isa): \(variants.count) \(isa) variants not checked ("
        + variants.map(\.op).joined(separator: ", ") + ")")
    }
    XCTAssertFalse(variants.isEmpty, "no \(isa) variants in kernels.inc")
    for v in variants {
      guard let ref = KernelVariant.reference(for: v.op) else {
        XCTFail("\(v.op) has no REF entry")
        continue
      }
      check(v, against: ref)
    }
  }

  func check(_ v: KernelVariant, against ref: KernelVariant) {
    switch v.op {
    case "bs_im2col": checkIm2col(v, ref)
    case "bs_col2im": checkCol2im(v, ref)
    case "bs_channel_sums": checkChannelSums(v, ref)
    case "bs_scale_shift": checkScaleShift(v, ref)
    case "bs_bn_backward_sums": checkBnBackwardSums(v, ref)
    case "bs_channel_axpby": checkChannelAxpby(v, ref)
    case "bs_relu": checkRelu(v, ref)
    case "bs_relu_backward", "bs_add_relu", "bs_add": checkBinary(v, ref)
    case "bs_sgd_momentum": checkSgd(v, ref)
    case "bs_avgpool", "bs_avgpool_backward": checkAvgpool(v, ref)
    case "bs_augment": checkAugment(v, ref)
    case "bs_conv3x3_direct": checkConvDirect(v, ref)
    case "bs_conv3x3_direct_dw": checkConvDirectDw(v, ref)
    case "bs_center_columns": checkCenterColumns(v, ref)
    case "bs_gram": checkGram(v, ref)
    case "bs_ucenter", "bs_hcenter": checkCentering(v, ref)
    case "bs_pack_upper": checkPackUpper(v, ref)
    case "bs_gram_sqdist": checkSqdist(v, ref)
    case "bs_exp_scaled": checkExpScaled(v, ref)
    case "bs_dots_acc": checkDotsAcc(v, ref)
    case "bs_transpose": checkTranspose(v, ref)
    case "bs_find_nonfinite": checkFindNonfinite(v, ref)
    case "bs_winograd_input": checkWinogradInput(v, ref)
    case "bs_winograd_products": checkWinogradProducts(v, ref)
    case "bs_winograd_output": checkWinogradOutput(v, ref)
    case "bs_winograd_dy": checkWinogradDy(v, ref)
    case "bs_winograd_dw_products": checkWinogradDwProducts(v, ref)
    default: XCTFail("no checker for \(v.op) (\(v.isaName))")
    }
  }

  // MARK: im2col / col2im: exact

  /// Valid im2col shapes: H, W in 1...9, KH, KW in {1, 3}, stride 1 and 2, pad 0 and 1.
  private func forEachIm2colShape(
    _ body: (_ H: Int, _ W: Int, _ C: Int, _ KH: Int, _ KW: Int, _ stride: Int, _ pad: Int) -> Void
  ) {
    for C in Self.channelCounts {
      for H in 1...9 {
        for W in 1...9 {
          for KH in [1, 3] {
            for KW in [1, 3] {
              for stride in [1, 2] {
                for pad in [0, 1] where H + 2 * pad >= KH && W + 2 * pad >= KW {
                  body(H, W, C, KH, KW, stride, pad)
                }
              }
            }
          }
        }
      }
    }
  }

  private func checkIm2col(_ v: KernelVariant, _ ref: KernelVariant) {
    let f = v.cast(Im2colFn.self), r = ref.cast(Im2colFn.self)
    var rng = TestRNG(seed: 11)
    var mm = Mismatches("bs_im2col \(v.isaName)")
    forEachIm2colShape { H, W, C, KH, KW, stride, pad in
      let OH = (H + 2 * pad - KH) / stride + 1, OW = (W + 2 * pad - KW) / stride + 1
      let n = OH * OW * KH * KW * C
      let x = GuardedBuffer(rng.floats(H * W * C))
      // Different fills: an element the variant forgets to write cannot match the reference.
      let want = GuardedBuffer(count: n, fill: 7), got = GuardedBuffer(count: n, fill: -7)
      r(x.ptr, Int32(H), Int32(W), Int32(C), Int32(KH), Int32(KW), Int32(stride), Int32(pad),
        want.ptr)
      f(x.ptr, Int32(H), Int32(W), Int32(C), Int32(KH), Int32(KW), Int32(stride), Int32(pad),
        got.ptr)
      let shape = "H\(H) W\(W) C\(C) K\(KH)x\(KW) s\(stride) p\(pad)"
      if memcmp(want.ptr, got.ptr, n * 4) != 0 {
        let i = (0..<n).first { want.ptr[$0].bitPattern != got.ptr[$0].bitPattern }!
        mm.fail("\(shape): col[\(i)] = \(got.ptr[i]), want \(want.ptr[i])")
      }
      mm.check(got.guardsIntact, "\(shape): wrote outside col")
    }
    mm.report()
  }

  private func checkCol2im(_ v: KernelVariant, _ ref: KernelVariant) {
    let f = v.cast(Im2colFn.self), r = ref.cast(Im2colFn.self)
    var rng = TestRNG(seed: 12)
    var mm = Mismatches("bs_col2im \(v.isaName)")
    forEachIm2colShape { H, W, C, KH, KW, stride, pad in
      let OH = (H + 2 * pad - KH) / stride + 1, OW = (W + 2 * pad - KW) / stride + 1
      let col = GuardedBuffer(rng.floats(OH * OW * KH * KW * C))
      let dx0 = rng.floats(H * W * C)   // col2im accumulates: start from non-zero dx
      let want = GuardedBuffer(dx0), got = GuardedBuffer(dx0)
      r(col.ptr, Int32(H), Int32(W), Int32(C), Int32(KH), Int32(KW), Int32(stride), Int32(pad),
        want.ptr)
      f(col.ptr, Int32(H), Int32(W), Int32(C), Int32(KH), Int32(KW), Int32(stride), Int32(pad),
        got.ptr)
      let shape = "H\(H) W\(W) C\(C) K\(KH)x\(KW) s\(stride) p\(pad)"
      if memcmp(want.ptr, got.ptr, dx0.count * 4) != 0 {
        let i = (0..<dx0.count).first { want.ptr[$0].bitPattern != got.ptr[$0].bitPattern }!
        mm.fail("\(shape): dx[\(i)] = \(got.ptr[i]), want \(want.ptr[i])")
      }
      mm.check(got.guardsIntact, "\(shape): wrote outside dx")
    }
    mm.report()
  }

  // MARK: batch-norm reductions: float partial sums, bounded error

  static let reductionRows = Array(0...70) + [127, 128, 129, 1000]

  /// The variants may sum in float over blocks of <= 64 rows before adding to the doubles
  /// (batchnorm_avx2.c derives |error| <= 35u * sum|t|, the AVX-512 one 66u). Allowed here:
  /// 70u * sum|t|, plus double rounding of the running sums (one 2^-53 per block and add).
  private func reductionTolerance(absSum: Double, initial: Double, rows: Int) -> Double {
    70 * floatU * absSum + Double(4 + rows / 16) * 0x1p-53 * (abs(initial) + absSum)
  }

  private func checkChannelSums(_ v: KernelVariant, _ ref: KernelVariant) {
    let f = v.cast(ChannelSumsFn.self), r = ref.cast(ChannelSumsFn.self)
    var rng = TestRNG(seed: 21)
    var mm = Mismatches("bs_channel_sums \(v.isaName)")
    for C in Self.channelCounts {
      for rows in Self.reductionRows {
        let x = GuardedBuffer(rng.floats(rows * C, -1, 3))   // mean 1: sumsq far from sum^2
        let init0 = (0..<2 * C).map { _ in Double(rng.float()) }
        var want = init0, got = init0
        want.withUnsafeMutableBufferPointer { w in r(x.ptr, rows, Int32(C), w.baseAddress, w.baseAddress! + C) }
        got.withUnsafeMutableBufferPointer { g in f(x.ptr, rows, Int32(C), g.baseAddress, g.baseAddress! + C) }
        for c in 0..<C {
          var abs1 = 0.0, abs2 = 0.0
          for row in 0..<rows {
            let t = Double(x.ptr[row * C + c])
            abs1 += abs(t)
            abs2 += t * t
          }
          for (k, absSum) in [(c, abs1), (C + c, abs2)] {
            let tol = reductionTolerance(absSum: absSum, initial: init0[k], rows: rows)
            mm.check(abs(got[k] - want[k]) <= tol,
                     "C\(C) rows\(rows) \(k < C ? "sum" : "sumsq")[\(c)] = \(got[k]), want \(want[k]) ± \(tol)")
          }
        }
      }
    }
    mm.report()
  }

  private func checkBnBackwardSums(_ v: KernelVariant, _ ref: KernelVariant) {
    let f = v.cast(BnBackwardSumsFn.self), r = ref.cast(BnBackwardSumsFn.self)
    var rng = TestRNG(seed: 22)
    var mm = Mismatches("bs_bn_backward_sums \(v.isaName)")
    for C in Self.channelCounts {
      for rows in Self.reductionRows {
        let dy = GuardedBuffer(rng.floats(rows * C))
        let x = GuardedBuffer(rng.floats(rows * C, -1, 3))
        let mean = GuardedBuffer(rng.floats(C, 0.5, 1.5))
        let init0 = (0..<2 * C).map { _ in Double(rng.float()) }
        var want = init0, got = init0
        want.withUnsafeMutableBufferPointer { w in
          r(dy.ptr, x.ptr, rows, Int32(C), mean.ptr, w.baseAddress, w.baseAddress! + C)
        }
        got.withUnsafeMutableBufferPointer { g in
          f(dy.ptr, x.ptr, rows, Int32(C), mean.ptr, g.baseAddress, g.baseAddress! + C)
        }
        for c in 0..<C {
          var abs1 = 0.0, abs2 = 0.0
          for row in 0..<rows {
            let g = Double(dy.ptr[row * C + c])
            abs1 += abs(g)
            abs2 += abs(g * (Double(x.ptr[row * C + c]) - Double(mean.ptr[c])))
          }
          for (k, absSum) in [(c, abs1), (C + c, abs2)] {
            let tol = reductionTolerance(absSum: absSum, initial: init0[k], rows: rows)
            mm.check(abs(got[k] - want[k]) <= tol,
                     "C\(C) rows\(rows) \(k < C ? "sum_dy" : "sum_dy_xc")[\(c)] = \(got[k]), want \(want[k]) ± \(tol)")
          }
        }
      }
    }
    mm.report()
  }

  // MARK: per-channel affine kernels: FMA rounding

  static let affineRows = [0, 1, 2, 3, 7, 8, 9, 17, 64, 70]

  private func checkScaleShift(_ v: KernelVariant, _ ref: KernelVariant) {
    let f = v.cast(ScaleShiftFn.self), r = ref.cast(ScaleShiftFn.self)
    var rng = TestRNG(seed: 31)
    var mm = Mismatches("bs_scale_shift \(v.isaName)")
    for C in Self.channelCounts {
      for rows in Self.affineRows {
        for relu in [0, 1] {
          for inPlace in [false, true] {
            var xs = rng.floats(rows * C)
            if rows > 0 { xs[rng.int(xs.count)] = .nan }   // NaN stays NaN, or ReLUs to 0
            let scale = GuardedBuffer(rng.floats(C)), shift = GuardedBuffer(rng.floats(C))
            let x = GuardedBuffer(xs), want = GuardedBuffer(count: xs.count, fill: 7)
            let got = inPlace ? GuardedBuffer(xs) : GuardedBuffer(count: xs.count, fill: -7)
            r(x.ptr, rows, Int32(C), scale.ptr, shift.ptr, Int32(relu), want.ptr)
            f(UnsafePointer(inPlace ? got.ptr : x.ptr), rows, Int32(C), scale.ptr, shift.ptr,
              Int32(relu), got.ptr)
            for i in 0..<xs.count {
              // Reference: fl(fl(s*x) + t); variant: fma(s, x, t). Each is within
              // 2u(|s x| + |t|) of exact, so they differ by at most 4u(|s x| + |t|); ReLU is
              // 1-Lipschitz. Plus the smallest normal for subnormal results.
              let c = i % C
              let mag = abs(Double(scale.ptr[c]) * Double(xs[i])) + abs(Double(shift.ptr[c]))
              let tol = 4 * floatU * mag + Double(Float.leastNormalMagnitude)
              let ok = sameFloat(got.ptr[i], want.ptr[i])
                || abs(Double(got.ptr[i]) - Double(want.ptr[i])) <= tol
              mm.check(ok, "C\(C) rows\(rows) relu\(relu) inPlace \(inPlace) y[\(i)] = \(got.ptr[i]), want \(want.ptr[i])")
            }
            mm.check(got.guardsIntact, "C\(C) rows\(rows): wrote outside y")
          }
        }
      }
    }
    mm.report()
  }

  private func checkChannelAxpby(_ v: KernelVariant, _ ref: KernelVariant) {
    let f = v.cast(ChannelAxpbyFn.self), r = ref.cast(ChannelAxpbyFn.self)
    var rng = TestRNG(seed: 32)
    var mm = Mismatches("bs_channel_axpby \(v.isaName)")
    for C in Self.channelCounts {
      for rows in Self.affineRows {
        for inPlace in [false, true] {
          let dys = rng.floats(rows * C), xs = rng.floats(rows * C)
          let k1 = GuardedBuffer(rng.floats(C)), k2 = GuardedBuffer(rng.floats(C))
          let k3 = GuardedBuffer(rng.floats(C))
          let dy = GuardedBuffer(dys), x = GuardedBuffer(xs)
          let want = GuardedBuffer(count: dys.count, fill: 7)
          let got = inPlace ? GuardedBuffer(dys) : GuardedBuffer(count: dys.count, fill: -7)
          r(dy.ptr, x.ptr, rows, Int32(C), k1.ptr, k2.ptr, k3.ptr, want.ptr)
          f(UnsafePointer(inPlace ? got.ptr : dy.ptr), x.ptr, rows, Int32(C), k1.ptr, k2.ptr,
            k3.ptr, got.ptr)
          for i in 0..<dys.count {
            // Reference: four roundings, each within u of its partial result; variant: two
            // FMAs. Both within 3u(|k1 dy| + |k2 x| + |k3|) of exact: allow twice that.
            let c = i % C
            let mag = abs(Double(k1.ptr[c]) * Double(dys[i])) + abs(Double(k2.ptr[c]) * Double(xs[i]))
              + abs(Double(k3.ptr[c]))
            let tol = 6 * floatU * mag + Double(Float.leastNormalMagnitude)
            mm.check(abs(Double(got.ptr[i]) - Double(want.ptr[i])) <= tol,
                     "C\(C) rows\(rows) inPlace \(inPlace) dx[\(i)] = \(got.ptr[i]), want \(want.ptr[i])")
          }
          mm.check(got.guardsIntact, "C\(C) rows\(rows): wrote outside dx")
        }
      }
    }
    mm.report()
  }

  // MARK: elementwise: exact, IEEE special values included

  private func checkRelu(_ v: KernelVariant, _ ref: KernelVariant) {
    let f = v.cast(UnaryFn.self), r = ref.cast(UnaryFn.self)
    var rng = TestRNG(seed: 41)
    var mm = Mismatches("bs_relu \(v.isaName)")
    for n in Self.lengths {
      for trial in 0..<6 {
        let inPlace = trial % 2 == 1
        let xs = (0..<n).map { _ in rng.floatWithSpecials() }
        let x = GuardedBuffer(xs), want = GuardedBuffer(count: n, fill: 7)
        let got = inPlace ? GuardedBuffer(xs) : GuardedBuffer(count: n, fill: -7)
        r(x.ptr, n, want.ptr)
        f(UnsafePointer(inPlace ? got.ptr : x.ptr), n, got.ptr)
        for i in 0..<n {
          mm.check(sameFloat(got.ptr[i], want.ptr[i]),
                   "n\(n) inPlace \(inPlace) relu(\(xs[i])) = \(got.ptr[i]), want \(want.ptr[i])")
        }
        mm.check(got.guardsIntact, "n\(n): wrote outside y")
      }
    }
    mm.report()
  }

  /// bs_relu_backward (y, dy -> dx), bs_add_relu and bs_add (a, b -> y): exact, including
  /// in place on either input.
  private func checkBinary(_ v: KernelVariant, _ ref: KernelVariant) {
    let f = v.cast(BinaryFn.self), r = ref.cast(BinaryFn.self)
    var rng = TestRNG(seed: 42)
    var mm = Mismatches("\(v.op) \(v.isaName)")
    for n in Self.lengths {
      for trial in 0..<9 {
        let alias = trial % 3   // 0: separate output, 1: output is the first input, 2: the second
        let aa = (0..<n).map { _ in rng.floatWithSpecials() }
        let bb = (0..<n).map { _ in rng.floatWithSpecials() }
        let a = GuardedBuffer(aa), b = GuardedBuffer(bb), want = GuardedBuffer(count: n, fill: 7)
        r(a.ptr, b.ptr, n, want.ptr)
        let got: GuardedBuffer
        switch alias {
        case 1:
          got = GuardedBuffer(aa)
          f(got.ptr, b.ptr, n, got.ptr)
        case 2:
          got = GuardedBuffer(bb)
          f(a.ptr, got.ptr, n, got.ptr)
        default:
          got = GuardedBuffer(count: n, fill: -7)
          f(a.ptr, b.ptr, n, got.ptr)
        }
        for i in 0..<n {
          mm.check(sameFloat(got.ptr[i], want.ptr[i]),
                   "n\(n) alias\(alias) f(\(aa[i]), \(bb[i])) = \(got.ptr[i]), want \(want.ptr[i])")
        }
        mm.check(got.guardsIntact, "n\(n): wrote outside the output")
      }
    }
    mm.report()
  }

  // MARK: SGD: FMA rounding

  private func checkSgd(_ v: KernelVariant, _ ref: KernelVariant) {
    let f = v.cast(SgdFn.self), r = ref.cast(SgdFn.self)
    var rng = TestRNG(seed: 51)
    var mm = Mismatches("bs_sgd_momentum \(v.isaName)")
    for n in Self.lengths {
      let lr = rng.float(0.001, 0.5), momentum = rng.float(0, 0.99), wd = rng.float(0, 0.01)
      let w0 = rng.floats(n), v0 = rng.floats(n), g = GuardedBuffer(rng.floats(n))
      let ww = GuardedBuffer(w0), wv = GuardedBuffer(v0), gw = GuardedBuffer(w0), gv = GuardedBuffer(v0)
      r(ww.ptr, wv.ptr, g.ptr, n, lr, momentum, wd)
      f(gw.ptr, gv.ptr, g.ptr, n, lr, momentum, wd)
      for i in 0..<n {
        // g' = g + wd w, v' = m v + g', w' = w - lr v'. Reference (separate multiply/add) and
        // variant (FMAs) are each within 3u*S of the exact v', S = |m v| + |g| + |wd w|, and
        // within 3u(|w| + |lr v'| + |lr| S) of the exact w': allow twice that.
        let S = abs(Double(momentum) * Double(v0[i])) + abs(Double(g.ptr[i]))
          + abs(Double(wd) * Double(w0[i]))
        let tolV = 6 * floatU * S + Double(Float.leastNormalMagnitude)
        let tolW = 6 * floatU * (abs(Double(w0[i])) + Double(lr) * (abs(Double(wv.ptr[i])) + S))
          + Double(Float.leastNormalMagnitude)
        mm.check(abs(Double(gv.ptr[i]) - Double(wv.ptr[i])) <= tolV,
                 "n\(n) v[\(i)] = \(gv.ptr[i]), want \(wv.ptr[i])")
        mm.check(abs(Double(gw.ptr[i]) - Double(ww.ptr[i])) <= tolW,
                 "n\(n) w[\(i)] = \(gw.ptr[i]), want \(ww.ptr[i])")
      }
      mm.check(gw.guardsIntact && gv.guardsIntact, "n\(n): wrote outside w or v")
    }
    mm.report()
  }

  // MARK: average pooling: exact (same sums in the same order)

  private func checkAvgpool(_ v: KernelVariant, _ ref: KernelVariant) {
    let f = v.cast(AvgpoolFn.self), r = ref.cast(AvgpoolFn.self)
    let backward = v.op == "bs_avgpool_backward"
    var rng = TestRNG(seed: 61)
    var mm = Mismatches("\(v.op) \(v.isaName)")
    for C in Self.channelCounts {
      for N in [0, 1, 3] {
        for HW in [1, 2, 7, 16, 64] {
          let inCount = backward ? N * C : N * HW * C, outCount = backward ? N * HW * C : N * C
          let input = GuardedBuffer(rng.floats(inCount))
          let want = GuardedBuffer(count: outCount, fill: 7)
          let got = GuardedBuffer(count: outCount, fill: -7)
          r(input.ptr, Int32(N), Int32(HW), Int32(C), want.ptr)
          f(input.ptr, Int32(N), Int32(HW), Int32(C), got.ptr)
          if memcmp(want.ptr, got.ptr, outCount * 4) != 0 {
            let i = (0..<outCount).first { want.ptr[$0].bitPattern != got.ptr[$0].bitPattern }!
            mm.fail("C\(C) N\(N) HW\(HW): out[\(i)] = \(got.ptr[i]), want \(want.ptr[i])")
          }
          mm.check(got.guardsIntact, "C\(C) N\(N) HW\(HW): wrote outside the output")
        }
      }
    }
    mm.report()
  }

  // MARK: augmentation: exact

  private func checkAugment(_ v: KernelVariant, _ ref: KernelVariant) {
    let f = v.cast(AugmentFn.self), r = ref.cast(AugmentFn.self)
    var rng = TestRNG(seed: 71)
    var mm = Mismatches("bs_augment \(v.isaName)")
    var shapes: [(Int, Int, Int, Int)] = []   // H, W, C, pad
    for H in [1, 2, 3, 5, 8] {
      for W in [1, 2, 3, 5, 8, 9] {
        for C in [1, 3, 8, 17] {
          for pad in [0, 1, 2, 4] { shapes.append((H, W, C, pad)) }
        }
      }
    }
    shapes.append((32, 32, 3, 4))   // the CIFAR case
    for (H, W, C, pad) in shapes {
      let src = (0..<H * W * C).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
      for oy in 0...2 * pad {
        for ox in 0...2 * pad {
          for flip in [0, 1] {
            let n = H * W * C
            let want = GuardedBuffer(count: n, fill: 7), got = GuardedBuffer(count: n, fill: -7)
            src.withUnsafeBufferPointer { s in
              r(s.baseAddress, Int32(H), Int32(W), Int32(C), Int32(pad), Int32(oy), Int32(ox),
                Int32(flip), want.ptr)
              f(s.baseAddress, Int32(H), Int32(W), Int32(C), Int32(pad), Int32(oy), Int32(ox),
                Int32(flip), got.ptr)
            }
            let shape = "H\(H) W\(W) C\(C) pad\(pad) at (\(oy), \(ox)) flip\(flip)"
            if memcmp(want.ptr, got.ptr, n * 4) != 0 {
              let i = (0..<n).first { want.ptr[$0].bitPattern != got.ptr[$0].bitPattern }!
              mm.fail("\(shape): dst[\(i)] = \(got.ptr[i]), want \(want.ptr[i])")
            }
            mm.check(got.guardsIntact, "\(shape): wrote outside dst")
          }
        }
      }
    }
    mm.report()
  }

  // MARK: direct 3x3 convolution: FMA and zero padding taps, bounded error

  /// Images of 1 pixel, 1 row or column, odd and even sizes (tiles spanning rows, stride-2
  /// edges), one with more than a 128-pixel chunk of whole rows; input channels below and
  /// above a vector.
  static let convSizes = [(1, 1), (1, 6), (5, 1), (3, 3), (4, 7), (8, 8), (13, 11), (12, 23)]
  static let convInputChannels = [1, 3, 8, 17]

  private func checkConvDirect(_ v: KernelVariant, _ ref: KernelVariant) {
    let f = v.cast(ConvDirectFn.self), r = ref.cast(ConvDirectFn.self)
    var rng = TestRNG(seed: 81)
    var mm = Mismatches("bs_conv3x3_direct \(v.isaName)")
    for (H, W) in Self.convSizes {
      for Ci in Self.convInputChannels {
        for Co in Self.channelCounts {
          for stride in [1, 2] {
            let OH = (H - 1) / stride + 1, OW = (W - 1) / stride + 1
            let xs = rng.floats(H * W * Ci), ws = rng.floats(Co * 9 * Ci)
            let biasValues = rng.floats(Co)
            var wp = [Float](repeating: .nan, count: bs_conv3x3_direct_packed_floats(Int32(Ci), Int32(Co)))
            bs_conv3x3_direct_pack(ws, Int32(Ci), Int32(Co), &wp)
            let x = GuardedBuffer(xs), bias = GuardedBuffer(biasValues)
            for withBias in [false, true] {
              let n = OH * OW * Co
              let want = GuardedBuffer(count: n, fill: 7), got = GuardedBuffer(count: n, fill: -7)
              let b: UnsafePointer<Float>? = withBias ? UnsafePointer(bias.ptr) : nil
              let work = ScratchBuffer(floats: bs_conv3x3_direct_scratch_floats(Int32(H), Int32(W), Int32(Ci)))
              r(x.ptr, Int32(H), Int32(W), Int32(Ci), Int32(Co), Int32(stride), wp, b, want.ptr, work.ptr)
              f(x.ptr, Int32(H), Int32(W), Int32(Ci), Int32(Co), Int32(stride), wp, b, got.ptr, work.ptr)
              mm.check(work.guardIntact, "H\(H) W\(W) Ci\(Ci): wrote past its scratch")
              let shape = "H\(H) W\(W) Ci\(Ci) Co\(Co) s\(stride) bias \(withBias)"
              for oy in 0..<OH {
                for ox in 0..<OW {
                  for co in 0..<Co {
                    // Both sum the same 9*Ci + 1 terms (bias first, then (ky, kx, ci) order;
                    // the variant with FMAs and +-0 for the padding taps), each within
                    // 9*Ci*u*(|b| + sum|x*w|) of the exact sum: allow twice that.
                    var mag = withBias ? abs(Double(biasValues[co])) : 0
                    for ky in 0..<3 {
                      let iy = oy * stride - 1 + ky
                      if iy < 0 || iy >= H { continue }
                      for kx in 0..<3 {
                        let ix = ox * stride - 1 + kx
                        if ix < 0 || ix >= W { continue }
                        for ci in 0..<Ci {
                          mag += abs(Double(xs[(iy * W + ix) * Ci + ci])
                            * Double(ws[((co * 3 + ky) * 3 + kx) * Ci + ci]))
                        }
                      }
                    }
                    let i = (oy * OW + ox) * Co + co
                    let tol = 2 * Double(9 * Ci + 1) * floatU * mag + Double(Float.leastNormalMagnitude)
                    mm.check(abs(Double(got.ptr[i]) - Double(want.ptr[i])) <= tol,
                             "\(shape): y[\(oy)][\(ox)][\(co)] = \(got.ptr[i]), want \(want.ptr[i]) ± \(tol)")
                  }
                }
              }
              mm.check(got.guardsIntact, "\(shape): wrote outside y")
            }
          }
        }
      }
    }
    mm.report()
  }

  private func checkConvDirectDw(_ v: KernelVariant, _ ref: KernelVariant) {
    let f = v.cast(ConvDirectDwFn.self), r = ref.cast(ConvDirectDwFn.self)
    var rng = TestRNG(seed: 82)
    var mm = Mismatches("bs_conv3x3_direct_dw \(v.isaName)")
    for (H, W) in Self.convSizes {
      for Ci in Self.convInputChannels {
        for Co in Self.channelCounts {
          for stride in [1, 2] {
            let OH = (H - 1) / stride + 1, OW = (W - 1) / stride + 1
            let xs = rng.floats(H * W * Ci), dys = rng.floats(OH * OW * Co)
            let d0 = rng.floats(9 * Ci * Co)   // dwt accumulates: start from non-zero values
            let x = GuardedBuffer(xs), dy = GuardedBuffer(dys)
            let want = GuardedBuffer(d0), got = GuardedBuffer(d0)
            let work = ScratchBuffer(floats: bs_conv3x3_direct_scratch_floats(Int32(H), Int32(W), Int32(Ci)))
            r(x.ptr, dy.ptr, Int32(H), Int32(W), Int32(Ci), Int32(Co), Int32(stride), want.ptr, work.ptr)
            f(x.ptr, dy.ptr, Int32(H), Int32(W), Int32(Ci), Int32(Co), Int32(stride), got.ptr, work.ptr)
            mm.check(work.guardIntact, "H\(H) W\(W) Ci\(Ci): wrote past its scratch")
            let shape = "H\(H) W\(W) Ci\(Ci) Co\(Co) s\(stride)"
            for ky in 0..<3 {
              for kx in 0..<3 {
                for ci in 0..<Ci {
                  for co in 0..<Co {
                    // Both add the same OH*OW products in (oy, ox) order to the initial value
                    // (the variant with FMAs and +-0 for padding taps): each within
                    // OH*OW*u*(|d0| + sum|dy*x|) of the exact sum; allow twice that.
                    let i = ((ky * 3 + kx) * Ci + ci) * Co + co
                    var mag = abs(Double(d0[i]))
                    for oy in 0..<OH {
                      let iy = oy * stride - 1 + ky
                      if iy < 0 || iy >= H { continue }
                      for ox in 0..<OW {
                        let ix = ox * stride - 1 + kx
                        if ix < 0 || ix >= W { continue }
                        mag += abs(Double(dys[(oy * OW + ox) * Co + co])
                          * Double(xs[(iy * W + ix) * Ci + ci]))
                      }
                    }
                    let tol = 2 * Double(OH * OW + 1) * floatU * mag + Double(Float.leastNormalMagnitude)
                    mm.check(abs(Double(got.ptr[i]) - Double(want.ptr[i])) <= tol,
                             "\(shape): dwt[\(ky)][\(kx)][\(ci)][\(co)] = \(got.ptr[i]), want \(want.ptr[i]) ± \(tol)")
                  }
                }
              }
            }
            mm.check(got.guardsIntact, "\(shape): wrote outside dwt")
          }
        }
      }
    }
    mm.report()
  }
}

// MARK: blocks of dot products: float sums, bounded error

/// bs_dots_acc (a, na, lda, b, nb, ldb, k, upper, C, ldc).
typealias DotsAccFn = @convention(c) (
  UnsafePointer<Float>?, Int32, Int32, UnsafePointer<Float>?, Int32, Int32, Int32, Int32,
  UnsafeMutablePointer<Float>?, Int32
) -> Void

extension KernelVariantTests {
  /// bs_dots_acc, C += A B^T, the variant and the REF entry both against a Double reference.
  /// Rows around the 6-row tile (5, 6, 7) and the 16- and 32-column B blocks (15, 16, 17,
  /// 33), and the 198 of a CKA minibatch; k around the 8-wide transposes and the 256-column
  /// k-blocks; row strides larger than k, and C's larger than nb (the columns in between
  /// must stay untouched); a non-zero C (it accumulates). upper = 1 with a == b checks
  /// j >= i only.
  /// Tolerance: the variant sums the k products in float in blocks (within about k u of
  /// sum |a b|) and adds each block to C (one rounding of |C0| + sum |a b| per block); the
  /// reference rounds once. Allowed: 2 (k + 2) u (|C0| + sum_p |a_ip b_jp|).
  func checkDotsAcc(_ v: KernelVariant, _ ref: KernelVariant) {
    let f = v.cast(DotsAccFn.self), r = ref.cast(DotsAccFn.self)
    var rng = TestRNG(seed: 91)
    var mm = Mismatches("bs_dots_acc \(v.isaName)")
    let sizes = [1, 5, 6, 7, 15, 16, 17, 33, 198]
    for k in [1, 7, 8, 9, 255, 256, 257, 600] {
      for na in sizes {
        for nb in sizes {
          for upper in [0, 1] where upper == 0 || na == nb {
            let lda = k + 3, ldb = upper == 1 ? lda : k + 5, ldc = nb + 2
            let av = rng.floats(na * lda)
            let bv = upper == 1 ? av : rng.floats(nb * ldb)
            // C's columns past nb hold a signalling NaN, which any arithmetic quiets: even an
            // add of a zero product there (a tail lane left on) changes its bits.
            var c0 = rng.floats(na * ldc)
            let sNaN = Float(bitPattern: GuardedBuffer.guardBits)
            for i in 0..<na { for j in nb..<ldc { c0[i * ldc + j] = sNaN } }
            let a = GuardedBuffer(av), b = upper == 1 ? a : GuardedBuffer(bv)
            let got = GuardedBuffer(c0), refGot = GuardedBuffer(c0)
            f(a.ptr, Int32(na), Int32(lda), b.ptr, Int32(nb), Int32(ldb), Int32(k), Int32(upper),
              got.ptr, Int32(ldc))
            r(a.ptr, Int32(na), Int32(lda), b.ptr, Int32(nb), Int32(ldb), Int32(k), Int32(upper),
              refGot.ptr, Int32(ldc))
            let shape = "na\(na) nb\(nb) k\(k) upper\(upper)"
            for i in 0..<na {
              for j in 0..<ldc {
                let at = i * ldc + j
                if j >= nb {
                  mm.check(got.ptr[at].bitPattern == c0[at].bitPattern
                             && refGot.ptr[at].bitPattern == c0[at].bitPattern,
                           "\(shape): wrote C[\(i)][\(j)] past column nb")
                  continue
                }
                if upper == 1 && j < i { continue }
                var want = Double(c0[at]), mag = abs(want)
                for p in 0..<k {
                  let t = Double(av[i * lda + p]) * Double(bv[j * ldb + p])
                  want += t
                  mag += abs(t)
                }
                let tol = 2 * Double(k + 2) * floatU * mag + Double(Float.leastNormalMagnitude)
                mm.check(abs(Double(got.ptr[at]) - want) <= tol,
                         "\(shape): C[\(i)][\(j)] = \(got.ptr[at]), want \(want) ± \(tol)")
                mm.check(abs(Double(refGot.ptr[at]) - want) <= tol,
                         "\(shape): REF C[\(i)][\(j)] = \(refGot.ptr[at]), want \(want) ± \(tol)")
              }
            }
            mm.check(got.guardsIntact && refGot.guardsIntact, "\(shape): wrote outside C")
            mm.check(a.guardsIntact && b.guardsIntact, "\(shape): wrote outside a or b")
          }
        }
      }
    }
    mm.report()
  }
}

// MARK: strided transpose: exact

/// bs_transpose (src, rows, cols, lds, dst, ldd).
typealias TransposeFn = @convention(c) (
  UnsafePointer<Float>?, Int, Int, Int, UnsafeMutablePointer<Float>?, Int
) -> Void

extension KernelVariantTests {
  /// bs_transpose, pure data movement: bit for bit equal to src read at the transposed index,
  /// for the variant and the REF entry. Rows and columns below, at and above the 8x8 blocks
  /// (and 64, a ResNet conv's 8x8 positions); source strides larger than cols (the NHWC rows
  /// of gram_channels.c) and destination strides larger than rows, whose gaps must keep their
  /// fill; guard words around both buffers.
  func checkTranspose(_ v: KernelVariant, _ ref: KernelVariant) {
    let f = v.cast(TransposeFn.self), r = ref.cast(TransposeFn.self)
    var rng = TestRNG(seed: 37)
    var mm = Mismatches("bs_transpose \(v.isaName)")
    let sizes = [0, 1, 7, 8, 9, 15, 16, 17, 24, 33, 64]
    for rows in sizes {
      for cols in sizes {
        for (sgap, dgap) in [(0, 0), (5, 3), (16, 1)] {
          let lds = cols + sgap, ldd = rows + dgap
          let src = GuardedBuffer(rng.floats(max(1, rows * lds)))
          let n = max(1, cols * ldd)
          let got = GuardedBuffer(count: n, fill: 7), refGot = GuardedBuffer(count: n, fill: 7)
          f(src.ptr, rows, cols, lds, got.ptr, ldd)
          r(src.ptr, rows, cols, lds, refGot.ptr, ldd)
          let shape = "rows\(rows) cols\(cols) lds\(lds) ldd\(ldd)"
          for c in 0..<cols {
            for q in 0..<ldd {
              let want: Float = q < rows ? src.ptr[q * lds + c] : 7
              mm.check(got.ptr[c * ldd + q].bitPattern == want.bitPattern,
                       "\(shape): dst[\(c)][\(q)] = \(got.ptr[c * ldd + q]), want \(want)")
              mm.check(refGot.ptr[c * ldd + q].bitPattern == want.bitPattern,
                       "\(shape): REF dst[\(c)][\(q)] = \(refGot.ptr[c * ldd + q]), want \(want)")
            }
          }
          mm.check(got.guardsIntact && refGot.guardsIntact, "\(shape): wrote outside dst")
          mm.check(src.guardsIntact, "\(shape): wrote into src")
        }
      }
    }
    mm.report()
  }
}
