import ArgumentParser
import CKernels
import Engine
import Foundation

/// tools/bench-train: training (B=128) and inference (B=256) images/s of the reference models
/// on 32x32x3, median of timed steps after warm-up, beside the sgemm throughput of this
/// machine measured in the same run.
struct BenchTrainCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench-train", abstract: "Benchmark training and inference throughput.")

  @Flag(help: "One JSON object per line instead of a table.") var json = false
  @Option(help: "Timed steps per measurement (median reported).") var steps = 10
  @Option(help: "Warm-up steps before timing.") var warmup = 3
  @Option(help: "Comma-separated models resnetD-kW (CIFAR-sized), e.g. resnet20-k1,resnet56-k1,resnet20-k2.")
  var models = "resnet20-k1,resnet56-k1,resnet20-k2"
  @Option(help: "Threads (default: all cores).") var threads: Int?
  @Flag(help: "Also print where the timed steps spent their time, per layer op.") var profile = false

  func validate() throws {
    guard steps >= 1, warmup >= 0 else { throw ValidationError("--steps >= 1, --warmup >= 0") }
  }

  /// `resnetD-kW` (D = 6n+2, W > 0), e.g. resnet110-k1, resnet14-k4; CIFAR-sized input.
  static func config(_ name: String) -> ResNetConfig? {
    guard name.hasPrefix("resnet"), let dash = name.firstIndex(of: "-"),
          let depth = Int(name[name.index(name.startIndex, offsetBy: 6)..<dash]), depth >= 8, (depth - 2) % 6 == 0,
          name[dash...].hasPrefix("-k"), let width = Double(name[name.index(dash, offsetBy: 2)...]),
          width > 0, width <= 64 else { return nil }
    return ResNetConfig(depth: depth, widthMultiplier: width)
  }

  func run() throws {
    let context = KernelContext(threads: threads)
    let names = models.split(separator: ",").map(String.init)
    for n in names where Self.config(n) == nil {
      throw ValidationError("unknown model \(n): name resnetD-kW, D = 6n+2 (8, 14, 20, ...), W the width multiplier")
    }
    let sgemm = context.sgemmProbe()
    let peak = context.fmaPeakProbe()
    let isa = context.isaName
    let conv = context.convAlgorithmName
    if !json {
      print("sgemm (\(context.threads) threads x single-threaded 1024^3): \(String(format: "%.1f", sgemm)) GFLOP/s; FMA peak \(String(format: "%.1f", peak)) GFLOP/s; kernels: \(isa); conv: \(conv)")
      print("effective GFLOP/s: the convolution and linear FLOPs of direct convolution over the time taken")
      print("model        mode   batch   images/s   ms/step   GFLOP/s   of sgemm   of peak")
    }
    for name in names {
      let cfg = Self.config(name)!
      for (mode, batch) in [("train", 128), ("infer", 256)] {
        let net = try ResNet(config: cfg, seed: 1)
        let times = try measure(net, mode: mode, batch: batch, context: context)
        if profile && !json { printProfile(context, steps: steps, total: times.reduce(0, +)) }
        let median = times.sorted()[times.count / 2]
        let ips = Double(batch) / median
        let flopsPerImage = Double(2 * cfg.forwardMACs) * (mode == "train" ? 3 : 1)
        let achieved = ips * flopsPerImage * 1e-9
        if json {
          print("{\"model\":\"\(name)\",\"mode\":\"\(mode)\",\"batch\":\(batch),\"images_per_s\":\(String(format: "%.1f", ips)),\"achieved_gflops\":\(String(format: "%.2f", achieved)),\"sgemm_gflops\":\(String(format: "%.2f", sgemm)),\"fma_peak_gflops\":\(String(format: "%.2f", peak)),\"threads\":\(context.threads),\"isa\":\"\(isa)\",\"conv\":\"\(conv)\"}")
        } else {
          print(String(format: "%-12@ %-6@ %5d   %8.1f   %7.1f   %7.1f   %7.1f%%  %6.1f%%", name, mode, batch, ips,
                       median * 1000, achieved, 100 * achieved / sgemm, 100 * achieved / peak))
        }
        fflush(nil)
      }
    }
  }

  private func printProfile(_ context: KernelContext, steps: Int, total: Double) {
    var parts: [String] = []
    var accounted = 0.0
    for (name, seconds, _) in context.profileReport() {
      parts.append(String(format: "%@ %.1f ms", name, 1000 * seconds / Double(steps)))
      accounted += seconds
    }
    parts.append(String(format: "other %.1f ms", 1000 * (total - accounted) / Double(steps)))
    print("    per step: " + parts.joined(separator: ", "))
  }

  private func measure(_ net: ResNet, mode: String, batch: Int,
                       context: KernelContext) throws -> [Double] {
    let cfg = net.config, k = cfg.numClasses
    var rng = RandomSource(seed: 7)
    let labels = (0..<batch).map { _ in Int32(rng.below(k)) }
    var times: [Double] = []
    if mode == "train" {
      let input = net.trainingInput(capacity: batch)
      for i in 0..<(batch * cfg.inputHeight * cfg.inputWidth * cfg.inputChannels) {
        input[i] = Float(rng.uniform())
      }
      for s in 0..<(warmup + steps) {
        if s == warmup && profile { context.profile(true) }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let logits = net.forwardTrain(n: batch, context: context)
        _ = bs_softmax_xent(logits, labels, Int32(batch), Int32(k), nil, net.logitGradient, nil)
        net.backward(context: context)
        for p in net.parameters {
          context.kernels.bs_sgd_momentum(p.value.data, p.momentum.data, p.grad.data, p.value.count, 0.01, 0.9,
                          p.decay ? 5e-4 : 0)
        }
        let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        if s >= warmup { times.append(dt) }
      }
    } else {
      let input = Tensor([batch, cfg.inputHeight, cfg.inputWidth, cfg.inputChannels])
      for i in 0..<input.count { input[i] = Float(rng.uniform()) }
      for s in 0..<(warmup + steps) {
        if s == warmup && profile { context.profile(true) }
        let t0 = DispatchTime.now().uptimeNanoseconds
        _ = try net.infer(input.data, n: batch, context: context)
        let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        if s >= warmup { times.append(dt) }
      }
    }
    return times
  }
}
