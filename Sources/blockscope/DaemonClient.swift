import Foundation
import Wire

import Glibc

// A blocking client of the blockscoped protocol (SPEC.md sections 1, 2, 4): connect to the
// Unix socket, HELLO, then one request at a time, each with a fresh nonzero id, reading its
// PROGRESS events until the final frame. Every byte goes through Wire's FrameDecoder (role
// .client), so a daemon that breaks the spec is caught by the same checks the daemon applies
// to clients; such a violation is answered with an ERROR frame (request id 0) before closing,
// as section 2 asks of any receiver.
//
// Signals: every read, write and connect is retried on EINTR. Writes use MSG_NOSIGNAL, so a
// daemon that hangs up gives EPIPE here rather than killing the CLI with SIGPIPE.

/// An `ERROR` frame the daemon sent: the final frame of a request (code >= 100), or a
/// connection error (code < 100, request id 0) after which the daemon closes.
struct DaemonError: Error, CustomStringConvertible {
  var code: UInt16
  var name: String
  var message: String
  /// The daemon closes the connection after this error.
  var closesConnection: Bool
  var requestID: UInt64

  init(_ doc: ErrorDoc, requestID: UInt64) {
    code = doc.code
    name = doc.name
    message = doc.message
    closesConnection = doc.closesConnection
    self.requestID = requestID
  }

  /// The code, when this version of the protocol knows it.
  var errorCode: ErrorCode? { ErrorCode(rawValue: code) }

  var description: String { "\(name) (\(code)): \(message)" }
}

/// Failures on this side of the connection.
enum ClientError: Error, CustomStringConvertible {
  /// Nothing listens at the path (no socket file, or a stale one: ECONNREFUSED).
  case noDaemon(path: String, reason: String?)
  /// A system call failed; `subject` is the path or what the call was about.
  case system(call: String, subject: String, errno: Int32)
  /// The daemon closed the connection before the request's final frame.
  case closed(path: String, detail: String)
  /// No answer in time (HELLO only: requests may legitimately run for minutes).
  case timeout(String)
  /// The daemon's bytes break the spec (detected by Wire's decoder or payload parser).
  case protocolViolation(WireError)
  /// A request this side cannot send (too large for its frame limit, not encodable).
  case badRequest(String)
  /// Anything else that should not happen (a response of the wrong type, ...).
  case unexpected(String)

  var description: String {
    switch self {
    case .noDaemon(let path, let reason):
      return "no daemon at \(path)" + (reason.map { " (\($0))" } ?? "")
    case .system(let call, let subject, let code):
      return "\(call)(\(subject)): \(String(cString: strerror(code))) (errno \(code))"
    case .closed(let path, let detail):
      return "the daemon at \(path) closed the connection \(detail)"
    case .timeout(let message):
      return message
    case .protocolViolation(let error):
      return "the daemon broke the protocol: \(error)"
    case .badRequest(let message):
      return message
    case .unexpected(let message):
      return message
    }
  }
}

/// A response: its type and parsed payload (doc JSON and tensors).
struct DaemonResponse {
  var type: MessageType
  var payload: Payload

  /// The doc as the Wire type `T` (INVALID_ARGUMENT-style messages name the key).
  func decode<T: Decodable>(_: T.Type) throws -> T {
    do throws(WireError) {
      return try payload.decode(T.self)
    } catch {
      throw ClientError.protocolViolation(WireError(
        error.code, "\(type.name) doc does not match the spec: \(error.message)"))
    }
  }

  /// The doc as a JSON object, `tensors` descriptors included.
  func jsonObject() throws -> [String: Any] {
    guard let object = try? JSONSerialization.jsonObject(with: Data(payload.doc)) as? [String: Any] else {
      throw ClientError.protocolViolation(WireError(.malformedPayload, "the \(type.name) doc is not a JSON object"))
    }
    return object
  }

  func tensor(_ name: String) -> WireTensor? { payload.tensor(named: name) }

  /// The tensor, or a protocol violation naming it.
  func requiredTensor(_ name: String) throws -> WireTensor {
    guard let tensor = payload.tensor(named: name) else {
      throw ClientError.protocolViolation(WireError(.invalidArgument, "\(type.name) lacks the tensor '\(name)'"))
    }
    return tensor
  }
}

/// One connection to the daemon.
final class DaemonClient {
  static let clientName = "blockscope CLI"
  /// How long to wait for `HELLO_OK`.
  static let helloTimeout: Double = 10

