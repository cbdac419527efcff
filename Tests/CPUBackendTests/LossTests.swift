import CNNCore
import CPUBackend
import Foundation
import Testing

/// Row 0 = [0, ln 2, ln 3]: softmax [1/6, 2/6, 3/6], -log softmax = [ln 6, ln 3, ln 2].
/// Row 1 = [1000, 0, -1000]: exp(1000) overflows, so only a max-shifted computation is finite;
/// softmax = [1, e^-1000, e^-2000] = [1, 0, 0] in Double, -log softmax = [0, 1000, 2000].
private let logits: [Float] = [0, Float(log(2.0)), Float(log(3.0)), 1000, 0, -1000]

@Suite struct LossHandTests {
    @Test func softmaxRows() throws {
        let be = CPUBackend()
        let y = try be.makeTensor([2, 3])
        try be.softmax(x: try be.refUpload(logits, [2, 3]), y: y)
        RefCheck.close(try be.floats(y), [1.0 / 6, 2.0 / 6, 3.0 / 6, 1, 0, 0], atol: 1e-7, rtol: 1e-6, "softmax")
    }

    @Test func crossEntropyWithLabels() throws {
        let be = CPUBackend()
        let losses = try be.makeTensor([2]), d = try be.makeTensor([2, 3])
        try be.softmaxCrossEntropy(logits: try be.refUpload(logits, [2, 3]), targets: .labels(try be.refUpload(ints: [2, 1], [2])),
                                   labelSmoothing: 0, losses: losses, dLogits: d, gradScale: 0.5)
        RefCheck.close(try be.floats(losses), [log(2.0), 1000], atol: 0, rtol: 1e-6, "losses")
        // dLogits = 0.5 * (softmax - onehot)
        RefCheck.close(try be.floats(d), [0.5 / 6, 0.5 * 2 / 6, 0.5 * (3.0 / 6 - 1), 0.5, -0.5, 0], atol: 1e-7, rtol: 1e-6, "dLogits")

        // Without dLogits only the losses are written.
        try be.softmaxCrossEntropy(logits: try be.refUpload(logits, [2, 3]), targets: .labels(try be.refUpload(ints: [0, 2], [2])),
                                   labelSmoothing: 0, losses: losses, dLogits: nil, gradScale: 1)
        RefCheck.close(try be.floats(losses), [log(6.0), 2000], atol: 0, rtol: 1e-6, "losses, labels [0, 2]")
    }

    /// Smoothing s = 0.3 over K = 3: target = 0.7 onehot + 0.1.
    /// Row 0, label 2: target [0.1, 0.1, 0.8], loss = 0.1 ln 6 + 0.1 ln 3 + 0.8 ln 2.
    /// Row 1, label 0: target [0.8, 0.1, 0.1], loss = 0.8 * 0 + 0.1 * 1000 + 0.1 * 2000 = 300.
    @Test func labelSmoothing() throws {
        let be = CPUBackend()
        let s: Float = 0.3
        let (hi, lo) = (1 - Double(s) + Double(s) / 3, Double(s) / 3)   // 0.8 and 0.1 as the Float s gives them
        let losses = try be.makeTensor([2]), d = try be.makeTensor([2, 3])
        try be.softmaxCrossEntropy(logits: try be.refUpload(logits, [2, 3]), targets: .labels(try be.refUpload(ints: [2, 0], [2])),
                                   labelSmoothing: s, losses: losses, dLogits: d, gradScale: 1)
        RefCheck.close(try be.floats(losses), [lo * log(6.0) + lo * log(3.0) + hi * log(2.0), lo * 1000 + lo * 2000],
                       atol: 0, rtol: 1e-6, "smoothed losses")
        RefCheck.close(try be.floats(d), [1.0 / 6 - lo, 2.0 / 6 - lo, 3.0 / 6 - hi, 1 - hi, -lo, -lo], atol: 1e-7, rtol: 1e-6,
                       "smoothed dLogits")
    }

