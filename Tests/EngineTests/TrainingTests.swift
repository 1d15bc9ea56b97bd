import CKernels
import XCTest

@testable import Engine

/// Training end to end on small crafted data: it learns, it is deterministic, the schedule and
/// representation names are as specified.
final class TrainingTests: XCTestCase {
  /// Four classes told apart by which quadrant of an 8x8 image is bright, plus noise.
  static func quadrants(count: Int, seed: UInt64) -> Dataset {
    var rng = RandomSource(seed: seed)
    var px = [UInt8](), labels = [Int32]()
    for i in 0..<count {
      let label = i % 4
      for y in 0..<8 {
        for x in 0..<8 {
          let q = (y / 4) * 2 + (x / 4)
          for _ in 0..<3 {
            let base = q == label ? 170.0 : 60.0
            px.append(UInt8(max(0, min(255, base + rng.normal() * 40))))
          }
        }
      }
      labels.append(Int32(label))
    }
    return Dataset(name: "quadrants", height: 8, width: 8, channels: 3, numClasses: 4,
                   pixels: px, labels: labels)
  }

  static let tinyConfig = ResNetConfig(depth: 8, widthMultiplier: 0.5, inputHeight: 8,
                                       inputWidth: 8, inputChannels: 3, numClasses: 4)

  func testLearnsQuadrants() throws {
    // No augmentation: a 4-pixel crop shift would move the bright quadrant of an 8x8 image.
    let data = DatasetSplits(train: Self.quadrants(count: 512, seed: 1),
                             test: Self.quadrants(count: 256, seed: 2))
    let net = try ResNet(config: Self.tinyConfig, seed: 3)
    let trainer = try Trainer(model: net, config: TrainConfig(epochs: 4, batchSize: 32, learningRate: 0.05, augment: false, seed: 3),
                              data: data, context: testKernels)
    var steps = 0
    try trainer.run(progress: { p in if case .step = p.phase { steps += 1 } })
    XCTAssertEqual(steps, 4 * 16)
    XCTAssertEqual(trainer.history.count, 4)
    XCTAssertGreaterThan(trainer.history.last!.testAccuracy, 0.9, "history: \(trainer.history)")
    XCTAssertLessThan(trainer.history.last!.trainLoss, trainer.history.first!.trainLoss)
  }

  func weights(after epochs: Int, seed: UInt64, threads: Int) throws -> [[Float]] {
    let context = KernelContext(threads: threads)
    let data = DatasetSplits(train: Self.quadrants(count: 200, seed: 1),
                             test: Self.quadrants(count: 40, seed: 2))
    let net = try ResNet(config: Self.tinyConfig, seed: seed)
    let trainer = try Trainer(model: net, config: TrainConfig(epochs: epochs, batchSize: 32, seed: seed), data: data, context: context)
    try trainer.run()
    return net.parameters.map { $0.value.array } + net.buffers.map { $0.1.array }
  }

  /// The kernels' reductions have fixed partitions: the thread count changes nothing, bit for
  /// bit (a study may train a model on 1 thread or on 2 and reuse it either way).
  func testSameSeedGivesBitIdenticalWeightsOnAnyThreadCount() throws {
    let one = try weights(after: 2, seed: 5, threads: 1)
    XCTAssertEqual(try weights(after: 2, seed: 5, threads: 1), one, "1 thread, twice")
    for threads in [2, 3] {
      XCTAssertEqual(try weights(after: 2, seed: 5, threads: threads), one, "\(threads) threads")
    }
    let c = try weights(after: 2, seed: 6, threads: 2)
    XCTAssertNotEqual(one, c, "different seeds must differ")
  }

  func testResumingAtAnEpochBoundaryMatchesAnUninterruptedRun() throws {
    let data = DatasetSplits(train: Self.quadrants(count: 200, seed: 1),
                             test: Self.quadrants(count: 40, seed: 2))
    let config = TrainConfig(epochs: 3, batchSize: 32, seed: 9)
    let full = try ResNet(config: Self.tinyConfig, seed: 9)
    try Trainer(model: full, config: config, data: data, context: testKernels).run()

    let part = try ResNet(config: Self.tinyConfig, seed: 9)
    let first = try Trainer(model: part, config: config, data: data, context: testKernels)
    XCTAssertThrowsError(try first.run(onEpoch: { r in if r.epoch == 2 { throw TrainingCancelled(epochsCompleted: 2) } }))
    XCTAssertEqual(first.epochsCompleted, 2)
    let second = try Trainer(model: part, config: config, data: data, context: testKernels)
    second.restoreHistory(first.history)
    try second.run()
    XCTAssertEqual(second.history.count, 3)
    XCTAssertEqual(part.parameters.map { $0.value.array }, full.parameters.map { $0.value.array })
  }

