import Dispatch
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Glibc

/// An official binary archive `blockscope data fetch` can install: where it is published, its
/// published MD5 (from the dataset's page, https://www.cs.toronto.edu/~kriz/cifar.html) and
/// what it must unpack to (the layout Engine's CIFAR loaders read).
struct DatasetArchive: Sendable {
  struct Member: Sendable {
    var file: String
    /// Records in the official archive.
    var records: Int
    var isTest: Bool
  }

  var name: String
  var title: String
  var url: String
  var md5: String
  /// The official archive's size, for messages.
  var bytes: Int
  /// The directory the archive unpacks to; the dataset directory holds it.
  var subdirectory: String
  var members: [Member]
  /// Label bytes opening each record, and the classes each may name (CIFAR-100: coarse, fine).
  var labelClasses: [Int]

  var recordBytes: Int { labelClasses.count + 3072 }
  var archiveName: String { (url as NSString).lastPathComponent }

  static let cifar10 = DatasetArchive(
    name: "cifar10", title: "CIFAR-10", url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    md5: "c32a1d4ab5d03f1284b67883e8d87530", bytes: 170_052_171, subdirectory: "cifar-10-batches-bin",
    members: (1...5).map { Member(file: "data_batch_\($0).bin", records: 10000, isTest: false) }
      + [Member(file: "test_batch.bin", records: 10000, isTest: true)],
    labelClasses: [10])

  static let cifar100 = DatasetArchive(
    name: "cifar100", title: "CIFAR-100", url: "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
    md5: "03b5dce01913d631647c71ecec9e9cb8", bytes: 168_513_733, subdirectory: "cifar-100-binary",
    members: [Member(file: "train.bin", records: 50000, isTest: false),
              Member(file: "test.bin", records: 10000, isTest: true)],
    labelClasses: [20, 100])

  static let all = [cifar10, cifar100]

  static func named(_ name: String) -> DatasetArchive? {
    let key = name.lowercased().filter { $0 != "-" && $0 != "_" }
    return all.first { $0.name == key }
  }
}

/// Where datasets go when no directory is named: `$XDG_DATA_HOME/blockscope/datasets/NAME`
/// (`~/.local/share/...`). The same rule as the daemon's `DatasetLocations.defaultRoot` (the
/// CLI does not link the Daemon module), so a daemon started with the same environment reads
/// what `data fetch` unpacks there without configuration.
enum DataDirectory {
  static func root(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
    let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
    var base = environment["XDG_DATA_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? home + "/.local/share"
    while base.count > 1 && base.hasSuffix("/") { base.removeLast() }
    return base + "/blockscope/datasets"
  }

  static func directory(for name: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
    root(environment: environment) + "/" + name
  }

  /// The daemon's config file (`DatasetLocations.configFilePath`), for messages.
  static func configFile(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
    let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
    var base = environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? home + "/.config"
    while base.count > 1 && base.hasSuffix("/") { base.removeLast() }
    return base + "/blockscope/config.json"
  }
}

/// Installs one archive into a dataset directory: download (or take a local file), check the
/// MD5, unpack with `tar` into a temporary directory next to the target, check every file as
/// the loader will, and rename the result into place. The target appears whole or not at all:
/// a failed or killed fetch leaves at most a hidden `.NAME.fetch-PID-*` directory, which an
/// interrupted fetch removes itself and the next fetch removes once its process is gone.
struct DatasetFetch {
  enum Source: Equatable {
    case url(String)
    case file(String)

    var text: String {
      switch self {
      case .url(let url): return url
      case .file(let path): return path
      }
    }
  }

  struct Outcome {
    var directory: String
    var md5: String
    var trainCount: Int
    var testCount: Int
  }

