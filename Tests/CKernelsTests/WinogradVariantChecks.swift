import CKernels
import XCTest

/// The Winograd tile kernels' variants against their references (KernelVariantTests drives
/// these). Each transform output is a short sum whose terms the variant groups differently
/// (and fuses some into FMAs): both are within k*u of the exact value times the
/// absolute-value evaluation of the transform (WinogradReference), k = the terms in the
/// chain; allowed: twice that. The products add the same Ci terms in the same order.
extension KernelVariantTests {
  /// (N, H, W): partial tiles at the right and bottom, 1-pixel images, several images.
  static let winogradImages = [(1, 1, 1), (2, 3, 5), (1, 8, 8), (2, 7, 6), (1, 5, 13)]

  /// |L| |window| |R|^T per tile and channel, as [a*a][tiles][C] like the kernels' output.
  private func transformMagnitudes(_ x: [Float], N: Int, H: Int, W: Int, C: Int, m: Int,
                                   l: [[Double]], r: [[Double]], windowSize: Int,
                                   offset: Int) -> [Double] {
    let tiles = N * ((H + m - 1) / m) * ((W + m - 1) / m), a = l.count
    var out = [Double](repeating: 0, count: a * a * tiles * C)
    var t = 0
    for n in 0..<N {
      for y0 in stride(from: 0, to: H, by: m) {
        for x0 in stride(from: 0, to: W, by: m) {
          for c in 0..<C {
            let d = WinogradReference.window(x, H: H, W: W, C: C, n: n, y0: y0, x0: x0, c: c,
                                             a: windowSize, offset: offset)
            let v = WinogradReference.sandwich(WinogradReference.abs(l), WinogradReference.abs(d),
                                               WinogradReference.abs(r))
            for i in 0..<a { for j in 0..<a { out[((i * a + j) * tiles + t) * C + c] = v[i][j] } }
          }
          t += 1
        }
      }
    }
    return out
  }

  func checkWinogradInput(_ v: KernelVariant, _ ref: KernelVariant) {
    let f = v.cast(WinogradInputFn.self), r = ref.cast(WinogradInputFn.self)
    var rng = TestRNG(seed: 173)
    var mm = Mismatches("bs_winograd_input \(v.isaName)")
    for m in [2, 4] {
      let a = m + 2, bt = WinogradReference.bt(m)
      for (N, H, W) in Self.winogradImages {
        for C in Self.channelCounts {
          let xs = rng.floats(N * H * W * C)
          let tiles = N * ((H + m - 1) / m) * ((W + m - 1) / m)
          let mag = transformMagnitudes(xs, N: N, H: H, W: W, C: C, m: m, l: bt, r: bt,
                                        windowSize: a, offset: -1)
          // all tiles, then the tiles from 1 on (t0 > 0)
          for t0 in Set([0, min(1, tiles - 1)]) {
            let nt = tiles - t0, count = a * a * nt * C
            let x = GuardedBuffer(xs)
            let want = GuardedBuffer(count: count, fill: 7), got = GuardedBuffer(count: count, fill: -7)
            r(x.ptr, Int32(H), Int32(W), Int32(C), Int32(m), t0, Int32(nt), want.ptr)
            f(x.ptr, Int32(H), Int32(W), Int32(C), Int32(m), t0, Int32(nt), got.ptr)
            let shape = "m\(m) N\(N) H\(H) W\(W) C\(C) t0 \(t0)"
            for k in 0..<(a * a) {
              for t in 0..<nt {
                for c in 0..<C {
                  let i = (k * nt + t) * C + c
                  let tol = 2 * Double(2 * a) * floatU * mag[(k * tiles + t0 + t) * C + c] + 1e-30
                  mm.check(abs(Double(got.ptr[i]) - Double(want.ptr[i])) <= tol,
                           "\(shape): v[\(k)][\(t)][\(c)] = \(got.ptr[i]), want \(want.ptr[i]) ± \(tol)")
                }
              }
            }
            mm.check(got.guardsIntact, "\(shape): wrote outside v")
          }
        }
      }
    }
    mm.report()
  }

