// SPEC.md section 7: STATUS (0x0002), DATASETS (0x0003), SHUTDOWN (0x0013): the daemon itself.

/// `STATUS`: doc `{}`.
public typealias StatusRequest = EmptyDoc
/// `DATASETS`: doc `{}`.
public typealias DatasetsRequest = EmptyDoc
/// `SHUTDOWN`: doc `{}`.
public typealias ShutdownRequest = EmptyDoc

/// `STATUS_OK`.
public struct StatusResponse: Codable, Hashable, Sendable {
  /// The Gram cache.
  public struct Cache: Codable, Hashable, Sendable {
    public var bytes: Int
    public var budgetBytes: Int
    public var entries: Int
    public var hits: Int
    public var misses: Int
    public var evictions: Int

    public init(bytes: Int, budgetBytes: Int, entries: Int, hits: Int, misses: Int, evictions: Int) {
      self.bytes = bytes
      self.budgetBytes = budgetBytes
      self.entries = entries
      self.hits = hits
      self.misses = misses
      self.evictions = evictions
    }

    enum CodingKeys: String, CodingKey {
      case bytes, budgetBytes = "budget_bytes", entries, hits, misses, evictions
    }

    public init(from decoder: Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      self.init(bytes: try c.value(.bytes), budgetBytes: try c.value(.budgetBytes),
                entries: try c.value(.entries), hits: try c.value(.hits),
                misses: try c.value(.misses), evictions: try c.value(.evictions))
    }
  }

  /// Job counts by state.
  public struct Jobs: Codable, Hashable, Sendable {
    public var running: Int
    public var queued: Int
    public var interrupted: Int

    public init(running: Int, queued: Int, interrupted: Int) {
      self.running = running
      self.queued = queued
      self.interrupted = interrupted
    }

    enum CodingKeys: String, CodingKey { case running, queued, interrupted }

    public init(from decoder: Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      self.init(running: try c.value(.running), queued: try c.value(.queued),
                interrupted: try c.value(.interrupted))
    }
  }

  public var uptimeSeconds: Double
  public var pid: Int
  public var rssBytes: Int
  public var peakRssBytes: Int
  /// The store's path.
  public var store: String
  /// Stored models.
  public var models: Int
  public var cache: Cache
  public var jobs: Jobs
  public var connections: Int
  public var workers: Int

  public init(uptimeSeconds: Double, pid: Int, rssBytes: Int, peakRssBytes: Int, store: String,
              models: Int, cache: Cache, jobs: Jobs, connections: Int, workers: Int) {
    self.uptimeSeconds = uptimeSeconds
    self.pid = pid
    self.rssBytes = rssBytes
    self.peakRssBytes = peakRssBytes
    self.store = store
    self.models = models
    self.cache = cache
    self.jobs = jobs
    self.connections = connections
    self.workers = workers
  }

  enum CodingKeys: String, CodingKey {
    case uptimeSeconds = "uptime_seconds", pid, rssBytes = "rss_bytes",
         peakRssBytes = "peak_rss_bytes", store, models, cache, jobs, connections, workers
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(uptimeSeconds: try c.value(.uptimeSeconds), pid: try c.value(.pid),
              rssBytes: try c.value(.rssBytes), peakRssBytes: try c.value(.peakRssBytes),
              store: try c.value(.store), models: try c.value(.models), cache: try c.value(.cache),
              jobs: try c.value(.jobs), connections: try c.value(.connections),
              workers: try c.value(.workers))
  }
}

/// `DATASETS_OK`.
public struct DatasetsResponse: Codable, Hashable, Sendable {
  /// One dataset the daemon knows: `fashion-mnist`, `cifar10`, `cifar100`, `synthetic`.
  public struct Dataset: Codable, Hashable, Sendable {
    public var name: String
    public var available: Bool
    public var path: String
    /// Why the dataset is not available.
    public var reason: String?
    public var trainCount: Int
    public var testCount: Int
    public var classes: Int
    public var channels: Int
    public var height: Int
    public var width: Int

    public init(name: String, available: Bool, path: String, reason: String? = nil,
                trainCount: Int, testCount: Int, classes: Int, channels: Int, height: Int,
                width: Int) {
      self.name = name
      self.available = available
      self.path = path
      self.reason = reason
      self.trainCount = trainCount
      self.testCount = testCount
      self.classes = classes
      self.channels = channels
      self.height = height
      self.width = width
    }

    enum CodingKeys: String, CodingKey {
      case name, available, path, reason, trainCount = "train_count", testCount = "test_count",
           classes, channels, height, width
    }

    public init(from decoder: Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      self.init(name: try c.value(.name), available: try c.value(.available),
                path: try c.value(.path), reason: try c.ifPresent(.reason),
                trainCount: try c.value(.trainCount), testCount: try c.value(.testCount),
                classes: try c.value(.classes), channels: try c.value(.channels),
                height: try c.value(.height), width: try c.value(.width))
    }
  }

  public var datasets: [Dataset]

  public init(datasets: [Dataset]) { self.datasets = datasets }

  enum CodingKeys: String, CodingKey { case datasets }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(datasets: try c.value(.datasets))
  }
}

/// `SHUTDOWN_OK`, sent before the daemon stops.
public struct ShutdownResponse: Codable, Hashable, Sendable {
  /// Running training jobs that checkpointed and became `interrupted`.
  public var jobsCheckpointed: Int

  public init(jobsCheckpointed: Int) { self.jobsCheckpointed = jobsCheckpointed }

  enum CodingKeys: String, CodingKey { case jobsCheckpointed = "jobs_checkpointed" }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(jobsCheckpointed: try c.value(.jobsCheckpointed))
  }
}
