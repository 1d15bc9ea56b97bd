import Analysis
import Engine
import Foundation
import Wire

/// Softmax outputs of whole dataset splits, per model fingerprint (COMPARE_OUTPUTS), bounded by
/// bytes, least recently used dropped first.
final class OutputCache: @unchecked Sendable {
  struct Key: Hashable {
    var model: UInt64
    var dataset: String
    var split: ExampleSelection.Split
  }

  private let budget: Int
  private let lock = NSLock()
  /// Most recently used last.
  private var entries: [(key: Key, probabilities: [Float])] = []

  init(budgetBytes: Int) { budget = max(0, budgetBytes) }

  func get(_ key: Key) -> [Float]? {
    lock.withLock {
      guard let i = entries.firstIndex(where: { $0.key == key }) else { return nil }
      let entry = entries.remove(at: i)
      entries.append(entry)
      return entry.probabilities
    }
  }

  func put(_ key: Key, _ probabilities: [Float]) {
    lock.withLock {
      entries.removeAll { $0.key == key }
      guard probabilities.count * 4 <= budget else { return }
      entries.append((key, probabilities))
      var bytes = entries.reduce(0) { $0 + $1.probabilities.count * 4 }
      while bytes > budget, !entries.isEmpty {
        bytes -= entries.removeFirst().probabilities.count * 4
      }
    }
  }

  func remove(model: UInt64) {
    lock.withLock { entries.removeAll { $0.key.model == model } }
  }
}

/// The estimators of client matrices that need n x n Grams take at most this many examples.
let maxGramExamples = 4096

extension DaemonService {
  // MARK: COMPARE_OUTPUTS

  func compareOutputs(_ request: IncomingRequest, _ reply: ReplyChannel) throws {
    let r = try request.decode(CompareOutputsRequest.self)
    guard !r.groups.isEmpty else { throw invalid("groups", "no groups") }
    var seen = Set<String>()
    for (i, g) in r.groups.enumerated() {
      guard !g.name.isEmpty else { throw invalid("groups[\(i)].name", "empty") }
      guard seen.insert(g.name).inserted else { throw invalid("groups[\(i)].name", "\"\(g.name)\" is used twice") }
      guard !g.models.isEmpty else { throw invalid("groups[\(i)].models", "no models") }
      for (j, m) in g.models.enumerated() { try ModelStore.validateName(m, key: "groups[\(i)].models[\(j)]") }
    }
    guard r.alpha > 0, r.alpha < 1 else { throw invalid("alpha", "\(r.alpha) is outside (0, 1)") }
    var pairs: [GroupPair] = []
    if let given = r.pairs {
      for (i, p) in given.enumerated() {
        for name in [p.a, p.b] where !seen.contains(name) {
          throw notFound("key 'pairs[\(i)]': no group named \"\(name)\"")
        }
        guard p.a != p.b else { throw invalid("pairs[\(i)]", "group \"\(p.a)\" compared with itself") }
        pairs.append(GroupPair(p.a, p.b))
      }
    } else {
      for i in 0..<r.groups.count {
        for j in (i + 1)..<max(i + 1, r.groups.count) { pairs.append(GroupPair(r.groups[i].name, r.groups[j].name)) }
      }
    }

    // Every model once, all on the same data.
    var names: [String] = []
    for g in r.groups { for m in g.models where !names.contains(m) { names.append(m) } }
    var loaded: [String: LoadedModel] = [:]
    for name in names { loaded[name] = try store.load(name) }
    let first = loaded[names[0]]!
    let dataset = first.header.data.dataset
    for name in names.dropFirst() {
      let m = loaded[name]!
      guard DatasetLoader.canonicalName(m.header.data.dataset) == DatasetLoader.canonicalName(dataset),
            m.header.config.numClasses == first.header.config.numClasses else {
        throw invalid("groups", "model \"\(name)\" was trained on \(m.header.data.dataset) "
                      + "(\(m.header.config.numClasses) classes), \"\(first.name)\" on \(dataset) "
                      + "(\(first.header.config.numClasses) classes): outputs are compared on one test set")
      }
    }
    let splits = try modelData(first)
    let split = r.examples.split == .test ? splits.test : splits.train
    let chosen = try examples(r.examples, of: splits, dataset: dataset)
    let positions = r.examples.ids ?? Array(0..<chosen.count)
    let k = first.header.config.numClasses

    let sender = progress(reply)
    var outputs: [String: ModelOutputs] = [:]
    for (i, name) in names.enumerated() {
      if isStopping || reply.isCancelled { throw WireError(.cancelled, "comparison abandoned") }
      let model = loaded[name]!
      let all = try probabilities(model, split: split, splitName: r.examples.split, dataset: dataset)
      var rows = [Float]()
      rows.reserveCapacity(positions.count * k)
      for p in positions { rows += all[(p * k)..<((p + 1) * k)] }
      outputs[name] = try ModelOutputs(name: name, probabilities: rows, classCount: k)
      sender.send(phase: "outputs", done: i + 1, total: names.count, message: name)
    }
    var populations: [String: [ModelOutputs]] = [:]
    for g in r.groups { populations[g.name] = g.models.map { outputs[$0]! } }
    let nulls = r.groups.filter { $0.models.count >= 2 }.map { NullSplit($0.name, seed: r.nullSeed) }
    let test: ExampleTest = r.test == .fisher ? .fisher : .twoProportion
    let report = try OutputComparison.report(
      populations: populations, labels: chosen.labels, pairs: pairs, nullSplits: nulls,
      options: OutputComparisonOptions(test: test, alpha: r.alpha, includePerExample: r.perExample))

    let byName = Dictionary(uniqueKeysWithValues: report.groups.map { ($0.group, $0) })
    let groups = r.groups.compactMap { byName[$0.name] }.map { g in
      CompareOutputsResponse.Group(
        group: g.group, models: g.models, modelAccuracies: g.modelAccuracies,
        meanAccuracy: g.meanAccuracy,
        classes: g.classes.map {
          .init(classIndex: $0.classIndex, examples: $0.exampleCount, meanAccuracy: $0.meanAccuracy,
                modelAccuracies: $0.modelAccuracies)
        },
        exampleAccuracies: g.exampleAccuracies)
    }
    let doc = CompareOutputsResponse(
      groups: groups, comparisons: report.comparisons.map { comparison($0) },
      nulls: report.nulls.map { comparison($0.comparison, group: $0.group, seed: $0.seed) })
    try respond(reply, .compareOutputsOK, doc)
  }

