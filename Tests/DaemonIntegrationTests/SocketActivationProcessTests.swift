import DaemonTestSupport
import Foundation
import Glibc
import Wire
import XCTest

/// The built blockscoped socket-activated as tools/systemd/blockscoped.socket activates it,
/// with systemd-socket-activate standing in for systemd (no systemd as PID 1 needed): it binds
/// the socket, waits for the first connection and execs the daemon with the socket as fd 3,
/// LISTEN_PID and LISTEN_FDS.
final class SocketActivationProcessTests: XCTestCase {
  /// Debian's `systemd` package (tools/setup installs it).
  static let activator = "/usr/bin/systemd-socket-activate"

  private var daemons: [DaemonProcess] = []

  override func setUpWithError() throws {
    try XCTSkipUnless(DaemonProcess.isBuilt, "blockscoped not built at \(DaemonProcess.binary.path)")
  }

  override func tearDown() {
    for daemon in daemons { daemon.cleanUp() }
    daemons = []
  }

  func testDaemonServesTheActivatedSocketAndLeavesItToTheActivator() throws {
    // Fails rather than skips: without the activator, socket activation is simply untested.
    guard FileManager.default.isExecutableFile(atPath: Self.activator) else {
      return XCTFail("\(Self.activator) is missing: install Debian's systemd package (tools/setup does)")
    }
    let directory = try makeDaemonTempDirectory()
    let socketPath = directory + "/d.sock"
    // The activator passes on only TERM, PATH, USER, HOME and what -E names: the test's own
    // XDG directories (DaemonProcess sets them) keep the user's config out of the daemon.
    let daemon = try DaemonProcess(
      directory: directory,
      launcher: [Self.activator, "--listen=\(socketPath)", "-E", "XDG_CONFIG_HOME", "-E", "XDG_DATA_HOME"],
      waitForListening: false)
    daemons.append(daemon)
    try waitForSocketFile(socketPath, daemon)

    // The daemon starts on this first connection; until it does, the HELLO waits in the backlog.
    let client = try daemon.client()
    let line = try daemon.readStdoutLine(timeout: 30)
    XCTAssertEqual(line, "blockscoped listening on \(socketPath) (store \(daemon.storePath); socket-activated: fd 3 from the service manager, left in place at exit)")
    try client.send(.status, id: 9)
    let answer = try client.final(of: 9)
    XCTAssertEqual(answer.type, .statusOK, frameSummary(answer))
    // The activator execs the daemon: the process it started is the daemon itself.
    XCTAssertEqual(try answer.decodeDoc(StatusResponse.self).pid, Int(daemon.pid))
    // A second client is accepted from the same socket.
    let second = try daemon.client()
    try second.send(.status, id: 10)
    XCTAssertEqual(try second.final(of: 10).type, .statusOK)

    daemon.signal(SIGTERM)
    XCTAssertEqual(daemon.waitForExit(timeout: 30), 0, daemon.standardError())
    var info = stat()
    XCTAssertEqual(lstat(socketPath, &info), 0, "the daemon removed the activator's socket; stderr: \(daemon.standardError())")
    XCTAssertEqual(info.st_mode & 0o170000, 0o140000, "not a socket any more")
    let log = daemon.standardError()
    XCTAssertTrue(log.contains("stopped"), log)
  }

  /// LISTEN_FDS naming a descriptor that is not a listening socket (here fd 3 is a regular
  /// file) stops the daemon at once with the reason, rather than serving nothing.
  func testADescriptorThatIsNotASocketIsAClearError() throws {
    let directory = try makeDaemonTempDirectory()
    let bogus = directory + "/not-a-socket"
    XCTAssertTrue(FileManager.default.createFile(atPath: bogus, contents: Data("x".utf8)))
    let daemon = try DaemonProcess(directory: directory, launcher: Self.passingFD3("$BOGUS_FILE"),
                                   waitForListening: false, environment: ["BOGUS_FILE": bogus])
    daemons.append(daemon)
    XCTAssertEqual(daemon.waitForExit(timeout: 30), 1, daemon.standardError())
    XCTAssertEqual(daemon.standardError(),
                   "blockscoped: socket activation: fd 3, passed by LISTEN_FDS, is not a socket (a regular file)\n")
    XCTAssertFalse(FileManager.default.fileExists(atPath: daemon.socketPath), "it bound --socket instead")
  }

  /// Under socket activation --detach would fork away from LISTEN_PID and close fd 3.
  func testDetachIsRefusedWhenActivated() throws {
    guard FileManager.default.isExecutableFile(atPath: Self.activator) else {
      return XCTFail("\(Self.activator) is missing: install Debian's systemd package (tools/setup does)")
    }
    let directory = try makeDaemonTempDirectory()
    let socketPath = directory + "/d.sock"
    let daemon = try DaemonProcess(directory: directory, arguments: ["--detach"],
                                   launcher: [Self.activator, "--listen=\(socketPath)"], waitForListening: false)
    daemons.append(daemon)
    try waitForSocketFile(socketPath, daemon)
    // The connection that makes the activator start the daemon.
    let client = try daemon.connect()
    XCTAssertEqual(daemon.waitForExit(timeout: 30), 1, daemon.standardError())
    XCTAssertTrue(daemon.standardError().contains("blockscoped: --detach cannot be combined with socket activation"),
                  daemon.standardError())
    withExtendedLifetime(client) {}
  }

  /// A launcher that runs the daemon as its own process (`exec`, so LISTEN_PID is the daemon's
  /// pid) with fd 3 open on the file `source` names.
  private static func passingFD3(_ source: String) -> [String] {
    ["/bin/sh", "-c", "export LISTEN_PID=$$ LISTEN_FDS=1; exec \"$@\" 3<\"\(source)\"", "sh"]
  }

  private func waitForSocketFile(_ path: String, _ daemon: DaemonProcess) throws {
    let deadline = Date().addingTimeInterval(30)
    var info = stat()
    while lstat(path, &info) != 0 {
      guard Date() < deadline, daemon.process.isRunning else {
        throw WireTestFailure("\(Self.activator) made no socket at \(path); stderr: \(daemon.standardError())")
      }
      usleep(20_000)
    }
  }
}
