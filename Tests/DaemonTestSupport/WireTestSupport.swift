import Foundation
import Glibc
import Wire

// What the daemon's in-process transport tests (DaemonTests) and its process tests
// (DaemonIntegrationTests) share: a blocking-socket client written with Wire's codec, raw frame
// bytes, and helpers for ERROR frames.

public struct WireTestFailure: Error, CustomStringConvertible {
  public var description: String
  public init(_ description: String) { self.description = description }
}

/// A client with plain blocking sockets: frames out with `Frame.encoded()`, frames in with a
/// FrameDecoder(role: .client).
public final class WireTestClient {
  public let fd: Int32
  /// The name sent in HELLO.
  public let clientName: String
  /// The timeout of `next`, `readUntilClosed`, `readFinals` and `final` when none is given.
  public let defaultTimeout: Double
  private var decoder = FrameDecoder(role: .client)
  /// The daemon closed the connection (EOF or reset).
  public private(set) var isClosed = false

  public init(path: String, clientName: String, defaultTimeout: Double) throws {
    self.clientName = clientName
    self.defaultTimeout = defaultTimeout
    fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw WireTestFailure("socket: \(String(cString: strerror(errno)))") }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
      raw.copyBytes(from: bytes)
      raw[bytes.count] = 0
    }
    let length = socklen_t(MemoryLayout.offset(of: \sockaddr_un.sun_path)! + bytes.count + 1)
    let fd = self.fd
    let result = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) }
    }
    guard result == 0 else {
      let code = errno
      close(fd)
      throw WireTestFailure("connect(\(path)): \(String(cString: strerror(code)))")
    }
  }

  deinit { close(fd) }

  public func send(_ bytes: [UInt8]) throws {
    var offset = 0
    while offset < bytes.count {
      let sent = bytes.withUnsafeBytes {
        Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL))
      }
      if sent < 0 {
        if errno == EINTR { continue }
        throw WireTestFailure("send: \(String(cString: strerror(errno)))")
      }
      offset += sent
    }
  }

  public func send(_ frame: Frame) throws { try send(frame.encoded()) }

  /// A request frame with a typed doc.
  public static func request(_ type: MessageType, id: UInt64, doc: some Encodable = EmptyDoc(),
                             tensors: [WireTensor] = [], flags: FrameFlags = []) throws -> Frame {
    try Frame.message(type: type, requestID: id, doc: doc, tensors: tensors, flags: flags)
  }

  public func send(_ type: MessageType, id: UInt64, doc: some Encodable = EmptyDoc(), flags: FrameFlags = []) throws {
    try send(Self.request(type, id: id, doc: doc, flags: flags))
  }

  /// HELLO on id 1; returns HELLO_OK's doc.
  @discardableResult
  public func hello() throws -> HelloResponse {
    try send(.hello, id: 1, doc: HelloRequest(client: clientName))
    guard let frame = try next() else { throw WireTestFailure("closed before HELLO_OK") }
    guard frame.type == .helloOK else { throw WireTestFailure("expected HELLO_OK, got \(frame.type.name) \(frameSummary(frame))") }
    return try frame.decodeDoc(HelloResponse.self)
  }

  /// The next frame; nil once the daemon has closed the connection. Throws after `timeout`
  /// (`defaultTimeout` when nil).
  public func next(timeout: Double? = nil) throws -> Frame? {
    let timeout = timeout ?? defaultTimeout
    let deadline = Date().addingTimeInterval(timeout)
    while true {
      if let frame = try decoder.next() { return frame }
      if isClosed { return nil }
      let remaining = deadline.timeIntervalSinceNow
      guard remaining > 0 else { throw WireTestFailure("no frame within \(timeout) s") }
      var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
      let ready = poll(&entry, 1, Int32(min(remaining * 1000 + 1, 60_000)))
      if ready < 0 && errno != EINTR { throw WireTestFailure("poll: \(String(cString: strerror(errno)))") }
      if ready <= 0 { continue }
      var buffer = [UInt8](repeating: 0, count: 256 << 10)
      let count = recv(fd, &buffer, buffer.count, 0)
      if count > 0 {
        decoder.feed(buffer[0..<count])
      } else if count == 0 || errno == ECONNRESET || errno == EPIPE {
        isClosed = true
      } else if errno != EINTR && errno != EAGAIN {
        throw WireTestFailure("recv: \(String(cString: strerror(errno)))")
      }
    }
  }

  /// Every frame until the daemon closes the connection.
  public func readUntilClosed(timeout: Double? = nil) throws -> [Frame] {
    let deadline = Date().addingTimeInterval(timeout ?? defaultTimeout)
    var frames: [Frame] = []
    while let frame = try next(timeout: max(0.01, deadline.timeIntervalSinceNow)) { frames.append(frame) }
    return frames
  }

  /// The frames up to and including the final frame of each of `ids`.
  public func readFinals(_ ids: Set<UInt64>, timeout: Double? = nil) throws -> [Frame] {
    let deadline = Date().addingTimeInterval(timeout ?? defaultTimeout)
    var pending = ids
    var frames: [Frame] = []
    while !pending.isEmpty {
      guard let frame = try next(timeout: max(0.01, deadline.timeIntervalSinceNow)) else {
        throw WireTestFailure("closed with \(pending.sorted()) unanswered")
      }
      frames.append(frame)
      if frame.type != .progress { pending.remove(frame.requestID) }
    }
    return frames
  }

  /// The final frame of request `id`, skipping PROGRESS events.
  public func final(of id: UInt64, timeout: Double? = nil) throws -> Frame {
    try readFinals([id], timeout: timeout).last!
  }

  public func shutdownWrite() { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }
}

/// A frame's type and request id (an ERROR's name and message too), for failure messages.
public func frameSummary(_ frame: Frame) -> String {
  if frame.type == .error, let doc = try? frame.decodeDoc(ErrorDoc.self) {
    return "ERROR \(doc.name) (id \(frame.requestID)): \(doc.message)"
  }
  return "\(frame.type.name) (id \(frame.requestID))"
}

/// The ERROR doc of a frame, failing the test when it is another type.
public func expectErrorDoc(_ frame: Frame?, file: StaticString = #filePath, line: UInt = #line) throws -> ErrorDoc {
  guard let frame else { throw WireTestFailure("expected an ERROR frame, the connection closed") }
  guard frame.type == .error else { throw WireTestFailure("expected an ERROR frame, got \(frameSummary(frame))") }
  return try frame.decodeDoc(ErrorDoc.self)
}

/// The bytes of a frame with any header fields, valid or not.
public func rawFrameBytes(length: UInt32? = nil, magic: [UInt8] = [0x42, 0x53], version: UInt8 = 1, flags: UInt8 = 0,
                          type: UInt16, reserved: UInt16 = 0, id: UInt64, payload: [UInt8] = []) -> [UInt8] {
  var bytes: [UInt8] = []
  func append<T: FixedWidthInteger>(_ value: T) {
    withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
  }
  append(length ?? UInt32(16 + payload.count))
  bytes.append(contentsOf: magic)
  bytes.append(version)
  bytes.append(flags)
  append(type)
  append(reserved)
  append(id)
  bytes.append(contentsOf: payload)
  return bytes
}

public func littleEndian32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }

/// A temporary directory `/tmp/PREFIX-XXXXXX` (0700, as mkdtemp makes it).
public func makeTestTempDirectory(_ prefix: String) throws -> String {
  var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
  guard let made = mkdtemp(&template) else { throw WireTestFailure("mkdtemp: \(String(cString: strerror(errno)))") }
  return String(cString: made)
}
