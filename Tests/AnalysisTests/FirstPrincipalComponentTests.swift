import Engine
import XCTest
@testable import Analysis

final class FirstPrincipalComponentTests: XCTestCase {
  typealias M = MinibatchCKATests

  /// Against a Double reference: centre the activations, Double Gram, power iteration.
  func testMatchesDoublePowerIterationWithBothMethods() throws {
    let a = try M.model(3)
    let data = M.data.selecting(Array(0..<40))
    let reps = try RepresentationSelector.all.select(from: M.config)
    let acts = try M.activations(a, reps: reps, batches: [Array(0..<40)])[0]
    let references = reps.map { r -> (Double, Double, [Double]) in
      let k = FullBatchCKA.centre(acts[r.name]!.gram, n: 40)
      var trace = 0.0
      for t in 0..<40 { trace += k[t * 40 + t] }
      let (lambda, v) = M.topEigen(k, n: 40, iterations: 400)
      return (lambda, trace, v)
    }
    for method in [PCMethod.gram, .svd, .auto] {
      let report = try FirstPrincipalComponents.run(a, .all, data: data, method: method, context: testKernels)
      XCTAssertEqual(report.layers.map(\.name), reps.map(\.name))
      for (i, layer) in report.layers.enumerated() {
        let (lambda, trace, v) = references[i]
        let frac = try XCTUnwrap(layer.pc1Fraction, "\(method) \(layer.name)")
        XCTAssertEqual(frac, lambda / trace, accuracy: 1e-4, "\(method) \(layer.name)")
        XCTAssertGreaterThan(frac, 0)
        XCTAssertLessThanOrEqual(frac, 1 + 1e-6)
        let u = report.directions[i]
        let norm = u.reduce(0.0) { $0 + Double($1) * Double($1) }
        XCTAssertEqual(norm, 1, accuracy: 1e-5)
        let cos = abs(zip(u, v).reduce(0.0) { $0 + Double($1.0) * $1.1 })
        XCTAssertGreaterThan(cos, 0.999, "\(method) \(layer.name): direction")
      }
      let l = reps.count
      for i in 0..<l {
        XCTAssertEqual(report.cosine[i * l + i], 1, accuracy: 1e-5)
        for j in 0..<l { XCTAssertEqual(report.cosine[i * l + j], report.cosine[j * l + i]) }
      }
    }
  }

  func testBudgetGroupsGiveTheSameResult() throws {
    let a = try M.model(3)
    let data = M.data.selecting(Array(0..<32))
    let whole = try FirstPrincipalComponents.run(a, .all, data: data, context: testKernels)
    let grouped = try FirstPrincipalComponents.run(a, .all, data: data, budgetBytes: 32 * 512 * 4, batchSize: 7, context: testKernels)
    XCTAssertEqual(whole.forwardPasses, 1)
    XCTAssertGreaterThan(grouped.forwardPasses, 3)
    for (x, y) in zip(whole.layers, grouped.layers) { XCTAssertEqual(x.pc1Fraction!, y.pc1Fraction!, accuracy: 1e-6) }
    XCTAssertThrowsError(try FirstPrincipalComponents.run(a, .all, data: data, budgetBytes: 1000, context: testKernels))
  }

  func testConstantRepresentationHasNoComponent() throws {
    var same = M.data.selecting(Array(0..<20))
    let size = same.imageSize
    for i in 0..<same.count { for p in 0..<size { same.pixels[i * size + p] = same.pixels[p] } }
    let report = try FirstPrincipalComponents.run(try M.model(3), .blockOutputs, data: same, context: testKernels)
    for layer in report.layers {
      XCTAssertNil(layer.pc1Fraction, layer.name)
      XCTAssertNotNil(layer.note)
    }
    XCTAssertTrue(report.cosine.allSatisfy { $0 == 0 })
  }
}
