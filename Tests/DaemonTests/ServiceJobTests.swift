import Foundation
import XCTest

@testable import Daemon
@testable import Engine
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// Training jobs through `handle`: TRAIN, WATCH, JOBS, CANCEL, shutdown, RESUME, restart.
final class ServiceJobTests: ServiceTestCase {
  func testTrainWatchFinishesAndModelIsListed() throws {
    let service = try makeService()
    guard let (started, watch) = trainAndWatch(service, recipe(nil, epochs: 2)) else { return }
    XCTAssertEqual(started.model, "r8-k0.25-synthetic-f1-s0")
    XCTAssertEqual(started.job, 1)
    guard let entry = watch.doc(.watchOK, as: JobEntry.self) else { return }
    XCTAssertEqual(entry.state, .finished, "\(entry)")
    XCTAssertEqual(entry.epoch, 2)
    XCTAssertNotNil(entry.last)
    XCTAssertNotNil(entry.started)
    XCTAssertNotNil(entry.ended)

    let events = watch.events
    let phases = Set(events.map(\.phase))
    XCTAssertEqual(phases, ["step", "evaluate", "epoch"])
    XCTAssertTrue(events.allSatisfy { $0.job == started.job && $0.epochs == 2 })
    // WATCH came after TRAIN_OK, so the first steps may have gone by; epoch 2 is all there.
    let epochs = events.filter { $0.phase == "epoch" }
    XCTAssertEqual(epochs.last?.done, 2)
    XCTAssertNotNil(epochs.last?.metrics?["test_accuracy"])
    let steps = events.filter { $0.phase == "step" }
    let perEpoch = (Self.syntheticTrain + 31) / 32
    XCTAssertEqual(steps.filter { $0.epoch == 2 }.map(\.done), Array(1...perEpoch),
                   "progressInterval 0 sends every step")
    XCTAssertTrue(steps.allSatisfy { $0.total == perEpoch && $0.metrics?["loss"] != nil })

    // JOBS and the record on disk.
    let jobs = send(service, .jobs, EmptyDoc()).doc(.jobsOK, as: JobsResponse.self)
    XCTAssertEqual(jobs?.jobs.map(\.state), [.finished])
    let record = try JSONDecoder().decode(
      JobFile.self, from: Data(contentsOf: URL(fileURLWithPath: storeDirectory + "/jobs/1.json")))
    XCTAssertEqual(record.entry.state, .finished)
    XCTAssertEqual(record.entry.epoch, 2)
    XCTAssertEqual(record.recipe.depth, 8)

    // MODELS and DESCRIBE.
    guard let models = send(service, .models, EmptyDoc()).doc(.modelsOK, as: ModelsResponse.self) else { return }
    XCTAssertEqual(models.models.count, 1)
    let m = models.models[0]
    XCTAssertEqual(m.model, started.model)
    XCTAssertEqual(m.state, .ready)
    XCTAssertEqual(m.epoch, 2)
    XCTAssertEqual(m.epochs, 2)
    XCTAssertEqual(m.depth, 8)
    XCTAssertEqual(m.dataset, "synthetic")
    XCTAssertEqual(m.fingerprint?.count, 16)
    XCTAssertGreaterThan(m.bytes, 0)
    guard let d = send(service, .describe, ModelRequest(model: started.model))
      .doc(.describeOK, as: DescribeResponse.self) else { return }
    XCTAssertEqual(d.history.count, 2)
    XCTAssertEqual(d.recipe.batchSize, 32)
    XCTAssertEqual(d.recipe.testExamples, 64)
    XCTAssertEqual(d.representations.count, Self.tinyConfig.representations.count)
    XCTAssertEqual(d.blocks.map(\.name), ["s1.b1", "s2.b1", "s3.b1"])
    XCTAssertGreaterThan(d.parameters, 0)
    XCTAssertEqual(d.entry.fingerprint, m.fingerprint)

    // The same name again: ALREADY_EXISTS.
    expectError(send(service, .train, recipe(nil, epochs: 1)), .alreadyExists, mentioning: started.model)
  }

