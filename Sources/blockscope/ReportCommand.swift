import ArgumentParser
import Foundation
import Report
import Study
import Wire

/// `blockscope report NAME --out DIR`: a study's stored results, fetched through the socket,
/// as one self-contained page (`DIR/index.html`, opens from file://) with every heatmap's full
/// precision beside it (`DIR/data/KEY.npy` and `.csv`). Nothing is recomputed.
struct ReportCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "report",
    abstract: "Write a study's interactive report: DIR/index.html (self-contained), DIR/summary.md and DIR/data/ (.npy, .csv).",
    discussion: """
      Works on a running study too: the page shows what is stored so far and says what is \
      missing. Open the printed file:// address in a browser; no server or network is needed.
      """)

  @OptionGroup var global: GlobalOptions
  @OptionGroup var name: StudyArgument
  @Option(help: ArgumentHelp("Output directory (created if needed).", valueName: "dir")) var out: String

  func run() throws {
    try global.withDaemon { client in
      var index = try client.request(.studyResults, StudyResultsRequest(study: name.study))
        .decode(StudyResultsResponse.self)
      // Further pages: the results only (status and declaration are the first page's).
      while let next = index.nextOffset {
        let page = try client.request(.studyResults, StudyResultsRequest(study: name.study, offset: next))
          .decode(StudyResultsResponse.self)
        guard page.offset == next, !page.results.isEmpty || page.nextOffset == nil else {
          throw OutputError("the daemon answered page \(next) of the result index with offset \(page.offset)")
        }
        index.results += page.results
        index.nextOffset = page.nextOffset
      }
      let dataDirectory = Files.join(out, "data")
      try Files.makeDirectory(dataDirectory)
      var fetched: [FetchedResult] = []
      var notes: [String] = []
      for (i, entry) in index.results.enumerated() {
        if !global.json { printError("fetching \(i + 1)/\(index.results.count): \(entry.key)") }
        let r: DaemonResponse
        do {
          r = try client.request(.studyResult, StudyResultRequest(study: name.study, key: entry.key))
        } catch let error as DaemonError where !error.closesConnection {
          // One unreadable result (CORRUPT, ...) is a note on the page, not the end of the report.
          notes.append("\(entry.key): not shown: \(error)")
          continue
        }
        var result = FetchedResult(entry: entry, payload: r.payload)
        if entry.type == MessageType.heatmapOK.name {
          (result.npy, result.csv) = try writeHeatmapFiles(entry, r, dataDirectory)
        }
        fetched.append(result)
      }
      var histories: [String: [Int: Double]] = [:]
      for m in index.status.models where m.epoch > 0 && !index.declaration.snapshotEpochs.isEmpty {
        if let d = try? client.request(.describe, ModelRequest(model: m.model)).decode(DescribeResponse.self) {
          histories[m.model] = Dictionary(d.history.map { ($0.epoch, $0.testAccuracy) }, uniquingKeysWith: { a, _ in a })
        }
      }
      var builder = StudyReportBuilder(index: index, results: fetched, histories: histories, notes: notes)
      let data = builder.build(generated: rfc3339Now())
      let html: String
      do {
        html = try ReportPage.html(data)
      } catch {
        throw OutputError("cannot render the report: \(error)")
      }
      let page = Files.join(out, "index.html")
      try Files.write(html, to: page)
      try Files.write(ReportSummary.markdown(data), to: Files.join(out, "summary.md"))
      let absolute = page.hasPrefix("/") ? page : FileManager.default.currentDirectoryPath + "/" + page
      if global.json {
        try JSONOutput.print(["page": absolute, "results": index.results.count, "state": index.status.state.rawValue,
                              "bytes": html.utf8.count])
      } else {
        print("file://" + absolute)
        printError("report of \(index.status.study) (\(index.status.state.rawValue)): \(index.results.count) results, "
                   + "\(Format.bytes(html.utf8.count)) page")
      }
    }
  }

  /// `data/heatmap__MODEL.npy` and `.csv` (paths relative to the page); none for a result whose
  /// matrix does not match its names.
  private func writeHeatmapFiles(_ entry: StudyResultsResponse.Result, _ r: DaemonResponse,
                                 _ directory: String) throws -> (String?, String?) {
    guard let heatmap = try? HeatmapResult(r) else { return (nil, nil) }
    let base = entry.key.replacingOccurrences(of: "/", with: "__")
    try heatmap.writeMatrix(npy: Files.join(directory, base + ".npy"), csv: Files.join(directory, base + ".csv"))
    return ("data/\(base).npy", "data/\(base).csv")
  }
}

/// RFC 3339 UTC, now.
func rfc3339Now() -> String {
  let f = ISO8601DateFormatter()
  f.formatOptions = [.withInternetDateTime]
  return f.string(from: Date())
}