  var archive: DatasetArchive
  var source: Source
  /// The dataset directory to create (it will hold `archive.subdirectory`).
  var target: String
  /// Replace an existing non-empty target.
  var force = false
  /// The MD5 the archive must have: the published one unless overridden (tests, mirrors).
  var expectedMD5: String
  /// Official record counts are required only of the official archive.
  var strictCounts: Bool
  /// Progress on stderr (curl's meter; plain lines).
  var verbose: Bool
  /// Found on PATH: curl (else URLSession downloads), md5sum, tar.
  var environment: [String: String] = ProcessInfo.processInfo.environment

  /// `--from` as given: anything with `://` is a URL, the rest a local file.
  static func source(_ text: String) -> Source {
    text.contains("://") ? .url(text) : .file(absolutePath(text))
  }

  func run() throws -> Outcome {
    try checkTarget()
    if case .file(let path) = source { try Self.checkLocalArchive(path, archive: archive) }
    let parent = (target as NSString).deletingLastPathComponent
    // A failed fetch leaves nothing behind, not even the (empty) parents it created.
    var created: [String] = []
    var ancestor = parent
    while !FileManager.default.fileExists(atPath: ancestor) && ancestor != "/" {
      created.append(ancestor)
      ancestor = (ancestor as NSString).deletingLastPathComponent
    }
    var installed = false
    defer { if !installed { for directory in created { rmdir(directory) } } }
    try Files.makeDirectory(parent)
    Self.removeStaleWork(in: parent, name: archive.name)
    let work = try Self.makeWorkDirectory(in: parent, name: archive.name)
    let guardian = FetchInterruption.shared
    guardian.begin(work: work, target: target, createdParents: created)
    defer { guardian.end() }
    // Success or failure, what is left in it (the download, a replaced dataset) goes.
    defer { try? FileManager.default.removeItem(atPath: work) }

    let archivePath: String
    switch source {
    case .file(let path):
      archivePath = path
    case .url(let url):
      archivePath = work + "/" + archive.archiveName
      note("downloading \(url)")
      try download(url, to: archivePath)
    }

    let md5 = try md5sum(archivePath)
    guard md5 == expectedMD5.lowercased() else {
      throw OutputError("\(archivePath): MD5 \(md5), but \(archive.archiveName) must have \(expectedMD5.lowercased())"
                        + (expectedMD5.lowercased() == archive.md5 ? " (its published checksum)" : "")
                        + ": a corrupt or different file; nothing was installed")
    }
    note("MD5 \(md5) ok; unpacking")
    let unpacked = work + "/dataset"
    try Files.makeDirectory(unpacked)
    try runTool("tar", ["-xzf", archivePath, "-C", unpacked, "--no-same-owner", "--no-same-permissions",
                        archive.subdirectory],
                failure: "\(archivePath): unpacking \(archive.subdirectory)/ failed")
    let (train, test) = try verify(unpacked + "/" + archive.subdirectory)
    try guardian.commit { try place(unpacked, work: work) }
    installed = true
    return Outcome(directory: target, md5: md5, trainCount: train, testCount: test)
  }

  // MARK: Target

