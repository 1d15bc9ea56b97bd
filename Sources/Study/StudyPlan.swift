import Wire

/// What the planner knows of one model of the grid (from the daemon's store).
public struct ModelFacts: Sendable, Equatable {
  public var trained: Bool
  public var testAccuracy: Double?
  /// Snapshot epochs stored as models of their own.
  public var snapshots: Set<Int>
  public init(trained: Bool, testAccuracy: Double? = nil, snapshots: Set<Int> = []) {
    self.trained = trained
    self.testAccuracy = testAccuracy
    self.snapshots = snapshots
  }
}

/// One analysis of a study: an existing request of the protocol, whose response is stored
/// under `key` (`heatmap/MODEL`, `cross_seed/A+B`, ...).
public struct PlannedAnalysis: Sendable, Equatable {
  public var key: String
  public var kind: String
  /// Models that must be trained before it runs (for snapshots: the snapshot models).
  public var models: [String]
  public var type: MessageType
  /// The request doc (JSON, sorted keys).
  public var request: [UInt8]
  public var epoch: Int?
  public var axis: String?
  public var groups: [String]?
  /// The grid model it belongs to (per-model analyses and snapshots), for progress per model.
  public var owner: String?
  /// For a population comparison: the key of its seed-vs-seed null.
  public var null: String?

  /// The entry STUDY_RESULTS lists once it is stored.
  public func result(bytes: Int) -> StudyResultsResponse.Result {
    StudyResultsResponse.Result(key: key, kind: kind, models: models, type: type.responseType!.name,
                                epoch: epoch, axis: axis, groups: groups, null: null, bytes: bytes)
  }
}

/// Which analyses a study runs, in the order they should run. Pure: the same declaration and
/// facts give the same plan, so a restarted daemon plans exactly what is missing.
public struct StudyPlanner: Sendable {
  public let declaration: StudyDeclaration
  public let models: [StudyModel]
  /// The dataset's classes (chance is 1/classes).
  public let classes: Int
  /// Every model's own analyses, then the cross-model ones: they depend on the declaration
  /// alone, so they are planned (and their request docs encoded) once.
  private var fixed: [PlannedAnalysis] = []

  public init(declaration: StudyDeclaration, classes: Int) {
    self.declaration = declaration
    self.models = declaration.models()
    self.classes = classes
    fixed = models.flatMap(perModel) + crossModel()
  }

  /// Test accuracy below chance plus the declared margin: the model failed to train.
  public func isNearChance(_ accuracy: Double?) -> Bool {
    guard let accuracy, classes > 0 else { return false }
    return accuracy < 1.0 / Double(classes) + declaration.nearChanceMargin
  }

  private func wants(_ kind: StudyDeclaration.AnalysisKind) -> Bool {
    declaration.analyses.contains(kind)
  }

  /// The analyses of one model (also those of its snapshots).
  public func perModel(_ m: StudyModel) -> [PlannedAnalysis] {
    let d = declaration
    var out: [PlannedAnalysis] = []
    func heatmap(_ model: String, remove: Bool) -> HeatmapRequest {
      HeatmapRequest(model: model, removePC1: remove,
                     examples: ExampleSelection(split: .test, count: d.heatmapExamples),
                     batchSize: d.heatmapBatch, passes: d.heatmapPasses, bootstrap: d.bootstrap)
    }
    func pc(_ model: String) -> PCRequest {
      PCRequest(model: model, examples: ExampleSelection(split: .test, count: d.pcExamples))
    }
    let name = m.name
    if wants(.heatmap) {
      out.append(plan("heatmap/\(name)", "heatmap", [name], .heatmap, heatmap(name, remove: false), owner: name))
    }
    if wants(.pc) {
      out.append(plan("pc/\(name)", "pc", [name], .pc, pc(name), owner: name))
      out.append(plan("heatmap_no_pc1/\(name)", "heatmap_no_pc1", [name], .heatmap,
                      heatmap(name, remove: true), owner: name))
    }
    if wants(.probe) {
      let probe = ProbeRequest(model: name, layers: Self.probeLayers(m.point), epochs: d.probeEpochs,
                               trainExamples: d.probeTrainExamples, testExamples: d.probeTestExamples)
      out.append(plan("probe/\(name)", "probe", [name], .probe, probe, owner: name))
    }
    if wants(.deletion) {
      out.append(plan("deletion/\(name)", "deletion", [name], .deleteBlocks,
                      DeleteBlocksRequest(model: name, testExamples: d.deletionTestExamples), owner: name))
    }
    for epoch in d.snapshotEpochs.sorted() {
      let snap = RecipeName.snapshot(name, epoch: epoch)
      if wants(.heatmap) {
        out.append(plan("snapshot_heatmap/\(snap)", "snapshot_heatmap", [snap], .heatmap,
                        heatmap(snap, remove: false), epoch: epoch, owner: name))
      }
      if wants(.pc) {
        out.append(plan("snapshot_pc/\(snap)", "snapshot_pc", [snap], .pc, pc(snap), epoch: epoch, owner: name))
      }
    }
    return out
  }

