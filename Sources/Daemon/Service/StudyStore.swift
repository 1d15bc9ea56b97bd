import Foundation
import Study
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// `STORE/studies/NAME/study.json`: a declared study. The declaration's dataset is canonical.
struct StudyRecord: Codable, Sendable {
  var format = 1
  var study: String
  var declaration: StudyDeclaration
  var created: String
  /// STUDY_CANCEL sets it, STUDY_RESUME clears it; the runner leaves a cancelled study alone.
  var cancelled: Bool
  /// Analyses that failed (key -> message); not retried until STUDY_RESUME.
  var errors: [StudyError]
  /// Models already trained when the study was declared (reused, not trained for it).
  var reused: [String]?
  /// The dataset's classes, found when the study was declared (chance is 1/classes): a
  /// restarted daemon plans the study without loading its dataset.
  var classes: Int?
  /// The dataset's split sizes (for the training cost behind progress and ETA).
  var trainCount: Int?
  var testCount: Int?
  /// Jobs this study cancelled (STUDY_CANCEL): another study that needs their models resumes
  /// them; a job the user cancelled stays cancelled.
  var cancelledJobs: [UInt64]?
  /// Where its models train (nil: local).
  var executor: StudyExecutor?
  /// The slurm executor's submissions, oldest first (a task's latest one is its state).
  var slurmSubmissions: [SlurmSubmission]?
}

/// One `sbatch` of a study's job array script.
struct SlurmSubmission: Codable, Sendable {
  var arrayJob: String
  var tasks: [Int]
  var submitted: String
}

/// The on-disk side of studies:
///
///     studies/NAME/study.json              the record (atomic writes)
///     studies/NAME/results/KIND/REST.bsr   one stored result per analysis key KIND/REST
///
/// A result file is `BSRESULT` (8 bytes), a u32 little-endian length, the result's index entry
/// (JSON), then the analysis response as one protocol frame (SPEC.md section 2), byte for byte
/// as it was answered. Every file is written to a temporary name, fsynced and renamed, so a
/// crash leaves the old file or the new one, never a torn one. A deleted study's directory is
/// first renamed to `.deleted-NAME-PID`, so a crash mid-delete leaves no half study behind.
struct StudyFiles: Sendable {
  static let resultMagic = Array("BSRESULT".utf8)
  let directory: String

  func studyDirectory(_ study: String) -> String { "\(directory)/\(study)" }
  func recordPath(_ study: String) -> String { "\(studyDirectory(study))/study.json" }
  func resultsDirectory(_ study: String) -> String { "\(studyDirectory(study))/results" }

  /// `results/heatmap/MODEL.bsr` for key `heatmap/MODEL`.
  func resultPath(_ study: String, key: String) -> String { "\(resultsDirectory(study))/\(key).bsr" }

  /// Keys are `KIND/REST` with REST of model-name characters and `+`: nothing that can leave
  /// the results directory.
  static func isValidKey(_ key: String) -> Bool {
    let parts = key.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count == 2, key.utf8.count <= 512 else { return false }
    return parts.allSatisfy { part in !part.isEmpty && part.first != "." && keyText.accepts(part) }
  }

  /// The bytes of each part of a result key (a file name under results/).
  private static let keyText = PlainText(punctuation: "._-+")

  init(directory: String) throws(WireError) {
    self.directory = directory
    try makeDirectory(directory)
    // Half-deleted studies of a daemon that died mid-delete.
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    where entry.hasPrefix(".deleted-") {
      try? FileManager.default.removeItem(atPath: directory + "/" + entry)
    }
  }

  private static func encoder() -> JSONEncoder {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    return e
  }

  func loadRecords() -> [StudyRecord] {
    var out: [StudyRecord] = []
    for name in ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    where !name.hasPrefix(".") {
      let path = recordPath(name)
      guard let data = FileManager.default.contents(atPath: path) else { continue }
      guard let record = try? JSONDecoder().decode(StudyRecord.self, from: data), record.study == name else {
        FileHandle.standardError.write(Data("blockscoped: ignoring unreadable study record \(path)\n".utf8))
        continue
      }
      removeStaleTemporaries(in: studyDirectory(name))
      for kind in (try? FileManager.default.contentsOfDirectory(atPath: resultsDirectory(name))) ?? [] {
        removeStaleTemporaries(in: resultsDirectory(name) + "/" + kind)
      }
      out.append(record)
    }
    return out
  }

  func save(_ record: StudyRecord) throws(WireError) {
    try makeDirectory(resultsDirectory(record.study))
    let bytes: [UInt8]
    do {
      bytes = Array(try Self.encoder().encode(record)) + [UInt8(ascii: "\n")]
    } catch {
      throw WireError(.internal, "study \(record.study): record cannot be encoded: \(error)")
    }
    try writeFileAtomically(bytes, to: recordPath(record.study), what: "study record")
  }

