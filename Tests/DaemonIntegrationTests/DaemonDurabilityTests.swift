import DaemonTestSupport
import Foundation
import Glibc
import Wire
import XCTest

/// What survives a stop of the built blockscoped (SPEC section 8): SIGTERM and kill -9 in the
/// middle of training lose no finished epoch and leave a resumable job; a corrupt checkpoint in
/// the store is listed as corrupt while the other models are served; CANCEL lands within one
/// training step. Tiny models (ResNet-8, width 0.5) on the synthetic dataset keep them short.
final class DaemonDurabilityTests: DaemonProcessTestCase {
  /// The ERROR a request is answered with (a failure if it succeeds).
  private func callFailing(_ client: WireTestClient, _ type: MessageType, _ doc: some Encodable) throws -> ErrorDoc {
    let id = newID()
    try client.send(type, id: id, doc: doc, flags: .quiet)
    return try expectErrorDoc(try client.final(of: id))
  }

  /// The recipe of the tests' models: ResNet-8, width 0.5, synthetic data (5000 / 1000 images,
  /// `fraction` of the training images); each epoch evaluated on 200 test images.
  private func recipe(_ model: String, epochs: Int, fraction: Double = 1, batchSize: Int = 128) -> TrainRequest {
    TrainRequest(model: model, depth: 8, width: 0.5, dataset: "synthetic", fraction: fraction, epochs: epochs,
                 batchSize: batchSize, testExamples: 200)
  }

  private func train(_ client: WireTestClient, _ recipe: TrainRequest) throws -> UInt64 {
    let answer = try call(client, .train, recipe, as: TrainResponse.self)
    XCTAssertEqual(answer.model, recipe.model)
    return answer.job
  }

  /// Sends WATCH for `job` (PROGRESS events wanted); returns its request id.
  private func watch(_ client: WireTestClient, _ job: UInt64) throws -> UInt64 {
    let id = newID()
    try client.send(.watch, id: id, doc: JobRequest(job: job))
    return id
  }

  /// Reads the watch's PROGRESS events until `until` says stop (true) or the watch ends; returns
  /// the final entry when it ended.
  private func readEvents(_ client: WireTestClient, watch id: UInt64, timeout: Double = 60,
                          until: (ProgressEvent) throws -> Bool) throws -> JobEntry? {
    let deadline = Date().addingTimeInterval(scaledTimeout(timeout))
    while true {
      guard let frame = try client.next(timeout: max(0.01, deadline.timeIntervalSinceNow)) else {
        throw WireTestFailure("the connection closed while watching")
      }
      guard frame.requestID == id else { continue }
      if frame.type == .progress {
        if try until(frame.decodeDoc(ProgressEvent.self)) { return nil }
        continue
      }
      guard frame.type == .watchOK else { throw WireTestFailure("WATCH answered \(frameSummary(frame))") }
      return try frame.decodeDoc(JobEntry.self)
    }
  }

  private func model(_ client: WireTestClient, _ name: String) throws -> ModelEntry? {
    try call(client, .models, as: ModelsResponse.self).models.first { $0.model == name }
  }

  private func job(_ client: WireTestClient, _ id: UInt64) throws -> JobEntry? {
    try call(client, .jobs, as: JobsResponse.self).jobs.first { $0.job == id }
  }

  /// RESUME, then WATCH to the end; the job must finish with `epochs` epochs, which DESCRIBE
  /// must show as a complete history.
  private func resumeToTheEnd(_ client: WireTestClient, job id: UInt64, model: String, epochs: Int,
                              file: StaticString = #filePath, line: UInt = #line) throws {
    let resumed = try call(client, .resume, ResumeRequest(job: id), as: JobEntry.self)
    XCTAssertTrue([.queued, .running].contains(resumed.state), "\(resumed)", file: file, line: line)
    let end = try XCTUnwrap(try readEvents(client, watch: try watch(client, id)) { _ in false })
    XCTAssertEqual(end.state, .finished, end.error ?? "", file: file, line: line)
    XCTAssertEqual(end.epoch, epochs, file: file, line: line)
    let described = try call(client, .describe, ModelRequest(model: model), as: DescribeResponse.self)
    XCTAssertEqual(described.entry.state, .ready, file: file, line: line)
    XCTAssertEqual(described.entry.epoch, epochs, file: file, line: line)
    XCTAssertEqual(described.history.map(\.epoch), Array(1...epochs), file: file, line: line)
  }

