import Foundation

/// A plausible, fully synthetic `ReportData` (no daemon, no training): for tests of the page,
/// the real-browser test's fixture and demos. Deterministic.
///
/// Grid: depths 8, 14, 20 and 56 (ResNet-56: 198 representations, the large heatmap of the
/// redraw-speed check), widths 1 and 2, fractions 0.25 and 1, seeds 0 and 1, plain nets at
/// width 1; snapshots after epochs 1 and 3 of 6. Block structure (a bright square over the end
/// of stage 2 and stage 3) in the deep, the wide small-data, and the plain deep models, with
/// PC1 explaining much of the variance inside it; probes, deletion curves, cross-seed and
/// cross-architecture heatmaps and one population comparison. Some models are missing results
/// on purpose: `r20 k2 f0.25 s1` is still training, `r56 k2 f1 s1` and `p56 k1 f1 s1` are
/// queued, `r56 k2 f0.25 s1` stalled near chance, one constant representation (`s3.b1.shortcut`)
/// gives undefined cells in `r56 k1 f1 s1`.
public enum SyntheticReport {
  public static let dataset = "fashion-mnist"
  public static let epochs = 6

  public static func make(depths: [Int] = [8, 14, 20, 56], widths: [Double] = [1, 2],
                          fractions: [Double] = [0.25, 1], seeds: [UInt64] = [0, 1],
                          plainWidths: [Double] = [1], snapshotEpochs: [Int] = [1, 3],
                          populations: Bool = true) -> ReportData {
    var nameLists: [String: NameList] = [:]
    for d in depths {
      nameLists[listKey(depth: d, plain: false)] = names(depth: d, plain: false)
      if !plainWidths.isEmpty { nameLists[listKey(depth: d, plain: true)] = names(depth: d, plain: true) }
    }

    struct Point { var depth: Int; var width: Double; var fraction: Double; var plain: Bool; var seed: UInt64 }
    var points: [Point] = []
    for seed in seeds {
      for f in fractions {
        for d in depths {
          for w in widths { points.append(Point(depth: d, width: w, fraction: f, plain: false, seed: seed)) }
          for w in plainWidths { points.append(Point(depth: d, width: w, fraction: f, plain: true, seed: seed)) }
        }
      }
    }
    // The study's grid order: cheapest first within each seed.
    points.sort {
      let ca = Double($0.depth) * $0.width * $0.width * $0.fraction
      let cb = Double($1.depth) * $1.width * $1.width * $1.fraction
      return ($0.seed, ca, $0.depth, $0.width, $0.fraction, $0.plain ? 1 : 0)
        < ($1.seed, cb, $1.depth, $1.width, $1.fraction, $1.plain ? 1 : 0)
    }

    var models: [ModelEntry] = []
    var specs: [String: Spec] = [:]
    for p in points {
      let spec = Spec(depth: p.depth, width: p.width, fraction: p.fraction, plain: p.plain, seed: p.seed,
                      list: nameLists[listKey(depth: p.depth, plain: p.plain)]!)
      let entry = model(spec, snapshotEpochs: snapshotEpochs)
      specs[entry.model] = spec
      models.append(entry)
    }
    let done = Set(models.filter { $0.heatmap != nil }.map(\.model))
    func find(_ d: Int, _ w: Double, _ f: Double, _ plain: Bool, _ seed: UInt64) -> ModelEntry? {
      models.first { $0.depth == d && $0.width == w && $0.fraction == f && $0.plain == plain && $0.seed == seed }
    }

    // Cross-seed: the first seed against each other one (as the study plans them).
    var crossSeed: [CrossHeatmap] = []
    if seeds.count >= 2 {
      for a in models where a.seed == seeds[0] && done.contains(a.model) {
        for s in seeds.dropFirst() {
          guard let b = find(a.depth, a.width, a.fraction, a.plain, s), done.contains(b.model) else { continue }
          crossSeed.append(CrossHeatmap(modelA: a.model, modelB: b.model, axis: "seed",
                                        heatmap: cross(specs[a.model]!, specs[b.model]!, sameArchitecture: true)))
        }
      }
    }
    // Cross-architecture: grid neighbours at the first seed.
    var crossArchitecture: [CrossHeatmap] = []
    if let s0 = seeds.first {
      let ds = depths.sorted(), ws = widths.sorted(), fs = fractions.sorted(), pws = plainWidths.sorted()
      for a in models where a.seed == s0 && done.contains(a.model) {
        var next: [(ModelEntry?, String)] = []
        if let i = ds.firstIndex(of: a.depth), i + 1 < ds.count { next.append((find(ds[i + 1], a.width, a.fraction, a.plain, s0), "depth")) }
        let aw = a.plain ? pws : ws
        if let i = aw.firstIndex(of: a.width), i + 1 < aw.count { next.append((find(a.depth, aw[i + 1], a.fraction, a.plain, s0), "width")) }
        if let i = fs.firstIndex(of: a.fraction), i + 1 < fs.count { next.append((find(a.depth, a.width, fs[i + 1], a.plain, s0), "fraction")) }
        if !a.plain, pws.contains(a.width) { next.append((find(a.depth, a.width, a.fraction, true, s0), "plain")) }
        for (b, axis) in next {
          guard let b, done.contains(b.model) else { continue }
          crossArchitecture.append(CrossHeatmap(modelA: a.model, modelB: b.model, axis: axis,
                                                heatmap: cross(specs[a.model]!, specs[b.model]!, sameArchitecture: false)))
        }
      }
    }

    var pops: [PopulationComparison] = []
    if populations, seeds.count >= 2, let small = depths.first, let deep = depths.last {
      let f = fractions.first!
      let wide = widths.last!, narrow = widths.first!
      let a = models.filter { $0.depth == small && $0.width == wide && $0.fraction == f && !$0.plain }
      let b = models.filter { $0.depth == deep && $0.width == narrow && $0.fraction == f && !$0.plain }
      if !a.isEmpty, !b.isEmpty {
        pops.append(population(a: a, b: b, classes: 10, examples: 2000))
      }
    }

    func list<T>(_ xs: [T], _ f: (T) -> String) -> String { "[" + xs.map(f).joined(separator: ",") + "]" }
    let declaration = "{\"name\":\"synthetic-grid\",\"dataset\":\"\(dataset)\",\"depths\":\(list(depths) { String($0) }),"
      + "\"widths\":\(list(widths, shortNumber)),\"fractions\":\(list(fractions, shortNumber)),"
      + "\"seeds\":\(list(seeds) { String($0) }),\"plain_widths\":\(list(plainWidths, shortNumber)),"
      + "\"epochs\":\(epochs),\"snapshot_epochs\":\(list(snapshotEpochs) { String($0) })}"
    let study = StudySummary(name: "synthetic-grid", dataset: dataset, classes: 10, depths: depths.sorted(),
                             widths: widths.sorted(), fractions: fractions.sorted(), seeds: seeds.sorted(),
                             plainWidths: plainWidths.sorted(), epochs: epochs, snapshotEpochs: snapshotEpochs.sorted(),
                             declaration: declaration)
    return ReportData(study: study, generated: "2026-12-07T12:00:00Z", nameLists: nameLists, models: models,
                      crossSeed: crossSeed, crossArchitecture: crossArchitecture, populations: pops,
                      notes: ["Synthetic data: made by SyntheticReport for tests, not by training."])
  }