    /// Soft target [0.25, 0.25, 0.5] on row 0: loss = 0.25 ln 6 + 0.25 ln 3 + 0.5 ln 2,
    /// dLogits = [1/6 - 1/4, 1/3 - 1/4, 0]. Row 1's soft target is one-hot on class 1.
    @Test func softTargets() throws {
        let be = CPUBackend()
        let soft = try be.refUpload([0.25, 0.25, 0.5, 0, 1, 0], [2, 3])
        let losses = try be.makeTensor([2]), d = try be.makeTensor([2, 3])
        try be.softmaxCrossEntropy(logits: try be.refUpload(logits, [2, 3]), targets: .soft(soft),
                                   labelSmoothing: 0, losses: losses, dLogits: d, gradScale: 1)
        RefCheck.close(try be.floats(losses), [0.25 * log(6.0) + 0.25 * log(3.0) + 0.5 * log(2.0), 1000], atol: 0, rtol: 1e-6, "soft losses")
        RefCheck.close(try be.floats(d), [1.0 / 6 - 0.25, 2.0 / 6 - 0.25, 0, 1, -1, 0], atol: 1e-7, rtol: 1e-6, "soft dLogits")
    }

    /// One-hot soft targets give bit-for-bit the same losses and gradients as the labels, smoothing included.
    @Test func oneHotSoftTargetsEqualLabels() throws {
        let be = CPUBackend()
        let x = try be.refUpload(RefCheck.random(4 * 5, seed: 81, in: -3...3).map(Float.init), [4, 5])
        let labels: [Int32] = [4, 0, 2, 2]
        let oneHot = labels.flatMap { l in (0..<5).map { Float($0 == Int(l) ? 1 : 0) } }
        let (l1, d1, l2, d2) = (try be.makeTensor([4]), try be.makeTensor([4, 5]), try be.makeTensor([4]), try be.makeTensor([4, 5]))
        try be.softmaxCrossEntropy(logits: x, targets: .labels(try be.refUpload(ints: labels, [4])), labelSmoothing: 0.1,
                                   losses: l1, dLogits: d1, gradScale: 0.25)
        try be.softmaxCrossEntropy(logits: x, targets: .soft(try be.refUpload(oneHot, [4, 5])), labelSmoothing: 0.1,
                                   losses: l2, dLogits: d2, gradScale: 0.25)
        RefCheck.exact(try be.floats(l1), try be.floats(l2), "losses")
        RefCheck.exact(try be.floats(d1), try be.floats(d2), "dLogits")
    }

    @Test func outOfRangeLabelThrowsNamingTheRow() throws {
        let be = CPUBackend()
        let x = try be.refUpload(logits, [2, 3])
        let losses = try be.refUpload([-5, -5], [2])
        for (labels, row) in [([0, 3] as [Int32], 1), ([-1, 0], 0)] {
            do {
                try be.softmaxCrossEntropy(logits: x, targets: .labels(try be.refUpload(ints: labels, [2])), labelSmoothing: 0,
                                           losses: losses, dLogits: nil, gradScale: 1)
                Issue.record("label \(labels) did not throw")
            } catch let e as CNNError {
                #expect(e.kind == .invalidArgument)
                #expect(e.message.hasPrefix("softmaxCrossEntropy:") && e.message.contains("row \(row)"), "\(e.message)")
            }
        }
        RefCheck.exact(try be.floats(losses), [-5, -5], "nothing written when a label is bad")
    }

