import Foundation
import Study
import Wire

/// One stored result as the CLI fetched it (STUDY_RESULT): its index entry and payload, and
/// where the full-precision copies of its heatmap were written beside the page.
public struct FetchedResult: Sendable {
  public var entry: StudyResultsResponse.Result
  public var payload: Payload
  public var npy: String?
  public var csv: String?
  public init(entry: StudyResultsResponse.Result, payload: Payload, npy: String? = nil, csv: String? = nil) {
    self.entry = entry
    self.payload = payload
    self.npy = npy
    self.csv = csv
  }
}

/// Builds a report's data from a study's results (Wire documents): nothing is recomputed; a
/// result that is missing or does not decode becomes a note, never a failure of the whole
/// report.
public struct StudyReportBuilder {
  public let index: StudyResultsResponse
  public let results: [FetchedResult]
  /// Test accuracy by epoch of each trained model, from DESCRIBE's history: the snapshots'
  /// accuracies.
  public let histories: [String: [Int: Double]]
  /// Heatmap cells above which the page carries 8-bit values instead of 16-bit ones.
  public var sixteenBitCellBudget = 2_000_000

  private var nameLists: [String: NameList] = [:]
  private var nameListKeys: [[String]: String] = [:]
  private var notes: [String] = []
  private var bits = 16

  /// `notes`: what the caller could not fetch.
  public init(index: StudyResultsResponse, results: [FetchedResult], histories: [String: [Int: Double]] = [:],
              notes: [String] = []) {
    self.index = index
    self.results = results
    self.histories = histories
    self.notes = notes
  }

  public mutating func build(generated: String) -> ReportData {
    let d = index.declaration
    let cells = results.filter { $0.entry.type == "HEATMAP_OK" || $0.entry.kind == "pc" }
      .compactMap { $0.payload.tensor(named: HeatmapResponse.ckaTensor)?.elementCount
        ?? $0.payload.tensor(named: PCResponse.cosineTensor)?.elementCount }
      .reduce(0, +)
    bits = cells <= sixteenBitCellBudget ? 16 : 8
    let byKey = Dictionary(results.map { ($0.entry.key, $0) }, uniquingKeysWith: { a, _ in a })
    var models: [ModelEntry] = []
    for m in index.status.models {
      models.append(model(m, byKey))
    }
    var crossSeed: [CrossHeatmap] = [], crossArchitecture: [CrossHeatmap] = []
    for r in results where r.entry.kind == "cross_seed" || r.entry.kind == "cross_architecture" {
      guard r.entry.models.count == 2, let (h, _) = heatmap(r) else { continue }
      let c = CrossHeatmap(modelA: r.entry.models[0], modelB: r.entry.models[1],
                           axis: r.entry.axis ?? (r.entry.kind == "cross_seed" ? "seed" : "?"), heatmap: h)
      if r.entry.kind == "cross_seed" { crossSeed.append(c) } else { crossArchitecture.append(c) }
    }
    let populations = results.filter { $0.entry.kind == "population" }.compactMap { population($0, byKey) }
    for e in index.status.errors { notes.append("\(e.key): \(e.message)") }
    if index.status.state != .finished {
      notes.append("the study is \(index.status.state.rawValue): \(index.status.analysesDone) of "
                   + "\(index.status.analysesTotal) analyses stored when this report was written")
    }
    let summary = StudySummary(
      name: index.status.study, dataset: d.dataset, classes: index.classes, depths: d.depths.sorted(),
      widths: d.widths.sorted(), fractions: d.fractions.sorted(), seeds: d.seeds.sorted(),
      plainWidths: d.plainWidths.sorted(), epochs: d.epochs, snapshotEpochs: d.snapshotEpochs.sorted(),
      declaration: Self.declarationText(d))
    return ReportData(study: summary, generated: generated, nameLists: nameLists, models: models,
                      crossSeed: crossSeed, crossArchitecture: crossArchitecture, populations: populations,
                      notes: notes)
  }

  static func declarationText(_ d: StudyDeclaration) -> String {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    return (try? e.encode(d)).map { String(decoding: $0, as: UTF8.self) } ?? ""
  }

  // MARK: Per model