  /// Cross-seed heatmaps (the first seed against each other one, per architecture group) and
  /// cross-architecture heatmaps between grid neighbours at the first seed: points that differ
  /// along one axis by one step (depth, width, fraction; plain against residual at the same
  /// width).
  public func crossModel() -> [PlannedAnalysis] {
    let d = declaration
    var out: [PlannedAnalysis] = []
    let byPoint = Dictionary(uniqueKeysWithValues: models.map { ($0.point, $0.name) })
    func cross(_ kind: String, _ a: String, _ b: String, axis: String) -> PlannedAnalysis {
      let r = HeatmapRequest(model: a, other: b, examples: ExampleSelection(split: .test, count: d.heatmapExamples),
                             batchSize: d.heatmapBatch, passes: d.heatmapPasses, bootstrap: d.bootstrap)
      return plan("\(kind)/\(a)+\(b)", kind, [a, b], .heatmap, r, axis: axis)
    }
    if wants(.crossSeed), d.seeds.count >= 2 {
      for m in models where m.point.seed == d.seeds[0] {
        for seed in d.seeds.dropFirst() {
          var p = m.point
          p.seed = seed
          if let other = byPoint[p] { out.append(cross("cross_seed", m.name, other, axis: "seed")) }
        }
      }
    }
    if wants(.crossArchitecture) {
      let depths = d.depths.sorted(), widths = d.widths.sorted(), fractions = d.fractions.sorted()
      let plainWidths = d.plainWidths.sorted()
      for m in models where m.point.seed == d.seeds[0] {
        let p = m.point
        var neighbours: [(GridPoint, String)] = []
        if let i = depths.firstIndex(of: p.depth), i + 1 < depths.count {
          var q = p
          q.depth = depths[i + 1]
          neighbours.append((q, "depth"))
        }
        let axisWidths = p.plain ? plainWidths : widths
        if let i = axisWidths.firstIndex(of: p.width), i + 1 < axisWidths.count {
          var q = p
          q.width = axisWidths[i + 1]
          neighbours.append((q, "width"))
        }
        if let i = fractions.firstIndex(of: p.fraction), i + 1 < fractions.count {
          var q = p
          q.fraction = fractions[i + 1]
          neighbours.append((q, "fraction"))
        }
        if !p.plain, plainWidths.contains(p.width) {
          var q = p
          q.plain = true
          neighbours.append((q, "plain"))
        }
        for (q, axis) in neighbours {
          if let other = byPoint[q] { out.append(cross("cross_architecture", m.name, other, axis: axis)) }
        }
      }
    }
    return out
  }

