import Engine
import Foundation

/// Where blockscoped reads each dataset's files from, and what to tell a user whose dataset is
/// missing.
///
/// A directory named for a dataset comes from, highest precedence first (per dataset: `--data
/// cifar10=A` and a config file naming cifar100 combine):
/// 1. blockscoped's `--data NAME=DIR` (repeatable);
/// 2. the environment variable `BLOCKSCOPE_DATA`: `NAME=DIR` entries separated by `:`
///    (`cifar10=/data/c10:cifar100=/data/c100`; empty entries are skipped; a DIR holding `:`
///    must go in the config file);
/// 3. the config file `$XDG_CONFIG_HOME/blockscope/config.json` (`~/.config/...` without
///    XDG_CONFIG_HOME), `{"datasets": {"cifar10": "/data/cifar"}}`; a relative DIR is relative
///    to the file's directory. A missing file names nothing; an unreadable or malformed one is
///    an error (the daemon refuses to start rather than silently read other data).
///
/// Without one, the default directory `$XDG_DATA_HOME/blockscope/datasets/NAME`
/// (`~/.local/share/...`), where `blockscope data fetch` unpacks, is used when it exists; then
/// Fashion-MNIST falls back to Debian's /usr/share/datasets/fashion-mnist and a model's
/// checkpoint may name the directory it was trained from (`directory(for:recorded:exists:)`).
///
/// `~` and `~/...` are expanded with HOME; other relative paths are made absolute against the
/// working directory (for `--data` and BLOCKSCOPE_DATA). Names are read as `DatasetLoader`
/// reads them (`CIFAR-10` is `cifar10`); `synthetic` has no files and `cifar100-coarse` reads
/// `cifar100`'s, so neither can be given a directory.
///
/// Pure: the environment, the config file's bytes, the working directory and the file system
/// probe are parameters (`load` reads the file), so the rules are unit-tested as they are.
public struct DatasetLocations: Sendable, Equatable {
  /// Where a dataset's directory was named.
  public enum Source: Sendable, Equatable, CustomStringConvertible {
    /// blockscoped's `--data` (or `ServiceOptions.datasetPaths`).
    case commandLine
    /// The environment variable `BLOCKSCOPE_DATA`.
    case environment
    /// The config file at this path.
    case configFile(String)
    /// `defaultRoot/NAME`.
    case defaultDirectory
    /// Where a Debian package installs it (Fashion-MNIST).
    case system
    /// The directory a model's checkpoint recorded (it was trained from there).
    case checkpoint

    public var description: String {
      switch self {
      case .commandLine: return "--data"
      case .environment: return DatasetLocations.environmentVariable
      case .configFile(let path): return path
      case .defaultDirectory: return "the default data directory"
      case .system: return "the Debian package's directory"
      case .checkpoint: return "the model's checkpoint"
      }
    }

    /// Named explicitly by the user (a wrong one is theirs to correct).
    public var isExplicit: Bool {
      switch self {
      case .commandLine, .environment, .configFile: return true
      case .defaultDirectory, .system, .checkpoint: return false
      }
    }
  }

  public struct Location: Sendable, Equatable {
    public var path: String
    public var source: Source

    public init(_ path: String, _ source: Source) {
      self.path = path
      self.source = source
    }
  }

  public static let environmentVariable = "BLOCKSCOPE_DATA"
  /// The datasets that have files (DatasetCache lists synthetic too).
  public static let names = ["cifar10", "cifar100", "fashion-mnist"]

  /// The explicitly named directories (sources 1-3), by canonical name, absolute.
  public var explicit: [String: Location]
  /// `DATA_HOME/blockscope/datasets`, holding one directory per dataset; nil: no default
  /// directory (a service set up by a test or an embedder).
  public var defaultRoot: String?
  /// The config file consulted (whether or not it exists), for messages; nil: none.
  public var configFile: String?

  public init(explicit: [String: Location] = [:], defaultRoot: String? = nil, configFile: String? = nil) {
    self.explicit = explicit
    self.defaultRoot = defaultRoot
    self.configFile = configFile
  }

  // MARK: XDG paths

  /// `$XDG_DATA_HOME/blockscope/datasets`, or `~/.local/share/blockscope/datasets` (the same
  /// rule as blockscoped's default store, whose `datasets/` it is).
  public static func defaultRoot(environment: [String: String]) -> String {
    xdgDirectory("XDG_DATA_HOME", fallback: ".local/share", environment) + "/blockscope/datasets"
  }

  /// `$XDG_CONFIG_HOME/blockscope/config.json`, or `~/.config/blockscope/config.json`.
  public static func configFilePath(environment: [String: String]) -> String {
    xdgDirectory("XDG_CONFIG_HOME", fallback: ".config", environment) + "/blockscope/config.json"
  }

  static func home(_ environment: [String: String]) -> String {
    environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
  }

  private static func xdgDirectory(_ variable: String, fallback: String, _ environment: [String: String]) -> String {
    if let value = environment[variable], !value.isEmpty { return trimmed(value) }
    return trimmed(home(environment)) + "/" + fallback
  }

