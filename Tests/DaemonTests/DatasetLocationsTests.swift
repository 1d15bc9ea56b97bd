import Foundation
import XCTest

@testable import Daemon

/// Where blockscoped reads datasets from: precedence, the BLOCKSCOPE_DATA and config file
/// syntaxes and their errors, the XDG defaults, the directory chosen on use, the messages.
final class DatasetLocationsTests: XCTestCase {
  typealias Location = DatasetLocations.Location

  let environment = ["HOME": "/home/u"]
  let config = "/home/u/.config/blockscope/config.json"

  func resolve(_ commandLine: [String] = [], env: [String: String] = [:], json: String? = nil,
               cwd: String = "/work") throws -> DatasetLocations {
    try DatasetLocations.resolve(commandLine: commandLine, environment: environment.merging(env) { $1 },
                                 configPath: config, configContents: json.map { Data($0.utf8) },
                                 workingDirectory: cwd)
  }

  func error(_ body: () throws -> DatasetLocations, file: StaticString = #filePath, line: UInt = #line) -> String {
    do {
      let locations = try body()
      XCTFail("no error: \(locations)", file: file, line: line)
      return ""
    } catch let error as DatasetLocationError {
      return error.message
    } catch {
      XCTFail("\(error)", file: file, line: line)
      return ""
    }
  }

  func testPrecedenceIsDataThenEnvironmentThenConfigFilePerDataset() throws {
    let json = #"{"datasets": {"cifar10": "/cfg/c10", "cifar100": "/cfg/c100", "fashion-mnist": "/cfg/fm"}}"#
    let all = try resolve(["cifar10=/cli/c10"], env: ["BLOCKSCOPE_DATA": "cifar10=/env/c10:cifar100=/env/c100"], json: json)
    XCTAssertEqual(all.explicit["cifar10"], Location("/cli/c10", .commandLine))
    XCTAssertEqual(all.explicit["cifar100"], Location("/env/c100", .environment))
    XCTAssertEqual(all.explicit["fashion-mnist"], Location("/cfg/fm", .configFile(config)))
    XCTAssertEqual(all.defaultRoot, "/home/u/.local/share/blockscope/datasets")
    XCTAssertEqual(all.configFile, config)

    let configOnly = try resolve(json: json)
    XCTAssertEqual(configOnly.explicit["cifar10"], Location("/cfg/c10", .configFile(config)))
    let none = try resolve()
    XCTAssertEqual(none.explicit, [:])
    // An empty variable names nothing.
    XCTAssertEqual(try resolve(env: ["BLOCKSCOPE_DATA": ""]).explicit, [:])
  }

