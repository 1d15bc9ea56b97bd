import Foundation

/// What lives as long as one client connection: objects a service keeps between that
/// connection's requests (the memfd mappings a client reuses for its batches), dropped when the
/// connection closes. Requests run on workers and the close comes from the loop thread, so
/// everything is under one lock.
public final class ConnectionScope: @unchecked Sendable {
  private let lock = NSLock()
  private var objects: [ObjectIdentifier: AnyObject] = [:]
  private var closed = false

  public init() {}

  /// The connection's object of type T, made on first use; nil once the connection has closed
  /// (the caller then works without one).
  public func object<T: AnyObject>(_ type: T.Type, _ make: () -> T) -> T? {
    lock.withLock {
      guard !closed else { return nil }
      if let existing = objects[ObjectIdentifier(T.self)] as? T { return existing }
      let made = make()
      objects[ObjectIdentifier(T.self)] = made
      return made
    }
  }

  /// Drops every object. A request still using one keeps it until it ends.
  public func close() {
    let dropped: [AnyObject] = lock.withLock {
      closed = true
      defer { objects = [:] }
      return Array(objects.values)
    }
    _ = dropped   // released here, outside the lock
  }
}
