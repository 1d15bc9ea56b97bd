import ArgumentParser
import CKernels
import Dispatch
import Engine
import Foundation

/// Per-layer timings of the 3x3 stride-1 convolutions of the CIFAR ResNets under each
/// convolution algorithm: what AUTO's choices (CKernels/conv_ops.c) rest on.
struct BenchConvCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench-conv",
    abstract: "Time each pass of the ResNets' 3x3 convolutions under each algorithm.")

  @Option(help: "Images per batch.") var batch = 128
  @Option(help: "Timed repetitions per measurement (the best is reported).") var repeats = 5
  @Option(help: "Threads (default: all cores).") var threads: Int?
  @Option(help: "Comma-separated layers HxWxC (3x3, stride 1, C -> C channels) or HxWxCixCo, e.g. 32x32x16.")
  var layers = "32x32x3x16,32x32x16,16x16x32,8x8x64,32x32x32,16x16x64,8x8x128"
  @Flag(help: "One JSON object per line instead of a table.") var json = false

  func validate() throws {
    guard batch >= 1, repeats >= 1 else { throw ValidationError("--batch >= 1, --repeats >= 1") }
    for l in layers.split(separator: ",") where Self.parse(String(l)) == nil {
      throw ValidationError("layer \(l) is not HxWxC or HxWxCixCo")
    }
  }

  static func parse(_ s: String) -> (H: Int, W: Int, Ci: Int, Co: Int)? {
    let p = s.split(separator: "x", omittingEmptySubsequences: false).map { Int($0) ?? 0 }
    guard p.count == 3 || p.count == 4, p.allSatisfy({ $0 > 0 }) else { return nil }
    return (p[0], p[1], p[2], p.count == 4 ? p[3] : p[2])
  }

  /// (name, algorithm, Winograd tile)
  static let variants: [(String, Int32, Int32)] = [
    ("gemm", Int32(BS_CONV_GEMM), 0), ("direct", Int32(BS_CONV_DIRECT), 0),
    ("winograd2", Int32(BS_CONV_WINOGRAD), 2), ("winograd4", Int32(BS_CONV_WINOGRAD), 4),
  ]

  func run() throws {
    let context = KernelContext(threads: threads)
    if !json {
      print("conv passes, batch \(batch), \(context.threads) threads, kernels \(context.isaName); ms (best of \(repeats)) and effective GFLOP/s (direct-convolution FLOPs)")
      print("layer          algorithm   forward          weights          data")
    }
    for l in layers.split(separator: ",") {
      let (H, W, Ci, Co) = Self.parse(String(l))!
      var shape = bs_conv_shape(N: Int32(batch), H: Int32(H), W: Int32(W), Ci: Int32(Ci), Co: Int32(Co),
                                KH: 3, KW: 3, stride: 1, pad: 1, OH: 0, OW: 0)
      precondition(bs_conv_shape_init(&shape) == BS_OK)
      var rng = RandomSource(seed: 3)
      let x = (0..<(batch * H * W * Ci)).map { _ in Float(rng.uniform()) - 0.5 }
      let dy = (0..<(batch * H * W * Co)).map { _ in Float(rng.uniform()) - 0.5 }
      let w = (0..<(9 * Ci * Co)).map { _ in (Float(rng.uniform()) - 0.5) * 0.1 }
      var y = [Float](repeating: 0, count: dy.count), dx = x
      var dw = [Float](repeating: 0, count: w.count)
      let flops = 2.0 * Double(batch * H * W) * Double(9 * Ci * Co)
      for (name, algorithm, tile) in Self.variants {
        context.convAlgorithm = algorithm
        context.winogradTile = tile
        let p = context.pointer
        let forward = best { bs_conv_forward(p, &shape, x, w, nil, &y) }
        let weights = best { bs_conv_backward(p, &shape, x, w, dy, &dw, nil, nil) }
        let both = best { bs_conv_backward(p, &shape, x, w, dy, &dw, nil, &dx) }
        let data = max(both - weights, 1e-9)
        if json {
          print("{\"layer\":\"\(l)\",\"algorithm\":\"\(name)\",\"batch\":\(batch),\"threads\":\(context.threads),\"forward_ms\":\(String(format: "%.3f", forward * 1e3)),\"weights_ms\":\(String(format: "%.3f", weights * 1e3)),\"data_ms\":\(String(format: "%.3f", data * 1e3))}")
        } else {
          func cell(_ t: Double) -> String { String(format: "%7.2f %6.1f", t * 1e3, flops / t * 1e-9) }
          let head = String(l).padding(toLength: 14, withPad: " ", startingAt: 0) + " "
            + name.padding(toLength: 10, withPad: " ", startingAt: 0) + " "
          print(head + [forward, weights, data].map(cell).joined(separator: "   "))
        }
        fflush(nil)
      }
    }
    context.convAlgorithm = Int32(BS_CONV_AUTO)
    context.winogradTile = 0
  }

  private func best(_ body: () -> Void) -> Double {
    body()   // warm-up: scratch buffers, caches
    var t = Double.infinity
    for _ in 0..<repeats {
      let t0 = DispatchTime.now().uptimeNanoseconds
      body()
      t = min(t, Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
    }
    return t
  }
}
