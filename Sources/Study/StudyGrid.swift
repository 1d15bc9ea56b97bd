import Wire

/// One point of a study's grid: an architecture and training-data fraction (together the
/// "architecture group" whose seeds form a population) and a seed.
public struct GridPoint: Hashable, Sendable, Comparable {
  public var depth: Int
  public var width: Double
  public var fraction: Double
  public var plain: Bool
  public var seed: UInt64

  public init(depth: Int, width: Double, fraction: Double, plain: Bool, seed: UInt64) {
    self.depth = depth
    self.width = width
    self.fraction = fraction
    self.plain = plain
    self.seed = seed
  }

  /// The point without its seed.
  public var group: ArchitectureGroup {
    ArchitectureGroup(depth: depth, width: width, fraction: fraction, plain: plain)
  }

  /// Blocks per stage: depth = 6n + 2.
  public var blocksPerStage: Int { (depth - 2) / 6 }

  /// Training cost relative to other points of one study (FLOPs grow with depth, width^2 and
  /// the number of training examples).
  public var relativeCost: Double { Double(depth) * width * width * fraction }

  /// Training cost of `epochs` epochs in units of one image through a depth-1, width-1 net:
  /// the training images (forward and backward, about 3 forward passes each) plus each epoch's
  /// evaluation (one forward pass per test image), which dominates on small fractions.
  public func trainingCost(trainImages: Int, evaluatedImages: Int, epochs: Int) -> Double {
    Double(depth) * width * width * (3 * fraction * Double(trainImages) + Double(evaluatedImages)) * Double(epochs)
  }

  public static func < (a: GridPoint, b: GridPoint) -> Bool {
    (a.seed, a.relativeCost, a.depth, a.width, a.fraction, a.plain ? 1 : 0)
      < (b.seed, b.relativeCost, b.depth, b.width, b.fraction, b.plain ? 1 : 0)
  }
}

/// An architecture trained on one fraction: the seeds of a study share it.
public struct ArchitectureGroup: Hashable, Sendable {
  public var depth: Int
  public var width: Double
  public var fraction: Double
  public var plain: Bool

  public init(depth: Int, width: Double, fraction: Double, plain: Bool) {
    self.depth = depth
    self.width = width
    self.fraction = fraction
    self.plain = plain
  }

  /// `R44 k1 f0.03` (`P` for plain nets).
  public var label: String {
    "\(plain ? "P" : "R")\(depth) k\(shortNumber(width)) f\(shortNumber(fraction))"
  }

  /// `r44-k1-f0.03`: a label usable in result keys.
  public var key: String {
    "\(plain ? "p" : "r")\(depth)-k\(shortNumber(width))-f\(shortNumber(fraction))"
  }
}

/// One model of a study: its grid point, its full training recipe and its content-addressed
/// name.
public struct StudyModel: Hashable, Sendable {
  public var point: GridPoint
  public var recipe: TrainRequest
  public var name: String { recipe.model! }
}

/// `1` for 1.0, `0.25` for 0.25: the shortest form that reads back as the same number.
public func shortNumber(_ x: Double) -> String {
  x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : String(x)
}

extension StudyDeclaration {
  /// Every model of the grid, cheapest first within each seed (so that a first complete seed
  /// of the whole grid comes early). `dataset` must be canonical (the daemon canonicalises it
  /// before expanding).
  public func models() -> [StudyModel] {
    var points: [GridPoint] = []
    for seed in seeds {
      for fraction in fractions {
        for depth in depths {
          for width in widths {
            points.append(GridPoint(depth: depth, width: width, fraction: fraction, plain: false, seed: seed))
          }
          for width in plainWidths {
            points.append(GridPoint(depth: depth, width: width, fraction: fraction, plain: true, seed: seed))
          }
        }
      }
    }
    return points.sorted().map { point in
      var recipe = TrainRequest(
        depth: point.depth, width: point.width, plain: point.plain, dataset: dataset,
        fraction: point.fraction, stratified: stratified, epochs: epochs, batchSize: batchSize,
        lr: lr, weightDecay: weightDecay, warmupEpochs: warmupEpochs, augment: augment,
        seed: point.seed, testExamples: testExamples, threads: nil, snapshotEpochs: snapshotEpochs)
      recipe.model = RecipeName.name(of: recipe)
      return StudyModel(point: point, recipe: recipe)
    }
  }
}
