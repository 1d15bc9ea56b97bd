import ArgumentParser
import Foundation
import Wire

extension CKARequest.Estimator: ExpressibleByArgument {}

struct CKACommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "cka",
    abstract: "CKA between two matrices stored as .npy files (examples in rows, the same number of rows).",
    discussion: """
      The files hold float64 or float32 (int32, uint8, float16 and bfloat16 are sent as float64) arrays in \
      C order, as numpy.save writes them. The first axis is the examples; more axes are flattened per \
      example in C order ([n, c, h, w] -> [n, c*h*w]), so what `blockscope export` writes can be given \
      as it is; a 1-D array is one feature per example.
      """)

  @OptionGroup var global: GlobalOptions
  @Argument(help: ArgumentHelp("The first matrix, [n, p].", valueName: "X.npy"))
  var x: String
  @Argument(help: ArgumentHelp("The second matrix, [n, q].", valueName: "Y.npy"))
  var y: String
  @Option(help: ArgumentHelp("Estimators, comma separated: linear, debiased, rbf (default all three).", valueName: "list"))
  var estimators: String?
  @Option(name: .customLong("rbf-threshold"), help: "RBF bandwidth as a fraction of the median distance.")
  var rbfThreshold = 0.5

  var estimatorList: [CKARequest.Estimator]? {
    get throws {
      guard let estimators else { return nil }
      return try commaList(estimators).map { name in
        guard let estimator = CKARequest.Estimator(rawValue: name) else {
          throw ValidationError("--estimators: '\(name)' is not one of linear, debiased, rbf")
        }
        return estimator
      }
    }
  }

  func validate() throws {
    if let list = try estimatorList, list.isEmpty { throw ValidationError("--estimators names no estimator") }
    if !(rbfThreshold > 0) { throw ValidationError("--rbf-threshold must be positive") }
  }

  /// A .npy file as the matrix tensor `name`: [n, features], more axes flattened per example
  /// (C order, as EXPORT's [n, c, h, w]); f32 and f64 as they are, other dtypes widened to f64.
  static func matrix(_ path: String, name: String) throws -> WireTensor {
    let array = try Npy.read(path)
    guard let n = array.shape.first else {
      throw OutputError("\(path): a 0-D array (a scalar); cka needs examples along the first axis")
    }
    let features = array.shape.dropFirst().reduce(1, *)
    let shape = [n, features]
    switch array.dtype {
    case .f32, .f64:
      let t = array.tensor(named: name)
      return WireTensor(name: name, dtype: t.dtype, shape: shape, bytes: t.bytes)
    case .i32, .u8, .f16, .bf16: return WireTensor(name: name, doubles: array.doubles, shape: shape)
    }
  }

  func run() throws {
    let tensors: [WireTensor]
    do {
      tensors = [try Self.matrix(x, name: CKARequest.xTensor), try Self.matrix(y, name: CKARequest.yTensor)]
    } catch let error as OutputError {
      printError("blockscope: \(error)")
      throw ExitStatus.failure
    }
    guard tensors[0].shape[0] == tensors[1].shape[0] else {
      printError("blockscope: \(x) has \(tensors[0].shape[0]) rows and \(y) \(tensors[1].shape[0]); CKA needs the same examples in both")
      throw ExitStatus.failure
    }
    var request = CKARequest(rbfThreshold: rbfThreshold)
    if let list = try estimatorList { request.estimators = list }
    try global.withDaemon { client in
      let response = try client.request(.cka, request, tensors: tensors)
      if global.json { return try JSONOutput.print(response.jsonOutput()) }
      let doc = try response.decode(CKAResponse.self)
      print("n = \(doc.n)  (\(x): \(tensors[0].dtype.rawValue)\(tensors[0].shape), \(y): \(tensors[1].dtype.rawValue)\(tensors[1].shape))")
      for estimator in request.estimators {
        if let value = doc.value(estimator) {
          print("\(estimator.rawValue)  \(Format.number(value, digits: 6))")
        } else if let reason = doc.undefined[estimator] {
          print("\(estimator.rawValue)  undefined" + (reason.isEmpty ? "" : " (\(reason))"))
        }
      }
    }
  }
}