  func testCancellationStopsBeforeTheNextStep() throws {
    let data = DatasetSplits(train: Self.quadrants(count: 200, seed: 1), test: Self.quadrants(count: 40, seed: 2))
    let trainer = try Trainer(model: try ResNet(config: Self.tinyConfig, seed: 1),
                              config: TrainConfig(epochs: 2, batchSize: 32), data: data, context: testKernels)
    var steps = 0
    XCTAssertThrowsError(try trainer.run(progress: { p in if case .step = p.phase { steps += 1 } },
                                         shouldStop: { steps >= 3 })) { error in
      XCTAssertTrue(error is TrainingCancelled)
    }
    XCTAssertEqual(steps, 3)
  }

  func testMismatchedDatasetIsRefused() throws {
    let data = DatasetSplits(train: Self.quadrants(count: 10, seed: 1), test: Self.quadrants(count: 10, seed: 2))
    var cfg = Self.tinyConfig
    cfg.numClasses = 10
    XCTAssertThrowsError(try Trainer(model: try ResNet(config: cfg, seed: 1), config: TrainConfig(), data: data, context: testKernels)) { e in
      XCTAssertTrue("\(e)".contains("10"), "\(e)")
    }
  }

  func testCosineScheduleWithWarmup() {
    let s = LearningRateSchedule(base: 0.1, totalSteps: 110, warmupSteps: 10)
    XCTAssertEqual(s.rate(at: 0), 0.01, accuracy: 1e-12)
    XCTAssertEqual(s.rate(at: 9), 0.1, accuracy: 1e-12)
    XCTAssertEqual(s.rate(at: 10), 0.1, accuracy: 1e-12)
    XCTAssertEqual(s.rate(at: 60), 0.05, accuracy: 1e-12)
    XCTAssertEqual(s.rate(at: 110), 0, accuracy: 1e-12)
  }

  func testRepresentationNamesAndCounts() {
    for n in [1, 3, 9, 27] {
      let res = ResNetConfig(depth: 6 * n + 2)
      let plain = ResNetConfig(depth: 6 * n + 2, residual: false)
      XCTAssertEqual(res.representations.count, 21 * n + 9)
      XCTAssertEqual(plain.representations.count, 18 * n + 7)
      XCTAssertEqual(Set(res.representations.map(\.name)).count, res.representations.count)
    }
    let names = ResNetConfig(depth: 20).representations.map(\.name)
    for expected in ["input", "stem.relu", "s2.b3.conv1", "s2.b3.bn2", "s2.b3.add", "s2.b3.out",
                     "s2.b1.shortcut", "pool", "logits", "probs"] {
      XCTAssertTrue(names.contains(expected), expected)
    }
    XCTAssertEqual(ResNetConfig(depth: 20, widthMultiplier: 0.5).stageChannels, [8, 16, 32])
    XCTAssertEqual(ResNetConfig(depth: 20, widthMultiplier: 1.5).stageChannels, [24, 48, 96])
    XCTAssertThrowsError(try ResNetConfig(depth: 21).validate())
  }

  /// Inference taps: every representation arrives once, in order, with its shape; the
  /// separately tapped path gives the logits of the fused one (BN folded into the convolutions:
  /// each folded weight rounds once more, about 1e-7 relative per layer, so the logits agree to
  /// well within 1e-5 of their scale, not bit for bit); bypassing a block whose residual branch
  /// outputs zero changes nothing.
  func testInferenceTapsAndBlockBypass() throws {
    let cfg = ResNetConfig(depth: 14, widthMultiplier: 0.5, inputHeight: 8, inputWidth: 8,
                           inputChannels: 3, numClasses: 4)
    let net = try ResNet(config: cfg, seed: 4)
    let n = 5
    let x = Tensor([n, 8, 8, 3])
    var rng = RandomSource(seed: 1)
    for i in 0..<x.count { x[i] = Float(rng.uniform()) }
    var seen: [String] = []
    let tapped = try net.infer(x.data, n: n, context: testKernels, tap: { r, p in
      seen.append(r.name)
      XCTAssertTrue(p[r.features * n - 1].isFinite)
    })
    XCTAssertEqual(seen, cfg.representations.map(\.name))
    let fused = try net.infer(x.data, n: n, context: testKernels)
    let scale = tapped.map(abs).max()!
    XCTAssertEqual(tapped.count, fused.count)
    for (a, b) in zip(tapped, fused) {
      XCTAssertEqual(a, b, accuracy: 1e-5 * scale, "tapped \(tapped) fused \(fused)")
    }
    XCTAssertNotEqual(tapped, [Float](repeating: 0, count: tapped.count))
    // Zero the last BN of s1.b2's branch: the block's output equals relu(input) = input.
    let block = net.blocks.first { $0.spec.name == "s1.b2" }!
    block.bn2.gamma.value.zero()
    block.bn2.beta.value.zero()
    let zeroed = try net.infer(x.data, n: n, context: testKernels)
    let bypassed = try net.infer(x.data, n: n, context: testKernels, skip: ["s1.b2"])
    XCTAssertEqual(zeroed, bypassed)
    XCTAssertThrowsError(try net.infer(x.data, n: n, context: testKernels, skip: ["s2.b1"])) { e in
      XCTAssertTrue("\(e)".contains("projection"), "\(e)")
    }
    XCTAssertThrowsError(try net.infer(x.data, n: n, context: testKernels, skip: ["s9.b1"]))
  }
}

