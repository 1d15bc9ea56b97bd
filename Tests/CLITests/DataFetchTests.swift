import Foundation
import Glibc
import ToolTestSupport
import XCTest

/// `blockscope data fetch` run as a built binary on small archives of the real layout (the
/// real ones are 160 MB and need the network): the published checksum is enforced unless the
/// hidden --md5 names another, the dataset appears whole or not at all, downloads work over
/// file:// and a local HTTP server with curl and without it (URLSession).
final class DataFetchTests: XCTestCase {
  static let tool = BuiltTool("blockscope", besides: DataFetchTests.self)

  var directory = ""
  var environment: [String: String] = [:]
  var dataRoot: String { directory + "/xdg-data/blockscope/datasets" }
  var noSocket: String { directory + "/none.sock" }

  override func setUpWithError() throws {
    try XCTSkipUnless(Self.tool.isBuilt, "blockscope not built at \(Self.tool.url.path)")
    try XCTSkipUnless(which("tar") != nil && which("md5sum") != nil, "tar and md5sum are needed")
    directory = NSTemporaryDirectory() + "bs-fetch-\(getpid())-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    // The default directory under this test's directory; never a real daemon's socket.
    environment = ["XDG_DATA_HOME": directory + "/xdg-data", "XDG_CONFIG_HOME": directory + "/xdg-config"]
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: directory)
  }

  func fetch(_ arguments: [String], env: [String: String] = [:]) throws -> BuiltTool.Result {
    try Self.tool.run(["data", "fetch"] + arguments + ["--socket", noSocket], env: environment.merging(env) { $1 })
  }

  // MARK: Archives

  struct Member {
    var name: String
    var records: Int
    /// A label byte that is out of range, in the first record.
    var badLabel: UInt8? = nil
    /// Extra bytes after the last record.
    var extraBytes = 0
  }

  static let cifar10Members = (1...5).map { Member(name: "data_batch_\($0).bin", records: 3) }
    + [Member(name: "test_batch.bin", records: 2)]

  /// A tar.gz holding `subdirectory/` with the members (records of `labelBytes` + 3072
  /// bytes); returns its path and MD5.
  func makeArchive(_ name: String, subdirectory: String = "cifar-10-batches-bin",
                   members: [Member] = DataFetchTests.cifar10Members, labelBytes: Int = 1) throws -> (path: String, md5: String) {
    let source = directory + "/src-" + name
    try FileManager.default.createDirectory(atPath: source + "/" + subdirectory, withIntermediateDirectories: true)
    for member in members {
      var bytes: [UInt8] = []
      for r in 0..<member.records {
        var labels = (0..<labelBytes).map { UInt8((r + $0) % 10) }
        if r == 0, let bad = member.badLabel { labels[labelBytes - 1] = bad }
        bytes += labels + [UInt8](repeating: UInt8(truncatingIfNeeded: r * 7), count: 3072)
      }
      bytes += [UInt8](repeating: 1, count: member.extraBytes)
      try Data(bytes).write(to: URL(fileURLWithPath: source + "/" + subdirectory + "/" + member.name))
    }
    try Data("readme\n".utf8).write(to: URL(fileURLWithPath: source + "/" + subdirectory + "/readme.html"))
    let archive = directory + "/" + name
    try run("tar", ["-czf", archive, "-C", source, subdirectory])
    let md5 = String(try run("md5sum", [archive]).prefix(32))
    return (archive, md5)
  }

  @discardableResult
  func run(_ tool: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try XCTUnwrap(which(tool), "\(tool) not on PATH"))
    process.arguments = arguments
    let out = Pipe()
    process.standardOutput = out
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    XCTAssertEqual(process.terminationStatus, 0, "\(tool) \(arguments)")
    return String(decoding: data, as: UTF8.self)
  }

  func which(_ tool: String) -> String? {
    for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
      let path = "\(directory)/\(tool)"
      if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
  }

  func contents(_ path: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
  }

  func json(_ result: BuiltTool.Result) throws -> [String: Any] {
    try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], result.stdout)
  }

  /// The dataset is in place, whole, and nothing of the fetch is left beside it.
  func assertInstalled(_ target: String, subdirectory: String = "cifar-10-batches-bin",
                       files: [String] = DataFetchTests.cifar10Members.map(\.name),
                       file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(contents(target), [subdirectory], file: file, line: line)
    XCTAssertEqual(contents(target + "/" + subdirectory), (files + ["readme.html"]).sorted(), file: file, line: line)
    let parent = (target as NSString).deletingLastPathComponent
    XCTAssertEqual(contents(parent).filter { $0.hasPrefix(".") }, [], "work directories left", file: file, line: line)
  }

  // MARK: Tests

  func testFetchFromALocalFileInstallsIntoTheDefaultDirectory() throws {
    let archive = try makeArchive("fake10.tar.gz")
    let r = try fetch(["cifar10", "--from", archive.path, "--md5", archive.md5, "--json"])
    XCTAssertEqual(r.status, 0, r.stderr)
    let doc = try json(r)
    XCTAssertEqual(doc["dataset"] as? String, "cifar10")
    XCTAssertEqual(doc["path"] as? String, dataRoot + "/cifar10")
    XCTAssertEqual(doc["md5"] as? String, archive.md5)
    XCTAssertEqual(doc["train_count"] as? Int, 15)
    XCTAssertEqual(doc["test_count"] as? Int, 2)
    XCTAssertEqual(doc["source"] as? String, archive.path)
    XCTAssertNil(doc["daemon"])
    assertInstalled(dataRoot + "/cifar10")
    XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dataRoot + "/cifar10/cifar-10-batches-bin/test_batch.bin")).count,
                   2 * 3073)

    // An existing dataset is not replaced unless --force.
    let again = try fetch(["cifar10", "--from", archive.path, "--md5", archive.md5])
    XCTAssertEqual(again.status, 1)
    XCTAssertTrue(again.stderr.contains("\(dataRoot)/cifar10 already exists (holding cifar-10-batches-bin); --force replaces it"),
                  again.stderr)
    let other = try makeArchive("other10.tar.gz", members: [Member(name: "data_batch_1.bin", records: 1)]
                                  + Self.cifar10Members.dropFirst())
    let forced = try fetch(["cifar10", "--from", other.path, "--md5", other.md5, "--force"])
    XCTAssertEqual(forced.status, 0, forced.stderr)
    XCTAssertEqual(forced.stdout, "cifar10: 13 training and 2 test images in \(dataRoot)/cifar10 (MD5 \(other.md5))\n")
    assertInstalled(dataRoot + "/cifar10")
    // An empty directory is no dataset: it is replaced without --force.
    let empty = directory + "/empty"
    try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
    let into = try fetch(["cifar10", "--from", archive.path, "--md5", archive.md5, "--to", empty])
    XCTAssertEqual(into.status, 0, into.stderr)
    assertInstalled(empty)
    // --to elsewhere: the output says how to point the daemon at it.
    XCTAssertTrue(into.stdout.contains("the daemon reads it once told: start it with --data cifar10=\(empty), "
                                       + "or BLOCKSCOPE_DATA=cifar10=\(empty)"), into.stdout)
  }

  func testAWrongChecksumIsRefusedAndLeavesNothing() throws {
    let archive = try makeArchive("fake10.tar.gz")
    // Without --md5 the published checksum applies, which a fake archive cannot have.
    let r = try fetch(["cifar10", "--from", archive.path])
    XCTAssertEqual(r.status, 1)
    XCTAssertEqual(r.stdout, "")
    XCTAssertTrue(r.stderr.contains("\(archive.path): MD5 \(archive.md5), but cifar-10-binary.tar.gz must have "
                                    + "c32a1d4ab5d03f1284b67883e8d87530 (its published checksum)"), r.stderr)
    XCTAssertTrue(r.stderr.contains("nothing was installed"), r.stderr)
    // Not even the default directory's parents were left.
    XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/xdg-data"))

    let hundred = try fetch(["cifar100", "--from", archive.path, "--to", directory + "/c100"])
    XCTAssertEqual(hundred.status, 1)
    XCTAssertTrue(hundred.stderr.contains("must have 03b5dce01913d631647c71ecec9e9cb8 (its published checksum)"), hundred.stderr)

    let wrong = try fetch(["cifar10", "--from", archive.path, "--md5", String(repeating: "0", count: 32),
                           "--to", directory + "/target"])
    XCTAssertEqual(wrong.status, 1)
    XCTAssertTrue(wrong.stderr.contains("must have 00000000000000000000000000000000:"), wrong.stderr)
    XCTAssertEqual(contents(directory), ["fake10.tar.gz", "src-fake10.tar.gz"])
  }

  func testArchivesTheLoaderWouldRejectAreRefused() throws {
    let cases: [(String, [Member], String)] = [
      ("label.tar.gz", [Member(name: "data_batch_1.bin", records: 2, badLabel: 10)] + Self.cifar10Members.dropFirst(),
       "data_batch_1.bin: label 10 out of range 0..<10 at record 0"),
      ("truncated.tar.gz", Array(Self.cifar10Members.dropLast()) + [Member(name: "test_batch.bin", records: 2, extraBytes: 5)],
       "test_batch.bin: 6151 bytes is not a whole number of 3073-byte records"),
      ("incomplete.tar.gz", Array(Self.cifar10Members.dropLast()), "test_batch.bin: missing from the archive"),
    ]
    for (name, members, problem) in cases {
      let archive = try makeArchive(name, members: members)
      let r = try fetch(["cifar10", "--from", archive.path, "--md5", archive.md5])
      XCTAssertEqual(r.status, 1, name)
      XCTAssertTrue(r.stderr.contains(problem), "\(name): \(r.stderr)")
      XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/xdg-data"), name)
    }
    // The archive of the other dataset: no cifar-10-batches-bin/ in it.
    let c100 = try makeArchive("c100.tar.gz", subdirectory: "cifar-100-binary",
                               members: [Member(name: "train.bin", records: 4), Member(name: "test.bin", records: 2)],
                               labelBytes: 2)
    let r = try fetch(["cifar10", "--from", c100.path, "--md5", c100.md5])
    XCTAssertEqual(r.status, 1)
    XCTAssertTrue(r.stderr.contains("unpacking cifar-10-batches-bin/ failed"), r.stderr)
    XCTAssertTrue(r.stderr.contains("Not found in archive"), r.stderr)
    XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/xdg-data"))
  }

  func testCIFAR100() throws {
    let members = [Member(name: "train.bin", records: 4), Member(name: "test.bin", records: 2)]
    let archive = try makeArchive("c100.tar.gz", subdirectory: "cifar-100-binary", members: members, labelBytes: 2)
    let r = try fetch(["CIFAR-100", "--from", archive.path, "--md5", archive.md5])
    XCTAssertEqual(r.status, 0, r.stderr)
    XCTAssertTrue(r.stdout.hasPrefix("cifar100: 4 training and 2 test images in \(dataRoot)/cifar100"), r.stdout)
    assertInstalled(dataRoot + "/cifar100", subdirectory: "cifar-100-binary", files: ["train.bin", "test.bin"])
    // Coarse labels are below 20, fine below 100.
    let bad = try makeArchive("bad100.tar.gz", subdirectory: "cifar-100-binary",
                              members: [Member(name: "train.bin", records: 4, badLabel: 100), members[1]], labelBytes: 2)
    let refused = try fetch(["cifar100", "--from", bad.path, "--md5", bad.md5, "--to", directory + "/c100"])
    XCTAssertEqual(refused.status, 1)
    XCTAssertTrue(refused.stderr.contains("train.bin: label 100 out of range 0..<100 at record 0"), refused.stderr)
  }

  func testDownloadsFromFileURLsAndALocalHTTPServerWithAndWithoutCurl() throws {
    let archive = try makeArchive("fake10.tar.gz")
    let fileURL = try fetch(["cifar10", "--from", "file://" + archive.path, "--md5", archive.md5, "--to", directory + "/by-file-url"])
    XCTAssertEqual(fileURL.status, 0, fileURL.stderr)
    assertInstalled(directory + "/by-file-url")

    let python = try XCTUnwrap(which("python3"), "python3 runs the local HTTP server")
    let server = Process()
    server.executableURL = URL(fileURLWithPath: python)
    server.arguments = ["-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", directory]
    let out = Pipe()
    server.standardOutput = out
    server.standardError = FileHandle.nullDevice
    try server.run()
    defer { server.terminate(); server.waitUntilExit() }
    // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
    var banner = ""
    while !banner.contains("\n") {
      let chunk = out.fileHandleForReading.availableData
      guard !chunk.isEmpty else { break }
      banner += String(decoding: chunk, as: UTF8.self)
    }
    let port = try XCTUnwrap(banner.components(separatedBy: " port ").dropFirst().first?.split(separator: " ").first,
                             "no port in \(banner.debugDescription)")
    let url = "http://127.0.0.1:\(port)/fake10.tar.gz"

    if which("curl") != nil {
      let curl = try fetch(["cifar10", "--from", url, "--md5", archive.md5, "--to", directory + "/by-curl"])
      XCTAssertEqual(curl.status, 0, curl.stderr)
      assertInstalled(directory + "/by-curl")
      let missing = try fetch(["cifar10", "--from", url + ".nope", "--md5", archive.md5, "--to", directory + "/nope"])
      XCTAssertEqual(missing.status, 1)
      XCTAssertTrue(missing.stderr.contains("downloading \(url).nope failed"), missing.stderr)
      XCTAssertTrue(missing.stderr.contains("404"), missing.stderr)
      XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/nope"))
    }

    // Without curl on PATH (only tar, gzip and md5sum): URLSession downloads.
    let bin = directory + "/bin"
    try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
    for tool in ["tar", "gzip", "md5sum"] {
      try FileManager.default.createSymbolicLink(atPath: bin + "/" + tool, withDestinationPath: try XCTUnwrap(which(tool)))
    }
    let session = try fetch(["cifar10", "--from", url, "--md5", archive.md5, "--to", directory + "/by-urlsession"],
                            env: ["PATH": bin])
    XCTAssertEqual(session.status, 0, session.stderr)
    assertInstalled(directory + "/by-urlsession")
    let missing = try fetch(["cifar10", "--from", url + ".nope", "--md5", archive.md5, "--to", directory + "/nope"],
                            env: ["PATH": bin])
    XCTAssertEqual(missing.status, 1)
    XCTAssertTrue(missing.stderr.contains("downloading \(url).nope failed: HTTP 404"), missing.stderr)
    XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/nope"))
  }

  func testAnInterruptedFetchLeavesNothingAndStaleWorkIsRemoved() throws {
    // A FIFO as the archive: the fetch blocks reading it until it is interrupted.
    let fifo = directory + "/stuck.tar.gz"
    XCTAssertEqual(mkfifo(fifo, 0o600), 0)
    let target = directory + "/out/cifar10"
    let process = Process()
    process.executableURL = Self.tool.url
    process.arguments = ["data", "fetch", "cifar10", "--from", fifo, "--to", target, "--socket", noSocket]
    let err = Pipe()
    process.standardError = err
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    let deadline = Date().addingTimeInterval(30)
    while contents(directory + "/out").isEmpty && Date() < deadline { usleep(20_000) }
    let work = contents(directory + "/out")
    XCTAssertEqual(work.count, 1)
    XCTAssertTrue(work.first?.hasPrefix(".cifar10.fetch-\(process.processIdentifier)-") == true, "\(work)")
    usleep(200_000)
    process.terminate()
    let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    XCTAssertEqual(process.terminationStatus, 128 + SIGTERM, stderr)
    XCTAssertTrue(stderr.contains("interrupted; nothing was installed in \(target)"), stderr)
    // Not even the parent it created.
    XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/out"))

    // A work directory of a fetch killed outright (SIGKILL; its pid gone) goes at the next fetch.
    let stale = directory + "/out/.cifar10.fetch-\(Int32.max)-abcdef"
    try FileManager.default.createDirectory(atPath: directory + "/out", withIntermediateDirectories: true)
    try FileManager.default.createDirectory(atPath: stale + "/dataset", withIntermediateDirectories: true)
    let archive = try makeArchive("fake10.tar.gz")
    let r = try fetch(["cifar10", "--from", archive.path, "--md5", archive.md5, "--to", target])
    XCTAssertEqual(r.status, 0, r.stderr)
    XCTAssertEqual(contents(directory + "/out"), ["cifar10"])
  }

  func testUsageErrors() throws {
    let unknown = try Self.tool.run(["data", "fetch", "mnist"])
    XCTAssertEqual(unknown.status, 64)
    XCTAssertTrue(unknown.stderr.contains("cannot fetch 'mnist': known are cifar10, cifar100"), unknown.stderr)
    let md5 = try Self.tool.run(["data", "fetch", "cifar10", "--md5", "xyz"])
    XCTAssertEqual(md5.status, 64)
    let directoryArchive = try fetch(["cifar10", "--from", directory])
    XCTAssertEqual(directoryArchive.status, 1)
    XCTAssertTrue(directoryArchive.stderr.contains("is a directory; give the archive (cifar-10-binary.tar.gz), or let "
                                                   + "the daemon read the unpacked files where they are: BLOCKSCOPE_DATA=cifar10="),
                  directoryArchive.stderr)
    let help = try Self.tool.run(["data", "fetch", "--help"])
    XCTAssertEqual(help.status, 0)
    for text in ["--from", "--to", "--force", "c32a1d4ab5d03f1284b67883e8d87530", "03b5dce01913d631647c71ecec9e9cb8"] {
      XCTAssertTrue(help.stdout.contains(text), "\(text) missing from:\n\(help.stdout)")
    }
    XCTAssertFalse(help.stdout.contains("--md5"), help.stdout)
  }
}
