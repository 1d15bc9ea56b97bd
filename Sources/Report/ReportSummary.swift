import Foundation

/// The report's table of models as Markdown (`summary.md` beside the page): recipe, accuracy,
/// block verdict and ranges, PC1 inside / outside the blocks, and the study's notes.
public enum ReportSummary {
  public static func markdown(_ data: ReportData) -> String {
    let s = data.study
    var lines = [
      "# Study \(s.name): \(s.dataset)",
      "",
      "Depths \(list(s.depths.map(String.init))), widths \(list(s.widths.map(num))), fractions "
        + "\(list(s.fractions.map(num))), seeds \(list(s.seeds.map(String.init)))"
        + (s.plainWidths.isEmpty ? "" : ", plain nets at widths \(list(s.plainWidths.map(num)))")
        + "; \(s.epochs) epochs. Report written \(data.generated).",
      "",
      "| model | depth | width | fraction | seed | test accuracy | block structure | block score | PC1 inside / outside |",
      "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in data.models {
      var verdict: String
      switch m.hasBlockStructure {
      case nil: verdict = "-"
      case false?: verdict = "none"
      case true?:
        verdict = m.blockRanges.map {
          "\($0.firstName) .. \($0.lastName) (\($0.blocksSpanned) blocks, CKA \(String(format: "%.3f", $0.meanCka))"
            + ($0.contrast.map { String(format: ", contrast %.2f", $0) } ?? "") + ")"
        }.joined(separator: "; ")
      }
      if m.nearChance { verdict = "NEAR CHANCE (not block structure): " + verdict }
      lines.append("| \(m.model) | \(m.depth)\(m.plain ? " plain" : "") | \(num(m.width)) | \(num(m.fraction)) | \(m.seed) "
                   + "| \(percent(m.testAccuracy)) | \(verdict) | \(fixed(m.blockScore, 2)) "
                   + "| \(fixed(m.pc1Inside, 3)) / \(fixed(m.pc1Outside, 3)) |")
    }
    let notes = data.notes + data.models.flatMap { m in m.notes.map { "\(m.model): \($0)" } }
    if !notes.isEmpty {
      lines += ["", "Notes:", ""] + notes.map { "- " + $0 }
    }
    return lines.joined(separator: "\n") + "\n"
  }

  private static func list(_ items: [String]) -> String { items.joined(separator: ", ") }
  private static func num(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : String(x) }
  private static func percent(_ x: Double?) -> String { x.map { String(format: "%.2f %%", 100 * $0) } ?? "-" }
  private static func fixed(_ x: Double?, _ digits: Int) -> String { x.map { String(format: "%.\(digits)f", $0) } ?? "-" }
}
