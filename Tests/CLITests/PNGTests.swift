import CPNG
import XCTest
@testable import blockscope

/// A PNG read back with libpng's simplified API as 8-bit RGB.
struct DecodedPNG {
  var width: Int
  var height: Int
  var pixels: [UInt8]

  init(path: String) throws {
    var control = png_image()
    control.version = png_uint_32(PNG_IMAGE_VERSION)
    guard png_image_begin_read_from_file(&control, path) != 0 else {
      throw OutputError("libpng cannot read \(path): \(PNGWriter.message(of: control))")
    }
    control.format = png_uint_32(PNG_FORMAT_FLAG_COLOR)  // PNG_FORMAT_RGB
    let w = Int(control.width), h = Int(control.height)
    width = w
    height = h
    var buffer = [UInt8](repeating: 0, count: w * h * 3)
    let ok = buffer.withUnsafeMutableBytes {
      png_image_finish_read(&control, nil, $0.baseAddress, png_int_32(w * 3), nil)
    }
    guard ok != 0 else {
      let message = PNGWriter.message(of: control)
      png_image_free(&control)
      throw OutputError("libpng cannot decode \(path): \(message)")
    }
    pixels = buffer
  }

  subscript(x: Int, y: Int) -> RGB {
    let i = 3 * (y * width + x)
    return RGB(pixels[i], pixels[i + 1], pixels[i + 2])
  }
}

