import Foundation

/// The Winograd transforms in Double (the tests' own copy of Lavin & Gray's matrices, not the
/// C tables) and error bounds derived from them.
///
/// A float evaluation of a chain of sums and products whose longest chain has k roundings is
/// within k*u times the same chain evaluated on absolute values (every matrix and datum
/// replaced by its absolute value). For a Winograd output that chain is the input transform
/// (2*alpha terms), the weight transform (rounded once from Double), the products (Ci terms)
/// and the output transform (2*alpha terms); cancellation inside the transforms is why the
/// bound is the absolute-value evaluation and not the direct convolution's sum of |x*w|.
enum WinogradReference {
  typealias Matrix = [[Double]]

  private static let bt2: Matrix = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
  private static let bt4: Matrix = [
    [4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
    [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1],
  ]
  private static let g2: Matrix = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
  private static let sixth = 1.0 / 6, twelfth = 1.0 / 12, quarter = 1.0 / 4, t24 = 1.0 / 24
  private static let g4: Matrix = [
    [quarter, 0, 0], [-sixth, -sixth, -sixth], [-sixth, sixth, -sixth],
    [t24, twelfth, sixth], [t24, -twelfth, sixth], [0, 0, 1],
  ]
  private static let at2: Matrix = [[1, 1, 1, 0], [0, 1, -1, -1]]
  private static let at4: Matrix = [
    [1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1],
  ]
  static func bt(_ m: Int) -> Matrix { m == 2 ? bt2 : bt4 }
  static func g(_ m: Int) -> Matrix { m == 2 ? g2 : g4 }
  static func at(_ m: Int) -> Matrix { m == 2 ? at2 : at4 }
  /// The weight gradient's F(3x3, 2x2) with F(2x2, 3x3)'s B^T: G' (4 x 2) and A'^T (3 x 4).
  static let gw: Matrix = [[1, 0], [0.5, 0.5], [0.5, -0.5], [0, -1]]
  static let awT: Matrix = [[1, 1, 1, 0], [0, 1, -1, 0], [0, 1, 1, 1]]

  static func mul(_ a: Matrix, _ b: Matrix) -> Matrix {
    let n = a.count, k = b.count, p = b[0].count
    var c = Matrix(repeating: [Double](repeating: 0, count: p), count: n)
    for i in 0..<n { for j in 0..<p { for q in 0..<k { c[i][j] += a[i][q] * b[q][j] } } }
    return c
  }
  static func t(_ a: Matrix) -> Matrix {
    (0..<a[0].count).map { j in a.map { $0[j] } }
  }
  static func abs(_ a: Matrix) -> Matrix { a.map { $0.map { Swift.abs($0) } } }
  /// L X L'^T
  static func sandwich(_ l: Matrix, _ x: Matrix, _ r: Matrix) -> Matrix { mul(mul(l, x), t(r)) }

  /// The a x a window of channel c of image n whose tile's first output is (y0, x0): rows
  /// y0 - 1 ..< y0 - 1 + a, zero outside the image. x: [N][H][W][C].
  static func window(_ x: [Float], H: Int, W: Int, C: Int, n: Int, y0: Int, x0: Int, c: Int,
                     a: Int, offset: Int = -1) -> Matrix {
    (0..<a).map { i in
      (0..<a).map { j in
        let iy = y0 + offset + i, ix = x0 + offset + j
        return iy >= 0 && iy < H && ix >= 0 && ix < W
          ? Double(x[((n * H + iy) * W + ix) * C + c]) : 0
      }
    }
  }

  /// Per output of the stride-1 "same" 3x3 convolution x [N][H][W][Ci] * w [Co][3][3][Ci]
  /// (+ |bias|): the absolute-value evaluation of F(m x m, 3 x 3), and the chain length k.
  static func forwardBound(m: Int, N: Int, H: Int, W: Int, Ci: Int, Co: Int, x: [Float],
                           w: [Float], bias: [Float]?) -> (magnitude: [Double], k: Int) {
    let a = m + 2
    let bt = abs(Self.bt(m)), g = abs(Self.g(m)), at = abs(Self.at(m))
    var u = [[Matrix]]()   // |G||w||G|^T per (co, ci)
    for co in 0..<Co {
      u.append((0..<Ci).map { ci in
        let k: Matrix = (0..<3).map { ky in
          (0..<3).map { kx in Swift.abs(Double(w[((co * 3 + ky) * 3 + kx) * Ci + ci])) }
        }
        return sandwich(g, k, g)
      })
    }
    var out = [Double](repeating: 0, count: N * H * W * Co)
    for n in 0..<N {
      for y0 in stride(from: 0, to: H, by: m) {
        for x0 in stride(from: 0, to: W, by: m) {
          let v = (0..<Ci).map { ci in
            sandwich(bt, abs(window(x, H: H, W: W, C: Ci, n: n, y0: y0, x0: x0, c: ci, a: a)), bt)
          }
          for co in 0..<Co {
            var mm = Matrix(repeating: [Double](repeating: 0, count: a), count: a)
            for ci in 0..<Ci {
              for i in 0..<a { for j in 0..<a { mm[i][j] += v[ci][i][j] * u[co][ci][i][j] } }
            }
            let y = sandwich(at, mm, at)
            for i in 0..<m where y0 + i < H {
              for j in 0..<m where x0 + j < W {
                out[((n * H + y0 + i) * W + x0 + j) * Co + co] =
                  y[i][j] + Swift.abs(Double(bias?[co] ?? 0))
              }
            }
          }
        }
      }
    }
    return (out, Ci + 4 * a + 3)
  }

  /// Per element of dw [Co][3][3][Ci]: the absolute-value evaluation of F(3x3, 2x2) over all
  /// tiles of the N images, and the chain length (tiles summed, transforms, partial sums).
  static func weightGradBound(N: Int, H: Int, W: Int, Ci: Int, Co: Int, x: [Float],
                              dy: [Float], partials: Int) -> (magnitude: [Double], k: Int) {
    let bt = abs(Self.bt(2)), gw = abs(Self.gw), awT = abs(Self.awT)
    var s = [Matrix](repeating: Matrix(repeating: [0, 0, 0, 0], count: 4), count: Ci * Co)
    var tiles = 0
    for n in 0..<N {
      for y0 in stride(from: 0, to: H, by: 2) {
        for x0 in stride(from: 0, to: W, by: 2) {
          tiles += 1
          let v = (0..<Ci).map { ci in
            sandwich(bt, abs(window(x, H: H, W: W, C: Ci, n: n, y0: y0, x0: x0, c: ci, a: 4)), bt)
          }
          for co in 0..<Co {
            let gt = sandwich(gw, abs(window(dy, H: H, W: W, C: Co, n: n, y0: y0, x0: x0, c: co,
                                             a: 2, offset: 0)), gw)
            for ci in 0..<Ci {
              for i in 0..<4 { for j in 0..<4 { s[ci * Co + co][i][j] += v[ci][i][j] * gt[i][j] } }
            }
          }
        }
      }
    }
    var out = [Double](repeating: 0, count: Co * 9 * Ci)
    for co in 0..<Co {
      for ci in 0..<Ci {
        let d = sandwich(awT, s[ci * Co + co], awT)
        for ky in 0..<3 { for kx in 0..<3 { out[((co * 3 + ky) * 3 + kx) * Ci + ci] = d[ky][kx] } }
      }
    }
    return (out, tiles + 16 + 4 + 3 + partials)
  }

  /// w [Co][3][3][Ci] -> the backward-data pass's kernel [Ci][3][3][Co], flipped in space.
  static func flipped(_ w: [Float], Ci: Int, Co: Int) -> [Float] {
    var f = [Float](repeating: 0, count: w.count)
    for co in 0..<Co {
      for ky in 0..<3 {
        for kx in 0..<3 {
          for ci in 0..<Ci {
            f[((ci * 3 + 2 - ky) * 3 + 2 - kx) * Co + co] = w[((co * 3 + ky) * 3 + kx) * Ci + ci]
          }
        }
      }
    }
    return f
  }
}
