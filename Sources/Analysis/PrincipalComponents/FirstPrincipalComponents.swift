import CKernels
import Engine
import Foundation

/// How the first principal component of an n x d representation is computed.
public enum PCMethod: String, Codable, Sendable, CaseIterable {
  /// Centred Gram (n x n, ssyrk) and its top eigenpair (LAPACKE_ssyevr, one eigenvalue).
  case gram
  /// Top singular triplet of the centred n x d matrix (LAPACKE_sgesvdx, one triplet).
  case svd
  /// gram when d >= n, svd when d < n. Measured with `blockscope-engine bench-pc` (see
  /// docs/ANALYSIS.md): for d >= n the Gram path is BLAS-3 ssyrk plus an n x n
  /// eigenproblem and was several times faster than the SVD, which bidiagonalizes the n x d
  /// matrix with memory-bound BLAS-2 work; for d << n (pool, logits) the n x n
  /// eigenproblem costs O(n^3) against the SVD's O(n d^2).
  case auto

  func resolved(n: Int, d: Int) -> PCMethod {
    self == .auto ? (d >= n ? .gram : .svd) : self
  }
}

public struct PCLayer: Codable, Sendable {
  public var name: String
  public var features: Int
  /// s1^2 / sum_j s_j^2 of the centred n x d matrix; nil for a constant representation.
  public var pc1Fraction: Double?
  public var totalVariance: Double
  public var method: PCMethod
  public var note: String?
}

public struct PCReport: Codable, Sendable {
  public var model: String
  public var modelFingerprint: String
  public var examples: Int
  public var exampleIds: [Int32]
  public var layers: [PCLayer]
  /// The first PC in example space (unit length n, sign fixed so the largest-magnitude
  /// component is positive), per layer; all zeros for a constant layer.
  public var directions: [[Float]]
  /// |cosine| between the layers' directions, L x L row-major; 0 where a layer is constant.
  public var cosine: [Double]
  public var forwardPasses: Int
  public var seconds: Double
}

public enum PCError: Error, CustomStringConvertible {
  case tooFewExamples(Int)
  /// A kernel or LAPACK call failed: what it said.
  case solver(String)
  case budget(String)
  public var description: String {
    switch self {
    case .tooFewExamples(let n): return "first principal components need at least 2 examples, got \(n)"
    case .solver(let message): return message
    case .budget(let s): return s
    }
  }
}

/// First principal components of every selected representation over one fixed set of n examples
/// (Nguyen et al. 2021; docs/ANALYSIS.md, "First principal components"). A layer's n x d
/// activations must be whole to centre and decompose them, so representations are processed in
/// groups whose activations fit `budgetBytes`, one inference pass over the examples per group:
/// never all layers at once.
public enum FirstPrincipalComponents {
  public static func run(_ model: AnalysisModel, _ selector: RepresentationSelector = .all,
                         data: Dataset, method: PCMethod = .auto, budgetBytes: Int = 1 << 30,
                         batchSize: Int = 256, context: KernelContext,
                         progress: ((Int, Int) -> Void)? = nil,
                         shouldStop: () -> Bool = { false }) throws -> PCReport {
    let start = Date()
    let n = data.count
    guard n >= 2 else { throw PCError.tooFewExamples(n) }
    let reps = try selector.select(from: model.network.config)
    // Groups of consecutive representations within the budget.
    var groups: [[Representation]] = [[]]
    var used = 0
    for r in reps {
      let bytes = n * r.features * 4
      guard bytes <= budgetBytes else {
        throw PCError.budget("\(r.name) over \(n) examples needs \(bytes >> 20) MiB, above the "
          + "activation budget of \(budgetBytes >> 20) MiB: raise the budget or use fewer examples")
      }
      if used + bytes > budgetBytes && !groups[groups.count - 1].isEmpty {
        groups.append([])
        used = 0
      }
      groups[groups.count - 1].append(r)
      used += bytes
    }
    let batches = stride(from: 0, to: n, by: batchSize).map { Array($0..<min($0 + batchSize, n)) }
    var layers: [PCLayer] = []
    var directions: [[Float]] = []
    var done = 0
    for group in groups {
      var buffers: [String: Tensor] = [:]
      for r in group { buffers[r.name] = Tensor([n * r.features]) }
      try ActivationStream.run(model: model.network, data: data, batches: batches,
                               representations: group, context: context,
                               shouldStop: shouldStop) { b, rep, p in
        let d = rep.features
        (buffers[rep.name]!.data + b.positions[0] * d).update(from: p, count: b.count * d)
      }
      for r in group {
        let (layer, u) = try decompose(buffers[r.name]!, n: n, rep: r, method: method,
                                       context: context)
        buffers[r.name] = nil
        layers.append(layer)
        directions.append(u)
        done += 1
        progress?(done, reps.count)
      }
    }
    let l = layers.count
    var cosine = [Double](repeating: 0, count: l * l)
    for i in 0..<l {
      for j in i..<l {
        var dot = 0.0
        for k in 0..<n { dot += Double(directions[i][k]) * Double(directions[j][k]) }
        cosine[i * l + j] = abs(dot)
        cosine[j * l + i] = abs(dot)
      }
    }
    return PCReport(model: model.name, modelFingerprint: String(model.fingerprint, radix: 16),
                    examples: n, exampleIds: data.ids, layers: layers, directions: directions,
                    cosine: cosine, forwardPasses: groups.count,
                    seconds: Date().timeIntervalSince(start))
  }