  func checkWinogradProducts(_ v: KernelVariant, _ ref: KernelVariant) {
    let f = v.cast(WinogradProductsFn.self), r = ref.cast(WinogradProductsFn.self)
    var rng = TestRNG(seed: 174)
    var mm = Mismatches("bs_winograd_products \(v.isaName)")
    for a2 in [16, 36] {
      // register tiles of 6 (16 channels) and 12 (8): below, at and above them
      for nt in [1, 5, 7, 13] {
        for Ci in [1, 8, 17] {
          for Co in Self.channelCounts {
            let m = a2 == 16 ? 2 : 4
            let vs = rng.floats(a2 * nt * Ci), ws = rng.floats(Co * 9 * Ci)
            var up = [Float](repeating: .nan, count: bs_winograd_packed_floats(Int32(m), Int32(Ci), Int32(Co)))
            bs_winograd_pack(ws, Int32(m), Int32(Ci), Int32(Co), &up)
            let vb = GuardedBuffer(vs), count = a2 * nt * Co
            let want = GuardedBuffer(count: count, fill: 7), got = GuardedBuffer(count: count, fill: -7)
            r(vb.ptr, Int32(nt), Int32(Ci), Int32(Co), Int32(a2), up, want.ptr)
            f(vb.ptr, Int32(nt), Int32(Ci), Int32(Co), Int32(a2), up, got.ptr)
            let Co8 = (Co + 7) / 8 * 8
            for k in 0..<a2 {
              for t in 0..<nt {
                for co in 0..<Co {
                  let b0 = co / 16 * 16, bw = min(16, Co8 - b0)
                  var mag = 0.0
                  for ci in 0..<Ci {
                    mag += abs(Double(vs[(k * nt + t) * Ci + ci])
                      * Double(up[k * Ci * Co8 + b0 * Ci + ci * bw + co - b0]))
                  }
                  let i = (k * nt + t) * Co + co
                  let tol = 2 * Double(Ci) * floatU * mag + 1e-30
                  mm.check(abs(Double(got.ptr[i]) - Double(want.ptr[i])) <= tol,
                           "a2 \(a2) nt\(nt) Ci\(Ci) Co\(Co): mo[\(k)][\(t)][\(co)] = \(got.ptr[i]), want \(want.ptr[i]) ± \(tol)")
                }
              }
            }
            mm.check(got.guardsIntact, "a2 \(a2) nt\(nt) Ci\(Ci) Co\(Co): wrote outside mo")
          }
        }
      }
    }
    mm.report()
  }

  func checkWinogradOutput(_ v: KernelVariant, _ ref: KernelVariant) {
    let f = v.cast(WinogradOutputFn.self), r = ref.cast(WinogradOutputFn.self)
    var rng = TestRNG(seed: 175)
    var mm = Mismatches("bs_winograd_output \(v.isaName)")
    for m in [2, 4] {
      let a = m + 2, at = WinogradReference.abs(WinogradReference.at(m))
      for (N, H, W) in Self.winogradImages {
        for Co in Self.channelCounts {
          let tiles = N * ((H + m - 1) / m) * ((W + m - 1) / m)
          let mos = rng.floats(a * a * tiles * Co), biasValues = rng.floats(Co)
          let y0 = rng.floats(N * H * W * Co)   // pixels the tiles do not own stay as they were
          let residualValues = rng.floats(N * H * W * Co)
          // (bias, residual, relu): the plain transform, and the inference epilogue's parts
          for (withBias, withResidual, relu) in [(false, false, false), (true, false, false),
                                                 (true, true, true), (false, false, true),
                                                 (true, true, false)] {
            let mo = GuardedBuffer(mos), bias = GuardedBuffer(biasValues)
            let residual = GuardedBuffer(residualValues)
            let want = GuardedBuffer(y0), got = GuardedBuffer(y0)
            let b: UnsafePointer<Float>? = withBias ? UnsafePointer(bias.ptr) : nil
            let res: UnsafePointer<Float>? = withResidual ? UnsafePointer(residual.ptr) : nil
            // the tiles from 1 on, reading mo from its start (t0 > 0 when there are two tiles)
            let t0 = min(1, tiles - 1), nt = tiles - t0
            r(mo.ptr, Int32(H), Int32(W), Int32(Co), Int32(m), t0, Int32(nt), b, res, relu ? 1 : 0, want.ptr)
            f(mo.ptr, Int32(H), Int32(W), Int32(Co), Int32(m), t0, Int32(nt), b, res, relu ? 1 : 0, got.ptr)
            let shape = "m\(m) N\(N) H\(H) W\(W) Co\(Co) bias \(withBias) residual \(withResidual) relu \(relu) t0 \(t0)"
            let tilesX = (W + m - 1) / m, perImage = tilesX * ((H + m - 1) / m)
            for t in 0..<nt {
              let g = t0 + t, n = g / perImage, ty = (g % perImage) / tilesX, tx = g % tilesX
              for co in 0..<Co {
                let mmat: [[Double]] = (0..<a).map { i in
                  (0..<a).map { j in abs(Double(mos[((i * a + j) * nt + t) * Co + co])) }
                }
                let mag = WinogradReference.sandwich(at, mmat, at)
                for i in 0..<m where ty * m + i < H {
                  for j in 0..<m where tx * m + j < W {
                    let idx = ((n * H + ty * m + i) * W + tx * m + j) * Co + co
                    // the ReLU only lowers a difference; the bias and residual add a term each
                    let tol = 2 * Double(2 * a + 2) * floatU
                      * (mag[i][j] + (withBias ? abs(Double(biasValues[co])) : 0)
                         + (withResidual ? abs(Double(residualValues[idx])) : 0)) + 1e-30
                    mm.check(abs(Double(got.ptr[idx]) - Double(want.ptr[idx])) <= tol,
                             "\(shape): y[\(idx)] = \(got.ptr[idx]), want \(want.ptr[idx]) ± \(tol)")
                  }
                }
              }
            }
            // tile 0's pixels (when t0 = 1) are left as they were
            let firstTile = t0 == 1
              ? (0..<min(m, H)).flatMap { i in (0..<min(m, W)).map { j in (i * W + j) * Co } } : []
            for base in firstTile {
              for co in 0..<Co {
                mm.check(got.ptr[base + co].bitPattern == y0[base + co].bitPattern,
                         "\(shape): wrote y[\(base + co)] of a tile outside [t0, t0 + nt)")
              }
            }
            mm.check(got.guardsIntact, "\(shape): wrote outside y")
          }
        }
      }
    }
    mm.report()
  }