    @Test func badArgumentsThrow() throws {
        let be = CPUBackend()
        let x = try be.makeTensor([2, 3]), losses = try be.makeTensor([2])
        let labels = try be.refUpload(ints: [0, 1], [2])
        RefCheck.throwsInvalid("softmaxCrossEntropy", "labels") {
            try be.softmaxCrossEntropy(logits: x, targets: .labels(try be.makeTensor([2])), labelSmoothing: 0, losses: losses, dLogits: nil, gradScale: 1)
        }
        RefCheck.throwsInvalid("softmaxCrossEntropy", "soft targets") {
            try be.softmaxCrossEntropy(logits: x, targets: .soft(try be.makeTensor([2, 4])), labelSmoothing: 0, losses: losses, dLogits: nil, gradScale: 1)
        }
        RefCheck.throwsInvalid("softmaxCrossEntropy", "losses") {
            try be.softmaxCrossEntropy(logits: x, targets: .labels(labels), labelSmoothing: 0, losses: try be.makeTensor([3]), dLogits: nil, gradScale: 1)
        }
        RefCheck.throwsInvalid("softmaxCrossEntropy", "dLogits") {
            try be.softmaxCrossEntropy(logits: x, targets: .labels(labels), labelSmoothing: 0, losses: losses, dLogits: x, gradScale: 1)
        }
        RefCheck.throwsInvalid("softmaxCrossEntropy", "labelSmoothing") {
            try be.softmaxCrossEntropy(logits: x, targets: .labels(labels), labelSmoothing: 1.5, losses: losses, dLogits: nil, gradScale: 1)
        }
        RefCheck.throwsInvalid("softmaxCrossEntropy", "logits") {
            try be.softmaxCrossEntropy(logits: try be.makeTensor([6]), targets: .labels(labels), labelSmoothing: 0, losses: losses, dLogits: nil, gradScale: 1)
        }
        RefCheck.throwsInvalid("softmax", "y") { try be.softmax(x: x, y: x) }
        RefCheck.throwsInvalid("softmax", "y") { try be.softmax(x: x, y: try be.makeTensor([3, 2])) }
    }
}

/// d(sum of losses)/d logits against finite differences, in Double through the generic reference.
/// Every target row sums to 1, so that gradient is softmax - target (gradScale 1).
@Suite struct LossGradientTests {
    enum Kind: String, CaseIterable { case labels, smoothedLabels, smoothedSoft }

    @Test(arguments: [1, 3], Kind.allCases)
    func dLogits(rows: Int, kind: Kind) throws {
        let k = 5
        let x = RefCheck.random(rows * k, seed: 91, in: -3...3)
        let labels = RefBuffer((0..<rows).map { Int32(($0 * 2 + 1) % k) })
        let raw = RefCheck.random(rows * k, seed: 92, in: 0.1...1)
        let soft = RefBuffer((0..<rows * k).map { i in raw[i] / (0..<k).reduce(0) { $0 + raw[(i / k) * k + $1] } })
        let targets: Ref.LossTargets<Double> = kind == .smoothedSoft ? .soft(UnsafePointer(soft.p)) : .labels(UnsafePointer(labels.p))
        let s = kind == .labels ? 0.0 : 0.2
        func lossSum(_ xv: [Double]) throws -> Double {
            let (xb, l) = (RefBuffer(xv), RefBuffer(count: rows, value: 0.0))
            try Ref.softmaxCrossEntropy(logits: xb.p, targets: targets, rows: rows, classes: k, labelSmoothing: s,
                                        losses: l.p, dLogits: nil, gradScale: 1)
            return l.values.reduce(0, +)
        }
        let (xb, l, d) = (RefBuffer(x), RefBuffer(count: rows, value: 0.0), RefBuffer(count: x.count, value: Double.nan))
        try Ref.softmaxCrossEntropy(logits: xb.p, targets: targets, rows: rows, classes: k, labelSmoothing: s,
                                    losses: l.p, dLogits: d.p, gradScale: 1)
        let numeric = RefCheck.numericGradient(x) { (try? lossSum($0)) ?? .nan }
        RefCheck.gradient(d.values, numeric, "dLogits \(kind) N=\(rows)")
        withExtendedLifetime((labels, soft)) {}
    }
}
