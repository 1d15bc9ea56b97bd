import CLibUV
import Foundation
import Glibc
import Wire

// The daemon's I/O (SPEC.md sections 1, 2, 4, 5). One libuv loop on one thread does all socket
// work: accepting, reading, framing (FrameDecoder), the conversation rules (ProtocolSession),
// writing. It never computes: each dispatched request goes to a worker thread of a fixed pool,
// which calls `RequestService.handle`; answers come back through the request's ReplyChannel
// (`RequestReply`), whose frames are encoded on the worker and queued in the connection's
// outbox, and one uv_async_t tells the loop to write them.
//
// Backpressure: a connection's unsent output (queued in its outbox plus handed to libuv) above
// the high-water mark (64 MiB) stops reading from it until it drains below the low-water mark
// (16 MiB); while above, its PROGRESS events replace their request's unsent one. Writes never
// block the loop, so a client that does not read delays nobody else.
//
// Memory: libuv handles are allocated here and freed only in their close callbacks; uv_write
// requests hold their frames until their callback.

public final class DaemonTransport: @unchecked Sendable {
  enum Phase { case created, listening, running, finished }

  public let options: TransportOptions
  private let loop: UnsafeMutablePointer<uv_loop_t>
  private var loopInitialized = false
  private let wakeup = LoopWakeup()
  private var pool: WorkerPool?
  private var service: RequestService?
  private var phase = Phase.created

  private var asyncHandle: UnsafeMutablePointer<uv_async_t>?
  private var timer: UnsafeMutablePointer<uv_timer_t>?
  private var listenPoll: UnsafeMutablePointer<uv_poll_t>?
  private var signalHandles: [UnsafeMutablePointer<uv_signal_t>] = []

  private var listenFD: Int32 = -1
  private var socketIdentity: (device: UInt64, inode: UInt64)?
  /// Held open so that, when accept fails for lack of descriptors, one can be freed to accept
  /// and close the waiting connection (otherwise the listener stays readable and the loop spins).
  private var reserveFD: Int32 = -1
  private var acceptPausedUntil: UInt64?
  private var lastAcceptLog: UInt64?

  private var connections: [Int: Connection] = [:]
  private var nextConnectionID = 1
  /// One read buffer for the whole loop: each read is consumed before the next allocation.
  let readBuffer: UnsafeMutableRawPointer
  static let readBufferSize = 256 << 10
  private static let tickMilliseconds: UInt64 = 250
  private static let shutdownTickMilliseconds: UInt64 = 50

  // Stopping (SHUTDOWN or a signal).
  private var stopping = false
  private var shutdownResult: Int?
  private var shutdownRequesters: [RequestReply] = []
  private var graceDeadline: UInt64 = 0
  private var hardDeadline: UInt64 = 0
  private var finishing = false

  public init(options: TransportOptions) {
    self.options = options
    loop = .allocate(capacity: 1)
    readBuffer = .allocate(byteCount: Self.readBufferSize, alignment: 16)
  }

  deinit {
    loop.deallocate()
    readBuffer.deallocate()
  }

  public var socketPath: String { options.socketPath }

  private var now: UInt64 { uv_now(loop) }

  private func milliseconds(_ seconds: Double) -> UInt64 { UInt64(max(0, seconds) * 1000) }

  // MARK: Starting and stopping

