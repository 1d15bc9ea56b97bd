import CKernels
import Engine

/// One batch's contribution to a heatmap: the dot products of every row vector with every
/// column vector (row-major), and of each vector with itself.
struct BatchProducts {
  var products: [Double]
  var rowSelf: [Double]
  var columnSelf: [Double]

  /// The products of one batch's dot-ready Gram vectors (nil: degenerate for this batch, it
  /// contributes zeros). `within`: the columns are the rows (one symmetric product). The
  /// entries must outlive the call, which holds them.
  static func of(rows: [GramEntry?], columns: [GramEntry?], within: Bool, m: Int,
                 context: KernelContext) throws -> BatchProducts {
    let la = rows.count, lb = columns.count, len = m * (m + 1) / 2
    let zeros = Tensor([len])
    zeros.zero()
    let ptrA: [UnsafePointer<Float>?] = rows.map { $0?.pointer ?? UnsafePointer(zeros.data) }
    let ptrB: [UnsafePointer<Float>?] = columns.map { $0?.pointer ?? UnsafePointer(zeros.data) }
    var out = BatchProducts(products: [Double](repeating: 0, count: la * lb),
                            rowSelf: [Double](repeating: 0, count: la),
                            columnSelf: [Double](repeating: 0, count: lb))
    func check(_ status: bs_status) throws {
      if status != BS_OK { throw GramForms.GramError.outOfMemory }
    }
    func selfDots(_ p: [UnsafePointer<Float>?]) throws -> [Double] {
      try p.map { v in
        var d = 0.0
        var one = [v]
        try check(bs_pairwise_dots(context.pointer, &one, 1, nil, 0, len, &d))
        return d
      }
    }
    try withExtendedLifetime((rows, columns, zeros)) {
      if within {
        try check(ptrA.withUnsafeBufferPointer {
          bs_pairwise_dots(context.pointer, $0.baseAddress, Int32(la), nil, 0, len, &out.products)
        })
        for i in 0..<la { out.rowSelf[i] = out.products[i * la + i] }
        out.columnSelf = out.rowSelf
      } else {
        try check(ptrA.withUnsafeBufferPointer { pa in
          ptrB.withUnsafeBufferPointer { pb in
            bs_pairwise_dots(context.pointer, pa.baseAddress, Int32(la), pb.baseAddress, Int32(lb),
                             len, &out.products)
          }
        })
        out.rowSelf = try selfDots(ptrA)
        out.columnSelf = try selfDots(ptrB)
      }
    }
    return out
  }
}

/// Per-batch products summed into a heatmap: CKA = sum_b <a, b> / sqrt(sum_b <a, a> sum_b <b, b>)
/// (the packing's factor 2 and the 1/batches cancel). Keeps each batch's products when a
/// bootstrap needs them.
struct HeatmapAccumulator {
  let rows: Int, columns: Int
  private(set) var sum: [Double]
  private(set) var rowSelf: [Double]
  private(set) var columnSelf: [Double]
  private var batches: [BatchProducts] = []
  private let keepsBatches: Bool

  init(rows: Int, columns: Int, keepsBatches: Bool) {
    self.rows = rows
    self.columns = columns
    self.keepsBatches = keepsBatches
    sum = [Double](repeating: 0, count: rows * columns)
    rowSelf = [Double](repeating: 0, count: rows)
    columnSelf = [Double](repeating: 0, count: columns)
  }

  mutating func add(_ b: BatchProducts) {
    for i in 0..<(rows * columns) { sum[i] += b.products[i] }
    for i in 0..<rows { rowSelf[i] += b.rowSelf[i] }
    for j in 0..<columns { columnSelf[j] += b.columnSelf[j] }
    if keepsBatches { batches.append(b) }
  }

  /// The CKA of every cell; undefined (false, value 0) where either representation has zero
  /// self-similarity over all batches.
  func values() -> (values: [Double], defined: [Bool]) {
    var values = [Double](repeating: 0, count: rows * columns)
    var defined = [Bool](repeating: false, count: rows * columns)
    for i in 0..<rows {
      for j in 0..<columns where rowSelf[i] > 0 && columnSelf[j] > 0 {
        values[i * columns + j] = sum[i * columns + j] / (rowSelf[i] * columnSelf[j]).squareRoot()
        defined[i * columns + j] = true
      }
    }
    return (values, defined)
  }

