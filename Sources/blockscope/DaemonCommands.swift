import ArgumentParser
import Foundation
import Wire

struct StatusCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "status", abstract: "Show the daemon's uptime, memory, Gram cache and jobs.")

  @OptionGroup var global: GlobalOptions

  func run() throws {
    try global.withDaemon { client in
      let response = try client.request(.status, StatusRequest())
      if global.json { return try JSONOutput.print(response.jsonOutput()) }
      let s = try response.decode(StatusResponse.self)
      let server = client.hello.map { "\($0.server) \($0.serverVersion)" } ?? "blockscoped"
      print("\(server), pid \(s.pid), up \(Format.duration(s.uptimeSeconds)), socket \(client.socketPath)")
      print("store:       \(s.store) (\(s.models) model\(s.models == 1 ? "" : "s"))")
      print("memory:      \(Format.bytes(s.rssBytes)) resident, peak \(Format.bytes(s.peakRssBytes))")
      let c = s.cache
      print("gram cache:  \(Format.bytes(c.bytes)) of \(Format.bytes(c.budgetBytes)), \(c.entries) entries, "
            + "\(c.hits) hits, \(c.misses) misses, \(c.evictions) evictions")
      print("jobs:        \(s.jobs.running) running, \(s.jobs.queued) queued, \(s.jobs.interrupted) interrupted")
      print("connections: \(s.connections), workers: \(s.workers)")
    }
  }
}

struct DatasetsCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "datasets", abstract: "List the datasets the daemon can train and analyse on (see also `blockscope data`).")

  @OptionGroup var global: GlobalOptions

  func run() throws {
    try global.withDaemon { client in
      let response = try client.request(.datasets, DatasetsRequest())
      if global.json { return try JSONOutput.print(response.jsonOutput()) }
      print(Self.table(try response.decode(DatasetsResponse.self).datasets, reasons: true))
    }
  }

  /// The DATASETS table; `reasons`: why a dataset is unavailable, after its path (`blockscope
  /// data` prints them below instead).
  static func table(_ datasets: [DatasetsResponse.Dataset], reasons: Bool) -> String {
    var table = TextTable(["DATASET", "AVAILABLE", "TRAIN", "TEST", "CLASSES", "SHAPE", "PATH"],
                          rightAligned: [2, 3, 4])
    for d in datasets {
      let why = d.available || !reasons ? "" : (d.path.isEmpty ? "" : " ") + "(\(d.reason ?? "unavailable"))"
      table.add([d.name, d.available ? "yes" : "no", "\(d.trainCount)", "\(d.testCount)",
                 "\(d.classes)", "\(d.channels)x\(d.height)x\(d.width)", d.path + why])
    }
    return table.render()
  }
}

struct ShutdownCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "shutdown",
    abstract: "Stop the daemon gracefully (running training jobs checkpoint and become interrupted).",
    discussion: "Never starts a daemon: with none at the socket it exits 3.")

  @OptionGroup var global: GlobalOptions

  func run() throws {
    try global.withDaemon(autoStart: false) { client in
      let response = try client.request(.shutdown, ShutdownRequest())
      if global.json { return try JSONOutput.print(response.jsonOutput()) }
      let n = try response.decode(ShutdownResponse.self).jobsCheckpointed
      print("blockscoped is stopping; \(n) running training job\(n == 1 ? "" : "s") checkpointed"
            + (n > 0 ? " (resume with: blockscope resume JOB)" : ""))
    }
  }
}
