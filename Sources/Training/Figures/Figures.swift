import CNNCore
import Datasets
import Foundation
import NN

/// Figures that need more than a chart: PNG bytes in memory, the titled filter grid, and images
/// from normalised tensors.
package enum Figures {
    /// `image` encoded as PNG by libpng (through a temporary file: the codec writes files).
    package static func pngData(_ image: DecodedImage) throws -> [UInt8] {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("swiftcnn-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString).png")
        defer { try? FileManager.default.removeItem(at: tmp) }
        try ImageCodec.writePNG(image, to: tmp.path)
        guard let d = FileManager.default.contents(atPath: tmp.path) else { throw CNNError.io("cannot read back \(tmp.path)") }
        return [UInt8](d)
    }

    /// The enlargement that makes a k x k filter tile about 48 pixels wide (at least 8).
    static func filterScale(kernel: Int) -> Int { max(8, 48 / max(kernel, 1)) }

    /// The first-layer filters as a titled figure: the tiles of `Visualization.filterGrid` (about 48
    /// pixels wide), 8 per row, 8 pixels apart with a grey frame each, under the layer's name and
    /// shape and how the tiles are scaled. Also returns each filter tile's top-left corner.
    package static func filtersFigureLayout(_ weights: HostTensor, layer: String, scale: Int? = nil, title: String = "First-layer filters") throws
        -> (image: DecodedImage, origins: [(x: Int, y: Int)]) {
        let s = weights.shape
        try require(s.rank == 4, "filters: expected convolution weights (Cout, Cin, KH, KW), got \(s)")
        let k = scale ?? filterScale(kernel: max(s[2], s[3]))
        let columns = 8
        let grid = try Visualization.filterGrid(weights, scale: k, columns: columns)
        let (tileW, tileH, gap) = (s[3] * k, s[2] * k, 8)
        let cols = min(columns, s[0]), rows = (s[0] + cols - 1) / cols
        let colour = s[1] == 3 ? "colour: R, G, B = input channels 0, 1, 2" : "grey: mean over the \(s[1]) input channels"
        let lines = ["\(title): \(layer) (\(s[0]) filters, \(s[1]) x \(s[2]) x \(s[3]))",
                     "each filter scaled to its own min..max; \(colour)"]
        let longest = lines.map { BitmapFont.width($0, scale: 2) }.max() ?? 0
        let gridW = cols * (tileW + gap) - gap, gridH = rows * (tileH + gap) - gap
        var canvas = Canvas(width: max(gridW + 40, longest + 40), height: gridH + 84)
        canvas.text(lines[0], x: canvas.width / 2, y: 12, scale: 2, align: .center)
        canvas.text(lines[1], x: canvas.width / 2, y: 36, scale: 2, color: RGB(70, 70, 70), align: .center)
        let left = (canvas.width - gridW) / 2, top = 64
        var origins: [(x: Int, y: Int)] = []
        for f in 0..<s[0] {
            let ox = left + (f % cols) * (tileW + gap), oy = top + (f / cols) * (tileH + gap)
            canvas.stroke(PixelRect(x: ox - 1, y: oy - 1, width: tileW + 2, height: tileH + 2), .grey)
            // The tile in `grid` starts after the 1-pixel gaps of its column and row.
            let gx = (f % cols) * (tileW + 1) + 1, gy = (f / cols) * (tileH + 1) + 1
            for y in 0..<tileH {
                for x in 0..<tileW {
                    let g = ((gy + y) * grid.width + gx + x) * grid.channels
                    let c = grid.channels == 3 ? RGB(grid.pixels[g], grid.pixels[g + 1], grid.pixels[g + 2])
                                               : RGB(grid.pixels[g], grid.pixels[g], grid.pixels[g])
                    canvas.set(ox + x, oy + y, c)
                }
            }
            origins.append((ox, oy))
        }
        return (canvas.image, origins)
    }

    package static func filtersFigure(_ weights: HostTensor, layer: String, scale: Int? = nil, title: String = "First-layer filters") throws -> DecodedImage {
        try filtersFigureLayout(weights, layer: layer, scale: scale, title: title).image
    }

    /// Image `i` of a normalised batch (N, C, H, W) back to 0...255 pixels (H, W, C), undoing
    /// `normalization` (per-channel or one mean/std for all).
    package static func denormalised(_ batch: HostTensor, index i: Int, normalization: Normalization) -> DecodedImage {
        let (c, h, w) = (batch.shape[1], batch.shape[2], batch.shape[3])
        var px = [UInt8](repeating: 0, count: h * w * c)
        for ch in 0..<c {
            let mean = normalization.mean[normalization.mean.count == 1 ? 0 : min(ch, normalization.mean.count - 1)]
            let std = normalization.std[normalization.std.count == 1 ? 0 : min(ch, normalization.std.count - 1)]
            for p in 0..<(h * w) {
                let v = (batch.values[((i * c) + ch) * h * w + p] * std + mean) * 255
                px[p * c + ch] = UInt8(min(max(v.isFinite ? v : 0, 0), 255).rounded())
            }
        }
        return DecodedImage(width: w, height: h, channels: c, pixels: px)
    }

    /// Image `i` of a dataset (C, H, W planes) as (H, W, C) pixels.
    package static func datasetImage(_ d: ImageDataset, _ i: Int) -> DecodedImage {
        let planes = Array(d.image(i))
        let (c, hw) = (d.channels, d.height * d.width)
        var px = [UInt8](repeating: 0, count: planes.count)
        for ch in 0..<c { for p in 0..<hw { px[p * c + ch] = planes[ch * hw + p] } }
        return DecodedImage(width: d.width, height: d.height, channels: c, pixels: px)
    }
}
