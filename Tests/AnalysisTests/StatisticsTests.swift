import Foundation
import XCTest
import Engine
@testable import Analysis

final class StatisticsTests: XCTestCase {

  func testNormalCDFAndTwoSidedP() {
    XCTAssertEqual(Statistics.normalCDF(0), 0.5, accuracy: 1e-15)
    XCTAssertEqual(Statistics.normalCDF(-1), 0.158655253931457, accuracy: 1e-13)
    XCTAssertEqual(Statistics.normalCDF(1.959963984540054), 0.975, accuracy: 1e-13)
    XCTAssertEqual(Statistics.normalTwoSidedP(-1.959963984540054), 0.05, accuracy: 1e-13)
    // erfc keeps the far tail: 2 (1 - Phi(10)) would cancel to 0.
    XCTAssertEqual(Statistics.normalTwoSidedP(10) / 1.5239706048321186e-23, 1, accuracy: 1e-10)
  }

  func testLogBinomialAndHypergeometric() {
    XCTAssertEqual(exp(Statistics.logBinomial(20, 10)), 184_756, accuracy: 1e-7)
    XCTAssertEqual(Statistics.logBinomial(7, 0), 0, accuracy: 1e-14)
    // Table [[3,1],[1,3]]: P(X = x) = C(4,x) C(4,4-x) / C(8,4), C(8,4) = 70.
    let pmf = (0...4).map { exp(Statistics.logHypergeometric($0, population: 8, successes: 4, draws: 4)) }
    let expected = [1.0, 16, 36, 16, 1].map { $0 / 70 }
    for (p, e) in zip(pmf, expected) { XCTAssertEqual(p, e, accuracy: 1e-14) }
    XCTAssertEqual(Statistics.logHypergeometric(5, population: 8, successes: 4, draws: 4), -.infinity)
  }

  func testFisherExactHandComputed() throws {
    // 1 + 16 + 16 + 1 of 70: the tables no more likely than the observed 16/70, tie included.
    let a = try Statistics.fisherExact(3, 1, 1, 3)
    XCTAssertEqual(a.pValue, 34.0 / 70, accuracy: 1e-12)
    XCTAssertEqual(a.pValue, 0.4857142857, accuracy: 1e-10)
    XCTAssertTrue(a.defined)
    // Only the two extreme tables, each 1 / C(20,10).
    XCTAssertEqual(try Statistics.fisherExact(10, 0, 0, 10).pValue, 2.0 / 184_756, accuracy: 1e-16)
    XCTAssertEqual(try Statistics.fisherExact(0, 10, 10, 0).pValue, 1.0825088224469e-5, accuracy: 1e-16)
    // scipy.stats.fisher_exact([[7,3],[2,8]]) = 0.06977851869492736.
    XCTAssertEqual(try Statistics.fisherExact(7, 3, 2, 8).pValue, 0.06977851869492736, accuracy: 1e-12)
    XCTAssertEqual(try Statistics.fisherExact(2, 2, 2, 2).pValue, 1, accuracy: 1e-12)
  }

  func testFisherExactDegenerateAndInvalid() throws {
    // Every model of both groups right: one possible table, nothing to test.
    let all = try Statistics.fisherExact(5, 0, 5, 0)
    XCTAssertEqual(all.pValue, 1)
    XCTAssertFalse(all.defined)
    XCTAssertNotNil(all.reason)
    XCTAssertFalse(try Statistics.fisherExact(0, 0, 0, 0).defined)
    XCTAssertThrowsError(try Statistics.fisherExact(-1, 2, 3, 4))
  }

