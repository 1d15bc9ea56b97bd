import CKernels
import Engine
import Foundation
import XCTest

@testable import Analysis

/// Block deletion: exactness of the bypass on a block whose branch is zero, the report's
/// structure (projection blocks, last-j curves), errors, progress and cancellation.
final class BlockDeletionTests: XCTestCase {
  /// Four classes told apart by which quadrant of an 8x8 image is bright, plus noise.
  static func quadrants(count: Int, seed: UInt64) -> Dataset {
    var rng = RandomSource(seed: seed)
    var px = [UInt8](), labels = [Int32]()
    for i in 0..<count {
      let label = i % 4
      for y in 0..<8 {
        for x in 0..<8 {
          let base = (y / 4) * 2 + (x / 4) == label ? 170.0 : 60.0
          px.append(UInt8(max(0, min(255, base + rng.normal() * 40))))
        }
      }
      labels.append(Int32(label))
    }
    return Dataset(name: "quadrants", height: 8, width: 8, channels: 1, numClasses: 4,
                   pixels: px, labels: labels)
  }

  /// ResNet-14 (two blocks per stage), half width, 8x8x1 inputs, 4 classes.
  static let config = ResNetConfig(depth: 14, widthMultiplier: 0.5, inputHeight: 8,
                                   inputWidth: 8, inputChannels: 1, numClasses: 4)

  /// A briefly trained ResNet-14, so predictions are not all one class.
  static func trainedModel() throws -> (ResNet, Dataset) {
    let data = DatasetSplits(train: quadrants(count: 256, seed: 1), test: quadrants(count: 128, seed: 2))
    let model = try ResNet(config: config, seed: 3)
    try Trainer(model: model, config: TrainConfig(epochs: 3, batchSize: 32, learningRate: 0.05,
                                                  augment: false, seed: 3), data: data, context: testKernels).run()
    return (model, data.test)
  }

  static func input(_ data: Dataset) -> Tensor {
    let t = Tensor([data.count, data.height, data.width, data.channels])
    var rng = RandomSource(seed: 0)
    BatchLoader.fill(t.data, from: data, positions: Array(0..<data.count)[...], augment: false, rng: &rng, context: testKernels)
    return t
  }

  func testBypassingAZeroBranchBlockChangesNothing() throws {
    let (model, test) = try Self.trainedModel()
    // bn2 gamma and beta of s1.b2 -> its branch is 0 and the block is ReLU(x + 0) = x, x >= 0.
    let names = model.parameters.map(\.name)
    for suffix in ["weight", "bias"] {
      let p = try XCTUnwrap(model.parameters.first { $0.name == "s1.b2.bn2.\(suffix)" }, "\(names)")
      p.value.zero()
    }
    let x = Self.input(test)
    let intact = try model.infer(x.data, n: test.count, context: testKernels)
    let bypassed = try model.infer(x.data, n: test.count, context: testKernels, skip: ["s1.b2"])
    XCTAssertEqual(intact.count, bypassed.count)
    for i in 0..<intact.count { XCTAssertEqual(intact[i], bypassed[i], accuracy: 1e-6) }
    let a = try Evaluation.run(model, on: test, batchSize: 50, context: testKernels)
    let b = try BlockDeletion.evaluate(model, test: test, removing: ["s1.b2"], batchSize: 50, context: testKernels)
    XCTAssertEqual(a.predictions, b.predictions)
    XCTAssertGreaterThan(a.accuracy, 0.5)   // trained: the comparison means something
    XCTAssertGreaterThan(Set(a.predictions).count, 1)
    // Control: bypassing a block with a live branch does change the logits.
    let other = try model.infer(x.data, n: test.count, context: testKernels, skip: ["s1.b1"])
    XCTAssertGreaterThan(zip(intact, other).map { abs($0 - $1) }.max()!, 1e-3)

    let report = try BlockDeletion.run(model, test: test, batchSize: 50, context: testKernels)
    XCTAssertEqual(report.intactAccuracy, a.accuracy)
    let entry = try XCTUnwrap(report.blocks.first { $0.block == "s1.b2" })
    XCTAssertEqual(entry.accuracy, a.accuracy)
    XCTAssertEqual(entry.drop, 0)
    XCTAssertEqual(entry.changedPredictions, 0)
  }

