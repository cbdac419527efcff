import CNNCore

/// A frozen patch-whitening convolution, the first layer of the CIFAR-10 speed records (airbench):
/// k x k patches (valid positions, no padding) are projected onto the eigenvectors of the training
/// data's patch covariance, each scaled by 1 / sqrt(eigenvalue + epsilon), and the negated filters
/// follow (2 * C*k*k output channels, so a following GELU keeps both signs).
/// The filters are a state buffer `weight` (2*C*k*k, C, k, k), not a parameter: no optimizer touches
/// them; they are saved in and loaded from checkpoints. Until `setFilters` is called they are zero.
/// With `bias`, a trainable per-channel bias (parameter `bias`, PyTorch's default initialisation)
/// follows the filters, as airbench's whitening convolution has (it trains the bias for the first
/// epochs only: `TrainConfig.whiteningBiasEpochs`).
public final class PatchWhitening: Layer {
    public let channels, kernel: Int
    public var needsInputGradient = true
    public let weight: StateBuffer
    public let bias: Parameter?
    private var backend: (any Backend)!
    private var geometry: Conv2DGeometry?
    private var yCache = TensorCache(), dxCache = TensorCache()

    public init(_ channels: Int, kernel: Int = 2, bias: Bool = false) {
        self.channels = channels
        self.kernel = kernel
        let d = channels * kernel * kernel
        weight = StateBuffer(shape: [2 * d, channels, kernel, kernel], initial: 0)
        self.bias = bias ? Parameter(shape: [2 * d], initializer: .biasDefault(fanIn: d)) : nil
    }
    /// C*k*k: the patch dimension (half the output channels).
    public var patchDimension: Int { channels * kernel * kernel }
    public var summary: String {
        "PatchWhitening(\(channels), kernel \(kernel), frozen\(bias != nil ? ", trainable bias" : "")) -> \(2 * patchDimension) channels"
    }

    func geometry(batch: Int, input: Shape) throws -> Conv2DGeometry {
        try require(input.rank == 3 && input[0] == channels, "PatchWhitening(\(channels)) expects (\(channels), H, W), got \(input)")
        let g = Conv2DGeometry(batch: batch, inChannels: channels, height: input[1], width: input[2], outChannels: 2 * patchDimension,
                               kernel: kernel)
        try g.validate()
        return g
    }

    public func build(_ b: LayerBuilder, input: Shape) throws -> Shape {
        backend = b.backend
        b.register("weight", weight)
        if let bias { b.register("bias", bias) }
        return perSampleShape(try geometry(batch: 1, input: input).outputShape)
    }

    /// Sets the filters from a (d, d) whitening matrix W (row r: filter r over the patch (c, i, j)):
    /// filters 0..<d are W's rows, d..<2d their negatives.
    public func setFilters(_ w: [Float]) throws {
        let d = patchDimension
        try require(w.count == d * d, "PatchWhitening: a \(d)x\(d) whitening matrix has \(d * d) values, got \(w.count)")
        try backend.write(w + w.map { -$0 }, to: weight.value)
    }

    public func forward(_ x: Tensor, _ ctx: ForwardContext) throws -> Tensor {
        let g = try geometry(batch: x.shape[0], input: perSampleShape(x.shape))
        let y = try yCache.tensor(g.outputShape, on: backend)
        try backend.conv2DForward(x: x, weight: weight.value, bias: bias?.value, y: y, geometry: g, activation: .identity)
        geometry = g
        return y
    }

    public func backward(_ dy: Tensor) throws -> Tensor? {
        if let bias { try backend.biasGrad(dy: dy, dBias: bias.grad) }
        guard needsInputGradient else { return nil }
        guard let g = geometry else { throw CNNError.invalidArgument("PatchWhitening.backward called before forward") }
        let dx = try dxCache.tensor(g.inputShape, on: backend)
        try backend.conv2DBackwardData(dy: dy, weight: weight.value, dx: dx, geometry: g)
        return dx
    }

