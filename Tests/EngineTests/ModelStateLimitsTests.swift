import XCTest

@testable import Engine

/// A checkpoint's configuration is checked before a network is built from it: the daemon's
/// model store builds one from every file in its store, and a corrupt file of a few bytes
/// (Tests/Fuzz/regressions/checkpoint) must be refused with a clear error, not trap or ask for
/// terabytes.
final class ModelStateLimitsTests: XCTestCase {
  private func checkpoint(_ model: ResNetConfig, tensors: [NamedTensor] = []) -> Checkpoint {
    Checkpoint(model: model, training: TrainConfig(), data: DataSpec(dataset: "synthetic"), tensors: tensors)
  }

  func testStateFloatCountIsWhatACheckpointOfTheNetworkHolds() throws {
    let configs = [
      TrainingTests.tinyConfig,
      ResNetConfig(depth: 8, widthMultiplier: 0.5, residual: false),
      ResNetConfig(depth: 14, widthMultiplier: 1, inputHeight: 28, inputWidth: 28, inputChannels: 1),
      ResNetConfig(depth: 20, widthMultiplier: 2, numClasses: 100),
    ]
    for config in configs {
      let network = try ResNet(config: config, seed: 0)
      let held = ModelState.tensors(of: network, optimizer: false).reduce(0) { $0 + $1.values.count }
      XCTAssertEqual(config.stateFloatCount, held, config.name)
      // Exactly enough is enough.
      XCTAssertNoThrow(try ModelState.model(from: checkpoint(config, tensors: ModelState.tensors(of: network, optimizer: false))))
    }
  }

  /// ResNet-1202 at width 64 has about 8 x 10^10 weights (320 GB); a checkpoint claiming it
  /// with no tensors is refused from arithmetic alone.
  func testNetworkLargerThanTheCheckpointIsRefusedBeforeItIsBuilt() {
    let huge = ResNetConfig(depth: 1202, widthMultiplier: 64)
    XCTAssertThrowsError(try ModelState.model(from: checkpoint(huge), source: "huge.bsckpt")) { error in
      guard case ModelState.Mismatch.tooSmall(_, let needs, 0, "huge.bsckpt")? = error as? ModelState.Mismatch else {
        return XCTFail("\(error)")
      }
      XCTAssertGreaterThan(needs, 75_000_000_000)
      XCTAssertTrue("\(error)".contains("resnet1202-k64 model has \(needs) weights and statistics, its tensors hold 0 values"),
                    "\(error)")
    }
  }

  func testInputSidesAndClassesAreBounded() {
    func invalid(_ config: ResNetConfig, _ message: String, line: UInt = #line) {
      XCTAssertThrowsError(try ModelState.model(from: checkpoint(config)), line: line) { error in
        XCTAssertTrue(error is ResNetConfig.Invalid, "\(error)", line: line)
        XCTAssertTrue("\(error)".contains(message), "\(error)", line: line)
      }
    }
    // Int.max used to overflow computing the blocks' geometry (a trap) before any check.
    invalid(ResNetConfig(depth: 8, inputHeight: .max), "input shape 9223372036854775807x32x3 is not usable")
    invalid(ResNetConfig(depth: 8, inputWidth: 4097), "need 4x4 to 4096x4096")
    invalid(ResNetConfig(depth: 8, numClasses: 4_000_000_000_000), "number of classes 4000000000000 must be from 2 to 256")
    invalid(ResNetConfig(depth: 8, numClasses: 257), "from 2 to 256")
    XCTAssertNoThrow(try ResNetConfig(depth: 8, inputHeight: 4096, inputWidth: 4, numClasses: 256).validate())
  }
}