  // MARK: - Names

  public static func listKey(depth: Int, plain: Bool) -> String { (plain ? "plain" : "resnet") + String(depth) }

  /// 21n + 9 representations for a residual net (18n + 7 plain), input to output.
  public static func names(depth: Int, plain: Bool) -> NameList {
    let n = (depth - 2) / 6
    var names = ["input", "stem.conv", "stem.bn", "stem.relu"]
    var stages = [0, 0, 0, 0]
    for s in 1...3 {
      for b in 1...max(1, n) {
        let p = "s\(s).b\(b)."
        var block = [p + "conv1", p + "bn1", p + "relu1", p + "conv2", p + "bn2"]
        if !plain {
          if s >= 2 && b == 1 { block.append(p + "shortcut") }
          block.append(p + "add")
        }
        block.append(p + "out")
        names += block
        stages += Array(repeating: s, count: block.count)
      }
    }
    names += ["pool", "logits", "probs"]
    stages += [4, 4, 4]
    return NameList(names: names, stages: stages)
  }

  // MARK: - One model

  struct Spec {
    var depth: Int, width: Double, fraction: Double, plain: Bool, seed: UInt64
    var list: NameList
    var n: Int { (depth - 2) / 6 }
    var count: Int { list.names.count }
    var label: String { "\(plain ? "p" : "r")\(depth) k\(shortNumber(width)) f\(shortNumber(fraction)) s\(seed)" }
    var hasBlock: Bool {
      if depth >= 56 { return true }
      if fraction >= 1 { return false }
      return depth >= 20 || (width >= 2 && depth >= 14)
    }
    /// The block's representation range: from the middle of stage 2 to the end of stage 3's
    /// last branch.
    var block: ClosedRange<Int>? {
      guard hasBlock else { return nil }
      let names = list.names
      let startBlock = max(1, (n + 1) / 2)
      let start = names.firstIndex(of: "s2.b\(startBlock).out") ?? 0
      let end = names.firstIndex(of: "s3.b\(n).bn2") ?? names.count - 4
      return start...end
    }
    var constantIndex: Int? {
      depth == 56 && width == 1 && fraction >= 1 && !plain && seed == 1 ? list.names.firstIndex(of: "s3.b1.shortcut") : nil
    }
    var state: String {
      switch label {
      case "r20 k2 f0.25 s1": return "training"
      case "r56 k2 f1 s1", "p56 k1 f1 s1": return "queued"
      default: return "done"
      }
    }
    var nearChance: Bool { label == "r56 k2 f0.25 s1" }
    var accuracy: Double {
      if nearChance { return 0.104 }
      var a = fraction >= 1 ? 0.905 : 0.842
      a += 0.004 * log2(Double(depth) / 8) + 0.008 * (width - 1)
      if hasBlock { a -= 0.021 }
      if plain { a -= 0.018 }
      return a + 0.003 * (unit(seedKey(self, 1)) - 0.5)
    }
    var blockScore: Double { hasBlock ? 0.18 + 0.004 * Double(depth) * width : 0.02 + 0.01 * unit(seedKey(self, 2)) }
  }