  /// --parallel-jobs 2: two jobs train at the same time, each on its own kernel context with
  /// half the CPUs, and their models are the same bits as when trained one after another.
  func testParallelJobsTrainSideBySideWithTheSameWeights() throws {
    var parallel = options()
    parallel.parallelJobs = 2
    let service = try makeService(parallel)
    let recipes = [recipe("a", epochs: 3, seed: 1), recipe("b", epochs: 3, seed: 2)]
    let watches = recipes.compactMap { trainAndWatch(service, $0)?.1 }
    XCTAssertEqual(watches.count, 2)
    // Both are running at some moment (STATUS polled while they train).
    var sawBoth = false
    let deadline = Date().addingTimeInterval(60)
    while !sawBoth && Date() < deadline {
      let status = send(service, .status, EmptyDoc()).doc(.statusOK, as: StatusResponse.self)
      if status?.jobs.running == 2 { sawBoth = true }
      usleep(2000)
    }
    XCTAssertTrue(sawBoth, "the two jobs never ran at the same time")
    for watch in watches {
      XCTAssertEqual(watch.doc(.watchOK, as: JobEntry.self)?.state, .finished)
    }
    XCTAssertEqual(service.jobs.threads(for: recipes[0]), max(1, KernelContext.defaultThreads / 2))
    let parallelModels = try ["a", "b"].map { try Checkpoint.load(from: modelPath($0)).tensors }
    _ = service.shutdown()

    // The same recipes one after another, in another store.
    let serialStore = storeDirectory + "-serial"
    defer { try? FileManager.default.removeItem(atPath: serialStore) }
    var serial = options()
    serial.storeDirectory = serialStore
    let one = try makeService(serial)
    for r in recipes {
      XCTAssertEqual(trainAndWatch(one, r)?.1.doc(.watchOK, as: JobEntry.self)?.state, .finished)
    }
    let serialModels = try ["a", "b"].map {
      try Checkpoint.load(from: serialStore + "/models/" + $0 + ".bsckpt").tensors
    }
    for (p, q) in zip(parallelModels, serialModels) {
      XCTAssertEqual(p.map(\.name), q.map(\.name))
      for (x, y) in zip(p, q) {
        XCTAssertTrue(x.values.map(\.bitPattern) == y.values.map(\.bitPattern), "\(x.name) differs")
      }
    }
  }

  func testCancelLandsWithinOneStep() throws {
    let service = try makeService()
    guard let (started, watch) = trainAndWatch(service, recipe("long", epochs: 200)) else { return }
    XCTAssertTrue(watch.waitForEvents { $0.filter { $0.phase == "step" }.count >= 3 })
    let cancel = send(service, .cancel, JobRequest(job: started.job))
    let stepsAtCancel = watch.events.filter { $0.phase == "step" }.count
    guard let entry = cancel.doc(.cancelOK, as: JobEntry.self) else { return }
    XCTAssertEqual(entry.state, .cancelled)
    let stepsAfter = watch.events.filter { $0.phase == "step" }.count - stepsAtCancel
    XCTAssertLessThanOrEqual(stepsAfter, 1, "the job ran \(stepsAfter) steps after CANCEL")
    XCTAssertEqual(watch.doc(.watchOK, as: JobEntry.self)?.state, .cancelled)
    // Cancelling an ended job answers its entry unchanged (SPEC: CANCEL).
    XCTAssertEqual(send(service, .cancel, JobRequest(job: started.job)).doc(.cancelOK, as: JobEntry.self)?.state,
                   .cancelled)
  }

  func testDeleteModelConflictsWhileTraining() throws {
    let service = try makeService()
    guard let (started, watch) = trainAndWatch(service, recipe("busy", epochs: 200)) else { return }
    XCTAssertTrue(watch.waitForEvents { $0.contains { $0.phase == "epoch" } })
    // The model is listed as training, and cannot be deleted.
    let models = send(service, .models, EmptyDoc()).doc(.modelsOK, as: ModelsResponse.self)
    XCTAssertEqual(models?.models.first?.state, .training)
    expectError(send(service, .deleteModel, ModelRequest(model: "busy")), .conflict, mentioning: "job \(started.job)")
    // A second TRAIN of the same name: ALREADY_EXISTS.
    expectError(send(service, .train, recipe("busy", epochs: 1)), .alreadyExists, mentioning: "busy")
    XCTAssertEqual(send(service, .cancel, JobRequest(job: started.job)).doc(.cancelOK, as: JobEntry.self)?.state,
                   .cancelled)
    guard let deleted = send(service, .deleteModel, ModelRequest(model: "busy"))
      .doc(.deleteModelOK, as: DeleteModelResponse.self) else { return }
    XCTAssertGreaterThan(deleted.bytesFreed, 0)
    XCTAssertFalse(FileManager.default.fileExists(atPath: modelPath("busy")))
  }

