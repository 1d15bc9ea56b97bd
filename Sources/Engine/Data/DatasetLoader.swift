/// The one entry point from a `DataSpec` to data.
///
/// `spec.dataset` (case-insensitive; '-' and '_' ignored, so "CIFAR-10" works too):
/// - "cifar10": `CIFAR10.load(directory: spec.path)`; the path is required.
/// - "cifar100": fine labels (100 classes); "cifar100-coarse": the 20 superclasses. Path required.
/// - "fashion-mnist": `FashionMNIST.load`, from `spec.path` or `/usr/share/datasets/fashion-mnist`.
/// - "synthetic": `DatasetSplits.synthetic` with `syntheticTrainCount` / `syntheticTestCount`
///   32x32x3 images in 10 classes, seed 0; `spec.path` is ignored.
///
/// `spec.fraction` and `spec.subset` then select a subset of the training set (the test set is
/// always whole): `.first` takes `firstFraction`, `.stratified` takes `stratifiedFraction` with
/// `subsetSeed` (default 0, so the spec alone determines the subset). The fraction is validated
/// before anything is read: outside (0, 1] throws `DatasetError.badFraction`.
public enum DatasetLoader {
  public static let knownDatasets = ["cifar10", "cifar100", "cifar100-coarse", "fashion-mnist", "synthetic"]
  public static let syntheticTrainCount = 5000
  public static let syntheticTestCount = 1000

  public static func load(_ spec: DataSpec, subsetSeed: UInt64 = 0) throws -> DatasetSplits {
    try Dataset.validateFraction(spec.fraction)
    var splits = try loadWhole(spec)
    if spec.fraction < 1 {
      switch spec.subset {
      case .first: splits.train = try splits.train.firstFraction(spec.fraction)
      case .stratified: splits.train = try splits.train.stratifiedFraction(spec.fraction, seed: subsetSeed)
      }
    }
    return splits
  }

  /// The canonical name ("cifar10", ...) of a dataset name as written in a spec, if known.
  public static func canonicalName(_ name: String) -> String? {
    let key = name.lowercased().filter { $0 != "-" && $0 != "_" }
    return knownDatasets.first { $0.filter { $0 != "-" } == key }
  }

  static func loadWhole(_ spec: DataSpec) throws -> DatasetSplits {
    guard let name = canonicalName(spec.dataset) else { throw DatasetError.unknownDataset(spec.dataset) }
    func requiredPath(_ expected: String) throws -> String {
      guard let p = spec.path, !p.isEmpty else {
        throw DatasetError.pathRequired(dataset: name, expected: expected)
      }
      return p
    }
    switch name {
    case "cifar10":
      return try CIFAR10.load(directory: requiredPath(
        "the directory holding data_batch_1.bin ... test_batch.bin, or its parent holding cifar-10-batches-bin/"))
    case "cifar100", "cifar100-coarse":
      let path = try requiredPath(
        "the directory holding train.bin and test.bin, or its parent holding cifar-100-binary/")
      return try CIFAR100.load(directory: path, labels: name == "cifar100" ? .fine : .coarse)
    case "fashion-mnist":
      let p = spec.path.flatMap { $0.isEmpty ? nil : $0 }
      return try FashionMNIST.load(directory: p ?? FashionMNIST.defaultDirectory)
    default:  // "synthetic"
      return DatasetSplits.synthetic(trainCount: syntheticTrainCount, testCount: syntheticTestCount, seed: 0)
    }
  }
}
