/// Training-set subsets (the data-size experiments of Nguyen et al. 2021: models trained on a
/// fraction of the training set).
///
/// Both subsets keep the examples' ids and return them in their original order. Fractions must
/// lie in (0, 1] (a NaN or anything else throws `DatasetError.badFraction`), and a fraction so
/// small that it selects nothing throws `DatasetError.emptySubset`. Counts are rounded to the
/// nearest integer, halves away from zero (round(0.25 * 10) = 3).
extension Dataset {
  /// The paper's "first fraction": the first round(f * count) examples in file order.
  public func firstFraction(_ f: Double) throws -> Dataset {
    try Dataset.validateFraction(f)
    let n = Dataset.roundedCount(f, of: count)
    if n == count { return self }
    guard n > 0 else { throw DatasetError.emptySubset(fraction: f, count: count) }
    return selecting(Array(0..<n))
  }

  /// A class-stratified fraction: round(f * count_c) examples of every class c, chosen by a
  /// shuffle seeded with `seed` (the same seed gives the same subset), in original order.
  public func stratifiedFraction(_ f: Double, seed: UInt64) throws -> Dataset {
    try Dataset.validateFraction(f)
    var byClass = [Int32: [Int]]()
    for (position, label) in labels.enumerated() { byClass[label, default: []].append(position) }
    var rng = RandomSource(seed: seed, stream: Dataset.stratifiedStream)
    var chosen = [Int]()
    for label in byClass.keys.sorted() {
      var positions = byClass[label]!
      let n = Dataset.roundedCount(f, of: positions.count)
      // Partial Fisher-Yates: the first n slots become a uniform random n-subset.
      for i in 0..<n {
        let j = i + rng.below(positions.count - i)
        positions.swapAt(i, j)
      }
      chosen.append(contentsOf: positions[0..<n])
    }
    if chosen.count == count { return self }
    guard !chosen.isEmpty else { throw DatasetError.emptySubset(fraction: f, count: count) }
    chosen.sort()
    return selecting(chosen)
  }

  /// How many examples of each class (index = label; labels outside 0..<numClasses ignored).
  public func classCounts() -> [Int] {
    var counts = [Int](repeating: 0, count: numClasses)
    for l in labels where l >= 0 && Int(l) < numClasses { counts[Int(l)] += 1 }
    return counts
  }

  static let stratifiedStream: UInt64 = 0x5354_5241_5449_4659  // "STRATIFY"

  static func validateFraction(_ f: Double) throws {
    guard f > 0 && f <= 1 else { throw DatasetError.badFraction(f) }  // false for NaN too
  }

  static func roundedCount(_ f: Double, of n: Int) -> Int {
    min(n, max(0, Int((f * Double(n)).rounded(.toNearestOrAwayFromZero))))
  }
}