  func testReportStructureProjectionBlocksAndStageTails() throws {
    let model = try ResNet(config: ResNetConfig(depth: 20, widthMultiplier: 0.25, inputHeight: 8,
                                                inputWidth: 8, inputChannels: 1, numClasses: 4),
                           seed: 4)
    let test = Self.quadrants(count: 40, seed: 5)
    var events = [BlockDeletionProgress]()
    let report = try BlockDeletion.run(model, test: test, batchSize: 16, context: testKernels, progress: { events.append($0) })
    XCTAssertEqual(report.blocks.map(\.block), model.blockSpecs.map(\.name))
    XCTAssertEqual(report.blocks.count, 9)
    for b in report.blocks {
      let projection = b.block == "s2.b1" || b.block == "s3.b1"
      XCTAssertEqual(b.removable, !projection, b.block)
      if projection {
        XCTAssertNil(b.accuracy)
        XCTAssertNil(b.drop)
        XCTAssertTrue(b.reason?.contains("projection") ?? false, "\(b)")
      } else {
        XCTAssertNil(b.reason)
        let acc = try XCTUnwrap(b.accuracy)
        XCTAssertEqual(b.drop!, report.intactAccuracy - acc, accuracy: 1e-12)
        XCTAssertTrue((0...1).contains(acc))
      }
    }
    // Stage 1: 3 removable blocks at its end; stages 2 and 3: 2 (the projection block ends the run).
    let perStage = Dictionary(grouping: report.stageTails, by: \.stage)
    XCTAssertEqual(perStage[1]?.map(\.removed), [1, 2, 3])
    XCTAssertEqual(perStage[2]?.map(\.removed), [1, 2])
    XCTAssertEqual(perStage[3]?.map(\.removed), [1, 2])
    XCTAssertEqual(perStage[1]?.map(\.blocks), [["s1.b3"], ["s1.b2", "s1.b3"], ["s1.b1", "s1.b2", "s1.b3"]])
    XCTAssertEqual(perStage[3]?.last?.blocks, ["s3.b2", "s3.b3"])
    // j = 1 is the single-block deletion of the stage's last block.
    XCTAssertEqual(perStage[2]?.first?.accuracy, report.blocks.first { $0.block == "s2.b3" }?.accuracy)
    let twoBlocks = try BlockDeletion.evaluate(model, test: test, removing: ["s2.b2", "s2.b3"], context: testKernels)
    XCTAssertEqual(perStage[2]?.last?.accuracy, twoBlocks.accuracy)
    // Evaluations: intact + 7 single + (2 + 1 + 1) further tail points, each over 3 batches
    // of 16, 16 and 8 examples.
    XCTAssertEqual(events.count, 12 * 3)
    XCTAssertEqual(events.map(\.completed), Array(1...36))
    XCTAssertEqual(events.last?.total, 36)
    XCTAssertEqual(events.first?.current, [])
    XCTAssertEqual(events[1].current, ["s1.b1"])
    let decoded = try JSONDecoder().decode(BlockDeletionReport.self, from: JSONEncoder().encode(report))
    XCTAssertEqual(decoded, report)
  }

