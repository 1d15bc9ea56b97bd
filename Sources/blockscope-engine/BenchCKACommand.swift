import Analysis
import ArgumentParser
import CKernels
import Engine
import Foundation

/// The minibatch-CKA benchmark of the analysis issue: a heatmap over every representation of
/// one model, from scratch (forward passes, Grams, products) and again from the Gram cache.
/// One model per process, so peak RSS is that model's.
struct BenchCKACommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench-cka",
    abstract: "Time a minibatch-CKA heatmap over all representations, from scratch and from the cache.")

  @Option(help: "Depth 6n+2.") var depth = 56
  @Option(help: "Width multiplier.") var width = 1.0
  @Option(help: "Use this trained model instead of a random initialization.") var checkpoint: String?
  @Option(name: .customLong("data-path"), help: "CIFAR-10 binary directory (default: random images).")
  var dataPath: String?
  @Option var batches = 10
  @Option(name: .customLong("batch-size")) var batchSize = 256
  @Option(help: "unbiased, biased or rbf.") var estimator = "unbiased"
  @Option(help: "Threads (default: all cores).") var threads: Int?
  @Flag(help: "One JSON object per line.") var json = false

  static let cachedRepeats = 5

  func validate() throws {
    guard batches >= 1, batchSize >= 4 else { throw ValidationError("--batches >= 1, --batch-size >= 4") }
    guard CKAEstimator(rawValue: estimator) != nil else { throw ValidationError("--estimator: unbiased, biased or rbf") }
  }

  struct Result: Codable {
    var model: String
    var representations: Int
    var examples: Int
    var seconds_scratch: Double
    var seconds_cached: Double
    var peak_rss_mb: Double
    var seconds_forward_only: Double
    var estimator: String
    var data: String
    var threads: Int
    var cache_mb: Double
    var scratch_forward_s: Double
    var scratch_grams_s: Double
    var scratch_forms_s: Double
    var scratch_products_s: Double
    /// The from-scratch heatmap's arithmetic over its time: direct-convolution forward FLOPs,
    /// the Grams' (m^2 d per representation and batch of m: the symmetric half of 2 m^2 d) and
    /// the products' (2 m^2 per pair of representations and batch).
    var effective_gflops: Double
    /// The FMA peak of the same threads, measured in the same run.
    var fma_peak_gflops: Double
  }

  /// The FLOPs of a from-scratch heatmap of `config` over `batches` batches of m examples.
  static func heatmapFLOPs(_ config: ResNetConfig, batches: Int, m: Int) -> Double {
    let reps = config.representations
    let forward = 2 * Double(config.forwardMACs) * Double(batches * m)
    let grams = reps.reduce(0.0) { $0 + Double(m) * Double(m) * Double($1.features) } * Double(batches)
    let pairs = Double(reps.count * (reps.count + 1) / 2)
    return forward + grams + pairs * 2 * Double(m) * Double(m) * Double(batches)
  }

  func run() throws {
    let context = KernelContext(threads: threads)
    let network: ResNet
    if let checkpoint {
      network = try ModelState.model(from: try Checkpoint.load(from: checkpoint), source: checkpoint)
    } else {
      network = try ResNet(config: ResNetConfig(depth: depth, widthMultiplier: width), seed: 0)
    }
    let n = batches * batchSize
    let data: Dataset
    var dataName = "random"
    if let dataPath {
      let test = try DatasetLoader.load(DataSpec(dataset: "cifar10", path: dataPath)).test
      guard test.count >= n else { throw ValidationError("only \(test.count) test images, need \(n)") }
      data = test.selecting(Array(0..<n))
      dataName = "cifar10-test"
    } else {
      data = Dataset.synthetic(count: n, height: 32, width: 32, channels: 3, numClasses: 10, seed: 1)
    }
    let model = AnalysisModel(name: network.config.name, network: network)
    let request = HeatmapRequest(estimator: CKAEstimator(rawValue: estimator)!,
                                 plan: MinibatchPlan(batchSize: batchSize, passes: 1, seed: 0))
    // Forward passes alone, every representation tapped but not used: the floor.
    let positions = try request.plan.batches(count: n)
    let reps = network.config.representations
    var t = Date()
    try ActivationStream.run(model: network, data: data, batches: positions, representations: reps,
                             context: context) { _, _, _ in }
    let forward = Date().timeIntervalSince(t)

    let cache = GramCache(budgetBytes: 8 << 30)
    let engine = MinibatchCKA(cache: cache, context: context)
    t = Date()
    let scratch = try engine.heatmap(rows: model, .all, data: data, request: request)
    let secondsScratch = Date().timeIntervalSince(t)
    // The cached heatmap takes tens of milliseconds, where one stall of this shared machine
    // shows: the median of cachedRepeats runs (tools/bench_cka_pytorch.py does the same).
    var cachedTimes: [Double] = []
    for _ in 0..<Self.cachedRepeats {
      t = Date()
      let cached = try engine.heatmap(rows: model, .all, data: data, request: request)
      cachedTimes.append(Date().timeIntervalSince(t))
      precondition(cached.stats.forwardPasses == 0 && cached.values == scratch.values)
    }
    let secondsCached = cachedTimes.sorted()[Self.cachedRepeats / 2]
    let peak = context.fmaPeakProbe()
    let effective = Self.heatmapFLOPs(network.config, batches: batches, m: batchSize) / secondsScratch * 1e-9
    let r = Result(model: network.config.name, representations: scratch.rowNames.count, examples: n,
                   seconds_scratch: secondsScratch, seconds_cached: secondsCached,
                   peak_rss_mb: peakRSSMiB(), seconds_forward_only: forward, estimator: estimator,
                   data: dataName, threads: context.threads,
                   cache_mb: Double(cache.currentStats.bytes) / 1_048_576,
                   scratch_forward_s: scratch.stats.secondsForward, scratch_grams_s: scratch.stats.secondsGrams,
                   scratch_forms_s: scratch.stats.secondsForms, scratch_products_s: scratch.stats.secondsProducts,
                   effective_gflops: effective, fma_peak_gflops: peak)
    if json {
      print(jsonLine(r))
    } else {
      print(String(format: "%@: %d representations x %d examples: scratch %.2f s (forward alone %.2f s), cached %.3f s, peak RSS %.0f MiB, cache %.0f MiB",
                   r.model, r.representations, n, secondsScratch, forward, secondsCached, r.peak_rss_mb, r.cache_mb))
      print(String(format: "  scratch: forward %.2f s, Grams %.2f s, forms %.2f s, products %.2f s",
                   r.scratch_forward_s, r.scratch_grams_s, r.scratch_forms_s, r.scratch_products_s))
      print(String(format: "  effective %.1f GFLOP/s (direct-convolution forward, Grams, products) = %.1f%% of the FMA peak %.1f GFLOP/s",
                   effective, 100 * effective / peak, peak))
    }
  }
}