  private static func trimmed(_ path: String) -> String {
    var path = path
    while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
    return path
  }

  // MARK: Resolution

  /// The locations from the three sources: `commandLine` holds the `--data` entries as given
  /// (`NAME=DIR`), `configContents` the config file's bytes (nil: there is none). Throws
  /// `DatasetLocationError` naming the option, variable or file and the problem.
  public static func resolve(commandLine: [String], environment: [String: String],
                             configPath: String, configContents: Data?,
                             workingDirectory: String) throws -> DatasetLocations {
    let home = home(environment)
    var explicit: [String: Location] = [:]
    if let contents = configContents {
      let base = (configPath as NSString).deletingLastPathComponent
      for (name, directory) in try parseConfig(contents, path: configPath) {
        explicit[name] = Location(absolute(directory, base: base, home: home), .configFile(configPath))
      }
    }
    if let value = environment[environmentVariable], !value.isEmpty {
      let entries = value.split(separator: ":", omittingEmptySubsequences: true).map(String.init)
      for (name, directory) in try parseEntries(entries, what: environmentVariable) {
        explicit[name] = Location(absolute(directory, base: workingDirectory, home: home), .environment)
      }
    }
    for (name, directory) in try parseEntries(commandLine, what: "--data") {
      explicit[name] = Location(absolute(directory, base: workingDirectory, home: home), .commandLine)
    }
    return DatasetLocations(explicit: explicit, defaultRoot: defaultRoot(environment: environment),
                            configFile: configPath)
  }

