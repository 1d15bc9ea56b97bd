import Engine

/// How a `DaemonService` is set up (blockscoped's command line fills it).
public struct ServiceOptions: Sendable {
  /// The store: `models/NAME.bsckpt`, `jobs/ID.json`, `lock`. Created if missing.
  public var storeDirectory: String
  /// Budget of the one Gram cache shared by every HEATMAP.
  public var cacheBytes: Int
  /// Where datasets are read from: the directories blockscoped was told (--data,
  /// BLOCKSCOPE_DATA, the config file) and the default directory; see `DatasetLocations`.
  /// Empty by default: no default directory, Fashion-MNIST from
  /// `FashionMNIST.defaultDirectory` (/usr/share/datasets/fashion-mnist).
  public var datasetLocations: DatasetLocations
  /// Dataset directories by name (`"cifar10": DIR`) that win over `datasetLocations` (as
  /// --data would); names as `DatasetLoader.canonicalName` reads them; `cifar100-coarse` uses
  /// `cifar100`'s.
  public var datasetPaths: [String: String]
  /// Kernel threads of a training job whose TRAIN gave no `threads`; nil: all online CPUs
  /// (BLOCKSCOPE_THREADS). Every job and request runs on a kernel context of its own, so one
  /// never changes another's threads or numbers.
  public var trainingThreads: Int?
  /// Kernel threads of each analysis request (HEATMAP, PC, PROBE, ...); nil: all online CPUs
  /// (BLOCKSCOPE_THREADS).
  public var analysisThreads: Int?
  /// Training jobs run at the same time (1: one after another). Above 1, a job without
  /// `threads` gets the online CPUs divided by this (at least 1).
  public var parallelJobs: Int
  /// Loaded networks kept in memory, least recently used dropped first.
  public var loadedModels: Int
  /// Minimum seconds between two PROGRESS events of one request or watcher (0: every event).
  /// `epoch`/`evaluate` events and a phase's last event are always sent.
  public var progressInterval: Double
  /// Byte budget of the cached softmax outputs of COMPARE_OUTPUTS.
  public var outputCacheBytes: Int
  /// Size of the `synthetic` dataset (the Engine tool's: 5000 / 1000).
  public var syntheticTrainCount: Int
  public var syntheticTestCount: Int
  /// The `blockscope-engine` that a study's Slurm array tasks run; nil: the one beside the
  /// daemon's executable.
  public var engineExecutable: String?

  public init(storeDirectory: String, cacheBytes: Int = 2 << 30,
              datasetPaths: [String: String] = [:], datasetLocations: DatasetLocations = DatasetLocations(),
              trainingThreads: Int? = nil) {
    self.storeDirectory = storeDirectory
    self.cacheBytes = cacheBytes
    self.datasetPaths = datasetPaths
    self.datasetLocations = datasetLocations
    self.trainingThreads = trainingThreads
    self.parallelJobs = 1
    self.loadedModels = 4
    self.progressInterval = 0.1
    self.outputCacheBytes = 256 << 20
    self.syntheticTrainCount = DatasetLoader.syntheticTrainCount
    self.syntheticTestCount = DatasetLoader.syntheticTestCount
  }
}

/// Why a `DaemonService` could not start.
public struct ServiceStartError: Error, CustomStringConvertible, Sendable {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}
