import Foundation

/// One of this package's executables, run by a test target that depends on it: the executable
/// sits next to the test bundle in the build products directory.
public struct BuiltTool: Sendable {
  public struct Result: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
  }

  public let url: URL

  /// `anchor`: a class of the test bundle, to find the products directory from.
  public init(_ name: String, besides anchor: AnyClass) {
    let candidates = [
      Bundle(for: anchor).bundleURL.deletingLastPathComponent(),
      Bundle.main.bundleURL,
      URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
    ].map { $0.appendingPathComponent(name) }
    url = candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[0]
  }

  /// Any other program, run the same way.
  public init(url: URL) { self.url = url }

  public var isBuilt: Bool { FileManager.default.isExecutableFile(atPath: url.path) }

  /// Runs it to the end with `args` and extra environment `env`; both outputs captured.
  public func run(_ args: [String], env: [String: String] = [:]) throws -> Result {
    let p = Process()
    p.executableURL = url
    p.arguments = args
    var e = ProcessInfo.processInfo.environment
    for (k, v) in env { e[k] = v }
    p.environment = e
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let r = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                  stderr: String(decoding: r, as: UTF8.self))
  }
}
