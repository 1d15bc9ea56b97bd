import CKernels
import Engine
import Foundation
import XCTest

@testable import Analysis

/// Linear probes: the classifier itself (separable data, standardization, gradient), 2x2
/// pooling, and the streaming runner on a tiny network.
final class ProbeTests: XCTestCase {
  // MARK: Helpers

  /// `count` points of `classes` Gaussian clusters in d dimensions, centres 8 sd apart on
  /// average, labels cycling through the classes.
  static func clusters(count: Int, d: Int, classes: Int, seed: UInt64,
                       centreSeed: UInt64 = 99) -> (x: [Float], y: [Int32]) {
    var crng = RandomSource(seed: centreSeed)
    let centres = (0..<(classes * d)).map { _ in Float(crng.normal() * 4) }
    var rng = RandomSource(seed: seed)
    var x = [Float](), y = [Int32]()
    for i in 0..<count {
      let k = i % classes
      for j in 0..<d { x.append(centres[k * d + j] + Float(rng.normal())) }
      y.append(Int32(k))
    }
    return (x, y)
  }

  /// Trains a probe on (x, y): statistics pass, then `epochs` of minibatches of 32 in order.
  static func train(_ probe: SoftmaxProbe, x: [Float], y: [Int32], epochs: Int, lr: Float) {
    probe.accumulateStatistics(x)
    probe.finishStatistics()
    let d = probe.features, bs = 32
    for _ in 0..<epochs {
      var start = 0
      while start < y.count {
        let n = min(bs, y.count - start)
        probe.step(features: Array(x[(start * d)..<((start + n) * d)]),
                   labels: Array(y[start..<(start + n)]), lr: lr)
        start += n
      }
    }
  }

  /// Two classes of 8x8 grey images: dark (mean 60) or bright (mean 190), with pixel noise.
  static func brightDark(count: Int, seed: UInt64) -> Dataset {
    var rng = RandomSource(seed: seed)
    var px = [UInt8](), labels = [Int32]()
    for i in 0..<count {
      let label = Int32(i % 2)
      let base = label == 0 ? 60.0 : 190.0
      for _ in 0..<64 { px.append(UInt8(max(0, min(255, base + rng.normal() * 30)))) }
      labels.append(label)
    }
    return Dataset(name: "bright-dark", height: 8, width: 8, channels: 1, numClasses: 2,
                   pixels: px, labels: labels)
  }

  static let tinyConfig = ResNetConfig(depth: 8, widthMultiplier: 0.5, inputHeight: 8,
                                       inputWidth: 8, inputChannels: 1, numClasses: 3)

  // MARK: SoftmaxProbe

  func testProbeSeparatesGaussianClusters() {
    let train = Self.clusters(count: 600, d: 50, classes: 3, seed: 1)
    let test = Self.clusters(count: 300, d: 50, classes: 3, seed: 2)
    let probe = SoftmaxProbe(features: 50, classes: 3, context: testKernels)
    Self.train(probe, x: train.x, y: train.y, epochs: 5, lr: 0.01)
    XCTAssertGreaterThanOrEqual(probe.accuracy(features: test.x, labels: test.y), 0.99)
    XCTAssertGreaterThanOrEqual(probe.accuracy(features: train.x, labels: train.y), 0.99)
  }

