import Analysis
import Engine
import Foundation
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// What a valid checkpoint says, without its tensors.
struct ModelHeader: Sendable {
  var config: ResNetConfig
  var training: TrainConfig
  var data: DataSpec
  var history: [EpochRecord]
  var epochsCompleted: Int
  var metadata: [String: String]
  /// `Fingerprint.of(network)`: the model's identity in the Gram and output caches.
  var fingerprint: UInt64
  /// Trainable parameters.
  var parameterCount: Int

  init(checkpoint: Checkpoint, network: ResNet) {
    config = checkpoint.model
    training = checkpoint.training
    data = checkpoint.data
    history = checkpoint.history
    epochsCompleted = checkpoint.epochsCompleted
    metadata = checkpoint.metadata
    fingerprint = Fingerprint.of(network)
    parameterCount = network.parameters.reduce(0) { $0 + $1.value.count }
  }

  /// The training job that wrote the checkpoint, if a daemon job did.
  var job: UInt64? { metadata["job"].flatMap { UInt64($0) } }
}

/// A stored model's file as last examined.
enum ModelFileStatus: Sendable {
  case valid(ModelHeader)
  /// The file fails its checks (CORRUPT) or cannot be read (IO_ERROR): the error requests get.
  case unusable(WireError)
}

/// A network loaded from the store. `ResNet.infer` uses per-network buffers, so every use goes
/// through `exclusive`.
final class LoadedModel: @unchecked Sendable {
  let name: String
  let stamp: FileStamp
  let header: ModelHeader
  let network: ResNet
  private let lock = NSLock()

  init(name: String, stamp: FileStamp, header: ModelHeader, network: ResNet) {
    self.name = name
    self.stamp = stamp
    self.header = header
    self.network = network
  }

  var analysisModel: AnalysisModel {
    AnalysisModel(name: name, network: network, fingerprint: header.fingerprint)
  }

  func exclusive<R>(_ body: () throws -> R) rethrows -> R {
    lock.lock()
    defer { lock.unlock() }
    return try body()
  }
}

/// `STORE/models/NAME.bsckpt`: one Engine checkpoint per model, saved atomically. Facts about a
/// file are cached by its stamp (inode, size, mtime), so a listing re-reads only files that
/// changed, and a retrained model (a new file renamed over the old) is reloaded.
final class ModelStore: @unchecked Sendable {
  static let suffix = ".bsckpt"

  let directory: String
  private let capacity: Int
  private let lock = NSLock()
  private var catalog: [String: (stamp: FileStamp, status: ModelFileStatus)] = [:]
  /// Most recently used last.
  private var loaded: [LoadedModel] = []

  init(directory: String, loadedModels: Int) throws(WireError) {
    self.directory = directory
    capacity = max(1, loadedModels)
    try makeDirectory(directory)
    removeStaleTemporaries(in: directory)
  }

  func path(_ name: String) -> String { directory + "/" + name + Self.suffix }

  /// INVALID_ARGUMENT naming `key` unless `[A-Za-z0-9._-]{1,64}`, not starting with '.'.
  static func validateName(_ name: String, key: String = "model") throws(WireError) {
    guard ModelRequest.isValidName(name) else {
      throw invalid(key, "\"\(name)\" is not a model name ([A-Za-z0-9._-]{1,64}, not starting with '.')")
    }
  }

  /// The stored models' names, sorted (files `NAME.bsckpt` with a valid name).
  func names() throws(WireError) -> [String] {
    let entries: [String]
    do {
      entries = try FileManager.default.contentsOfDirectory(atPath: directory)
    } catch {
      throw WireError(.ioError, "opendir(\(directory)) failed: \(error.localizedDescription)")
    }
    return entries.compactMap { file -> String? in
      guard file.hasSuffix(Self.suffix) else { return nil }
      let name = String(file.dropLast(Self.suffix.count))
      return ModelRequest.isValidName(name) ? name : nil
    }.sorted()
  }

  /// The file's stamp and status; nil when there is no such file. Reads (and fully verifies)
  /// the file only when it changed since it was last examined.
  func status(of name: String) throws(WireError) -> (stamp: FileStamp, status: ModelFileStatus)? {
    guard let found = try examine(name, keepNetwork: false) else { return nil }
    return (found.stamp, found.status)
  }

  /// A valid model's header; NOT_FOUND, CORRUPT or IO_ERROR otherwise.
  func header(of name: String) throws(WireError) -> (stamp: FileStamp, header: ModelHeader) {
    guard let found = try status(of: name) else { throw missing(name) }
    switch found.status {
    case .valid(let header): return (found.stamp, header)
    case .unusable(let error): throw error
    }
  }

  /// The model's network, loaded (or from memory when the file is unchanged).
  func load(_ name: String) throws(WireError) -> LoadedModel {
    try Self.validateName(name)
    for _ in 0..<3 {
      guard let stamp = try FileStamp.of(path(name)) else { throw missing(name) }
      if let model = lock.withLock({ () -> LoadedModel? in
        guard let i = loaded.firstIndex(where: { $0.name == name && $0.stamp == stamp }) else { return nil }
        let model = loaded.remove(at: i)
        loaded.append(model)
        return model
      }) {
        return model
      }
      guard let found = try examine(name, keepNetwork: true) else { throw missing(name) }
      if case .unusable(let error) = found.status { throw error }
      guard let model = found.model else { continue }   // replaced while it was read: look again
      lock.withLock {
        loaded.removeAll { $0.name == name }
        loaded.append(model)
        if loaded.count > capacity { loaded.removeFirst(loaded.count - capacity) }
      }
      return model
    }
    throw WireError(.ioError, "\(path(name)) keeps changing while it is read")
  }

