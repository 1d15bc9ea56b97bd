import Foundation
import XCTest

@testable import Daemon
@testable import Engine
import Study
import Wire

/// Studies through `handle`: STUDY_CREATE runs a small grid on the synthetic data to the end,
/// stores every analysis, reuses models across studies, survives a restart.
final class ServiceStudyTests: ServiceTestCase {
  /// Two depths x two seeds of tiny nets, every analysis on few examples.
  func declaration() -> StudyDeclaration {
    var d = StudyDeclaration(dataset: "synthetic", depths: [8, 14])
    d.widths = [0.25]
    d.seeds = [0, 1]
    d.epochs = 2
    d.batchSize = 32
    d.augment = false
    d.testExamples = 64
    d.snapshotEpochs = [1]
    d.heatmapExamples = 64
    d.heatmapBatch = 32
    d.pcExamples = 64
    d.probeEpochs = 1
    d.probeTrainExamples = 64
    d.probeTestExamples = 64
    d.deletionTestExamples = 64
    d.populationTestExamples = 64
    d.similarAccuracy = 1
    d.nearChanceMargin = 0
    return d
  }

  func status(_ service: DaemonService, _ study: String) -> StudyStatusResponse? {
    send(service, .studyStatus, StudyRequest(study: study)).doc(.studyStatusOK, as: StudyStatusResponse.self)
  }