  /// Features with huge offsets and scales (and a constant one) train as well as the plain
  /// ones with the same learning rate: that is what standardizing is for.
  func testStandardizationMakesScaleIrrelevant() {
    let d = 10
    let train = Self.clusters(count: 300, d: d, classes: 3, seed: 3)
    let test = Self.clusters(count: 150, d: d, classes: 3, seed: 4)
    func distort(_ x: [Float]) -> [Float] {
      var out = [Float]()
      for i in 0..<(x.count / d) {
        for j in 0..<d { out.append(x[i * d + j] * Float(j + 1) * 300 + 1000) }
        out.append(42)   // constant feature
      }
      return out
    }
    let plain = SoftmaxProbe(features: d, classes: 3, context: testKernels)
    Self.train(plain, x: train.x, y: train.y, epochs: 3, lr: 0.01)
    let scaled = SoftmaxProbe(features: d + 1, classes: 3, context: testKernels)
    Self.train(scaled, x: distort(train.x), y: train.y, epochs: 3, lr: 0.01)
    XCTAssertEqual(scaled.constantFeatures, 1)
    XCTAssertEqual(scaled.std[d], 1)
    XCTAssertEqual(scaled.mean[d], 42)
    let column0 = stride(from: 0, to: train.x.count, by: d).map { Double(train.x[$0]) * 300 + 1000 }
    XCTAssertEqual(Double(scaled.mean[0]), column0.reduce(0, +) / Double(column0.count), accuracy: 0.01)
    XCTAssertGreaterThan(scaled.std[1], 300)
    let a = plain.accuracy(features: test.x, labels: test.y)
    let b = scaled.accuracy(features: distort(test.x), labels: test.y)
    XCTAssertGreaterThanOrEqual(a, 0.98)
    XCTAssertGreaterThanOrEqual(b, 0.98)
    // The constant feature never gets a weight.
    for k in 0..<3 { XCTAssertEqual(scaled.weight[k * (d + 1) + d], 0) }
  }

  func testStatisticsMatchTwoPassComputation() {
    let d = 4, n = 37
    var rng = RandomSource(seed: 8)
    let x = (0..<(n * d)).map { _ in Float(rng.normal() * 3 + 1e4) }
    let probe = SoftmaxProbe(features: d, classes: 2, context: testKernels)
    probe.accumulateStatistics(Array(x[0..<(10 * d)]))
    probe.accumulateStatistics(Array(x[(10 * d)...]))
    probe.finishStatistics()
    for j in 0..<d {
      let col = (0..<n).map { Double(x[$0 * d + j]) }
      let m = col.reduce(0, +) / Double(n)
      let sd = (col.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(n)).squareRoot()
      XCTAssertEqual(Double(probe.mean[j]), m, accuracy: 1e-3)
      XCTAssertEqual(Double(probe.std[j]), sd, accuracy: 1e-4 * sd)
    }
  }

  /// d loss / d W and d loss / d b against central finite differences.
  func testLossGradientMatchesFiniteDifferences() {
    let d = 7, k = 4, n = 6
    var rng = RandomSource(seed: 5)
    let x = (0..<(n * d)).map { _ in Float(rng.normal() * 2 + 3) }
    let y = (0..<n).map { _ in Int32(rng.below(k)) }
    let probe = SoftmaxProbe(features: d, classes: k, context: testKernels)
    probe.accumulateStatistics(x)
    probe.finishStatistics()
    for i in 0..<(k * d) { probe.weight[i] = Float(rng.normal() * 0.5) }
    for i in 0..<k { probe.bias[i] = Float(rng.normal() * 0.5) }
    func loss() -> Double {
      x.withUnsafeBufferPointer { probe.lossAndGradient(features: $0.baseAddress!, n: n, labels: y).loss }
    }
    _ = loss()
    let gw = probe.weightGrad.array, gb = probe.biasGrad.array
    let eps: Float = 1e-2
    func check(_ t: Tensor, _ analytic: [Float], _ what: String) {
      for i in 0..<t.count {
        let saved = t[i]
        t[i] = saved + eps
        let up = loss()
        t[i] = saved - eps
        let down = loss()
        t[i] = saved
        let numeric = (up - down) / Double(2 * eps)
        XCTAssertEqual(Double(analytic[i]), numeric, accuracy: 1e-3 + 1e-2 * abs(numeric),
                       "\(what)[\(i)]")
      }
    }
    check(probe.weight, gw, "W")
    check(probe.bias, gb, "b")
    XCTAssertGreaterThan(gw.map(abs).max()!, 1e-3)   // not trivially zero
  }