struct ExportCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "export",
    abstract: "Write the activations of some examples at one representation to a .npy file (float32 [n, c, h, w]).")

  @OptionGroup var global: GlobalOptions
  @OptionGroup var model: ModelArgument
  @Argument(help: ArgumentHelp("The representation (see 'blockscope describe MODEL').", valueName: "rep"))
  var representation: String
  @Option(help: ArgumentHelp("The first N examples of the split.", valueName: "n"))
  var count: Int?
  @Option(help: ArgumentHelp("Explicit example indices, comma separated.", valueName: "ids"))
  var ids: String?
  @Option(help: "Dataset split.")
  var split: ExampleSelection.Split = .test
  @Option(help: ArgumentHelp("Where to write the activations.", valueName: "file.npy"))
  var out: String
  @Option(name: .customLong("labels-out"), help: ArgumentHelp("Also write the labels (int32 [n]) here.", valueName: "file.npy"))
  var labelsOut: String?
  @Option(name: .customLong("ids-out"), help: ArgumentHelp("Also write the example indices (int32 [n]) here.", valueName: "file.npy"))
  var idsOut: String?

  var idList: [Int]? {
    get throws {
      guard let ids else { return nil }
      return try commaList(ids).map { item in
        guard let id = Int(item), id >= 0 else { throw ValidationError("--ids: '\(item)' is not an example index") }
        return id
      }
    }
  }

  func validate() throws {
    if representation.isEmpty { throw ValidationError("the representation must not be empty") }
    let list = try idList
    switch (count, list) {
    case (nil, nil): throw ValidationError("give --count N or --ids I,J,...")
    case (.some, .some): throw ValidationError("give either --count or --ids, not both")
    case (let count?, nil):
      if !(1...ExportRequest.maxExamples).contains(count) {
        throw ValidationError("--count must be in 1...\(ExportRequest.maxExamples)")
      }
    case (nil, let ids?):
      if ids.isEmpty { throw ValidationError("--ids names no example") }
      if ids.count > ExportRequest.maxExamples { throw ValidationError("--ids: at most \(ExportRequest.maxExamples) examples") }
    }
    if out.isEmpty { throw ValidationError("--out must not be empty") }
  }

  func run() throws {
    let examples = ExampleSelection(split: split, count: count, ids: try idList)
    let request = ExportRequest(model: model.model, representation: representation, examples: examples)
    try global.withDaemon { client in
      let response = try client.request(.export, request)
      let activations = try response.requiredTensor(ExportResponse.activationsTensor)
      var files = [ExportResponse.activationsTensor: out]
      try Npy.write(NpyArray(activations), to: out)
      if let labelsOut, let labels = response.tensor(ExportResponse.labelsTensor) {
        try Npy.write(NpyArray(labels), to: labelsOut)
        files[ExportResponse.labelsTensor] = labelsOut
      }
      if let idsOut, let exampleIDs = response.tensor(ExportResponse.exampleIDsTensor) {
        try Npy.write(NpyArray(exampleIDs), to: idsOut)
        files[ExportResponse.exampleIDsTensor] = idsOut
      }
      if global.json { return try JSONOutput.print(response.jsonOutput(files: files)) }
      let doc = try response.decode(ExportResponse.self)
      print("wrote \(out): \(doc.representation) of \(model.model), \(activations.dtype.rawValue)\(activations.shape) (\(doc.layout))")
      if let path = files[ExportResponse.labelsTensor] { print("wrote \(path): labels") }
      if let path = files[ExportResponse.exampleIDsTensor] { print("wrote \(path): example indices") }
    }
  }
}