  /// An existing target is refused unless it is an empty directory or --force is given; a
  /// non-directory is never replaced.
  func checkTarget() throws {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: target, isDirectory: &isDirectory) else { return }
    guard isDirectory.boolValue else {
      throw OutputError("\(target) exists and is not a directory; remove it or choose another with --to DIR")
    }
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: target)) ?? []
    if !entries.isEmpty && !force {
      throw OutputError("\(target) already exists (holding \(entries.sorted().prefix(3).joined(separator: ", "))"
                        + (entries.count > 3 ? ", ..." : "") + "); --force replaces it")
    }
  }

  /// Moves the unpacked directory to the target: a rename on the same file system, so the
  /// target is never half there. An existing target is moved into the work directory first
  /// (and deleted with it); if the second rename fails, it is moved back.
  private func place(_ unpacked: String, work: String) throws {
    var previous: String?
    if FileManager.default.fileExists(atPath: target) {
      try checkTarget()  // it may have appeared since the start
      previous = work + "/previous"
      guard rename(target, previous!) == 0 else { throw OutputError.system("rename", target) }
    }
    if rename(unpacked, target) != 0 {
      let error = OutputError.system("rename", "\(unpacked) to \(target)")
      if let previous { _ = rename(previous, target) }
      throw error
    }
  }

  /// The local archive must be a readable regular file; a directory gets a pointer to the way
  /// to use an unpacked copy as it is.
  static func checkLocalArchive(_ path: String, archive: DatasetArchive) throws {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
      throw OutputError("--from \(path): no such file")
    }
    if isDirectory.boolValue {
      throw OutputError("--from \(path) is a directory; give the archive (\(archive.archiveName)), or let the daemon "
                        + "read the unpacked files where they are: BLOCKSCOPE_DATA=\(archive.name)=\(path)")
    }
    guard access(path, R_OK) == 0 else { throw OutputError.system("access", path) }
  }

  // MARK: Work directory

  static func workPrefix(_ name: String) -> String { ".\(name).fetch-" }

  static func makeWorkDirectory(in parent: String, name: String) throws -> String {
    var template = Array("\(parent)/\(workPrefix(name))\(getpid())-XXXXXX".utf8CString)
    guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
      throw OutputError.system("mkdtemp", parent)
    }
    return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }

  /// Removes the work directories of fetches whose process is gone (killed with SIGKILL, or
  /// the machine stopped).
  static func removeStaleWork(in parent: String, name: String) {
    let prefix = workPrefix(name)
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? [] where entry.hasPrefix(prefix) {
      guard let pid = Int32(entry.dropFirst(prefix.count).prefix { $0 != "-" }) else { continue }
      if pid != getpid() && kill(pid, 0) != 0 && errno == ESRCH {
        try? FileManager.default.removeItem(atPath: parent + "/" + entry)
      }
    }
  }

  // MARK: Steps

  /// curl when it is on PATH (progress meter, proxies from the environment, retries); else
  /// URLSession (FoundationNetworking), so that a minimal system can still fetch.
  func download(_ url: String, to path: String) throws {
    if let curl = findExecutable("curl") {
      var arguments = ["--fail", "--location", "--retry", "2", "--output", path]
      arguments += verbose && isatty(STDERR_FILENO) == 1 ? ["--progress-bar"] : ["--silent", "--show-error"]
      try runTool(curl, arguments + ["--", url], failure: "downloading \(url) failed", showStderr: true)
    } else {
      try URLSessionDownload.fetch(url, to: path)
    }
  }

  /// `md5sum` (coreutils, present wherever tar is) reading the file on stdin, so that no file
  /// name has to be escaped in or parsed out of its output.
  func md5sum(_ path: String) throws -> String {
    guard let input = FileHandle(forReadingAtPath: path) else { throw OutputError.system("open", path) }
    defer { try? input.close() }
    let output = try runTool("md5sum", [], failure: "md5sum \(path) failed", stdin: input)
    let digest = String(output.prefix { !$0.isWhitespace }).lowercased()
    guard digest.count == 32, digest.allSatisfy(\.isHexDigit) else {
      throw OutputError("md5sum \(path): unexpected output \(output.debugDescription)")
    }
    return digest
  }

  /// What the daemon's loader will require of the files (present, whole records, labels in
  /// range), plus the official record counts when the archive is the official one. Returns the
  /// training and test image counts.
  func verify(_ directory: String) throws -> (train: Int, test: Int) {
    var train = 0, test = 0
    for member in archive.members {
      let path = directory + "/" + member.file
      let records = try Self.checkRecords(path, recordBytes: archive.recordBytes, labelClasses: archive.labelClasses)
      if strictCounts && records != member.records {
        throw OutputError("\(path): \(records) records, the official archive has \(member.records) "
                          + "(\(member.records * archive.recordBytes) bytes)")
      }
      if member.isTest { test += records } else { train += records }
    }
    return (train, test)
  }

  /// The number of records in a CIFAR binary file, checking its length and every label.
  static func checkRecords(_ path: String, recordBytes: Int, labelClasses: [Int]) throws -> Int {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
      throw OutputError(errno == ENOENT ? "\(path): missing from the archive" : "open(\(path)): \(String(cString: strerror(errno)))")
    }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw OutputError.system("fstat", path) }
    let size = Int(info.st_size)
    guard (info.st_mode & S_IFMT) == S_IFREG, size > 0, size % recordBytes == 0 else {
      throw OutputError("\(path): \(size) bytes is not a whole number of \(recordBytes)-byte records")
    }
    let perChunk = 4096
    var chunk = [UInt8](repeating: 0, count: perChunk * recordBytes)
    var record = 0
    while record < size / recordBytes {
      let want = min(perChunk, size / recordBytes - record) * recordBytes
      var filled = 0
      while filled < want {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress! + filled, want - filled) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { throw OutputError("\(path): read failed or the file shrank") }
        filled += count
      }
      for r in 0..<(want / recordBytes) {
        for (i, classes) in labelClasses.enumerated() where Int(chunk[r * recordBytes + i]) >= classes {
          throw OutputError("\(path): label \(chunk[r * recordBytes + i]) out of range 0..<\(classes) at record \(record + r)")
        }
      }
      record += want / recordBytes
    }
    return record
  }

  // MARK: Tools

  func findExecutable(_ name: String) -> String? {
    if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
    for directory in (environment["PATH"] ?? "").split(separator: ":") where !directory.isEmpty {
      let candidate = "\(directory)/\(name)"
      if access(candidate, X_OK) == 0 { return candidate }
    }
    return nil
  }

  /// Runs a tool to its end (FetchInterruption stops it on SIGINT/SIGTERM) and returns its
  /// stdout; a failure throws `failure` with what it wrote to stderr. `showStderr`: let its
  /// stderr through (curl's progress meter and messages).
  @discardableResult
  func runTool(_ name: String, _ arguments: [String], failure: String, stdin: FileHandle? = nil,
               showStderr: Bool = false) throws -> String {
    guard let executable = findExecutable(name) else {
      throw OutputError("\(name) was not found on PATH; it is needed to fetch datasets")
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.environment = environment
    let output = Pipe(), errors = Pipe()
    process.standardOutput = output
    if let stdin { process.standardInput = stdin } else { process.standardInput = FileHandle.nullDevice }
    if !showStderr { process.standardError = errors }
    try FetchInterruption.shared.run(process)
    // Both pipes are drained before waiting, so that neither can fill and block the tool.
    let errorText = Locked("")
    let drain = DispatchGroup()
    if !showStderr {
      DispatchQueue.global().async(group: drain) {
        let data = errors.fileHandleForReading.readDataToEndOfFile()
        errorText.set(String(decoding: data, as: UTF8.self))
      }
    }
    let data = output.fileHandleForReading.readDataToEndOfFile()
    drain.wait()
    process.waitUntilExit()
    FetchInterruption.shared.finished(process)
    guard process.terminationReason == .exit, process.terminationStatus == 0 else {
      let said = errorText.value.trimmingCharacters(in: .whitespacesAndNewlines)
      let how = process.terminationReason == .exit ? "exit status \(process.terminationStatus)"
                                                  : "signal \(process.terminationStatus)"
      throw OutputError("\(failure) (\(name): \(how))" + (said.isEmpty ? "" : ":\n" + said))
    }
    return String(decoding: data, as: UTF8.self)
  }

  private func note(_ text: String) {
    if verbose { printError("blockscope: \(text)") }
  }

  static func absolutePath(_ path: String) -> String {
    let expanded = (path as NSString).expandingTildeInPath
    let full = expanded.hasPrefix("/") ? expanded : FileManager.default.currentDirectoryPath + "/" + expanded
    return (full as NSString).standardizingPath
  }
}

