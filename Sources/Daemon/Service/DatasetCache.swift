import Engine
import Foundation
import Wire

/// Datasets, each loaded once (on first use) and kept: training jobs and analyses share them.
/// A failed load is not remembered, and where to read a dataset from is decided on every use
/// (`DatasetLocations.directory`): files fetched or copied while the daemon runs are found.
/// DATA_UNAVAILABLE messages say how to get the dataset.
final class DatasetCache: @unchecked Sendable {
  /// DATASETS lists these.
  static let listed = ["fashion-mnist", "cifar10", "cifar100", "synthetic"]

  private let locations: DatasetLocations
  private let syntheticTrain: Int
  private let syntheticTest: Int
  private let lock = NSLock()
  private var loaded: [String: DatasetSplits] = [:]
  /// One lock per dataset name, so that two requests do not load the same files twice.
  private var loading: [String: NSLock] = [:]

  init(options: ServiceOptions) {
    var locations = options.datasetLocations
    for (name, path) in options.datasetPaths {
      let canonical = DatasetLoader.canonicalName(name).map(DatasetLocations.filesName) ?? name
      locations.explicit[canonical] = DatasetLocations.Location(path, .commandLine)
    }
    self.locations = locations
    syntheticTrain = max(1, options.syntheticTrainCount)
    syntheticTest = max(1, options.syntheticTestCount)
  }

  /// The canonical name, or INVALID_ARGUMENT naming `key`.
  func canonical(_ name: String, key: String) throws(WireError) -> String {
    guard let canonical = DatasetLoader.canonicalName(name) else {
      throw invalid(key, "unknown dataset \"\(name)\" (known: \(Self.listed.joined(separator: ", ")))")
    }
    return canonical
  }

  /// The directory the daemon reads a dataset from, if it has one.
  func path(of name: String) -> String? {
    location(of: name)?.path
  }

  /// Where `name` is read from now; `recorded`: a checkpoint's directory, the last resort.
  func location(of name: String, recorded: String? = nil) -> DatasetLocations.Location? {
    guard name != "synthetic" else { return nil }
    return locations.directory(for: name, recorded: recorded, exists: Self.isDirectory)
  }

  static func isDirectory(_ path: String) -> Bool {
    var isDirectory: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
  }

  /// DATA_UNAVAILABLE's text: the problem at `location` (if any) and how to get the dataset.
  /// A fallback directory that does not exist (Debian's Fashion-MNIST) is no problem to
  /// report: the dataset is simply not configured.
  func unavailableMessage(_ name: String, location: DatasetLocations.Location?, problem: String?) -> String {
    if let location, location.source == .system, !Self.isDirectory(location.path) {
      return locations.unavailableMessage(name, location: nil, problem: nil)
    }
    return locations.unavailableMessage(name, location: location, problem: problem)
  }

  /// The whole dataset (both splits). `recorded`: the directory a checkpoint names, used when
  /// the daemon has none for this dataset. DATA_UNAVAILABLE, saying how to get the dataset,
  /// when its files cannot be read.
  func splits(_ name: String, recorded: String? = nil) throws(WireError) -> DatasetSplits {
    let name = try canonical(name, key: "dataset")
    let gate: NSLock = lock.withLock {
      if let gate = loading[name] { return gate }
      let gate = NSLock()
      loading[name] = gate
      return gate
    }
    gate.lock()
    defer { gate.unlock() }
    if let splits = lock.withLock({ loaded[name] }) { return splits }
    let splits: DatasetSplits
    if name == "synthetic" {
      splits = DatasetSplits.synthetic(trainCount: syntheticTrain, testCount: syntheticTest, seed: 0)
    } else {
      guard let location = location(of: name, recorded: recorded) else {
        throw WireError(.dataUnavailable, unavailableMessage(name, location: nil, problem: nil))
      }
      do {
        splits = try DatasetLoader.load(DataSpec(dataset: name, path: location.path))
      } catch let e as DatasetError {
        throw WireError(.dataUnavailable, unavailableMessage(name, location: location, problem: e.description))
      } catch {
        throw WireError(.dataUnavailable, unavailableMessage(name, location: location, problem: "\(name): \(error)"))
      }
    }
    lock.withLock { loaded[name] = splits }
    return splits
  }

