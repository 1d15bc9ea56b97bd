import Analysis
import Engine
import Foundation
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// Answers every request of protocol v1 (SPEC.md section 7) but HELLO (the transport's) with
/// Engine and Analysis: the model store, training jobs, one shared Gram cache, cached datasets
/// and model outputs. `handle` runs on the transport's worker threads; training runs on its own
/// thread, one job at a time.
///
/// The store directory holds `models/NAME.bsckpt` (Engine checkpoints), `jobs/ID.json` (job
/// records) and `lock` (flock'ed while a service owns the store: a second daemon on the same
/// store fails to start).
public final class DaemonService: RequestService, @unchecked Sendable {
  public let options: ServiceOptions
  /// The store directory, absolute.
  public let storePath: String

  let store: ModelStore
  let datasets: DatasetCache
  let jobs: JobManager
  /// Kernel contexts of analysis requests, reused (their threads and scratch stay warm).
  let kernelContexts = KernelContextPool()
  /// Freed memory back to the system after requests and analyses (docs/RELIABILITY.md, soak).
  let memoryTrimmer = AllocatorPolicy.Trimmer()
  let grams: GramCache
  let outputs: OutputCache
  /// Foreign models and their streaming sessions (SESSION_*; their Grams go into `grams`).
  let sessions: SessionManager
  /// Set at the end of init (it needs the service).
  private(set) var studies: StudyManager!

  private let started = monotonicSeconds()
  private let activity = NSCondition()
  private var activeRequests = 0
  private var stopping = false
  private var lockDescriptor: Int32 = -1
  private let stoppingFlag = Locked(false)

  /// Opens (creating if needed) the store, takes its lock, marks jobs that were running when
  /// the last daemon stopped as interrupted, and starts the training thread.
  public init(options: ServiceOptions) throws {
    self.options = options
    var path = options.storeDirectory
    if !path.hasPrefix("/") { path = FileManager.default.currentDirectoryPath + "/" + path }
    while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
    storePath = path
    do {
      try makeDirectory(path)
    } catch {
      throw ServiceStartError("cannot create the store: \(wireError(error).message)")
    }
    let fd = try Self.lockStore(path)
    do {
      let store = try ModelStore(directory: path + "/models", loadedModels: options.loadedModels)
      let datasets = DatasetCache(options: options)
      self.store = store
      self.datasets = datasets
      grams = GramCache(budgetBytes: options.cacheBytes)
      sessions = SessionManager(cache: grams)
      outputs = OutputCache(budgetBytes: options.outputCacheBytes)
      jobs = try JobManager(directory: path + "/jobs", store: store, datasets: datasets, options: options)
    } catch {
      _ = close(fd)
      throw ServiceStartError("cannot open the store \(path): \(wireError(error).message)")
    }
    lockDescriptor = fd
    do {
      studies = try StudyManager(directory: path + "/studies", service: self)
    } catch {
      throw ServiceStartError("cannot open the studies of \(path): \(wireError(error).message)")
    }
    studies.start()
  }

  deinit {
    if lockDescriptor >= 0 { _ = close(lockDescriptor) }
  }