  private mutating func model(_ m: StudyModelStatus, _ byKey: [String: FetchedResult]) -> ModelEntry {
    var e = ModelEntry(model: m.model, depth: m.depth, width: m.width, fraction: m.fraction, seed: m.seed,
                       plain: m.plain, state: m.state.rawValue)
    e.testAccuracy = m.testAccuracy
    e.nearChance = m.nearChance
    e.epochsTrained = m.epoch
    if m.nearChance {
      e.notes.append("test accuracy \(percent(m.testAccuracy)) is near chance (\(percent(1 / Double(max(1, index.classes))))): "
                     + "its high CKA is a failed net's, not the paper's block structure")
    }
    if let error = m.error { e.notes.append(error) }
    var rowNames: [String] = []
    if let r = byKey["heatmap/\(m.model)"], let (h, doc) = heatmap(r) {
      e.heatmap = h
      rowNames = doc.rowNames
      if let b = doc.blockStructure {
        e.hasBlockStructure = b.hasBlockStructure
        e.blockScore = b.blockScore
        let names = doc.rowNames
        e.blockRanges = b.ranges.filter { 0 <= $0.first && $0.first <= $0.last && $0.last < names.count }.map {
          BlockRange(first: $0.first, last: $0.last, firstName: names[$0.first], lastName: names[$0.last],
                     blocksSpanned: $0.blocksSpanned, meanCka: $0.meanCka, contrast: $0.contrast)
        }
        if e.blockRanges.count != b.ranges.count {
          notes.append("\(m.model): a block range outside its heatmap's \(names.count) representations was left out")
        }
      }
    }
    if let r = byKey["heatmap_no_pc1/\(m.model)"], let (h, _) = heatmap(r) { e.heatmapNoPC1 = h }
    if let r = byKey["pc/\(m.model)"], let (names, fractions, cosine) = pc(r) {
      e.pcNames = names
      e.pc1Fraction = fractions
      e.pc1Cosine = cosine
      // Inside / outside the blocks needs the heatmap's verdict.
      let list = e.heatmap == nil ? [] : nameLists[names]?.names ?? []
      var inside: [Double] = [], outside: [Double] = []
      for (i, name) in list.enumerated() {
        guard let f = fractions[i] else { continue }
        let rowIndex = rowNames.firstIndex(of: name)
        if let rowIndex, e.blockRanges.contains(where: { $0.first <= rowIndex && rowIndex <= $0.last }) {
          inside.append(f)
        } else {
          outside.append(f)
        }
      }
      e.pc1Inside = inside.isEmpty ? nil : inside.reduce(0, +) / Double(inside.count)
      e.pc1Outside = outside.isEmpty ? nil : outside.reduce(0, +) / Double(outside.count)
    }
    if let r = byKey["probe/\(m.model)"], let doc = decode(ProbeResponse.self, r) {
      e.probes = doc.layers.compactMap { l in
        rowNames.firstIndex(of: l.name).map { ProbePoint(name: l.name, index: $0, testAccuracy: l.testAccuracy) }
      }
    }
    if let r = byKey["deletion/\(m.model)"], let doc = decode(DeleteBlocksResponse.self, r) {
      e.deletion = Deletion(
        intactAccuracy: doc.intactAccuracy,
        blocks: doc.blocks.map { .init(block: $0.block, stage: $0.stage, index: $0.index, removable: $0.removable, accuracy: $0.accuracy) },
        stageTails: doc.stageTails.map { .init(stage: $0.stage, removed: $0.removed, accuracy: $0.accuracy) })
    }
    for epoch in index.declaration.snapshotEpochs.sorted() {
      let snap = RecipeName.snapshot(m.model, epoch: epoch)
      var s = Snapshot(epoch: epoch)
      s.testAccuracy = histories[m.model]?[epoch]
      if let r = byKey["snapshot_heatmap/\(snap)"], let (h, doc) = heatmap(r) {
        s.heatmap = h
        s.hasBlockStructure = doc.blockStructure?.hasBlockStructure
      }
      if let r = byKey["snapshot_pc/\(snap)"], let (_, fractions, _) = pc(r) { s.pc1Fraction = fractions }
      if s.heatmap != nil || s.pc1Fraction != nil { e.snapshots.append(s) }
    }
    return e
  }

  // MARK: Documents

  private mutating func decode<T: Decodable>(_ type: T.Type, _ r: FetchedResult) -> T? {
    do {
      return try r.payload.decode(T.self)
    } catch {
      notes.append("\(r.entry.key): its stored result does not decode (\(error.message)); not shown")
      return nil
    }
  }

  /// The heatmap of a HEATMAP_OK result, quantised, and its doc.
  private mutating func heatmap(_ r: FetchedResult) -> (QuantisedHeatmap, HeatmapResponse)? {
    guard let doc = decode(HeatmapResponse.self, r) else { return nil }
    let rows = doc.rowNames.count, columns = doc.columnNames.count
    guard let values = r.payload.tensor(named: HeatmapResponse.ckaTensor)?.doubles, values.count == rows * columns,
          let defined = r.payload.tensor(named: HeatmapResponse.definedTensor)?.uint8s, defined.count == rows * columns else {
      notes.append("\(r.entry.key): its heatmap tensors are missing or of the wrong shape; not shown")
      return nil
    }
    let se = r.payload.tensor(named: HeatmapResponse.standardErrorsTensor)?.doubles
    var h = HeatmapQuantiser.quantise(
      values: values, defined: defined.map { $0 != 0 }, rows: rows, columns: columns,
      rowNames: nameList(doc.rowNames), columnNames: nameList(doc.columnNames), bits: bits,
      standardErrors: se?.count == rows * columns ? se : nil)
    h.npy = r.npy
    h.csv = r.csv
    return (h, doc)
  }

