import CKernels
import XCTest

/// Softmax cross-entropy, the linear layer and the threaded elementwise helpers against
/// Double / the reference kernels.
final class MiscOpsTests: XCTestCase {
  func testSoftmaxCrossEntropyMatchesDouble() {
    var rng = TestRNG(seed: 301)
    for (N, K) in [(1, 1), (1, 10), (7, 10), (32, 3), (5, 100)] {
      var logits = rng.floats(N * K, -8, 8)
      if N * K > 2 { logits[1] = 80 }   // a large logit: the max must be subtracted
      let labels = (0..<N).map { _ in Int32(rng.int(K)) }
      var probs = [Float](repeating: .nan, count: N * K), dlogits = probs
      var correct: Int32 = -1
      let loss = bs_softmax_xent(logits, labels, Int32(N), Int32(K), &probs, &dlogits, &correct)

      var wantLoss = 0.0, wantCorrect = 0
      var mm = Mismatches("softmax_xent N\(N) K\(K)")
      for n in 0..<N {
        let z = (0..<K).map { Double(logits[n * K + $0]) }
        let zmax = z.max()!
        let denom = z.reduce(0) { $0 + exp($1 - zmax) }
        let label = Int(labels[n])
        wantLoss += log(denom) - (z[label] - zmax)
        // argmax: first index of the maximum
        if z.firstIndex(of: zmax)! == label { wantCorrect += 1 }
        for k in 0..<K {
          let p = exp(z[k] - zmax) / denom
          let d = (p - (k == label ? 1 : 0)) / Double(N)
          mm.check(abs(Double(probs[n * K + k]) - p) <= 2 * floatU * p + 1e-12,
                   "probs[\(n)][\(k)] = \(probs[n * K + k]), want \(p)")
          mm.check(abs(Double(dlogits[n * K + k]) - d) <= 2 * floatU * abs(d) + 1e-12,
                   "dlogits[\(n)][\(k)] = \(dlogits[n * K + k]), want \(d)")
        }
      }
      mm.report()
      XCTAssertEqual(loss, wantLoss / Double(N), accuracy: 1e-12 * max(1, abs(wantLoss)))
      XCTAssertEqual(Int(correct), wantCorrect)
    }
    // probs, dlogits and correct may be NULL.
    let loss = bs_softmax_xent([0, 0], [1], 1, 2, nil, nil, nil)
    XCTAssertEqual(loss, log(2.0), accuracy: 1e-12)
    XCTAssertEqual(bs_softmax_xent(nil, nil, 0, 10, nil, nil, nil), 0)
  }

  func testLinearForwardAndBackwardMatchDouble() {
    var rng = TestRNG(seed: 302)
    for (N, In, Out) in [(1, 1, 1), (3, 7, 10), (16, 64, 10), (5, 17, 3)] {
      let x = rng.floats(N * In), w = rng.floats(Out * In), b = rng.floats(Out)
      let dy = rng.floats(N * Out)
      var y = [Float](repeating: .nan, count: N * Out)
      var dw = [Float](repeating: .nan, count: Out * In), db = [Float](repeating: .nan, count: Out)
      var dx = [Float](repeating: .nan, count: N * In)
      bs_linear_forward(x, Int32(N), Int32(In), Int32(Out), w, b, &y)
      bs_linear_backward(x, Int32(N), Int32(In), Int32(Out), w, dy, &dw, &db, &dx)
      var mm = Mismatches("linear N\(N) In\(In) Out\(Out)")
      // A float sum of k terms is within (k - 1)u * sum|terms|; allow (k + 2)u.
      func check(_ name: String, _ got: Float, _ terms: [Double]) {
        let want = terms.reduce(0, +), mag = terms.reduce(0) { $0 + abs($1) }
        let tol = Double(terms.count + 2) * floatU * mag + 1e-30
        mm.check(abs(Double(got) - want) <= tol, "\(name) = \(got), want \(want)")
      }
      for n in 0..<N {
        for o in 0..<Out {
          let products: [Double] = (0..<In).map { i -> Double in
            Double(x[n * In + i]) * Double(w[o * In + i])
          }
          check("y[\(n)][\(o)]", y[n * Out + o], [Double(b[o])] + products)
        }
        for i in 0..<In {
          check("dx[\(n)][\(i)]", dx[n * In + i],
                (0..<Out).map { Double(dy[n * Out + $0]) * Double(w[$0 * In + i]) })
        }
      }
      for o in 0..<Out {
        check("db[\(o)]", db[o], (0..<N).map { Double(dy[$0 * Out + o]) })
        for i in 0..<In {
          check("dw[\(o)][\(i)]", dw[o * In + i],
                (0..<N).map { Double(dy[$0 * Out + o]) * Double(x[$0 * In + i]) })
        }
      }
      mm.report()
      // dx may be NULL.
      var dw2 = [Float](repeating: .nan, count: Out * In), db2 = db
      bs_linear_backward(x, Int32(N), Int32(In), Int32(Out), w, dy, &dw2, &db2, nil)
      XCTAssertEqual(dw2, dw)
    }
  }