  func testStepAppliesMomentumAndDecayOnWeightsOnly() {
    let probe = SoftmaxProbe(features: 2, classes: 2, weightDecay: 0.5, momentum: 0.9, context: testKernels)
    for i in 0..<4 { probe.weight[i] = 1 }
    let x: [Float] = [1, -1, -1, 1], y: [Int32] = [0, 1]
    _ = x.withUnsafeBufferPointer { probe.lossAndGradient(features: $0.baseAddress!, n: 2, labels: y) }
    let gw = probe.weightGrad.array, gb = probe.biasGrad.array
    probe.step(features: x, labels: y, lr: 0.1)
    for i in 0..<4 { XCTAssertEqual(probe.weight[i], 1 - 0.1 * (gw[i] + 0.5), accuracy: 1e-6) }
    for i in 0..<2 { XCTAssertEqual(probe.bias[i], -0.1 * gb[i], accuracy: 1e-6) }
  }

  // MARK: Pooling

  func testAverage2x2PoolingEvenAndOddSizes() {
    // 1 image, 2x4, 1 channel -> 1x2.
    let x: [Float] = [1, 2, 3, 4,
                      5, 6, 7, 8]
    var y = [Float](repeating: -1, count: 2)
    SpatialPooling.average2x2(x, n: 1, height: 2, width: 4, channels: 1, into: &y)
    XCTAssertEqual(y, [3.5, 5.5])
    // 2 images, 3x3, 2 channels -> 1x1: the last row and column dropped.
    var z = [Float]()
    for img in 0..<2 { for p in 0..<9 { for c in 0..<2 { z.append(Float(img * 100 + p * 10 + c)) } } }
    var out = [Float](repeating: -1, count: 4)
    SpatialPooling.average2x2(z, n: 2, height: 3, width: 3, channels: 2, into: &out)
    // pixels 0, 1, 3, 4 -> mean 20 (+ channel, + 100 per image)
    XCTAssertEqual(out, [20, 21, 120, 121])
    XCTAssertTrue(SpatialPooling.pooledSize(height: 7, width: 7) == (3, 3))
    XCTAssertTrue(SpatialPooling.pooledSize(height: 1, width: 6) == (1, 3))
  }

  // MARK: Runner

  func testDefaultLayersAreBN2AndAddInForwardOrder() {
    XCTAssertEqual(ProbeRunner.defaultLayers(for: Self.tinyConfig),
                   ["s1.b1.bn2", "s1.b1.add", "s2.b1.bn2", "s2.b1.add", "s3.b1.bn2", "s3.b1.add"])
    let r20 = ResNetConfig(depth: 20)
    XCTAssertEqual(ProbeRunner.defaultLayers(for: r20).count, 18)
    var plain = Self.tinyConfig
    plain.residual = false
    XCTAssertEqual(ProbeRunner.defaultLayers(for: plain),
                   ["s1.b1.bn2", "s1.b1.out", "s2.b1.bn2", "s2.b1.out", "s3.b1.bn2", "s3.b1.out"])
  }