  /// What a reader of the finished heatmap must know: representations constant over every
  /// batch (undefined, not 0), negative estimates kept as computed, and representations whose
  /// RBF bandwidth was zero in some batch. `within`: the columns are the rows.
  func diagnostics(rowNames: [String], columnNames: [String], within: Bool, values: [Double],
                   defined: [Bool], rbfZero: Set<String>) -> [CKADiagnostic] {
    var out: [CKADiagnostic] = []
    let constant = (0..<rows).filter { rowSelf[$0] <= 0 }.map { rowNames[$0] }
      + (within ? [] : (0..<columns).filter { columnSelf[$0] <= 0 }.map { columnNames[$0] })
    if !constant.isEmpty {
      out.append(CKADiagnostic(
        kind: .constantRepresentation,
        message: "\(constant.count) representation(s) are constant over every batch "
          + "(zero self-similarity): their CKA is undefined, not 0",
        representations: constant))
    }
    var negatives: [String] = []
    for i in 0..<rows {
      for j in 0..<columns where defined[i * columns + j] && values[i * columns + j] < 0 {
        negatives.append("\(rowNames[i])|\(columnNames[j])")
      }
    }
    if !negatives.isEmpty {
      out.append(CKADiagnostic(
        kind: .negativeEstimates,
        message: "\(negatives.count) cell(s) have negative estimates (unbiased estimates of a "
          + "similarity near 0 can be); kept as computed",
        representations: Array(negatives.prefix(50))))
    }
    if !rbfZero.isEmpty {
      out.append(CKADiagnostic(
        kind: .rbfBandwidthZero,
        message: "some batches had a zero median distance for these representations (more than "
          + "half of the pairs identical); those batches were skipped for them",
        representations: rbfZero.sorted()))
    }
    return out
  }

  /// Standard error of every defined cell over `resamples` bootstrap resamples of the batches
  /// (multinomial weights, seeded), each resample's CKA from the weighted per-batch sums.
  func bootstrapErrors(resamples: Int, seed: UInt64, defined: [Bool]) -> [Double] {
    precondition(keepsBatches, "the accumulator was made without the per-batch products")
    let nb = batches.count, la = rows, lb = columns
    var rng = RandomSource(seed: seed, stream: 0xB007)
    var sum = [Double](repeating: 0, count: la * lb), sumSq = sum
    var count = [Int](repeating: 0, count: la * lb)
    var weights = [Double](repeating: 0, count: nb)
    var p = [Double](repeating: 0, count: la * lb)
    var a = [Double](repeating: 0, count: la), b = [Double](repeating: 0, count: lb)
    for _ in 0..<resamples {
      for i in 0..<nb { weights[i] = 0 }
      for _ in 0..<nb { weights[rng.below(nb)] += 1 }
      for i in 0..<(la * lb) { p[i] = 0 }
      for i in 0..<la { a[i] = 0 }
      for j in 0..<lb { b[j] = 0 }
      for k in 0..<nb where weights[k] > 0 {
        let w = weights[k]
        batches[k].products.withUnsafeBufferPointer { src in
          for i in 0..<(la * lb) { p[i] += w * src[i] }
        }
        for i in 0..<la { a[i] += w * batches[k].rowSelf[i] }
        for j in 0..<lb { b[j] += w * batches[k].columnSelf[j] }
      }
      for i in 0..<la {
        for j in 0..<lb where defined[i * lb + j] && a[i] > 0 && b[j] > 0 {
          let v = p[i * lb + j] / (a[i] * b[j]).squareRoot()
          sum[i * lb + j] += v
          sumSq[i * lb + j] += v * v
          count[i * lb + j] += 1
        }
      }
    }
    return (0..<(la * lb)).map { c in
      guard count[c] > 1 else { return 0 }
      let n = Double(count[c]), mean = sum[c] / n
      return (max(0, sumSq[c] / n - mean * mean) * n / (n - 1)).squareRoot()
    }
  }
}