  /// Prepares the socket's directory, removes a stale socket, binds (0600), listens and sets up
  /// the loop; or, socket-activated, takes the listener it was given. Connections wait in the
  /// backlog until `run`.
  public func listen() throws(TransportError) {
    guard phase == .created else { throw .notListening }
    signal(SIGPIPE, SIG_IGN)
    try check("uv_loop_init", uv_loop_init(loop))
    loopInitialized = true
    loop.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    do throws(TransportError) {
      let async = UnsafeMutablePointer<uv_async_t>.allocate(capacity: 1)
      try check("uv_async_init", uv_async_init(loop, async, onAsync), orFree: async)
      async.pointee.data = loop.pointee.data
      asyncHandle = async
      wakeup.attach(async)

      let timer = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
      try check("uv_timer_init", uv_timer_init(loop, timer), orFree: timer)
      timer.pointee.data = loop.pointee.data
      self.timer = timer
      try check("uv_timer_start", uv_timer_start(timer, onTimer, Self.tickMilliseconds, Self.tickMilliseconds))

      if let activated = options.activatedListener {
        // Polled and accepted from like a socket of our own (the accept loop's descriptor
        // reserve, credentials before a byte is read); no socketIdentity, so never unlinked.
        try Sys.makeNonBlockingCloseOnExec(activated)
        listenFD = activated
      } else {
        let path = options.socketPath
        try SocketLocation.prepareDirectory(SocketLocation.directory(of: path), strict: options.strictDirectory)
        try SocketLocation.clearStale(path)
        let bound = try SocketLocation.listen(at: path, backlog: 511)
        listenFD = bound.fd
        socketIdentity = (bound.device, bound.inode)
      }

      let poll = UnsafeMutablePointer<uv_poll_t>.allocate(capacity: 1)
      try check("uv_poll_init", uv_poll_init(loop, poll, listenFD), orFree: poll)
      poll.pointee.data = loop.pointee.data
      listenPoll = poll
      try check("uv_poll_start", uv_poll_start(poll, Int32(UV_READABLE.rawValue), onListenReadable))

      if options.handleSignals {
        for number in [SIGTERM, SIGINT] {
          let handle = UnsafeMutablePointer<uv_signal_t>.allocate(capacity: 1)
          try check("uv_signal_init", uv_signal_init(loop, handle), orFree: handle)
          handle.pointee.data = loop.pointee.data
          signalHandles.append(handle)
          try check("uv_signal_start", uv_signal_start(handle, onSignal, number))
        }
      }
      reserveFD = openReserve()
      phase = .listening
    } catch {
      abandon()
      throw error
    }
  }

  /// Serves until SHUTDOWN or SIGTERM/SIGINT (or `stop()`) has been carried out: every
  /// connection answered and closed, the socket removed. Runs the loop on the calling thread.
  public func run(service: RequestService) throws(TransportError) {
    guard phase == .listening else { throw .notListening }
    self.service = service
    pool = WorkerPool(threads: options.workers)
    phase = .running
    uv_run(loop, UV_RUN_DEFAULT)
    teardown()
  }

  /// Stops as on SIGTERM; callable from any thread. `run` returns when it is done.
  public func stop() {
    wakeup.post { [self] in beginShutdown(requester: nil) }
  }

  /// Releases a transport that is listening but will not run (the service failed to start):
  /// closes the socket and removes its file.
  public func abandon() {
    guard loopInitialized, phase == .created || phase == .listening else { return }
    closeLoopHandles()
    uv_run(loop, UV_RUN_DEFAULT)
    teardown()
  }

  private func check(_ call: String, _ code: Int32) throws(TransportError) {
    if code < 0 { throw .libuv(call, code) }
  }

  private func check<T>(_ call: String, _ code: Int32, orFree pointer: UnsafeMutablePointer<T>) throws(TransportError) {
    if code < 0 {
      pointer.deallocate()
      throw .libuv(call, code)
    }
  }

  private func openReserve() -> Int32 {
    Sys.attempt { open("/dev/null", O_RDONLY | O_CLOEXEC) }.result
  }

  /// Closes the listener, the async, the timer and the signal handles.
  private func closeLoopHandles() {
    stopAccepting()
    wakeup.detach()
    if let async = asyncHandle {
      uv_close(uvHandle(async), freeOnClose)
      asyncHandle = nil
    }
    if let timer {
      uv_timer_stop(timer)
      uv_close(uvHandle(timer), freeOnClose)
      self.timer = nil
    }
    for handle in signalHandles {
      uv_signal_stop(handle)
      uv_close(uvHandle(handle), freeOnClose)
    }
    signalHandles = []
  }

  /// After the loop has ended: every handle closed, the loop closed, the socket file removed.
  private func teardown() {
    pool?.stop()
    if uv_loop_close(loop) != 0 {
      // Handles left open (a bug): close them and let their callbacks run.
      uv_walk(loop, { handle, _ in
        if let handle, uv_is_closing(handle) == 0 { uv_close(handle, freeOnClose) }
      }, nil)
      uv_run(loop, UV_RUN_DEFAULT)
      _ = uv_loop_close(loop)
    }
    loopInitialized = false
    Sys.close(listenFD)
    listenFD = -1
    Sys.close(reserveFD)
    reserveFD = -1
    if let identity = socketIdentity {
      SocketLocation.removeSocket(options.socketPath, device: identity.device, inode: identity.inode)
      socketIdentity = nil
    }
    phase = .finished
  }

