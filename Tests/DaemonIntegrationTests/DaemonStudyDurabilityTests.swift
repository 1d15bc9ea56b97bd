import DaemonTestSupport
import Foundation
import Glibc
import Wire
import XCTest

/// A study survives kill -9 of the built blockscoped in the middle of training and in the middle
/// of an analysis: after each restart the study continues, and at the end no model was trained
/// twice and every stored result reads back whole (SPEC section 8).
final class DaemonStudyDurabilityTests: DaemonProcessTestCase {
  private func status(_ client: WireTestClient) throws -> StudyStatusResponse {
    try call(client, .studyStatus, StudyRequest(study: "durable"), as: StudyStatusResponse.self)
  }

  /// Polls the study until `condition` holds; the status then.
  private func waitFor(_ client: WireTestClient, timeout: Double = 120, poll: Double = 0.02,
                       _ what: String, _ condition: (StudyStatusResponse) -> Bool) throws -> StudyStatusResponse {
    let deadline = Date().addingTimeInterval(scaledTimeout(timeout))
    while Date() < deadline {
      let s = try status(client)
      if condition(s) { return s }
      Thread.sleep(forTimeInterval: poll)
    }
    throw WireTestFailure("timed out waiting for \(what): \(try status(client))")
  }

  func testKillDuringTrainingAndDuringAnalysisLosesNothing() throws {
    var d = StudyDeclaration(dataset: "synthetic", depths: [8])
    d.widths = [0.5]
    d.fractions = [0.2]
    d.seeds = [0, 1]
    d.epochs = 3
    d.testExamples = 200
    d.analyses = [.heatmap, .crossSeed]
    // Many passes: an analysis long enough to be killed in the middle of.
    d.heatmapExamples = 512
    d.heatmapBatch = 128
    d.heatmapPasses = 30

    var daemon = try start()
    var client = try daemon.client()
    _ = try call(client, .studyCreate, StudyCreateRequest(study: "durable", declaration: d), as: StudyStatusResponse.self)
    _ = try waitFor(client, "a model in its second epoch") { s in
      s.models.contains { $0.state == .training && $0.epoch >= 1 }
    }
    daemon.signal(SIGKILL)
    XCTAssertEqual(daemon.waitForExit(timeout: 10), SIGKILL)

    // Restarted: the study goes on by itself (its interrupted job resumes); kill it again while
    // it computes a heatmap.
    daemon = try start(directory: daemon.directory)
    client = try daemon.client()
    let analysing = try waitFor(client, timeout: 180, poll: 0.01, "an analysis running") { $0.analysing != nil }
    daemon.signal(SIGKILL)
    XCTAssertEqual(daemon.waitForExit(timeout: 10), SIGKILL)
    let killedKey = try XCTUnwrap(analysing.analysing)

    daemon = try start(directory: daemon.directory)
    client = try daemon.client()
    _ = try call(client, .studyResume, StudyRequest(study: "durable"), as: StudyStatusResponse.self)
    let end = try waitFor(client, timeout: 300, poll: 0.2, "the end") { $0.state != .running }
    XCTAssertEqual(end.state, .finished, "\(end.errors)")

    // No model trained twice: one job per model, each resumed under its own id.
    let jobs = try call(client, .jobs, as: JobsResponse.self).jobs
    XCTAssertEqual(jobs.count, 2, "\(jobs)")
    XCTAssertEqual(Set(jobs.map(\.model)), Set(end.models.map(\.model)))
    XCTAssertTrue(jobs.allSatisfy { $0.state == .finished && $0.epoch == 3 })
    for m in end.models {
      let described = try call(client, .describe, ModelRequest(model: m.model), as: DescribeResponse.self)
      XCTAssertEqual(described.history.map(\.epoch), [1, 2, 3], m.model)
    }
    // Every result reads back whole, the killed one included; no temporary file is left.
    let index = try call(client, .studyResults, StudyRequest(study: "durable"), as: StudyResultsResponse.self)
    XCTAssertEqual(index.results.map(\.kind).sorted(), ["cross_seed", "heatmap", "heatmap"])
    XCTAssertTrue(index.results.contains { $0.key == killedKey })
    for r in index.results {
      let heatmap = try call(client, .studyResult, StudyResultRequest(study: "durable", key: r.key), as: HeatmapResponse.self)
      XCTAssertEqual(heatmap.provenance.passes, 30, r.key)
    }
    let results = daemon.storePath + "/studies/durable/results"
    let files = FileManager.default.enumerator(atPath: results)?.allObjects as? [String] ?? []
    XCTAssertEqual(files.filter { $0.hasSuffix(".bsr") }.count, 3)
    XCTAssertTrue(files.allSatisfy { !$0.contains(".tmp-") }, "\(files)")
  }
}