  /// SIGTERM right after an epoch ends: that epoch is still checkpointed (the running step
  /// finishes, the epoch's checkpoint is written), the daemon exits 0, and after a restart the
  /// job is `interrupted` at exactly the epochs that were reported finished and resumes to the end.
  func testSIGTERMDuringTrainingKeepsFinishedEpochsAndTheJobResumes() throws {
    let daemon = try start()
    let client = try daemon.client()
    let jobID = try train(client, recipe("term", epochs: 6, fraction: 0.5))
    let watchID = try watch(client, jobID)
    var finished = 0
    let early = try readEvents(client, watch: watchID) { event in
      if event.phase == "epoch" { finished = max(finished, event.done) }
      return finished >= 2
    }
    XCTAssertNil(early, "the job ended before its second epoch")
    daemon.signal(SIGTERM)
    // The watcher is answered with the interrupted entry; more epoch events may come first.
    var answered: JobEntry?
    do {
      answered = try readEvents(client, watch: watchID) { event in
        if event.phase == "epoch" { finished = max(finished, event.done) }
        return false
      }
    } catch let failure as WireTestFailure where client.isClosed {
      XCTFail("closed without answering the watch: \(failure)")
    }
    XCTAssertEqual(daemon.waitForExit(timeout: 30), 0, daemon.standardError())
    if let answered {
      XCTAssertEqual(answered.state, .interrupted, "\(answered)")
      XCTAssertEqual(answered.epoch, finished, "\(answered)")
    }
    XCTAssertLessThan(finished, 6, "the job finished before SIGTERM; make its epochs longer")

    let restarted = try start(directory: daemon.directory)
    let again = try restarted.client()
    let entry = try XCTUnwrap(try model(again, "term"))
    XCTAssertEqual(entry.state, .ready, entry.error ?? "")
    XCTAssertEqual(entry.epoch, finished, "the checkpoint lost or gained epochs")
    let described = try call(again, .describe, ModelRequest(model: "term"), as: DescribeResponse.self)
    XCTAssertEqual(described.history.map(\.epoch), Array(1...finished))
    let listed = try XCTUnwrap(try job(again, jobID))
    XCTAssertEqual(listed.state, .interrupted)
    XCTAssertEqual(listed.epoch, finished)
    XCTAssertEqual(listed.epochs, 6)
    XCTAssertNotNil(listed.error)
    try resumeToTheEnd(again, job: jobID, model: "term", epochs: 6)
  }

  /// kill -9 in the middle of an epoch: the model file is intact at the last checkpointed epoch,
  /// the job is `interrupted` there, and it resumes to the end.
  func testKillDuringTrainingLeavesAnIntactModelAndAResumableJob() throws {
    let daemon = try start()
    let client = try daemon.client()
    let jobID = try train(client, recipe("killed", epochs: 4, fraction: 0.5))
    let watchID = try watch(client, jobID)
    var finished = 0
    // A step of epoch 3 (not its last) means epoch 2's checkpoint and record were written: the
    // training thread saves before it starts the next epoch.
    let early = try readEvents(client, watch: watchID) { event in
      if event.phase == "epoch" { finished = max(finished, event.done) }
      return event.phase == "step" && (event.epoch ?? 0) >= 3 && event.done < event.total
    }
    XCTAssertNil(early, "the job ended before its third epoch")
    daemon.signal(SIGKILL)
    XCTAssertEqual(daemon.waitForExit(timeout: 10), SIGKILL)
    XCTAssertEqual(finished, 2)

    let restarted = try start(directory: daemon.directory)
    let again = try restarted.client()
    let models = try call(again, .models, as: ModelsResponse.self).models
    XCTAssertEqual(models.map(\.model), ["killed"], "temporary files must not be listed as models")
    let entry = try XCTUnwrap(models.first)
    XCTAssertEqual(entry.state, .ready, entry.error ?? "")
    XCTAssertEqual(entry.epoch, 2)
    let listed = try XCTUnwrap(try job(again, jobID))
    XCTAssertEqual(listed.state, .interrupted)
    XCTAssertEqual(listed.epoch, 2)
    try resumeToTheEnd(again, job: jobID, model: "killed", epochs: 4)
  }