  static func unit(_ key: UInt64) -> Double {
    var r = Rng(key)
    return r.uniform()
  }

  static func seedKey(_ s: Spec, _ salt: UInt64) -> UInt64 {
    UInt64(s.depth) &* 1_000_003 &+ UInt64(s.width * 16) &* 7919 &+ UInt64(s.fraction * 1000) &* 104_729
      &+ (s.plain ? 99_991 : 0) &+ s.seed &* 15_485_863 &+ salt &* 2_654_435_761
  }

  static func modelName(_ s: Spec) -> String {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in "\(s.label) e\(epochs)".utf8 {
      h ^= UInt64(byte)
      h = h &* 0x0000_0100_0000_01B3
    }
    let hex = String(h >> 32, radix: 16)
    return "\(s.plain ? "p" : "r")\(s.depth)-k\(shortNumber(s.width))-\(dataset)-f\(shortNumber(s.fraction))"
      + "-s\(s.seed)-e\(epochs)-" + String(repeating: "0", count: 8 - hex.count) + hex
  }

  static func model(_ s: Spec, snapshotEpochs: [Int]) -> ModelEntry {
    var m = ModelEntry(model: modelName(s), depth: s.depth, width: s.width, fraction: s.fraction, seed: s.seed,
                       plain: s.plain, state: s.state)
    switch s.state {
    case "training":
      m.epochsTrained = 2
      m.notes = ["Training: epoch 2 of \(epochs)."]
      return m
    case "queued":
      return m
    default:
      break
    }
    let key = s.list.names.isEmpty ? "" : listKey(depth: s.depth, plain: s.plain)
    m.epochsTrained = epochs
    m.testAccuracy = s.accuracy
    m.nearChance = s.nearChance
    let L = s.count
    let blockRange: ClosedRange<Int>? = s.nearChance ? (4...(L - 4)) : s.block
    m.hasBlockStructure = blockRange != nil
    m.blockScore = s.nearChance ? 0.05 : s.blockScore
    if let r = blockRange {
      let blocksSpanned = Set(s.list.names[r].compactMap { n -> String? in
        let parts = n.split(separator: ".")
        return parts.count == 3 ? parts[0] + "." + parts[1] : nil
      }).count
      m.blockRanges = [BlockRange(first: r.lowerBound, last: r.upperBound, firstName: s.list.names[r.lowerBound],
                                  lastName: s.list.names[r.upperBound], blocksSpanned: blocksSpanned,
                                  meanCka: s.nearChance ? 0.991 : 0.947, contrast: s.nearChance ? 0.04 : 0.27)]
    }
    if s.nearChance {
      m.notes = ["Test accuracy 10.4 % is within the margin of chance (10 %): the model failed to train."]
    }

    let within = withinValues(s, block: blockRange, strength: 1, removePC1: false)
    m.heatmap = HeatmapQuantiser.quantise(values: within.values, defined: within.defined, rows: L, columns: L,
                                          rowNames: key, columnNames: key, bits: bits(L), standardErrors: within.se)
    let nopc = withinValues(s, block: blockRange, strength: 1, removePC1: true)
    m.heatmapNoPC1 = HeatmapQuantiser.quantise(values: nopc.values, defined: nopc.defined, rows: L, columns: L,
                                               rowNames: key, columnNames: key, bits: bits(L))
    let cos = cosineValues(s, block: blockRange)
    m.pc1Cosine = HeatmapQuantiser.quantise(values: cos.values, defined: cos.defined, rows: L, columns: L,
                                            rowNames: key, columnNames: key, bits: 8)
    m.pcNames = key
    m.pc1Fraction = pc1Fractions(s, block: blockRange, strength: 1)
    if let r = blockRange {
      let inside = m.pc1Fraction!.enumerated().filter { r.contains($0.offset) }.compactMap(\.element)
      let outside = m.pc1Fraction!.enumerated().filter { !r.contains($0.offset) }.compactMap(\.element)
      m.pc1Inside = inside.reduce(0, +) / Double(max(1, inside.count))
      m.pc1Outside = outside.reduce(0, +) / Double(max(1, outside.count))
    } else {
      let all = m.pc1Fraction!.compactMap { $0 }
      m.pc1Outside = all.reduce(0, +) / Double(max(1, all.count))
    }
    m.probes = probes(s, block: blockRange, accuracy: m.testAccuracy!)
    if !s.plain { m.deletion = deletion(s, block: blockRange, accuracy: m.testAccuracy!) }
    if s.depth == 8, s.width == 1, s.fraction == 1, s.seed == 0, !s.plain {
      m.heatmap?.npy = "data/\(m.model).heatmap.npy"
      m.heatmap?.csv = "data/\(m.model).heatmap.csv"
    }

    for e in snapshotEpochs where e < epochs {
      var snap = Snapshot(epoch: e)
      let strength = Double(e) / Double(epochs)
      snap.testAccuracy = 0.1 + (m.testAccuracy! - 0.1) * (0.55 + 0.4 * strength)
      let grown = blockRange.map { r -> ClosedRange<Int> in
        let width = max(1, Int(Double(r.count) * min(1, 1.5 * strength)))
        return r.lowerBound...(r.lowerBound + width - 1)
      }
      snap.hasBlockStructure = grown.map { $0.count >= 6 } ?? false
      let v = withinValues(s, block: snap.hasBlockStructure! ? grown : nil, strength: 0.5 + strength, removePC1: false)
      snap.heatmap = HeatmapQuantiser.quantise(values: v.values, defined: v.defined, rows: L, columns: L,
                                               rowNames: key, columnNames: key, bits: bits(L))
      snap.pc1Fraction = pc1Fractions(s, block: snap.hasBlockStructure! ? grown : nil, strength: strength)
      m.snapshots.append(snap)
    }
    return m
  }

