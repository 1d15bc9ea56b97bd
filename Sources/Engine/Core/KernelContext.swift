import CKernels
import Foundation

extension bs_status {
  /// What a failed kernel call says: its status, and LAPACK's info where it reported one.
  public func message(call: String, lapackInfo: Int32 = 0) -> String {
    self == BS_ERR_LAPACK ? "\(call) failed (LAPACK info \(lapackInfo))"
      : "\(call): \(String(cString: bs_status_message(self)))"
  }
}

/// What one computation runs with: its threads, kernel variants (ISA), convolution algorithm,
/// scratch memory and profile counters (a C `bs_context`, as BLIS passes its `cntx`). Every
/// Engine and Analysis computation takes one explicitly; nothing is process-wide, so a
/// training job and a heatmap running side by side each keep their own threads and numbers.
///
/// A context is used by one thread at a time: the C side aborts when a second thread enters
/// it. Create one per job or request. Its workers start on first use and stop in `deinit`.
public final class KernelContext: @unchecked Sendable {
  public let pointer: OpaquePointer
  /// Where a pooled context goes back to instead of being destroyed.
  private let release: (@Sendable (OpaquePointer) -> Void)?

  /// `threads`: nil takes `defaultThreads` (BLOCKSCOPE_THREADS, else the online CPUs).
  public init(threads: Int? = nil) {
    pointer = Self.create(threads: threads)
    release = nil
  }

  fileprivate init(pooled pointer: OpaquePointer, release: @escaping @Sendable (OpaquePointer) -> Void) {
    self.pointer = pointer
    self.release = release
  }

  fileprivate static func create(threads: Int?) -> OpaquePointer {
    let n = max(1, min(threads ?? KernelContext.defaultThreads, Int(BS_MAX_THREADS)))
    guard let p = bs_context_create(Int32(n)) else {
      fatalError("blockscope: out of memory creating a kernel context")
    }
    return p
  }

  deinit {
    if let release { release(pointer) } else { bs_context_destroy(pointer) }
  }

  /// BLOCKSCOPE_THREADS, else the online CPUs.
  public static var defaultThreads: Int { Int(bs_default_threads()) }

  public var threads: Int { Int(bs_context_threads(pointer)) }

  public var isa: bs_isa { bs_context_isa(pointer) }
  public var isaName: String { String(cString: bs_isa_name(isa)) }

  /// Switches the kernel variants; false when this CPU cannot run `isa`.
  @discardableResult
  public func setISA(_ isa: bs_isa) -> Bool { bs_context_set_isa(pointer, isa) == BS_OK }

  /// BS_CONV_AUTO, BS_CONV_GEMM, BS_CONV_DIRECT or BS_CONV_WINOGRAD; out-of-range values are
  /// ignored.
  public var convAlgorithm: Int32 {
    get { bs_context_conv_algorithm(pointer) }
    set { bs_context_set_conv_algorithm(pointer, newValue) }
  }
  public var convAlgorithmName: String { String(cString: bs_conv_algorithm_name(convAlgorithm)) }
  /// The Winograd tile size (2 or 4 for every layer; 0, the default: per layer shape as
  /// measured). Other values are ignored.
  public var winogradTile: Int32 {
    get { bs_context_winograd_tile(pointer) }
    set { bs_context_set_winograd_tile(pointer, newValue) }
  }

  /// The micro-kernels of this context's ISA (single-threaded; call them directly).
  public var kernels: bs_kernels { bs_context_kernels(pointer).pointee }

  /// The index of the first NaN or infinity in x, nil if every value is finite (one SIMD pass).
  public func firstNonfinite(_ x: UnsafeBufferPointer<Float>) -> Int? {
    guard let base = x.baseAddress else { return nil }
    var first = 0
    kernels.bs_find_nonfinite(base, x.count, &first)
    return first < x.count ? first : nil
  }

  /// Starts (and resets) or stops the per-op wall-clock accounting.
  public func profile(_ on: Bool) { bs_context_profile_enable(pointer, on ? 1 : 0) }

  /// The per-op accounting since `profile(true)`: name, seconds, calls.
  public func profileReport() -> [(name: String, seconds: Double, calls: Int)] {
    var out: [(String, Double, Int)] = []
    var op: Int32 = 0
    var name: UnsafePointer<CChar>?
    var seconds = 0.0
    var calls = 0
    while bs_context_profile_read(pointer, op, &name, &seconds, &calls) == 0 {
      out.append((name.map { String(cString: $0) } ?? "?", seconds, calls))
      op += 1
    }
    return out
  }

  /// OpenBLAS sgemm throughput on this context's threads (each its own n^3 sgemm), GFLOP/s.
  public func sgemmProbe(n: Int = 1024, repetitions: Int = 8) -> Double {
    bs_sgemm_probe_gflops(pointer, Int32(n), Int32(repetitions))
  }

  /// The fp32 FMA peak of this context's threads in GFLOP/s (all threads at once, registers
  /// only, vectors of the context's ISA): the ceiling benchmarks compare their effective
  /// GFLOP/s with. The best of `probes` short probes: a neighbour's burst on this shared
  /// machine only ever lowers one, and a single probe once read 98 against 170.
  public func fmaPeakProbe(iterations: Int = 50_000_000, probes: Int = 5) -> Double {
    (0..<max(1, probes)).map { _ in bs_fma_peak_probe_gflops(pointer, iterations) }.max()!
  }
}

/// Kernel contexts kept for reuse, by thread count: a daemon that gave every request a new
/// context started and joined its worker threads and allocated and freed its scratch on every
/// request, and glibc's heap grew with the churn (tools/soak: +250 MiB in four minutes). A
/// context checked out is used by its request alone and comes back when the request drops it,
/// with its settings reset; at most `idleLimit` idle contexts of each size are kept.
public final class KernelContextPool: @unchecked Sendable {
  private let lock = NSLock()
  private var idle: [Int: [OpaquePointer]] = [:]
  public let idleLimit: Int

  public init(idleLimit: Int = 8) { self.idleLimit = idleLimit }

  deinit {
    for pointers in idle.values { for p in pointers { bs_context_destroy(p) } }
  }

  /// A context of `threads` threads (nil: the default), idle or new.
  public func context(threads: Int? = nil) -> KernelContext {
    let n = max(1, min(threads ?? KernelContext.defaultThreads, Int(BS_MAX_THREADS)))
    let reused: OpaquePointer? = lock.withLock { idle[n]?.popLast() }
    let pointer = reused ?? KernelContext.create(threads: n)
    return KernelContext(pooled: pointer) { [weak self] p in
      guard let self else { return bs_context_destroy(p) }
      self.put(p, threads: n)
    }
  }

  /// Idle contexts kept now (for tests and STATUS).
  public var idleCount: Int { lock.withLock { idle.values.reduce(0) { $0 + $1.count } } }

  private func put(_ p: OpaquePointer, threads n: Int) {
    _ = bs_context_set_isa(p, bs_default_isa())
    bs_context_set_conv_algorithm(p, bs_default_conv_algorithm())
    bs_context_profile_enable(p, 0)
    let kept: Bool = lock.withLock {
      guard idle[n, default: []].count < idleLimit else { return false }
      idle[n, default: []].append(p)
      return true
    }
    if !kept { bs_context_destroy(p) }
  }
}