  private func stopAccepting() {
    if let poll = listenPoll {
      uv_poll_stop(poll)
      uv_close(uvHandle(poll), freeOnClose)
      listenPoll = nil
    }
    Sys.close(listenFD)
    listenFD = -1
  }

  // MARK: Accepting

  fileprivate func acceptPending() {
    guard listenFD >= 0, !stopping else { return }
    // A bounded batch per wake-up keeps the loop fair to established connections.
    for _ in 0..<64 {
      let (fd, code) = Sys.accept(listenFD)
      if fd >= 0 {
        admit(fd)
        continue
      }
      switch code {
      case EAGAIN:
        return
      case ECONNABORTED, EPROTO:
        continue
      case EMFILE, ENFILE:
        shedConnection(code)
        return
      default:
        logAcceptProblem("accept: \(String(cString: strerror(code)))")
        pauseAccepting()
        return
      }
    }
  }

  /// Out of descriptors: free the reserve, accept the waiting connection, tell it SERVER_BUSY
  /// and close it, take the reserve back (the libev/nginx trick). Without a reserve, accepting
  /// pauses briefly instead of spinning on a readable listener.
  private func shedConnection(_ code: Int32) {
    logAcceptProblem("accept: \(String(cString: strerror(code))); refusing connections until descriptors are free")
    if reserveFD >= 0 {
      Sys.close(reserveFD)
      reserveFD = -1
      let (fd, _) = Sys.accept(listenFD)
      if fd >= 0 {
        refuse(fd, WireError(.serverBusy, "the daemon is out of file descriptors"))
      }
      reserveFD = openReserve()
    }
    if reserveFD < 0 { pauseAccepting() }
  }

  private func pauseAccepting() {
    guard let poll = listenPoll, acceptPausedUntil == nil else { return }
    uv_poll_stop(poll)
    acceptPausedUntil = now + Self.tickMilliseconds
  }

  private func resumeAcceptingIfDue() {
    guard let until = acceptPausedUntil, now >= until else { return }
    acceptPausedUntil = nil
    if let poll = listenPoll, !stopping {
      uv_poll_start(poll, Int32(UV_READABLE.rawValue), onListenReadable)
    }
  }

  /// At most one log line per second about accept failures.
  private func logAcceptProblem(_ message: String) {
    let time = now
    if let last = lastAcceptLog, time < last + 1000 { return }
    lastAcceptLog = time
    options.log(message)
  }

  /// A new connection: its credentials are checked before a byte is read.
  private func admit(_ fd: Int32) {
    let credentials: Sys.PeerCredentials
    do {
      credentials = try Sys.peerCredentials(fd)
    } catch {
      logAcceptProblem("\(error)")
      Sys.close(fd)
      return
    }
    guard options.peerCheck(credentials.pid, credentials.uid, credentials.gid) else {
      logAcceptProblem("refused pid \(credentials.pid): uid \(credentials.uid) is not the daemon's")
      refuse(fd, WireError(.permissionDenied,
                           "uid \(credentials.uid) may not use this daemon (it serves uid \(geteuid()))"))
      return
    }
    if connections.values.filter({ $0.state == .open }).count >= options.maxConnections {
      // Full. Room is made by closing the connection that has held its slot longest without a
      // complete frame (no HELLO yet, or a frame trickling in): slow or idle peers cannot lock
      // the owner's tools out. Only when every slot is doing work is the newcomer refused.
      let time = now
      let stalest = connections.values.compactMap { c in c.unproductiveSince.map { (c, $0) } }
        .min { $0.1 < $1.1 }
      if let (victim, since) = stalest {
        closeWithError(victim, WireError(.serverBusy, "\(options.maxConnections) connections are open; this one, without a complete frame for \((time - since) / 1000) s, made room for a new one"))
      } else {
        logAcceptProblem("refused a connection: \(options.maxConnections) connections are open")
        refuse(fd, WireError(.serverBusy, "\(options.maxConnections) connections are open; try again later"))
        return
      }
    }
    let pipe = UnsafeMutablePointer<uv_pipe_t>.allocate(capacity: 1)
    // ipc 1: libuv reads with recvmsg and keeps a file descriptor that comes with the bytes
    // (a shared-memory SESSION_BATCH's memfd) as the pipe's pending handle; see received().
    uv_pipe_init(loop, pipe, 1)
    pipe.pointee.data = nil
    let opened = uv_pipe_open(pipe, fd)
    guard opened == 0 else {
      options.log("uv_pipe_open: \(String(cString: uv_strerror(opened)))")
      Sys.close(fd)
      uv_close(uvHandle(pipe), freeOnClose)
      return
    }
    let id = nextConnectionID
    nextConnectionID += 1
    let outbox = ConnectionOutbox(connectionID: id, highWater: options.highWaterBytes, wakeup: wakeup)
    let connection = Connection(id: id, pipe: pipe, outbox: outbox, transport: self)
    connection.acceptedAt = now
    pipe.pointee.data = Unmanaged.passUnretained(connection).toOpaque()
    connections[id] = connection
    startReading(connection)
  }