/// Gram eigenproblem against SVD for the first principal component, on ReLU-like random data
/// of the shapes the analyses meet (n examples x d features): the measurement behind
/// PCMethod.auto.
struct BenchPCCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench-pc", abstract: "Time PC1 by Gram eigenproblem and by SVD.")
  @Option(help: "Comma-separated n values.") var n = "256,1024"
  @Option(help: "Comma-separated d values.") var d = "64,1024,4096,16384"
  @Flag var json = false

  func run() throws {
    let context = KernelContext()
    var rng = RandomSource(seed: 3)
    for nn in n.split(separator: ",").compactMap({ Int($0) }) {
      for dd in d.split(separator: ",").compactMap({ Int($0) }) {
        let x = Tensor([nn * dd])
        for i in 0..<(nn * dd) { x.data[i] = max(0, Float(rng.normal()) + 0.3) }
        var times: [String: Double] = [:]
        var fractions: [String: Double] = [:]
        for method in [PCMethod.gram, .svd] {
          let copy = Tensor([nn * dd])
          copy.copy(from: x)
          let rep = Representation(name: "x", kind: .relu, height: 1, width: 1, channels: dd, block: nil)
          let t = Date()
          let (layer, _) = try FirstPrincipalComponents.decompose(copy, n: nn, rep: rep, method: method,
                                                                  context: context)
          times[method.rawValue] = Date().timeIntervalSince(t)
          fractions[method.rawValue] = layer.pc1Fraction ?? -1
        }
        if json {
          print(jsonLine(["n": Double(nn), "d": Double(dd), "seconds_gram": times["gram"]!,
                          "seconds_svd": times["svd"]!, "fraction_gram": fractions["gram"]!,
                          "fraction_svd": fractions["svd"]!]))
        } else {
          print(String(format: "n=%5d d=%6d  gram %8.4f s  svd %8.4f s  (svd/gram %.1fx)  fraction %.6f / %.6f",
                       nn, dd, times["gram"]!, times["svd"]!, times["svd"]! / times["gram"]!,
                       fractions["gram"]!, fractions["svd"]!))
        }
        fflush(nil)
      }
    }
  }
}
