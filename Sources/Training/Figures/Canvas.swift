import Datasets

/// An RGB colour, 8 bits per channel.
package struct RGB: Equatable, Sendable {
    package var r: UInt8, g: UInt8, b: UInt8
    package init(_ r: UInt8, _ g: UInt8, _ b: UInt8) { self.r = r; self.g = g; self.b = b }

    package static let white = RGB(255, 255, 255)
    package static let black = RGB(0, 0, 0)
    package static let grey = RGB(128, 128, 128)
    package static let lightGrey = RGB(225, 225, 225)

    /// matplotlib's tab10, by index (wraps).
    package static func category(_ i: Int) -> RGB {
        let c = Visualization.palette[((i % 10) + 10) % 10]
        return RGB(c.0, c.1, c.2)
    }

    /// matplotlib's 'Blues' colour map at t in [0, 1] (white-ish to dark blue), linear between its
    /// nine anchor colours.
    package static func blues(_ t: Double) -> RGB {
        let anchors: [(Double, Double, Double)] = [
            (247, 251, 255), (222, 235, 247), (198, 219, 239), (158, 202, 225), (107, 174, 214),
            (66, 146, 198), (33, 113, 181), (8, 81, 156), (8, 48, 107),
        ]
        let x = min(max(t.isFinite ? t : 0, 0), 1) * Double(anchors.count - 1)
        let i = min(Int(x), anchors.count - 2), f = x - Double(i)
        let (a, b) = (anchors[i], anchors[i + 1])
        func mix(_ u: Double, _ v: Double) -> UInt8 { UInt8((u + (v - u) * f).rounded()) }
        return RGB(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
    }

    /// Perceived brightness 0...255 (ITU-R 601 luma).
    package var luma: Double { 0.299 * Double(r) + 0.587 * Double(g) + 0.114 * Double(b) }
}

/// A rectangle in pixels (origin top left).
package struct PixelRect: Equatable, Sendable {
    package var x: Int, y: Int, width: Int, height: Int
    package init(x: Int, y: Int, width: Int, height: Int) { self.x = x; self.y = y; self.width = width; self.height = height }
    package var midX: Int { x + width / 2 }
    package var midY: Int { y + height / 2 }
}

/// A white RGB drawing surface for the run's figures: rectangles, lines, text in the embedded
/// bitmap font (`BitmapFont`), and pasted images. Everything is clipped to the canvas.
package struct Canvas: Sendable {
    package let width: Int
    package let height: Int
    package private(set) var pixels: [UInt8]

    package init(width: Int, height: Int, background: RGB = .white) {
        precondition(width > 0 && height > 0, "empty canvas \(width)x\(height)")
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) { pixels[3 * i] = background.r; pixels[3 * i + 1] = background.g; pixels[3 * i + 2] = background.b }
    }

    package var image: DecodedImage { DecodedImage(width: width, height: height, channels: 3, pixels: pixels) }

    package func pixel(_ x: Int, _ y: Int) -> RGB {
        let k = (y * width + x) * 3
        return RGB(pixels[k], pixels[k + 1], pixels[k + 2])
    }

    package mutating func set(_ x: Int, _ y: Int, _ c: RGB) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let k = (y * width + x) * 3
        pixels[k] = c.r; pixels[k + 1] = c.g; pixels[k + 2] = c.b
    }

    package mutating func fill(_ r: PixelRect, _ c: RGB) {
        let x0 = max(r.x, 0), x1 = min(r.x + r.width, width), y0 = max(r.y, 0), y1 = min(r.y + r.height, height)
        guard x0 < x1, y0 < y1 else { return }
        for y in y0..<y1 { for x in x0..<x1 { set(x, y, c) } }
    }

    /// A 1-pixel outline.
    package mutating func stroke(_ r: PixelRect, _ c: RGB) {
        line(r.x, r.y, r.x + r.width - 1, r.y, c)
        line(r.x, r.y + r.height - 1, r.x + r.width - 1, r.y + r.height - 1, c)
        line(r.x, r.y, r.x, r.y + r.height - 1, c)
        line(r.x + r.width - 1, r.y, r.x + r.width - 1, r.y + r.height - 1, c)
    }

    /// A straight line (Bresenham), `thickness` pixels wide; `dash` > 0 draws `dash` pixels on, `dash` off.
    package mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ c: RGB, thickness: Int = 1, dash: Int = 0) {
        var (x, y) = (x0, y0)
        let dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
        var err = dx + dy
        var n = 0
        let lo = -(thickness - 1) / 2, hi = thickness / 2
        while true {
            if dash <= 0 || (n / dash) % 2 == 0 {
                for oy in lo...hi { for ox in lo...hi { set(x + ox, y + oy, c) } }
            }
            n += 1
            if x == x1 && y == y1 { break }
            let e2 = 2 * err
            if e2 >= dy { err += dy; x += sx }
            if e2 <= dx { err += dx; y += sy }
        }
    }

    package enum Align: Sendable { case left, center, right }

    /// Draws `text` with its top edge at `y` (or centred on `y` with `middle`), aligned on `x`.
    /// One glyph cell is 6 x 9 pixels times `scale` (5 x 7 glyph, 1 pixel spacing, 2 pixels leading).
    package mutating func text(_ text: String, x: Int, y: Int, scale: Int = 2, color: RGB = .black,
                               align: Align = .left, middle: Bool = false) {
        let w = BitmapFont.width(text, scale: scale)
        var cx = align == .left ? x : align == .center ? x - w / 2 : x - w
        let top = middle ? y - BitmapFont.glyphHeight * scale / 2 : y
        for ch in text {
            let rows = BitmapFont.glyph(ch), drop = BitmapFont.drop(ch)
            for (ry, bits) in rows.enumerated() {
                for rx in 0..<BitmapFont.glyphWidth where bits & (0x10 >> UInt8(rx)) != 0 {
                    fill(PixelRect(x: cx + rx * scale, y: top + (ry + drop) * scale, width: scale, height: scale), color)
                }
            }
            cx += BitmapFont.advance * scale
        }
    }

    /// Text turned 90° counter-clockwise (reads bottom to top), centred on (x, y): y-axis titles.
    package mutating func verticalText(_ text: String, x: Int, y: Int, scale: Int = 2, color: RGB = .black) {
        let w = BitmapFont.width(text, scale: scale)
        var cy = y + w / 2
        let left = x - BitmapFont.glyphHeight * scale / 2
        for ch in text {
            let rows = BitmapFont.glyph(ch), drop = BitmapFont.drop(ch)
            for (ry, bits) in rows.enumerated() {
                for rx in 0..<BitmapFont.glyphWidth where bits & (0x10 >> UInt8(rx)) != 0 {
                    // Glyph (rx, ry) -> canvas (left + ry, cy - rx), rotated counter-clockwise.
                    fill(PixelRect(x: left + (ry + drop) * scale, y: cy - (rx + 1) * scale, width: scale, height: scale), color)
                }
            }
            cy -= BitmapFont.advance * scale
        }
    }

    /// Pastes `image` (1 or 3 channels) with its top-left corner at (x, y), each pixel `scale` x `scale`.
    package mutating func draw(_ image: DecodedImage, x: Int, y: Int, scale: Int = 1) {
        for iy in 0..<(image.height * scale) {
            for ix in 0..<(image.width * scale) {
                let k = ((iy / scale) * image.width + ix / scale) * image.channels
                let c = image.channels >= 3 ? RGB(image.pixels[k], image.pixels[k + 1], image.pixels[k + 2])
                                            : RGB(image.pixels[k], image.pixels[k], image.pixels[k])
                set(x + ix, y + iy, c)
            }
        }
    }

    /// A legend in one row (wrapping at `maxWidth`), centred on `x`, top at `y`: swatch and label per
    /// entry. Returns the height used.
    @discardableResult
    package mutating func legendRow(_ entries: [(label: String, color: RGB, dashed: Bool)], x: Int, y: Int, maxWidth: Int, scale: Int = 2) -> Int {
        let widths = entries.map { 38 + BitmapFont.width($0.label, scale: scale) + 24 }
        var rows: [[Int]] = [[]]
        var used = 0
        for (i, w) in widths.enumerated() {
            if used + w > maxWidth, !rows[rows.count - 1].isEmpty { rows.append([]); used = 0 }
            rows[rows.count - 1].append(i); used += w
        }
        let rowH = BitmapFont.lineHeight * scale + 8
        for (r, row) in rows.enumerated() {
            var cx = x - row.map { widths[$0] }.reduce(0, +) / 2
            let cy = y + r * rowH + rowH / 2
            for i in row {
                line(cx, cy, cx + 28, cy, entries[i].color, thickness: 3, dash: entries[i].dashed ? 6 : 0)
                text(entries[i].label, x: cx + 38, y: cy, scale: scale, middle: true)
                cx += widths[i]
            }
        }
        return rows.count * rowH
    }

    /// A legend box: one coloured swatch (a line when `lines`) and label per entry, top-left at (x, y).
    package mutating func legend(_ entries: [(label: String, color: RGB, dashed: Bool)], x: Int, y: Int, scale: Int = 2) {
        guard !entries.isEmpty else { return }
        let row = BitmapFont.lineHeight * scale + 4
        let w = 24 + 8 + (entries.map { BitmapFont.width($0.label, scale: scale) }.max() ?? 0) + 12
        let box = PixelRect(x: x, y: y, width: w, height: entries.count * row + 8)
        fill(box, .white)
        stroke(box, .grey)
        for (i, e) in entries.enumerated() {
            let cy = y + 4 + i * row + row / 2
            line(x + 6, cy, x + 30, cy, e.color, thickness: 3, dash: e.dashed ? 4 : 0)
            text(e.label, x: x + 38, y: cy, scale: scale, middle: true)
        }
    }
}

