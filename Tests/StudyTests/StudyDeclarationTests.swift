import Foundation
import XCTest
@testable import Study
import Wire

final class StudyDeclarationTests: XCTestCase {
  private func decode(_ json: String) throws -> StudyDeclaration {
    try Payload(doc: Array(json.utf8)).decode(StudyDeclaration.self)
  }

  private func problem(_ d: StudyDeclaration) -> StudyValidationError? {
    do {
      try d.validate()
      return nil
    } catch {
      return error
    }
  }

  func testDefaultsAndRoundTrip() throws {
    let d = try decode(#"{"dataset":"cifar10","depths":[14,20]}"#)
    XCTAssertEqual(d.widths, [1])
    XCTAssertEqual(d.fractions, [1])
    XCTAssertEqual(d.seeds, [0])
    XCTAssertEqual(d.analyses, StudyDeclaration.AnalysisKind.allCases)
    XCTAssertNil(problem(d))
    let again = try Payload(doc: try Payload.encode(d).doc).decode(StudyDeclaration.self)
    XCTAssertEqual(again, d)
  }

  func testEveryKeyIsKnownAndAnUnknownOneIsRefused() throws {
    let d = try decode(#"{"dataset":"cifar10","depths":[14],"depht":[20]}"#)
    XCTAssertEqual(d.unknownKeys, ["depht"])
    XCTAssertEqual(problem(d)?.field, "depht")
    // Every key the encoder writes is one the decoder knows.
    let object = try JSONSerialization.jsonObject(with: Data(try Payload.encode(StudyPresets.paper).doc)) as! [String: Any]
    XCTAssertEqual(Set(object.keys).subtracting(StudyDeclaration.keys), [])
  }

  func testInvalidGridsNameTheirField() {
    func field(_ change: (inout StudyDeclaration) -> Void) -> String? {
      var d = StudyDeclaration(dataset: "cifar10", depths: [14])
      change(&d)
      return problem(d)?.field
    }
    XCTAssertEqual(field { $0.depths = [15] }, "depths")
    XCTAssertEqual(field { $0.depths = [] }, "depths")
    XCTAssertEqual(field { $0.depths = [14, 14] }, "depths")
    XCTAssertEqual(field { $0.widths = [0] }, "widths")
    XCTAssertEqual(field { $0.fractions = [1.5] }, "fractions")
    XCTAssertEqual(field { $0.fractions = [0] }, "fractions")
    XCTAssertEqual(field { $0.seeds = [] }, "seeds")
    XCTAssertEqual(field { $0.plainWidths = [-1] }, "plain_widths")
    XCTAssertEqual(field { $0.epochs = 0 }, "epochs")
    XCTAssertEqual(field { $0.snapshotEpochs = [30] }, "snapshot_epochs")
    XCTAssertEqual(field { $0.analyses = [] }, "analyses")
    XCTAssertEqual(field { $0.heatmapExamples = 10 }, "heatmap_examples")
    XCTAssertEqual(field { $0.dataset = "" }, "dataset")
    XCTAssertEqual(field { $0.lr = -1 }, "lr")
    XCTAssertNil(field { _ in })
    XCTAssertNil(problem(StudyPresets.demo))
    XCTAssertNil(problem(StudyPresets.paper))
  }

  func testGridExpansionAndContentAddressedNames() {
    var d = StudyDeclaration(dataset: "fashion-mnist", depths: [14, 44])
    d.widths = [1, 2]
    d.fractions = [1, 0.03]
    d.seeds = [0, 1]
    d.plainWidths = [1]
    let models = d.models()
    XCTAssertEqual(models.count, d.modelCount)
    XCTAssertEqual(models.count, 2 * 3 * 2 * 2)
    XCTAssertEqual(Set(models.map(\.name)).count, models.count, "names are unique")
    XCTAssertTrue(models.allSatisfy { ModelRequest.isValidName($0.name) })
    // Seed 0 of the whole grid first, cheapest first within it.
    XCTAssertTrue(models.prefix(12).allSatisfy { $0.point.seed == 0 })
    XCTAssertEqual(models.first?.point.depth, 14)
    XCTAssertEqual(models.first?.point.fraction, 0.03)
    // The same recipe from another declaration has the same name; any change of the weights'
    // recipe changes it; threads and snapshots do not.
    var other = d
    other.depths = [44]
    other.snapshotEpochs = [1]
    let shared = Set(other.models().map(\.name))
    XCTAssertEqual(shared.subtracting(models.map(\.name)), [])
    var r = models[0].recipe
    let name = RecipeName.name(of: r)
    r.threads = 2
    r.snapshotEpochs = [3]
    XCTAssertEqual(RecipeName.name(of: r), name)
    for change in [{ (r: inout TrainRequest) in r.lr = 0.1 }, { $0.epochs += 1 }, { $0.seed += 1 },
                   { $0.testExamples = 100 }, { $0.augment.toggle() }, { $0.weightDecay = 0 }] {
      var changed = models[0].recipe
      change(&changed)
      XCTAssertNotEqual(RecipeName.name(of: changed), name)
    }
    XCTAssertTrue(name.hasPrefix("r14-k1-fashion-mnist-f0.03-s0-e30-"), name)
  }

  func testListSyntax() throws {
    XCTAssertEqual(try ListSyntax.integers("14,20,56"), [14, 20, 56])
    XCTAssertEqual(try ListSyntax.integers("0-2,7"), [0, 1, 2, 7])
    XCTAssertEqual(try ListSyntax.unsigned("0-4"), [0, 1, 2, 3, 4])
    XCTAssertEqual(try ListSyntax.numbers("1, 0.25,0.06"), [1, 0.25, 0.06])
    XCTAssertThrowsError(try ListSyntax.integers("3-1"))
    XCTAssertThrowsError(try ListSyntax.integers("1,,2"))
    XCTAssertThrowsError(try ListSyntax.numbers("x"))
    XCTAssertThrowsError(try ListSyntax.unsigned("-3"))
  }
}
