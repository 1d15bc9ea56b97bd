import Foundation
import Glibc

/// A fixed set of threads taking jobs from one FIFO queue. The loop thread submits every
/// dispatched request here and never waits on it.
final class WorkerPool: @unchecked Sendable {
  struct Job: Sendable {
    /// The work (calls the service).
    let run: @Sendable () -> Void
    /// Called instead of `run` for a job that never started because the daemon is stopping.
    let abandon: @Sendable () -> Void
  }

  let threadCount: Int
  private let condition = NSCondition()
  private var queue: [Job] = []
  private var head = 0
  private var stopped = false
  private var running = 0

  init(threads: Int, name: String = "blockscoped-worker", stackBytes: Int = 8 << 20) {
    threadCount = max(1, threads)
    for index in 0..<threadCount {
      let thread = Thread { [self] in work() }
      thread.name = "\(name)-\(index)"
      thread.stackSize = stackBytes
      thread.start()
    }
  }

  /// Queues a job; false once the pool is stopped.
  @discardableResult
  func submit(_ job: Job) -> Bool {
    condition.lock()
    defer { condition.unlock() }
    guard !stopped else { return false }
    queue.append(job)
    condition.signal()
    return true
  }

  /// Removes and returns the jobs no thread has started.
  func drainPending() -> [Job] {
    condition.lock()
    defer { condition.unlock() }
    let pending = Array(queue[head...])
    queue = []
    head = 0
    return pending
  }

  /// Jobs queued and not started.
  var pendingCount: Int {
    condition.lock()
    defer { condition.unlock() }
    return queue.count - head
  }

  /// Jobs being run now.
  var busyCount: Int {
    condition.lock()
    defer { condition.unlock() }
    return running
  }

  /// No more jobs: threads finish what is queued and end (they are not joined: a job stuck in
  /// the service must not keep the daemon from exiting).
  func stop() {
    condition.lock()
    stopped = true
    condition.broadcast()
    condition.unlock()
  }

  private func work() {
    while true {
      condition.lock()
      while head == queue.count && !stopped { condition.wait() }
      if head == queue.count {
        condition.unlock()
        return
      }
      let job = queue[head]
      head += 1
      if head == queue.count {
        queue.removeAll(keepingCapacity: true)
        head = 0
      } else if head >= 1024 && head * 2 >= queue.count {
        queue.removeSubrange(0..<head)
        head = 0
      }
      running += 1
      condition.unlock()
      job.run()
      condition.lock()
      running -= 1
      condition.unlock()
    }
  }
}