  /// A PC_OK result: its name list key, PC1 fraction per layer, the PC1 cosine heatmap.
  private mutating func pc(_ r: FetchedResult) -> (String, [Double?], QuantisedHeatmap)? {
    guard let doc = decode(PCResponse.self, r) else { return nil }
    let names = doc.layers.map(\.name), n = names.count
    guard let cosine = r.payload.tensor(named: PCResponse.cosineTensor)?.doubles, cosine.count == n * n else {
      notes.append("\(r.entry.key): its cosine tensor is missing or of the wrong shape; not shown")
      return nil
    }
    let key = nameList(names)
    let h = HeatmapQuantiser.quantise(values: cosine, defined: cosine.map(\.isFinite), rows: n, columns: n,
                                      rowNames: key, columnNames: key, bits: bits)
    return (key, doc.layers.map(\.pc1Fraction), h)
  }

  private mutating func population(_ r: FetchedResult, _ byKey: [String: FetchedResult]) -> PopulationComparison? {
    guard let doc = decode(CompareOutputsResponse.self, r), doc.groups.count == 2,
          let comparison = doc.comparisons.first else { return nil }
    let labels = r.entry.groups ?? doc.groups.map(\.group)
    guard labels.count == 2, let nullKey = r.entry.null, let null = byKey[nullKey],
          let nullDoc = decode(CompareOutputsResponse.self, null), nullDoc.groups.count == 2,
          let nullComparison = nullDoc.comparisons.first else {
      notes.append("\(r.entry.key): its seed-vs-seed null is not stored yet; not shown")
      return nil
    }
    func scatter(_ doc: CompareOutputsResponse, _ c: CompareOutputsResponse.Comparison) -> PopulationComparison.Scatter? {
      let a = doc.groups[0], b = doc.groups[1]
      guard let xa = a.exampleAccuracies, let yb = b.exampleAccuracies, xa.count == yb.count else { return nil }
      func encode(_ v: [Double]) -> String {
        Data(v.map { UInt8(max(0, min(254, ($0 * 254).rounded()))) }).base64EncodedString()
      }
      return .init(x: .init(label: a.group, models: a.models, meanAccuracy: a.meanAccuracy),
                   y: .init(label: b.group, models: b.models, meanAccuracy: b.meanAccuracy),
                   examples: xa.count, xAccuracy: encode(xa), yAccuracy: encode(yb),
                   significantFraction: c.examples.significantFraction)
    }
    guard let s = scatter(doc, comparison), let n = scatter(nullDoc, nullComparison) else {
      notes.append("\(r.entry.key): per-example accuracies are missing; not shown")
      return nil
    }
    let nullClasses = Dictionary(nullComparison.classes.map { ($0.classIndex, $0) }, uniquingKeysWith: { a, _ in a })
    // A class the null does not have (it cannot: both use the same examples) would draw at 0.
    let classes = comparison.classes.map { c in
      PopulationComparison.ClassDifference(
        classIndex: c.classIndex, accuracyA: c.meanAccuracyA, accuracyB: c.meanAccuracyB,
        nullAccuracyA: nullClasses[c.classIndex]?.meanAccuracyA ?? 0,
        nullAccuracyB: nullClasses[c.classIndex]?.meanAccuracyB ?? 0, significant: c.significant)
    }
    var notes: [String] = []
    if abs(s.x.meanAccuracy - s.y.meanAccuracy) > index.declaration.similarAccuracy {
      notes.append("the groups' mean accuracies differ by more than \(percent(index.declaration.similarAccuracy))")
    }
    return PopulationComparison(title: "\(labels[0]) vs \(labels[1])", comparison: s, null: n, classes: classes, notes: notes)
  }

  // MARK: Names

  /// The key of a name list (lists with the same names share one).
  private mutating func nameList(_ names: [String]) -> String {
    if let key = nameListKeys[names] { return key }
    let key = "n\(nameLists.count)"
    nameListKeys[names] = key
    nameLists[key] = NameList(names: names, stages: names.map(Self.stage))
    return key
  }

  /// 0 for `input` and the stem, S for `sS.*`, 4 for the head.
  static func stage(_ name: String) -> Int {
    if name == "input" || name.hasPrefix("stem.") { return 0 }
    if name.hasPrefix("s"), let dot = name.firstIndex(of: "."), let s = Int(name[name.index(after: name.startIndex)..<dot]) {
      return s
    }
    return 4
  }
}

private func percent(_ x: Double?) -> String {
  guard let x, x.isFinite else { return "-" }
  return String(format: "%.1f %%", 100 * x)
}