/// A 5 x 7 pixel bitmap font for printable ASCII, written for this project. Each glyph is seven
/// rows, top to bottom, of five bits (0x10 the leftmost pixel); g, p, q and y are drawn two rows
/// lower (`drop`). Other characters draw as '?'.
package enum BitmapFont {
    package static let glyphWidth = 5
    package static let glyphHeight = 7
    /// Horizontal distance between glyph origins (one pixel gap), and line height (two pixels leading).
    package static let advance = 6
    package static let lineHeight = 9

    /// Width in pixels of `text` at `scale` (without the trailing gap).
    package static func width(_ text: String, scale: Int) -> Int {
        let n = text.count
        return n == 0 ? 0 : (n * advance - 1) * scale
    }

    /// Letters with a descender: their seven rows start two rows lower, in the line's leading.
    package static func drop(_ ch: Character) -> Int { "gpqy".contains(ch) ? 2 : 0 }

    package static func glyph(_ ch: Character) -> [UInt8] {
        guard let a = ch.asciiValue, a >= 32, a < 127 else { return glyphs[Int(Character("?").asciiValue!) - 32] }
        return glyphs[Int(a) - 32]
    }

    /// ' ' (32) through '~' (126).
    static let glyphs: [[UInt8]] = [
        [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // space
        [0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04], // !
        [0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x00], // "
        [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A], // #
        [0x04, 0x0F, 0x14, 0x0E, 0x05, 0x1E, 0x04], // $
        [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03], // %
        [0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D], // &
        [0x04, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00], // '
        [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02], // (
        [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08], // )
        [0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00], // *
        [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00], // +
        [0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08], // ,
        [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00], // -
        [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C], // .
        [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00], // /
        [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E], // 0
        [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E], // 1
        [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F], // 2
        [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E], // 3
        [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02], // 4
        [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E], // 5
        [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E], // 6
        [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08], // 7
        [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E], // 8
        [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C], // 9
        [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00], // :
        [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x04, 0x08], // ;
        [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02], // <
        [0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00], // =
        [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08], // >
        [0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04], // ?
        [0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E], // @
        [0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11], // A
        [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E], // B
        [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E], // C
        [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C], // D
        [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F], // E
        [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10], // F
        [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F], // G
        [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11], // H
        [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E], // I
        [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C], // J
        [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11], // K
        [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F], // L
        [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11], // M
        [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11], // N
        [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], // O
        [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10], // P
        [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D], // Q
        [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11], // R
        [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E], // S
        [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04], // T
        [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], // U
        [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04], // V
        [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A], // W
        [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11], // X
        [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04], // Y
        [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F], // Z
        [0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E], // [
        [0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00], // backslash
        [0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E], // ]
        [0x04, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00], // ^
        [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F], // _
        [0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00], // `
        [0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F], // a
        [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E], // b
        [0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E], // c
        [0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F], // d
        [0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E], // e
        [0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08], // f
        [0x0F, 0x11, 0x11, 0x0F, 0x01, 0x01, 0x0E], // g (drawn 2 rows lower)
        [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11], // h
        [0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E], // i
        [0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0C], // j
        [0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12], // k
        [0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E], // l
        [0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11], // m
        [0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11], // n
        [0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E], // o
        [0x16, 0x19, 0x11, 0x1E, 0x10, 0x10, 0x10], // p (drawn 2 rows lower)
        [0x0D, 0x13, 0x11, 0x0F, 0x01, 0x01, 0x01], // q (drawn 2 rows lower)
        [0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10], // r
        [0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E], // s
        [0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06], // t
        [0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D], // u
        [0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04], // v
        [0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A], // w
        [0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11], // x
        [0x11, 0x11, 0x11, 0x0F, 0x01, 0x01, 0x0E], // y (drawn 2 rows lower)
        [0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F], // z
        [0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02], // {
        [0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04], // |
        [0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08], // }
        [0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00], // ~
    ]
}
