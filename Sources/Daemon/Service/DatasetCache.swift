import Engine
import Foundation
import Wire

/// Datasets, each loaded once (on first use) and kept: training jobs and analyses share them.
/// A failed load is not remembered (the files may appear later).
final class DatasetCache: @unchecked Sendable {
  /// DATASETS lists these.
  static let listed = ["fashion-mnist", "cifar10", "cifar100", "synthetic"]

  private let paths: [String: String]
  private let syntheticTrain: Int
  private let syntheticTest: Int
  private let lock = NSLock()
  private var loaded: [String: DatasetSplits] = [:]
  /// One lock per dataset name, so that two requests do not load the same files twice.
  private var loading: [String: NSLock] = [:]

  init(options: ServiceOptions) {
    var paths: [String: String] = [:]
    for (name, path) in options.datasetPaths {
      paths[DatasetLoader.canonicalName(name) ?? name] = path
    }
    self.paths = paths
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
    if let path = paths[name] { return path }
    if name == "cifar100-coarse", let path = paths["cifar100"] { return path }
    if name == "fashion-mnist" { return FashionMNIST.defaultDirectory }
    return nil
  }

  /// The whole dataset (both splits). `recorded`: the directory a checkpoint names, used when
  /// the daemon has none for this dataset. DATA_UNAVAILABLE when its files cannot be read.
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
      do {
        splits = try DatasetLoader.load(DataSpec(dataset: name, path: path(of: name) ?? recorded))
      } catch let e as DatasetError {
        if case .pathRequired = e {
          throw WireError(.dataUnavailable, "\(name): no data directory configured for it "
                          + "(blockscoped's dataset paths)")
        }
        throw WireError(.dataUnavailable, e.description)
      } catch {
        throw WireError(.dataUnavailable, "\(name): \(error)")
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
      let path = self.path(of: name) ?? ""
      if let splits = lock.withLock({ loaded[name] }) {
        return entry(name, path: path, splits)
      }
      switch name {
      case "cifar10", "cifar100":
        return probeCIFAR(name, path: path)
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

  private func probeCIFAR(_ name: String, path: String) -> DatasetsResponse.Dataset {
    guard !path.isEmpty else {
      return unavailable(name, path: path, reason: "no data directory configured for \(name)")
    }
    let ten = name == "cifar10"
    let record = ten ? 3073 : 3074
    let sub = ten ? CIFAR10.subdirectory : CIFAR100.subdirectory
    let trainFiles = ten ? CIFAR10.trainFiles : [CIFAR100.trainFile]
    let testFiles = ten ? [CIFAR10.testFile] : [CIFAR100.testFile]
    let fm = FileManager.default
    let dir = [path, path + "/" + sub].first { fm.fileExists(atPath: $0 + "/" + trainFiles[0]) }
    guard let dir else {
      return unavailable(name, path: path, reason: "\(path)/\(trainFiles[0]): missing "
                         + "(nor \(path)/\(sub)/\(trainFiles[0]))")
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
      return unavailable(name, path: path, reason: e.message)
    }
  }
}
