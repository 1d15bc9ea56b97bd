/// An 8-bit RGB raster, rows top to bottom, 3 bytes per pixel.
struct RasterImage {
  let width: Int
  let height: Int
  var pixels: [UInt8]

  init(width: Int, height: Int, background: RGB = .white) {
    precondition(width > 0 && height > 0, "an image needs a positive size, not \(width)x\(height)")
    self.width = width
    self.height = height
    pixels = [UInt8](repeating: 0, count: width * height * 3)
    for i in 0..<(width * height) {
      pixels[3 * i] = background.r
      pixels[3 * i + 1] = background.g
      pixels[3 * i + 2] = background.b
    }
  }

  subscript(x: Int, y: Int) -> RGB {
    get {
      let i = 3 * (y * width + x)
      return RGB(pixels[i], pixels[i + 1], pixels[i + 2])
    }
    set {
      guard x >= 0, y >= 0, x < width, y < height else { return }
      let i = 3 * (y * width + x)
      pixels[i] = newValue.r
      pixels[i + 1] = newValue.g
      pixels[i + 2] = newValue.b
    }
  }

  /// Fills the rectangle, clipped to the image.
  mutating func fill(x: Int, y: Int, width w: Int, height h: Int, _ color: RGB) {
    let x0 = max(0, x), y0 = max(0, y)
    let x1 = min(width, x + w), y1 = min(height, y + h)
    guard x0 < x1, y0 < y1 else { return }
    for row in y0..<y1 {
      for column in x0..<x1 { self[column, row] = color }
    }
  }

  /// A one-pixel rectangle outline.
  mutating func frame(x: Int, y: Int, width w: Int, height h: Int, _ color: RGB) {
    fill(x: x, y: y, width: w, height: 1, color)
    fill(x: x, y: y + h - 1, width: w, height: 1, color)
    fill(x: x, y: y, width: 1, height: h, color)
    fill(x: x + w - 1, y: y, width: 1, height: h, color)
  }

  /// Text with its top-left corner at (x, y), each font pixel a `scale` x `scale` square.
  mutating func draw(_ text: String, x: Int, y: Int, scale: Int = 1, color: RGB = .black) {
    for (index, character) in text.enumerated() {
      let left = x + index * BitmapFont.advance * scale
      for gy in 0..<BitmapFont.glyphHeight {
        for gx in 0..<BitmapFont.glyphWidth where BitmapFont.isSet(character, x: gx, y: gy) {
          fill(x: left + gx * scale, y: y + gy * scale, width: scale, height: scale, color)
        }
      }
    }
  }

  /// Text turned 90 degrees counter-clockwise, reading upwards: it starts at (x, bottom) and
  /// its glyphs' tops face left. Occupies the columns x..<x+7 and the rows above `bottom`.
  mutating func drawUpwards(_ text: String, x: Int, bottom: Int, color: RGB = .black) {
    for (index, character) in text.enumerated() {
      let start = bottom - index * BitmapFont.advance
      for gy in 0..<BitmapFont.glyphHeight {
        for gx in 0..<BitmapFont.glyphWidth where BitmapFont.isSet(character, x: gx, y: gy) {
          self[x + gy, start - gx] = color
        }
      }
    }
  }
}
