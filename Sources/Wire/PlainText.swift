/// ASCII letters and digits plus a few punctuation characters: the bytes allowed where text
/// becomes part of a file name, a path or a job script (study result keys, Slurm options and
/// the paths written into a job array script), so that nothing in it is ever interpreted.
public struct PlainText: Sendable {
  private let punctuation: Set<UInt8>

  public init(punctuation: String) {
    precondition(punctuation.utf8.allSatisfy { $0 < 0x80 }, "ASCII punctuation only")
    self.punctuation = Set(punctuation.utf8)
  }

  public func contains(_ b: UInt8) -> Bool {
    (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || punctuation.contains(b)
  }

  /// Every byte of the text is plain (true for empty text: callers check lengths).
  public func accepts<S: StringProtocol>(_ text: S) -> Bool { text.utf8.allSatisfy(contains) }
}