  /// Output comparisons between architecture groups whose every seed is trained (2+ seeds),
  /// not near chance, and whose mean test accuracies differ by at most `similar_accuracy`;
  /// each with the null of its first group (its seeds split into two disjoint halves).
  public func populations(_ facts: [String: ModelFacts]) -> [PlannedAnalysis] {
    let d = declaration
    guard wants(.populations), d.seeds.count >= 2 else { return [] }
    var groups: [ArchitectureGroup: [StudyModel]] = [:]
    var order: [ArchitectureGroup] = []
    for m in models {
      if groups[m.point.group] == nil { order.append(m.point.group) }
      groups[m.point.group, default: []].append(m)
    }
    var ready: [(ArchitectureGroup, [String], Double)] = []
    for g in order {
      let members = groups[g]!
      let accuracies = members.compactMap { facts[$0.name]?.testAccuracy }
      guard accuracies.count == members.count, members.allSatisfy({ facts[$0.name]?.trained == true }) else { continue }
      // A failed seed would make a population of failed nets and others: none is compared.
      guard !accuracies.contains(where: isNearChance) else { continue }
      let mean = accuracies.reduce(0, +) / Double(accuracies.count)
      ready.append((g, members.map(\.name), mean))
    }
    let examples = ExampleSelection(split: .test, count: d.populationTestExamples)
    var out: [PlannedAnalysis] = []
    var nulls = Set<ArchitectureGroup>()
    for i in ready.indices {
      for j in ready.indices where j > i {
        let (a, am, aAcc) = ready[i], (b, bm, bAcc) = ready[j]
        guard abs(aAcc - bAcc) <= d.similarAccuracy else { continue }
        // The null of the deeper group (the paper's Figure 7b: two disjoint groups of the same
        // deep architecture).
        let (n, nm) = a.depth >= b.depth ? (a, am) : (b, bm)
        let r = CompareOutputsRequest(groups: [.init(name: a.label, models: am), .init(name: b.label, models: bm)],
                                      examples: examples, perExample: true)
        var comparison = plan("population/\(a.key)+\(b.key)", "population", am + bm, .compareOutputs, r,
                              groups: [a.label, b.label])
        comparison.null = "population_null/\(n.key)"
        out.append(comparison)
        if !nulls.contains(n) {
          nulls.insert(n)
          let half = nm.count / 2
          let r = CompareOutputsRequest(
            groups: [.init(name: n.label + " (seeds A)", models: Array(nm[..<half])),
                     .init(name: n.label + " (seeds B)", models: Array(nm[half...]))],
            examples: examples, perExample: true)
          out.append(plan("population_null/\(n.key)", "population_null", nm, .compareOutputs, r,
                          groups: [n.label + " (seeds A)", n.label + " (seeds B)"]))
        }
      }
    }
    return out
  }

  /// Every analysis known now, in the order to run them: each model's own analyses, then the
  /// cross-model ones, then populations (the runner takes the first whose models are trained).
  public func all(_ facts: [String: ModelFacts]) -> [PlannedAnalysis] {
    fixed + populations(facts)
  }

  /// Probe layers: the output of every block (its add, or `out` for plain nets) and the BN
  /// before it, as in the paper's linear probes (Nguyen et al. 2021; docs/ANALYSIS.md,
  /// "Probes, deletion, block structure, populations").
  public static func probeLayers(_ p: GridPoint) -> [String] {
    var names: [String] = []
    for stage in 1...3 {
      for block in 1...p.blocksPerStage {
        let prefix = "s\(stage).b\(block)."
        names.append(prefix + "bn2")
        names.append(prefix + (p.plain ? "out" : "add"))
      }
    }
    return names
  }

  private func plan<T: Encodable>(_ key: String, _ kind: String, _ models: [String], _ type: MessageType,
                                  _ request: T, epoch: Int? = nil, axis: String? = nil,
                                  groups: [String]? = nil, owner: String? = nil) -> PlannedAnalysis {
    // Wire's request types always encode (plain numbers, strings, arrays).
    let doc = (try? Payload.encode(request).doc) ?? []
    return PlannedAnalysis(key: key, kind: kind, models: models, type: type, request: doc, epoch: epoch,
                           axis: axis, groups: groups, owner: owner, null: nil)
  }
}
