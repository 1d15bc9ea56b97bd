import Foundation
import Glibc
import XCTest
@testable import Daemon
import DaemonTestSupport
import Wire

/// Socket activation in-process: which LISTEN_PID / LISTEN_FDS pass a socket to us, which
/// descriptors are refused and why, and a transport serving a listener it did not bind.
/// (DaemonIntegrationTests runs the built daemon under systemd-socket-activate.)
final class SocketActivationTests: XCTestCase {
  private var directories: [String] = []
  private var descriptors: [Int32] = []

  override func tearDown() {
    for fd in descriptors { close(fd) }
    descriptors = []
    for directory in directories { try? FileManager.default.removeItem(atPath: directory) }
    directories = []
  }

  private func temporaryDirectory() throws -> String {
    let directory = try makeTransportTempDirectory("bs-activation")
    directories.append(directory)
    return directory
  }

  private func keep(_ fd: Int32, _ what: String) throws -> Int32 {
    guard fd >= 0 else { throw WireTestFailure("\(what): \(String(cString: strerror(errno)))") }
    descriptors.append(fd)
    return fd
  }

  private func activationError(_ body: () throws -> Any?) -> String? {
    do {
      _ = try body()
      return nil
    } catch let error as TransportError {
      guard case .socketActivation = error else { return "not a socket activation error: \(error)" }
      return "\(error)"
    } catch {
      return "unexpected error: \(error)"
    }
  }

  // MARK: The variables

  func testOnlyVariablesNamingThisProcessPassTheSocket() throws {
    let me: pid_t = 4242
    func passed(_ environment: [String: String]) throws -> Int32? {
      try SocketActivation.passedDescriptor(environment: environment, pid: me)
    }
    XCTAssertNil(try passed([:]))
    XCTAssertNil(try passed(["LISTEN_FDS": "1"]), "no LISTEN_PID: not activated")
    XCTAssertNil(try passed(["LISTEN_PID": "4243", "LISTEN_FDS": "1"]), "inherited by a child: not ours")
    XCTAssertNil(try passed(["LISTEN_PID": "4242"]))
    XCTAssertNil(try passed(["LISTEN_PID": "4242", "LISTEN_FDS": "0"]))
    XCTAssertEqual(try passed(["LISTEN_PID": "4242", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "blockscoped.socket"]), 3)

    XCTAssertEqual(activationError { try passed(["LISTEN_PID": "me", "LISTEN_FDS": "1"]) },
                   "socket activation: LISTEN_PID=me is not a process id")
    XCTAssertEqual(activationError { try passed(["LISTEN_PID": "4242", "LISTEN_FDS": "one"]) },
                   "socket activation: LISTEN_FDS=one is not a number of descriptors")
    XCTAssertEqual(activationError { try passed(["LISTEN_PID": "4242", "LISTEN_FDS": "2"]) },
                   "socket activation: LISTEN_FDS=2, but blockscoped serves exactly one socket (one ListenStream= in its .socket unit)")
  }

  func testTakingTheListenerRemovesTheVariables() throws {
    // Meant for another process: nothing is taken, and the variables are gone all the same.
    setenv("LISTEN_PID", "1", 1)
    setenv("LISTEN_FDS", "1", 1)
    setenv("LISTEN_FDNAMES", "x", 1)
    defer { for name in SocketActivation.variables { unsetenv(name) } }
    XCTAssertNil(try SocketActivation.takeListener())
    for name in SocketActivation.variables {
      XCTAssertNil(getenv(name), "\(name) is still set")
    }
  }

  // MARK: The descriptor

  func testAListeningUnixStreamSocketIsTakenWithItsPath() throws {
    let path = try temporaryDirectory() + "/a.sock"
    let listener = try keep(SocketLocation.listen(at: path, backlog: 4).fd, "listen")
    XCTAssertEqual(try SocketActivation.checkedListener(listener), SocketActivation.Listener(fd: listener, path: path))
  }

  func testEveryOtherDescriptorIsRefusedSayingWhatItIs() throws {
    let directory = try temporaryDirectory()
    let file = try keep(open(directory + "/file", O_RDWR | O_CREAT, 0o600), "open")
    XCTAssertEqual(activationError { try SocketActivation.checkedListener(file) },
                   "socket activation: fd \(file), passed by LISTEN_FDS, is not a socket (a regular file)")

    let closed = try keep(open("/dev/null", O_RDONLY), "open")
    close(closed)
    descriptors.removeAll { $0 == closed }
    XCTAssertEqual(activationError { try SocketActivation.checkedListener(closed) },
                   "socket activation: fd \(closed), passed by LISTEN_FDS, is not open")

    var pair: [Int32] = [-1, -1]
    XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair), 0)
    for fd in pair { _ = try keep(fd, "socketpair") }
    XCTAssertEqual(activationError { try SocketActivation.checkedListener(pair[0]) },
                   "socket activation: fd \(pair[0]), passed by LISTEN_FDS, is a Unix stream socket that is not listening (a connection, or never passed to listen(2))")

    let datagram = try keep(socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0), "socket")
    XCTAssertEqual(activationError { try SocketActivation.checkedListener(datagram) },
                   "socket activation: fd \(datagram), passed by LISTEN_FDS, is not a stream socket (type \(SOCK_DGRAM.rawValue), not SOCK_STREAM); use ListenStream=")

    // A listening TCP socket on the loopback (port 0: any free one).
    let tcp = try keep(socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0), "socket")
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(tcp, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    XCTAssertEqual(bound, 0, String(cString: strerror(errno)))
    XCTAssertEqual(listen(tcp, 4), 0)
    XCTAssertEqual(activationError { try SocketActivation.checkedListener(tcp) },
                   "socket activation: fd \(tcp), passed by LISTEN_FDS, is not a Unix socket (address family \(AF_INET), not AF_UNIX); blockscoped listens on a path")
  }

  // MARK: The transport

  /// A transport given a listener serves it, and at exit closes its descriptor but leaves the
  /// socket file (the service manager's) where it is.
  func testATransportServesAnActivatedListenerAndLeavesItsFile() throws {
    var listener: Int32 = -1
    var listenError: Error?
    let daemon = try TransportTestDaemon { options in
      do {
        listener = try SocketLocation.listen(at: options.socketPath, backlog: 16).fd
        // As a service manager may pass it: blocking, inheritable.
        _ = fcntl(listener, F_SETFL, 0)
        _ = fcntl(listener, F_SETFD, 0)
        options.activatedListener = listener
      } catch {
        listenError = error
      }
    }
    defer { daemon.cleanUp() }
    if let listenError { throw listenError }
    // The transport made it non-blocking (or its accept loop would block) and close-on-exec.
    XCTAssertEqual(fcntl(listener, F_GETFL) & O_NONBLOCK, O_NONBLOCK)
    XCTAssertEqual(fcntl(listener, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC)

    let client = try daemon.client()
    try client.send(.status, id: 7)
    XCTAssertEqual(try client.final(of: 7).type, .statusOK)
    XCTAssertTrue(daemon.stop(), "run did not return")

    var info = stat()
    XCTAssertEqual(lstat(daemon.socketPath, &info), 0, "the activated socket's file was removed")
    XCTAssertEqual(info.st_mode & Sys.fileTypeMask, Sys.socketType)
    XCTAssertEqual(fcntl(listener, F_GETFD), -1, "the transport did not close its descriptor")
  }
}
