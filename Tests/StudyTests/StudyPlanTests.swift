import Foundation
import XCTest
@testable import Study
import Wire

final class StudyPlanTests: XCTestCase {
  private func declaration() -> StudyDeclaration {
    var d = StudyDeclaration(dataset: "synthetic", depths: [8, 14])
    d.widths = [1, 2]
    d.seeds = [0, 1, 2]
    d.plainWidths = [1]
    d.epochs = 3
    d.snapshotEpochs = [1]
    return d
  }

  func testPerModelAndCrossModelAnalyses() throws {
    let planner = StudyPlanner(declaration: declaration(), classes: 10)
    let m = planner.models[0]
    let own = planner.perModel(m)
    XCTAssertEqual(own.map(\.kind), ["heatmap", "pc", "heatmap_no_pc1", "probe", "deletion",
                                     "snapshot_heatmap", "snapshot_pc"])
    XCTAssertTrue(own.allSatisfy { $0.owner == m.name })
    XCTAssertEqual(own[5].models, [m.name + ".e1"])
    // The requests are the protocol's own, decodable as such.
    let heatmap = try Payload(doc: own[2].request).decode(HeatmapRequest.self)
    XCTAssertTrue(heatmap.removePC1)
    let probe = try Payload(doc: own[3].request).decode(ProbeRequest.self)
    XCTAssertEqual(probe.layers?.count, 2 * 3 * m.point.blocksPerStage)
    XCTAssertEqual(probe.layers?.first, "s1.b1.bn2")
    XCTAssertEqual(probe.layers?[1], m.point.plain ? "s1.b1.out" : "s1.b1.add")

    let cross = planner.crossModel()
    let seeds = cross.filter { $0.kind == "cross_seed" }
    // 6 architecture groups (2 depths x (2 widths + 1 plain)), first seed against 2 others.
    XCTAssertEqual(seeds.count, 6 * 2)
    let arch = cross.filter { $0.kind == "cross_architecture" }
    // depth neighbours: 3 pairs; width neighbours: 2; plain vs residual at width 1: 2.
    XCTAssertEqual(arch.count, 7)
    XCTAssertEqual(Set(arch.compactMap(\.axis)), ["depth", "width", "plain"])
    XCTAssertEqual(Set(cross.map(\.key)).count, cross.count, "keys are unique")
  }

  func testPopulationsNeedEverySeedAndSimilarAccuracy() {
    var d = declaration()
    d.plainWidths = []
    d.widths = [1]
    d.similarAccuracy = 0.02
    let planner = StudyPlanner(declaration: d, classes: 10)
    var facts: [String: ModelFacts] = [:]
    XCTAssertTrue(planner.populations(facts).isEmpty)
    for m in planner.models {
      facts[m.name] = ModelFacts(trained: true, testAccuracy: m.point.depth == 8 ? 0.80 : 0.81)
    }
    let p = planner.populations(facts)
    XCTAssertEqual(p.map(\.kind), ["population", "population_null"])
    XCTAssertEqual(p[0].groups, ["R8 k1 f1", "R14 k1 f1"])
    XCTAssertEqual(p[1].groups, ["R14 k1 f1 (seeds A)", "R14 k1 f1 (seeds B)"], "the deeper group's null")
    // Not similar enough: nothing compared.
    for m in planner.models where m.point.depth == 14 { facts[m.name]?.testAccuracy = 0.9 }
    XCTAssertTrue(planner.populations(facts).isEmpty)
    // Near chance: never compared.
    for m in planner.models { facts[m.name]?.testAccuracy = 0.11 }
    XCTAssertTrue(planner.isNearChance(0.11))
    XCTAssertTrue(planner.populations(facts).isEmpty)
    // One seed untrained: not yet.
    for m in planner.models { facts[m.name]?.testAccuracy = 0.8 }
    facts[planner.models.last!.name]?.trained = false
    XCTAssertTrue(planner.populations(facts).isEmpty)
  }

  func testAnalysesCanBeLeftOut() {
    var d = declaration()
    d.analyses = [.heatmap]
    let planner = StudyPlanner(declaration: d, classes: 10)
    let all = planner.all([:])
    XCTAssertEqual(Set(all.map(\.kind)), ["heatmap", "snapshot_heatmap"])
  }
}
