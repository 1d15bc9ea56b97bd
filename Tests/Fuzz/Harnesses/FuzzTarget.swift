// The fuzz harnesses of issue 15 item 6, one per input format, shared by two drivers:
//   - libFuzzer (`tools/fuzz TARGET SECONDS`): `FuzzEntryPoints.swift` exports each harness as
//     a C function that Tests/Fuzz/libfuzzer_entry.c calls; a violation traps there, so the
//     fuzzer saves the input as a crasher;
//   - XCTest (`FuzzReplayTests`, run by tools/test): every committed corpus and regression
//     input goes through the same `run`, and a violation fails the test with its message.
// A harness expects parse errors (a thrown WireError, CheckpointError or DatasetError is the
// right answer to bad input); what it reports is a trap, a sanitizer report, or a broken
// property such as "decoding in pieces gives the same frames as decoding at once".

/// A property a harness checks did not hold for an input.
public struct FuzzViolation: Error, CustomStringConvertible {
  public let message: String

  public init(_ message: String) { self.message = message }

  public var description: String { message }
}

/// The fuzzed formats; the raw value names the corpus directory and the `tools/fuzz` target.
public enum FuzzTarget: String, CaseIterable, Sendable {
  /// Protocol byte streams: frame decoder (both roles, at once and in pieces), payloads,
  /// message docs, the daemon's conversation rules.
  case frame
  /// Checkpoint files (`Checkpoint.decode`).
  case checkpoint
  /// CIFAR-10 and CIFAR-100 record files.
  case cifar
  /// IDX image and label files, plain and gzip.
  case idx

  /// Runs the harness on one input.
  public func run(_ data: [UInt8]) throws(FuzzViolation) {
    switch self {
    case .frame: try FrameHarness.run(data)
    case .checkpoint: try CheckpointHarness.run(data)
    case .cifar: try DatasetHarness.runCIFAR(data)
    case .idx: try DatasetHarness.runIDX(data)
    }
  }
}
