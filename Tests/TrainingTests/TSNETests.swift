import CNNCore
import CPUBackend
import Foundation
import NN
import Testing
@testable import Training

@Suite struct TSNETests {
    /// Three well-separated Gaussian blobs in 8-D, 20 points each.
    func blobs() -> (points: [Float], labels: [Int32]) {
        var rng = SeededRNG(seed: 3)
        var points: [Float] = [], labels: [Int32] = []
        for c in 0..<3 {
            for _ in 0..<20 {
                for k in 0..<8 { points.append((k == c ? 10 : 0) + 0.5 * rng.normal()) }
                labels.append(Int32(c))
            }
        }
        return (points, labels)
    }

    @Test func conditionalsHaveThePerplexity() {
        let (x, _) = blobs()
        let t = TSNE(perplexity: 10)
        var dist = [Double](repeating: 0, count: 60 * 60)
        for i in 0..<60 { for j in 0..<60 {
            dist[i * 60 + j] = (0..<8).reduce(0.0) { $0 + pow(Double(x[i * 8 + $1] - x[j * 8 + $1]), 2) }
        } }
        for i in [0, 25, 59] {
            let row = t.conditionalRow(dist, i: i, n: 60)
            let entropy = row.filter { $0 > 0 }.reduce(0.0) { $0 - $1 * log($1) }
            #expect(abs(row.reduce(0, +) - 1) < 1e-9 && row[i] == 0)
            #expect(abs(exp(entropy) - 10) < 1e-3, "row \(i): perplexity \(exp(entropy))")
        }
        let p = t.jointProbabilities(x, n: 60, d: 8)
        #expect(abs(p.reduce(0, +) - 1) < 1e-6)
        #expect(p[1 * 60 + 2] == p[2 * 60 + 1])
    }

    /// Each point's nearest neighbour in the embedding is from its own blob, and the result is a
    /// function of the seed.
    @Test func separatedClustersStaySeparated() throws {
        let (x, labels) = blobs()
        let t = TSNE(perplexity: 10, iterations: 400, seed: 1)
        let y = try t.embed(x, n: 60, d: 8)
        #expect(y.allSatisfy { $0.isFinite })
        var correct = 0
        for i in 0..<60 {
            let nearest = (0..<60).filter { $0 != i }.min { a, b in
                pow(y[2 * a] - y[2 * i], 2) + pow(y[2 * a + 1] - y[2 * i + 1], 2) < pow(y[2 * b] - y[2 * i], 2) + pow(y[2 * b + 1] - y[2 * i + 1], 2)
            }!
            if labels[nearest] == labels[i] { correct += 1 }
        }
        #expect(correct == 60)
        #expect(try t.embed(x, n: 60, d: 8) == y)
        #expect(throws: CNNError.self) { _ = try TSNE(perplexity: 100).embed(x, n: 60, d: 8) }
    }

    @Test func penultimateFeaturesOfOptimizedAre512() throws {
        let be = CPUBackend()
        let model = try ModelZoo.make("optimized", backend: be, seed: 1)
        var rng = SeededRNG(seed: 2)
        let x = HostTensor(shape: [5, 3, 32, 32], values: (0..<(5 * 3072)).map { _ in rng.uniform(-1, 1) })
        let (f, dim) = try Visualization.penultimateFeatures(model: model, images: x, batchSize: 2)
        #expect(dim == 512 && f.count == 5 * 512)
        #expect(f.allSatisfy { $0 >= 0 })   // after fc.0's ReLU
        let img = Visualization.scatterPlot([0, 0, 1, 1], labels: [0, 3], size: 50)
        #expect(img.width == 50 && img.pixels[((40 * 50) + 10) * 3] == Visualization.palette[0].0)
    }
}
