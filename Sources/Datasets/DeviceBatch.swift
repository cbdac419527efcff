import CNNCore
import Foundation

/// The random choices of one batch, drawn from the same seeded functions, in the same order, as
/// `BatchLoader.makeBatch` — what a device needs to build the identical batch from uint8 images
/// (`DeviceBatchInput`, Kernels/augment.cl) instead of the host building the float images.
package struct BatchRecipe: Sendable {
    /// Dataset index of each row.
    package var rows: [Int]
    package var labels: [Int32]
    package var draws: [SampleDraw]
    package var mix: BatchMix?
    /// (N, K), whenever MixUp or CutMix is configured (as `Batch.softTargets`).
    package var soft: [Float]?
    package var epoch: Int
    package var index: Int
    package var count: Int { rows.count }
}

extension BatchLoader {
    /// The recipe of batch `b` of `epoch` (`order`: `order(epoch:)`); `makeBatch` applies the same
    /// draws on the host.
    package func recipe(epoch: Int, index b: Int, order: [Int]) -> BatchRecipe {
        precondition(b >= 0 && b < batchesPerEpoch, "batch \(b) outside 0..<\(batchesPerEpoch)")
        let rows = Array(order[(b * batchSize)..<min((b + 1) * batchSize, order.count)])
        let n = rows.count
        var draws: [SampleDraw] = []
        draws.reserveCapacity(n)
        var labels = [Int32](repeating: 0, count: n)
        for (r, i) in rows.enumerated() {
            draws.append(augmenter.draw(seed: seed, epoch: epoch, item: i))
            labels[r] = dataset.labels[i]
        }
        var mix: BatchMix? = nil
        var soft: [Float]? = nil
        if augmenter.config.usesMixing {
            var rng = DataRandom.rng(seed, .batch, epoch: epoch, item: b)
            mix = BatchMix.draw(config: augmenter.config, n: n, height: dataset.height, width: dataset.width, rng: &rng)
            let identity = BatchMix(kind: .mixup, lambda: 1, partner: Array(0..<n))
            soft = (mix ?? identity).softTargets(labels: labels, numClasses: dataset.numClasses)
        }
        return BatchRecipe(rows: rows, labels: labels, draws: draws, mix: mix, soft: soft, epoch: epoch, index: b)
    }

    /// The device-side constants: geometry and the normalisation table.
    package var deviceInputSpec: DeviceInputSpec {
        DeviceInputSpec(channels: dataset.channels, height: dataset.height, width: dataset.width,
                        lut: augmenter.lut, mean: augmenter.mean, std: augmenter.std)
    }

    /// The kernel's parameters for `r`. `resident`: source = dataset index; otherwise the row.
    package func deviceParams(_ r: BatchRecipe, resident: Bool) -> DeviceBatchParams {
        augmenter.deviceParams(r, resident: resident)
    }
}

extension Augmenter {
    /// The rotation's cosine and sine, rounded as `rotate` rounds them.
    static func rotationCosSin(_ degrees: Float) -> (Float, Float) {
        let rad = Double(degrees) * Double.pi / 180
        return (Float((cos(rad) * 1e15).rounded() / 1e15), Float((sin(rad) * 1e15).rounded() / 1e15))
    }

    /// The cutout rectangle `cutout` zeroes: rows y1..<y2, columns x1..<x2 (clipped; may be empty).
    func cutoutBox(centerY: Int, centerX: Int) -> (y1: Int, y2: Int, x1: Int, x2: Int) {
        let L = config.cutoutSize
        return (max(0, centerY - L / 2), min(height, centerY - L / 2 + L), max(0, centerX - L / 2), min(width, centerX - L / 2 + L))
    }

    func deviceParams(_ r: BatchRecipe, resident: Bool) -> DeviceBatchParams {
        let n = r.count
        var ints = [Int32](repeating: 0, count: n * DeviceInputLayout.intsPerRow)
        var floats = [Float](repeating: 0, count: n * DeviceInputLayout.floatsPerRow)
        for (k, d) in r.draws.enumerated() {
            let o = k * DeviceInputLayout.intsPerRow
            ints[o] = Int32(resident ? r.rows[k] : k)
            ints[o + 1] = Int32(d.cropY)
            ints[o + 2] = Int32(d.cropX)
            ints[o + 3] = d.flip ? 1 : 0
            ints[o + 4] = d.angle == 0 ? 0 : 1
            if let c = d.cutoutCenter {
                let b = cutoutBox(centerY: c.y, centerX: c.x)
                ints[o + 5] = Int32(b.y1)
                ints[o + 6] = Int32(b.y2)
                ints[o + 7] = Int32(b.x1)
                ints[o + 8] = Int32(b.x2)
            }
            ints[o + 9] = Int32(r.mix?.partner[k] ?? k)
            if d.angle != 0 {
                let (cs, sn) = Self.rotationCosSin(d.angle)
                floats[k * 2] = cs
                floats[k * 2 + 1] = sn
            }
        }
        var p = DeviceBatchParams(count: n, ints: ints, floats: floats, labels: r.labels, soft: r.soft,
                                  cropPadding: config.cropPadding, reflect: config.paddingMode == .reflect,
                                  nearest: config.rotationInterpolation == .nearest)
        if let m = r.mix {
            switch m.kind {
            case .mixup: p.mixKind = 1
            case .cutmix: p.mixKind = m.box == nil ? 0 : 2
            }
            p.lambda = m.lambda
            if let b = m.box { p.box = (b.y0, b.y1, b.x0, b.x1) }
        }
        return p
    }
}
