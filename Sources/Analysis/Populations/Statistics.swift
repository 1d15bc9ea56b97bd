import Foundation

/// The outcome of a hypothesis test, always JSON-encodable: no NaN or infinity ever leaves here.
///
/// When a test cannot be carried out (a group of fewer than two values, zero variance in both
/// groups, proportions both 0 or both 1), `defined` is false, `reason` says why, the statistic is
/// 0 and the p-value is 1. A p-value of 1 keeps such cases out of every "significant" count and
/// leaves Benjamini-Hochberg adjustment of the other tests conservative instead of poisoned.
public struct TestOutcome: Codable, Sendable, Equatable {
  /// z for the two-proportion test, t for Welch, the observed top-left cell for Fisher.
  public var statistic: Double
  /// Degrees of freedom (Welch only).
  public var degreesOfFreedom: Double?
  /// Two-sided p-value in [0, 1].
  public var pValue: Double
  public var defined: Bool
  public var reason: String?

  public init(statistic: Double, degreesOfFreedom: Double? = nil, pValue: Double,
              defined: Bool = true, reason: String? = nil) {
    self.statistic = statistic
    self.degreesOfFreedom = degreesOfFreedom
    self.pValue = pValue
    self.defined = defined
    self.reason = reason
  }

  static func undefined(_ reason: String) -> TestOutcome {
    TestOutcome(statistic: 0, pValue: 1, defined: false, reason: reason)
  }
}

public enum StatisticsError: Error, CustomStringConvertible, Equatable {
  case invalidTable(String)
  case invalidPValue(index: Int, value: Double)
  case invalidArgument(String)

  public var description: String {
    switch self {
    case .invalidTable(let why): return "invalid 2x2 table: \(why)"
    case .invalidPValue(let i, let v): return "p-value #\(i) is \(v), expected a number in [0, 1]"
    case .invalidArgument(let why): return why
    }
  }
}

/// Pure numerics for the population comparisons (Nguyen et al. 2021; docs/ANALYSIS.md, "Probes,
/// deletion, block structure, populations"). Double precision throughout.
public enum Statistics {

  // MARK: Distributions

  /// Standard normal CDF, through erfc so the tails keep their relative precision.
  public static func normalCDF(_ x: Double) -> Double {
    0.5 * erfc(-x / 2.0.squareRoot())
  }

  /// Two-sided normal p-value P(|Z| >= |z|) = erfc(|z| / sqrt 2), computed directly rather than
  /// as 2 (1 - Phi) so that small p-values do not cancel to 0.
  public static func normalTwoSidedP(_ z: Double) -> Double {
    min(1, erfc(abs(z) / 2.0.squareRoot()))
  }

  /// log C(n, k) through log-gamma, so large populations neither overflow nor lose precision.
  public static func logBinomial(_ n: Int, _ k: Int) -> Double {
    precondition(n >= 0 && k >= 0 && k <= n, "logBinomial needs 0 <= k <= n")
    return lgamma(Double(n + 1)) - lgamma(Double(k + 1)) - lgamma(Double(n - k + 1))
  }

  /// log P(X = x) for the hypergeometric distribution: x successes in `draws` draws without
  /// replacement from a population of `population` items of which `successes` are successes.
  /// -infinity outside the support.
  public static func logHypergeometric(_ x: Int, population: Int, successes: Int,
                                       draws: Int) -> Double {
    let lo = max(0, draws - (population - successes)), hi = min(draws, successes)
    guard x >= lo && x <= hi else { return -.infinity }
    return logBinomial(successes, x) + logBinomial(population - successes, draws - x)
      - logBinomial(population, draws)
  }