  private func comparison(_ c: GroupComparison, group: String? = nil,
                          seed: UInt64? = nil) -> CompareOutputsResponse.Comparison {
    let e = c.examples
    let test: CompareOutputsRequest.Test = e.test == .fisher ? .fisher : .twoProportion
    return CompareOutputsResponse.Comparison(
      groupA: c.groupA, groupB: c.groupB, meanAccuracyA: c.meanAccuracyA,
      meanAccuracyB: c.meanAccuracyB,
      examples: .init(test: test, alpha: e.alpha, count: e.exampleCount, significant: e.significantCount,
                      significantFraction: e.significantFraction, favoringA: e.significantFavoringA,
                      favoringB: e.significantFavoringB, undefined: e.undefinedCount,
                      pValues: e.pValues?.map(jsonSafe), adjustedPValues: e.adjustedPValues?.map(jsonSafe)),
      classes: c.classes.map {
        .init(classIndex: $0.classIndex, examples: $0.exampleCount, meanAccuracyA: $0.meanAccuracyA,
              meanAccuracyB: $0.meanAccuracyB, pValue: jsonSafe($0.test.pValue),
              adjustedPValue: jsonSafe($0.adjustedPValue), significant: $0.significant)
      },
      significantClasses: c.significantClassCount,
      distances: .init(meanHellinger: jsonSafe(c.distances.meanHellinger),
                       argmaxAgreement: jsonSafe(c.distances.argmaxAgreement),
                       meanKl: c.distances.meanKL.flatMap { $0.isFinite ? $0 : nil },
                       klNote: c.distances.klNote),
      group: group, seed: seed)
  }