  func testTwoProportionKnownValue() throws {
    // 45/100 vs 30/100: pooled 0.375, se = sqrt(0.375 * 0.625 * 0.02), z = 0.15 / se.
    let r = try Statistics.twoProportionZ(successes: 45, trials: 100, successes: 30, trials: 100)
    XCTAssertEqual(r.statistic, 0.15 / (0.375 * 0.625 * 0.02).squareRoot(), accuracy: 1e-12)
    XCTAssertEqual(r.statistic, 2.1908902300206647, accuracy: 1e-12)
    XCTAssertEqual(r.pValue, 0.02845973691631057, accuracy: 1e-12)
    let flipped = try Statistics.twoProportionZ(successes: 30, trials: 100, successes: 45, trials: 100)
    XCTAssertEqual(flipped.statistic, -r.statistic, accuracy: 1e-12)
    XCTAssertEqual(flipped.pValue, r.pValue, accuracy: 1e-15)
  }

  func testTwoProportionDegenerate() throws {
    for (x1, x2) in [(0, 0), (7, 9)] {
      let r = try Statistics.twoProportionZ(successes: x1, trials: 7, successes: x2, trials: 9)
      XCTAssertEqual(r.pValue, 1)
      XCTAssertEqual(r.statistic, 0)
      XCTAssertFalse(r.defined)
      XCTAssertNotNil(r.reason)
    }
    XCTAssertThrowsError(try Statistics.twoProportionZ(successes: 0, trials: 0, successes: 1, trials: 2))
    XCTAssertThrowsError(try Statistics.twoProportionZ(successes: 3, trials: 2, successes: 1, trials: 2))
  }

  func testBenjaminiHochbergByHand() throws {
    // Sorted: 0.005*4/1 = 0.02, 0.01*4/2 = 0.02, 0.03*4/3 = 0.04, 0.04*4/4 = 0.04.
    let adj = try Statistics.benjaminiHochberg([0.01, 0.04, 0.03, 0.005])
    for (a, e) in zip(adj, [0.02, 0.04, 0.04, 0.02]) { XCTAssertEqual(a, e, accuracy: 1e-15) }
    // Raw 0.01*3/1 = 0.03 exceeds 0.011*3/2 = 0.0165: the running minimum makes it monotone.
    let mono = try Statistics.benjaminiHochberg([0.01, 0.011, 0.5])
    for (a, e) in zip(mono, [0.0165, 0.0165, 0.5]) { XCTAssertEqual(a, e, accuracy: 1e-15) }
    let ones = try Statistics.benjaminiHochberg([1, 0.9, 1])
    XCTAssertEqual(ones, [1, 1, 1])
    XCTAssertEqual(try Statistics.benjaminiHochberg([]), [])
    XCTAssertThrowsError(try Statistics.benjaminiHochberg([0.1, .nan])) {
      guard case .invalidPValue(let index, _)? = $0 as? StatisticsError else { return XCTFail("\($0)") }
      XCTAssertEqual(index, 1)
    }
    XCTAssertThrowsError(try Statistics.benjaminiHochberg([1.5]))
  }

  func testBenjaminiHochbergIsMonotoneAndCapped() throws {
    // Seeded; many sets, because the property failed by one ulp on one in a few hundred.
    var rng = RandomSource(seed: 97)
    for _ in 0..<300 {
      try checkBenjaminiHochbergProperties((0..<200).map { _ in rng.uniform() * rng.uniform() })
    }
  }

  private func checkBenjaminiHochbergProperties(_ p: [Double]) throws {
    let adj = try Statistics.benjaminiHochberg(p)
    let order = p.indices.sorted { p[$0] < p[$1] }
    for (x, y) in zip(order, order.dropFirst()) { XCTAssertLessThanOrEqual(adj[x], adj[y]) }
    for (raw, a) in zip(p, adj) {
      XCTAssertGreaterThanOrEqual(a, raw)
      XCTAssertLessThanOrEqual(a, 1)
    }
  }