  func testShutdownInterruptsAndResumeFinishesAfterRestart() throws {
    let epochs = 3
    var service: DaemonService? = try makeService()
    guard let (started, watch) = trainAndWatch(service!, recipe("resumed", epochs: epochs, seed: 7)) else { return }
    XCTAssertTrue(watch.waitForEvents { $0.contains { $0.phase == "epoch" && $0.done == 1 } })
    XCTAssertEqual(service!.shutdown(), 1)
    XCTAssertEqual(watch.doc(.watchOK, as: JobEntry.self)?.state, .interrupted)
    // Refused from now on.
    expectError(send(service!, .status, EmptyDoc()), .shuttingDown)
    expectError(send(service!, .train, recipe("other", epochs: 1)), .shuttingDown)

    // The last finished epoch is on disk, the record says interrupted.
    let onDisk = try Checkpoint.load(from: modelPath("resumed"))
    XCTAssertGreaterThanOrEqual(onDisk.epochsCompleted, 1)
    XCTAssertLessThan(onDisk.epochsCompleted, epochs)
    XCTAssertEqual(onDisk.metadata["job"], String(started.job))
    let record = try JSONDecoder().decode(
      JobFile.self, from: Data(contentsOf: URL(fileURLWithPath: storeDirectory + "/jobs/\(started.job).json")))
    XCTAssertEqual(record.entry.state, .interrupted)
    XCTAssertEqual(record.entry.epoch, onDisk.epochsCompleted)
    service = nil

    // A new daemon on the same store.
    let restarted = try makeService()
    let jobs = send(restarted, .jobs, EmptyDoc()).doc(.jobsOK, as: JobsResponse.self)
    XCTAssertEqual(jobs?.jobs.count, 1)
    XCTAssertEqual(jobs?.jobs.first?.state, .interrupted)
    XCTAssertEqual(jobs?.jobs.first?.epoch, onDisk.epochsCompleted)
    let models = send(restarted, .models, EmptyDoc()).doc(.modelsOK, as: ModelsResponse.self)
    XCTAssertEqual(models?.models.first?.state, .ready)
    XCTAssertEqual(models?.models.first?.epoch, onDisk.epochsCompleted)
    let status = send(restarted, .status, EmptyDoc()).doc(.statusOK, as: StatusResponse.self)
    XCTAssertEqual(status?.jobs.interrupted, 1)

    let resumed = send(restarted, .resume, ResumeRequest(job: started.job)).doc(.resumeOK, as: JobEntry.self)
    XCTAssertEqual(resumed?.job, started.job)
    XCTAssertEqual(resumed?.state, .queued)
    let watch2 = send(restarted, .watch, JobRequest(job: started.job))
    guard let final = watch2.doc(.watchOK, as: JobEntry.self) else { return }
    XCTAssertEqual(final.state, .finished, "\(final)")
    XCTAssertEqual(final.epoch, epochs)
    let resumedFile = try Checkpoint.load(from: modelPath("resumed"))
    XCTAssertEqual(resumedFile.epochsCompleted, epochs)
    XCTAssertEqual(resumedFile.history.map(\.epoch), Array(1...epochs))
    // New job ids continue after the old ones.
    guard let next = send(restarted, .train, recipe("straight", epochs: epochs, seed: 7))
      .doc(.trainOK, as: TrainResponse.self) else { return }
    XCTAssertEqual(next.job, started.job + 1)
    // Resumed at an epoch boundary, the run equals an uninterrupted one (same threads).
    XCTAssertEqual(send(restarted, .watch, JobRequest(job: next.job)).doc(.watchOK, as: JobEntry.self)?.state,
                   .finished)
    let straight = try Checkpoint.load(from: modelPath("straight"))
    XCTAssertEqual(straight.tensors.map(\.name), resumedFile.tensors.map(\.name))
    for (a, b) in zip(straight.tensors, resumedFile.tensors) {
      XCTAssertEqual(a.values, b.values, "tensor \(a.name) differs")
    }
    // Resuming a finished job: CONFLICT.
    expectError(send(restarted, .resume, ResumeRequest(job: started.job)), .conflict)
  }