    /// Every k x k patch (valid positions) of NCHW images as rows of a (P, C*k*k) matrix, row order
    /// (image, h, w), column order (c, i, j) — the convolution's filter layout.
    public static func patches(_ images: [Float], count n: Int, channels c: Int, height h: Int, width w: Int, kernel k: Int) -> [Double] {
        let oh = h - k + 1, ow = w - k + 1, d = c * k * k
        var out = [Double](repeating: 0, count: n * oh * ow * d)
        var r = 0
        for img in 0..<n {
            for y in 0..<oh {
                for x in 0..<ow {
                    var col = 0
                    for ch in 0..<c {
                        for i in 0..<k {
                            for j in 0..<k {
                                out[r * d + col] = Double(images[((img * c + ch) * h + y + i) * w + x + j])
                                col += 1
                            }
                        }
                    }
                    r += 1
                }
            }
        }
        return out
    }

    /// The (d, d) whitening matrix W = diag(1 / sqrt(lambda + epsilon)) V^T of patches (rows of
    /// `rows` x d): V, lambda the eigenvectors and eigenvalues of the patch covariance (mean removed).
    /// W cov W^T = diag(lambda / (lambda + epsilon)) ~ I.
    public static func whiteningMatrix(patches: [Double], dimension d: Int, epsilon: Double = 5e-4) throws -> [Float] {
        let rows = patches.count / max(d, 1)
        try require(rows >= 2 && d > 0, "patch whitening needs at least 2 patches, got \(rows)")
        let cov = covariance(patches, dimension: d)
        let (values, vectors) = symmetricEigen(cov, d)
        var w = [Float](repeating: 0, count: d * d)
        for r in 0..<d {
            let s = 1 / (max(values[r], 0) + epsilon).squareRoot()
            for c in 0..<d { w[r * d + c] = Float(vectors[c * d + r] * s) }   // row r = eigenvector r (column r of V)
        }
        return w
    }

    /// The covariance (d, d) of `rows` x d data (mean removed, divided by rows - 1).
    public static func covariance(_ x: [Double], dimension d: Int) -> [Double] {
        let n = x.count / d
        var mean = [Double](repeating: 0, count: d)
        for r in 0..<n { for c in 0..<d { mean[c] += x[r * d + c] } }
        for c in 0..<d { mean[c] /= Double(n) }
        var cov = [Double](repeating: 0, count: d * d)
        var row = [Double](repeating: 0, count: d)
        for r in 0..<n {
            for c in 0..<d { row[c] = x[r * d + c] - mean[c] }
            for a in 0..<d { let v = row[a]; for b in a..<d { cov[a * d + b] += v * row[b] } }
        }
        for a in 0..<d { for b in a..<d { cov[a * d + b] /= Double(max(n - 1, 1)); cov[b * d + a] = cov[a * d + b] } }
        return cov
    }

    /// Cyclic Jacobi eigen-decomposition of a symmetric (n, n) matrix: (eigenvalues, V with the
    /// eigenvectors as columns), to about 1e-12 relative.
    static func symmetricEigen(_ m: [Double], _ n: Int) -> ([Double], [Double]) {
        var a = m
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        for _ in 0..<100 {
            var off = 0.0
            for p in 0..<n { for q in (p + 1)..<max(p + 1, n) { off += a[p * n + q] * a[p * n + q] } }
            if off < 1e-30 { break }
            for p in 0..<n {
                for q in (p + 1)..<max(p + 1, n) where abs(a[p * n + q]) > 1e-300 {
                    let theta = (a[q * n + q] - a[p * n + p]) / (2 * a[p * n + q])
                    let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<n {   // A = J^T A J
                        let akp = a[k * n + p], akq = a[k * n + q]
                        a[k * n + p] = c * akp - s * akq
                        a[k * n + q] = s * akp + c * akq
                    }
                    for k in 0..<n {
                        let apk = a[p * n + k], aqk = a[q * n + k]
                        a[p * n + k] = c * apk - s * aqk
                        a[q * n + k] = s * apk + c * aqk
                    }
                    for k in 0..<n {
                        let vkp = v[k * n + p], vkq = v[k * n + q]
                        v[k * n + p] = c * vkp - s * vkq
                        v[k * n + q] = s * vkp + c * vkq
                    }
                }
            }
        }
        return ((0..<n).map { a[$0 * n + $0] }, v)
    }
}