  /// Stores one analysis response.
  func saveResult(_ study: String, _ entry: StudyResultsResponse.Result, type: MessageType,
                  payload: Payload) throws(WireError) {
    let meta: [UInt8]
    do {
      meta = Array(try JSONEncoder().encode(entry))
    } catch {
      throw WireError(.internal, "result \(entry.key) cannot be encoded: \(error)")
    }
    let frame = Frame(type: type, requestID: 1, payload: payload.encoded()).encoded()
    var bytes = Self.resultMagic
    let n = UInt32(meta.count)
    bytes += [UInt8(n & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 24)]
    bytes += meta
    bytes += frame
    let path = resultPath(study, key: entry.key)
    try makeDirectory((path as NSString).deletingLastPathComponent)
    try writeFileAtomically(bytes, to: path, what: "study result")
  }

  func hasResult(_ study: String, key: String) -> Bool {
    FileManager.default.fileExists(atPath: resultPath(study, key: key))
  }

  /// The index of every stored result. A file that cannot be read is moved aside (and logged),
  /// so the runner computes it again.
  func results(_ study: String) -> [StudyResultsResponse.Result] {
    let root = resultsDirectory(study)
    var out: [StudyResultsResponse.Result] = []
    for kind in ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted() where !kind.hasPrefix(".") {
      for file in ((try? FileManager.default.contentsOfDirectory(atPath: root + "/" + kind)) ?? []).sorted()
      where !file.hasPrefix(".") && file.hasSuffix(".bsr") {
        let path = root + "/" + kind + "/" + file
        do {
          var (entry, _, _) = try readResult(path, payload: false)
          entry.bytes = (try? FileStamp.of(path))??.size ?? 0
          out.append(entry)
        } catch {
          // Moved aside, so that the runner computes it again (the file is kept for a look).
          let aside = root + "/" + kind + "/.corrupt-" + file
          _ = rename(path, aside)
          FileHandle.standardError.write(Data("blockscoped: \(path): \(error.message); moved to \(aside), to be computed again\n".utf8))
        }
      }
    }
    return out
  }

  /// One stored result: its index entry, response type and payload (CORRUPT when the file is
  /// not one).
  func result(_ study: String, key: String) throws(WireError) -> (StudyResultsResponse.Result, MessageType, Payload) {
    guard Self.isValidKey(key) else { throw invalid("key", "\"\(key)\" is not a result key (KIND/NAME)") }
    let path = resultPath(study, key: key)
    guard FileManager.default.fileExists(atPath: path) else {
      throw notFound("study \"\(study)\" has no result \"\(key)\" (STUDY_RESULTS lists them)")
    }
    let (entry, type, payload) = try readResult(path, payload: true)
    return (entry, type, payload!)
  }

  private func readResult(_ path: String, payload wanted: Bool) throws(WireError)
    -> (StudyResultsResponse.Result, MessageType, Payload?) {
    func corrupt(_ why: String) -> WireError { WireError(.corrupt, "study result \(path): \(why)") }
    guard let handle = FileHandle(forReadingAtPath: path) else { throw fileError("open", path, errno) }
    defer { try? handle.close() }
    func read(_ count: Int) throws(WireError) -> [UInt8] {
      guard let data = try? handle.read(upToCount: count), data.count == count else { throw corrupt("truncated") }
      return [UInt8](data)
    }
    let m = Self.resultMagic.count
    let head = try read(m + 4)
    guard Array(head[0..<m]) == Self.resultMagic else { throw corrupt("not a result file") }
    let n = Int(head[m]) | Int(head[m + 1]) << 8 | Int(head[m + 2]) << 16 | Int(head[m + 3]) << 24
    guard n <= 1 << 20 else { throw corrupt("its index entry is \(n) bytes") }
    guard let entry = try? JSONDecoder().decode(StudyResultsResponse.Result.self, from: Data(try read(n))) else {
      throw corrupt("its index entry does not decode")
    }
    let header = FrameHeader.decode(try read(FrameHeader.encodedSize))
    let length = Int(header.length)
    guard length >= FrameHeader.headerSize, length <= FrameHeader.maxLength else { throw corrupt("its frame length is wrong") }
    guard let type = MessageType(rawValue: header.rawType), type.isResponse else { throw corrupt("its frame is not a response") }
    guard wanted else { return (entry, type, nil) }
    let body = try read(length - FrameHeader.headerSize)
    guard (try? handle.read(upToCount: 1))??.isEmpty ?? true else { throw corrupt("bytes after its frame") }
    return (entry, type, try Payload.parse(body))
  }

  /// Renames the study's directory out of the way, then removes it.
  func remove(_ study: String) throws(WireError) {
    let from = studyDirectory(study)
    let to = "\(directory)/.deleted-\(study)-\(getpid())"
    guard rename(from, to) == 0 else { throw fileError("rename", from, errno, "the study was not deleted") }
    syncDirectory(directory)
    try? FileManager.default.removeItem(atPath: to)
  }
}