  func testRecordsLeftRunningBecomeInterrupted() throws {
    try FileManager.default.createDirectory(atPath: storeDirectory + "/jobs", withIntermediateDirectories: true)
    for (id, state) in [(UInt64(4), JobState.running), (5, .queued), (6, .finished)] {
      let file = JobFile(entry: JobEntry(job: id, model: "m\(id)", state: state, epoch: 0, epochs: 3,
                                         created: "2026-12-02T00:00:00Z"),
                         recipe: recipe("m\(id)", epochs: 3))
      try JSONEncoder().encode(file).write(to: URL(fileURLWithPath: storeDirectory + "/jobs/\(id).json"))
    }
    try "not json".write(toFile: storeDirectory + "/jobs/9.json", atomically: true, encoding: .utf8)
    let service = try makeService()
    let jobs = send(service, .jobs, EmptyDoc()).doc(.jobsOK, as: JobsResponse.self)
    XCTAssertEqual(jobs?.jobs.map(\.job), [4, 5, 6])
    XCTAssertEqual(jobs?.jobs.map(\.state), [.interrupted, .interrupted, .finished])
    // Ids continue after the highest record, the unreadable one included.
    let next = send(service, .train, recipe("fresh", epochs: 1)).doc(.trainOK, as: TrainResponse.self)
    XCTAssertEqual(next?.job, 10)
    _ = send(service, .cancel, JobRequest(job: 10)).wait()
  }

  /// A job record from a larger machine's store: RESUME refuses what this machine cannot hold
  /// before building anything, and the record stays as it was.
  func testResumeRefusesANetworkTooLargeForThisMachine() throws {
    try FileManager.default.createDirectory(atPath: storeDirectory + "/jobs", withIntermediateDirectories: true)
    var huge = recipe("huge", epochs: 3)
    huge.depth = 1202
    huge.width = 64
    let file = JobFile(entry: JobEntry(job: 3, model: "huge", state: .cancelled, epoch: 1, epochs: 3,
                                       created: "2026-12-02T00:00:00Z"),
                       recipe: huge)
    try JSONEncoder().encode(file).write(to: URL(fileURLWithPath: storeDirectory + "/jobs/3.json"))
    let service = try makeService()
    expectError(send(service, .resume, ResumeRequest(job: 3)), .invalidArgument, mentioning: "GiB")
    let jobs = send(service, .jobs, EmptyDoc()).doc(.jobsOK, as: JobsResponse.self)
    XCTAssertEqual(jobs?.jobs.map(\.state), [.cancelled])
    XCTAssertNotNil(send(service, .status, EmptyDoc()).payload(.statusOK), "still serving")
  }

  func testSecondServiceOnTheSameStoreIsRefused() throws {
    let first = try makeService()
    XCTAssertThrowsError(try DaemonService(options: options())) { error in
      XCTAssertTrue("\(error)".contains("in use"), "\(error)")
    }
    _ = first.shutdown()
    XCTAssertNoThrow(try makeService())
  }