  private static func lockStore(_ path: String) throws -> Int32 {
    let lockPath = path + "/lock"
    let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    guard fd >= 0 else {
      throw ServiceStartError("cannot lock the store: \(fileError("open", lockPath, errno).message)")
    }
    if flock(fd, LOCK_EX | LOCK_NB) != 0 {
      let code = errno
      var buffer = [UInt8](repeating: 0, count: 32)
      let n = read(fd, &buffer, buffer.count)
      _ = close(fd)
      let holder = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self)
        .trimmingCharacters(in: .whitespacesAndNewlines) : "?"
      if code == EWOULDBLOCK {
        throw ServiceStartError("the store \(path) is in use by another blockscoped (pid \(holder))")
      }
      throw ServiceStartError("cannot lock the store: \(fileError("flock", lockPath, code).message)")
    }
    let text = Array("\(getpid())\n".utf8)
    _ = ftruncate(fd, 0)
    _ = pwrite(fd, text, text.count, 0)
    return fd
  }

  // MARK: RequestService

  public func handle(_ request: IncomingRequest, reply: ReplyChannel, transport: TransportStatus) {
    if request.type == .shutdown {
      // Not counted as in flight: shutdown() waits for those.
      let n = shutdown()
      reply.respond(.shutdownOK, ShutdownResponse(jobsCheckpointed: n))
      return
    }
    guard enter() else {
      reply.fail(WireError(.shuttingDown, "the daemon is stopping and takes no new requests"))
      return
    }
    defer {
      leave()
      memoryTrimmer.trimIfDue()
    }
    do {
      try dispatch(request, reply: reply, transport: transport)
    } catch {
      var e = wireError(error)
      if e.code == .cancelled && isStopping {
        e = WireError(.shuttingDown, "the daemon is stopping; the \(request.type.name) request was abandoned")
      }
      reply.fail(e)
    }
  }

  public func shutdown() -> Int {
    activity.lock()
    stopping = true
    activity.unlock()
    stoppingFlag.withLock { $0 = true }
    // The study runner first: it would otherwise resubmit work the job manager is stopping.
    studies.shutdown()
    let checkpointed = jobs.shutdown()
    activity.lock()
    while activeRequests > 0 { activity.wait() }
    if lockDescriptor >= 0 {
      _ = close(lockDescriptor)
      lockDescriptor = -1
    }
    activity.unlock()
    return checkpointed
  }

  private func enter() -> Bool {
    activity.lock()
    defer { activity.unlock() }
    guard !stopping else { return false }
    activeRequests += 1
    return true
  }

  private func leave() {
    activity.lock()
    activeRequests -= 1
    if activeRequests == 0 { activity.broadcast() }
    activity.unlock()
  }

  var isStopping: Bool { stoppingFlag.current }

  /// A kernel context of its own for one analysis request (options.analysisThreads threads):
  /// what else runs in the daemon changes neither its threads nor its numbers.
  func analysisContext() -> KernelContext { kernelContexts.context(threads: options.analysisThreads) }

  /// Polled by long analyses: the daemon is stopping or the client has gone.
  func shouldStop(_ reply: ReplyChannel) -> () -> Bool {
    { [stoppingFlag] in stoppingFlag.current || reply.isCancelled }
  }

  private func dispatch(_ request: IncomingRequest, reply: ReplyChannel,
                        transport: TransportStatus) throws {
    switch request.type {
    case .status: try status(request, reply, transport)
    case .datasets: try datasetsList(request, reply)
    case .train: try train(request, reply)
    case .jobs: try jobsList(request, reply)
    case .watch: try watch(request, reply)
    case .cancel: try cancel(request, reply)
    case .resume: try resume(request, reply)
    case .models: try models(request, reply)
    case .describe: try describe(request, reply)
    case .deleteModel: try deleteModel(request, reply)
    case .heatmap: try heatmap(request, reply)
    case .pc: try principalComponents(request, reply)
    case .probe: try probe(request, reply)
    case .deleteBlocks: try deleteBlocks(request, reply)
    case .compareOutputs: try compareOutputs(request, reply)
    case .cka: try cka(request, reply)
    case .export: try export(request, reply)
    case .studyCreate: try studyCreate(request, reply)
    case .studyStatus: try studyStatus(request, reply)
    case .studyList: try studyList(request, reply)
    case .studyCancel: try studyCancel(request, reply)
    case .studyResume: try studyResume(request, reply)
    case .studyDelete: try studyDelete(request, reply)
    case .studyResults: try studyResults(request, reply)
    case .studyResult: try studyResult(request, reply)
    case .studyRun: try studyRun(request, reply)
    case .sessionOpen: try sessionOpen(request, reply)
    case .sessionBatch: try sessionBatch(request, reply)
    case .sessionClose: try sessionClose(request, reply)
    case .foreignModels: try foreignModels(request, reply)
    case .hello:
      throw WireError(.internal, "HELLO reached the service; the transport answers it")
    default:
      throw WireError(.internal, "\(request.type.debugName) is not a request the service answers")
    }
  }

  /// The final frame, after checking that the doc encodes.
  func respond<T: Encodable>(_ reply: ReplyChannel, _ type: MessageType, _ doc: T,
                             tensors: [WireTensor] = []) throws(WireError) {
    try checkEncodable(doc, type)
    reply.respond(type, doc, tensors: tensors)
  }

  func progress(_ reply: ReplyChannel) -> ProgressSender {
    ProgressSender(reply, interval: options.progressInterval)
  }

  // MARK: STATUS, DATASETS

  private func status(_ request: IncomingRequest, _ reply: ReplyChannel,
                      _ transport: TransportStatus) throws {
    _ = try request.decode(EmptyDoc.self)
    let (rss, peak) = residentSetBytes()
    let c = grams.currentStats
    let doc = StatusResponse(
      uptimeSeconds: monotonicSeconds() - started, pid: Int(getpid()), rssBytes: rss,
      peakRssBytes: peak, store: storePath, models: (try? store.names().count) ?? 0,
      cache: StatusResponse.Cache(bytes: c.bytes, budgetBytes: c.budgetBytes, entries: c.entries,
                                  hits: c.hits, misses: c.misses, evictions: c.evictions),
      jobs: jobs.counts(), connections: transport.connections,
      workers: transport.workers)
    try respond(reply, .statusOK, doc)
  }

  private func datasetsList(_ request: IncomingRequest, _ reply: ReplyChannel) throws {
    _ = try request.decode(EmptyDoc.self)
    try respond(reply, .datasetsOK, DatasetsResponse(datasets: datasets.list()))
  }
}
