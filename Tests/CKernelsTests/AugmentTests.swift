import CKernels
import XCTest

/// bs_augment's semantics (not just variant agreement): numpy/PyTorch 'reflect' padding
/// (index -1 reads 1, index H reads H-2, no edge repeat), the crop offset (oy, ox) in the
/// padded image, flip = crop then mirror horizontally (channels keep their order), and pad 0
/// being the plain u8 / 255 conversion. Checked through the dispatcher under every ISA.
final class AugmentTests: XCTestCase {
  static let inv = 1 / Float(255)

  func augment(_ ctx: OpaquePointer, _ src: [UInt8], H: Int, W: Int, C: Int, pad: Int, oy: Int,
               ox: Int, flip: Bool) -> [Float] {
    var dst = [Float](repeating: .nan, count: H * W * C)
    bs_context_kernels(ctx).pointee.bs_augment(src, Int32(H), Int32(W), Int32(C), Int32(pad), Int32(oy), Int32(ox), flip ? 1 : 0,
               &dst)
    return dst
  }

  /// Output values, as the bytes they were converted from.
  func bytes(_ out: [Float]) -> [Int] { out.map { Int(($0 * 255).rounded()) } }

  /// The definition, spelled out: build the padded image, crop, then flip.
  static func model(_ src: [UInt8], H: Int, W: Int, C: Int, pad: Int, oy: Int, ox: Int,
                    flip: Bool) -> [Float]
  {
    func reflect(_ i: Int, _ n: Int) -> Int {
      if n == 1 { return 0 }
      var i = i
      while i < 0 || i >= n { i = i < 0 ? -i : 2 * (n - 1) - i }
      return i
    }
    let PH = H + 2 * pad, PW = W + 2 * pad
    var padded = [UInt8](repeating: 0, count: PH * PW * C)
    for py in 0..<PH {
      for px in 0..<PW {
        for c in 0..<C {
          padded[(py * PW + px) * C + c] = src[(reflect(py - pad, H) * W + reflect(px - pad, W)) * C + c]
        }
      }
    }
    var out = [Float](repeating: 0, count: H * W * C)
    for y in 0..<H {
      for x in 0..<W {
        let cx = flip ? W - 1 - x : x
        for c in 0..<C {
          out[(y * W + x) * C + c] = Float(padded[((y + oy) * PW + cx + ox) * C + c]) * inv
        }
      }
    }
    return out
  }

  func testReflectPaddingCropAndFlipOnHandWorkedExamples() {
    let img: [UInt8] = [0, 1, 2, 3, 4, 5, 6, 7, 8]   // 3x3, one channel
    for isa in supportedISAs {
      withKernels(isa: isa) { ctx in
        // Top-left crop: padded index -1 reads 1.
        XCTAssertEqual(bytes(augment(ctx, img, H: 3, W: 3, C: 1, pad: 1, oy: 0, ox: 0, flip: false)),
                       [4, 3, 4, 1, 0, 1, 4, 3, 4], "\(isa)")
        // Bottom-right crop: padded index H reads H-2.
        XCTAssertEqual(bytes(augment(ctx, img, H: 3, W: 3, C: 1, pad: 1, oy: 2, ox: 2, flip: false)),
                       [4, 5, 4, 7, 8, 7, 4, 5, 4], "\(isa)")
        // Centre crop is the image; flipped, each row mirrored.
        XCTAssertEqual(bytes(augment(ctx, img, H: 3, W: 3, C: 1, pad: 1, oy: 1, ox: 1, flip: false)),
                       [0, 1, 2, 3, 4, 5, 6, 7, 8], "\(isa)")
        XCTAssertEqual(bytes(augment(ctx, img, H: 3, W: 3, C: 1, pad: 1, oy: 1, ox: 1, flip: true)),
                       [2, 1, 0, 5, 4, 3, 8, 7, 6], "\(isa)")
        // Crop first, then flip: crop of [10 20 30 40] at ox = 2 is [20 30 40 30], flipped
        // [30 40 30 20] (flipping first would give [30 20 10 20]). H = 1 reflects to row 0.
        XCTAssertEqual(bytes(augment(ctx, [10, 20, 30, 40], H: 1, W: 4, C: 1, pad: 1, oy: 1, ox: 2,
                                     flip: true)),
                       [30, 40, 30, 20], "\(isa)")
        // A flip moves whole pixels: channel order is kept.
        XCTAssertEqual(bytes(augment(ctx, [1, 2, 3, 4, 5, 6], H: 1, W: 2, C: 3, pad: 0, oy: 0, ox: 0,
                                     flip: true)),
                       [4, 5, 6, 1, 2, 3], "\(isa)")
      }
    }
  }

  func testPadZeroIsThePlainConversion() {
    var rng = TestRNG(seed: 401)
    let (H, W, C) = (32, 32, 3)
    let src = (0..<H * W * C).map { _ in UInt8(truncatingIfNeeded: rng.next()) } + [0, 255]
    for isa in supportedISAs {
      let out = withKernels(isa: isa) { ctx in
        augment(ctx, Array(src.prefix(H * W * C)), H: H, W: W, C: C, pad: 0, oy: 0, ox: 0, flip: false)
      }
      XCTAssertEqual(out, src.prefix(H * W * C).map { Float($0) * Self.inv }, "\(isa)")
    }
    let ends = withKernels(isa: BS_ISA_REF) { ctx in
      augment(ctx, [0, 255], H: 1, W: 1, C: 2, pad: 0, oy: 0, ox: 0, flip: false)
    }
    XCTAssertEqual(ends, [0, 1])
  }

  func testMatchesTheDefinitionOverShapesOffsetsAndFlips() {
    var rng = TestRNG(seed: 402)
    for isa in supportedISAs {
      var mm = Mismatches("augment \(isa)")
      for (H, W, C, pad) in [(1, 1, 1, 1), (2, 3, 1, 1), (3, 2, 3, 2), (5, 4, 3, 4), (4, 9, 8, 2),
                             (8, 8, 16, 3), (32, 32, 3, 4)]
      {
        let src = (0..<H * W * C).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        for oy in 0...2 * pad {
          for ox in 0...2 * pad {
            for flip in [false, true] {
              let got = withKernels(isa: isa) { ctx in
                augment(ctx, src, H: H, W: W, C: C, pad: pad, oy: oy, ox: ox, flip: flip)
              }
              let want = Self.model(src, H: H, W: W, C: C, pad: pad, oy: oy, ox: ox, flip: flip)
              mm.check(got == want, "H\(H) W\(W) C\(C) pad\(pad) (\(oy), \(ox)) flip \(flip)")
            }
          }
        }
      }
      mm.report()
    }
  }
}
