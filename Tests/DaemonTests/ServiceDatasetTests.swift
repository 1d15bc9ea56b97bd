import Foundation
import XCTest

@testable import Daemon
import Wire

/// Datasets the service cannot read: DATA_UNAVAILABLE and DATASETS' reason say how to get
/// them, and files that appear later (a fetch while the daemon runs) are found on next use.
final class ServiceDatasetTests: ServiceTestCase {
  var dataRoot: String { storeDirectory + "/xdg-data/blockscope/datasets" }
  let configFile = "/home/u/.config/blockscope/config.json"

  override func options() -> ServiceOptions {
    var o = super.options()
    o.datasetPaths = [:]
    o.datasetLocations = DatasetLocations(defaultRoot: dataRoot, configFile: configFile)
    return o
  }

  func datasets(_ service: DaemonService) -> [String: DatasetsResponse.Dataset] {
    let doc = send(service, .datasets, EmptyDoc()).doc(.datasetsOK, as: DatasetsResponse.self)
    return Dictionary(uniqueKeysWithValues: (doc?.datasets ?? []).map { ($0.name, $0) })
  }

  /// A CIFAR-10 binary distribution of `records` images per file, as the archive unpacks it.
  func writeCIFAR10(in directory: String, records: Int = 3) throws {
    let sub = directory + "/cifar-10-batches-bin"
    try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: true)
    for file in (1...5).map({ "data_batch_\($0).bin" }) + ["test_batch.bin"] {
      var bytes: [UInt8] = []
      for r in 0..<records { bytes += [UInt8(r % 10)] + [UInt8](repeating: UInt8(r), count: 3072) }
      try Data(bytes).write(to: URL(fileURLWithPath: sub + "/" + file))
    }
  }

  func testDataUnavailableNamesTheFix() throws {
    let service = try makeService()
    let reply = send(service, rawRequest(.train, json: #"{"dataset":"cifar10"}"#))
    guard let error = reply.error() else { return }
    XCTAssertEqual(error.code, .dataUnavailable)
    XCTAssertEqual(error.message, "cifar10 is not configured: run `blockscope data fetch cifar10`, put the binary "
                   + "distribution (cifar-10-batches-bin/) in \(dataRoot)/cifar10, or name its directory with "
                   + "BLOCKSCOPE_DATA=cifar10=DIR, blockscoped --data cifar10=DIR, or \"datasets\" in \(configFile)")
    // cifar100-coarse reads cifar100's files, and says so.
    expectError(send(service, rawRequest(.train, json: #"{"dataset":"cifar100-coarse"}"#)), .dataUnavailable,
                mentioning: "run `blockscope data fetch cifar100`")

    let listed = datasets(service)
    XCTAssertEqual(listed["cifar10"]?.available, false)
    XCTAssertEqual(listed["cifar10"]?.path, dataRoot + "/cifar10")
    XCTAssertEqual(listed["cifar10"]?.reason, error.message)
    XCTAssertTrue(listed["cifar100"]?.reason?.contains("blockscope data fetch cifar100") == true,
                  listed["cifar100"]?.reason ?? "")
  }

  func testAnExplicitDirectoryThatIsWrongIsNamedWithItsSource() throws {
    var o = options()
    o.datasetLocations.explicit["cifar10"] = .init(storeDirectory + "/typo", .environment)
    let service = try makeService(o)
    expectError(send(service, rawRequest(.train, json: #"{"dataset":"cifar10"}"#)), .dataUnavailable,
                mentioning: "cifar10's directory \(storeDirectory)/typo is set by BLOCKSCOPE_DATA: correct it, "
                  + "or fetch it there: blockscope data fetch cifar10 --to \(storeDirectory)/typo")
    XCTAssertTrue(datasets(service)["cifar10"]?.reason?.contains("is set by BLOCKSCOPE_DATA") == true)
  }

  func testDataThatAppearsWhileTheServiceRunsIsFoundOnNextUse() throws {
    let service = try makeService()
    expectError(send(service, rawRequest(.train, json: #"{"dataset":"cifar10"}"#)), .dataUnavailable)
    XCTAssertEqual(datasets(service)["cifar10"]?.available, false)
    // What `blockscope data fetch cifar10` leaves: DIR/cifar10/cifar-10-batches-bin/.
    try writeCIFAR10(in: dataRoot + "/cifar10")
    let listed = datasets(service)["cifar10"]
    XCTAssertEqual(listed?.available, true, listed?.reason ?? "")
    XCTAssertEqual(listed?.trainCount, 15)
    XCTAssertEqual(listed?.testCount, 3)
    XCTAssertEqual(listed?.path, dataRoot + "/cifar10")
    let splits = try service.datasets.splits("cifar10")
    XCTAssertEqual(splits.train.count, 15)
    XCTAssertEqual(service.datasets.path(of: "cifar10"), dataRoot + "/cifar10")

    // A broken default directory: the fix is to replace it.
    let c100 = dataRoot + "/cifar100/cifar-100-binary"
    try FileManager.default.createDirectory(atPath: c100, withIntermediateDirectories: true)
    try Data(repeating: 0, count: 3074 * 2 + 1).write(to: URL(fileURLWithPath: c100 + "/train.bin"))
    let broken = datasets(service)["cifar100"]
    XCTAssertEqual(broken?.available, false)
    XCTAssertTrue(broken?.reason?.contains("is cifar100's default directory: run `blockscope data fetch cifar100 --force`") == true,
                  broken?.reason ?? "")
    expectError(send(service, rawRequest(.train, json: #"{"dataset":"cifar100"}"#)), .dataUnavailable,
                mentioning: "blockscope data fetch cifar100 --force")
  }
}