  /// A deletion's forward starts at its first bypassed block from the intact forward's kept
  /// input: every loss and prediction equals a full forward's with the same blocks bypassed,
  /// bit for bit, for the residual and the plain net, over several batches.
  func testSharedPrefixesGiveTheFullForwardsNumbers() throws {
    for residual in [true, false] {
      let model = try ResNet(config: ResNetConfig(depth: 20, widthMultiplier: 0.25, residual: residual,
                                                  inputHeight: 8, inputWidth: 8, inputChannels: 1,
                                                  numClasses: 4), seed: 9)
      let test = Self.quadrants(count: 37, seed: 3)
      let report = try BlockDeletion.run(model, test: test, batchSize: 16, context: testKernels)
      let intact = try Evaluation.run(model, on: test, batchSize: 16, context: testKernels)
      XCTAssertEqual(report.intactLoss, intact.loss)
      XCTAssertEqual(report.intactAccuracy, intact.accuracy)
      var checked = 0
      for b in report.blocks where b.removable {
        let full = try BlockDeletion.evaluate(model, test: test, removing: [b.block], batchSize: 16, context: testKernels)
        XCTAssertEqual(b.loss, full.loss, "\(residual) \(b.block)")
        XCTAssertEqual(b.accuracy, full.accuracy, "\(residual) \(b.block)")
        XCTAssertEqual(b.changedPredictions,
                       zip(full.predictions, intact.predictions).filter { $0 != $1 }.count)
        checked += 1
      }
      for t in report.stageTails {
        let full = try BlockDeletion.evaluate(model, test: test, removing: Set(t.blocks), batchSize: 16, context: testKernels)
        XCTAssertEqual(t.loss, full.loss, "\(residual) \(t.blocks)")
        XCTAssertEqual(t.accuracy, full.accuracy)
        checked += 1
      }
      XCTAssertGreaterThan(checked, 8)
      // Control: the deletions do change the numbers (an untrained net still has live branches).
      XCTAssertTrue(report.blocks.contains { $0.removable && $0.loss != intact.loss })
    }
  }

  func testStageTailsHelperAndPlainNet() throws {
    var plain = ResNetConfig(depth: 14, widthMultiplier: 0.25, residual: false, inputHeight: 8,
                             inputWidth: 8, inputChannels: 1, numClasses: 4)
    let tails = BlockDeletion.stageTails(plain.blocks)
    XCTAssertEqual(tails.map(\.stage), [1, 2, 3])
    XCTAssertEqual(tails.map(\.blocks), [["s1.b1", "s1.b2"], ["s2.b2"], ["s3.b2"]])
    let s2b1 = plain.blocks[2]
    XCTAssertTrue(BlockDeletion.reasonNotRemovable(s2b1)?.contains("shapes differ") ?? false)
    plain.residual = true
    XCTAssertTrue(BlockDeletion.reasonNotRemovable(plain.blocks[2])?.contains("projection") ?? false)
    XCTAssertNil(BlockDeletion.reasonNotRemovable(plain.blocks[1]))
  }

  func testUnknownAndUnremovableBlocksAreErrors() throws {
    let model = try ResNet(config: Self.config, seed: 1)
    let test = Self.quadrants(count: 8, seed: 1)
    XCTAssertThrowsError(try BlockDeletion.run(model, test: test, blocks: ["s1.b1", "s9.b9"], context: testKernels)) {
      XCTAssertTrue("\($0)".contains("s9.b9"), "\($0)")
    }
    XCTAssertThrowsError(try BlockDeletion.evaluate(model, test: test, removing: ["nope"], context: testKernels))
    XCTAssertThrowsError(try BlockDeletion.evaluate(model, test: test, removing: ["s2.b1"], context: testKernels)) {
      XCTAssertTrue("\($0)".contains("projection"), "\($0)")
    }
    // A subset by name: only those blocks, in forward order; tails as usual.
    let sub = try BlockDeletion.run(model, test: test, blocks: ["s3.b2", "s1.b1", "s2.b1"], context: testKernels)
    XCTAssertEqual(sub.blocks.map(\.block), ["s1.b1", "s2.b1", "s3.b2"])
    XCTAssertEqual(sub.blocks.map(\.removable), [true, false, true])
    XCTAssertEqual(sub.stageTails.map(\.removed), [1, 2, 1, 1])
    let wrong = Dataset.synthetic(count: 4, height: 6, width: 6, channels: 1, numClasses: 4, seed: 1)
    XCTAssertThrowsError(try BlockDeletion.run(model, test: wrong, context: testKernels))
  }

  func testCancellation() throws {
    let model = try ResNet(config: Self.config, seed: 1)
    let test = Self.quadrants(count: 8, seed: 1)
    var polls = 0
    XCTAssertThrowsError(try BlockDeletion.run(model, test: test, context: testKernels, shouldStop: {
      polls += 1
      return polls > 3
    })) {
      // ResNet-14: intact + 4 removable blocks + 1 further tail point (stage 1, j = 2).
      XCTAssertEqual($0 as? BlockDeletionError, .cancelled(completed: 3, total: 6))
    }
  }
}
