import ArgumentParser
import Foundation
import Wire

/// A model name argument.
struct ModelArgument: ParsableArguments {
  @Argument(help: "A stored model's name (see 'blockscope models').")
  var model: String

  func validate() throws {
    try validateModelName(model, what: "model")
  }
}

func validateModelName(_ name: String, what: String) throws {
  if !ModelRequest.isValidName(name) {
    throw ValidationError("\(what) '\(name)' is not a model name: 1 to 64 of A-Z a-z 0-9 . _ -, not starting with '.'")
  }
}

/// One `MODELS` entry read leniently: the spec makes the recipe keys optional (a corrupt
/// checkpoint may not tell them), so the listing does not require them.
struct ModelListing: Decodable {
  var model: String
  var state: String
  var error: String?
  var depth: Int?
  var width: Double?
  var plain: Bool?
  var dataset: String?
  var fraction: Double?
  var seed: UInt64?
  var epoch: Int?
  var epochs: Int?
  var testAccuracy: Double?
  var bytes: Int?
  var modified: String?

  enum CodingKeys: String, CodingKey {
    case model, state, error, depth, width, plain, dataset, fraction, seed, epoch, epochs,
         testAccuracy = "test_accuracy", bytes, modified
  }

  struct List: Decodable { var models: [ModelListing] }
}

struct ModelsCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "models", abstract: "List the stored models (corrupt checkpoints with their error).")

  @OptionGroup var global: GlobalOptions

  func run() throws {
    try global.withDaemon { client in
      let response = try client.request(.models, ModelsRequest())
      if global.json { return try JSONOutput.print(response.jsonOutput()) }
      let models = try response.decode(ModelListing.List.self).models
      if models.isEmpty {
        print("no models")
        return
      }
      var table = TextTable(["MODEL", "STATE", "DEPTH", "WIDTH", "DATASET", "FRACTION", "SEED", "EPOCH",
                             "TEST ACC", "SIZE", "MODIFIED"], rightAligned: [2, 3, 5, 6, 7, 8, 9])
      for m in models {
        let depth = m.depth.map { "\($0)" + (m.plain == true ? " plain" : "") } ?? "-"
        let epoch = m.epoch.map { e in "\(e)" + (m.epochs.map { "/\($0)" } ?? "") } ?? "-"
        table.add([m.model, m.state, depth, m.width.map { Format.exact($0) } ?? "-", m.dataset ?? "-",
                   m.fraction.map { Format.exact($0) } ?? "-", m.seed.map { "\($0)" } ?? "-", epoch,
                   Format.percent(m.testAccuracy), m.bytes.map(Format.bytes) ?? "-", m.modified ?? "-"])
      }
      print(table.render())
      for m in models where m.error != nil {
        print("\(m.model): \(m.error!)")
      }
    }
  }
}

struct DescribeCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "describe", abstract: "Show a model's recipe, training history, representations and blocks.")

  @OptionGroup var global: GlobalOptions
  @OptionGroup var model: ModelArgument

  func run() throws {
    try global.withDaemon { client in
      let response = try client.request(.describe, DescribeRequest(model: model.model))
      if global.json { return try JSONOutput.print(response.jsonOutput()) }
      let d = try response.decode(DescribeResponse.self)
      let e = d.entry
      // The recipe keys of a MODELS entry are optional in the spec (a corrupt file may not
      // tell them); `shown` accepts both optional and plain values.
      print("\(e.model): \(e.state.rawValue), ResNet-\(shown(e.depth))\(e.plain == true ? " (plain)" : "") "
            + "width \(shown(e.width)), \(d.parameters) parameters, fingerprint \(shown(e.fingerprint))")
      print("trained on \(shown(e.dataset)) (fraction \(shown(e.fraction)), seed \(shown(e.seed))) for "
            + "\(shown(e.epoch))/\(shown(e.epochs)) epochs; test accuracy \(Format.percent(e.testAccuracy)); "
            + "\(Format.bytes(e.bytes)), modified \(e.modified)")
      let r = d.recipe
      print("recipe: batch \(r.batchSize), lr \(Format.exact(r.lr)), weight decay \(Format.exact(r.weightDecay)), "
            + "warm-up \(r.warmupEpochs), augment \(r.augment ? "yes" : "no"), stratified \(r.stratified ? "yes" : "no")"
            + (r.testExamples.map { ", test examples \($0)" } ?? ""))
      if !d.history.isEmpty {
        print("")
        var table = TextTable(["EPOCH", "TRAIN LOSS", "TRAIN ACC", "TEST LOSS", "TEST ACC", "LR", "SECONDS"],
                              rightAligned: Set(0..<7))
        for h in d.history {
          table.add(["\(h.epoch)", Format.number(h.trainLoss), Format.percent(h.trainAccuracy),
                     Format.number(h.testLoss), Format.percent(h.testAccuracy), Format.number(h.lr, digits: 5),
                     Format.number(h.seconds, digits: 1)])
        }
        print(table.render())
      }
      print("")
      print("blocks: " + d.blocks.map { $0.name + ($0.projection ? " (projection)" : "") }.joined(separator: ", "))
      print("")
      var table = TextTable(["REPRESENTATION", "KIND", "BLOCK", "SHAPE"])
      for rep in d.representations {
        table.add([rep.name, rep.kind, rep.block ?? "-", "\(rep.channels)x\(rep.height)x\(rep.width)"])
      }
      print(table.render())
    }
  }
}

struct DeleteCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "delete", abstract: "Delete a stored model (and its cached Grams).")

  @OptionGroup var global: GlobalOptions
  @OptionGroup var model: ModelArgument

  func run() throws {
    try global.withDaemon { client in
      let response = try client.request(.deleteModel, DeleteModelRequest(model: model.model))
      if global.json { return try JSONOutput.print(response.jsonOutput()) }
      let d = try response.decode(DeleteModelResponse.self)
      print("deleted \(d.model) (\(Format.bytes(d.bytesFreed)) freed)")
    }
  }
}

/// A value as text, `-` when absent.
func shown<T>(_ value: T?) -> String {
  guard let value else { return "-" }
  if let double = value as? Double { return Format.exact(double) }
  return "\(value)"
}