final class PNGTests: XCTestCase {
  func testWritesAnRGBImageLibpngReadsBack() throws {
    var image = RasterImage(width: 7, height: 5)
    image[0, 0] = RGB(1, 2, 3)
    image.fill(x: 2, y: 1, width: 3, height: 2, RGB(200, 100, 50))
    let directory = try temporaryDirectory("png")
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = directory + "/small.png"
    try PNGWriter.write(image, to: path)
    let bytes = try Files.read(path)
    XCTAssertEqual(Array(bytes.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
    let decoded = try DecodedPNG(path: path)
    XCTAssertEqual(decoded.width, 7)
    XCTAssertEqual(decoded.height, 5)
    XCTAssertEqual(decoded.pixels, image.pixels)
  }

  func testAWriteIntoAMissingDirectoryNamesTheCallAndPath() {
    let image = RasterImage(width: 2, height: 2)
    XCTAssertThrowsError(try PNGWriter.write(image, to: "/nonexistent-dir-\(getpid())/x.png")) { error in
      let text = "\(error)"
      XCTAssertTrue(text.hasPrefix("open(/nonexistent-dir-"), text)
      XCTAssertTrue(text.contains("No such file or directory"), text)
    }
  }

  func testHeatmapPNGHasTheCellsTheColourBarAndTheLabels() throws {
    // 3 x 4 with one undefined cell and a value below 0 (the scale widens to it).
    let values: [Double?] = [1, 0.5, 0, 0.25,
                             0.75, nil, 0.9, -0.1,
                             0.2, 0.4, 0.6, 0.8]
    let heatmap = HeatmapImage(values: values, rows: 3, columns: 4,
                               rowNames: ["stem.conv", "s1.b0.add", "pool"],
                               columnNames: ["a", "b", "c", "d"], title: "m1 vs m2",
                               subtitle: "unbiased CKA")
    let layout = heatmap.layout
    XCTAssertEqual(heatmap.scale.low, -0.1)
    XCTAssertEqual(heatmap.scale.high, 1)
    let directory = try temporaryDirectory("heatmap")
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = directory + "/heatmap.png"
    try PNGWriter.write(heatmap.render(), to: path)
    let png = try DecodedPNG(path: path)
    XCTAssertEqual(png.width, layout.width)
    XCTAssertEqual(png.height, layout.height)

    func cellCentre(_ row: Int, _ column: Int) -> RGB {
      png[layout.matrixX + column * layout.cell + layout.cell / 2, layout.matrixY + row * layout.cell + layout.cell / 2]
    }
    XCTAssertEqual(cellCentre(0, 0), Colormap.viridis(1))
    XCTAssertEqual(cellCentre(0, 1), Colormap.viridis((0.5 + 0.1) / 1.1))
    XCTAssertEqual(cellCentre(1, 3), Colormap.viridis(0))
    XCTAssertEqual(cellCentre(1, 1), RGB.undefined)
    // Every pixel of a cell has its colour (square blocks, no grid).
    for dy in 0..<layout.cell {
      for dx in 0..<layout.cell {
        XCTAssertEqual(png[layout.matrixX + 2 * layout.cell + dx, layout.matrixY + 1 * layout.cell + dy],
                       Colormap.viridis(1.0 / 1.1))
      }
    }

    // The colour bar: the top is the high end, the bottom the low end, framed in black.
    let barCentre = layout.barX + layout.barWidth / 2
    XCTAssertEqual(png[barCentre, layout.barY], Colormap.viridis(1))
    XCTAssertEqual(png[barCentre, layout.barY + layout.barHeight - 1], Colormap.viridis(0))
    XCTAssertEqual(png[barCentre, layout.barY - 1], RGB.black)
    XCTAssertGreaterThan(png[barCentre, layout.barY + layout.barHeight / 4].luminance,
                         png[barCentre, layout.barY + 3 * layout.barHeight / 4].luminance)

    // Tick labels: black text right of the bar, near the top and the bottom ends.
    func blackPixels(x: Range<Int>, y: Range<Int>) -> Int {
      var count = 0
      for yy in y where yy >= 0 && yy < png.height {
        for xx in x where xx >= 0 && xx < png.width && png[xx, yy] == RGB.black { count += 1 }
      }
      return count
    }
    let labelX = (layout.barX + layout.barWidth + 6)..<(layout.barX + layout.barWidth + 40)
    XCTAssertGreaterThan(blackPixels(x: labelX, y: (layout.barY - 4)..<(layout.barY + 8)), 5)
    XCTAssertGreaterThan(blackPixels(x: labelX, y: (layout.barY + layout.barHeight - 8)..<(layout.barY + layout.barHeight + 4)), 5)
    // Row labels left of the matrix, column labels below it, the title above.
    XCTAssertGreaterThan(blackPixels(x: 0..<layout.matrixX, y: layout.matrixY..<(layout.matrixY + layout.cell)), 5)
    XCTAssertGreaterThan(blackPixels(x: layout.matrixX..<(layout.matrixX + 4 * layout.cell),
                                     y: (layout.matrixY + 3 * layout.cell)..<png.height), 5)
    XCTAssertGreaterThan(blackPixels(x: 0..<png.width, y: 0..<layout.matrixY), 20)
    // The grey "undefined" legend below the bar.
    XCTAssertEqual(png[layout.barX + 3, layout.barY + layout.barHeight + 9], RGB.undefined)
  }

  func testLargeHeatmapsLabelEveryKthRepresentation() {
    let n = 200
    let heatmap = HeatmapImage(values: Array(repeating: 0.5, count: n * n), rows: n, columns: n,
                               rowNames: (0..<n).map { "s\($0 / 50).b\($0 % 50).conv1" },
                               columnNames: (0..<n).map { "r\($0)" }, title: "big")
    let layout = heatmap.layout
    XCTAssertEqual(layout.cell, 3)
    XCTAssertEqual(layout.rowLabelStep, 3)
    XCTAssertEqual(layout.columnLabelStep, 3)
    let image = heatmap.render()
    XCTAssertEqual(image.width, layout.width)
    XCTAssertFalse(heatmap.hasUndefined)
  }

  func testColourScaleTicks() {
    XCTAssertEqual(HeatmapImage.ticks(low: 0, high: 1).map(\.label), ["0", "0.5", "1"])
    XCTAssertEqual(HeatmapImage.ticks(low: -0.1, high: 1).map(\.label), ["-0.1", "0.45", "1"])
    XCTAssertEqual(HeatmapImage.tickLabel(-0.0001), "0")
    XCTAssertEqual(HeatmapImage.shorten("s2.b3.conv1"), "s2.b3.conv1")
    let long = HeatmapImage.shorten("stage2.block13.projection_bn")
    XCTAssertEqual(long.count, HeatmapImage.maxLabelCharacters)
    XCTAssertEqual(long, "stage2..jection_bn")
  }
}

final class ColormapTests: XCTestCase {
  func testViridisEndsAndMiddle() {
    XCTAssertEqual(Colormap.viridis(0), RGB(68, 1, 84))
    XCTAssertEqual(Colormap.viridis(1), RGB(253, 231, 37))
    XCTAssertEqual(Colormap.viridis(0.5), RGB(33, 144, 140))
    XCTAssertEqual(Colormap.viridis(-3), Colormap.viridis(0))
    XCTAssertEqual(Colormap.viridis(7), Colormap.viridis(1))
    XCTAssertEqual(Colormap.viridis(.nan), Colormap.viridis(0))
    XCTAssertEqual(Colormap.viridisAnchors.count, 33)
  }

  func testViridisLuminanceRisesMonotonically() {
    var previous = -1.0
    for step in 0...200 {
      let luminance = Colormap.viridis(Double(step) / 200).luminance
      XCTAssertGreaterThanOrEqual(luminance, previous - 0.5, "step \(step)")
      previous = luminance
    }
    XCTAssertGreaterThan(Colormap.viridis(1).luminance - Colormap.viridis(0).luminance, 150)
  }

  func testScaleAndUndefinedGrey() {
    XCTAssertEqual(Colormap.color(nil, low: 0, high: 1), RGB.undefined)
    XCTAssertEqual(Colormap.color(.nan, low: 0, high: 1), RGB.undefined)
    XCTAssertEqual(Colormap.color(0.5, low: 0, high: 1), Colormap.viridis(0.5))
    XCTAssertEqual(Colormap.color(3, low: 2, high: 4), Colormap.viridis(0.5))
    // Grey is far from every viridis colour.
    for step in 0...100 {
      let c = Colormap.viridis(Double(step) / 100), g = RGB.undefined
      let distance = abs(Int(c.r) - Int(g.r)) + abs(Int(c.g) - Int(g.g)) + abs(Int(c.b) - Int(g.b))
      XCTAssertGreaterThan(distance, 60, "t = \(Double(step) / 100)")
    }
  }
}

final class BitmapFontTests: XCTestCase {
  func testTheTableCoversPrintableASCII() {
    XCTAssertEqual(BitmapFont.table.count, 95)
    for (index, glyph) in BitmapFont.table.enumerated() {
      XCTAssertEqual(glyph.count, BitmapFont.glyphHeight, "glyph \(index)")
      for row in glyph {
        XCTAssertEqual(row.count, BitmapFont.glyphWidth, "glyph \(index)")
        XCTAssertTrue(row.allSatisfy { $0 == "#" || $0 == "." }, "glyph \(index): \(row)")
      }
      // Every glyph but the space sets a pixel.
      if index > 0 { XCTAssertTrue(glyph.joined().contains("#"), "glyph \(index)") }
    }
    // Distinct glyphs for distinct characters.
    XCTAssertEqual(Set(BitmapFont.table.map { $0.joined() }).count, 95)
  }

  func testGlyphLookupAndDrawing() {
    XCTAssertTrue(BitmapFont.isSet("|", x: 2, y: 0))
    XCTAssertFalse(BitmapFont.isSet("|", x: 0, y: 0))
    XCTAssertEqual(BitmapFont.glyph("é"), BitmapFont.glyph("?"))
    XCTAssertEqual(BitmapFont.width(of: "abc"), 17)
    XCTAssertEqual(BitmapFont.width(of: "abc", scale: 2), 34)
    var image = RasterImage(width: 20, height: 20)
    image.draw("_", x: 1, y: 1)
    XCTAssertEqual(image[1, 7], .black)
    XCTAssertEqual(image[5, 7], .black)
    XCTAssertEqual(image[1, 6], .white)
    // Upwards: the underscore's bottom row becomes the rightmost column, reading up.
    var turned = RasterImage(width: 20, height: 20)
    turned.drawUpwards("_", x: 2, bottom: 10)
    for dy in 0..<5 { XCTAssertEqual(turned[8, 10 - dy], .black) }
    XCTAssertEqual(turned[7, 10], .white)
  }
}
