import Foundation

/// Draws a CKA heatmap: a title, the matrix as square cells (row 0 at the top, column 0 on
/// the left) coloured with viridis, undefined cells grey, row names on the left, column names
/// below (turned upwards), and a colour bar with tick labels on the right.
struct HeatmapImage {
  /// Where things are, for callers and tests.
  struct Layout: Equatable {
    var width: Int
    var height: Int
    /// Top-left of the matrix and the side of one cell, in pixels.
    var matrixX: Int
    var matrixY: Int
    var cell: Int
    /// The colour bar: `low` at the bottom, `high` at the top.
    var barX: Int
    var barY: Int
    var barWidth: Int
    var barHeight: Int
    /// Every `rowLabelStep`-th row and `columnLabelStep`-th column is labelled.
    var rowLabelStep: Int
    var columnLabelStep: Int
  }

  var values: [Double?]
  var rows: Int
  var columns: Int
  var rowNames: [String]
  var columnNames: [String]
  var title: String
  var subtitle: String

  static let margin = 10
  /// Labels longer than this are shortened in the middle.
  static let maxLabelCharacters = 18
  /// The matrix's longer side aims at about this many pixels.
  static let targetMatrixSide = 720
  static let maxCell = 24
  static let minCell = 2
  static let barWidth = 16
  static let minBarHeight = 120

  init(values: [Double?], rows: Int, columns: Int, rowNames: [String], columnNames: [String],
       title: String, subtitle: String = "") {
    precondition(rows > 0 && columns > 0 && values.count == rows * columns,
                 "a heatmap of \(rows) x \(columns) needs that many values, not \(values.count)")
    self.values = values
    self.rows = rows
    self.columns = columns
    self.rowNames = rowNames.count == rows ? rowNames : (0..<rows).map(String.init)
    self.columnNames = columnNames.count == columns ? columnNames : (0..<columns).map(String.init)
    self.title = title
    self.subtitle = subtitle
  }

  /// The colour scale: [0, 1], widened to the data when a value lies outside (the unbiased
  /// estimator can go slightly below 0).
  var scale: (low: Double, high: Double) {
    let defined = values.compactMap { $0 }.filter(\.isFinite)
    let low = min(0, defined.min() ?? 0)
    let high = max(1, defined.max() ?? 1)
    return (low, high)
  }

  var hasUndefined: Bool { values.contains { $0 == nil || !$0!.isFinite } }

  /// `s2.b3.conv1` stays; longer names keep their start and end: `stage2.blo..b3.conv1`.
  static func shorten(_ name: String, to limit: Int = HeatmapImage.maxLabelCharacters) -> String {
    guard name.count > limit, limit >= 5 else { return name }
    let tail = (limit - 2) * 2 / 3
    let head = limit - 2 - tail
    return String(name.prefix(head)) + ".." + String(name.suffix(tail))
  }

  /// Tick values and their labels for the scale.
  static func ticks(low: Double, high: Double) -> [(value: Double, label: String)] {
    let middle = (low + high) / 2
    return [low, middle, high].map { ($0, tickLabel($0)) }
  }

  /// `0`, `0.5`, `1`, `-0.03`: at most three decimals, no trailing zeros.
  static func tickLabel(_ value: Double) -> String {
    var text = String(format: "%.3f", value)
    while text.contains(".") && (text.hasSuffix("0") || text.hasSuffix(".")) { text.removeLast() }
    return text == "-0" ? "0" : text
  }

