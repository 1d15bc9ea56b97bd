import CKernels

/// The C library allocator's policy for a long-running process (see CKernels/allocator.c).
public enum AllocatorPolicy {
  /// The daemon's threshold: Gram slabs, full Gram matrices and request payloads at or above it
  /// are mmapped and go back to the system when freed.
  public static let daemonMmapThreshold = 256 << 10

  /// Blocks of `bytes` or more always mmapped (glibc would otherwise raise the threshold as
  /// large blocks are freed, and a cache that frees and refills them fragments the heap).
  /// Call once, early, before threads start. False if the C library refused.
  @discardableResult
  public static func fixMmapThreshold(_ bytes: Int = daemonMmapThreshold) -> Bool {
    bytes > 0 && bs_allocator_fix_mmap_threshold(bytes) == BS_OK
  }
}
