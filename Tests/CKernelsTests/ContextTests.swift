import CKernels
import Foundation
import XCTest

/// Kernel contexts (bs_context): each parallel section runs on its own context's threads, the
/// training ops' results do not depend on the thread count, and two contexts used at the same
/// time by two threads neither block each other nor change each other's numbers.
final class ContextTests: XCTestCase {
  /// One convolution forward and backward pass and one batch-norm forward/backward on `ctx`:
  /// every output, as bit patterns.
  struct TrainingOps {
    static let shape = ConvTests.Shape(N: 37, H: 9, W: 7, Ci: 16, Co: 24, K: 3, stride: 1, pad: 1)
    let x, w, dy, bnX, bnDy: [Float]
    init(seed: UInt64) {
      var rng = TestRNG(seed: seed)
      let s = Self.shape
      x = rng.floats(s.N * s.H * s.W * s.Ci)
      w = rng.floats(s.Co * 9 * s.Ci)
      dy = rng.floats(s.N * s.OH * s.OW * s.Co)
      bnX = rng.floats(5000 * 24).map { $0 * 3 + 1 }
      bnDy = rng.floats(5000 * 24)
    }

    func run(_ ctx: OpaquePointer) -> [[UInt32]] {
      var c = Self.shape.c
      let s = Self.shape
      var dw = [Float](repeating: .nan, count: w.count), db = [Float](repeating: .nan, count: s.Co)
      var dx = [Float](repeating: .nan, count: x.count)
      var y0 = [Float](repeating: .nan, count: dy.count)
      bs_conv_forward(ctx, &c, x, w, nil, &y0)
      bs_conv_backward(ctx, &c, x, w, dy, &dw, &db, &dx)
      let C = 24, rows = bnX.count / C
      let gamma = (0..<C).map { Float($0) * 0.1 + 0.5 }, beta = (0..<C).map { Float($0) * -0.05 }
      var rm = [Float](repeating: 0, count: C), rv = [Float](repeating: 1, count: C)
      var mean = rm, invstd = rm, y = bnX
      bs_bn_forward_train(ctx, bnX, rows, Int32(C), gamma, beta, 1e-5, 0.1, 0, &rm, &rv, &mean,
                          &invstd, &y)
      var dgamma = rm, dbeta = rm, bdx = bnX
      bs_bn_backward(ctx, bnDy, bnX, rows, Int32(C), gamma, mean, invstd, &dgamma, &dbeta, &bdx)
      return [y0, dw, db, dx, y, rm, rv, dgamma, dbeta, bdx].map { $0.map(\.bitPattern) }
    }
  }

  func testTrainingOpsGiveTheSameBitsOnAnyThreadCount() {
    let ops = TrainingOps(seed: 11)
    for isa in supportedISAs {
      let one = withKernels(isa: isa, threads: 1) { ops.run($0) }
      for threads in [2, 3, 7, 16, 40] {
        let got = withKernels(isa: isa, threads: threads) { ops.run($0) }
        XCTAssertTrue(got == one, "\(isa): \(threads) threads differ from 1")
      }
    }
  }

  /// Gram matrices, on two contexts with different thread counts, computed serially and then
  /// again while the other context trains on another thread: the same bits.
  func testContextsRunSideBySideWithoutChangingEachOthersResults() {
    let ops = TrainingOps(seed: 12)
    var rng = TestRNG(seed: 13)
    let m = 64, d = 3000
    let features = rng.floats(m * d)
    let gram: @Sendable (OpaquePointer) -> [UInt32] = { ctx in
      var K = [Float](repeating: .nan, count: m * m)
      var meanSq = 0.0
      precondition(bs_gram_centered(ctx, features, Int32(m), d, &K, &meanSq) == BS_OK)
      return K.map(\.bitPattern)
    }
    guard let training = bs_context_create(2), let analysis = bs_context_create(1) else {
      return XCTFail("out of memory")
    }
    defer {
      bs_context_destroy(training)
      bs_context_destroy(analysis)
    }
    let wantTraining = ops.run(training), wantGram = gram(analysis)
    nonisolated(unsafe) let trainingContext = training, analysisContext = analysis
    let rounds = 6
    nonisolated(unsafe) var gotTraining: [[[UInt32]]] = [], gotGrams: [[UInt32]] = []
    let group = DispatchGroup()
    DispatchQueue.global().async(group: group) {
      for _ in 0..<rounds { gotTraining.append(ops.run(trainingContext)) }
    }
    DispatchQueue.global().async(group: group) {
      for _ in 0..<rounds { gotGrams.append(gram(analysisContext)) }
    }
    group.wait()
    XCTAssertEqual(gotTraining.count, rounds)
    XCTAssertEqual(gotGrams.count, rounds)
    XCTAssertTrue(gotTraining.allSatisfy { $0 == wantTraining }, "training changed beside a Gram")
    XCTAssertTrue(gotGrams.allSatisfy { $0 == wantGram }, "a Gram changed beside training")
  }