  func checkWinogradDy(_ v: KernelVariant, _ ref: KernelVariant) {
    let f = v.cast(WinogradDyFn.self), r = ref.cast(WinogradDyFn.self)
    var rng = TestRNG(seed: 176)
    var mm = Mismatches("bs_winograd_dy \(v.isaName)")
    for (N, H, W) in Self.winogradImages {
      for Co in Self.channelCounts {
        let dys = rng.floats(N * H * W * Co)
        let tiles = N * ((H + 1) / 2) * ((W + 1) / 2)
        let mag = transformMagnitudes(dys, N: N, H: H, W: W, C: Co, m: 2, l: WinogradReference.gw,
                                      r: WinogradReference.gw, windowSize: 2, offset: 0)
        let t0 = min(1, tiles - 1), nt = tiles - t0, count = 16 * nt * Co
        let dy = GuardedBuffer(dys)
        let want = GuardedBuffer(count: count, fill: 7), got = GuardedBuffer(count: count, fill: -7)
        r(dy.ptr, Int32(H), Int32(W), Int32(Co), t0, Int32(nt), want.ptr)
        f(dy.ptr, Int32(H), Int32(W), Int32(Co), t0, Int32(nt), got.ptr)
        let shape = "N\(N) H\(H) W\(W) Co\(Co) t0 \(t0)"
        for k in 0..<16 {
          for t in 0..<nt {
            for c in 0..<Co {
              let i = (k * nt + t) * Co + c
              let tol = 2 * 4 * floatU * mag[(k * tiles + t0 + t) * Co + c] + 1e-30
              mm.check(abs(Double(got.ptr[i]) - Double(want.ptr[i])) <= tol,
                       "\(shape): g[\(k)][\(t)][\(c)] = \(got.ptr[i]), want \(want.ptr[i]) ± \(tol)")
            }
          }
        }
        mm.check(got.guardsIntact, "\(shape): wrote outside g")
      }
    }
    mm.report()
  }

  func checkWinogradDwProducts(_ v: KernelVariant, _ ref: KernelVariant) {
    let f = v.cast(WinogradDwProductsFn.self), r = ref.cast(WinogradDwProductsFn.self)
    var rng = TestRNG(seed: 177)
    var mm = Mismatches("bs_winograd_dw_products \(v.isaName)")
    for nt in [1, 7, 40] {
      for Ci in [1, 6, 7, 13] {   // register tiles of 6 and 12 input channels: below, at, above
        for Co in Self.channelCounts {
          let vs = rng.floats(16 * nt * Ci), gs = rng.floats(16 * nt * Co)
          let s0 = rng.floats(16 * Ci * Co)   // s accumulates: start from non-zero values
          let vb = GuardedBuffer(vs), gb = GuardedBuffer(gs)
          let want = GuardedBuffer(s0), got = GuardedBuffer(s0)
          r(vb.ptr, gb.ptr, Int32(nt), Int32(Ci), Int32(Co), want.ptr)
          f(vb.ptr, gb.ptr, Int32(nt), Int32(Ci), Int32(Co), got.ptr)
          for k in 0..<16 {
            for ci in 0..<Ci {
              for co in 0..<Co {
                // the same nt products added in order to s0, one FMA each in the variant
                let i = (k * Ci + ci) * Co + co
                var mag = abs(Double(s0[i]))
                for t in 0..<nt {
                  mag += abs(Double(vs[(k * nt + t) * Ci + ci]) * Double(gs[(k * nt + t) * Co + co]))
                }
                let tol = 2 * Double(nt + 1) * floatU * mag + 1e-30
                mm.check(abs(Double(got.ptr[i]) - Double(want.ptr[i])) <= tol,
                         "nt\(nt) Ci\(Ci) Co\(Co): s[\(k)][\(ci)][\(co)] = \(got.ptr[i]), want \(want.ptr[i]) ± \(tol)")
              }
            }
          }
          mm.check(got.guardsIntact, "nt\(nt) Ci\(Ci) Co\(Co): wrote outside s")
        }
      }
    }
    mm.report()
  }
}
