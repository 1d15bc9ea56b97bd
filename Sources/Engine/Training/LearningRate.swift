import Foundation

/// Learning rate at a given optimisation step: optional linear warm-up, then cosine decay to
/// zero over the remaining steps (per step, not per epoch, so the last epoch does not sit on
/// one value).
public struct LearningRateSchedule: Sendable {
  public let base: Double
  public let totalSteps: Int
  public let warmupSteps: Int

  public init(base: Double, totalSteps: Int, warmupSteps: Int = 0) {
    self.base = base
    self.totalSteps = max(1, totalSteps)
    self.warmupSteps = max(0, min(warmupSteps, totalSteps))
  }

  /// Step 0 is the first update.
  public func rate(at step: Int) -> Double {
    if step < warmupSteps { return base * Double(step + 1) / Double(warmupSteps) }
    let t = Double(step - warmupSteps), span = Double(max(1, totalSteps - warmupSteps))
    return base * 0.5 * (1 + cos(Double.pi * min(t, span) / span))
  }
}
