import Foundation

/// A dense matrix of Doubles, examples in rows (n x d), row-major.
public struct FeatureMatrix: Sendable, Equatable {
  public var rows: Int
  public var columns: Int
  public var values: [Double]

  public init(rows: Int, columns: Int, values: [Double]) throws {
    guard rows >= 0, columns >= 0, values.count == rows * columns else {
      throw CKAError.shape("\(values.count) values for a \(rows) x \(columns) matrix")
    }
    guard values.allSatisfy(\.isFinite) else { throw CKAError.nonFinite }
    self.rows = rows
    self.columns = columns
    self.values = values
  }

  public init(rows: Int, columns: Int, floats: [Float]) throws {
    try self.init(rows: rows, columns: columns, values: floats.map(Double.init))
  }

  public subscript(i: Int, j: Int) -> Double { values[i * columns + j] }

  /// X X^T (n x n).
  public var gram: [Double] {
    let n = rows, d = columns
    var k = [Double](repeating: 0, count: n * n)
    for i in 0..<n {
      for j in i..<n {
        var s = 0.0
        for t in 0..<d { s += values[i * d + t] * values[j * d + t] }
        k[i * n + j] = s
        k[j * n + i] = s
      }
    }
    return k
  }

  /// Whether the rows are all the same up to rounding: the column-centred energy is below
  /// `FullBatchCKA.constantThreshold` of the raw energy (a constant representation has no
  /// similarity to anything; after centring in Double its rounding residue is ~u^2 of it).
  public var isConstant: Bool {
    let raw = values.reduce(0) { $0 + $1 * $1 }
    let centred = columnCentred.values.reduce(0) { $0 + $1 * $1 }
    return raw == 0 || centred <= FullBatchCKA.constantThreshold * raw
  }

  /// The matrix with each column's mean subtracted.
  public var columnCentred: FeatureMatrix {
    var out = self
    for t in 0..<columns {
      var mean = 0.0
      for i in 0..<rows { mean += values[i * columns + t] }
      mean /= Double(max(rows, 1))
      for i in 0..<rows { out.values[i * columns + t] -= mean }
    }
    return out
  }
}

public enum CKAError: Error, CustomStringConvertible, Equatable {
  case shape(String)
  case nonFinite
  case tooFewExamples(needed: Int, got: Int)
  public var description: String {
    switch self {
    case .shape(let s): return "wrong shape: \(s)"
    case .nonFinite: return "the matrix holds NaN or infinite values"
    case .tooFewExamples(let needed, let got):
      return "this estimator needs at least \(needed) examples, got \(got)"
    }
  }
}

/// A CKA value, or why there is none. Never NaN: a representation that is constant over the
/// examples has no similarity to anything (0/0), and that is said, not hidden.
public struct CKAValue: Codable, Sendable, Equatable {
  public var value: Double?
  public var note: String?
  public static func defined(_ v: Double) -> CKAValue { CKAValue(value: v, note: nil) }
  public static func undefined(_ why: String) -> CKAValue { CKAValue(value: nil, note: why) }
}

/// Full-batch CKA of two feature matrices over the same n examples (Kornblith et al. 2019;
/// docs/ANALYSIS.md, "CKA estimators"), in Double. Small n: these are the reference
/// implementations and the estimators for client-supplied matrices; the minibatch heatmaps of
/// whole networks are in MinibatchCKA.
public enum FullBatchCKA {
  /// The RBF bandwidth rule of the reference: s^2 = threshold^2 * median of all n^2 squared
  /// distances (zero diagonal included).
  public static let rbfThreshold = 0.5
  /// Relative centred energy below which a representation counts as constant: (256 u)^2 for
  /// Double's u, far above centring's rounding residue and far below any real variation.
  public static let constantThreshold = 3.3e-27

  /// Every estimator works on column-centred features. All of them are invariant to adding a
  /// constant row vector, but their Gram-side formulas cancel catastrophically when the column
  /// means are large against the spread (means of 1e4: the debiased value went from 0.5 to
  /// -0.52); centring the features first removes the offset before any product is formed.
  static func prepared(_ x: FeatureMatrix, _ y: FeatureMatrix) -> (FeatureMatrix, FeatureMatrix, CKAValue?) {
    let cx = x.isConstant, cy = y.isConstant
    if cx || cy {
      return (x, y, .undefined(cx && cy ? "both representations are constant over the examples"
        : "one representation is constant over the examples (zero self-similarity)"))
    }
    return (x.columnCentred, y.columnCentred, nil)
  }

  static func check(_ x: FeatureMatrix, _ y: FeatureMatrix, minimum: Int) throws {
    guard x.rows == y.rows else {
      throw CKAError.shape("\(x.rows) examples against \(y.rows); examples go in rows")
    }
    guard x.rows >= minimum else { throw CKAError.tooFewExamples(needed: minimum, got: x.rows) }
  }

  /// HKH with H = I - 11^T/n.
  public static func centre(_ k: [Double], n: Int) -> [Double] {
    var row = [Double](repeating: 0, count: n)
    var total = 0.0
    for i in 0..<n {
      for j in 0..<n { row[i] += k[i * n + j] }
      total += row[i]
      row[i] /= Double(n)
    }
    let g = total / Double(n * n)
    var c = k
    for i in 0..<n { for j in 0..<n { c[i * n + j] = k[i * n + j] - row[i] - row[j] + g } }
    return c
  }

  /// Biased HSIC0 = tr(K H L H) / (n-1)^2.
  public static func hsic0(_ k: [Double], _ l: [Double], n: Int) -> Double {
    let kc = centre(k, n: n), lc = centre(l, n: n)
    var s = 0.0
    for i in 0..<(n * n) { s += kc[i] * lc[i] }
    return s / Double((n - 1) * (n - 1))
  }