  /// `resolve` with the config file read from `configFilePath(environment:)`.
  public static func load(commandLine: [String], environment: [String: String],
                          workingDirectory: String = FileManager.default.currentDirectoryPath) throws -> DatasetLocations {
    let path = configFilePath(environment: environment)
    var contents: Data?
    var isDirectory: ObjCBool = false
    // fileExists follows symlinks: a dangling one is no file, as a missing one.
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
      if isDirectory.boolValue { throw DatasetLocationError("\(path): a directory, not a config file") }
      do {
        contents = try Data(contentsOf: URL(fileURLWithPath: path))
      } catch {
        throw DatasetLocationError("\(path): cannot be read (\(error.localizedDescription))")
      }
    }
    return try resolve(commandLine: commandLine, environment: environment, configPath: path,
                       configContents: contents, workingDirectory: workingDirectory)
  }

  /// `NAME=DIR` entries (--data, BLOCKSCOPE_DATA) by canonical name; `what` names the source
  /// in errors.
  public static func parseEntries(_ entries: [String], what: String) throws -> [String: String] {
    var result: [String: String] = [:]
    for entry in entries {
      guard let equals = entry.firstIndex(of: "=") else {
        throw DatasetLocationError("\(what): \"\(entry)\" is not NAME=DIR (e.g. cifar10=/data/cifar-10-batches-bin)")
      }
      let given = String(entry[..<equals]), directory = String(entry[entry.index(after: equals)...])
      guard !given.isEmpty, !directory.isEmpty else {
        throw DatasetLocationError("\(what): \"\(entry)\": both NAME and DIR are needed")
      }
      let name = try canonicalName(given, what: what)
      guard result[name] == nil else { throw DatasetLocationError("\(what) names \(name) twice") }
      result[name] = directory
    }
    return result
  }

  /// The config file's `datasets` object; every other key is refused, so that a misspelt
  /// `"dataset"` is not silently ignored.
  static func parseConfig(_ contents: Data, path: String) throws -> [String: String] {
    let object: Any
    do {
      object = try JSONSerialization.jsonObject(with: contents, options: [])
    } catch {
      let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
      throw DatasetLocationError("\(path): not valid JSON (\(detail ?? error.localizedDescription)); expected e.g. "
                                 + #"{"datasets": {"cifar10": "/data/cifar"}}"#)
    }
    guard let top = object as? [String: Any] else {
      throw DatasetLocationError("\(path): the top level must be a JSON object, e.g. "
                                 + #"{"datasets": {"cifar10": "/data/cifar"}}"#)
    }
    for key in top.keys.sorted() where key != "datasets" {
      throw DatasetLocationError("\(path): unknown key \"\(key)\" (known: datasets)")
    }
    guard let value = top["datasets"] else { return [:] }
    guard let datasets = value as? [String: Any] else {
      throw DatasetLocationError("\(path): \"datasets\" must be an object of NAME: DIR, e.g. "
                                 + #"{"cifar10": "/data/cifar"}"#)
    }
    var result: [String: String] = [:]
    for (given, value) in datasets.sorted(by: { $0.key < $1.key }) {
      let name = try canonicalName(given, what: "\(path): \"datasets\"")
      guard let directory = value as? String, !directory.isEmpty else {
        throw DatasetLocationError("\(path): \"datasets\".\"\(given)\" must be a directory (a non-empty string)")
      }
      guard result[name] == nil else { throw DatasetLocationError("\(path): \"datasets\" names \(name) twice") }
      result[name] = directory
    }
    return result
  }

  static func canonicalName(_ given: String, what: String) throws -> String {
    let canonical = DatasetLoader.canonicalName(given)
    if let canonical, names.contains(canonical) { return canonical }
    switch canonical {
    case "cifar100-coarse":
      throw DatasetLocationError("\(what): cifar100-coarse reads cifar100's files; name cifar100")
    case "synthetic":
      throw DatasetLocationError("\(what): synthetic is generated and has no directory")
    default:
      throw DatasetLocationError("\(what): unknown dataset \"\(given)\" (known: \(names.joined(separator: ", ")))")
    }
  }

  static func absolute(_ path: String, base: String, home: String) -> String {
    var path = path
    if path == "~" { path = home } else if path.hasPrefix("~/") { path = home + path.dropFirst() }
    if !path.hasPrefix("/") { path = (base.hasSuffix("/") ? base : base + "/") + path }
    return (path as NSString).standardizingPath
  }

  // MARK: Use

  /// The dataset whose files `name` reads (`cifar100-coarse`: cifar100).
  public static func filesName(_ name: String) -> String {
    name == "cifar100-coarse" ? "cifar100" : name
  }

  /// `defaultRoot/NAME`, if there is a default root.
  public func defaultDirectory(for name: String) -> String? {
    defaultRoot.map { $0 + "/" + Self.filesName(name) }
  }

  /// The directory to read `name` from now: the explicit one; else the default directory if it
  /// exists; else (Fashion-MNIST) Debian's; else `recorded` (a checkpoint's); nil: not
  /// configured. `exists`: whether a directory exists (checked on every use, so that data
  /// fetched while the daemon runs is found).
  public func directory(for name: String, recorded: String? = nil,
                        exists: (String) -> Bool) -> Location? {
    let files = Self.filesName(name)
    if let location = explicit[files] { return location }
    if let path = defaultDirectory(for: files), exists(path) { return Location(path, .defaultDirectory) }
    if files == "fashion-mnist" { return Location(FashionMNIST.defaultDirectory, .system) }
    if let recorded, !recorded.isEmpty { return Location(recorded, .checkpoint) }
    return nil
  }

  /// What the user should do to get `name`, for DATA_UNAVAILABLE: `location` is where it was
  /// looked for (nil: nowhere), `problem` what went wrong there.
  public func unavailableMessage(_ name: String, location: Location?, problem: String?) -> String {
    let files = Self.filesName(name)
    let subject = files == name ? name : "\(name) (\(files)'s files)"
    guard let location, let problem else {
      return "\(subject) is not configured: \(getIt(files))"
    }
    switch location.source {
    case .commandLine, .environment, .configFile:
      return "\(problem); \(files)'s directory \(location.path) is set by \(location.source): correct it, or "
        + "\(fetchInto(files, location.path))"
    case .defaultDirectory:
      return "\(problem); \(location.path) is \(files)'s default directory: "
        + (Self.fetchable(files) ? "run `blockscope data fetch \(files) --force` to replace it, or " : "")
        + "put the \(Self.distribution(files)) there"
    case .system, .checkpoint:
      return "\(problem); \(files) is not configured: \(getIt(files))"
    }
  }

  static func fetchable(_ name: String) -> Bool { name == "cifar10" || name == "cifar100" }

  static func distribution(_ name: String) -> String {
    switch name {
    case "cifar10": return "binary distribution (cifar-10-batches-bin/)"
    case "cifar100": return "binary distribution (cifar-100-binary/)"
    default: return "IDX files (train-images-idx3-ubyte[.gz] ...)"
    }
  }

  private func fetchInto(_ name: String, _ path: String) -> String {
    Self.fetchable(name) ? "fetch it there: blockscope data fetch \(name) --to \(path)"
                         : "put the \(Self.distribution(name)) there"
  }

  /// Every way to make `name` available, the easiest first.
  private func getIt(_ name: String) -> String {
    var ways: [String] = []
    if Self.fetchable(name) { ways.append("run `blockscope data fetch \(name)`") }
    if name == "fashion-mnist" {
      ways.append("install Debian's dataset-fashion-mnist (into \(FashionMNIST.defaultDirectory))")
    }
    if let directory = defaultDirectory(for: name) {
      ways.append("put the \(Self.distribution(name)) in \(directory)")
    }
    let config = configFile.map { ", or \"datasets\" in \($0)" } ?? ""
    ways.append("name its directory with \(Self.environmentVariable)=\(name)=DIR, blockscoped --data \(name)=DIR\(config)")
    return ways.dropLast().joined(separator: ", ") + (ways.count > 1 ? ", or " : "") + ways.last!
  }
}

/// A bad BLOCKSCOPE_DATA, config file or --data entry; the message names which and why.
public struct DatasetLocationError: Error, CustomStringConvertible, Sendable, Equatable {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}
