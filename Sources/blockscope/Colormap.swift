// Perceptual colour maps for heatmaps.

/// An 8-bit RGB colour.
struct RGB: Hashable, CustomStringConvertible {
  var r: UInt8
  var g: UInt8
  var b: UInt8

  init(_ r: UInt8, _ g: UInt8, _ b: UInt8) {
    self.r = r
    self.g = g
    self.b = b
  }

  static let white = RGB(255, 255, 255)
  static let black = RGB(0, 0, 0)
  /// Undefined heatmap cells: a neutral grey that no viridis colour comes close to.
  static let undefined = RGB(150, 150, 150)

  /// Relative luminance (Rec. 709 weights on the 8-bit values; enough to order colours).
  var luminance: Double { 0.2126 * Double(r) + 0.7152 * Double(g) + 0.0722 * Double(b) }

  var description: String { "(\(r), \(g), \(b))" }
}

enum Colormap {
  /// matplotlib's viridis (van der Walt and Smith, CC0) at t = k/32, k = 0...32, sampled from
  /// its 256-entry table and rounded to 8 bits. Linear interpolation between these anchors
  /// stays within 2/255 of the full table in every channel.
  static let viridisAnchors: [RGB] = [
    RGB(68, 1, 84), RGB(71, 13, 96), RGB(72, 24, 106), RGB(72, 35, 116),
    RGB(71, 45, 123), RGB(69, 54, 129), RGB(66, 64, 134), RGB(63, 73, 137),
    RGB(59, 82, 139), RGB(55, 90, 141), RGB(51, 99, 141), RGB(47, 106, 142),
    RGB(44, 114, 142), RGB(41, 122, 142), RGB(38, 129, 142), RGB(35, 137, 142),
    RGB(33, 144, 140), RGB(31, 152, 139), RGB(31, 159, 136), RGB(33, 166, 133),
    RGB(40, 174, 128), RGB(49, 181, 123), RGB(62, 188, 116), RGB(76, 194, 108),
    RGB(93, 201, 99), RGB(110, 206, 88), RGB(130, 211, 76), RGB(150, 216, 63),
    RGB(171, 220, 50), RGB(192, 223, 36), RGB(213, 226, 26), RGB(234, 229, 26),
    RGB(253, 231, 37),
  ]

  /// Viridis at `t` in [0, 1] (clamped; NaN gives the low end).
  static func viridis(_ t: Double) -> RGB {
    let clamped = t.isNaN ? 0 : min(max(t, 0), 1)
    let position = clamped * Double(viridisAnchors.count - 1)
    let index = min(Int(position), viridisAnchors.count - 2)
    let fraction = position - Double(index)
    let a = viridisAnchors[index], b = viridisAnchors[index + 1]
    func mix(_ x: UInt8, _ y: UInt8) -> UInt8 {
      UInt8((Double(x) + (Double(y) - Double(x)) * fraction).rounded())
    }
    return RGB(mix(a.r, b.r), mix(a.g, b.g), mix(a.b, b.b))
  }

  /// The colour of a value on the scale `low...high`; nil (undefined) is grey.
  static func color(_ value: Double?, low: Double, high: Double) -> RGB {
    guard let value, value.isFinite else { return RGB.undefined }
    let span = high - low
    return viridis(span > 0 ? (value - low) / span : 0.5)
  }
}