  /// Regularized incomplete beta I_x(a, b), by the continued fraction (modified Lentz) on the
  /// side of the symmetry I_x(a, b) = 1 - I_{1-x}(b, a) where it converges fast.
  public static func regularizedIncompleteBeta(_ x: Double, a: Double, b: Double) -> Double {
    precondition(a > 0 && b > 0, "regularizedIncompleteBeta needs a, b > 0")
    if x <= 0 { return 0 }
    if x >= 1 { return 1 }
    let logFront = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x)
    if x < (a + 1) / (a + b + 2) {
      return exp(logFront) * betaContinuedFraction(x, a: a, b: b) / a
    }
    return 1 - exp(logFront) * betaContinuedFraction(1 - x, a: b, b: a) / b
  }

  /// The continued fraction for I_x(a, b) (Numerical Recipes' betacf), evaluated by the modified
  /// Lentz method: tiny values stand in for zero denominators.
  static func betaContinuedFraction(_ x: Double, a: Double, b: Double) -> Double {
    let tiny = 1e-300, eps = 1e-15
    let qab = a + b, qap = a + 1, qam = a - 1
    var c = 1.0
    var d = 1 - qab * x / qap
    if abs(d) < tiny { d = tiny }
    d = 1 / d
    var h = d
    for m in 1...10_000 {
      let m = Double(m), m2 = 2 * m
      // Even step.
      var aa = m * (b - m) * x / ((qam + m2) * (a + m2))
      d = 1 + aa * d; if abs(d) < tiny { d = tiny }
      c = 1 + aa / c; if abs(c) < tiny { c = tiny }
      d = 1 / d
      h *= d * c
      // Odd step.
      aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
      d = 1 + aa * d; if abs(d) < tiny { d = tiny }
      c = 1 + aa / c; if abs(c) < tiny { c = tiny }
      d = 1 / d
      let delta = d * c
      h *= delta
      if abs(delta - 1) < eps { break }
    }
    return h
  }

  /// Two-sided Student t p-value P(|T| >= |t|) with `df` degrees of freedom (df may be
  /// fractional, as Welch's is): I_{df/(df+t^2)}(df/2, 1/2).
  public static func studentTTwoSidedP(_ t: Double, degreesOfFreedom df: Double) -> Double {
    precondition(df > 0, "studentTTwoSidedP needs df > 0")
    if t.isInfinite { return 0 }
    let p = regularizedIncompleteBeta(df / (df + t * t), a: df / 2, b: 0.5)
    return min(1, max(0, p))
  }

  // MARK: Tests

  /// Two-sided Fisher exact test on the 2x2 table [[a, b], [c, d]]: the sum of the probabilities
  /// (hypergeometric, margins fixed) of every table no more likely than the observed one. "No
  /// more likely" allows a relative tolerance of 1e-7, as R's fisher.test and scipy do, so that
  /// tables tied with the observed one in exact arithmetic are not lost to rounding.
  public static func fisherExact(_ a: Int, _ b: Int, _ c: Int, _ d: Int) throws -> TestOutcome {
    guard a >= 0, b >= 0, c >= 0, d >= 0 else {
      throw StatisticsError.invalidTable("negative count in [[\(a), \(b)], [\(c), \(d)]]")
    }
    let n = a + b + c + d
    let row1 = a + b, col1 = a + c
    if n == 0 { return .undefined("empty table") }
    let lo = max(0, col1 - (n - row1)), hi = min(row1, col1)
    if lo == hi {
      // A margin is zero or full: one table is possible, so nothing can differ.
      return TestOutcome(statistic: Double(a), pValue: 1, defined: false,
                         reason: "a margin of the table is 0 or full; only one table is possible")
    }
    let logObserved = logHypergeometric(a, population: n, successes: row1, draws: col1)
    let cutoff = logObserved + log1p(1e-7)
    var p = 0.0
    for x in lo...hi {
      let lp = logHypergeometric(x, population: n, successes: row1, draws: col1)
      if lp <= cutoff { p += exp(lp) }
    }
    return TestOutcome(statistic: Double(a), pValue: min(1, p))
  }

  /// Pooled two-proportion z-test of x1/n1 against x2/n2, two-sided. When the pooled proportion
  /// is 0 or 1 (every trial in both groups failed, or every one succeeded) the standard error is
  /// 0 and the groups cannot differ: p = 1, with the reason.
  public static func twoProportionZ(successes x1: Int, trials n1: Int,
                                    successes x2: Int, trials n2: Int) throws -> TestOutcome {
    guard n1 > 0, n2 > 0 else {
      throw StatisticsError.invalidArgument("two-proportion test needs trials > 0 (got \(n1), \(n2))")
    }
    guard (0...n1).contains(x1), (0...n2).contains(x2) else {
      throw StatisticsError.invalidArgument(
        "two-proportion test: successes must lie in 0...trials (got \(x1)/\(n1), \(x2)/\(n2))")
    }
    let p1 = Double(x1) / Double(n1), p2 = Double(x2) / Double(n2)
    let pooled = Double(x1 + x2) / Double(n1 + n2)
    if pooled == 0 || pooled == 1 {
      return .undefined("both proportions are \(pooled == 0 ? 0 : 1); the standard error is 0")
    }
    let se = (pooled * (1 - pooled) * (1 / Double(n1) + 1 / Double(n2))).squareRoot()
    let z = (p1 - p2) / se
    return TestOutcome(statistic: z, pValue: normalTwoSidedP(z))
  }

  /// Welch's unequal-variance t-test, two-sided, with the Welch-Satterthwaite degrees of freedom.
  /// Undefined (p = 1, with the reason) when a group has fewer than two values or both groups
  /// have zero variance: there is no spread to measure a difference against. When only one
  /// group has zero variance the test is still defined (df = n - 1 of the other group).
  public static func welchT(_ x: [Double], _ y: [Double]) -> TestOutcome {
    guard x.count >= 2, y.count >= 2 else {
      return .undefined("Welch t-test needs at least 2 values per group (got \(x.count) and \(y.count))")
    }
    guard x.allSatisfy(\.isFinite), y.allSatisfy(\.isFinite) else {
      return .undefined("non-finite value in the samples")
    }
    let (mx, vx) = meanAndVariance(x), (my, vy) = meanAndVariance(y)
    let sx = vx / Double(x.count), sy = vy / Double(y.count)
    let se2 = sx + sy
    if se2 <= 0 {
      return .undefined(mx == my
        ? "both groups have zero variance and equal means"
        : "both groups have zero variance (means \(mx) and \(my)); the t statistic is unbounded")
    }
    let t = (mx - my) / se2.squareRoot()
    let df = se2 * se2 / (sx * sx / Double(x.count - 1) + sy * sy / Double(y.count - 1))
    return TestOutcome(statistic: t, degreesOfFreedom: df,
                       pValue: studentTTwoSidedP(t, degreesOfFreedom: df))
  }

  /// Mean and unbiased (n - 1) variance, two-pass for accuracy.
  public static func meanAndVariance(_ x: [Double]) -> (mean: Double, variance: Double) {
    guard !x.isEmpty else { return (0, 0) }
    let mean = x.reduce(0, +) / Double(x.count)
    guard x.count > 1 else { return (mean, 0) }
    let ss = x.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
    return (mean, ss / Double(x.count - 1))
  }

  // MARK: Multiple testing

  /// Benjamini-Hochberg adjusted p-values (false discovery rate), in the input's order:
  /// adj(i) = min over ranks r >= rank(i) of p(r) m / r, capped at 1. The running minimum from
  /// the largest p down makes the adjusted values monotone in the raw ones.
  public static func benjaminiHochberg(_ p: [Double]) throws -> [Double] {
    for (i, v) in p.enumerated() where !(v >= 0 && v <= 1) {
      throw StatisticsError.invalidPValue(index: i, value: v)
    }
    let m = p.count
    let order = p.indices.sorted { p[$0] < p[$1] || (p[$0] == p[$1] && $0 < $1) }
    var adjusted = [Double](repeating: 1, count: m)
    var running = 1.0
    for rank in stride(from: m, through: 1, by: -1) {
      let i = order[rank - 1]
      // m / rank >= 1, so the product is at least p[i]; max() keeps it so when p * m / rank
      // rounds one ulp below p (rank == m).
      running = min(running, max(p[i], p[i] * Double(m) / Double(rank)))
      adjusted[i] = running
    }
    return adjusted
  }
}
