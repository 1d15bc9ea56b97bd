import ArgumentParser
import Foundation
import Wire

/// `blockscope data`: what the daemon finds and how to get what it does not; `data fetch`
/// installs CIFAR-10/100 where the daemon looks without configuration.
struct DataCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "data",
    abstract: "List the datasets the daemon finds and how to get missing ones; fetch CIFAR-10/100.",
    discussion: """
      The daemon reads a dataset from the first directory named by: blockscoped --data NAME=DIR; \
      the environment variable BLOCKSCOPE_DATA (NAME=DIR entries separated by ':'); the config \
      file $XDG_CONFIG_HOME/blockscope/config.json (default ~/.config/blockscope/config.json), \
      e.g. {"datasets": {"cifar10": "/data/cifar"}}; else the default directory \
      $XDG_DATA_HOME/blockscope/datasets/NAME (default ~/.local/share/blockscope/datasets/NAME), \
      where `blockscope data fetch NAME` unpacks. A daemon this command starts inherits its \
      environment; a running one reads the variable and the file only when it starts.
      """,
    subcommands: [DataListCommand.self, DataFetchCommand.self],
    defaultSubcommand: DataListCommand.self)
}

struct DataListCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "list",
    abstract: "Each dataset: available or not, where the daemon reads it, its size; how to get a missing one.")

  @OptionGroup var global: GlobalOptions

  func run() throws {
    try global.withDaemon { client in
      let response = try client.request(.datasets, DatasetsRequest())
      let datasets = try response.decode(DatasetsResponse.self).datasets
      if global.json {
        // The response as received, plus for a missing dataset how to get it.
        var object = try response.jsonOutput()
        if var entries = object["datasets"] as? [[String: Any]] {
          for (i, entry) in entries.enumerated() where entry["available"] as? Bool == false {
            if let name = entry["name"] as? String, let archive = DatasetArchive.named(name) {
              entries[i]["fetch"] = ["command": Self.fetchCommand(archive, path: entry["path"] as? String ?? ""),
                                     "url": archive.url, "md5": archive.md5, "bytes": archive.bytes]
            }
          }
          object["datasets"] = entries
        }
        return try JSONOutput.print(object)
      }
      print(DatasetsCommand.table(datasets, reasons: false))
      for d in datasets where !d.available {
        print("")
        let reason = d.reason ?? "unavailable"
        print(reason.hasPrefix(d.name + " ") ? reason : "\(d.name): \(reason)")
        if let archive = DatasetArchive.named(d.name) {
          print("  get it: \(Self.fetchCommand(archive, path: d.path))   # downloads \(archive.url) "
                + "(\(Format.bytes(archive.bytes)), MD5 \(archive.md5))")
        } else if d.name == "fashion-mnist" {
          print("  get it: sudo apt install dataset-fashion-mnist   # Debian; into /usr/share/datasets/fashion-mnist")
        }
      }
    }
  }

  /// The fetch that installs the dataset where the daemon looks for it (`path`, as DATASETS
  /// says): `--to` unless that is the default directory.
  static func fetchCommand(_ archive: DatasetArchive, path: String) -> String {
    let command = "blockscope data fetch \(archive.name)"
    if path.isEmpty || path == DataDirectory.directory(for: archive.name) { return command }
    return command + " --to " + shellQuoted(path)
  }
}