  /// A model's softmax outputs over a whole split, [count][classes], cached per fingerprint.
  func probabilities(_ model: LoadedModel, split: Dataset, splitName: ExampleSelection.Split,
                     dataset: String) throws -> [Float] {
    let key = OutputCache.Key(model: model.header.fingerprint, dataset: dataset, split: splitName)
    if let cached = outputs.get(key), cached.count == split.count * model.header.config.numClasses {
      return cached
    }
    let k = model.header.config.numClasses
    var out = [Float](repeating: 0, count: split.count * k)
    try model.exclusive {
      let batchSize = 256
      let input = Tensor([batchSize * split.imageSize])
      var rng = RandomSource(seed: 0)
      var start = 0
      let context = analysisContext()
      while start < split.count {
        let n = min(batchSize, split.count - start)
        BatchLoader.fill(input.data, from: split, positions: Array(start..<(start + n))[...],
                         augment: false, rng: &rng, context: context)
        let logits = try model.network.infer(input.data, n: n, context: context)
        for i in 0..<n {
          var m = logits[i * k]
          for j in 1..<k { m = max(m, logits[i * k + j]) }
          var sum = 0.0
          for j in 0..<k { sum += Double(expf(logits[i * k + j] - m)) }
          for j in 0..<k { out[(start + i) * k + j] = Float(Double(expf(logits[i * k + j] - m)) / sum) }
        }
        start += n
      }
    }
    outputs.put(key, out)
    return out
  }

  // MARK: CKA

  func cka(_ request: IncomingRequest, _ reply: ReplyChannel) throws {
    let payload = try request.parsedPayload()
    let r = try payload.decode(CKARequest.self)
    if let other = payload.tensors.first(where: { $0.name != CKARequest.xTensor && $0.name != CKARequest.yTensor }) {
      throw invalid("tensors", "unexpected tensor '\(other.name)'; CKA takes exactly 'x' and 'y'")
    }
    func matrix(_ name: String) throws(WireError) -> FeatureMatrix {
      guard let t = payload.tensor(named: name) else {
        throw invalid("tensors", "missing tensor '\(name)' (f32 or f64, [n, features])")
      }
      guard t.dtype == .f32 || t.dtype == .f64 else {
        throw invalid("tensors", "tensor '\(name)' is \(t.dtype.rawValue); expected f32 or f64")
      }
      guard t.shape.count == 2 else {
        throw invalid("tensors", "tensor '\(name)' has shape \(t.shape); expected [n, features]")
      }
      guard t.shape[1] >= 1 else { throw invalid("tensors", "tensor '\(name)' has no features") }
      do {
        return try FeatureMatrix(rows: t.shape[0], columns: t.shape[1], values: t.valuesAsDoubles)
      } catch {
        throw invalid("tensors", "tensor '\(name)': \(error)")
      }
    }
    let x = try matrix(CKARequest.xTensor), y = try matrix(CKARequest.yTensor)
    guard x.rows == y.rows else {
      throw invalid("tensors", "'x' has \(x.rows) rows and 'y' \(y.rows); examples go in rows, the same n")
    }
    guard x.rows >= 4 else { throw invalid("tensors", "n = \(x.rows); CKA needs n >= 4 examples") }
    guard !r.estimators.isEmpty else { throw invalid("estimators", "the list is empty") }
    guard r.rbfThreshold > 0, r.rbfThreshold.isFinite else {
      throw invalid("rbf_threshold", "\(r.rbfThreshold) must be a positive number")
    }
    let n = x.rows
    var values: [CKARequest.Estimator: Double] = [:]
    var undefined: [CKARequest.Estimator: String] = [:]
    for estimator in r.estimators where values[estimator] == nil && undefined[estimator] == nil {
      if isStopping || reply.isCancelled { throw WireError(.cancelled, "CKA abandoned") }
      let result: CKAValue
      switch estimator {
      case .linear:
        // The same value either way; the feature-space form is cheaper with fewer features than n.
        if max(x.columns, y.columns) < n || n > maxGramExamples {
          result = try FullBatchCKA.linearFeatureSpace(x, y)
        } else {
          result = try FullBatchCKA.linear(x, y)
        }
      case .debiased, .rbf:
        guard n <= maxGramExamples else {
          undefined[estimator] = "needs n x n Gram matrices: n = \(n) is above \(maxGramExamples)"
          continue
        }
        if estimator == .debiased {
          result = try FullBatchCKA.debiasedLinear(x, y)
        } else {
          result = try FullBatchCKA.rbf(x, y, threshold: r.rbfThreshold)
        }
      }
      if let v = result.value, v.isFinite {
        values[estimator] = v
      } else {
        undefined[estimator] = result.note ?? "not finite"
      }
    }
    try respond(reply, .ckaOK, CKAResponse(n: n, values: values, undefined: undefined))
  }
}
