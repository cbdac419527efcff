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
    package static func filterGrid(_ weights: HostTensor, scale: Int = 8, columns: Int = 8) throws -> DecodedImage {
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
                        pixels[((y0 + y) * width + x0 + x) * channels + c] = level.isFinite ? UInt8(level.rounded()) : 127   // NaN weights: grey
                    }
                }
            }
        }
        return DecodedImage(width: width, height: height, channels: channels, pixels: pixels)
    }

    /// Writes the first convolution's filters of `model` to `path` as PNG; returns the layer's path.
    @discardableResult
    /// The grid comes with a title naming the layer; `scale` nil makes each tile about 48 pixels wide.
    public static func writeFirstLayerFilters(of model: Model, to path: String, scale: Int? = nil) throws -> String {
        guard let (name, conv) = firstConvolution(of: model) else {
            throw CNNError.invalidArgument("model '\(model.name)' has no convolution to draw")
        }
        let image = try Figures.filtersFigure(try model.backend.host(conv.weight.value), layer: name, scale: scale)
        try ImageCodec.writePNG(image, to: path)
        return name
    }

    // MARK: Features and t-SNE

    /// The input of the model's final layer (for `optimized`: the 512 post-ReLU features of fc.0) for
    /// each image, in eval mode: (n, F) row-major. `images`: (n, C, H, W), normalised as for the model.
    public static func penultimateFeatures(model: Model, images: HostTensor, batchSize: Int = 250) throws -> (values: [Float], dim: Int) {
        let n = images.shape[0], per = images.count / max(n, 1)
        let ctx = ForwardContext(training: false, seed: 0)
        var out: [Float] = []
        var dim = 0
        var start = 0
        while start < n {
            let m = min(batchSize, n - start)
            let x = try model.backend.upload(Array(images.values[(start * per)..<((start + m) * per)]),
                                             shape: Shape([m] + Array(images.shape.dims.dropFirst())))
            let f = try allButLast(model.network, x, ctx)
            dim = f.count / m
            out += try model.backend.floats(f)
            start += m
        }
        return (out, dim)
    }

    /// Runs `seq` up to (not including) its last leaf layer, descending into a last child that is itself
    /// a Sequential.
    static func allButLast(_ seq: Sequential, _ x: Tensor, _ ctx: ForwardContext) throws -> Tensor {
        var h = x
        for (i, c) in seq.children.enumerated() {
            if i == seq.children.count - 1 {
                if let inner = c.layer as? Sequential { return try allButLast(inner, h, ctx) }
                return h
            }
            h = try c.layer.forward(h, ctx)
        }
        return h
    }

    /// Ten distinct colours (matplotlib's tab10), by class index.
    public static let palette: [(UInt8, UInt8, UInt8)] = [
        (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
        (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    ]

    /// A scatter plot of 2-D points (n, 2) on white, each a 5x5 dot in its class's colour.
    package static func scatterPlot(_ y: [Double], labels: [Int32], size: Int = 800) -> DecodedImage {
        var pixels = [UInt8](repeating: 255, count: size * size * 3)
        let n = labels.count
        guard n > 0 else { return DecodedImage(width: size, height: size, channels: 3, pixels: pixels) }
        let xs = (0..<n).map { y[2 * $0] }, ys = (0..<n).map { y[2 * $0 + 1] }
        let (x0, x1, y0, y1) = (xs.min()!, xs.max()!, ys.min()!, ys.max()!)
        let margin = 10.0, span = Double(size) - 2 * margin
        for i in 0..<n {
            let px = Int(margin + (x1 > x0 ? (xs[i] - x0) / (x1 - x0) : 0.5) * span)
            let py = Int(margin + (y1 > y0 ? (y1 - ys[i]) / (y1 - y0) : 0.5) * span)
            let c = palette[Int(labels[i]) % palette.count]
            for dy in -2...2 {
                for dx in -2...2 {
                    let x = px + dx, yy = py + dy
                    guard x >= 0, x < size, yy >= 0, yy < size else { continue }
                    let k = (yy * size + x) * 3
                    pixels[k] = c.0; pixels[k + 1] = c.1; pixels[k + 2] = c.2
                }
            }
        }
        return DecodedImage(width: size, height: size, channels: 3, pixels: pixels)
    }

    // MARK: Grad-CAM

    /// Grad-CAM (Selvaraju et al., 2017) for one image (1, C, H, W), normalised as for the model.
    ///
    /// The target is the output of the last layer whose output is still a spatial map (N, C, h, w)
    /// with h·w > 1 (for `optimized`: conv2.4, 64 x 8 x 8). With A that map and y_c the logit of
    /// `classIndex` (default: the predicted class): weights α_k = mean over h, w of ∂y_c/∂A_k,
    /// map = ReLU(Σ_k α_k A_k), scaled to [0, 1] (all zero when nothing is positive). The
    /// gradient comes from the layers' own backward after an eval-mode forward, so the head after the
    /// target must not contain BatchNorm (it throws then).
    public static func gradCAM(model: Model, image: HostTensor, classIndex: Int? = nil)
        throws -> (map: [Float], height: Int, width: Int, classIndex: Int, logits: [Float]) {
        let f = try featureGradient(model: model, image: image, classIndex: classIndex)
        let (channels, fh, fw) = (f.shape[1], f.shape[2], f.shape[3])
        var map = [Float](repeating: 0, count: fh * fw)
        for ch in 0..<channels {
            let plane = (ch * fh * fw)..<((ch + 1) * fh * fw)
            let alpha = f.gradient[plane].reduce(0, +) / Float(fh * fw)
            for (i, j) in plane.enumerated() { map[i] += alpha * f.features[j] }
        }
        let peak = map.max() ?? 0
        map = map.map { peak > 0 ? max($0, 0) / peak : 0 }
        return (map, fh, fw, f.classIndex, f.logits)
    }

    /// The target feature map A of Grad-CAM, ∂y_c/∂A, and what produced them (see `gradCAM`).
    static func featureGradient(model: Model, image: HostTensor, classIndex: Int?)
        throws -> (features: [Float], gradient: [Float], shape: Shape, target: Int, classIndex: Int, logits: [Float]) {
        try require(image.shape.rank == 4 && image.shape[0] == 1, "Grad-CAM: expected one image (1, C, H, W), got \(image.shape)")
        let be = model.backend
        let ctx = ForwardContext(training: false, seed: 0, keepsBackwardState: true)
        let layers = executionOrder(model.network)
        var h = try be.upload(image)
        var outputs: [Tensor] = []
        for l in layers {
            h = try l.forward(h, ctx)
            outputs.append(h)
        }
        guard let target = outputs.lastIndex(where: { $0.shape.rank == 4 && $0.shape[2] * $0.shape[3] > 1 }) else {
            throw CNNError.unsupported("Grad-CAM: model '\(model.name)' has no spatial feature map")
        }
        let logits = try be.floats(h)
        let k = logits.count
        let c = classIndex ?? logits.indices.max { logits[$0] < logits[$1] }!
        try require(c >= 0 && c < k, "Grad-CAM: class \(c) outside 0..<\(k)")
        let a = try be.floats(outputs[target])   // before the backward pass reuses any buffer
        var g: Tensor? = try be.upload((0..<k).map { $0 == c ? Float(1) : 0 }, shape: h.shape)
        for l in layers[(target + 1)...].reversed() {
            guard let cur = g else { break }
            g = try l.backward(cur)
        }
        guard let dA = g else { throw CNNError.unsupported("Grad-CAM: no gradient reached the feature map") }
        return (a, try be.floats(dA), outputs[target].shape, target, c, logits)
    }

    /// The leaf layers of `seq` in the order they run (a Residual counts as one layer).
    static func executionOrder(_ seq: Sequential) -> [any Layer] {
        seq.children.flatMap { c -> [any Layer] in
            if let inner = c.layer as? Sequential { return executionOrder(inner) }
            return [c.layer]
        }
    }

    /// The image (interleaved RGB or grey, 0...255) with the map laid over it in a blue-to-red colour
    /// scale (bilinear upsampling of the map), both enlarged by `scale`.
    package static func overlay(map: [Float], mapHeight: Int, mapWidth: Int, on image: DecodedImage, scale: Int = 4,
                               opacity: Float = 0.5) -> DecodedImage {
        let (W, H) = (image.width * scale, image.height * scale)
        var out = [UInt8](repeating: 0, count: W * H * 3)
        func sample(_ x: Float, _ y: Float) -> Float {   // bilinear in map coordinates (pixel centres)
            let fx = min(max(x * Float(mapWidth) - 0.5, 0), Float(mapWidth - 1))
            let fy = min(max(y * Float(mapHeight) - 0.5, 0), Float(mapHeight - 1))
            let x0 = Int(fx), y0 = Int(fy), x1 = min(x0 + 1, mapWidth - 1), y1 = min(y0 + 1, mapHeight - 1)
            let tx = fx - Float(x0), ty = fy - Float(y0)
            let top = map[y0 * mapWidth + x0] * (1 - tx) + map[y0 * mapWidth + x1] * tx
            let bottom = map[y1 * mapWidth + x0] * (1 - tx) + map[y1 * mapWidth + x1] * tx
            return top * (1 - ty) + bottom * ty
        }
        for y in 0..<H {
            for x in 0..<W {
                let v = sample((Float(x) + 0.5) / Float(W), (Float(y) + 0.5) / Float(H))
                // Blue (0) -> cyan -> green -> yellow -> red (1).
                let heat: (Float, Float, Float) = (min(max(1.5 - abs(4 * v - 3), 0), 1) * 255,
                                                   min(max(1.5 - abs(4 * v - 2), 0), 1) * 255,
                                                   min(max(1.5 - abs(4 * v - 1), 0), 1) * 255)
                let src = ((y / scale) * image.width + x / scale) * image.channels
                let rgb: (Float, Float, Float) = image.channels >= 3
                    ? (Float(image.pixels[src]), Float(image.pixels[src + 1]), Float(image.pixels[src + 2]))
                    : (Float(image.pixels[src]), Float(image.pixels[src]), Float(image.pixels[src]))
                let k = (y * W + x) * 3
                out[k] = UInt8((rgb.0 * (1 - opacity) + heat.0 * opacity).rounded())
                out[k + 1] = UInt8((rgb.1 * (1 - opacity) + heat.1 * opacity).rounded())
                out[k + 2] = UInt8((rgb.2 * (1 - opacity) + heat.2 * opacity).rounded())
            }
        }
        return DecodedImage(width: W, height: H, channels: 3, pixels: out)
    }
}