  /// The training set a recipe selects: the first or a stratified fraction (subset seed 0, as
  /// `DatasetLoader.load` does, so the spec alone determines it).
  static func trainingSubset(_ train: Dataset, fraction: Double, stratified: Bool) throws -> Dataset {
    if fraction >= 1 { return train }
    return stratified ? try train.stratifiedFraction(fraction, seed: 0)
                      : try train.firstFraction(fraction)
  }

  /// DATASETS: loaded datasets with their counts; CIFAR directories are probed by file sizes
  /// (so listing does not read 180 MB), Fashion-MNIST and synthetic are loaded.
  func list() -> [DatasetsResponse.Dataset] {
    Self.listed.map { name in
      let location = self.location(of: name)
      // Not configured: the default directory, where it would be read from.
      let path = location?.path ?? locations.defaultDirectory(for: name) ?? ""
      if let splits = lock.withLock({ loaded[name] }) {
        return entry(name, path: path, splits)
      }
      switch name {
      case "cifar10", "cifar100":
        guard let location else {
          return unavailable(name, path: path, reason: unavailableMessage(name, location: nil, problem: nil))
        }
        return probeCIFAR(name, location: location)
      default:
        do {
          return entry(name, path: path, try splits(name))
        } catch {
          return unavailable(name, path: path, reason: wireError(error).message)
        }
      }
    }
  }

  private func entry(_ name: String, path: String, _ s: DatasetSplits) -> DatasetsResponse.Dataset {
    DatasetsResponse.Dataset(name: name, available: true, path: name == "synthetic" ? "" : path,
                             trainCount: s.train.count, testCount: s.test.count,
                             classes: s.train.numClasses, channels: s.train.channels,
                             height: s.train.height, width: s.train.width)
  }

  private func unavailable(_ name: String, path: String, reason: String) -> DatasetsResponse.Dataset {
    let classes = name == "cifar100" ? 100 : 10
    let (side, channels) = name == "fashion-mnist" ? (28, 1) : (32, 3)
    return DatasetsResponse.Dataset(name: name, available: false, path: path, reason: reason,
                                    trainCount: 0, testCount: 0, classes: classes,
                                    channels: channels, height: side, width: side)
  }

  private func probeCIFAR(_ name: String, location: DatasetLocations.Location) -> DatasetsResponse.Dataset {
    let path = location.path
    func unavailable(_ problem: String) -> DatasetsResponse.Dataset {
      self.unavailable(name, path: path, reason: unavailableMessage(name, location: location, problem: problem))
    }
    let ten = name == "cifar10"
    let record = ten ? 3073 : 3074
    let sub = ten ? CIFAR10.subdirectory : CIFAR100.subdirectory
    let trainFiles = ten ? CIFAR10.trainFiles : [CIFAR100.trainFile]
    let testFiles = ten ? [CIFAR10.testFile] : [CIFAR100.testFile]
    let fm = FileManager.default
    let dir = [path, path + "/" + sub].first { fm.fileExists(atPath: $0 + "/" + trainFiles[0]) }
    guard let dir else {
      if !Self.isDirectory(path) {
        return unavailable(fm.fileExists(atPath: path) ? "\(path): not a directory"
                                                       : "\(path): missing (the data directory does not exist)")
      }
      return unavailable("\(path)/\(trainFiles[0]): missing (nor \(path)/\(sub)/\(trainFiles[0]))")
    }
    func count(_ files: [String]) -> Result<Int, WireError> {
      var total = 0
      for f in files {
        let p = dir + "/" + f
        guard let stamp = try? FileStamp.of(p) else {
          return .failure(WireError(.dataUnavailable, "\(p): missing"))
        }
        guard stamp.size > 0, stamp.size % record == 0 else {
          return .failure(WireError(.dataUnavailable,
                                    "\(p): \(stamp.size) bytes is not a multiple of the \(record)-byte record"))
        }
        total += stamp.size / record
      }
      return .success(total)
    }
    switch (count(trainFiles), count(testFiles)) {
    case (.success(let train), .success(let test)):
      return DatasetsResponse.Dataset(name: name, available: true, path: path, trainCount: train,
                                      testCount: test, classes: ten ? 10 : 100, channels: 3,
                                      height: 32, width: 32)
    case (.failure(let e), _), (_, .failure(let e)):
      return unavailable(e.message)
    }
  }
}
