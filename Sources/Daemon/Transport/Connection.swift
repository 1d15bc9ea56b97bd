import CLibUV
import Wire

/// One client connection, as the loop thread sees it. Only the loop touches it; workers reach
/// the connection only through its `outbox`.
final class Connection {
  enum State {
    /// Read from and answered.
    case open
    /// A connection error (or SHUTTING_DOWN_CLOSE) is queued: no more reading; the handle is
    /// closed once the outbox has drained or `closeDeadline` has passed.
    case closing
    /// uv_close was called; the close callback removes the connection.
    case closed
  }

  let id: Int
  /// Freed in the close callback.
  let pipe: UnsafeMutablePointer<uv_pipe_t>
  let outbox: ConnectionOutbox
  unowned let transport: DaemonTransport
  var decoder = FrameDecoder(role: .server)
  var session = ProtocolSession()
  /// The channels of dispatched requests not yet completed in the session.
  var replies: [UInt64: RequestReply] = [:]
  var state = State.open
  /// uv_read_start is in effect.
  var reading = false
  /// Reading stopped because the unsent output went above the high-water mark.
  var pausedForOutput = false
  /// The peer shut down its side (EOF): the connection closes once its requests are answered.
  var inputEnded = false
  /// Loop time (ms) after which a closing connection is cut.
  var closeDeadline: UInt64 = 0
  /// Loop time (ms) of the accept (the HELLO timeout counts from here).
  var acceptedAt: UInt64 = 0
  /// Loop time (ms) when the frame now held in part began to arrive; nil when no frame is
  /// partly received.
  var partialSince: UInt64?
  /// A file descriptor that came with a read ending inside a frame: it goes with that frame.
  var heldDescriptor: PassedDescriptor?

  /// Since when the connection has held its slot without a complete frame to show for it: from
  /// the accept until HELLO, then while a frame is partly received. nil: it is productive.
  var unproductiveSince: UInt64? {
    guard state == .open, session.inFlight.isEmpty else { return nil }
    return session.isEstablished ? partialSince : acceptedAt
  }

  init(id: Int, pipe: UnsafeMutablePointer<uv_pipe_t>, outbox: ConnectionOutbox, transport: DaemonTransport) {
    self.id = id
    self.pipe = pipe
    self.outbox = outbox
    self.transport = transport
  }

  var stream: UnsafeMutablePointer<uv_stream_t> { UnsafeMutableRawPointer(pipe).assumingMemoryBound(to: uv_stream_t.self) }
  var handle: UnsafeMutablePointer<uv_handle_t> { UnsafeMutableRawPointer(pipe).assumingMemoryBound(to: uv_handle_t.self) }
}

/// What one uv_write holds until its callback: the frames' memory and the connection.
final class WriteContext {
  let connection: Connection
  let buffers: [OutBuffer]
  let byteCount: Int

  init(connection: Connection, buffers: [OutBuffer]) {
    self.connection = connection
    self.buffers = buffers
    byteCount = buffers.reduce(0) { $0 + $1.count }
  }
}

/// A libuv handle pointer of any kind as `uv_handle_t`.
@inline(__always)
func uvHandle<T>(_ pointer: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<uv_handle_t> {
  UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: uv_handle_t.self)
}
