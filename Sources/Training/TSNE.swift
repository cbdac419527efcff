import CNNCore
import Foundation

/// Exact t-SNE (van der Maaten and Hinton, 2008), for the guide's "t-SNE of the learned features":
/// O(N²) per iteration, meant for a few thousand points (1,000 points, 1,000 iterations: seconds).
///
/// Settings as scikit-learn's exact method: Gaussian conditionals calibrated to `perplexity` by
/// binary search on their precision, symmetrised P = (P + Pᵀ) / 2N; Student-t Q; gradient descent
/// with early exaggeration 12 for the first 250 iterations, momentum 0.5 then 0.8, per-parameter
/// gains (+0.2 / ×0.8, at least 0.01), learning rate max(n / 48, 50) unless given (scikit-learn's
/// "auto"); initial points N(0, 1e-4) from `seed`.
public struct TSNE: Sendable {
    public var perplexity: Double = 30
    public var iterations: Int = 1000
    /// nil: max(n / 48, 50).
    public var learningRate: Double? = nil
    public var seed: UInt64 = 0

    public init(perplexity: Double = 30, iterations: Int = 1000, learningRate: Double? = nil, seed: UInt64 = 0) {
        self.perplexity = perplexity
        self.iterations = iterations
        self.learningRate = learningRate
        self.seed = seed
    }

    /// 2-D embedding of the rows of `points` (n, d), row-major: (n, 2), row-major.
    public func embed(_ points: [Float], n: Int, d: Int) throws -> [Double] {
        try require(n >= 2 && d >= 1 && points.count == n * d, "t-SNE: \(points.count) values for \(n) points of \(d) dimensions")
        try require(perplexity > 0 && perplexity < Double(n),
                    "t-SNE: perplexity \(perplexity) must be positive and below the number of points (\(n))")
        let learningRate = self.learningRate ?? max(Double(n) / 48, 50)
        try require(iterations >= 1 && learningRate > 0, "t-SNE: iterations and learning rate must be positive")
        let p = jointProbabilities(points, n: n, d: d)
        var rng = SeededRNG(seed: seed)
        var y = (0..<(2 * n)).map { _ in 1e-4 * Double(rng.normal()) }
        var update = [Double](repeating: 0, count: 2 * n)
        var gains = [Double](repeating: 1, count: 2 * n)
        var num = [Double](repeating: 0, count: n * n)
        var grad = [Double](repeating: 0, count: 2 * n)
        for iter in 0..<iterations {
            let exaggeration = iter < 250 ? 12.0 : 1.0
            let momentum = iter < 250 ? 0.5 : 0.8
            // Student-t kernel num_ij = 1 / (1 + |y_i - y_j|²) and its sum.
            var sum = 0.0
            for i in 0..<n {
                for j in (i + 1)..<n {
                    let dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1]
                    let v = 1 / (1 + dx * dx + dy * dy)
                    num[i * n + j] = v; num[j * n + i] = v
                    sum += 2 * v
                }
            }
            // grad_i = 4 Σ_j (exaggeration·p_ij − q_ij) num_ij (y_i − y_j), q_ij = num_ij / sum.
            for i in 0..<n {
                var gx = 0.0, gy = 0.0
                for j in 0..<n where j != i {
                    let k = num[i * n + j]
                    let m = (exaggeration * p[i * n + j] - k / sum) * k
                    gx += m * (y[2 * i] - y[2 * j]); gy += m * (y[2 * i + 1] - y[2 * j + 1])
                }
                grad[2 * i] = 4 * gx; grad[2 * i + 1] = 4 * gy
            }
            for t in 0..<(2 * n) {
                gains[t] = (grad[t] > 0) != (update[t] > 0) ? gains[t] + 0.2 : gains[t] * 0.8
                gains[t] = max(gains[t], 0.01)
                update[t] = momentum * update[t] - learningRate * gains[t] * grad[t]
                y[t] += update[t]
            }
            // Keep the embedding centred.
            var mx = 0.0, my = 0.0
            for i in 0..<n { mx += y[2 * i]; my += y[2 * i + 1] }
            mx /= Double(n); my /= Double(n)
            for i in 0..<n { y[2 * i] -= mx; y[2 * i + 1] -= my }
        }
        return y
    }

    /// Symmetrised joint probabilities P (n, n) from Gaussian conditionals of perplexity `perplexity`.
    func jointProbabilities(_ x: [Float], n: Int, d: Int) -> [Double] {
        var dist = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in (i + 1)..<n {
                var s = 0.0
                for k in 0..<d { let t = Double(x[i * d + k]) - Double(x[j * d + k]); s += t * t }
                dist[i * n + j] = s; dist[j * n + i] = s
            }
        }
        var p = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            let row = conditionalRow(dist, i: i, n: n)
            for j in 0..<n { p[i * n + j] = row[j] }
        }
        var joint = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0..<n where j != i { joint[i * n + j] = max((p[i * n + j] + p[j * n + i]) / (2 * Double(n)), 1e-12) }
        }
        return joint
    }

    /// p_{j|i} with the precision found by binary search so that the row's entropy is log(perplexity).
    func conditionalRow(_ dist: [Double], i: Int, n: Int) -> [Double] {
        let target = log(perplexity)
        var beta = 1.0, lo = 0.0, hi = Double.infinity
        var row = [Double](repeating: 0, count: n)
        // Distances relative to the nearest neighbour keep exp() in range for any scale of features.
        let dmin = (0..<n).filter { $0 != i }.map { dist[i * n + $0] }.min() ?? 0
        for _ in 0..<100 {
            var sum = 0.0
            for j in 0..<n where j != i { row[j] = exp(-(dist[i * n + j] - dmin) * beta); sum += row[j] }
            row[i] = 0
            var entropy = 0.0
            for j in 0..<n where j != i {
                row[j] /= sum
                if row[j] > 1e-300 { entropy -= row[j] * log(row[j]) }
            }
            if abs(entropy - target) < 1e-5 { break }
            if entropy > target { lo = beta; beta = hi.isInfinite ? beta * 2 : (beta + hi) / 2 } else { hi = beta; beta = (lo + beta) / 2 }
        }
        return row
    }
}