  /// Answers a connection that is not served with one ERROR and closes it, without libuv: a
  /// new socket's buffer always takes the small frame.
  private func refuse(_ fd: Int32, _ error: WireError) {
    Sys.sendNow(fd, Frame.error(error, requestID: 0).encoded())
    Sys.close(fd)
  }

  // MARK: Reading

  private func startReading(_ connection: Connection) {
    guard !connection.reading, connection.state == .open, !connection.inputEnded else { return }
    let result = uv_read_start(connection.stream, onAllocate, onRead)
    guard result == 0 else {
      abort(connection, reason: "uv_read_start: \(String(cString: uv_strerror(result)))")
      return
    }
    connection.reading = true
  }

  private func stopReading(_ connection: Connection) {
    guard connection.reading else { return }
    uv_read_stop(connection.stream)
    connection.reading = false
  }

  fileprivate func received(_ connection: Connection, _ bytes: UnsafeRawBufferPointer) {
    guard connection.state == .open else { return }
    // A file descriptor belongs to the frame that holds the last byte of the read that carried
    // it (the kernel ends a read after the bytes sent with descriptors, and a client sends a
    // descriptor with bytes of its frame only: SPEC.md section 7, "Shared-memory batches").
    var passed: PassedDescriptor?
    do throws(WireError) {
      passed = try takePassedDescriptor(connection)
    } catch {
      closeWithError(connection, error)
      return
    }
    connection.decoder.feed(bytes)
    var firstFrame = true
    while connection.state == .open {
      let frame: Frame?
      do {
        frame = try connection.decoder.next()
      } catch {
        closeWithError(connection, error)
        break
      }
      guard let frame else { break }
      // The descriptor held while this frame was partial, and this read's if the frame ends it.
      var descriptor = firstFrame ? connection.heldDescriptor : nil
      if firstFrame { connection.heldDescriptor = nil }
      firstFrame = false
      if connection.decoder.bufferedByteCount == 0, let fd = passed {
        passed = nil
        guard descriptor == nil else {
          closeWithError(connection, WireError(.tooManyDescriptors, "a frame came with two file descriptors"))
          break
        }
        descriptor = fd
      }
      act(on: frame, descriptor: descriptor, from: connection)
    }
    if let passed, connection.state == .open {
      // This read ended inside a frame: the descriptor waits for it.
      if connection.heldDescriptor != nil {
        closeWithError(connection, WireError(.tooManyDescriptors, "a frame came with two file descriptors"))
      } else {
        connection.heldDescriptor = passed
      }
    }
    if !connection.decoder.hasPartialFrame {
      connection.partialSince = nil
    } else if connection.partialSince == nil {
      connection.partialSince = now
    }
    flush(connection)
  }

  /// The peer shut down its side. Fully closed (POLLHUP): cancel its requests and close. Only
  /// its writing side (shutdown(SHUT_WR)): answer what is in flight, then close. A frame cut
  /// short is dropped unanswered (section 2).
  fileprivate func inputEnded(_ connection: Connection) {
    connection.inputEnded = true
    stopReading(connection)
    guard connection.state == .open else { return }
    if peerHungUp(connection) {
      abort(connection, reason: nil)
    } else {
      checkClose(connection)
    }
  }

  private func peerHungUp(_ connection: Connection) -> Bool {
    var fd: uv_os_fd_t = -1
    guard uv_fileno(connection.handle, &fd) == 0 else { return true }
    var entry = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
    let (result, _) = Sys.attempt { poll(&entry, 1, 0) }
    return result > 0 && entry.revents & Int16(POLLHUP) != 0
  }