struct DataFetchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "fetch",
    abstract: "Download CIFAR-10 or CIFAR-100 (the official binary archive), check its published MD5 and unpack it.",
    discussion: """
      CIFAR-10: https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz (162 MiB, MD5 \
      c32a1d4ab5d03f1284b67883e8d87530); CIFAR-100: \
      https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz (161 MiB, MD5 \
      03b5dce01913d631647c71ecec9e9cb8). The archive is unpacked next to the target and \
      renamed into place once every file checks out, so an interrupted or failed fetch leaves \
      no partial dataset. A running daemon finds the data on its next use when the target is \
      where it looks (by default it is). Needs tar and md5sum; downloads with curl when it is \
      on PATH, else in-process. Never starts a daemon.
      """)

  @OptionGroup var global: GlobalOptions

  @Argument(help: ArgumentHelp("cifar10 or cifar100.", valueName: "dataset"))
  var dataset: String

  @Option(name: .customLong("from"), help: ArgumentHelp(
    "The archive: a URL (https, http, file) or a local file, e.g. a copy downloaded elsewhere (default: the official URL).",
    valueName: "url-or-file"))
  var from: String?

  @Option(name: .customLong("to"), help: ArgumentHelp(
    "The dataset directory to create (default: $XDG_DATA_HOME/blockscope/datasets/DATASET, where the daemon looks).",
    valueName: "dir"))
  var to: String?

  @Flag(help: "Replace the target directory if it already holds something.")
  var force = false

  /// The archive's expected MD5 instead of the published one: for tests (a small archive of
  /// the right layout) and a repackaged mirror. Hidden, because it also turns off the check
  /// of the official record counts.
  @Option(name: .customLong("md5"), help: .hidden)
  var md5: String?

  var archive: DatasetArchive? { DatasetArchive.named(dataset) }

  func validate() throws {
    guard archive != nil else {
      throw ValidationError("cannot fetch '\(dataset)': known are \(DatasetArchive.all.map(\.name).joined(separator: ", ")) "
                            + "(Fashion-MNIST: sudo apt install dataset-fashion-mnist)")
    }
    if let from, from.isEmpty { throw ValidationError("--from needs a URL or a file") }
    if let to, to.isEmpty { throw ValidationError("--to needs a directory") }
    if let md5, md5.count != 32 || !md5.allSatisfy(\.isHexDigit) {
      throw ValidationError("--md5 must be 32 hex digits")
    }
  }

  func run() throws {
    let archive = archive!
    let defaultTarget = DataDirectory.directory(for: archive.name)
    let target = to.map(DatasetFetch.absolutePath) ?? defaultTarget
    let fetch = DatasetFetch(
      archive: archive, source: from.map(DatasetFetch.source) ?? .url(archive.url), target: target,
      force: force, expectedMD5: md5 ?? archive.md5, strictCounts: md5 == nil, verbose: !global.json)
    let outcome: DatasetFetch.Outcome
    do {
      outcome = try fetch.run()
    } catch let error as OutputError {
      printError("blockscope: \(error)")
      throw ExitStatus.failure
    }
    let seen = Self.daemonView(archive.name, socketPath: global.socketPath)
    if global.json {
      var object: [String: Any] = [
        "dataset": archive.name, "path": outcome.directory, "md5": outcome.md5,
        "train_count": outcome.trainCount, "test_count": outcome.testCount,
        "source": fetch.source.text,
      ]
      if let seen {
        object["daemon"] = ["path": seen.path, "available": seen.available] as [String: Any]
      }
      return try JSONOutput.print(object)
    }
    print("\(archive.name): \(outcome.trainCount) training and \(outcome.testCount) test images in \(outcome.directory) "
          + "(MD5 \(outcome.md5))")
    if let seen, seen.path == outcome.directory, seen.available {
      print("the running blockscoped finds it")
    } else if let seen, seen.path != outcome.directory {
      print("note: the running blockscoped reads \(archive.name) from \(seen.path.isEmpty ? "nowhere" : seen.path); "
            + Self.howToPoint(archive.name, at: outcome.directory))
    } else if seen == nil && outcome.directory != defaultTarget {
      print("the daemon reads it once told: " + Self.howToPoint(archive.name, at: outcome.directory))
    }
  }

  static func howToPoint(_ name: String, at directory: String) -> String {
    "start it with --data \(name)=\(shellQuoted(directory)), or BLOCKSCOPE_DATA=\(name)=\(shellQuoted(directory)), "
      + "or name it in \(DataDirectory.configFile())"
  }

  /// What a daemon already running at the socket says of the dataset now (nil: none runs).
  /// Its answer shows whether it reads the directory just installed.
  static func daemonView(_ name: String, socketPath: String) -> DatasetsResponse.Dataset? {
    guard let client = try? DaemonClient(socketPath: socketPath) else { return nil }
    defer { client.close() }
    guard let response = try? client.request(.datasets, DatasetsRequest()),
          let datasets = try? response.decode(DatasetsResponse.self).datasets
    else { return nil }
    return datasets.first { $0.name == name }
  }
}