/// A value shared between threads.
final class Locked<Value>: @unchecked Sendable {
  private let lock = NSLock()
  private var stored: Value
  init(_ value: Value) { stored = value }
  var value: Value { lock.withLock { stored } }
  func set(_ value: Value) { lock.withLock { stored = value } }
}

/// SIGINT, SIGTERM and SIGHUP during a fetch: stop the running tool, remove the work
/// directory, say so, and exit 128 + the signal. The final renames run under the same lock,
/// so an interruption either precedes them (nothing installed) or follows them (installed).
final class FetchInterruption: @unchecked Sendable {
  static let shared = FetchInterruption()

  private let lock = NSLock()
  private var work: String?
  private var target = ""
  private var createdParents: [String] = []
  private var running: Process?
  private var committed = false
  private var sources: [DispatchSourceSignal] = []

  /// `createdParents`: directories the fetch created for the target, deepest first; removed
  /// (when empty) on an interruption before the target is installed.
  func begin(work: String, target: String, createdParents: [String]) {
    lock.withLock {
      self.work = work
      self.target = target
      self.createdParents = createdParents
      committed = false
      guard sources.isEmpty else { return }
      for signalNumber in [SIGINT, SIGTERM, SIGHUP] {
        signal(signalNumber, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
        source.setEventHandler { [unowned self] in self.interrupted(signalNumber) }
        source.resume()
        sources.append(source)
      }
    }
  }

  func end() {
    lock.withLock { work = nil }
  }

  /// Starts `process`, to be stopped if a signal comes.
  func run(_ process: Process) throws {
    try lock.withLock {
      try process.run()
      running = process
    }
  }

  func finished(_ process: Process) {
    lock.withLock { if running === process { running = nil } }
  }

  func commit(_ body: () throws -> Void) throws {
    try lock.withLock {
      try body()
      committed = true
    }
  }

  private func interrupted(_ signalNumber: Int32) {
    lock.lock()
    if let running, running.isRunning { running.terminate() }
    if let work {
      try? FileManager.default.removeItem(atPath: work)
      if !committed { for directory in createdParents { rmdir(directory) } }
    }
    let message = work == nil ? "interrupted"
      : committed ? "interrupted after \(target) was installed"
      : "interrupted; nothing was installed in \(target)"
    printError("blockscope: \(message)")
    exit(128 + signalNumber)
  }
}

/// The download without curl: one URLSession download task, waited for.
enum URLSessionDownload {
  static func fetch(_ text: String, to path: String) throws {
    guard let url = URL(string: text) else { throw OutputError("--from \(text): not a URL") }
    let result = Locked<Result<Void, OutputError>>(.failure(OutputError("downloading \(text): no answer")))
    let done = DispatchSemaphore(value: 0)
    let session = URLSession(configuration: .ephemeral)
    let task = session.downloadTask(with: url) { location, response, error in
      defer { done.signal() }
      if let error {
        result.set(.failure(OutputError("downloading \(text) failed: \(error.localizedDescription)")))
        return
      }
      if let http = response as? HTTPURLResponse, !(200..<300).contains(http.statusCode) {
        result.set(.failure(OutputError("downloading \(text) failed: HTTP \(http.statusCode)")))
        return
      }
      guard let location else {
        result.set(.failure(OutputError("downloading \(text) failed: no file")))
        return
      }
      // The downloaded file is deleted when this handler returns.
      do {
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.moveItem(atPath: location.path, toPath: path)
        result.set(.success(()))
      } catch {
        result.set(.failure(OutputError("downloading \(text): cannot keep the file: \(error.localizedDescription)")))
      }
    }
    task.resume()
    done.wait()
    session.finishTasksAndInvalidate()
    try result.value.get()
  }
}