  /// Polls until the study is no longer running.
  func waitForEnd(_ service: DaemonService, _ study: String, timeout: Double = 300) -> StudyStatusResponse? {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
      guard let s = status(service, study) else { return nil }
      if s.state != .running { return s }
      Thread.sleep(forTimeInterval: 0.2)
    }
    XCTFail("study \(study) still running after \(timeout) s")
    return nil
  }

  func testStudyRunsToTheEndAndStoresEveryAnalysis() throws {
    let service = try makeService()
    let d = declaration()
    guard let created = send(service, .studyCreate, StudyCreateRequest(study: "grid", declaration: d))
      .doc(.studyCreateOK, as: StudyStatusResponse.self) else { return }
    XCTAssertEqual(created.models.count, 4)
    guard let end = waitForEnd(service, "grid") else { return }
    XCTAssertEqual(end.state, .finished, "\(end.errors)")
    XCTAssertEqual(end.progress, 1)
    XCTAssertTrue(end.models.allSatisfy { $0.state == .done && $0.epoch == 2 && $0.testAccuracy != nil })
    XCTAssertEqual(end.analysesDone, end.analysesTotal)
    // Each model trained by exactly one job.
    let jobs = send(service, .jobs, EmptyDoc()).doc(.jobsOK, as: JobsResponse.self)?.jobs ?? []
    XCTAssertEqual(jobs.count, 4)
    XCTAssertEqual(Set(jobs.map(\.model)), Set(end.models.map(\.model)))
    XCTAssertTrue(jobs.allSatisfy { $0.state == .finished })

    let index = try XCTUnwrap(send(service, .studyResults, StudyRequest(study: "grid"))
      .doc(.studyResultsOK, as: StudyResultsResponse.self))
    XCTAssertEqual(index.total, index.results.count)
    XCTAssertNil(index.nextOffset, "one page holds them all")
    XCTAssertEqual(index.results.map(\.key), index.results.map(\.key).sorted())
    // Pages of 3: the same results in the same order, every page saying where the next starts.
    var paged: [StudyResultsResponse.Result] = []
    var offset: Int? = 0
    while let at = offset {
      let page = try XCTUnwrap(send(service, .studyResults, StudyResultsRequest(study: "grid", offset: at, limit: 3))
        .doc(.studyResultsOK, as: StudyResultsResponse.self))
      XCTAssertEqual(page.offset, at)
      XCTAssertEqual(page.total, index.total)
      XCTAssertLessThanOrEqual(page.results.count, 3)
      paged += page.results
      offset = page.nextOffset
    }
    XCTAssertEqual(paged, index.results)
    let past = send(service, .studyResults, StudyResultsRequest(study: "grid", offset: 10_000, limit: 3))
      .doc(.studyResultsOK, as: StudyResultsResponse.self)
    XCTAssertEqual(past?.results, [])
    XCTAssertNil(past?.nextOffset)
    expectError(send(service, .studyResults, StudyResultsRequest(study: "grid", offset: -1)),
                .invalidArgument, mentioning: "offset")
    for limit in [0, StudyResultsRequest.maxLimit + 1] {
      expectError(send(service, .studyResults, StudyResultsRequest(study: "grid", limit: limit)),
                  .invalidArgument, mentioning: "limit")
    }
    let kinds = Dictionary(grouping: index.results, by: \.kind).mapValues(\.count)
    // Every result says whether a failed (near-chance) net is in it.
    let failed = Set(end.models.filter(\.nearChance).map(\.model))
    for r in index.results {
      let expected = r.models.contains { m in failed.contains { m == $0 || m == $0 + ".e1" } }
      XCTAssertEqual(r.nearChance, expected, r.key)
    }
    XCTAssertEqual(kinds["heatmap"], 4)
    XCTAssertEqual(kinds["heatmap_no_pc1"], 4)
    XCTAssertEqual(kinds["pc"], 4)
    XCTAssertEqual(kinds["probe"], 4)
    XCTAssertEqual(kinds["deletion"], 4)
    XCTAssertEqual(kinds["snapshot_heatmap"], 4)
    XCTAssertEqual(kinds["snapshot_pc"], 4)
    XCTAssertEqual(kinds["cross_seed"], 2)
    XCTAssertEqual(kinds["cross_architecture"], 1)
    // Populations: both groups are above chance (margin 0) unless a tiny net failed outright.
    let chance = 1.0 / Double(index.classes)
    let groupsAboveChance = Dictionary(grouping: end.models, by: \.depth).values.allSatisfy { ms in
      ms.map { $0.testAccuracy! }.reduce(0, +) / Double(ms.count) >= chance
    }
    XCTAssertEqual(kinds["population"] ?? 0, groupsAboveChance ? 1 : 0)
    XCTAssertEqual(kinds["population_null"] ?? 0, groupsAboveChance ? 1 : 0)

    // A stored result is the analysis' own response: a HEATMAP_OK doc and its tensors.
    let key = index.results.first { $0.kind == "heatmap" }!.key
    guard let payload = send(service, .studyResult, StudyResultRequest(study: "grid", key: key)).payload(.studyResultOK),
          let heatmap = try? payload.decode(HeatmapResponse.self) else { return XCTFail("no heatmap result") }
    let n = ResNetConfig(depth: heatmap.rowNames.count == 30 ? 8 : 14, widthMultiplier: 0.25).representations.count
    XCTAssertEqual(heatmap.rowNames.count, n)
    XCTAssertNotNil(heatmap.blockStructure)
    XCTAssertEqual(payload.tensor(named: HeatmapResponse.ckaTensor)?.shape, [n, n])
    expectError(send(service, .studyResult, StudyResultRequest(study: "grid", key: "heatmap/../../x")), .invalidArgument)
    expectError(send(service, .studyResult, StudyResultRequest(study: "grid", key: "heatmap/nothing")), .notFound)

    // Declaring it again changes nothing; an overlapping study retrains nothing.
    let again = send(service, .studyCreate, StudyCreateRequest(study: "grid", declaration: d))
      .doc(.studyCreateOK, as: StudyStatusResponse.self)
    XCTAssertEqual(again?.state, .finished)
    var overlap = d
    overlap.depths = [14]
    overlap.analyses = [.heatmap]
    _ = send(service, .studyCreate, StudyCreateRequest(study: "overlap", declaration: overlap)).payload(.studyCreateOK)
    guard let o = waitForEnd(service, "overlap") else { return }
    XCTAssertEqual(o.state, .finished)
    XCTAssertTrue(o.models.allSatisfy(\.reused))
    XCTAssertEqual(send(service, .jobs, EmptyDoc()).doc(.jobsOK, as: JobsResponse.self)?.jobs.count, 4,
                   "no model trained twice")
    // The same name with another declaration: ALREADY_EXISTS.
    expectError(send(service, .studyCreate, StudyCreateRequest(study: "overlap", declaration: d)), .alreadyExists)

    // Delete: the shared models stay, the others go.
    guard let deleted = send(service, .studyDelete, StudyDeleteRequest(study: "grid"))
      .doc(.studyDeleteOK, as: StudyDeleteResponse.self) else { return }
    let depth14 = Set(o.models.map(\.model))
    XCTAssertEqual(Set(deleted.modelsKept), depth14.union(depth14.map { $0 + ".e1" }),
                   "the overlapping study's models and their snapshots stay")
    XCTAssertEqual(Set(deleted.modelsDeleted), Set(end.models.filter { $0.depth == 8 }.flatMap { [$0.model, $0.model + ".e1"] }))
    XCTAssertFalse(FileManager.default.fileExists(atPath: storeDirectory + "/studies/grid"))
    XCTAssertTrue(depth14.allSatisfy { FileManager.default.fileExists(atPath: modelPath($0)) })
    expectError(send(service, .studyStatus, StudyRequest(study: "grid")), .notFound)
    let list = send(service, .studyList, EmptyDoc()).doc(.studyListOK, as: StudyListResponse.self)
    XCTAssertEqual(list?.studies.map(\.study), ["overlap"])
  }

  func testInvalidDeclarationsNameTheirKey() throws {
    let service = try makeService()
    func expect(_ change: (inout StudyDeclaration) -> Void, _ code: ErrorCode, _ key: String) {
      var d = declaration()
      change(&d)
      expectError(send(service, .studyCreate, StudyCreateRequest(study: "bad", declaration: d)), code, mentioning: key)
    }
    expect({ $0.depths = [15] }, .invalidArgument, "declaration.depths")
    expect({ $0.fractions = [2] }, .invalidArgument, "declaration.fractions")
    expect({ $0.dataset = "imagenet" }, .invalidArgument, "declaration.dataset")
    expect({ $0.dataset = "cifar10" }, .dataUnavailable, "no-cifar-here")
    expect({ $0.widths = [64]; $0.depths = [1202] }, .invalidArgument, "GiB")
    expectError(send(service, rawRequest(.studyCreate, json: #"{"study":"bad","declaration":{"dataset":"synthetic","depths":[8],"epoch":3}}"#)),
                .invalidArgument, mentioning: "declaration.epoch")
    expectError(send(service, .studyCreate, StudyCreateRequest(study: "../x", declaration: declaration())),
                .invalidArgument, mentioning: "study")
    XCTAssertEqual(send(service, .studyList, EmptyDoc()).doc(.studyListOK, as: StudyListResponse.self)?.studies.count, 0)
  }

  func testCancelThenResumeAndRestartFinishWithoutRetraining() throws {
    var d = declaration()
    d.depths = [8]
    d.epochs = 4
    d.analyses = [.heatmap]
    d.snapshotEpochs = []
    var service = try makeService()
    _ = send(service, .studyCreate, StudyCreateRequest(study: "s", declaration: d)).payload(.studyCreateOK)
    // Cancel while the first model trains.
    let deadline = Date().addingTimeInterval(60)
    while Date() < deadline, status(service, "s")?.models.contains(where: { $0.state == .training }) != true {
      Thread.sleep(forTimeInterval: 0.05)
    }
    guard let cancelled = send(service, .studyCancel, StudyRequest(study: "s"))
      .doc(.studyCancelOK, as: StudyStatusResponse.self) else { return }
    XCTAssertEqual(cancelled.state, .cancelled)
    Thread.sleep(forTimeInterval: 0.5)
    XCTAssertEqual(status(service, "s")?.state, .cancelled)
    XCTAssertTrue(status(service, "s")?.models.allSatisfy { $0.state != .training } ?? false)

    // Resume, then stop the daemon mid-training and start another on the same store.
    _ = send(service, .studyResume, StudyRequest(study: "s")).payload(.studyResumeOK)
    _ = service.shutdown()
    service = try makeService()
    guard let end = waitForEnd(service, "s") else { return }
    XCTAssertEqual(end.state, .finished, "\(end.errors)")
    let jobs = send(service, .jobs, EmptyDoc()).doc(.jobsOK, as: JobsResponse.self)?.jobs ?? []
    XCTAssertEqual(jobs.count, 2, "one job per model, resumed under its id: \(jobs)")
    XCTAssertEqual(Set(jobs.map(\.model)).count, 2)
    let index = send(service, .studyResults, StudyRequest(study: "s")).doc(.studyResultsOK, as: StudyResultsResponse.self)
    XCTAssertEqual(index?.results.map(\.kind).sorted(), ["heatmap", "heatmap"])
  }

  /// With one analysis thread each, analyses fill the cores training leaves free, and every
  /// stored result is what the same request answers alone: the same tensors, bit for bit, and
  /// the same doc but for its timings and work statistics (cache hits).
  func testAnalysesOnFreeCoresRunTogetherAndGiveTheSameNumbers() throws {
    var options = self.options()
    options.analysisThreads = 1
    let service = try makeService(options)
    var d = declaration()
    d.analyses = [.heatmap]
    d.snapshotEpochs = []
    _ = send(service, .studyCreate, StudyCreateRequest(study: "train-first", declaration: d)).payload(.studyCreateOK)
    XCTAssertEqual(waitForEnd(service, "train-first")?.state, .finished)
    // Every model trained: all of this study's analyses are ready at once.
    var all = declaration()
    all.snapshotEpochs = []
    _ = send(service, .studyCreate, StudyCreateRequest(study: "analyses", declaration: all)).payload(.studyCreateOK)
    guard let end = waitForEnd(service, "analyses") else { return }
    XCTAssertEqual(end.state, .finished, "\(end.errors)")
    let manager = try XCTUnwrap(service.studies)
    if KernelContext.defaultThreads >= 2 {
      XCTAssertGreaterThanOrEqual(manager.peakRunning, 2, "analyses ran one at a time on idle cores")
    }
    let study = try XCTUnwrap(manager.all().first { $0.name == "analyses" })
    let planned = study.planner.all(manager.facts(study))
    XCTAssertGreaterThan(planned.count, 10)
    func withoutTimings(_ doc: [UInt8]) throws -> NSDictionary {
      let object = try JSONSerialization.jsonObject(with: Data(doc)) as! [String: Any]
      return object.filter { $0.key != "stats" && !$0.key.contains("seconds") } as NSDictionary
    }
    for a in planned {
      let stored = try XCTUnwrap(send(service, .studyResult, StudyResultRequest(study: "analyses", key: a.key))
        .payload(.studyResultOK), a.key)
      let alone = send(service, IncomingRequest(type: a.type, requestID: 1, quiet: true,
                                                payload: Payload(doc: a.request).encoded()))
      let fresh = try XCTUnwrap(alone.payload(a.type.responseType!), a.key)
      XCTAssertEqual(stored.tensors.map(\.name), fresh.tensors.map(\.name), a.key)
      for (x, y) in zip(stored.tensors, fresh.tensors) {
        XCTAssertEqual(x.bytes, y.bytes, "\(a.key): tensor \(x.name)")
      }
      XCTAssertEqual(try withoutTimings(stored.doc), try withoutTimings(fresh.doc), a.key)
    }
  }

  /// A study that reuses models trained without its snapshot epochs cannot have their snapshot
  /// analyses: it ends `incomplete` with those errors, never `finished`.
  func testMissingSnapshotsMakeTheStudyIncomplete() throws {
    let service = try makeService()
    var first = declaration()
    first.depths = [8]
    first.seeds = [0]
    first.snapshotEpochs = []
    first.analyses = [.heatmap]
    _ = send(service, .studyCreate, StudyCreateRequest(study: "plain-run", declaration: first)).payload(.studyCreateOK)
    XCTAssertEqual(waitForEnd(service, "plain-run")?.state, .finished)
    var second = first
    second.snapshotEpochs = [1]
    _ = send(service, .studyCreate, StudyCreateRequest(study: "with-snapshots", declaration: second)).payload(.studyCreateOK)
    guard let end = waitForEnd(service, "with-snapshots") else { return }
    XCTAssertEqual(end.state, .incomplete)
    XCTAssertEqual(end.errors.map(\.key), ["snapshot_heatmap/\(end.models[0].model).e1"])
    XCTAssertTrue(end.errors[0].message.contains("was not kept"), end.errors[0].message)
    XCTAssertTrue(end.models[0].reused)
    // Declaring the same grid in another order is the same study.
    var reordered = declaration()
    reordered.depths = [14, 8]
    _ = send(service, .studyCreate, StudyCreateRequest(study: "order", declaration: declaration())).payload(.studyCreateOK)
    _ = send(service, .studyCancel, StudyRequest(study: "order")).payload(.studyCancelOK)
    XCTAssertNotNil(send(service, .studyCreate, StudyCreateRequest(study: "order", declaration: reordered))
      .payload(.studyCreateOK))
  }

  /// STUDY_RUN's and STUDY_CREATE's executor checks, before anything is written or submitted
  /// (the whole path through a real Slurm cluster is tools/test-slurm's).
  func testExecutorsThatCannotWorkAreRefusedAndLoseNothing() throws {
    var options = self.options()
    options.engineExecutable = "/nonexistent/blockscope-engine"
    let service = try makeService(options)
    var d = declaration()
    d.depths = [8]
    d.seeds = [0]
    d.analyses = [.heatmap]
    // Options a job script cannot carry, or that only Slurm takes.
    expectError(send(service, .studyCreate, StudyCreateRequest(study: "s", declaration: d,
                                                               executor: StudyExecutor(kind: .slurm, partition: "a;b"))),
                .invalidArgument, mentioning: "executor.partition")
    expectError(send(service, .studyCreate, StudyCreateRequest(study: "s", declaration: d,
                                                               executor: StudyExecutor(kind: .local, maxParallel: 2))),
                .invalidArgument, mentioning: "executor.max_parallel")
    XCTAssertEqual(send(service, .studyList, EmptyDoc()).doc(.studyListOK, as: StudyListResponse.self)?.studies.count, 0)
    // A declared study whose array cannot be submitted (no engine): declared, nothing lost,
    // the error says how to continue; it trains nothing locally meanwhile.
    expectError(send(service, .studyCreate, StudyCreateRequest(study: "s", declaration: d,
                                                               executor: StudyExecutor(kind: .slurm))),
                .executorFailed, mentioning: "STUDY_RUN")
    let st = try XCTUnwrap(status(service, "s"))
    XCTAssertEqual(st.executor, .slurm)
    XCTAssertEqual(st.models.map(\.state), [.failed])
    XCTAssertEqual(st.state, .incomplete, "nothing runs until the array is submitted")
    XCTAssertTrue(st.models[0].error?.contains("not submitted") ?? false, "\(st.models)")
    Thread.sleep(forTimeInterval: 0.5)
    XCTAssertEqual(send(service, .jobs, EmptyDoc()).doc(.jobsOK, as: JobsResponse.self)?.jobs.count, 0)
    expectError(send(service, .studyRun, StudyRunRequest(study: "s", executor: StudyExecutor(kind: .slurm))),
                .executorFailed, mentioning: "/nonexistent/blockscope-engine")
    expectError(send(service, .studyRun, StudyRunRequest(study: "nope", executor: StudyExecutor(kind: .local))),
                .notFound)
    // Back to the local executor: the daemon trains it.
    let local = try XCTUnwrap(send(service, .studyRun, StudyRunRequest(study: "s", executor: .local))
      .doc(.studyRunOK, as: StudyStatusResponse.self))
    XCTAssertEqual(local.executor, .local)
    XCTAssertNil(local.slurmScript)
    let end = try XCTUnwrap(waitForEnd(service, "s"))
    XCTAssertEqual(end.state, .finished, "\(end.errors)")
  }
}