  static func bits(_ L: Int) -> Int { L <= 80 ? 16 : 8 }

  static func isStream(_ name: String) -> Bool {
    name.hasSuffix(".add") || name.hasSuffix(".out") || name == "stem.relu" || name == "input"
  }

  static func blockOf(_ name: String) -> String? {
    let p = name.split(separator: ".")
    return p.count == 3 ? String(p[0] + "." + p[1]) : nil
  }

  static func withinValues(_ s: Spec, block: ClosedRange<Int>?, strength: Double, removePC1: Bool)
    -> (values: [Double], defined: [Bool], se: [Double]) {
    let L = s.count
    let names = s.list.names
    var rng = Rng(seedKey(s, removePC1 ? 11 : 10) &+ UInt64(strength * 100))
    var v = [Double](repeating: 0, count: L * L)
    var se = [Double](repeating: 0, count: L * L)
    let decay = 2.2 / (s.plain ? 0.7 : 1.0)
    for i in 0..<L {
      for j in i..<L {
        var x: Double
        if i == j {
          x = 1
        } else {
          let ti = Double(i) / Double(L - 1), tj = Double(j) / Double(L - 1)
          x = exp(-abs(ti - tj) * decay)
          let si = isStream(names[i]), sj = isStream(names[j])
          if !s.plain {
            if si && sj { x = pow(x, 0.55) } else if si != sj { x *= 0.86 } else if blockOf(names[i]) != blockOf(names[j]) { x *= 0.78 }
          }
          if names[i] == "input" || names[j] == "input" { x *= 0.55 }
          if let b = block {
            let bi = b.contains(i), bj = b.contains(j)
            let edge = s.plain ? 0.8 : 1.0
            if bi && bj {
              x = removePC1 ? x * 0.35 : min(1, (0.9 + 0.07 * edge) * min(1, strength) + x * (1 - min(1, strength)))
            } else if bi != bj {
              x *= removePC1 ? 0.8 : 0.6
            }
          }
          if removePC1 && block == nil { x *= 0.92 }
          x += 0.025 * (rng.uniform() - 0.5)
          x = min(1, max(0, x))
        }
        v[i * L + j] = x
        v[j * L + i] = x
        let e = 0.002 + 0.012 * (1 - x) * rng.uniform()
        se[i * L + j] = e
        se[j * L + i] = e
      }
    }
    var defined = [Bool](repeating: true, count: L * L)
    if let c = s.constantIndex {
      for k in 0..<L {
        defined[c * L + k] = false
        defined[k * L + c] = false
      }
    }
    return (v, defined, se)
  }