  /// Random bytes named x.bsckpt and a truncated copy of a real checkpoint: both are listed as
  /// corrupt with their error, DESCRIBE and HEATMAP of them answer CORRUPT, and the real model's
  /// heatmap is served on the same connection.
  func testCorruptCheckpointsAreListedWhileOtherModelsAreServed() throws {
    let daemon = try start()
    let client = try daemon.client()
    let jobID = try train(client, recipe("good", epochs: 1, fraction: 0.2))
    let end = try XCTUnwrap(try readEvents(client, watch: try watch(client, jobID)) { _ in false })
    XCTAssertEqual(end.state, .finished, end.error ?? "")

    let models = daemon.storePath + "/models"
    let good = try Data(contentsOf: URL(fileURLWithPath: models + "/good.bsckpt"))
    try good.prefix(good.count / 2).write(to: URL(fileURLWithPath: models + "/truncated.bsckpt"))
    var generator = SystemRandomNumberGenerator()
    try Data((0..<4096).map { _ in UInt8.random(in: 0...255, using: &generator) })
      .write(to: URL(fileURLWithPath: models + "/x.bsckpt"))

    let listed = try call(client, .models, as: ModelsResponse.self).models
    XCTAssertEqual(listed.map(\.model), ["good", "truncated", "x"])
    for entry in listed {
      if entry.model == "good" {
        XCTAssertEqual(entry.state, .ready, entry.error ?? "")
        XCTAssertEqual(entry.epoch, 1)
      } else {
        XCTAssertEqual(entry.state, .corrupt, entry.model)
        XCTAssertFalse((entry.error ?? "").isEmpty, "\(entry.model): a corrupt entry names its error")
      }
    }
    for name in ["x", "truncated"] {
      XCTAssertEqual(try callFailing(client, .describe, ModelRequest(model: name)).errorCode, .corrupt, name)
      let heatmap = HeatmapRequest(model: name, examples: ExampleSelection(split: .test, count: 256),
                                   batchSize: 128, passes: 1)
      XCTAssertEqual(try callFailing(client, .heatmap, heatmap).errorCode, .corrupt, name)
    }

    let id = newID()
    try client.send(.heatmap, id: id, doc: HeatmapRequest(model: "good", examples: ExampleSelection(split: .test, count: 256),
                                                         batchSize: 128, passes: 1), flags: .quiet)
    let frame = try client.final(of: id, timeout: scaledTimeout(60))
    XCTAssertEqual(frame.type, .heatmapOK, frameSummary(frame))
    let payload = try frame.parsedPayload()
    let cka = try XCTUnwrap(payload.tensor(named: "cka"))
    XCTAssertEqual(cka.shape, [30, 30], "ResNet-8 has 21 + 9 representations")
    XCTAssertFalse(client.isClosed)
    // The corrupt files are left alone.
    XCTAssertTrue(FileManager.default.fileExists(atPath: models + "/x.bsckpt"))
  }

  /// CANCEL of a running job is answered once the job has stopped, and at most the step that was
  /// running when it arrived still reports: steps take longer than the event interval (0.1 s),
  /// so every step sends a `step` event, and the watch is on the same connection as the CANCEL.
  func testCancelLandsWithinOneTrainingStep() throws {
    let daemon = try start()
    let client = try daemon.client()
    let jobID = try train(client, recipe("cancel", epochs: 2, batchSize: 1024))
    let watchID = try watch(client, jobID)
    var lastStep = 0
    let early = try readEvents(client, watch: watchID) { event in
      if event.phase == "step" { lastStep = event.done }
      return event.phase == "step" && event.done >= 2 && event.done < event.total - 1
    }
    XCTAssertNil(early, "the job ended before its second step")

    let cancelID = newID()
    let sent = Date()
    try client.send(.cancel, id: cancelID, doc: JobRequest(job: jobID), flags: .quiet)
    var stepsAfterCancel: [Int] = [], stepsAfterAnswer: [Int] = []
    var cancelled: JobEntry?, watched: JobEntry?
    var latency = 0.0
    while cancelled == nil || watched == nil {
      let frame = try XCTUnwrap(try client.next(timeout: scaledTimeout(30)), "closed before CANCEL and WATCH were answered")
      if frame.type == .progress {
        let event = try frame.decodeDoc(ProgressEvent.self)
        guard event.phase == "step" else { continue }
        stepsAfterCancel.append(event.done)
        if cancelled != nil { stepsAfterAnswer.append(event.done) }
      } else if frame.requestID == cancelID {
        XCTAssertEqual(frame.type, .cancelOK, frameSummary(frame))
        cancelled = try frame.decodeDoc(JobEntry.self)
        latency = Date().timeIntervalSince(sent)
      } else if frame.requestID == watchID {
        XCTAssertEqual(frame.type, .watchOK, frameSummary(frame))
        watched = try frame.decodeDoc(JobEntry.self)
      }
    }
    XCTAssertLessThanOrEqual(stepsAfterCancel.count, 1,
                             "steps \(stepsAfterCancel) reported after CANCEL (last before it: \(lastStep)); answered in \(latency) s")
    XCTAssertEqual(stepsAfterAnswer, [], "steps reported after the CANCEL answer")
    if let step = stepsAfterCancel.first { XCTAssertEqual(step, lastStep + 1) }
    XCTAssertEqual(cancelled?.state, .cancelled)
    XCTAssertEqual(cancelled?.epoch, 0)
    XCTAssertEqual(watched?.state, .cancelled)
    XCTAssertEqual(try job(client, jobID)?.state, .cancelled)
    // SPEC 7, CANCEL: cancelling a job that has already ended answers its entry unchanged.
    let id = newID()
    try client.send(.cancel, id: id, doc: JobRequest(job: jobID), flags: .quiet)
    let again = try client.final(of: id)
    XCTAssertEqual(again.type, .cancelOK, "CANCEL of an ended job: \(frameSummary(again))")
    if again.type == .cancelOK { XCTAssertEqual(try again.decodeDoc(JobEntry.self).state, .cancelled) }
  }
}
