import CLibUV
import Foundation
import Glibc
import Wire

// The hand-off from worker threads to the loop thread. A worker encodes its frame (the
// expensive part) and appends it to the connection's outbox under a lock; the outbox then asks
// the loop, through one uv_async_t, to write it. The loop moves frames from the outbox to
// uv_write only while libuv holds less than the high-water mark for that connection, so a
// client that reads slowly leaves its frames in the outbox, where PROGRESS events can still be
// replaced by newer ones.

/// The bytes of one encoded frame, owned until libuv has written them.
final class OutBuffer: @unchecked Sendable {
  let base: UnsafeMutableRawPointer
  let count: Int

  init(_ frame: Frame) {
    var header: [UInt8] = []
    header.reserveCapacity(FrameHeader.encodedSize)
    frame.header.encode(into: &header)
    count = header.count + frame.payload.count
    base = .allocate(byteCount: count, alignment: 16)
    header.withUnsafeBytes { base.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    frame.payload.withUnsafeBytes { payload in
      if let source = payload.baseAddress {
        (base + header.count).copyMemory(from: source, byteCount: payload.count)
      }
    }
  }

  deinit { base.deallocate() }

  /// The frame's bytes (for tests and the rare synchronous write).
  var bytes: [UInt8] { Array(UnsafeRawBufferPointer(start: base, count: count)) }
}

/// One frame waiting for the loop.
struct OutItem: Sendable {
  enum Kind: Sendable {
    /// A PROGRESS event: may be replaced by a newer one of the same request.
    case event
    /// A request's final frame: the loop completes the request in the session when it hands
    /// the frame to libuv.
    case final
    /// Anything else (HELLO_OK, an ERROR on a request that was never in flight, a connection
    /// error).
    case other
  }

  let buffer: OutBuffer
  let requestID: UInt64
  let kind: Kind
}

/// Asks the loop thread to act: connections with frames to write, and closures to run there.
final class LoopWakeup: @unchecked Sendable {
  private let lock = NSLock()
  private var async: UnsafeMutablePointer<uv_async_t>?
  private var dirty: [ConnectionOutbox] = []
  private var tasks: [@Sendable () -> Void] = []

  func attach(_ async: UnsafeMutablePointer<uv_async_t>) {
    lock.lock()
    self.async = async
    lock.unlock()
  }

  /// Called on the loop before the async handle is closed: later wake-ups are dropped.
  func detach() {
    lock.lock()
    async = nil
    dirty = []
    tasks = []
    lock.unlock()
  }

  func schedule(_ outbox: ConnectionOutbox) {
    lock.lock()
    defer { lock.unlock() }
    guard let async else { return }
    dirty.append(outbox)
    uv_async_send(async)
  }

  /// Runs `task` on the loop thread soon. Dropped once the loop is finishing.
  func post(_ task: @escaping @Sendable () -> Void) {
    lock.lock()
    defer { lock.unlock() }
    guard let async else { return }
    tasks.append(task)
    uv_async_send(async)
  }

  func take() -> (dirty: [ConnectionOutbox], tasks: [@Sendable () -> Void]) {
    lock.lock()
    defer { lock.unlock() }
    let taken = (dirty, tasks)
    dirty = []
    tasks = []
    return taken
  }
}

/// A connection's queue of frames, shared by the workers (who append) and the loop (which
/// writes). Everything is under one lock.
final class ConnectionOutbox: @unchecked Sendable {
  let connectionID: Int
  /// What the service keeps for this connection; closed with the connection.
  let scope = ConnectionScope()
  private let highWater: Int
  private let wakeup: LoopWakeup
  private let lock = NSLock()
  private var items: [OutItem] = []
  private var head = 0
  private var queued = 0
  private var writing = 0
  private var closed = false
  private var scheduled = false

  init(connectionID: Int, highWater: Int, wakeup: LoopWakeup) {
    self.connectionID = connectionID
    self.highWater = highWater
    self.wakeup = wakeup
  }

  /// True once the connection is closed or closing: nothing more is accepted.
  var isClosed: Bool {
    lock.lock()
    defer { lock.unlock() }
    return closed
  }

  /// Bytes not yet written to the socket: queued here plus handed to libuv.
  var unsentBytes: Int {
    lock.lock()
    defer { lock.unlock() }
    return queued + writing
  }

  /// Nothing queued and nothing being written.
  var isDrained: Bool {
    lock.lock()
    defer { lock.unlock() }
    return head == items.count && writing == 0
  }

