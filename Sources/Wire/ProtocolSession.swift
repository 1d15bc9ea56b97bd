// The daemon's side of one connection's conversation (SPEC.md sections 4 and 5) as a pure state
// machine: the daemon hands it each decoded frame and acts on the decision; the session does no
// I/O, so every rule is testable without a socket.
//
//   - The first frame is HELLO; anything else, or a second HELLO, is HELLO_REQUIRED (close).
//     The exception is ERROR, in any state: the client is closing, so it is not answered.
//   - HELLO chooses the highest version both sides speak; no overlap is UNSUPPORTED_VERSION
//     (close). Later frames must carry the chosen version (VERSION_MISMATCH, close).
//   - Request ids are nonzero, HELLO's included (id 0 names the connection in ERROR frames:
//     MALFORMED_HEADER, close). A reused id of an unanswered request is DUPLICATE_REQUEST_ID
//     (close: an answer on that id could not be told from the first request's). At most 64
//     requests are unanswered at once (TOO_MANY_REQUESTS, answered on that request only).
//
// The order of these checks is SPEC.md section 4's numbered list; `receive` follows it.

/// One connection's conversation rules, daemon side.
public struct ProtocolSession: Sendable {
  /// Unanswered requests allowed per connection.
  public static let maxInFlightRequests = 64

  /// What the daemon does with a received frame.
  public enum Decision: Hashable, Sendable {
    /// HELLO accepted: answer `HELLO_OK` with `version` on the frame's request id, and set
    /// the frame decoder's `negotiatedVersion`.
    case hello(HelloRequest, version: UInt8)
    /// A request to handle; its id is now in flight until `complete(requestID:)`.
    case dispatch(Frame)
    /// Answer `ERROR` on this request id; the connection stays open.
    case reject(requestID: UInt64, WireError)
    /// Send `ERROR` with request id 0, then close the connection.
    case close(WireError)
    /// The client sent `ERROR` (it is about to close), before or after HELLO, on any request
    /// id: close without answering. The doc is nil when it does not decode (it is not checked).
    case peerError(ErrorDoc?)
  }

  /// Header versions the daemon speaks.
  public let supportedVersions: ClosedRange<UInt8>
  /// Set by an accepted HELLO.
  public private(set) var negotiatedVersion: UInt8?
  /// Ids of dispatched requests not yet answered.
  public private(set) var inFlight: Set<UInt64> = []

  public init(supportedVersions: ClosedRange<UInt8> = FrameHeader.supportedVersions) {
    self.supportedVersions = supportedVersions
  }

  /// Whether HELLO has been accepted.
  public var isEstablished: Bool { negotiatedVersion != nil }

  /// The version to encode the daemon's frames in: the negotiated one, else 1 (HELLO's).
  public var replyVersion: UInt8 { negotiatedVersion ?? FrameHeader.currentVersion }

  /// The highest version in both `min...max` and the supported versions; nil when none.
  public func negotiate(min: UInt8, max: UInt8) -> UInt8? {
    guard min <= max else { return nil }
    let low = Swift.max(min, supportedVersions.lowerBound)
    let high = Swift.min(max, supportedVersions.upperBound)
    return low <= high ? high : nil
  }

  /// The decision for the next frame the decoder produced.
  public mutating func receive(_ frame: Frame) -> Decision {
    guard let negotiatedVersion else { return receiveFirst(frame) }
    if frame.type == .hello {
      return .close(WireError(.helloRequired, "HELLO was already received on this connection"))
    }
    if frame.version != negotiatedVersion {
      return .close(WireError(.versionMismatch,
                              "frame version \(frame.version) differs from the negotiated version \(negotiatedVersion)"))
    }
    if frame.type == .error {
      return .peerError(try? frame.decodeDoc(ErrorDoc.self))
    }
    guard frame.type.isRequest else {
      return .close(WireError(.notARequest, "\(frame.type.debugName) is not a request"))
    }
    if frame.requestID == 0 {
      return .close(WireError(.malformedHeader, "request id 0 is reserved for the connection"))
    }
    if inFlight.contains(frame.requestID) {
      return .close(WireError(
        .duplicateRequestID, "request id \(frame.requestID) is already in use by an unanswered request"))
    }
    if inFlight.count >= Self.maxInFlightRequests {
      return .reject(requestID: frame.requestID, WireError(
        .tooManyRequests, "\(Self.maxInFlightRequests) requests are already unanswered on this connection"))
    }
    inFlight.insert(frame.requestID)
    return .dispatch(frame)
  }

  /// Records that a request's final frame (response or ERROR) was sent; its id may be reused.
  /// Returns whether the id was in flight.
  @discardableResult
  public mutating func complete(requestID: UInt64) -> Bool {
    inFlight.remove(requestID) != nil
  }

  private mutating func receiveFirst(_ frame: Frame) -> Decision {
    if frame.type == .error {
      // A client that gives up before HELLO is closing like one that gives up later:
      // HELLO_REQUIRED would be written to a peer that is going away.
      return .peerError(try? frame.decodeDoc(ErrorDoc.self))
    }
    guard frame.type == .hello else {
      return .close(WireError(.helloRequired, "the first frame must be HELLO, not \(frame.type.debugName)"))
    }
    if frame.requestID == 0 {
      // HELLO is a request like any other: HELLO_OK, or an ERROR about its doc, on id 0 could
      // not be told from a connection error.
      return .close(WireError(.malformedHeader, "request id 0 is reserved for the connection (HELLO included)"))
    }
    let hello: HelloRequest
    do throws(WireError) {
      hello = try frame.decodeDoc(HelloRequest.self)
    } catch {
      // The frame is intact: answer it and wait for a well-formed HELLO.
      return .reject(requestID: frame.requestID, error)
    }
    guard let version = negotiate(min: hello.minVersion, max: hello.maxVersion) else {
      return .close(WireError(.unsupportedVersion,
                              "the client speaks versions \(hello.minVersion)...\(hello.maxVersion), "
                              + "the daemon \(supportedVersions.lowerBound)...\(supportedVersions.upperBound)"))
    }
    negotiatedVersion = version
    return .hello(hello, version: version)
  }
}