  #if DEBUG
  func testFullDiskGivesNoSpaceAndKeepsTheOldModel() throws {
    let service = try makeService()
    let jobsDirectory = storeDirectory + "/jobs/"
    // The job record cannot be written: TRAIN answers NO_SPACE and nothing is queued.
    CheckpointFaultInjection.hook = { syscall, path in
      syscall == "write" && path.hasPrefix(jobsDirectory) ? .fail(ENOSPC) : nil
    }
    expectError(send(service, .train, recipe("full", epochs: 2)), .noSpace, mentioning: jobsDirectory)
    XCTAssertEqual(send(service, .jobs, EmptyDoc()).doc(.jobsOK, as: JobsResponse.self)?.jobs.count, 0)

    // The disk fills after the first epoch's checkpoint: the second save fails, the model file
    // keeps epoch 1, the job is interrupted with NO_SPACE and resumes once there is room.
    let armed = Locked(false)
    let modelTemporary = storeDirectory + "/models/.full.bsckpt.tmp-"
    CheckpointFaultInjection.hook = { syscall, path in
      guard path.hasPrefix(modelTemporary) else { return nil }
      if syscall == "rename" { armed.withLock { $0 = true } }
      return syscall == "write" && armed.current ? .fail(ENOSPC) : nil
    }
    guard let (started, watch) = trainAndWatch(service, recipe("full", epochs: 2)) else { return }
    guard let entry = watch.doc(.watchOK, as: JobEntry.self) else { return }
    XCTAssertEqual(entry.state, .interrupted)
    XCTAssertEqual(entry.epoch, 1)
    XCTAssertTrue(entry.error?.hasPrefix("NO_SPACE") == true, entry.error ?? "no error")
    let kept = try Checkpoint.load(from: modelPath("full"))
    XCTAssertEqual(kept.epochsCompleted, 1)
    let leftovers = try FileManager.default.contentsOfDirectory(atPath: storeDirectory + "/models")
    XCTAssertEqual(leftovers, ["full.bsckpt"], "no temporary file is left")

    CheckpointFaultInjection.hook = nil
    XCTAssertEqual(send(service, .resume, ResumeRequest(job: started.job)).doc(.resumeOK, as: JobEntry.self)?.state,
                   .queued)
    XCTAssertEqual(send(service, .watch, JobRequest(job: started.job)).doc(.watchOK, as: JobEntry.self)?.epoch, 2)
  }

  /// A daemon killed while a job ran, restarted on a full disk: it starts (it used to refuse
  /// with NO_SPACE, unable to rewrite the record as interrupted; found by tools/disk-full-test),
  /// lists the job interrupted, and once there is room RESUME rewrites the record.
  func testStartOnAFullDiskWithARecordLeftRunning() throws {
    let jobsDirectory = storeDirectory + "/jobs"
    try FileManager.default.createDirectory(atPath: jobsDirectory, withIntermediateDirectories: true)
    let left = JobFile(entry: JobEntry(job: 3, model: "m3", state: .running, epoch: 0, epochs: 2,
                                       created: "2026-12-07T00:00:00Z"),
                       recipe: recipe("m3", epochs: 2))
    let recordPath = jobsDirectory + "/3.json"
    try JSONEncoder().encode(left).write(to: URL(fileURLWithPath: recordPath))
    CheckpointFaultInjection.hook = { syscall, path in
      syscall == "write" && path.hasPrefix(jobsDirectory + "/") ? .fail(ENOSPC) : nil
    }
    defer { CheckpointFaultInjection.hook = nil }
    let service = try makeService()
    let listed = send(service, .jobs, EmptyDoc()).doc(.jobsOK, as: JobsResponse.self)?.jobs
    XCTAssertEqual(listed?.map(\.state), [.interrupted])
    XCTAssertEqual(send(service, .status, EmptyDoc()).doc(.statusOK, as: StatusResponse.self)?.jobs.interrupted, 1)
    let onDisk = try JSONDecoder().decode(JobFile.self, from: Data(contentsOf: URL(fileURLWithPath: recordPath)))
    XCTAssertEqual(onDisk.entry.state, .running, "the record is left as it was")
    expectError(send(service, .resume, ResumeRequest(job: 3)), .noSpace, mentioning: jobsDirectory)

    CheckpointFaultInjection.hook = nil
    XCTAssertEqual(send(service, .resume, ResumeRequest(job: 3)).doc(.resumeOK, as: JobEntry.self)?.state, .queued)
    _ = send(service, .cancel, JobRequest(job: 3)).wait()
    let rewritten = try JSONDecoder().decode(JobFile.self, from: Data(contentsOf: URL(fileURLWithPath: recordPath)))
    XCTAssertNotEqual(rewritten.entry.state, .running, "\(rewritten.entry)")
  }
  #endif
}