  func testRunnerEndToEndDeterministic() throws {
    let model = try ResNet(config: Self.tinyConfig, seed: 1)
    let train = Self.brightDark(count: 200, seed: 1), test = Self.brightDark(count: 100, seed: 2)
    var config = ProbeConfig(batchSize: 32, epochs: 3, learningRate: 0.01, seed: 7)
    var events = [ProbeProgress]()
    let report = try ProbeRunner.run(model, train: train, test: test, config: config,
                                     context: testKernels, progress: { events.append($0) })
    XCTAssertEqual(report.layers.map(\.name), ProbeRunner.defaultLayers(for: Self.tinyConfig))
    XCTAssertEqual(report.trainCount, 200)
    XCTAssertEqual(report.testCount, 100)
    XCTAssertEqual(report.numClasses, 2)
    let reps = Dictionary(uniqueKeysWithValues: Self.tinyConfig.representations.map { ($0.name, $0) })
    for l in report.layers {
      XCTAssertEqual(l.features, reps[l.name]!.features)
      XCTAssertTrue((0...1).contains(l.trainAccuracy) && (0...1).contains(l.testAccuracy), "\(l)")
      XCTAssertTrue(l.trainLoss.isFinite)
    }
    // The input is separable (bright vs dark), and so is the first block's view of it.
    for l in report.layers where l.block == "s1.b1" {
      XCTAssertGreaterThan(l.testAccuracy, 0.9, "\(l)")
    }
    XCTAssertGreaterThan(report.layers.map(\.testAccuracy).reduce(0, +) / 6, 0.75)
    // Progress: examples through the network, layer-independent, ends at the total.
    let total = 200 * (1 + 3) + 100
    XCTAssertEqual(events.last?.processed, total)
    XCTAssertEqual(events.last?.total, total)
    XCTAssertEqual(events.count, 7 * (1 + 3) + 4)
    XCTAssertEqual(events.map(\.processed), events.map(\.processed).sorted())
    XCTAssertEqual(Set(events.map(\.phase)), [.statistics, .training, .testing])
    // Same seed, same report; the report survives JSON.
    let again = try ProbeRunner.run(model, train: train, test: test, config: config, context: testKernels)
    XCTAssertEqual(again, report)
    let decoded = try JSONDecoder().decode(ProbeReport.self, from: JSONEncoder().encode(report))
    XCTAssertEqual(decoded, report)
    // Another shuffle seed: still a valid run, recorded in the report.
    config.seed = 8
    let other = try ProbeRunner.run(model, train: train, test: test, config: config, context: testKernels)
    XCTAssertEqual(other.config.seed, 8)
    XCTAssertEqual(other.layers.count, report.layers.count)
  }

  func testRunnerPoolingAndExplicitLayers() throws {
    let model = try ResNet(config: Self.tinyConfig, seed: 2)
    let train = Self.brightDark(count: 64, seed: 3), test = Self.brightDark(count: 32, seed: 4)
    let config = ProbeConfig(batchSize: 64, epochs: 2, pool2x2: true,
                             layers: ["s2.b1.add", "input", "s1.b1.add"])
    let report = try ProbeRunner.run(model, train: train, test: test, config: config, context: testKernels)
    XCTAssertEqual(report.layers.map(\.name), ["input", "s1.b1.add", "s2.b1.add"])
    XCTAssertEqual(report.layers.map(\.features), [4 * 4 * 1, 4 * 4 * 8, 2 * 2 * 16])
    XCTAssertEqual(report.layers[0].height, 4)
    XCTAssertGreaterThan(report.layers[0].testAccuracy, 0.95)

    var bad = config
    bad.layers = ["s1.b1.add", "s7.b1.add"]
    XCTAssertThrowsError(try ProbeRunner.run(model, train: train, test: test, config: bad, context: testKernels)) {
      XCTAssertEqual($0 as? ProbeError, .unknownLayers(["s7.b1.add"]))
    }
    bad = config
    bad.epochs = 0
    XCTAssertThrowsError(try ProbeRunner.run(model, train: train, test: test, config: bad, context: testKernels))
    let wrongShape = Dataset.synthetic(count: 8, height: 6, width: 6, channels: 1, numClasses: 2, seed: 1)
    XCTAssertThrowsError(try ProbeRunner.run(model, train: wrongShape, test: test, config: config, context: testKernels))
  }

  func testRunnerCancellation() throws {
    let model = try ResNet(config: Self.tinyConfig, seed: 1)
    let train = Self.brightDark(count: 64, seed: 1), test = Self.brightDark(count: 32, seed: 2)
    var polls = 0
    XCTAssertThrowsError(try ProbeRunner.run(
      model, train: train, test: test, config: ProbeConfig(batchSize: 16, epochs: 2),
      context: testKernels, shouldStop: { polls += 1; return polls > 5 })) { error in
      XCTAssertEqual(error as? ProbeError, .cancelled(processed: 5 * 16, total: 64 * 3 + 32))
      XCTAssertTrue("\(error)".contains("cancelled"))
    }
  }
}
