// SPEC.md section 7: CKA (0x0011), CKA of client-supplied matrices.

/// `CKA`'s doc. Its tensors: `x: f32|f64[n, p]` and `y: f32|f64[n, q]`, examples in rows,
/// the same n >= 4.
public struct CKARequest: Codable, Hashable, Sendable {
  public static let xTensor = "x"
  public static let yTensor = "y"

  public enum Estimator: String, WireStringEnum {
    case linear, debiased, rbf
  }

  public var estimators: [Estimator]
  public var rbfThreshold: Double

  /// The spec's defaults.
  public init(estimators: [Estimator] = [.linear, .debiased, .rbf], rbfThreshold: Double = 0.5) {
    self.estimators = estimators
    self.rbfThreshold = rbfThreshold
  }

  enum CodingKeys: String, CodingKey { case estimators, rbfThreshold = "rbf_threshold" }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init()
    estimators = try c.value(.estimators, default: estimators)
    rbfThreshold = try c.value(.rbfThreshold, default: rbfThreshold)
  }
}

/// `CKA_OK`: `n`, and per requested estimator a number, or null with `reasons.<estimator>`
/// saying why (`{"n": 5, "linear": 0.75, "rbf": null, "reasons": {"rbf": "..."}}`).
public struct CKAResponse: Codable, Hashable, Sendable {
  public var n: Int
  /// The defined estimates.
  public var values: [CKARequest.Estimator: Double]
  /// The undefined estimates (sent as null) and why; "" when the sender gave no reason.
  public var undefined: [CKARequest.Estimator: String]

  public init(n: Int, values: [CKARequest.Estimator: Double],
              undefined: [CKARequest.Estimator: String] = [:]) {
    self.n = n
    self.values = values
    self.undefined = undefined
  }

  /// The estimate, nil when it is undefined or was not requested.
  public func value(_ estimator: CKARequest.Estimator) -> Double? { values[estimator] }

  private static let nKey = AnyKey("n")
  private static let reasonsKey = AnyKey("reasons")

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: AnyKey.self)
    let reasons: [String: String] = try c.value(Self.reasonsKey, default: [:])
    var values: [CKARequest.Estimator: Double] = [:]
    var undefined: [CKARequest.Estimator: String] = [:]
    for estimator in CKARequest.Estimator.allCases {
      let key = AnyKey(estimator.rawValue)
      guard c.contains(key) else { continue }
      if try c.decodeNil(forKey: key) {
        undefined[estimator] = reasons[estimator.rawValue] ?? ""
      } else {
        values[estimator] = try c.value(key)
      }
    }
    self.init(n: try c.value(Self.nKey), values: values, undefined: undefined)
  }

  public func encode(to encoder: Encoder) throws {
    var c = encoder.container(keyedBy: AnyKey.self)
    try c.encode(n, forKey: Self.nKey)
    for (estimator, value) in values {
      try c.encode(value, forKey: AnyKey(estimator.rawValue))
    }
    var reasons: [String: String] = [:]
    for (estimator, reason) in undefined where values[estimator] == nil {
      try c.encodeNil(forKey: AnyKey(estimator.rawValue))
      if !reason.isEmpty { reasons[estimator.rawValue] = reason }
    }
    if !reasons.isEmpty {
      try c.encode(reasons, forKey: Self.reasonsKey)
    }
  }
}