  /// Unbiased HSIC1 (Song et al. 2012), the explicit formula (docs/ANALYSIS.md, "CKA estimators"):
  /// [tr(K~ L~) + (1^T K~ 1)(1^T L~ 1)/((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1] / (n(n-3)).
  public static func hsic1(_ k: [Double], _ l: [Double], n: Int) -> Double {
    var kt = k, lt = l
    for i in 0..<n { kt[i * n + i] = 0; lt[i * n + i] = 0 }
    var trace = 0.0, sumK = 0.0, sumL = 0.0
    var rowK = [Double](repeating: 0, count: n), rowL = rowK
    for i in 0..<n {
      for j in 0..<n {
        trace += kt[i * n + j] * lt[j * n + i]
        rowK[i] += kt[i * n + j]
        rowL[i] += lt[i * n + j]
      }
      sumK += rowK[i]
      sumL += rowL[i]
    }
    // 1^T K~ L~ 1 = (K~ 1) . (L~ 1) (both symmetric).
    var cross = 0.0
    for i in 0..<n { cross += rowK[i] * rowL[i] }
    let nn = Double(n)
    return (trace + sumK * sumL / ((nn - 1) * (nn - 2)) - 2 / (nn - 2) * cross) / (nn * (nn - 3))
  }

  static func ratio(_ kl: Double, _ kk: Double, _ ll: Double) -> CKAValue {
    guard kk > 0, ll > 0 else {
      return .undefined(kk <= 0 && ll <= 0 ? "both representations are constant over the examples"
        : "one representation is constant over the examples (zero self-similarity)")
    }
    return .defined(kl / (kk * ll).squareRoot())
  }

  /// Linear CKA from the Gram matrices (biased HSIC).
  public static func linear(_ x: FeatureMatrix, _ y: FeatureMatrix) throws -> CKAValue {
    try check(x, y, minimum: 2)
    let (x, y, undefined) = prepared(x, y)
    if let undefined { return undefined }
    let n = x.rows, k = x.gram, l = y.gram
    return ratio(hsic0(k, l, n: n), hsic0(k, k, n: n), hsic0(l, l, n: n))
  }

  /// Linear CKA in feature space: ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F), the same
  /// value as `linear` and cheaper when the feature counts are below n.
  public static func linearFeatureSpace(_ x: FeatureMatrix, _ y: FeatureMatrix) throws -> CKAValue {
    try check(x, y, minimum: 2)
    let (xc, yc, undefined) = prepared(x, y)
    if let undefined { return undefined }
    func crossNorm2(_ a: FeatureMatrix, _ b: FeatureMatrix) -> Double {
      var s = 0.0
      for p in 0..<a.columns {
        for q in 0..<b.columns {
          var dot = 0.0
          for i in 0..<a.rows { dot += a.values[i * a.columns + p] * b.values[i * b.columns + q] }
          s += dot * dot
        }
      }
      return s
    }
    let xy = crossNorm2(yc, xc), xx = crossNorm2(xc, xc), yy = crossNorm2(yc, yc)
    guard xx > 0, yy > 0 else { return ratio(xy, xx, yy) }
    return .defined(xy / (xx.squareRoot() * yy.squareRoot()))
  }

  /// Debiased linear CKA: the unbiased HSIC1 in place of HSIC0 (n >= 4).
  public static func debiasedLinear(_ x: FeatureMatrix, _ y: FeatureMatrix) throws -> CKAValue {
    try check(x, y, minimum: 4)
    let (x, y, undefined) = prepared(x, y)
    if let undefined { return undefined }
    let n = x.rows, k = x.gram, l = y.gram
    return ratio(hsic1(k, l, n: n), hsic1(k, k, n: n), hsic1(l, l, n: n))
  }

  /// RBF Gram with the median bandwidth rule; nil when the median squared distance is 0
  /// (more than half of all pairs identical: no bandwidth).
  public static func rbfGram(_ x: FeatureMatrix, threshold: Double = rbfThreshold) -> [Double]? {
    let n = x.rows, g = x.gram
    var d = [Double](repeating: 0, count: n * n)
    for i in 0..<n { for j in 0..<n { d[i * n + j] = max(g[i * n + i] + g[j * n + j] - 2 * g[i * n + j], 0) } }
    let median = Self.median(d)
    guard median > 0 else { return nil }
    let s2 = threshold * threshold * median
    return d.map { Foundation.exp(-$0 / (2 * s2)) }
  }

  /// The median as numpy defines it (mean of the two middle values for an even count).
  public static func median(_ v: [Double]) -> Double {
    guard !v.isEmpty else { return 0 }
    let s = v.sorted(), c = s.count
    return c % 2 == 1 ? s[c / 2] : (s[c / 2 - 1] + s[c / 2]) / 2
  }

  /// RBF CKA (biased HSIC, as the 2019 reference).
  public static func rbf(_ x: FeatureMatrix, _ y: FeatureMatrix,
                         threshold: Double = rbfThreshold) throws -> CKAValue {
    try check(x, y, minimum: 2)
    let (x, y, undefined) = prepared(x, y)
    if let undefined { return undefined }
    guard let k = rbfGram(x, threshold: threshold), let l = rbfGram(y, threshold: threshold) else {
      return .undefined("RBF bandwidth is zero: more than half of the example pairs are identical")
    }
    let n = x.rows
    return ratio(hsic0(k, l, n: n), hsic0(k, k, n: n), hsic0(l, l, n: n))
  }
}
