import CNNCore
import CPUBackend
import Datasets
import NN
import Testing
@testable import Training

/// The `fast` model's first layer whitens: fitted to a dataset's 2x2 patches, the covariance of its
/// outputs over those same patches is the identity (within the epsilon's shrinkage and float32).
@Suite struct WhiteningTests {
    /// Smooth, correlated images (neighbouring pixels and the three channels share most of their
    /// value, as in photographs), as CIFAR-shaped bytes.
    static func dataset(count n: Int, seed: UInt64) throws -> ImageDataset {
        var rng = SeededRNG(seed: seed)
        var pixels = [UInt8](repeating: 0, count: n * 3 * 8 * 8)
        for img in 0..<n {
            let base = (0..<64).map { _ in rng.uniform(0, 1) }
            for c in 0..<3 {
                for y in 0..<8 {
                    for x in 0..<8 {
                        let smooth = (base[y * 8 + x] + base[y * 8 + (x + 1) % 8] + base[((y + 1) % 8) * 8 + x]) / 3
                        let v = 0.7 * smooth + 0.3 * rng.uniform(0, 1) + 0.05 * Float(c)
                        pixels[((img * 3 + c) * 8 + y) * 8 + x] = UInt8(max(0, min(255, (v * 220).rounded())))
                    }
                }
            }
        }
        return try ImageDataset(pixels: pixels, labels: [Int32](repeating: 0, count: n), classNames: ["x"], channels: 3, height: 8, width: 8)
    }

    @Test func theWhiteningLayerWhitensItsFittingPatches() throws {
        let data = try Self.dataset(count: 200, seed: 5)
        let backend = CPUBackend()
        let layer = PatchWhitening(3, kernel: 2)
        let model = try Model(name: "w", network: Sequential(named: [("whiten", layer)]), inputShape: [3, 8, 8], backend: backend, seed: 1)
        // A tiny epsilon: the identity is then exact up to float32 (with the recipe's 5e-4 the
        // smallest directions shrink by lambda / (lambda + epsilon)).
        let patches = try layer.fit(to: data, indices: Array(0..<200), normalization: .cifar10, epsilon: 1e-9)
        let d = layer.patchDimension
        #expect(patches.count == 200 * 7 * 7 * d)

        // The layer's own outputs on the same images: channels 0..<d at every position are the projected patches.
        var x = [Float](repeating: 0, count: 200 * 3 * 64)
        for i in 0..<200 {
            for (j, p) in data.image(i).enumerated() {
                let c = j / 64
                x[i * 192 + j] = (Float(p) / 255 - Normalization.cifar10.mean[c]) / Normalization.cifar10.std[c]
            }
        }
        let y = try backend.floats(try model.forward(try backend.upload(x, shape: [200, 3, 8, 8]), training: false))
        var rows = [Double](repeating: 0, count: 200 * 49 * d)
        for n in 0..<200 {
            for p in 0..<49 {
                for c in 0..<d { rows[(n * 49 + p) * d + c] = Double(y[(n * 2 * d + c) * 49 + p]) }
                for c in 0..<d { #expect(y[(n * 2 * d + d + c) * 49 + p] == -y[(n * 2 * d + c) * 49 + p]) }   // negated copies
            }
        }
        let cov = PatchWhitening.covariance(rows, dimension: d)
        var worst = 0.0
        for a in 0..<d { for b in 0..<d { worst = max(worst, abs(cov[a * d + b] - (a == b ? 1 : 0))) } }
        #expect(worst < 1e-3, "max |cov - I| = \(worst)")
        // The data was far from white (so the check above could fail).
        let raw = PatchWhitening.covariance(patches, dimension: d)
        let correlation = raw[1] / (raw[0] * raw[d + 1]).squareRoot()   // patch elements (c0, 0, 0) and (c0, 0, 1)
        #expect(correlation > 0.1, "raw neighbour correlation \(correlation)")
    }

    @Test func whiteningWithTheRecipesEpsilonIsNearTheIdentity() throws {
        let data = try Self.dataset(count: 100, seed: 6)
        let backend = CPUBackend()
        let layer = PatchWhitening(3, kernel: 2)
        _ = try Model(name: "w", network: Sequential(named: [("whiten", layer)]), inputShape: [3, 8, 8], backend: backend, seed: 1)
        let patches = try layer.fit(to: data, indices: Array(0..<100), normalization: .cifar10)
        let d = layer.patchDimension
        let w = try backend.floats(layer.weight.value).prefix(d * d).map(Double.init)
        // W cov W^T directly (double precision): diagonal lambda / (lambda + 5e-4), off-diagonal ~0.
        let cov = PatchWhitening.covariance(patches, dimension: d)
        for a in 0..<d {
            for b in 0..<d {
                var s = 0.0
                for i in 0..<d { for j in 0..<d { s += w[a * d + i] * cov[i * d + j] * w[b * d + j] } }
                if a == b { #expect(s > 0.9 && s < 1 + 1e-4, "diagonal \(a): \(s)") } else { #expect(abs(s) < 1e-4, "(\(a), \(b)): \(s)") }
            }
        }
    }
}