  static func cosineValues(_ s: Spec, block: ClosedRange<Int>?) -> (values: [Double], defined: [Bool]) {
    let L = s.count
    var rng = Rng(seedKey(s, 20))
    var v = [Double](repeating: 0, count: L * L)
    for i in 0..<L {
      for j in i..<L {
        var x = 1.0
        if i != j {
          let d = abs(Double(i - j)) / Double(L - 1)
          x = 0.75 * exp(-d * 9) + 0.08 * rng.uniform()
          if let b = block, b.contains(i), b.contains(j) { x = 0.88 + 0.1 * rng.uniform() }
        }
        v[i * L + j] = min(1, x)
        v[j * L + i] = min(1, x)
      }
    }
    var defined = [Bool](repeating: true, count: L * L)
    if let c = s.constantIndex {
      for k in 0..<L {
        defined[c * L + k] = false
        defined[k * L + c] = false
      }
    }
    return (v, defined)
  }

  static func pc1Fractions(_ s: Spec, block: ClosedRange<Int>?, strength: Double) -> [Double?] {
    var rng = Rng(seedKey(s, 30) &+ UInt64(strength * 100))
    return s.list.names.indices.map { i in
      if i == s.constantIndex { return nil }
      let t = Double(i) / Double(max(1, s.count - 1))
      var f = 0.12 + 0.18 * t + 0.05 * rng.uniform()
      if s.list.names[i] == "probs" || s.list.names[i] == "logits" { f = 0.42 + 0.1 * rng.uniform() }
      if let b = block, b.contains(i) { f = 0.2 + min(1, strength) * (0.5 + 0.15 * rng.uniform()) }
      return f
    }
  }