  func testEnvironmentEntries() throws {
    let locations = try resolve(env: ["BLOCKSCOPE_DATA": "CIFAR-10=rel/c10::cifar_100=~/c100:"], cwd: "/work/x/")
    XCTAssertEqual(locations.explicit["cifar10"], Location("/work/x/rel/c10", .environment))
    XCTAssertEqual(locations.explicit["cifar100"], Location("/home/u/c100", .environment))
    XCTAssertEqual(try resolve(env: ["BLOCKSCOPE_DATA": "fashion-mnist=/a/../b/"]).explicit["fashion-mnist"]?.path, "/b")

    func envError(_ value: String) -> String { error { try resolve(env: ["BLOCKSCOPE_DATA": value]) } }
    XCTAssertEqual(envError("/data/cifar"), #"BLOCKSCOPE_DATA: "/data/cifar" is not NAME=DIR (e.g. cifar10=/data/cifar-10-batches-bin)"#)
    XCTAssertEqual(envError("cifar10="), #"BLOCKSCOPE_DATA: "cifar10=": both NAME and DIR are needed"#)
    XCTAssertEqual(envError("=/a"), #"BLOCKSCOPE_DATA: "=/a": both NAME and DIR are needed"#)
    XCTAssertEqual(envError("cifar10=/a:cifar-10=/b"), "BLOCKSCOPE_DATA names cifar10 twice")
    XCTAssertEqual(envError("mnist=/a"), #"BLOCKSCOPE_DATA: unknown dataset "mnist" (known: cifar10, cifar100, fashion-mnist)"#)
    XCTAssertEqual(envError("synthetic=/a"), "BLOCKSCOPE_DATA: synthetic is generated and has no directory")
    XCTAssertEqual(envError("cifar100-coarse=/a"), "BLOCKSCOPE_DATA: cifar100-coarse reads cifar100's files; name cifar100")
  }

  func testCommandLineEntries() throws {
    let locations = try resolve(["cifar10=c10", "cifar100=/abs"], cwd: "/work")
    XCTAssertEqual(locations.explicit["cifar10"], Location("/work/c10", .commandLine))
    XCTAssertEqual(locations.explicit["cifar100"], Location("/abs", .commandLine))
    XCTAssertEqual(error { try resolve(["cifar10=/a", "cifar10=/b"]) }, "--data names cifar10 twice")
    XCTAssertEqual(error { try resolve(["cifar10"]) },
                   #"--data: "cifar10" is not NAME=DIR (e.g. cifar10=/data/cifar-10-batches-bin)"#)
    XCTAssertEqual(try DatasetLocations.parseEntries(["Fashion_MNIST=x"], what: "--data"), ["fashion-mnist": "x"])
  }

  func testConfigFile() throws {
    // Relative directories are relative to the file; ~ is HOME.
    let locations = try resolve(json: #"{"datasets": {"cifar10": "data/c10", "cifar100": "~/c100"}}"#)
    XCTAssertEqual(locations.explicit["cifar10"]?.path, "/home/u/.config/blockscope/data/c10")
    XCTAssertEqual(locations.explicit["cifar100"]?.path, "/home/u/c100")
    XCTAssertEqual(try resolve(json: "{}").explicit, [:])
    XCTAssertEqual(try resolve(json: #"{"datasets": {}}"#).explicit, [:])
  }

  func testMalformedConfigFileNamesTheFileAndTheProblem() {
    let cases: [(String, String)] = [
      (#"{"datasets": {"cifar10": "/x"}"#, "not valid JSON"),
      ("", "not valid JSON"),
      ("[]", "the top level must be a JSON object"),
      (#"{"dataset": {"cifar10": "/x"}}"#, #"unknown key "dataset" (known: datasets)"#),
      (#"{"datasets": ["cifar10"]}"#, #""datasets" must be an object of NAME: DIR"#),
      (#"{"datasets": {"cifar10": 3}}"#, #""datasets"."cifar10" must be a directory (a non-empty string)"#),
      (#"{"datasets": {"cifar10": ""}}"#, #""datasets"."cifar10" must be a directory"#),
      (#"{"datasets": {"cifar10": null}}"#, #""datasets"."cifar10" must be a directory"#),
      (#"{"datasets": {"imagenet": "/x"}}"#, #""datasets": unknown dataset "imagenet""#),
      (#"{"datasets": {"cifar10": "/x", "CIFAR-10": "/y"}}"#, #""datasets" names cifar10 twice"#),
    ]
    for (json, problem) in cases {
      let message = error { try resolve(json: json) }
      XCTAssertTrue(message.hasPrefix(config + ": "), "\(json): \(message)")
      XCTAssertTrue(message.contains(problem), "\(json): \(message)")
    }
  }

  func testXDGDirectories() {
    XCTAssertEqual(DatasetLocations.defaultRoot(environment: ["HOME": "/home/u"]), "/home/u/.local/share/blockscope/datasets")
    XCTAssertEqual(DatasetLocations.defaultRoot(environment: ["HOME": "/home/u", "XDG_DATA_HOME": "/xdg/data/"]),
                   "/xdg/data/blockscope/datasets")
    XCTAssertEqual(DatasetLocations.defaultRoot(environment: ["HOME": "/home/u", "XDG_DATA_HOME": ""]),
                   "/home/u/.local/share/blockscope/datasets")
    XCTAssertEqual(DatasetLocations.configFilePath(environment: ["HOME": "/home/u"]), "/home/u/.config/blockscope/config.json")
    XCTAssertEqual(DatasetLocations.configFilePath(environment: ["HOME": "/home/u", "XDG_CONFIG_HOME": "/cfg"]),
                   "/cfg/blockscope/config.json")
  }

  func testDirectoryOnUse() throws {
    let root = "/home/u/.local/share/blockscope/datasets"
    var existing: Set<String> = []
    let locations = try resolve(env: ["BLOCKSCOPE_DATA": "cifar100=/env/c100"])
    func directory(_ name: String, recorded: String? = nil) -> Location? {
      locations.directory(for: name, recorded: recorded) { existing.contains($0) }
    }
    // Explicit wins whether or not it exists; cifar100-coarse reads cifar100's.
    XCTAssertEqual(directory("cifar100"), Location("/env/c100", .environment))
    XCTAssertEqual(directory("cifar100-coarse"), Location("/env/c100", .environment))
    // Nothing: not configured, unless a checkpoint names a directory; Fashion-MNIST: Debian's.
    XCTAssertNil(directory("cifar10"))
    XCTAssertEqual(directory("cifar10", recorded: "/trained/from"), Location("/trained/from", .checkpoint))
    XCTAssertEqual(directory("fashion-mnist"), Location("/usr/share/datasets/fashion-mnist", .system))
    // The default directory once it exists (as after `blockscope data fetch`).
    existing = [root + "/cifar10", root + "/fashion-mnist"]
    XCTAssertEqual(directory("cifar10", recorded: "/trained/from"), Location(root + "/cifar10", .defaultDirectory))
    XCTAssertEqual(directory("fashion-mnist"), Location(root + "/fashion-mnist", .defaultDirectory))
    // A service without a default root (tests, embedders).
    XCTAssertNil(DatasetLocations().directory(for: "cifar10", exists: { _ in true }))
    XCTAssertNil(DatasetLocations().defaultDirectory(for: "cifar10"))
  }

  func testMessagesNameTheFix() throws {
    let locations = try resolve()
    let root = "/home/u/.local/share/blockscope/datasets"
    let missing = locations.unavailableMessage("cifar10", location: nil, problem: nil)
    XCTAssertEqual(missing, "cifar10 is not configured: run `blockscope data fetch cifar10`, put the binary "
                   + "distribution (cifar-10-batches-bin/) in \(root)/cifar10, or name its directory with "
                   + "BLOCKSCOPE_DATA=cifar10=DIR, blockscoped --data cifar10=DIR, or \"datasets\" in \(config)")
    let coarse = locations.unavailableMessage("cifar100-coarse", location: nil, problem: nil)
    XCTAssertTrue(coarse.hasPrefix("cifar100-coarse (cifar100's files) is not configured: run `blockscope data fetch cifar100`"), coarse)
    XCTAssertTrue(coarse.contains("\(root)/cifar100,"), coarse)
    let fashion = locations.unavailableMessage("fashion-mnist", location: nil, problem: nil)
    XCTAssertTrue(fashion.contains("install Debian's dataset-fashion-mnist"), fashion)
    XCTAssertFalse(fashion.contains("data fetch"), fashion)

    let explicit = locations.unavailableMessage("cifar10", location: Location("/env/c10", .environment),
                                                problem: "/env/c10/data_batch_1.bin: missing")
    XCTAssertEqual(explicit, "/env/c10/data_batch_1.bin: missing; cifar10's directory /env/c10 is set by "
                   + "BLOCKSCOPE_DATA: correct it, or fetch it there: blockscope data fetch cifar10 --to /env/c10")
    let configured = locations.unavailableMessage("cifar100", location: Location("/c", .configFile(config)), problem: "p")
    XCTAssertTrue(configured.contains("is set by \(config)"), configured)
    let fallback = locations.unavailableMessage("cifar10", location: Location(root + "/cifar10", .defaultDirectory),
                                                problem: "truncated")
    XCTAssertEqual(fallback, "truncated; \(root)/cifar10 is cifar10's default directory: run `blockscope data fetch "
                   + "cifar10 --force` to replace it, or put the binary distribution (cifar-10-batches-bin/) there")
    // Without a default root or config file (a service set up by a test), the rest still holds.
    let bare = DatasetLocations().unavailableMessage("cifar10", location: nil, problem: nil)
    XCTAssertEqual(bare, "cifar10 is not configured: run `blockscope data fetch cifar10`, or name its directory "
                   + "with BLOCKSCOPE_DATA=cifar10=DIR, blockscoped --data cifar10=DIR")
  }

  func testLoadReadsTheConfigFileFromXDGConfigHome() throws {
    let directory = NSTemporaryDirectory() + "bs-locations-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let env = ["HOME": "/home/u", "XDG_CONFIG_HOME": directory]
    let path = directory + "/blockscope/config.json"
    // No file: nothing configured, no error.
    XCTAssertEqual(try DatasetLocations.load(commandLine: [], environment: env).explicit, [:])
    try FileManager.default.createDirectory(atPath: directory + "/blockscope", withIntermediateDirectories: true)
    try Data(#"{"datasets": {"cifar10": "c10"}}"#.utf8).write(to: URL(fileURLWithPath: path))
    let loaded = try DatasetLocations.load(commandLine: [], environment: env)
    XCTAssertEqual(loaded.explicit["cifar10"], Location(directory + "/blockscope/c10", .configFile(path)))
    XCTAssertEqual(loaded.configFile, path)
    try Data("datasets = 1".utf8).write(to: URL(fileURLWithPath: path))
    let message = error { try DatasetLocations.load(commandLine: [], environment: env) }
    XCTAssertTrue(message.hasPrefix(path + ": not valid JSON"), message)
    // A directory where the file should be is an error, not "no file".
    try FileManager.default.removeItem(atPath: path)
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    XCTAssertEqual(error { try DatasetLocations.load(commandLine: [], environment: env) },
                   "\(path): a directory, not a config file")
  }
}
