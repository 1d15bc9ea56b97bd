import DaemonTestSupport
import Foundation
import Glibc
import Wire
import XCTest

/// The built blockscoped on a store that really fills up: a tmpfs mounted in a mount namespace
/// of the daemon's own (`unshare`; as root, or as a user where unprivileged user namespaces are
/// allowed), so that nothing is left mounted whatever happens to the test. The test reaches the
/// store through /proc/PID/root and fills it to the last byte after an epoch; the next
/// checkpoint save meets a real ENOSPC. tools/disk-full-test is the longer run (a shrunk tmpfs,
/// kill -9 and a restart on the full disk).
final class DiskFullProcessTests: DaemonProcessTestCase {
  /// `unshare` options that give a private mount namespace here, or nil (with the reason).
  private static let namespace: (options: [String]?, reason: String) = {
    let unshare = "/usr/bin/unshare"
    guard FileManager.default.isExecutableFile(atPath: unshare) else { return (nil, "no \(unshare)") }
    let options = geteuid() == 0 ? ["--mount"] : ["--user", "--map-root-user", "--mount"]
    let probe = Process()
    probe.executableURL = URL(fileURLWithPath: unshare)
    probe.arguments = options + ["/bin/sh", "-c", "mount -t tmpfs tmpfs /tmp"]
    probe.standardError = FileHandle.nullDevice
    guard (try? probe.run()) != nil else { return (nil, "\(unshare) does not run") }
    probe.waitUntilExit()
    return probe.terminationStatus == 0 ? (options, "")
      : (nil, "cannot mount a tmpfs in a private mount namespace (needs root or unprivileged user namespaces)")
  }()

  private func recipe(_ model: String, epochs: Int) -> TrainRequest {
    TrainRequest(model: model, depth: 8, width: 0.5, dataset: "synthetic", fraction: 0.1, epochs: epochs,
                 batchSize: 32, augment: false, testExamples: 100)
  }

  /// WATCH to the end; `onEpoch` gets each `epoch` event's count (saved epochs).
  private func watch(_ client: WireTestClient, _ job: UInt64, onEpoch: (Int) throws -> Void = { _ in }) throws -> JobEntry {
    let id = newID()
    try client.send(.watch, id: id, doc: JobRequest(job: job))
    while true {
      guard let frame = try client.next(timeout: 120) else { throw WireTestFailure("closed while watching") }
      guard frame.requestID == id else { continue }
      if frame.type == .progress {
        let event = try frame.decodeDoc(ProgressEvent.self)
        if event.phase == "epoch" { try onEpoch(event.done) }
        continue
      }
      guard frame.type == .watchOK else { throw WireTestFailure("WATCH answered \(frameSummary(frame))") }
      return try frame.decodeDoc(JobEntry.self)
    }
  }

  /// Zeros into `path` until the file system is full.
  private func fill(_ path: String) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw WireTestFailure("open(\(path)): errno \(errno)") }
    defer { close(fd) }
    let page = [UInt8](repeating: 0, count: 4096)
    while write(fd, page, page.count) > 0 {}
    XCTAssertEqual(errno, ENOSPC)
  }

  func testAFullDiskStopsTrainingWithNoSpaceKeepsTheLastCheckpointAndTheDaemonServes() throws {
    guard let options = Self.namespace.options else { throw XCTSkip(Self.namespace.reason) }
    let directory = try makeDaemonTempDirectory()
    let store = directory + "/store"
    try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
    // unshare and sh exec into blockscoped: the daemon keeps the pid, its namespace the tmpfs.
    let script = "mount -t tmpfs -o size=8m,mode=0700 tmpfs \"$0\" && exec \"$@\""
    let daemon = try DaemonProcess(directory: directory,
                                   launcher: ["/usr/bin/unshare"] + options + ["/bin/sh", "-c", script, store])
    addTeardownBlock { daemon.cleanUp() }
    let seen = "/proc/\(daemon.pid)/root" + store    // the tmpfs, as the daemon sees it
    let client = try daemon.client()

    let keeper = try call(client, .train, recipe("keeper", epochs: 1), as: TrainResponse.self)
    XCTAssertEqual(try watch(client, keeper.job).state, .finished)
    let victim = try call(client, .train, recipe("victim", epochs: 3), as: TrainResponse.self)
    var saved = 0
    let stopped = try watch(client, victim.job) { done in
      saved = done
      if done == 1 { try self.fill(seen + "/filler") }   // epoch 2's save finds no room
    }
    XCTAssertEqual(stopped.state, .interrupted, "\(stopped)")
    XCTAssertEqual(stopped.epoch, 1)
    XCTAssertEqual(saved, 1)
    let error = stopped.error ?? ""
    XCTAssertTrue(error.hasPrefix("NO_SPACE") && error.contains("No space left on device")
                  && error.contains("victim.bsckpt keeps epoch 1"), error)
    let models = try FileManager.default.contentsOfDirectory(atPath: seen + "/models").sorted()
    XCTAssertEqual(models, ["keeper.bsckpt", "victim.bsckpt"], "no temporary file is left")

    // Still serving, from the files on the full disk.
    XCTAssertEqual(try call(client, .status, as: StatusResponse.self).jobs.interrupted, 1)
    let listed = try call(client, .models, as: ModelsResponse.self).models
    XCTAssertEqual(listed.map(\.model), ["keeper", "victim"])
    XCTAssertEqual(listed.map(\.state), [.ready, .ready], "\(listed)")
    XCTAssertEqual(listed.map(\.epoch), [1, 1])
    let described = try call(client, .describe, ModelRequest(model: "victim"), as: DescribeResponse.self)
    XCTAssertEqual(described.history.map(\.epoch), [1])
    XCTAssertEqual(try call(client, .describe, ModelRequest(model: "keeper"), as: DescribeResponse.self).entry.epoch, 1)

    // Room again: RESUME trains on from the kept epoch.
    XCTAssertEqual(unlink(seen + "/filler"), 0)
    XCTAssertEqual(try call(client, .resume, ResumeRequest(job: victim.job), as: JobEntry.self).state, .queued)
    let finished = try watch(client, victim.job)
    XCTAssertEqual(finished.state, .finished, finished.error ?? "")
    XCTAssertEqual(finished.epoch, 3)
    let history = try call(client, .describe, ModelRequest(model: "victim"), as: DescribeResponse.self).history
    XCTAssertEqual(history.map(\.epoch), [1, 2, 3])
  }
}