  // MARK: The conversation

  /// The file descriptor the last read carried (libuv keeps it as the pipe's pending handle,
  /// which uv_accept cannot take for a memfd), owned from here on; more than one is
  /// TOO_MANY_DESCRIPTORS (libuv closes the others with the handle).
  private func takePassedDescriptor(_ connection: Connection) throws(WireError) -> PassedDescriptor? {
    let count = uv_pipe_pending_count(connection.pipe)
    guard count > 0 else { return nil }
    guard count == 1 else {
      throw WireError(.tooManyDescriptors, "\(count) file descriptors came with one read; a frame may carry one")
    }
    let fd = connection.pipe.pointee.accepted_fd
    connection.pipe.pointee.accepted_fd = -1
    return fd >= 0 ? PassedDescriptor(fd) : nil
  }

  /// Carries out the session's decision for one frame, as ProtocolSession.Decision documents.
  private func act(on frame: Frame, descriptor: PassedDescriptor? = nil, from connection: Connection) {
    switch connection.session.receive(frame) {
    case .hello(_, let version):
      connection.decoder.negotiatedVersion = version
      let doc = HelloResponse(version: version, serverVersion: options.serverVersion, pid: Int(getpid()))
      let answer: Frame
      do {
        // HELLO_OK is encoded with header version 1, like HELLO.
        answer = try Frame.message(type: .helloOK, requestID: frame.requestID, doc: doc,
                                   version: FrameHeader.currentVersion)
      } catch {
        answer = Frame.error(.internal, "HELLO_OK could not be encoded: \(error)", requestID: frame.requestID)
      }
      connection.outbox.enqueue(OutItem(buffer: OutBuffer(answer), requestID: frame.requestID, kind: .other), wake: false)
    case .dispatch(let request):
      dispatch(request, descriptor: descriptor, on: connection)
    case .reject(let requestID, let error):
      let answer = Frame.error(error, requestID: requestID, version: connection.session.replyVersion)
      connection.outbox.enqueue(OutItem(buffer: OutBuffer(answer), requestID: requestID, kind: .other), wake: false)
    case .close(let error):
      closeWithError(connection, error)
    case .peerError:
      // The client gave up and is closing: close without answering.
      abort(connection, reason: nil)
    }
  }

  private func dispatch(_ frame: Frame, descriptor: PassedDescriptor?, on connection: Connection) {
    let reply = RequestReply(requestID: frame.requestID, requestType: frame.type,
                             quiet: frame.flags.contains(.quiet), version: connection.session.replyVersion,
                             outbox: connection.outbox)
    connection.replies[frame.requestID] = reply
    if frame.type == .shutdown {
      // The transport answers SHUTDOWN itself, but its payload is checked like any request's
      // (SPEC.md section 7): a malformed one is refused and stops nothing.
      do throws(WireError) {
        _ = try IncomingRequest(frame).decode(ShutdownRequest.self)
      } catch {
        reply.fail(error)
        return
      }
      beginShutdown(requester: reply)
      return
    }
    guard !stopping, let service, let pool else {
      reply.fail(WireError(.shuttingDown, "the daemon is stopping"))
      return
    }
    let request = IncomingRequest(frame, descriptor: descriptor)
    let status = TransportStatus(connections: connections.count, socketPath: options.socketPath,
                                 workers: pool.threadCount)
    let job = WorkerPool.Job(
      run: {
        // The client left before a worker was free: nobody would read the answer.
        if reply.isCancelled { return }
        service.handle(request, reply: reply, transport: status)
      },
      abandon: {
        reply.fail(WireError(.shuttingDown, "the daemon stopped before \(request.type.name) started"))
      })
    if !pool.submit(job) { job.abandon() }
  }

  // MARK: Writing

  /// Hands the outbox's frames to libuv (while under the high-water mark), completes answered
  /// requests in the session, applies read backpressure and closes when due.
  fileprivate func flush(_ connection: Connection) {
    guard connection.state != .closed else { return }
    let items = connection.outbox.take()
    if !items.isEmpty {
      for item in items where item.kind == .final {
        connection.session.complete(requestID: item.requestID)
        connection.replies[item.requestID] = nil
      }
      write(items, to: connection)
      guard connection.state != .closed else { return }
    }
    if connection.state == .open {
      let unsent = connection.outbox.unsentBytes
      if connection.reading && unsent > options.highWaterBytes {
        stopReading(connection)
        connection.pausedForOutput = true
      } else if connection.pausedForOutput && unsent < options.lowWaterBytes {
        connection.pausedForOutput = false
        // The frame timeout counts the peer's time, not the time we did not read.
        if connection.partialSince != nil { connection.partialSince = now }
        startReading(connection)
      }
    }
    checkClose(connection)
  }