  static func probes(_ s: Spec, block: ClosedRange<Int>?, accuracy: Double) -> [ProbePoint] {
    var rng = Rng(seedKey(s, 40))
    var out: [ProbePoint] = []
    let names = s.list.names
    let layers = names.indices.filter { names[$0].hasSuffix(".bn2") || names[$0].hasSuffix(s.plain ? ".out" : ".add") }
    var stalled: Double?
    for (k, i) in layers.enumerated() {
      let t = Double(k + 1) / Double(layers.count)
      var a = 0.3 + (accuracy - 0.3) * pow(t, 0.7)
      if let b = block, b.contains(i) {
        if stalled == nil { stalled = a }
        a = stalled! + 0.01 * rng.uniform()
        if names[i].hasSuffix(".bn2") { a -= 0.08 + 0.04 * rng.uniform() }
      } else if names[i].hasSuffix(".bn2") {
        a -= 0.02 * rng.uniform()
      }
      out.append(ProbePoint(name: names[i], index: i, testAccuracy: min(1, max(0.1, a))))
    }
    return out
  }

  static func deletion(_ s: Spec, block: ClosedRange<Int>?, accuracy: Double) -> Deletion {
    var rng = Rng(seedKey(s, 50))
    let names = s.list.names
    var blocks: [Deletion.Block] = []
    var cost: [String: Double] = [:]
    for stage in 1...3 {
      for b in 1...s.n {
        let name = "s\(stage).b\(b)"
        let removable = !(stage >= 2 && b == 1)
        let addIndex = names.firstIndex(of: name + ".add") ?? 0
        let inside = block?.contains(addIndex) ?? false
        let c = inside ? 0.004 + 0.01 * rng.uniform() : (0.06 + 0.12 * rng.uniform()) * (stage == 1 ? 1.8 : 1)
        cost[name] = c
        blocks.append(Deletion.Block(block: name, stage: stage, index: b, removable: removable,
                                     accuracy: removable ? max(0.1, accuracy - c) : nil))
      }
    }
    var tails: [Deletion.StageTail] = []
    for stage in 1...3 {
      let removable = s.n - (stage >= 2 ? 1 : 0)
      guard removable >= 1 else { continue }
      var acc = accuracy
      for j in 1...removable {
        acc -= cost["s\(stage).b\(s.n - j + 1)"]! * 1.1
        tails.append(Deletion.StageTail(stage: stage, removed: j, accuracy: max(0.1, acc)))
      }
    }
    return Deletion(intactAccuracy: accuracy, blocks: blocks, stageTails: tails)
  }

  static func cross(_ a: Spec, _ b: Spec, sameArchitecture: Bool) -> QuantisedHeatmap {
    let R = a.count, C = b.count
    var rng = Rng(seedKey(a, 60) ^ seedKey(b, 61))
    var v = [Double](repeating: 0, count: R * C)
    let ba = a.nearChance ? 4...(R - 4) : a.block
    let bb = b.nearChance ? 4...(C - 4) : b.block
    for i in 0..<R {
      for j in 0..<C {
        let ti = Double(i) / Double(R - 1), tj = Double(j) / Double(C - 1)
        var x = exp(-abs(ti - tj) * 2.4) * (sameArchitecture ? 0.97 : 0.9)
        if a.list.names[i] == "input" && b.list.names[j] == "input" { x = 1 }
        let ia = ba?.contains(i) ?? false, jb = bb?.contains(j) ?? false
        if ia && jb { x = 0.06 + 0.1 * rng.uniform() } else if ia || jb { x *= 0.45 }
        v[i * C + j] = min(1, max(0, x + 0.03 * (rng.uniform() - 0.5)))
      }
    }
    var defined = [Bool](repeating: true, count: R * C)
    if let c = a.constantIndex { for j in 0..<C { defined[c * C + j] = false } }
    if let c = b.constantIndex { for i in 0..<R { defined[i * C + c] = false } }
    return HeatmapQuantiser.quantise(values: v, defined: defined, rows: R, columns: C,
                                     rowNames: listKey(depth: a.depth, plain: a.plain),
                                     columnNames: listKey(depth: b.depth, plain: b.plain), bits: bits(max(R, C)))
  }