  func testIncompleteBetaClosedForms() {
    for x in [0.05, 0.3, 0.5, 0.77, 0.99] {
      XCTAssertEqual(Statistics.regularizedIncompleteBeta(x, a: 1, b: 4.5), 1 - pow(1 - x, 4.5), accuracy: 1e-13)
      XCTAssertEqual(Statistics.regularizedIncompleteBeta(x, a: 3.5, b: 1), pow(x, 3.5), accuracy: 1e-13)
    }
    // Beta(2,5) CDF = P(Binomial(6, x) >= 2) = 1 - (1-x)^6 - 6 x (1-x)^5.
    XCTAssertEqual(Statistics.regularizedIncompleteBeta(0.3, a: 2, b: 5), 0.579825, accuracy: 1e-12)
    XCTAssertEqual(Statistics.regularizedIncompleteBeta(0.9, a: 2, b: 5), 0.999945, accuracy: 1e-12)
    XCTAssertEqual(Statistics.regularizedIncompleteBeta(0, a: 2, b: 5), 0)
    XCTAssertEqual(Statistics.regularizedIncompleteBeta(1, a: 2, b: 5), 1)
  }

  func testStudentTClosedForms() {
    for t in [0.0, 0.1, 1, -3, 25, 1e4] {
      // df = 1 is the Cauchy distribution.
      XCTAssertEqual(Statistics.studentTTwoSidedP(t, degreesOfFreedom: 1), 1 - 2 * atan(abs(t)) / .pi, accuracy: 1e-12)
      XCTAssertEqual(Statistics.studentTTwoSidedP(t, degreesOfFreedom: 2), 1 - abs(t) / (2 + t * t).squareRoot(), accuracy: 1e-12)
    }
    // Large df approaches the normal.
    XCTAssertEqual(Statistics.studentTTwoSidedP(1.959963984540054, degreesOfFreedom: 1e7), 0.05, accuracy: 1e-6)
  }

  func testWelchAgainstClosedForms() {
    // Equal variances (2 and 2), n = 2 each: df = 2, t = (1 - 4) / sqrt(2/2 + 2/2).
    let df2 = Statistics.welchT([0, 2], [3, 5])
    XCTAssertEqual(df2.statistic, -3 / 2.0.squareRoot(), accuracy: 1e-12)
    XCTAssertEqual(df2.degreesOfFreedom!, 2, accuracy: 1e-12)
    XCTAssertEqual(df2.pValue, 1 - abs(df2.statistic) / (2 + df2.statistic * df2.statistic).squareRoot(), accuracy: 1e-12)
    // Zero variance in one group: df = n - 1 of the other = 1, t = (1 - 5) / sqrt(2/2): Cauchy.
    let df1 = Statistics.welchT([0, 2], [5, 5, 5])
    XCTAssertEqual(df1.statistic, -4, accuracy: 1e-12)
    XCTAssertEqual(df1.degreesOfFreedom!, 1, accuracy: 1e-12)
    XCTAssertEqual(df1.pValue, 1 - 2 * atan(4) / .pi, accuracy: 1e-12)
    // Unequal variances (1 and 4): t = -4 / sqrt(5/3), df = (5/3)^2 / ((1/3)^2/2 + (4/3)^2/2) = 50/17;
    // p from scipy.stats.ttest_ind(equal_var=False).
    let general = Statistics.welchT([1, 2, 3], [4, 6, 8])
    XCTAssertEqual(general.statistic, -4 / (5.0 / 3).squareRoot(), accuracy: 1e-12)
    XCTAssertEqual(general.degreesOfFreedom!, 50.0 / 17, accuracy: 1e-12)
    XCTAssertEqual(general.pValue, 0.054786766041076435, accuracy: 1e-10)
  }

  func testWelchDegenerateIsDefined() throws {
    let cases: [([Double], [Double])] = [([1], [1, 2, 3]), ([], []), ([0.5, 0.5], [0.5, 0.5, 0.5]),
                                         ([0.5, 0.5], [0.7, 0.7])]
    for (x, y) in cases {
      let r = Statistics.welchT(x, y)
      XCTAssertFalse(r.defined, "\(x) vs \(y)")
      XCTAssertEqual(r.pValue, 1)
      XCTAssertEqual(r.statistic, 0)
      XCTAssertNotNil(r.reason)
      // Encodable as JSON: no NaN or infinity.
      XCTAssertNoThrow(try JSONEncoder().encode(r))
    }
  }
}