  private func write(_ items: [OutItem], to connection: Connection) {
    let context = WriteContext(connection: connection, buffers: items.map(\.buffer))
    let request = UnsafeMutablePointer<uv_write_t>.allocate(capacity: 1)
    request.pointee.data = Unmanaged.passRetained(context).toOpaque()
    let buffers = context.buffers.map {
      uv_buf_init($0.base.assumingMemoryBound(to: CChar.self), UInt32($0.count))
    }
    let result = buffers.withUnsafeBufferPointer {
      uv_write(request, connection.stream, $0.baseAddress, UInt32($0.count), onWritten)
    }
    if result != 0 {
      Unmanaged<WriteContext>.fromOpaque(request.pointee.data).release()
      request.deallocate()
      connection.outbox.wrote(context.byteCount)
      abort(connection, reason: "uv_write: \(String(cString: uv_strerror(result)))")
    }
  }

  fileprivate func written(_ context: WriteContext, status: Int32) {
    let connection = context.connection
    connection.outbox.wrote(context.byteCount)
    if status < 0 {
      // ECANCELED: the handle is being closed; anything else: the peer is gone.
      if status != Int32(UV_ECANCELED.rawValue) { abort(connection, reason: nil) }
      return
    }
    flush(connection)
  }

  // MARK: Slow peers

  /// TIMEOUT for a connection without HELLO past the hello timeout, or holding a partly
  /// received frame past the frame timeout (not while we are the ones not reading).
  private func expireSlowPeers(at time: UInt64) {
    for connection in Array(connections.values) where connection.state == .open {
      if !connection.session.isEstablished && time >= connection.acceptedAt + milliseconds(options.helloTimeout) {
        closeWithError(connection, WireError(.timeout, "no HELLO within \(seconds(options.helloTimeout))"))
      } else if let since = connection.partialSince, !connection.pausedForOutput,
                time >= since + milliseconds(options.frameTimeout) {
        closeWithError(connection, WireError(.timeout, "a frame was not complete within \(seconds(options.frameTimeout)) of its first byte"))
      }
    }
  }

  private func seconds(_ value: Double) -> String {
    value == value.rounded() ? "\(Int(value)) s" : "\(value) s"
  }

  // MARK: Closing

  /// Sends `error` on request id 0 after what is queued, then closes (section 4: connection
  /// errors). Later answers of the connection's requests are dropped.
  private func closeWithError(_ connection: Connection, _ error: WireError) {
    guard connection.state == .open else { return }
    if error.code != .shuttingDownClose {
      options.log("connection \(connection.id): \(error.code.name): \(error.message)")
    }
    let frame = Frame.error(error, requestID: 0, version: connection.session.replyVersion)
    connection.outbox.close(withLast: OutItem(buffer: OutBuffer(frame), requestID: 0, kind: .other))
    connection.state = .closing
    connection.closeDeadline = now + milliseconds(options.closeTimeout)
    stopReading(connection)
    flush(connection)
  }

  /// Closes at once, dropping unsent output (the peer is gone or gave up, or time ran out).
  fileprivate func abort(_ connection: Connection, reason: String?) {
    guard connection.state != .closed else { return }
    if let reason { options.log("connection \(connection.id): \(reason)") }
    connection.outbox.discard()
    closeHandle(connection)
  }

  private func checkClose(_ connection: Connection) {
    switch connection.state {
    case .closing:
      if connection.outbox.isDrained { closeHandle(connection) }
    case .open:
      if connection.inputEnded && connection.session.inFlight.isEmpty && connection.outbox.isDrained {
        connection.outbox.discard()
        closeHandle(connection)
      }
    case .closed:
      break
    }
  }

  private func closeHandle(_ connection: Connection) {
    guard connection.state != .closed else { return }
    connection.state = .closed
    connection.reading = false
    uv_close(connection.handle, onConnectionClosed)
  }

