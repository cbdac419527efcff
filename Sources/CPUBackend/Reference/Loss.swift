import CNNCore
import Foundation

// Reference softmax and softmax cross-entropy over (N, K) row-major logits. Each row is shifted by
// its maximum before exp (numerically stable); exponentials, denominators and losses are in Double.

extension CPUBackend.Reference {
    /// What `softmaxCrossEntropy` compares the logits with.
    package enum LossTargets<T: BinaryFloatingPoint> {
        /// Class indices, (N) int32, each in 0..<K.
        case labels(UnsafePointer<Int32>)
        /// A target distribution per row, (N, K) (MixUp / CutMix). Rows are used as given.
        case soft(UnsafePointer<T>)
    }

    /// Row-wise softmax. x, y: (N, K) with N = rows, K = classes.
    /// y[r, k] = exp(x[r, k] - max_r) / sum_j exp(x[r, j] - max_r).
    package static func softmax<T: BinaryFloatingPoint>(x: UnsafePointer<T>, y: UnsafeMutablePointer<T>, rows: Int, classes: Int) {
        for r in 0..<rows {
            let xr = x + r * classes, yr = y + r * classes   // xr, yr: (K)
            let lse = logSumExp(xr, classes)
            for k in 0..<classes { yr[k] = T(exp(Double(xr[k]) - lse)) }
        }
    }

    /// log(sum_k exp(x[k])) of one row x: (K), shifted by the row maximum, in Double.
    static func logSumExp<T: BinaryFloatingPoint>(_ x: UnsafePointer<T>, _ classes: Int) -> Double {
        var mx = -Double.infinity
        for k in 0..<classes { mx = max(mx, Double(x[k])) }
        var sum = 0.0
        for k in 0..<classes { sum += exp(Double(x[k]) - mx) }
        return mx + log(sum)
    }

    /// Softmax cross-entropy per row. logits: (N, K); targets: labels (N) int32 or soft (N, K);
    /// losses: (N); dLogits: (N, K) or nil. With smoothing s the target row is
    /// target[k] = (1 - s) * t[k] + s / K, t = the one-hot label or the soft row; then
    ///   losses[r]     = -sum_k target[k] * (logits[r, k] - logSumExp(logits[r, :])),
    ///   dLogits[r, k] = gradScale * (softmax(logits[r, :])[k] - target[k]).
    /// Throws `invalidArgument` naming the row when a label is outside 0..<K (nothing is written then).
    package static func softmaxCrossEntropy<T: BinaryFloatingPoint>(
        logits: UnsafePointer<T>, targets: LossTargets<T>, rows: Int, classes: Int, labelSmoothing s: T,
        losses: UnsafeMutablePointer<T>, dLogits: UnsafeMutablePointer<T>?, gradScale: T
    ) throws {
        if case .labels(let labels) = targets {
            for r in 0..<rows where labels[r] < 0 || Int(labels[r]) >= classes {
                throw CNNError.invalidArgument(
                    "softmaxCrossEntropy: label \(labels[r]) of row \(r) is outside 0..<\(classes); "
                    + "labels must be class indices of the \(classes) logits")
            }
        }
        softmaxCrossEntropyRows(0..<rows, logits: logits, targets: targets, classes: classes, labelSmoothing: s,
                                losses: losses, dLogits: dLogits, gradScale: gradScale)
    }

    /// The rows `range` of `softmaxCrossEntropy`, labels already checked (the fast path runs row
    /// ranges of it in parallel).
    package static func softmaxCrossEntropyRows<T: BinaryFloatingPoint>(
        _ range: Range<Int>, logits: UnsafePointer<T>, targets: LossTargets<T>, classes: Int, labelSmoothing s: T,
        losses: UnsafeMutablePointer<T>, dLogits: UnsafeMutablePointer<T>?, gradScale: T
    ) {
        let smooth = Double(s), uniform = Double(s) / Double(classes), scale = Double(gradScale)
        for r in range {
            let xr = logits + r * classes   // xr: (K)
            let lse = logSumExp(xr, classes)
            var loss = 0.0
            for k in 0..<classes {
                let t: Double
                switch targets {
                case .labels(let labels): t = Int(labels[r]) == k ? 1 : 0
                case .soft(let soft): t = Double(soft[r * classes + k])
                }
                let target = (1 - smooth) * t + uniform
                let logP = Double(xr[k]) - lse
                if target != 0 { loss -= target * logP }   // 0 * log(0) counts as 0
                if let dLogits { dLogits[r * classes + k] = T(scale * (exp(logP) - target)) }
            }
            losses[r] = T(loss)
        }
    }
}