  static func population(a: [ModelEntry], b: [ModelEntry], classes: Int, examples: Int) -> PopulationComparison {
    var rng = Rng(0xB10C)
    let seedsA = a.count, seedsB = b.count
    var xa = [UInt8](), yb = [UInt8](), na = [UInt8](), nb = [UInt8]()
    var classA = [Double](repeating: 0, count: classes), classB = classA, nullA = classA, nullB = classA
    var perClass = [Double](repeating: 0, count: classes)
    let halfB = max(1, seedsB / 2)
    for e in 0..<examples {
      let cls = e % classes
      let difficulty = pow(rng.uniform(), 0.35)   // most examples easy
      let shiftA = 0.25 * (rng.uniform() - 0.5), shiftB = 0.25 * (rng.uniform() - 0.5)
      func hits(_ p: Double, _ n: Int) -> Int { (0..<n).reduce(0) { c, _ in c + (rng.uniform() < p ? 1 : 0) } }
      let pa = min(1, max(0, difficulty + shiftA + (cls == 3 ? -0.06 : 0)))
      let pb = min(1, max(0, difficulty + shiftB + (cls == 6 ? -0.07 : 0)))
      let ha = Double(hits(pa, seedsA)) / Double(seedsA)
      let hb = Double(hits(pb, seedsB)) / Double(seedsB)
      let n1 = Double(hits(pb, halfB)) / Double(halfB)
      let n2 = Double(hits(pb, max(1, seedsB - halfB))) / Double(max(1, seedsB - halfB))
      xa.append(UInt8((ha * 254).rounded())); yb.append(UInt8((hb * 254).rounded()))
      na.append(UInt8((n1 * 254).rounded())); nb.append(UInt8((n2 * 254).rounded()))
      classA[cls] += ha; classB[cls] += hb; nullA[cls] += n1; nullB[cls] += n2; perClass[cls] += 1
    }
    let meanA = a.compactMap(\.testAccuracy).reduce(0, +) / Double(max(1, a.count))
    let meanB = b.compactMap(\.testAccuracy).reduce(0, +) / Double(max(1, b.count))
    func label(_ m: ModelEntry) -> String { "R\(m.depth) k\(shortNumber(m.width)) f\(shortNumber(m.fraction))" }
    let sideA = PopulationComparison.Side(label: label(a[0]), models: a.map(\.model), meanAccuracy: meanA)
    let sideB = PopulationComparison.Side(label: label(b[0]), models: b.map(\.model), meanAccuracy: meanB)
    let nullSideA = PopulationComparison.Side(label: label(b[0]) + " (seeds A)", models: Array(b.map(\.model).prefix(halfB)), meanAccuracy: meanB)
    let nullSideB = PopulationComparison.Side(label: label(b[0]) + " (seeds B)", models: Array(b.map(\.model).dropFirst(halfB)), meanAccuracy: meanB)
    let comparison = PopulationComparison.Scatter(x: sideA, y: sideB, examples: examples,
                                                  xAccuracy: Data(xa).base64EncodedString(),
                                                  yAccuracy: Data(yb).base64EncodedString(), significantFraction: 0.031)
    let null = PopulationComparison.Scatter(x: nullSideA, y: nullSideB, examples: examples,
                                            xAccuracy: Data(na).base64EncodedString(),
                                            yAccuracy: Data(nb).base64EncodedString(), significantFraction: 0.002)
    let diffs = (0..<classes).map { c in
      PopulationComparison.ClassDifference(classIndex: c, accuracyA: classA[c] / perClass[c], accuracyB: classB[c] / perClass[c],
                                           nullAccuracyA: nullA[c] / perClass[c], nullAccuracyB: nullB[c] / perClass[c],
                                           significant: c == 3 || c == 6)
    }
    return PopulationComparison(title: "\(sideA.label) vs \(sideB.label)", comparison: comparison, null: null,
                                classes: diffs, notes: ["Only \(seedsA) and \(seedsB) seeds per group: per-example accuracies take few values."])
  }

  /// SplitMix64.
  struct Rng {
    var state: UInt64
    init(_ seed: UInt64) { state = seed ^ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
      state &+= 0x9E37_79B9_7F4A_7C15
      var z = state
      z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
      z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
      return z ^ (z >> 31)
    }
    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
  }

  static func shortNumber(_ x: Double) -> String {
    x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : String(x)
  }
}
