import CNNCore
import Datasets
import NN

/// Pictures of what a model learned (the guide's "visualise the conv filters" step).
public enum Visualization {
    /// The first convolution of `model` (depth first) with its module path, or nil when it has none.
    public static func firstConvolution(of model: Model) -> (path: String, layer: Conv2d)? {
        for (path, layer) in model.network.flattened() {
            if let conv = layer as? Conv2d { return (path, conv) }
        }
        return nil
    }

    /// Conv weights (Cout, Cin, K, K) as a grid of tiles, one per output filter, `columns` per row,
    /// each pixel blown up to `scale` x `scale`, 1-pixel black gaps. A filter with 3 input channels
    /// is shown in colour (R, G, B = input channels 0, 1, 2); otherwise in grey, as the mean over its
    /// input channels. Each tile is min-max scaled to 0...255 on its own (a constant filter is mid-grey).
    public static func filterGrid(_ weights: HostTensor, scale: Int = 8, columns: Int = 8) throws -> DecodedImage {
        let s = weights.shape
        try require(s.rank == 4 && s[2] > 0 && s[3] > 0 && s[0] > 0 && s[1] > 0,
                    "filter grid: expected convolution weights (Cout, Cin, KH, KW), got \(s)")
        try require(scale >= 1 && columns >= 1, "filter grid: scale and columns must be positive")
        let (cout, cin, kh, kw) = (s[0], s[1], s[2], s[3])
        let colour = cin == 3
        let channels = colour ? 3 : 1
        let cols = min(columns, cout), rows = (cout + cols - 1) / cols
        let tileW = kw * scale, tileH = kh * scale
        let width = cols * (tileW + 1) + 1, height = rows * (tileH + 1) + 1
        var pixels = [UInt8](repeating: 0, count: width * height * channels)
        let w = weights.values
        for f in 0..<cout {
            // The tile's planes: (channels, kh, kw).
            var planes = [Float](repeating: 0, count: channels * kh * kw)
            for c in 0..<cin {
                for i in 0..<(kh * kw) {
                    let v = w[((f * cin) + c) * kh * kw + i]
                    if colour { planes[c * kh * kw + i] = v } else { planes[i] += v / Float(cin) }
                }
            }
            let lo = planes.min()!, hi = planes.max()!
            let x0 = (f % cols) * (tileW + 1) + 1, y0 = (f / cols) * (tileH + 1) + 1
            for y in 0..<tileH {
                for x in 0..<tileW {
                    let i = (y / scale) * kw + x / scale
                    for c in 0..<channels {
                        let v = planes[c * kh * kw + i]
                        let level = hi > lo ? (v - lo) / (hi - lo) * 255 : 127.5
                        pixels[((y0 + y) * width + x0 + x) * channels + c] = UInt8(level.rounded())
                    }
                }
            }
        }
        return DecodedImage(width: width, height: height, channels: channels, pixels: pixels)
    }

    /// Writes the first convolution's filters of `model` to `path` as PNG; returns the layer's path.
    @discardableResult
    public static func writeFirstLayerFilters(of model: Model, to path: String, scale: Int = 8) throws -> String {
        guard let (name, conv) = firstConvolution(of: model) else {
            throw CNNError.invalidArgument("model '\(model.name)' has no convolution to draw")
        }
        let image = try filterGrid(try model.backend.host(conv.weight.value), scale: scale)
        try ImageCodec.writePNG(image, to: path)
        return name
    }
}
