import CKernels
import Foundation

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

  /// The free pages of every malloc arena back to the system (malloc_trim).
  public static func releaseFreeMemory() { _ = bs_allocator_trim() }

  /// `releaseFreeMemory` at most once per `interval` seconds, however many threads call it:
  /// the daemon calls it after every request and analysis, so freed Gram entries and buffers do
  /// not stay resident as arena holes.
  public final class Trimmer: @unchecked Sendable {
    private let interval: UInt64
    private let lock = NSLock()
    private var last: UInt64 = 0

    public init(interval seconds: Double = 2) { interval = UInt64(seconds * 1e9) }

    public func trimIfDue() {
      let now = DispatchTime.now().uptimeNanoseconds
      let due: Bool = lock.withLock {
        guard now &- last >= interval else { return false }
        last = now
        return true
      }
      if due { AllocatorPolicy.releaseFreeMemory() }
    }
  }
}
