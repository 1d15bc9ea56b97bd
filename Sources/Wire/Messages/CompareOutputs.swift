// SPEC.md section 7: COMPARE_OUTPUTS (0x0010), output comparison across populations of models.

/// `COMPARE_OUTPUTS`: per-example and per-class accuracies of groups of models, compared
/// pairwise, with the same comparison between two halves of one group as the null.
public struct CompareOutputsRequest: Codable, Hashable, Sendable {
  /// The per-example test.
  public enum Test: String, WireStringEnum {
    case fisher
    case twoProportion = "two_proportion"
  }

  /// A named group of models (at least 2 for the null comparison).
  public struct Group: Codable, Hashable, Sendable {
    public var name: String
    public var models: [String]

    public init(name: String, models: [String]) {
      self.name = name
      self.models = models
    }

    enum CodingKeys: String, CodingKey { case name, models }

    public init(from decoder: Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      self.init(name: try c.value(.name), models: try c.value(.models))
    }
  }

  /// Two group names, sent as the array `[a, b]`.
  public struct Pair: Codable, Hashable, Sendable {
    public var a: String
    public var b: String

    public init(_ a: String, _ b: String) {
      self.a = a
      self.b = b
    }

    public init(from decoder: Decoder) throws {
      var c = try decoder.unkeyedContainer()
      guard c.count == 2 else {
        throw DecodingError.dataCorrupted(DecodingError.Context(
          codingPath: c.codingPath, debugDescription: "a pair is an array of two group names"))
      }
      a = try c.decode(String.self)
      b = try c.decode(String.self)
    }

    public func encode(to encoder: Encoder) throws {
      var c = encoder.unkeyedContainer()
      try c.encode(a)
      try c.encode(b)
    }
  }

  public var groups: [Group]
  /// nil: every pair of groups.
  public var pairs: [Pair]?
  public var examples: ExampleSelection
  public var test: Test
  public var alpha: Double
  /// Include per-example p-values and accuracies.
  public var perExample: Bool
  public var nullSeed: UInt64

  /// The spec's defaults.
  public init(groups: [Group], pairs: [Pair]? = nil,
              examples: ExampleSelection = ExampleSelection(split: .test),
              test: Test = .fisher, alpha: Double = 0.05, perExample: Bool = false,
              nullSeed: UInt64 = 0) {
    self.groups = groups
    self.pairs = pairs
    self.examples = examples
    self.test = test
    self.alpha = alpha
    self.perExample = perExample
    self.nullSeed = nullSeed
  }

  enum CodingKeys: String, CodingKey {
    case groups, pairs, examples, test, alpha, perExample = "per_example", nullSeed = "null_seed"
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(groups: try c.value(.groups))
    pairs = try c.ifPresent(.pairs)
    examples = try c.value(.examples, default: examples)
    test = try c.value(.test, default: test)
    alpha = try c.value(.alpha, default: alpha)
    perExample = try c.value(.perExample, default: perExample)
    nullSeed = try c.value(.nullSeed, default: nullSeed)
  }
}

/// `COMPARE_OUTPUTS_OK`.
public struct CompareOutputsResponse: Codable, Hashable, Sendable {
  /// A group's accuracies.
  public struct Group: Codable, Hashable, Sendable {
    public struct ClassAccuracy: Codable, Hashable, Sendable {
      /// The class label (key `class`).
      public var classIndex: Int
      public var examples: Int
      public var meanAccuracy: Double
      public var modelAccuracies: [Double]

      public init(classIndex: Int, examples: Int, meanAccuracy: Double, modelAccuracies: [Double]) {
        self.classIndex = classIndex
        self.examples = examples
        self.meanAccuracy = meanAccuracy
        self.modelAccuracies = modelAccuracies
      }

      enum CodingKeys: String, CodingKey {
        case classIndex = "class", examples, meanAccuracy = "mean_accuracy",
             modelAccuracies = "model_accuracies"
      }

