import Datasets
import Foundation

/// The run's figures drawn on a `Canvas`: heatmaps, line and bar charts, labelled image grids,
/// scatter plots with a legend. Every figure has a title; axes have titles and numbered ticks.
package enum Charts {
    // MARK: Confusion heatmap

    /// Where a heatmap put its cells (rows: true class, columns: predicted), for tests and callers.
    package struct HeatmapLayout: Sendable {
        package var cells: [[PixelRect]]
    }

    /// One heatmap panel at (x, y): seaborn's `heatmap(annot=True, cmap='Blues')`. Counts are
    /// coloured from 0 to the largest count; `normalised` divides each row by its sum (the recall of
    /// the row's class on the diagonal) and colours 0...1. Annotations are white on dark cells.
    /// Returns the cells' rectangles.
    @discardableResult
    package static func drawHeatmap(_ canvas: inout Canvas, counts: [[Int]], classes: [String], normalised: Bool,
                                     title: String, x: Int, y: Int, cell: Int) -> HeatmapLayout {
        let k = classes.count
        let labelW = (classes.map { BitmapFont.width($0, scale: 2) }.max() ?? 0) + 12
        let gridX = x + 30 + labelW, gridY = y + 40
        canvas.text(title, x: gridX + k * cell / 2, y: y + 8, scale: 2, align: .center)
        let maxCount = max(counts.joined().max() ?? 0, 1)
        var cells = [[PixelRect]](repeating: [], count: k)
        for r in 0..<k {
            let rowSum = counts[r].reduce(0, +)
            for c in 0..<k {
                let n = counts[r][c]
                let v = normalised ? (rowSum > 0 ? Double(n) / Double(rowSum) : 0) : Double(n) / Double(maxCount)
                let rect = PixelRect(x: gridX + c * cell, y: gridY + r * cell, width: cell, height: cell)
                let colour = RGB.blues(v)
                canvas.fill(rect, colour)
                cells[r].append(rect)
                let label = normalised ? String(format: "%.2f", v) : "\(n)"
                let scale = BitmapFont.width(label, scale: 2) <= cell - 4 ? 2 : 1
                canvas.text(label, x: rect.midX, y: rect.midY, scale: scale, color: colour.luma < 140 ? .white : .black,
                            align: .center, middle: true)
            }
            canvas.text(classes[r], x: gridX - 8, y: gridY + r * cell + cell / 2, scale: 2, align: .right, middle: true)
        }
        canvas.stroke(PixelRect(x: gridX - 1, y: gridY - 1, width: k * cell + 2, height: k * cell + 2), .grey)
        let below = gridY + k * cell + 8
        let longest = classes.map { BitmapFont.width($0, scale: 2) }.max() ?? 0
        for c in 0..<k {
            // Column labels read bottom to top, their ends lined up under the grid.
            let w = BitmapFont.width(classes[c], scale: 2)
            canvas.verticalText(classes[c], x: gridX + c * cell + cell / 2, y: below + w / 2, scale: 2)
        }
        canvas.text("predicted class", x: gridX + k * cell / 2, y: below + longest + 10, scale: 2, align: .center)
        canvas.verticalText("true class", x: x + 12, y: gridY + k * cell / 2, scale: 2)
        // Colour bar.
        let barX = gridX + k * cell + 16, barH = k * cell
        for i in 0..<barH { canvas.fill(PixelRect(x: barX, y: gridY + i, width: 16, height: 1), .blues(1 - Double(i) / Double(max(barH - 1, 1)))) }
        canvas.stroke(PixelRect(x: barX - 1, y: gridY - 1, width: 18, height: barH + 2), .grey)
        canvas.text(normalised ? "1.0" : "\(maxCount)", x: barX + 22, y: gridY, scale: 2)
        canvas.text(normalised ? "0.0" : "0", x: barX + 22, y: gridY + barH - 14, scale: 2)
        return HeatmapLayout(cells: cells)
    }

    /// Size of one heatmap panel (see `drawHeatmap`).
    package static func heatmapSize(classes: [String], cell: Int) -> (width: Int, height: Int) {
        let labelW = (classes.map { BitmapFont.width($0, scale: 2) }.max() ?? 0) + 12
        let longest = classes.map { BitmapFont.width($0, scale: 2) }.max() ?? 0
        return (30 + labelW + classes.count * cell + 16 + 18 + 8 + BitmapFont.width("00000", scale: 2) + 16,
                40 + classes.count * cell + 8 + longest + 10 + 14 + 16)
    }

    /// The confusion matrix twice, side by side: counts and row-normalised.
    package static func confusionFigure(counts: [[Int]], classes: [String], title: String = "Confusion matrix (test set)")
        -> (image: DecodedImage, counts: HeatmapLayout, normalised: HeatmapLayout) {
        let cell = classes.count <= 12 ? 56 : max(20, 672 / max(classes.count, 1))
        let (pw, ph) = heatmapSize(classes: classes, cell: cell)
        var canvas = Canvas(width: 2 * pw + 20, height: ph + 50)
        canvas.text(title, x: canvas.width / 2, y: 10, scale: 3, align: .center)
        let a = drawHeatmap(&canvas, counts: counts, classes: classes, normalised: false, title: "counts", x: 10, y: 44, cell: cell)
        let b = drawHeatmap(&canvas, counts: counts, classes: classes, normalised: true,
                            title: "row-normalised (diagonal = recall)", x: pw + 10, y: 44, cell: cell)
        return (canvas.image, a, b)
    }

    // MARK: Line charts

    package struct Series: Sendable {
        package var name: String
        package var color: RGB
        package var dashed: Bool
        package var points: [(x: Double, y: Double)]
        package init(name: String, color: RGB, dashed: Bool = false, points: [(x: Double, y: Double)]) {
            self.name = name; self.color = color; self.dashed = dashed; self.points = points
        }
    }

    /// "Nice" tick values covering lo...hi (1, 2 or 5 times a power of ten apart).
    package static func ticks(_ lo: Double, _ hi: Double, count: Int = 5) -> [Double] {
        guard lo.isFinite, hi.isFinite, hi > lo else { return [lo] }
        let raw = (hi - lo) / Double(max(count, 1))
        let mag = pow(10, floor(log10(raw)))
        // The candidate nearest to the raw step on a log scale (about `count` intervals).
        let step = [1.0, 2, 5, 10].map { $0 * mag }.min { abs(log($0 / raw)) < abs(log($1 / raw)) }!
        var t = ceil(lo / step - 1e-9) * step
        var out: [Double] = []
        while t <= hi + step * 1e-9 { out.append(abs(t) < step * 1e-9 ? 0 : t); t += step }
        return out
    }

    static func tickLabel(_ v: Double, step: Double) -> String {
        if v == 0 { return "0" }
        if step < 1e-4 || abs(v) >= 1e5 { return String(format: "%.1e", v) }
        let decimals = max(0, min(4, Int(ceil(-log10(step) - 1e-9))))
        return String(format: "%.\(decimals)f", v)
    }

    /// A line chart filling `rect` of `canvas`: title, axes with ticks and titles, grid lines, one
    /// polyline per series (points on each epoch), legend in the top-right corner (or `legendAt`).
    package static func drawLineChart(_ canvas: inout Canvas, rect: PixelRect, title: String, xLabel: String, yLabel: String,
                                      series: [Series], logY: Bool = false, legend: Bool = true, legendBottom: Bool = false) {
        canvas.text(title, x: rect.midX, y: rect.y + 4, scale: 2, align: .center)
        let all = series.flatMap { $0.points }.filter { $0.x.isFinite && $0.y.isFinite && (!logY || $0.y > 0) }
        func ty(_ v: Double) -> Double { logY ? log10(v) : v }
        var (x0, x1) = (all.map(\.x).min() ?? 0, all.map(\.x).max() ?? 1)
        var (y0, y1) = (all.map { ty($0.y) }.min() ?? 0, all.map { ty($0.y) }.max() ?? 1)
        if x1 <= x0 { x0 -= 0.5; x1 += 0.5 }
        if y1 <= y0 { let d = y0 != 0 ? abs(y0) * 0.1 : 1; y0 -= d; y1 += d }
        let pad = (y1 - y0) * 0.05
        y0 -= pad; y1 += pad
        // The y tick labels decide the left margin (the axis title stays clear of them).
        let yt = ticks(y0, y1, count: 5)
        let ys = yt.count > 1 ? yt[1] - yt[0] : 1
        let yLabels = logY ? (Int(floor(y0))...Int(ceil(y1))).map { String(format: "1e%d", $0) } : yt.map { tickLabel($0, step: ys) }
        let labelW = yLabels.map { BitmapFont.width($0, scale: 2) }.max() ?? 0
        let left = 30 + labelW + 14
        let plot = PixelRect(x: rect.x + left, y: rect.y + 30, width: rect.width - left - 20, height: rect.height - 90)
        canvas.stroke(plot, .black)
        canvas.text(xLabel, x: plot.midX, y: plot.y + plot.height + 34, scale: 2, align: .center)
        canvas.verticalText(yLabel, x: rect.x + 12, y: plot.midY, scale: 2)
        guard !all.isEmpty else {
            canvas.text("no data", x: plot.midX, y: plot.midY, scale: 2, color: .grey, align: .center, middle: true)
            return
        }
        func px(_ v: Double) -> Int { plot.x + Int(((v - x0) / (x1 - x0) * Double(plot.width - 1)).rounded()) }
        func py(_ v: Double) -> Int { plot.y + plot.height - 1 - Int(((ty(v) - y0) / (y1 - y0) * Double(plot.height - 1)).rounded()) }
        // Ticks: x at integers when the range is small (epochs).
        var xt = ticks(x0, x1, count: 6)
        if x1 - x0 <= 12 && x0 == x0.rounded() { xt = stride(from: x0, through: x1, by: 1).map { $0 } }
        let xs = xt.count > 1 ? xt[1] - xt[0] : 1
        for t in xt {
            let p = px(t)
            canvas.line(p, plot.y + 1, p, plot.y + plot.height - 2, .lightGrey)
            canvas.line(p, plot.y + plot.height, p, plot.y + plot.height + 4, .black)
            canvas.text(tickLabel(t, step: xs), x: p, y: plot.y + plot.height + 8, scale: 2, align: .center)
        }
        if logY {
            for e in Int(floor(y0))...Int(ceil(y1)) where Double(e) >= y0 && Double(e) <= y1 {
                let p = plot.y + plot.height - 1 - Int(((Double(e) - y0) / (y1 - y0) * Double(plot.height - 1)).rounded())
                canvas.line(plot.x + 1, p, plot.x + plot.width - 2, p, .lightGrey)
                canvas.line(plot.x - 4, p, plot.x, p, .black)
                canvas.text(String(format: "1e%d", e), x: plot.x - 8, y: p, scale: 2, align: .right, middle: true)
            }
        } else {
            for t in yt {
                let p = plot.y + plot.height - 1 - Int(((t - y0) / (y1 - y0) * Double(plot.height - 1)).rounded())
                canvas.line(plot.x + 1, p, plot.x + plot.width - 2, p, .lightGrey)
                canvas.line(plot.x - 4, p, plot.x, p, .black)
                canvas.text(tickLabel(t, step: ys), x: plot.x - 8, y: p, scale: 2, align: .right, middle: true)
            }
        }
        for s in series {
            let pts = s.points.filter { $0.x.isFinite && $0.y.isFinite && (!logY || $0.y > 0) }
            for (a, b) in zip(pts, pts.dropFirst()) {
                canvas.line(px(a.x), py(a.y), px(b.x), py(b.y), s.color, thickness: 3, dash: s.dashed ? 8 : 0)
            }
            for p in pts { canvas.fill(PixelRect(x: px(p.x) - 3, y: py(p.y) - 3, width: 7, height: 7), s.color) }
        }
        guard legend else { return }
        let entries = series.map { ($0.name, $0.color, $0.dashed) }
        let lw = 24 + 8 + (series.map { BitmapFont.width($0.name, scale: 2) }.max() ?? 0) + 12
        let lh = series.count * (BitmapFont.lineHeight * 2 + 4) + 8
        canvas.legend(entries, x: plot.x + plot.width - lw - 6, y: legendBottom ? plot.y + plot.height - lh - 6 : plot.y + 6)
    }

    // MARK: Bar chart

    /// Grouped bars: one group per category, one bar per series (values in 0...1), legend, category
    /// names under the groups (rotated when long).
    package static func barChart(title: String, categories: [String], series: [(name: String, values: [Double])],
                                 yLabel: String) -> DecodedImage {
        let group = max(series.count * 18 + 24, 60)
        let longest = categories.map { BitmapFont.width($0, scale: 2) }.max() ?? 0
        let plot = PixelRect(x: 100, y: 60, width: categories.count * group, height: 360)
        var canvas = Canvas(width: plot.x + plot.width + 60 + 200, height: plot.y + plot.height + longest + 30)
        canvas.text(title, x: canvas.width / 2, y: 14, scale: 3, align: .center)
        for t in stride(from: 0.0, through: 1.0, by: 0.2) {
            let p = plot.y + plot.height - Int((t * Double(plot.height)).rounded())
            canvas.line(plot.x, p, plot.x + plot.width, p, .lightGrey)
            canvas.line(plot.x - 4, p, plot.x, p, .black)
            canvas.text(String(format: "%.1f", t), x: plot.x - 8, y: p, scale: 2, align: .right, middle: true)
        }
        for (ci, name) in categories.enumerated() {
            let gx = plot.x + ci * group + 12
            for (si, s) in series.enumerated() {
                let v = min(max(s.values[ci].isFinite ? s.values[ci] : 0, 0), 1)
                let h = Int((v * Double(plot.height)).rounded())
                canvas.fill(PixelRect(x: gx + si * 18, y: plot.y + plot.height - h, width: 16, height: h), .category(si))
            }
            let w = BitmapFont.width(name, scale: 2)
            canvas.verticalText(name, x: plot.x + ci * group + group / 2, y: plot.y + plot.height + 8 + w / 2, scale: 2)
        }
        canvas.line(plot.x, plot.y, plot.x, plot.y + plot.height, .black)
        canvas.line(plot.x, plot.y + plot.height, plot.x + plot.width, plot.y + plot.height, .black)
        canvas.verticalText(yLabel, x: 20, y: plot.midY, scale: 2)
        canvas.legend(series.enumerated().map { ($0.element.name, RGB.category($0.offset), false) }, x: plot.x + plot.width + 20, y: plot.y)
        return canvas.image
    }

    // MARK: Image grids

    package struct Tile: Sendable {
        package var image: DecodedImage
        package var caption: [String]
        package var captionColor: RGB
        package init(image: DecodedImage, caption: [String], captionColor: RGB = .black) {
            self.image = image; self.caption = caption; self.captionColor = captionColor
        }
    }

    /// Images in a grid, `columns` per row, each enlarged `scale` times with its caption lines under
    /// it, a title above. Returns the image and each tile's top-left corner.
    package static func imageGrid(_ tiles: [Tile], columns: Int, scale: Int, title: String, subtitle: String? = nil)
        -> (image: DecodedImage, origins: [(x: Int, y: Int)]) {
        let tw = tiles.map { $0.image.width }.max() ?? 32, th = tiles.map { $0.image.height }.max() ?? 32
        let lines = tiles.map { $0.caption.count }.max() ?? 0
        let longest = tiles.flatMap { $0.caption }.map { BitmapFont.width($0, scale: 1) }.max() ?? 0
        // Captions at scale 2 unless that would make a cell wider than 240 pixels.
        let captionScale = 2 * longest + 12 <= max(tw * scale, 240) ? 2 : 1
        let longestAtScale = tiles.flatMap { $0.caption }.map { BitmapFont.width($0, scale: captionScale) }.max() ?? 0
        let cellW = max(tw * scale, longestAtScale) + 12
        let cellH = th * scale + lines * BitmapFont.lineHeight * captionScale + 14
        let cols = max(1, min(columns, tiles.count))
        let rows = (tiles.count + cols - 1) / cols
        let top = subtitle == nil ? 48 : 72
        let width = max(cols * cellW + 20, BitmapFont.width(title, scale: 3) + 40, BitmapFont.width(subtitle ?? "", scale: 2) + 40)
        var canvas = Canvas(width: width, height: top + max(rows, 1) * cellH + 10)
        canvas.text(title, x: canvas.width / 2, y: 12, scale: 3, align: .center)
        if let subtitle { canvas.text(subtitle, x: canvas.width / 2, y: 44, scale: 2, color: RGB(70, 70, 70), align: .center) }
        var origins: [(x: Int, y: Int)] = []
        let left = (canvas.width - cols * cellW) / 2
        for (i, t) in tiles.enumerated() {
            let cx = left + (i % cols) * cellW, cy = top + (i / cols) * cellH
            let ox = cx + (cellW - t.image.width * scale) / 2
            canvas.draw(t.image, x: ox, y: cy, scale: scale)
            origins.append((ox, cy))
            for (li, line) in t.caption.enumerated() {
                canvas.text(line, x: cx + cellW / 2, y: cy + t.image.height * scale + 4 + li * BitmapFont.lineHeight * captionScale,
                            scale: captionScale, color: li == 0 ? t.captionColor : .black, align: .center)
            }
        }
        return (canvas.image, origins)
    }

    /// `image` with caption lines in a white band above it and an optional legend-free title.
    package static func captioned(_ image: DecodedImage, lines: [String], scale: Int = 2) -> DecodedImage {
        let longest = lines.map { BitmapFont.width($0, scale: scale) }.max() ?? 0
        let band = lines.count * BitmapFont.lineHeight * scale + 12
        var canvas = Canvas(width: max(image.width, longest + 16), height: image.height + band)
        for (i, l) in lines.enumerated() { canvas.text(l, x: canvas.width / 2, y: 6 + i * BitmapFont.lineHeight * scale, scale: scale, align: .center) }
        canvas.draw(image, x: (canvas.width - image.width) / 2, y: band)
        return canvas.image
    }

    // MARK: Scatter plot

    /// A 2-D scatter plot (points (n, 2) interleaved) coloured by class (tab10), with a title and a
    /// legend naming each class's colour.
    package static func scatter(_ y: [Double], labels: [Int32], classNames: [String], title: String, size: Int = 800) -> DecodedImage {
        let plotImage = Visualization.scatterPlot(y, labels: labels, size: size)
        let legendW = 24 + 8 + (classNames.map { BitmapFont.width($0, scale: 2) }.max() ?? 0) + 12
        var canvas = Canvas(width: size + legendW + 40, height: size + 60)
        canvas.text(title, x: size / 2 + 10, y: 14, scale: 3, align: .center)
        canvas.draw(plotImage, x: 10, y: 50)
        canvas.stroke(PixelRect(x: 9, y: 49, width: size + 2, height: size + 2), .grey)
        canvas.legend(classNames.enumerated().map { ($0.element, RGB.category($0.offset), false) }, x: size + 24, y: 50)
        return canvas.image
    }
}
