import CKernels

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

  /// `threads`: nil takes `defaultThreads` (BLOCKSCOPE_THREADS, else the online CPUs).
  public init(threads: Int? = nil) {
    let n = max(1, min(threads ?? KernelContext.defaultThreads, Int(BS_MAX_THREADS)))
    guard let p = bs_context_create(Int32(n)) else {
      fatalError("blockscope: out of memory creating a kernel context")
    }
    pointer = p
  }

  deinit { bs_context_destroy(pointer) }

  /// BLOCKSCOPE_THREADS, else the online CPUs.
  public static var defaultThreads: Int { Int(bs_default_threads()) }

  public var threads: Int { Int(bs_context_threads(pointer)) }

  public var isa: bs_isa { bs_context_isa(pointer) }
  public var isaName: String { String(cString: bs_isa_name(isa)) }

  /// Switches the kernel variants; false when this CPU cannot run `isa`.
  @discardableResult
  public func setISA(_ isa: bs_isa) -> Bool { bs_context_set_isa(pointer, isa) == BS_OK }

  /// BS_CONV_AUTO, BS_CONV_GEMM or BS_CONV_DIRECT; out-of-range values are ignored.
  public var convAlgorithm: Int32 {
    get { bs_context_conv_algorithm(pointer) }
    set { bs_context_set_conv_algorithm(pointer, newValue) }
  }
  public var convAlgorithmName: String { String(cString: bs_conv_algorithm_name(convAlgorithm)) }

  /// The micro-kernels of this context's ISA (single-threaded; call them directly).
  public var kernels: bs_kernels { bs_context_kernels(pointer).pointee }

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
}
