import Glibc
import Wire

// The seam between the daemon's two halves:
//   Transport/  the libuv loop thread: sockets, framing, the session rules, backpressure; it
//               hands every dispatched request to a worker thread and never computes.
//   Service/    answers requests on worker threads with Engine and Analysis.
// The transport calls `RequestService.handle` on a worker; the service answers through the
// request's `ReplyChannel`, from any thread.

/// One dispatched request: a frame that passed framing and the session rules.
public struct IncomingRequest: Sendable {
  public let type: MessageType
  public let requestID: UInt64
  /// The client set QUIET: the channel drops PROGRESS events for this request.
  public let quiet: Bool
  /// The raw payload; `parsedPayload()` / `decode(_:)` apply section 3 of the spec.
  public let payload: [UInt8]
  /// The file descriptor that came with the frame (SCM_RIGHTS), if any: a shared-memory
  /// SESSION_BATCH's memfd. Closed when the last copy of the request is gone.
  public let descriptor: PassedDescriptor?

  public init(type: MessageType, requestID: UInt64, quiet: Bool, payload: [UInt8],
              descriptor: PassedDescriptor? = nil) {
    self.type = type
    self.requestID = requestID
    self.quiet = quiet
    self.payload = payload
    self.descriptor = descriptor
  }

  public init(_ frame: Frame, descriptor: PassedDescriptor? = nil) {
    self.init(type: frame.type, requestID: frame.requestID, quiet: frame.flags.contains(.quiet),
              payload: frame.payload, descriptor: descriptor)
  }

  public func parsedPayload() throws(WireError) -> Payload { try Payload.parse(payload) }

  /// The request's doc as `T` (MALFORMED_PAYLOAD / INVALID_ARGUMENT as WireError).
  public func decode<T: Decodable>(_ type: T.Type) throws(WireError) -> T {
    try parsedPayload().decode(type)
  }
}

/// A file descriptor received with a frame; owned by this object, closed when it goes.
public final class PassedDescriptor: Sendable {
  public let fd: Int32
  public init(_ fd: Int32) { self.fd = fd }
  deinit { _ = close(fd) }
}

/// Where one request's answer goes. Thread-safe; frames are queued to the loop thread.
public protocol ReplyChannel: AnyObject, Sendable {
  /// A PROGRESS event for this request. Dropped when the request is QUIET or the connection is
  /// gone; when the client reads slowly, only the newest unsent event is kept.
  func progress(_ event: ProgressEvent)
  /// The final frame: the response, with the request's id. Exactly once per request; later
  /// calls are ignored. Throws nothing: an answer too large for its frame limit is turned
  /// into RESULT_TOO_LARGE by the channel.
  func respond<T: Encodable>(_ type: MessageType, _ doc: T, tensors: [WireTensor])
  /// The final frame as an ERROR (request errors, code >= 100).
  func fail(_ error: WireError)
  /// True once the client's connection is closed: long work may stop early.
  var isCancelled: Bool { get }
  /// What the service keeps for the requesting connection until it closes (nil: no
  /// connection, e.g. a study's own analyses).
  var connection: ConnectionScope? { get }
}

extension ReplyChannel {
  public var connection: ConnectionScope? { nil }

  public func respond<T: Encodable>(_ type: MessageType, _ doc: T) {
    respond(type, doc, tensors: [])
  }
}

/// What the transport tells the service about itself (for STATUS).
public struct TransportStatus: Sendable {
  public var connections: Int
  public var socketPath: String
  /// Worker threads running requests (STATUS's `workers`).
  public var workers: Int
  public init(connections: Int, socketPath: String, workers: Int = 0) {
    self.connections = connections
    self.socketPath = socketPath
    self.workers = workers
  }
}

/// Answers requests. Implemented by `Service/`; tests may substitute their own.
public protocol RequestService: AnyObject, Sendable {
  /// Called on a worker thread, never on the loop thread. Must end in exactly one
  /// `respond` or `fail` on `reply` (possibly later, from another thread).
  func handle(_ request: IncomingRequest, reply: ReplyChannel, transport: TransportStatus)
  /// SIGTERM or SHUTDOWN: refuse new work with SHUTTING_DOWN, stop training jobs at their next
  /// step with their last finished epoch checkpointed (state `interrupted`), answer or refuse
  /// in-flight requests. Returns when all of that is done, with the number of training jobs
  /// checkpointed (SHUTDOWN_OK's `jobs_checkpointed`); the transport then closes and exits.
  func shutdown() -> Int
}
