import Foundation

/// Gram vectors kept between analyses, bounded by a byte budget with least-recently-used
/// eviction. Thread-safe: the daemon's workers share one cache. A new heatmap over cached
/// models (another layer subset, another estimator, a cross-model heatmap against one new
/// model) finds its Grams here and runs no forward pass of the cached models.
public final class GramCache: @unchecked Sendable {
  public struct Stats: Codable, Sendable, Equatable {
    public var entries: Int
    public var bytes: Int
    public var budgetBytes: Int
    public var hits: Int
    public var misses: Int
    public var evictions: Int
    /// Entries larger than the whole budget, not stored.
    public var rejected: Int
  }

  private final class Node {
    let key: GramKey
    let entry: GramEntry
    var prev: Node?
    var next: Node?
    init(key: GramKey, entry: GramEntry) {
      self.key = key
      self.entry = entry
    }
  }

  private let lock = NSLock()
  private var table: [GramKey: Node] = [:]
  private var head: Node?   // most recently used
  private var tail: Node?   // least recently used
  private var stats: Stats

  public init(budgetBytes: Int) {
    stats = Stats(entries: 0, bytes: 0, budgetBytes: max(0, budgetBytes), hits: 0, misses: 0,
                  evictions: 0, rejected: 0)
  }

  public var budgetBytes: Int {
    get { lock.withLock { stats.budgetBytes } }
    set { lock.withLock { stats.budgetBytes = max(0, newValue); evictToBudget() } }
  }

  public var currentStats: Stats { lock.withLock { stats } }

  public func entry(_ key: GramKey) -> GramEntry? {
    lock.withLock {
      guard let node = table[key] else {
        stats.misses += 1
        return nil
      }
      stats.hits += 1
      moveToFront(node)
      return node.entry
    }
  }

  /// Whether the key is cached, without counting a hit or touching the LRU order.
  public func contains(_ key: GramKey) -> Bool { lock.withLock { table[key] != nil } }

  public func insert(_ entry: GramEntry, for key: GramKey) {
    lock.withLock {
      if let old = table[key] { drop(old) }
      guard entry.bytes <= stats.budgetBytes else {
        stats.rejected += 1
        return
      }
      let node = Node(key: key, entry: entry)
      table[key] = node
      pushFront(node)
      stats.bytes += entry.bytes
      stats.entries += 1
      evictToBudget()
    }
  }

  /// Drops one entry, if cached.
  public func remove(_ key: GramKey) {
    lock.withLock {
      if let node = table[key] { drop(node) }
    }
  }

  /// Drops every entry of a model (e.g. when it is deleted from the store).
  public func removeAll(model: UInt64) {
    lock.withLock {
      for (key, node) in table where key.model == model { drop(node) }
    }
  }

  public func removeAll() {
    lock.withLock {
      table.removeAll()
      head = nil
      tail = nil
      stats.bytes = 0
      stats.entries = 0
    }
  }

  // MARK: LRU list (lock held)

  private func evictToBudget() {
    while stats.bytes > stats.budgetBytes, let lru = tail {
      drop(lru)
      stats.evictions += 1
    }
  }

  /// Takes a node out of the list, the table and the byte count.
  private func drop(_ node: Node) {
    unlink(node)
    table[node.key] = nil
    stats.bytes -= node.entry.bytes
    stats.entries -= 1
  }

  private func pushFront(_ node: Node) {
    node.next = head
    node.prev = nil
    head?.prev = node
    head = node
    if tail == nil { tail = node }
  }

  private func unlink(_ node: Node) {
    if let p = node.prev { p.next = node.next } else { head = node.next }
    if let n = node.next { n.prev = node.prev } else { tail = node.prev }
    node.prev = nil
    node.next = nil
  }

  private func moveToFront(_ node: Node) {
    guard head !== node else { return }
    unlink(node)
    pushFront(node)
  }
}