  /// PC1 of one representation's n x d activations (overwritten).
  public static func decompose(_ x: Tensor, n: Int, rep: Representation,
                               method: PCMethod, context: KernelContext) throws -> (PCLayer, [Float]) {
    let d = rep.features
    let how = method.resolved(n: n, d: d)
    var u = [Float](repeating: 0, count: n)
    var top = 0.0, total = 0.0, energy = 0.0
    switch how {
    case .gram, .auto:
      let k = Tensor([n * n])
      var meanSq = 0.0
      let gram = bs_gram_centered(context.pointer, x.data, Int32(n), d, k.data, &meanSq)
      guard gram == BS_OK else { throw PCError.solver(gram.message(call: "bs_gram_centered")) }
      for i in 0..<n { total += Double(k.data[i * n + i]) }
      energy = Double(n) * meanSq + total
      if energy <= 0 || total / energy <= GramEntry.constantThreshold { break }
      var lambda: Float = 0
      var info: Int32 = 0
      let st = bs_sym_top_eigen(k.data, Int32(n), &lambda, &u, &info)
      guard st == BS_OK else { throw PCError.solver(st.message(call: "LAPACKE_ssyevr", lapackInfo: info)) }
      top = Double(lambda)
    case .svd:
      for i in 0..<(n * d) { energy += Double(x.data[i]) * Double(x.data[i]) }
      context.kernels.bs_center_columns(x.data, Int32(n), d, d, x.data, d)
      for i in 0..<(n * d) { total += Double(x.data[i]) * Double(x.data[i]) }
      if energy <= 0 || total / energy <= GramEntry.constantThreshold { break }
      var s1: Float = 0
      var info: Int32 = 0
      let st = bs_top_singular(x.data, Int32(n), d, &s1, &u, &info)
      guard st == BS_OK else { throw PCError.solver(st.message(call: "LAPACKE_sgesvdx", lapackInfo: info)) }
      top = Double(s1) * Double(s1)
    }
    let constant = energy <= 0 || total / energy <= GramEntry.constantThreshold
    if constant {
      return (PCLayer(name: rep.name, features: d, pc1Fraction: nil, totalVariance: total, method: how,
                      note: "constant over the examples (no variance): no principal component"),
              [Float](repeating: 0, count: n))
    }
    // Fix the sign: the largest-magnitude component positive.
    var big = 0
    for i in 1..<n where abs(u[i]) > abs(u[big]) { big = i }
    if u[big] < 0 { u = u.map { -$0 } }
    return (PCLayer(name: rep.name, features: d, pc1Fraction: top / total, totalVariance: total,
                    method: how, note: nil), u)
  }
}