  /// bs_op_* split n over the pool (in 16-float aligned pieces, the tail to the last task): the
  /// result must equal one reference-kernel call, for every ISA and 1 or 2 threads.
  func testThreadedElementwiseOpsMatchTheReferenceKernels() {
    var rng = TestRNG(seed: 303)
    for n in [0, 1, 17, 65536 + 37, 200_003] {
      let a = (0..<n).map { _ in rng.floatWithSpecials() }
      let b = (0..<n).map { _ in rng.floatWithSpecials() }
      var want = [[Float]](repeating: [Float](repeating: 0, count: n), count: 4)
      bs_relu_ref(a, n, &want[0])
      bs_relu_backward_ref(a, b, n, &want[1])
      bs_add_relu_ref(a, b, n, &want[2])
      bs_add_ref(a, b, n, &want[3])
      for isa in supportedISAs {
        for threads in [1, 2] {
          var got = [[Float]](repeating: [Float](repeating: 7, count: n), count: 4)
          withKernels(isa: isa, threads: threads) { ctx in
            bs_op_relu(ctx, a, n, &got[0])
            bs_op_relu_backward(ctx, a, b, n, &got[1])
            bs_op_add_relu(ctx, a, b, n, &got[2])
            bs_op_add(ctx, a, b, n, &got[3])
          }
          for (k, name) in ["relu", "relu_backward", "add_relu", "add"].enumerated() {
            let bad = (0..<n).first { !sameFloat(got[k][$0], want[k][$0]) }
            XCTAssertNil(bad, "bs_op_\(name) n\(n) \(isa) threads \(threads) at \(bad ?? -1)")
          }
        }
      }
    }
  }
}

/// OpenBLAS's kernel choice (blas_core.c): a name always; no suggestion once the variable is set.
final class BLASCoreTests: XCTestCase {
  func testCoreNameAndSuggestion() {
    XCTAssertFalse(String(cString: bs_blas_core_name()).isEmpty)
    let saved = getenv("OPENBLAS_CORETYPE").map { String(cString: $0) }
    defer {
      if let saved { setenv("OPENBLAS_CORETYPE", saved, 1) } else { unsetenv("OPENBLAS_CORETYPE") }
    }
    setenv("OPENBLAS_CORETYPE", "Haswell", 1)
    XCTAssertNil(bs_blas_core_suggestion())
    unsetenv("OPENBLAS_CORETYPE")
    // Whatever OpenBLAS chose, a suggestion is one of the two cores we force, never a third.
    if let s = bs_blas_core_suggestion() {
      XCTAssertTrue(["SkylakeX", "Haswell"].contains(String(cString: s)))
    }
  }
}