/// A trained model through a checkpoint file and back: same predictions; resumed training
/// from the checkpoint equals the uninterrupted run.
final class ModelCheckpointTests: XCTestCase {
  func testCheckpointRoundTripAndResume() throws {
    let data = DatasetSplits(train: TrainingTests.quadrants(count: 160, seed: 1),
                             test: TrainingTests.quadrants(count: 40, seed: 2))
    let spec = DataSpec(dataset: "quadrants")
    let config = TrainConfig(epochs: 3, batchSize: 32, seed: 4)
    let full = try ResNet(config: TrainingTests.tinyConfig, seed: 4)
    try Trainer(model: full, config: config, data: data, context: testKernels).run()

    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bs-ckpt-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let path = dir.appendingPathComponent("m.bsckpt").path

    let part = try ResNet(config: TrainingTests.tinyConfig, seed: 4)
    let first = try Trainer(model: part, config: config, data: data, context: testKernels)
    XCTAssertThrowsError(try first.run(onEpoch: { r in
      try ModelState.checkpoint(of: first, data: spec).save(to: path)
      if r.epoch == 2 { throw TrainingCancelled(epochsCompleted: 2) }
    }))
    let ckpt = try Checkpoint.load(from: path)
    XCTAssertEqual(ckpt.epochsCompleted, 2)
    let restored = try ModelState.model(from: ckpt, source: path)
    let x = Tensor([4, 8, 8, 3])
    for i in 0..<x.count { x[i] = Float(i % 7) / 7 }
    XCTAssertEqual(try restored.infer(x.data, n: 4, context: testKernels), try part.infer(x.data, n: 4, context: testKernels))

    let resumedModel = try ResNet(config: ckpt.model, seed: 999)   // seed irrelevant: state restored
    try ModelState.restore(ckpt, into: resumedModel, optimizer: true, source: path)
    let resumed = try Trainer(model: resumedModel, config: ckpt.training, data: data, context: testKernels)
    resumed.restoreHistory(ckpt.history)
    try resumed.run()
    XCTAssertEqual(resumedModel.parameters.map { $0.value.array }, full.parameters.map { $0.value.array })

    var wrong = ckpt
    wrong.tensors.removeAll { $0.name == "fc.weight" }
    XCTAssertThrowsError(try ModelState.model(from: wrong, source: "x")) { e in
      XCTAssertTrue("\(e)".contains("fc.weight"), "\(e)")
    }
  }
}

/// The threaded batch loader against the reference kernel applied image by image with the
/// same random draws (oy, ox, flip per image, in order).
final class BatchLoaderTests: XCTestCase {
  func testThreadedBatchMatchesReferencePerImage() {
    let data = TrainingTests.quadrants(count: 37, seed: 3)
    let positions = [5, 0, 36, 12, 12, 7, 30, 1, 2, 3, 4]
    for augment in [false, true] {
      for threads in [1, 2] {
        let context = KernelContext(threads: threads)
        let out = Tensor([positions.count, 8, 8, 3])
        var rng = RandomSource(seed: 77)
        BatchLoader.fill(out.data, from: data, positions: positions[...], augment: augment, rng: &rng, context: context)
        var check = RandomSource(seed: 77)
        var expected = [Float](repeating: 0, count: 8 * 8 * 3)
        for (i, p) in positions.enumerated() {
          var (oy, ox, flip) = (0, 0, 0)
          if augment { oy = check.below(9); ox = check.below(9); flip = check.below(2) }
          data.pixels.withUnsafeBufferPointer { px in
            bs_augment_ref(px.baseAddress! + p * data.imageSize, 8, 8, 3, augment ? 4 : 0,
                           Int32(oy), Int32(ox), Int32(flip), &expected)
          }
          XCTAssertEqual(Array(out.array[(i * 192)..<((i + 1) * 192)]), expected, "image \(i) augment \(augment) threads \(threads)")
        }
      }
    }
  }
}
