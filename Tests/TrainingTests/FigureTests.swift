import CPUBackend
import Datasets
import Foundation
import Testing
@testable import Training

/// The figures at the pixel level: the PNG encoder against libpng's decoder, the bitmap font, the
/// confusion heatmap (colours follow counts, labels where they belong), the grid's tile placement.
@Suite struct FigureTests {
    /// Every pixel that `draw` paints black on a blank canvas of the same size is black in `image`
    /// too (the text is there, at that place), and there is at least one.
    func expectDrawn(_ image: DecodedImage, _ what: String, _ draw: (inout Canvas) -> Void, color: RGB = .black,
                     sourceLocation: SourceLocation = #_sourceLocation) {
        var probe = Canvas(width: image.width, height: image.height)
        draw(&probe)
        var inked = 0, missing = 0
        for y in 0..<image.height {
            for x in 0..<image.width where probe.pixel(x, y) != .white {
                inked += 1
                let k = (y * image.width + x) * 3
                if RGB(image.pixels[k], image.pixels[k + 1], image.pixels[k + 2]) != color { missing += 1 }
            }
        }
        #expect(inked > 0 && missing == 0, "\(what): \(missing) of \(inked) text pixels missing", sourceLocation: sourceLocation)
    }

    @Test func pngRoundTripThroughLibpng() throws {
        var c = Canvas(width: 37, height: 23)
        for y in 0..<23 { for x in 0..<37 { c.set(x, y, RGB(UInt8(x * 7 % 256), UInt8(y * 11 % 256), UInt8((x ^ y) & 0xFF))) } }
        let png = try Figures.pngData(c.image)
        #expect(Array(png.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        let back = try ImageCodec.decode(Data(png))
        #expect(back == c.image)
        let grey = DecodedImage(width: 5, height: 3, channels: 1, pixels: (0..<15).map { UInt8($0 * 17) })
        #expect(try ImageCodec.decode(Data(Figures.pngData(grey))) == grey)
    }

