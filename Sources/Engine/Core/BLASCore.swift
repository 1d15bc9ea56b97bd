import CKernels

/// Which OpenBLAS kernels this process runs (CKernels/blas_core.c explains why it matters).
public enum BLASCore {
  /// OpenBLAS's name for the kernels it chose ("SkylakeX", "Haswell", "Prescott", ...).
  public static var name: String { String(cString: bs_blas_core_name()) }

  /// For an executable's first line: re-executes the process once with OPENBLAS_CORETYPE set
  /// when OpenBLAS did not recognise the CPU and fell back to weaker kernels. Returns when
  /// there was nothing to do (or the exec failed: the process then runs, slower).
  public static func reexecIfUntuned() {
    _ = bs_blas_reexec_if_untuned(CommandLine.unsafeArgv)
  }
}