  /// bs_parallel_for runs every task exactly once, on a worker of its own context (index below
  /// the context's thread count), for task counts below, at and above the thread count.
  func testParallelForRunsEveryTaskOnceOnTheContextsWorkers() {
    for threads in [1, 2, 5] {
      guard let ctx = bs_context_create(Int32(threads)) else { return XCTFail("out of memory") }
      defer { bs_context_destroy(ctx) }
      XCTAssertEqual(bs_context_threads(ctx), Int32(threads))
      for ntasks in [1, threads, 3 * threads + 1] {
        // Per task: how often it ran, and the index of the worker that ran it.
        var record = [Int32](repeating: 0, count: 2 * ntasks)
        record.withUnsafeMutableBufferPointer { buffer in
          bs_parallel_for(ctx, Int32(ntasks), { arg, task, _, worker in
            let r = arg!.assumingMemoryBound(to: Int32.self)
            r[2 * Int(task)] += 1
            r[2 * Int(task) + 1] = bs_worker_index(worker)
          }, buffer.baseAddress)
        }
        for t in 0..<ntasks {
          XCTAssertEqual(record[2 * t], 1, "threads \(threads), \(ntasks) tasks: task \(t)")
          XCTAssertTrue((0..<Int32(threads)).contains(record[2 * t + 1]))
        }
      }
    }
  }

  func testContextSettingsAreClampedAndOwnTheirScratch() {
    guard let low = bs_context_create(0), let high = bs_context_create(10_000) else {
      return XCTFail("out of memory")
    }
    defer {
      bs_context_destroy(low)
      bs_context_destroy(high)
    }
    XCTAssertEqual(bs_context_threads(low), 1)
    XCTAssertEqual(bs_context_threads(high), BS_MAX_THREADS)
    // Scratch buffers are per owner: two owners on one worker never share memory, and a
    // buffer keeps its address while it is big enough.
    let w = bs_context_caller(low)
    let a = bs_worker_scratch(w, BS_SCRATCH_CONV_COLUMNS, 100)
    let b = bs_worker_scratch(w, BS_SCRATCH_GRAM_PANEL, 100)
    XCTAssertNotNil(a)
    XCTAssertNotEqual(a, b)
    XCTAssertEqual(bs_worker_scratch(w, BS_SCRATCH_CONV_COLUMNS, 50), a)
    XCTAssertEqual(Int(bitPattern: a) % 64, 0, "64-byte aligned")
    bs_context_destroy(nil)   // ignored
  }

  func testFailuresAreNamedStatuses() {
    let names: [(bs_status, String)] = [
      (BS_OK, "ok"), (BS_ERR_NO_MEMORY, "out of memory"), (BS_ERR_INVALID, "invalid argument"),
      (BS_ERR_UNSUPPORTED, "this CPU cannot run the requested ISA"),
      (BS_ERR_LAPACK, "LAPACK reported a failure"),
      (BS_ERR_NO_SOLUTION, "the solver found no eigen or singular value"),
    ]
    for (status, text) in names { XCTAssertEqual(String(cString: bs_status_message(status)), text) }
    withKernels(isa: defaultISA) { ctx in
      var K = [Float](repeating: 0, count: 4), sums = [Double](repeating: 0, count: 2)
      XCTAssertEqual(bs_gram_centered_channels(ctx, [1, 2], 0, 1, 1, nil, &K, nil, &sums), BS_ERR_INVALID)
      // A Gram of 200,000 examples needs 160 GB of partials: refused, reported, nothing written
      // (d = 0: the features are never read).
      var one: Float = 0
      XCTAssertEqual(bs_gram_centered(ctx, &one, 200_000, 0, &K, nil), BS_ERR_NO_MEMORY)
      XCTAssertEqual(K, [0, 0, 0, 0])
    }
  }
}