  let socketPath: String
  /// The daemon's `HELLO_OK`.
  private(set) var hello: HelloResponse?
  private var fd: Int32 = -1
  private var decoder = FrameDecoder(role: .client)
  private var version: UInt8 = FrameHeader.currentVersion
  private var lastRequestID: UInt64 = 0
  private var readBuffer = [UInt8](repeating: 0, count: 1 << 20)

  /// Connects and negotiates the version. Throws `.noDaemon` when nothing listens.
  init(socketPath: String) throws {
    self.socketPath = socketPath
    try open()
    do {
      try handshake()
    } catch {
      close()
      throw error
    }
  }

  deinit { close() }

  var isConnected: Bool { fd >= 0 }

  func close() {
    if fd >= 0 {
      _ = Glibc.close(fd)
      fd = -1
    }
  }

  // MARK: Connecting

  private func open() throws {
    let pathBytes = Array(socketPath.utf8)
    guard pathBytes.count <= SocketPath.maxLength else {
      throw ClientError.badRequest("socket path \(socketPath) is \(pathBytes.count) bytes; at most \(SocketPath.maxLength) fit a Unix socket address")
    }
    let socketType = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
    let descriptor = socket(AF_UNIX, socketType, 0)
    guard descriptor >= 0 else {
      throw ClientError.system(call: "socket", subject: "AF_UNIX", errno: errno)
    }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
      raw.copyBytes(from: pathBytes)
    }
    let length = socklen_t(MemoryLayout<sa_family_t>.size + pathBytes.count + 1)
    var result: Int32
    repeat {
      result = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, length) }
      }
    } while result < 0 && errno == EINTR
    // After EINTR the connection proceeds on its own; a retried connect then says so.
    if result < 0 && errno != EISCONN {
      let code = errno
      _ = Glibc.close(descriptor)
      switch code {
      case ENOENT:
        throw ClientError.noDaemon(path: socketPath, reason: nil)
      case ECONNREFUSED:
        throw ClientError.noDaemon(path: socketPath, reason: "connect: nothing listens on the socket file")
      default:
        throw ClientError.system(call: "connect", subject: socketPath, errno: code)
      }
    }
    fd = descriptor
  }

  private func handshake() throws {
    try setReceiveTimeout(Self.helloTimeout)
    let doc = HelloRequest(client: Self.clientName)
    let response: DaemonResponse
    do {
      response = try request(.hello, doc, quiet: true)
    } catch ClientError.timeout {
      throw ClientError.timeout("no HELLO_OK from \(socketPath) within \(Int(Self.helloTimeout)) s: is something else listening there?")
    }
    let hello = try response.decode(HelloResponse.self)
    guard FrameHeader.supportedVersions.contains(hello.version) else {
      let error = WireError(.unsupportedVersion, "the daemon chose version \(hello.version); this client speaks \(FrameHeader.supportedVersions)")
      failConnection(error)
      throw ClientError.protocolViolation(error)
    }
    version = hello.version
    decoder.negotiatedVersion = hello.version
    self.hello = hello
    try setReceiveTimeout(0)
  }

  private func setReceiveTimeout(_ seconds: Double) throws {
    var value = timeval(tv_sec: Int(seconds), tv_usec: 0)
    if setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size)) != 0 {
      throw ClientError.system(call: "setsockopt(SO_RCVTIMEO)", subject: socketPath, errno: errno)
    }
  }

  // MARK: Requests

  /// Sends one request and reads until its final frame. PROGRESS events go to `onProgress`;
  /// without a handler the request is sent QUIET (the daemon sends no events). An ERROR
  /// frame throws `DaemonError`.
  func request<Doc: Encodable>(_ type: MessageType, _ doc: Doc, tensors: [WireTensor] = [],
                               quiet: Bool? = nil,
                               onProgress: ((ProgressEvent) -> Void)? = nil) throws -> DaemonResponse {
    guard fd >= 0 else { throw ClientError.closed(path: socketPath, detail: "earlier") }
    guard let responseType = type.responseType else {
      throw ClientError.badRequest("\(type.name) is not a request type")
    }
    lastRequestID += 1
    let id = lastRequestID
    let flags: FrameFlags = (quiet ?? (onProgress == nil)) ? [.quiet] : []
    let frame: Frame
    do {
      // HELLO is always encoded in version 1 (section 7).
      frame = try Frame.message(type: type, requestID: id, doc: doc, tensors: tensors, flags: flags,
                                version: type == .hello ? FrameHeader.currentVersion : version)
    } catch let error as WireError {
      throw ClientError.badRequest("cannot send \(type.name): \(error.message)")
    } catch {
      throw ClientError.badRequest("cannot encode the \(type.name) doc: \(error)")
    }
    try send(frame.encoded(), context: type.name)
    return try receive(requestID: id, expecting: responseType, onProgress: onProgress)
  }

  private func receive(requestID: UInt64, expecting responseType: MessageType,
                       onProgress: ((ProgressEvent) -> Void)?) throws -> DaemonResponse {
    while true {
      while let frame = try nextFrame() {
        if frame.type == .error {
          let doc = (try? frame.decodeDoc(ErrorDoc.self))
            ?? ErrorDoc(code: ErrorCode.internal.rawValue, name: "ERROR",
                        message: "an ERROR frame whose doc could not be read", close: frame.requestID == 0)
          let error = DaemonError(doc, requestID: frame.requestID)
          if frame.requestID == 0 || error.closesConnection {
            close()
            throw error
          }
          if frame.requestID == requestID { throw error }
          continue  // an answer to nothing this client waits for
        }
        guard frame.requestID == requestID else { continue }
        if frame.type == .progress {
          if let onProgress, let event = try? frame.decodeDoc(ProgressEvent.self) {
            onProgress(event)
          }
          continue
        }
        guard frame.type == responseType else {
          let error = WireError(.unknownType, "\(responseType.requestType?.name ?? "?") was answered with \(frame.type.name)")
          failConnection(error)
          throw ClientError.protocolViolation(error)
        }
        do throws(WireError) {
          return DaemonResponse(type: frame.type, payload: try frame.parsedPayload())
        } catch {
          // The frame boundary is intact: only this answer is lost, the connection is fine.
          throw ClientError.protocolViolation(error)
        }
      }
      try fill()
    }
  }

  private func nextFrame() throws -> Frame? {
    do throws(WireError) {
      return try decoder.next()
    } catch {
      failConnection(error)
      throw ClientError.protocolViolation(error)
    }
  }

  /// Reads once from the socket into the decoder.
  private func fill() throws {
    while true {
      let count = readBuffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
      if count > 0 {
        readBuffer.withUnsafeBytes { decoder.feed(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        return
      }
      if count == 0 {
        let detail = decoder.hasPartialFrame ? "in the middle of a frame" : "before answering"
        close()
        throw ClientError.closed(path: socketPath, detail: detail)
      }
      let code = errno
      if code == EINTR { continue }
      if code == EAGAIN || code == EWOULDBLOCK {
        throw ClientError.timeout("read(\(socketPath)): no answer in time")
      }
      close()
      throw ClientError.system(call: "read", subject: socketPath, errno: code)
    }
  }

  private func send(_ bytes: [UInt8], context: String) throws {
    var offset = 0
    while offset < bytes.count {
      let sent = bytes.withUnsafeBytes { raw in
        Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
      }
      if sent >= 0 {
        offset += sent
        continue
      }
      let code = errno
      if code == EINTR { continue }
      if code == EPIPE || code == ECONNRESET {
        // The daemon may have said why before hanging up (FRAME_TOO_LARGE, SHUTTING_DOWN_CLOSE).
        if let error = pendingError() { throw error }
        close()
        throw ClientError.closed(path: socketPath, detail: "while \(context) was being sent")
      }
      close()
      throw ClientError.system(call: "send", subject: socketPath, errno: code)
    }
  }

  /// An ERROR frame already received or still readable, if any (after a failed send).
  private func pendingError() -> DaemonError? {
    for _ in 0..<64 {
      while let frame = try? decoder.next() {
        if frame.type == .error, let doc = try? frame.decodeDoc(ErrorDoc.self) {
          close()
          return DaemonError(doc, requestID: frame.requestID)
        }
      }
      guard fd >= 0, (try? fill()) != nil else { return nil }
    }
    return nil
  }

  /// The daemon's bytes broke the spec: tell it (ERROR, request id 0) and close.
  private func failConnection(_ error: WireError) {
    guard fd >= 0 else { return }
    let frame = Frame.error(error, requestID: 0, version: version)
    let bytes = frame.encoded()
    _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    close()
  }
}
