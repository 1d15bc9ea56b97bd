import FuzzHarnesses
import Foundation
import XCTest

/// Every committed fuzz input through its harness, as libFuzzer runs it: the seed corpus
/// (Tests/Fuzz/corpus/TARGET) and every crasher a campaign found (Tests/Fuzz/regressions/TARGET,
/// where `tools/fuzz` saves them). A trap here is a crash of the test process; a broken
/// property fails the test naming the file.
final class FuzzReplayTests: XCTestCase {
  /// Tests/Fuzz, found from this file.
  static let fuzzDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent()

  /// The regular files of a directory, sorted; none if it does not exist.
  static func inputs(in directory: URL) throws -> [URL] {
    guard FileManager.default.fileExists(atPath: directory.path) else { return [] }
    return try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
      .filter { !$0.hasDirectoryPath && !$0.lastPathComponent.hasPrefix(".") }
      .sorted { $0.lastPathComponent < $1.lastPathComponent }
  }

  private func replay(_ target: FuzzTarget, minimumCorpus: Int) throws {
    let corpus = try Self.inputs(in: Self.fuzzDirectory.appendingPathComponent("corpus/\(target.rawValue)"))
    let regressions = try Self.inputs(in: Self.fuzzDirectory.appendingPathComponent("regressions/\(target.rawValue)"))
    // An empty or missing corpus would make this test pass while replaying nothing.
    XCTAssertGreaterThanOrEqual(corpus.count, minimumCorpus, "corpus/\(target.rawValue) is missing or small")
    for file in corpus + regressions {
      let bytes = [UInt8](try Data(contentsOf: file))
      do {
        try target.run(bytes)
      } catch {
        XCTFail("\(target.rawValue) \(file.lastPathComponent): \(error)")
      }
    }
  }

  /// The seeds built with the real encoders (CraftedSeeds), straight from the code; with
  /// BLOCKSCOPE_FUZZ_WRITE_SEEDS=1 they are also written to corpus/TARGET/crafted-NAME.
  func testCraftedSeeds() throws {
    let write = ProcessInfo.processInfo.environment["BLOCKSCOPE_FUZZ_WRITE_SEEDS"] == "1"
    for target in FuzzTarget.allCases {
      let seeds = CraftedSeeds.seeds(for: target)
      XCTAssertFalse(seeds.isEmpty, target.rawValue)
      for seed in seeds {
        do {
          try target.run(seed.bytes)
        } catch {
          XCTFail("\(target.rawValue) crafted-\(seed.name): \(error)")
        }
        if write {
          let directory = Self.fuzzDirectory.appendingPathComponent("corpus/\(target.rawValue)")
          try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
          try Data(seed.bytes).write(to: directory.appendingPathComponent("crafted-\(seed.name)"))
        }
      }
    }
  }

  func testFrameCorpusAndRegressions() throws { try replay(.frame, minimumCorpus: 40) }
  func testCheckpointCorpusAndRegressions() throws { try replay(.checkpoint, minimumCorpus: 2) }
  func testCIFARCorpusAndRegressions() throws { try replay(.cifar, minimumCorpus: 3) }
  func testIDXCorpusAndRegressions() throws { try replay(.idx, minimumCorpus: 2) }
}