  /// Appends a frame; false (and dropped) when the connection is closed. `coalesce`: a PROGRESS
  /// event replaces its request's unsent one while the unsent output is above the high-water
  /// mark. `wake`: ask the loop to write (workers); the loop itself flushes after enqueueing.
  @discardableResult
  func enqueue(_ item: OutItem, coalesce: Bool = false, wake: Bool = true) -> Bool {
    lock.lock()
    guard !closed else {
      lock.unlock()
      return false
    }
    if coalesce && queued + writing > highWater,
       let index = items[head...].lastIndex(where: { $0.kind == .event && $0.requestID == item.requestID }) {
      queued += item.buffer.count - items[index].buffer.count
      items[index] = item
      lock.unlock()
      return true
    }
    items.append(item)
    queued += item.buffer.count
    let needsWake = wake && !scheduled
    if needsWake { scheduled = true }
    lock.unlock()
    if needsWake { wakeup.schedule(self) }
    return true
  }

  /// Closes the outbox to workers and appends the connection's last frame (an ERROR), which is
  /// written after whatever is queued.
  func close(withLast item: OutItem?) {
    lock.lock()
    defer { lock.unlock() }
    guard !closed else { return }
    closed = true
    if let item {
      items.append(item)
      queued += item.buffer.count
    }
  }

  /// Closes the outbox and drops what is queued (the peer is gone).
  func discard() {
    lock.lock()
    defer { lock.unlock() }
    closed = true
    items = []
    head = 0
    queued = 0
  }

  /// Loop: takes the frames to hand to libuv now, while less than the high-water mark is being
  /// written (so at least one when nothing is). Their bytes count as being written until
  /// `wrote` is called.
  func take() -> [OutItem] {
    lock.lock()
    defer { lock.unlock() }
    scheduled = false
    var taken: [OutItem] = []
    while head < items.count && writing < highWater {
      let item = items[head]
      head += 1
      queued -= item.buffer.count
      writing += item.buffer.count
      taken.append(item)
    }
    if head == items.count {
      items.removeAll(keepingCapacity: items.count <= 1024)
      head = 0
    } else if head >= 1024 && head * 2 >= items.count {
      items.removeSubrange(0..<head)
      head = 0
    }
    return taken
  }

  /// Loop: libuv finished (or abandoned) a write of `bytes`.
  func wrote(_ bytes: Int) {
    lock.lock()
    writing -= bytes
    lock.unlock()
  }
}

/// The `ReplyChannel` of one dispatched request.
final class RequestReply: ReplyChannel, @unchecked Sendable {
  let requestID: UInt64
  let requestType: MessageType
  let quiet: Bool
  /// The header version of the daemon's frames on this connection.
  let version: UInt8
  let outbox: ConnectionOutbox
  /// Held while checking `finished` and enqueueing, so that no PROGRESS can follow the final
  /// frame even when the service calls `progress` and `respond` from different threads.
  private let lock = NSLock()
  private var finished = false

  init(requestID: UInt64, requestType: MessageType, quiet: Bool, version: UInt8, outbox: ConnectionOutbox) {
    self.requestID = requestID
    self.requestType = requestType
    self.quiet = quiet
    self.version = version
    self.outbox = outbox
  }

  var isFinished: Bool {
    lock.lock()
    defer { lock.unlock() }
    return finished
  }

  var isCancelled: Bool { outbox.isClosed }

  var connection: ConnectionScope? { outbox.scope }

  func progress(_ event: ProgressEvent) {
    guard !quiet, !isFinished, !outbox.isClosed else { return }
    // An event too large for its frame (a huge message) is dropped: events are advisory.
    guard let frame = try? Frame.message(type: .progress, requestID: requestID, doc: event, version: version)
    else { return }
    let item = OutItem(buffer: OutBuffer(frame), requestID: requestID, kind: .event)
    lock.lock()
    defer { lock.unlock() }
    guard !finished else { return }
    outbox.enqueue(item, coalesce: true)
  }

  func respond<T: Encodable>(_ type: MessageType, _ doc: T, tensors: [WireTensor]) {
    guard !isFinished else { return }
    let frame: Frame
    if type != requestType.responseType {
      frame = Frame.error(.internal, "the daemon answered \(requestType.name) with \(type.name)",
                          requestID: requestID, version: version)
    } else {
      do {
        frame = try Frame.message(type: type, requestID: requestID, doc: doc, tensors: tensors, version: version)
      } catch let error as WireError {
        // RESULT_TOO_LARGE: the doc or the frame is over its limit.
        frame = Frame.error(error, requestID: requestID, version: version)
      } catch {
        frame = Frame.error(.internal, "the \(type.name) answer could not be encoded: \(error)",
                            requestID: requestID, version: version)
      }
    }
    finish(frame)
  }

  func fail(_ error: WireError) {
    var error = error
    if error.closesConnection {
      // A request's final frame never closes the connection; a connection code here is a bug.
      error = WireError(.internal, "the daemon answered with connection error \(error.code.name): \(error.message)")
    }
    finish(Frame.error(error, requestID: requestID, version: version))
  }

  private func finish(_ frame: Frame) {
    let item = OutItem(buffer: OutBuffer(frame), requestID: requestID, kind: .final)
    lock.lock()
    defer { lock.unlock() }
    guard !finished else { return }
    finished = true
    outbox.enqueue(item)
  }
}
