import ArgumentParser
import Wire

/// `blockscope foreign`: the foreign models the daemon holds Grams of (streamed by other tools,
/// e.g. tools/blockscope_torch.py), so a shell user can re-ask for their heatmaps:
/// `blockscope heatmap NAME --foreign --batch B ...`.
struct ForeignCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "foreign",
    abstract: "List the foreign models (networks streamed by other tools) and their batches.",
    discussion: """
      A foreign model's heatmaps come from the Gram cache: `blockscope heatmap NAME --foreign` \
      (every batch it holds) or with `--batch B` once per batch; `--other M` pairs it with a \
      stored model on its dataset-reference batches. Foreign models live in the daemon's \
      memory only.
      """)

  @OptionGroup var global: GlobalOptions
  @Flag(help: "Also list every batch of each model.")
  var batches = false

  func run() throws {
    try global.withDaemon { client in
      let response = try client.request(.foreignModels, ForeignModelsRequest())
      if global.json { return try JSONOutput.print(response.jsonOutput()) }
      let models = try response.decode(ForeignModelsResponse.self).models
      if models.isEmpty {
        print("no foreign models")
        return
      }
      var table = TextTable(["MODEL", "FINGERPRINT", "REPRESENTATIONS", "BATCHES", "EXAMPLES", "SESSIONS"],
                            rightAligned: [2, 3, 4, 5])
      for m in models {
        let complete = m.batches.filter { $0.representations == m.representations.count }
        table.add([m.model, m.fingerprint, "\(m.representations.count)",
                   complete.count == m.batches.count ? "\(m.batches.count)" : "\(complete.count) of \(m.batches.count)",
                   "\(complete.reduce(0) { $0 + $1.examples })", "\(m.sessions.count)"])
      }
      print(table.render())
      guard batches else { return }
      for m in models {
        print("\n\(m.model):")
        var list = TextTable(["BATCH", "EXAMPLES", "REPRESENTATIONS"], rightAligned: [1, 2])
        for b in m.batches { list.add([b.batch, "\(b.examples)", "\(b.representations)/\(m.representations.count)"]) }
        print(list.render())
      }
    }
  }
}