  /// Saves atomically (Engine's temp + fsync + rename + directory fsync) and records the new
  /// file's header, so the next listing need not re-read it. Throws `CheckpointError`.
  func save(_ checkpoint: Checkpoint, network: ResNet, name: String) throws {
    let path = self.path(name)
    try checkpoint.save(to: path)
    if let stamp = try? FileStamp.of(path) {
      let header = ModelHeader(checkpoint: checkpoint, network: network)
      lock.withLock { catalog[name] = (stamp, .valid(header)) }
    }
  }

  /// Removes the file; returns its size and the fingerprints it was known under (for the
  /// caches).
  func remove(_ name: String) throws(WireError) -> (bytes: Int, fingerprints: Set<UInt64>) {
    let path = self.path(name)
    guard let stamp = try FileStamp.of(path) else { throw missing(name) }
    var fingerprints = Set<UInt64>()
    if case .valid(let header)? = try? status(of: name)?.status { fingerprints.insert(header.fingerprint) }
    guard unlink(path) == 0 else { throw fileError("unlink", path, errno, "the model was not deleted") }
    syncDirectory(directory)
    lock.withLock {
      if case .valid(let header)? = catalog[name]?.status { fingerprints.insert(header.fingerprint) }
      catalog[name] = nil
      for model in loaded where model.name == name { fingerprints.insert(model.header.fingerprint) }
      loaded.removeAll { $0.name == name }
    }
    return (stamp.size, fingerprints)
  }

  private func missing(_ name: String) -> WireError {
    notFound("no model named \"\(name)\" (no file \(path(name)))")
  }

  /// Stat, then the cached status for that stamp or a full read. `model`: the network, when
  /// asked for and the file did not change while it was read.
  private func examine(_ name: String, keepNetwork: Bool) throws(WireError)
    -> (stamp: FileStamp, status: ModelFileStatus, model: LoadedModel?)? {
    try Self.validateName(name)
    let path = self.path(name)
    guard let stamp = try FileStamp.of(path) else {
      lock.withLock { catalog[name] = nil }
      return nil
    }
    if let known = lock.withLock({ catalog[name] }), known.stamp == stamp {
      // Known facts about this very file: a listing needs no read, nor does a request on a
      // file already known to be corrupt.
      if !keepNetwork { return (stamp, known.status, nil) }
      if case .unusable = known.status { return (stamp, known.status, nil) }
    }
    let status: ModelFileStatus
    var model: LoadedModel?
    do {
      let checkpoint = try Checkpoint.load(from: path)
      let network = try ModelState.model(from: checkpoint, source: path)
      let header = ModelHeader(checkpoint: checkpoint, network: network)
      status = .valid(header)
      if keepNetwork { model = LoadedModel(name: name, stamp: stamp, header: header, network: network) }
    } catch let e as CheckpointError {
      if case .io(_, _, _, let code) = e.problem, code == ENOENT { return nil }
      status = .unusable(checkpointWireError(e))
    } catch let e as ModelState.Mismatch {
      status = .unusable(WireError(.corrupt, e.description))
    } catch let e as ResNetConfig.Invalid {
      status = .unusable(WireError(.corrupt, "checkpoint \(path): its model configuration is invalid: \(e)"))
    } catch {
      status = .unusable(WireError(.corrupt, "checkpoint \(path): \(error)"))
    }
    // Only facts about an unchanged file are kept.
    guard (try? FileStamp.of(path)) == stamp else { return (stamp, status, nil) }
    if case .unusable(let e) = status, e.code == .ioError {
      return (stamp, status, model)   // may be transient (permissions, EIO): not cached
    }
    lock.withLock { catalog[name] = (stamp, status) }
    return (stamp, status, model)
  }
}

// MARK: Store directories

/// mkdir -p, mode 0700 for what it creates.
func makeDirectory(_ path: String) throws(WireError) {
  var isDirectory: ObjCBool = false
  if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
    guard isDirectory.boolValue else { throw fileError("mkdir", path, EEXIST, "a file is in the way") }
    return
  }
  do {
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true,
                                            attributes: [.posixPermissions: 0o700])
  } catch {
    let code = ((error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError)?.code
    throw fileError("mkdir", path, Int32(code ?? Int(EIO)))
  }
}

/// fsync of a directory (after an unlink), best effort.
func syncDirectory(_ path: String) {
  let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
  guard fd >= 0 else { return }
  _ = fsync(fd)
  _ = close(fd)
}

/// Temporary files `.NAME.tmp-PID-HEX` of atomic saves whose process is gone (a save killed
/// between open and rename).
func removeStaleTemporaries(in directory: String) {
  guard let entries = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
  for file in entries where file.hasPrefix(".") {
    guard let marker = file.range(of: ".tmp-", options: .backwards) else { continue }
    let pidText = file[marker.upperBound...].prefix { $0 != "-" }
    guard let pid = Int32(pidText), pid != getpid() else { continue }
    if kill(pid, 0) == -1 && errno == ESRCH {
      _ = unlink(directory + "/" + file)
    }
  }
}