    @Test func fontCoversPrintableASCIIWithinItsCell() {
        #expect(BitmapFont.glyphs.count == 95)
        for (i, g) in BitmapFont.glyphs.enumerated() {
            #expect(g.count == 7 && g.allSatisfy { $0 < 0x20 }, "glyph \(i + 32)")
        }
        // Distinct glyphs for letters and digits (a copy-paste slip would make two equal).
        let alnum = (Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")).map { BitmapFont.glyph($0) }
        #expect(Set(alnum.map { $0.map(String.init).joined(separator: ",") }).count == alnum.count)
        #expect(BitmapFont.glyph("é") == BitmapFont.glyph("?"))
        #expect(BitmapFont.width("ab", scale: 2) == 22)
    }

    @Test func textLandsWhereAsked() {
        var c = Canvas(width: 40, height: 20)
        c.text("I", x: 10, y: 3, scale: 1)
        // 'I' = 0x0E, 0x04 x5, 0x0E: top row columns 1...3 of the glyph.
        #expect(c.pixel(10, 3) == .white && c.pixel(11, 3) == .black && c.pixel(13, 3) == .black && c.pixel(14, 3) == .white)
        #expect(c.pixel(12, 5) == .black && c.pixel(11, 5) == .white)
    }

    @Test func heatmapColoursFollowCountsAndLabelsArePresent() throws {
        let classes = ["cat", "dog", "ship"]
        let counts = [[90, 8, 2], [30, 60, 10], [0, 5, 95]]
        let fig = Charts.confusionFigure(counts: counts, classes: classes)
        let img = fig.image
        func colour(_ r: PixelRect) -> RGB {   // a corner pixel of the cell, away from the annotation
            let k = ((r.y + 2) * img.width + r.x + 2) * 3
            return RGB(img.pixels[k], img.pixels[k + 1], img.pixels[k + 2])
        }
        // Counts panel: darker for larger counts, the colour of Blues at count / max.
        let flat = counts.flatMap { $0 }
        let cells = fig.counts.cells.flatMap { $0 }
        for (i, a) in flat.enumerated() {
            #expect(colour(cells[i]) == RGB.blues(Double(a) / 95), "cell \(i) count \(a)")
            for (j, b) in flat.enumerated() where a > b { #expect(colour(cells[i]).luma < colour(cells[j]).luma, "\(a) vs \(b)") }
        }
        // Row-normalised panel: each row divided by its sum (row 1: 30 of 100 -> 0.30).
        #expect(colour(fig.normalised.cells[1][0]) == RGB.blues(0.3))
        #expect(colour(fig.normalised.cells[0][0]) == RGB.blues(0.9))
        // Annotations: white on dark cells, black on light ones, centred in the cell.
        for r in 0..<3 {
            for c in 0..<3 {
                let rect = fig.counts.cells[r][c]
                let ink: RGB = RGB.blues(Double(counts[r][c]) / 95).luma < 140 ? .white : .black
                var probe = Canvas(width: img.width, height: img.height)
                probe.text("\(counts[r][c])", x: rect.midX, y: rect.midY, scale: 2, align: .center, middle: true)
                var inked = 0, wrong = 0
                for y in rect.y..<(rect.y + rect.height) {
                    for x in rect.x..<(rect.x + rect.width) where probe.pixel(x, y) != .white {
                        inked += 1
                        let k = (y * img.width + x) * 3
                        if RGB(img.pixels[k], img.pixels[k + 1], img.pixels[k + 2]) != ink { wrong += 1 }
                    }
                }
                #expect(inked > 0 && wrong == 0, "annotation \(counts[r][c]) in cell \(r),\(c)")
            }
        }
        // Class names left of each row, right-aligned 8 pixels before the grid.
        for (r, name) in classes.enumerated() {
            let rect = fig.counts.cells[r][0]
            expectDrawn(img, "row label \(name)") { $0.text(name, x: rect.x - 8, y: rect.midY, scale: 2, align: .right, middle: true) }
        }
        expectDrawn(img, "title") { $0.text("Confusion matrix (test set)", x: img.width / 2, y: 10, scale: 3, align: .center) }
    }

    @Test func gridPlacesTilesInRowsAndColumns() throws {
        let tiles = (0..<7).map { i in
            Charts.Tile(image: DecodedImage(width: 4, height: 3, channels: 3,
                                            pixels: [UInt8](repeating: 0, count: 36).enumerated().map { k, _ in
                                                UInt8([30 * i, 255 - 30 * i, 100][k % 3]) }),
                        caption: ["c\(i)"])
        }
        let (img, origins) = Charts.imageGrid(tiles, columns: 3, scale: 5, title: "grid")
        #expect(origins.count == 7)
        for (i, o) in origins.enumerated() {
            // Same row: same y; same column: same x; rows and columns in reading order.
            #expect(o.y == origins[(i / 3) * 3].y && o.x == origins[i % 3].x)
            if i % 3 > 0 { #expect(o.x > origins[i - 1].x + 4 * 5) }
            if i >= 3 { #expect(o.y > origins[i - 3].y + 3 * 5) }
            // The whole 20x15 tile holds the tile's colour; the pixel left of it does not.
            var bad = 0
            for y in o.y..<(o.y + 15) {
                for x in o.x..<(o.x + 20) {
                    let k = (y * img.width + x) * 3
                    if Array(img.pixels[k..<(k + 3)]) != [UInt8(30 * i), UInt8(255 - 30 * i), 100] { bad += 1 }
                }
            }
            #expect(bad == 0, "tile \(i) at \(o)")
            let k = (o.y * img.width + o.x - 1) * 3
            #expect(Array(img.pixels[k..<(k + 3)]) == [255, 255, 255])
            expectDrawn(img, "caption c\(i)") { $0.text("c\(i)", x: o.x + 10, y: o.y + 15 + 4, scale: 2, align: .center) }
        }
    }

    @Test func ticksAreRoundNumbersCoveringTheRange() {
        let a = Charts.ticks(0, 1, count: 5)
        #expect(a.count == 6 && a.first == 0 && abs(a.last! - 1) < 1e-12)
        let t = Charts.ticks(0.37, 2.91, count: 5)   // step 0.5: 0.5 ... 2.5
        #expect(t.count == 5 && abs(t[0] - 0.5) < 1e-12 && abs(t[4] - 2.5) < 1e-12)
    }
}
