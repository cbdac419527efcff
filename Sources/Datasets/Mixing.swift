import CNNCore

/// A batch-level MixUp or CutMix, as applied to one batch: row i is mixed with row
/// `partner[i]`, and its target is `lambda` of its own label plus `1 - lambda` of the partner's.
public struct BatchMix: Sendable, Equatable {
    public enum Kind: String, Sendable { case mixup, cutmix }
    public var kind: Kind
    /// Weight of each row's own label. For CutMix, 1 - (box area) / (H * W) after clipping the box.
    public var lambda: Float
    /// partner[i]: the row mixed into row i (a permutation of 0..<N).
    public var partner: [Int]
    /// CutMix box, rows y0..<y1, columns x0..<x1 (pasted from the partner); nil for MixUp.
    public var box: (y0: Int, y1: Int, x0: Int, x1: Int)?

    public init(kind: Kind, lambda: Float, partner: [Int], box: (y0: Int, y1: Int, x0: Int, x1: Int)? = nil) {
        self.kind = kind
        self.lambda = lambda
        self.partner = partner
        self.box = box
    }

    public static func == (a: BatchMix, b: BatchMix) -> Bool {
        a.kind == b.kind && a.lambda == b.lambda && a.partner == b.partner
            && a.box?.y0 == b.box?.y0 && a.box?.y1 == b.box?.y1 && a.box?.x0 == b.box?.x0 && a.box?.x1 == b.box?.x1
    }

    /// The CutMix box for a drawn `lambda` centred at (cy, cx), as in the CutMix paper's code:
    /// side = floor(W * sqrt(1 - lambda)) (and H), corners clipped to the image.
    public static func cutmixBox(lambda: Double, centerY cy: Int, centerX cx: Int, height H: Int, width W: Int)
        -> (y0: Int, y1: Int, x0: Int, x1: Int) {
        let r = (1 - lambda).squareRoot()
        let ch = Int(Double(H) * r), cw = Int(Double(W) * r)
        return (min(max(cy - ch / 2, 0), H), min(max(cy + ch / 2, 0), H),
                min(max(cx - cw / 2, 0), W), min(max(cx + cw / 2, 0), W))
    }

    /// CutMix's label weight for a box: 1 - area / (H * W).
    public static func cutmixLambda(box: (y0: Int, y1: Int, x0: Int, x1: Int), height H: Int, width W: Int) -> Float {
        Float(1 - Double((box.y1 - box.y0) * (box.x1 - box.x0)) / Double(H * W))
    }

    /// Draws the mix for a batch of `n` rows (nil: this batch is not mixed).
    static func draw(config: AugmentationConfig, n: Int, height: Int, width: Int, rng: inout SeededRNG) -> BatchMix? {
        let gate = rng.nextFloat()
        let which = rng.nextFloat()
        guard config.usesMixing, n > 1, gate < config.mixProbability else { return nil }
        let useCutMix = config.cutmixAlpha > 0 && (config.mixupAlpha == 0 || which < config.cutmixSwitchProbability)
        let alpha = Double(useCutMix ? config.cutmixAlpha : config.mixupAlpha)
        let lam = DataRandom.beta(alpha, alpha, &rng)
        let partner = DataRandom.permutation(n, &rng)
        if useCutMix {
            let cy = DataRandom.int(height, &rng), cx = DataRandom.int(width, &rng)
            let box = cutmixBox(lambda: lam, centerY: cy, centerX: cx, height: height, width: width)
            return BatchMix(kind: .cutmix, lambda: cutmixLambda(box: box, height: height, width: width), partner: partner, box: box)
        }
        return BatchMix(kind: .mixup, lambda: Float(lam), partner: partner)
    }

    /// Mixes `images` (N, C, H, W) in place; `scratch` gets a copy of the unmixed batch.
    public func apply(images: UnsafeMutablePointer<Float>, n: Int, channels C: Int, height H: Int, width W: Int,
                      scratch: inout [Float]) {
        let per = C * H * W
        if scratch.count < n * per { scratch = [Float](repeating: 0, count: n * per) }
        scratch.withUnsafeMutableBufferPointer { orig in
            orig.baseAddress!.update(from: images, count: n * per)
            let o = orig.baseAddress!
            for i in 0..<n {
                let dst = images + i * per
                let other = o + partner[i] * per
                switch kind {
                case .mixup:
                    let a = lambda, b = 1 - lambda
                    let own = o + i * per
                    for k in 0..<per { dst[k] = a * own[k] + b * other[k] }
                case .cutmix:
                    guard let box else { continue }
                    for c in 0..<C {
                        for y in box.y0..<box.y1 {
                            let off = (c * H + y) * W
                            for x in box.x0..<box.x1 { dst[off + x] = other[off + x] }
                        }
                    }
                }
            }
        }
    }

    /// Soft targets (N, K): row i has `lambda` at labels[i] and `1 - lambda` at labels[partner[i]]
    /// (summed when they are the same class).
    public func softTargets(labels: [Int32], numClasses K: Int) -> [Float] {
        var t = [Float](repeating: 0, count: labels.count * K)
        for i in labels.indices {
            t[i * K + Int(labels[i])] += lambda
            t[i * K + Int(labels[partner[i]])] += 1 - lambda
        }
        return t
    }
}