  fileprivate func connectionClosed(_ connection: Connection) {
    connections[connection.id] = nil
    connection.outbox.scope.close()
    connection.replies = [:]
    connection.pipe.deallocate()
    if stopping { shutdownTick() }
  }

  // MARK: Loop events

  fileprivate func woken() {
    let (dirty, tasks) = wakeup.take()
    for task in tasks { task() }
    for outbox in dirty {
      if let connection = connections[outbox.connectionID] { flush(connection) }
    }
    if stopping { shutdownTick() }
  }

  fileprivate func ticked() {
    resumeAcceptingIfDue()
    let time = now
    for connection in Array(connections.values) where connection.state == .closing && time >= connection.closeDeadline {
      abort(connection, reason: "closed before it took its last frames")
    }
    expireSlowPeers(at: time)
    if stopping { shutdownTick() }
  }

  fileprivate func signalled(_ number: Int32) {
    if stopping {
      options.log("signal \(number) while stopping: exiting now")
      if let identity = socketIdentity {
        SocketLocation.removeSocket(options.socketPath, device: identity.device, inode: identity.inode)
      }
      exit(1)
    }
    options.log("signal \(number): stopping")
    beginShutdown(requester: nil)
  }

  // MARK: Shutdown

  /// SHUTDOWN or a signal: stop accepting, refuse queued work, let the service checkpoint and
  /// refuse in flight (on a thread of its own, so busy workers cannot delay it), then answer
  /// SHUTDOWN_OK, close every connection and end the loop.
  private func beginShutdown(requester: RequestReply?) {
    if let requester {
      if let result = shutdownResult {
        requester.respond(.shutdownOK, ShutdownResponse(jobsCheckpointed: result))
      } else {
        shutdownRequesters.append(requester)
      }
    }
    guard !stopping else { return }
    stopping = true
    if requester != nil { options.log("SHUTDOWN requested: stopping") }
    stopAccepting()
    acceptPausedUntil = nil
    for job in pool?.drainPending() ?? [] { job.abandon() }
    if let timer {
      uv_timer_start(timer, onTimer, Self.shutdownTickMilliseconds, Self.shutdownTickMilliseconds)
    }
    let service = self.service
    let wakeup = self.wakeup
    let thread = Thread { [self] in
      let checkpointed = service?.shutdown() ?? 0
      wakeup.post { [self] in shutdownReturned(checkpointed) }
    }
    thread.name = "blockscoped-shutdown"
    thread.start()
  }

  private func shutdownReturned(_ checkpointed: Int) {
    shutdownResult = checkpointed
    options.log("service stopped (\(checkpointed) training jobs checkpointed); closing connections")
    for requester in shutdownRequesters {
      requester.respond(.shutdownOK, ShutdownResponse(jobsCheckpointed: checkpointed))
    }
    shutdownRequesters = []
    graceDeadline = now + milliseconds(options.shutdownGrace)
    hardDeadline = graceDeadline + milliseconds(options.shutdownFlushTimeout)
    shutdownTick()
  }

  /// Once the service has stopped: idle connections get SHUTTING_DOWN_CLOSE; requests still
  /// unanswered after the grace period are refused with SHUTTING_DOWN; after the flush timeout
  /// every connection is cut; with none left, the loop ends.
  private func shutdownTick() {
    guard shutdownResult != nil, !finishing else { return }
    let time = now
    for connection in Array(connections.values) where connection.state == .open {
      flush(connection)
      guard connection.state == .open else { continue }
      if !connection.session.inFlight.isEmpty && time >= graceDeadline {
        for reply in connection.replies.values {
          reply.fail(WireError(.shuttingDown, "the daemon stopped before answering"))
        }
        flush(connection)
        guard connection.state == .open else { continue }
      }
      if connection.session.inFlight.isEmpty {
        closeWithError(connection, WireError(.shuttingDownClose, "the daemon is stopping"))
      }
    }
    if time >= hardDeadline {
      for connection in Array(connections.values) where connection.state != .closed {
        abort(connection, reason: "cut at shutdown before its last frames were written")
      }
    }
    if connections.isEmpty { finishLoop() }
  }

  private func finishLoop() {
    guard !finishing else { return }
    finishing = true
    closeLoopHandles()
  }

  // MARK: Tests

  /// A view of the loop's state, taken on the loop thread.
  struct Snapshot: Sendable {
    struct ConnectionState: Sendable {
      var id: Int
      var reading: Bool
      var pausedForOutput: Bool
      var unsentBytes: Int
      var inFlight: Int
    }
    var connections: [ConnectionState]
    var stopping: Bool
  }