      public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(classIndex: try c.value(.classIndex), examples: try c.value(.examples),
                  meanAccuracy: try c.value(.meanAccuracy),
                  modelAccuracies: try c.value(.modelAccuracies))
      }
    }

    public var group: String
    public var models: [String]
    public var modelAccuracies: [Double]
    public var meanAccuracy: Double
    public var classes: [ClassAccuracy]
    /// With `per_example`: per example, the fraction of the group's models right.
    public var exampleAccuracies: [Double]?

    public init(group: String, models: [String], modelAccuracies: [Double], meanAccuracy: Double,
                classes: [ClassAccuracy], exampleAccuracies: [Double]? = nil) {
      self.group = group
      self.models = models
      self.modelAccuracies = modelAccuracies
      self.meanAccuracy = meanAccuracy
      self.classes = classes
      self.exampleAccuracies = exampleAccuracies
    }

    enum CodingKeys: String, CodingKey {
      case group, models, modelAccuracies = "model_accuracies", meanAccuracy = "mean_accuracy",
           classes, exampleAccuracies = "example_accuracies"
    }

    public init(from decoder: Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      self.init(group: try c.value(.group), models: try c.value(.models),
                modelAccuracies: try c.value(.modelAccuracies),
                meanAccuracy: try c.value(.meanAccuracy), classes: try c.value(.classes),
                exampleAccuracies: try c.ifPresent(.exampleAccuracies))
    }
  }

  /// Group A against group B (or, for a null, one group's two halves).
  public struct Comparison: Codable, Hashable, Sendable {
    /// The per-example tests.
    public struct ExampleTests: Codable, Hashable, Sendable {
      public var test: CompareOutputsRequest.Test
      public var alpha: Double
      public var count: Int
      /// Examples whose adjusted p-value is below alpha.
      public var significant: Int
      public var significantFraction: Double
      public var favoringA: Int
      public var favoringB: Int
      /// Examples where the test is undefined (all right or all wrong in both groups).
      public var undefined: Int
      public var pValues: [Double]?
      public var adjustedPValues: [Double]?

      public init(test: CompareOutputsRequest.Test, alpha: Double, count: Int, significant: Int,
                  significantFraction: Double, favoringA: Int, favoringB: Int, undefined: Int,
                  pValues: [Double]? = nil, adjustedPValues: [Double]? = nil) {
        self.test = test
        self.alpha = alpha
        self.count = count
        self.significant = significant
        self.significantFraction = significantFraction
        self.favoringA = favoringA
        self.favoringB = favoringB
        self.undefined = undefined
        self.pValues = pValues
        self.adjustedPValues = adjustedPValues
      }

      enum CodingKeys: String, CodingKey {
        case test, alpha, count, significant, significantFraction = "significant_fraction",
             favoringA = "favoring_a", favoringB = "favoring_b", undefined,
             pValues = "p_values", adjustedPValues = "adjusted_p_values"
      }

      public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(test: try c.value(.test), alpha: try c.value(.alpha), count: try c.value(.count),
                  significant: try c.value(.significant),
                  significantFraction: try c.value(.significantFraction),
                  favoringA: try c.value(.favoringA), favoringB: try c.value(.favoringB),
                  undefined: try c.value(.undefined), pValues: try c.ifPresent(.pValues),
                  adjustedPValues: try c.ifPresent(.adjustedPValues))
      }
    }

    /// One class's Welch test.
    public struct ClassTest: Codable, Hashable, Sendable {
      /// The class label (key `class`).
      public var classIndex: Int
      public var examples: Int
      public var meanAccuracyA: Double
      public var meanAccuracyB: Double
      public var pValue: Double
      public var adjustedPValue: Double
      public var significant: Bool

      public init(classIndex: Int, examples: Int, meanAccuracyA: Double, meanAccuracyB: Double,
                  pValue: Double, adjustedPValue: Double, significant: Bool) {
        self.classIndex = classIndex
        self.examples = examples
        self.meanAccuracyA = meanAccuracyA
        self.meanAccuracyB = meanAccuracyB
        self.pValue = pValue
        self.adjustedPValue = adjustedPValue
        self.significant = significant
      }

      enum CodingKeys: String, CodingKey {
        case classIndex = "class", examples, meanAccuracyA = "mean_accuracy_a",
             meanAccuracyB = "mean_accuracy_b", pValue = "p_value",
             adjustedPValue = "adjusted_p_value", significant
      }

      public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(classIndex: try c.value(.classIndex), examples: try c.value(.examples),
                  meanAccuracyA: try c.value(.meanAccuracyA),
                  meanAccuracyB: try c.value(.meanAccuracyB), pValue: try c.value(.pValue),
                  adjustedPValue: try c.value(.adjustedPValue),
                  significant: try c.value(.significant))
      }
    }

    /// Distances between the two groups' predictions.
    public struct Distances: Codable, Hashable, Sendable {
      public var meanHellinger: Double
      public var argmaxAgreement: Double
      /// nil when a model has only argmax predictions (`klNote` says so).
      public var meanKl: Double?
      public var klNote: String?

      public init(meanHellinger: Double, argmaxAgreement: Double, meanKl: Double? = nil,
                  klNote: String? = nil) {
        self.meanHellinger = meanHellinger
        self.argmaxAgreement = argmaxAgreement
        self.meanKl = meanKl
        self.klNote = klNote
      }

      enum CodingKeys: String, CodingKey {
        case meanHellinger = "mean_hellinger", argmaxAgreement = "argmax_agreement",
             meanKl = "mean_kl", klNote = "kl_note"
      }

      public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(meanHellinger: try c.value(.meanHellinger),
                  argmaxAgreement: try c.value(.argmaxAgreement), meanKl: try c.ifPresent(.meanKl),
                  klNote: try c.ifPresent(.klNote))
      }
    }

    public var groupA: String
    public var groupB: String
    public var meanAccuracyA: Double
    public var meanAccuracyB: Double
    public var examples: ExampleTests
    public var classes: [ClassTest]
    /// Classes with a significant difference.
    public var significantClasses: Int
    public var distances: Distances
    /// Nulls only: the group split in two halves, and the seed of the split.
    public var group: String?
    public var seed: UInt64?

    public init(groupA: String, groupB: String, meanAccuracyA: Double, meanAccuracyB: Double,
                examples: ExampleTests, classes: [ClassTest], significantClasses: Int,
                distances: Distances, group: String? = nil, seed: UInt64? = nil) {
      self.groupA = groupA
      self.groupB = groupB
      self.meanAccuracyA = meanAccuracyA
      self.meanAccuracyB = meanAccuracyB
      self.examples = examples
      self.classes = classes
      self.significantClasses = significantClasses
      self.distances = distances
      self.group = group
      self.seed = seed
    }

    enum CodingKeys: String, CodingKey {
      case groupA = "group_a", groupB = "group_b", meanAccuracyA = "mean_accuracy_a",
           meanAccuracyB = "mean_accuracy_b", examples, classes,
           significantClasses = "significant_classes", distances, group, seed
    }

    public init(from decoder: Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      self.init(groupA: try c.value(.groupA), groupB: try c.value(.groupB),
                meanAccuracyA: try c.value(.meanAccuracyA),
                meanAccuracyB: try c.value(.meanAccuracyB), examples: try c.value(.examples),
                classes: try c.value(.classes), significantClasses: try c.value(.significantClasses),
                distances: try c.value(.distances), group: try c.ifPresent(.group),
                seed: try c.ifPresent(.seed))
    }
  }

  public var groups: [Group]
  public var comparisons: [Comparison]
  public var nulls: [Comparison]

  public init(groups: [Group], comparisons: [Comparison], nulls: [Comparison]) {
    self.groups = groups
    self.comparisons = comparisons
    self.nulls = nulls
  }

  enum CodingKeys: String, CodingKey { case groups, comparisons, nulls }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(groups: try c.value(.groups), comparisons: try c.value(.comparisons),
              nulls: try c.value(.nulls))
  }
}