  var layout: Layout {
    let longest = max(rows, columns)
    let cell = min(Self.maxCell, max(Self.minCell, Self.targetMatrixSide / longest))
    let matrixWidth = cell * columns, matrixHeight = cell * rows
    // One label per line height (9 px) at least.
    let rowStep = max(1, Int((Double(BitmapFont.lineHeight) / Double(cell)).rounded(.up)))
    let columnStep = max(1, Int((Double(BitmapFont.lineHeight) / Double(cell)).rounded(.up)))
    let rowLabels = stride(from: 0, to: rows, by: rowStep).map { Self.shorten(rowNames[$0]) }
    let columnLabels = stride(from: 0, to: columns, by: columnStep).map { Self.shorten(columnNames[$0]) }
    let rowLabelWidth = rowLabels.map { BitmapFont.width(of: $0) }.max() ?? 0
    let columnLabelHeight = columnLabels.map { BitmapFont.width(of: $0) }.max() ?? 0

    let (low, high) = scale
    let tickWidth = Self.ticks(low: low, high: high).map { BitmapFont.width(of: $0.label) }.max() ?? 0
    let legendWidth = hasUndefined ? 10 + BitmapFont.width(of: "undefined") : 0
    let titleHeight = 2 * BitmapFont.glyphHeight + (subtitle.isEmpty ? 0 : 4 + BitmapFont.glyphHeight)

    let matrixX = Self.margin + rowLabelWidth + 6
    let matrixY = Self.margin + titleHeight + 10
    let barHeight = max(matrixHeight, Self.minBarHeight)
    let barX = matrixX + matrixWidth + 16
    let barY = matrixY
    let rightEdge = max(barX + Self.barWidth + 6 + tickWidth, barX + legendWidth) + Self.margin
    let legendHeight = hasUndefined ? 14 : 0
    let bottom = max(matrixY + matrixHeight + 6 + columnLabelHeight, barY + barHeight + 6 + legendHeight)
    let titleWidth = max(BitmapFont.width(of: title, scale: 2), BitmapFont.width(of: subtitle))
    let width = max(rightEdge, Self.margin + titleWidth + Self.margin)
    return Layout(width: width, height: bottom + Self.margin, matrixX: matrixX, matrixY: matrixY,
                  cell: cell, barX: barX, barY: barY, barWidth: Self.barWidth,
                  barHeight: barHeight, rowLabelStep: rowStep, columnLabelStep: columnStep)
  }

  func render() -> RasterImage {
    let l = layout
    var image = RasterImage(width: l.width, height: l.height)
    let (low, high) = scale

    image.draw(title, x: Self.margin, y: Self.margin, scale: 2)
    if !subtitle.isEmpty {
      image.draw(subtitle, x: Self.margin, y: Self.margin + 2 * BitmapFont.glyphHeight + 4,
                 color: RGB(64, 64, 64))
    }

    // The cells.
    for row in 0..<rows {
      for column in 0..<columns {
        let color = Colormap.color(values[row * columns + column], low: low, high: high)
        image.fill(x: l.matrixX + column * l.cell, y: l.matrixY + row * l.cell,
                   width: l.cell, height: l.cell, color)
      }
    }

    // Row names, right-aligned against the matrix, centred on their row.
    for row in stride(from: 0, to: rows, by: l.rowLabelStep) {
      let label = Self.shorten(rowNames[row])
      let y = l.matrixY + row * l.cell + (l.cell - BitmapFont.glyphHeight) / 2
      image.draw(label, x: l.matrixX - 6 - BitmapFont.width(of: label), y: y)
    }
    // Column names below the matrix, reading upwards, ending just under it.
    for column in stride(from: 0, to: columns, by: l.columnLabelStep) {
      let label = Self.shorten(columnNames[column])
      let x = l.matrixX + column * l.cell + (l.cell - BitmapFont.glyphHeight) / 2
      let top = l.matrixY + rows * l.cell + 6
      image.drawUpwards(label, x: x, bottom: top + BitmapFont.width(of: label) - 1)
    }

    // The colour bar: high at the top.
    for offset in 0..<l.barHeight {
      let t = l.barHeight == 1 ? 1 : 1 - Double(offset) / Double(l.barHeight - 1)
      image.fill(x: l.barX, y: l.barY + offset, width: l.barWidth, height: 1, Colormap.viridis(t))
    }
    image.frame(x: l.barX - 1, y: l.barY - 1, width: l.barWidth + 2, height: l.barHeight + 2, .black)
    for tick in Self.ticks(low: low, high: high) {
      let t = high > low ? (tick.value - low) / (high - low) : 0.5
      let y = l.barY + Int(((1 - t) * Double(l.barHeight - 1)).rounded())
      image.fill(x: l.barX + l.barWidth + 1, y: y, width: 3, height: 1, .black)
      let labelY = min(max(y - BitmapFont.glyphHeight / 2, l.barY - 3),
                       l.barY + l.barHeight + 3 - BitmapFont.glyphHeight)
      image.draw(tick.label, x: l.barX + l.barWidth + 6, y: labelY)
    }
    if hasUndefined {
      let y = l.barY + l.barHeight + 6
      image.fill(x: l.barX, y: y, width: 8, height: 8, RGB.undefined)
      image.draw("undefined", x: l.barX + 10, y: y)
    }
    return image
  }
}