  /// The loop's state (nil when the loop does not answer within `timeout` seconds).
  func snapshot(timeout: Double = 5) -> Snapshot? {
    let box = SnapshotBox()
    let done = DispatchSemaphore(value: 0)
    wakeup.post { [self] in
      box.value = Snapshot(
        connections: connections.values.sorted { $0.id < $1.id }.map {
          Snapshot.ConnectionState(id: $0.id, reading: $0.reading, pausedForOutput: $0.pausedForOutput,
                                   unsentBytes: $0.outbox.unsentBytes, inFlight: $0.session.inFlight.count)
        },
        stopping: stopping)
      done.signal()
    }
    guard done.wait(timeout: .now() + timeout) == .success else { return nil }
    return box.value
  }
}

private final class SnapshotBox: @unchecked Sendable {
  var value: DaemonTransport.Snapshot?
}

// MARK: libuv callbacks (C function pointers: they find their objects through `data`)

private func transport(of loop: UnsafeMutablePointer<uv_loop_t>?) -> DaemonTransport? {
  guard let data = loop?.pointee.data else { return nil }
  return Unmanaged<DaemonTransport>.fromOpaque(data).takeUnretainedValue()
}

private func connection(of stream: UnsafeMutablePointer<uv_stream_t>?) -> Connection? {
  guard let data = stream?.pointee.data else { return nil }
  return Unmanaged<Connection>.fromOpaque(data).takeUnretainedValue()
}

/// Frees a handle's memory (every handle is allocated with UnsafeMutablePointer.allocate).
private func freeOnClose(_ handle: UnsafeMutablePointer<uv_handle_t>?) {
  handle.map { UnsafeMutableRawPointer($0).deallocate() }
}

private func onConnectionClosed(_ handle: UnsafeMutablePointer<uv_handle_t>?) {
  guard let handle, let data = handle.pointee.data else {
    freeOnClose(handle)
    return
  }
  let connection = Unmanaged<Connection>.fromOpaque(data).takeUnretainedValue()
  connection.transport.connectionClosed(connection)
}

private func onListenReadable(_ handle: UnsafeMutablePointer<uv_poll_t>?, _ status: Int32, _ events: Int32) {
  transport(of: handle?.pointee.loop)?.acceptPending()
}

private func onAsync(_ handle: UnsafeMutablePointer<uv_async_t>?) {
  transport(of: handle?.pointee.loop)?.woken()
}

private func onTimer(_ handle: UnsafeMutablePointer<uv_timer_t>?) {
  transport(of: handle?.pointee.loop)?.ticked()
}

private func onSignal(_ handle: UnsafeMutablePointer<uv_signal_t>?, _ number: Int32) {
  transport(of: handle?.pointee.loop)?.signalled(number)
}

private func onAllocate(_ handle: UnsafeMutablePointer<uv_handle_t>?, _ suggested: Int, _ buffer: UnsafeMutablePointer<uv_buf_t>?) {
  guard let buffer, let transport = transport(of: handle?.pointee.loop) else { return }
  buffer.pointee = uv_buf_init(transport.readBuffer.assumingMemoryBound(to: CChar.self),
                               UInt32(DaemonTransport.readBufferSize))
}

private func onRead(_ stream: UnsafeMutablePointer<uv_stream_t>?, _ count: Int, _ buffer: UnsafePointer<uv_buf_t>?) {
  guard let connection = connection(of: stream) else { return }
  let transport = connection.transport
  if count > 0, let base = buffer?.pointee.base {
    transport.received(connection, UnsafeRawBufferPointer(start: base, count: count))
  } else if count == Int(UV_EOF.rawValue) {
    transport.inputEnded(connection)
  } else if count < 0 {
    transport.abort(connection, reason: count == Int(UV_ECONNRESET.rawValue)
                    ? nil : "read: \(String(cString: uv_strerror(Int32(count))))")
  }
}

private func onWritten(_ request: UnsafeMutablePointer<uv_write_t>?, _ status: Int32) {
  guard let request, let data = request.pointee.data else { return }
  let context = Unmanaged<WriteContext>.fromOpaque(data).takeRetainedValue()
  request.deallocate()
  context.connection.transport.written(context, status: status)
}
