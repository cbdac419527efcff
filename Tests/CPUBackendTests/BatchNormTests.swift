import CNNCore
import CPUBackend
import Foundation
import Testing

@Suite struct BatchNormHandTests {
    /// x: (N=2, C=2, 1, 2), laid out n0c0, n0c1, n1c0, n1c1:
    ///   channel 0 values {0, 2, 0, 2}: mean 1, biased var 1, unbiased var 4/3
    ///   channel 1 values {1, 1, 3, 3}: mean 2, biased var 1, unbiased var 4/3
    /// With epsilon 0 invStd = 1, so xhat = x - mean: c0 [-1, 1, -1, 1], c1 [-1, -1, 1, 1].
    /// gamma [1, 2], beta [0, 1]: y c0 = xhat, y c1 = 2 xhat + 1.
    @Test func trainingForwardOnAKnownBatch() throws {
        let be = CPUBackend()
        let x = try be.refUpload([0, 2, 1, 1, 0, 2, 3, 3], [2, 2, 1, 2])
        let gamma = try be.refUpload([1, 2], [2]), beta = try be.refUpload([0, 1], [2])
        let y = try be.makeTensor(x.shape)
        let runMean = try be.refUpload([0, 0], [2]), runVar = try be.refUpload([1, 1], [2])
        let saveMean = try be.makeTensor([2]), saveInvStd = try be.makeTensor([2])
        let momentum: Float = 0.1
        try be.batchNormForwardTraining(x: x, gamma: gamma, beta: beta, y: y, runningMean: runMean, runningVar: runVar,
                                        saveMean: saveMean, saveInvStd: saveInvStd, momentum: momentum, epsilon: 0, activation: .identity)
        RefCheck.exact(try be.floats(y), [-1, 1, -1, -1, -1, 1, 3, 3], "y")
        RefCheck.exact(try be.floats(saveMean), [1, 2], "saveMean")
        RefCheck.exact(try be.floats(saveInvStd), [1, 1], "saveInvStd")
        // PyTorch: running = (1 - m) running + m stat, with the unbiased variance 4/3 for the running var.
        let m = Double(momentum)
        RefCheck.close(try be.floats(runMean), [m * 1, m * 2], atol: 0, rtol: 1e-6, "runningMean after 1 step")
        RefCheck.close(try be.floats(runVar), [(1 - m) + m * 4 / 3, (1 - m) + m * 4 / 3], atol: 0, rtol: 1e-6, "runningVar after 1 step")

        // A second step on the same batch moves the running statistics again; with ReLU fused.
        try be.batchNormForwardTraining(x: x, gamma: gamma, beta: beta, y: y, runningMean: runMean, runningVar: runVar,
                                        saveMean: saveMean, saveInvStd: saveInvStd, momentum: momentum, epsilon: 0, activation: .relu)
        RefCheck.exact(try be.floats(y), [0, 1, 0, 0, 0, 1, 3, 3], "y with relu")
        RefCheck.close(try be.floats(runMean), [(1 - m) * m + m, ((1 - m) * m * 2) + m * 2], atol: 0, rtol: 1e-6, "runningMean after 2 steps")
        let v1 = (1 - m) + m * 4 / 3
        RefCheck.close(try be.floats(runVar), [(1 - m) * v1 + m * 4 / 3, (1 - m) * v1 + m * 4 / 3], atol: 0, rtol: 1e-6, "runningVar after 2 steps")
    }

    /// BatchNorm1d layout (N=4, C=1), values {0, 0, 2, 2}, epsilon 1e-5: xhat = +-1 / sqrt(1 + eps).
    @Test func trainingForwardWithEpsilon() throws {
        let be = CPUBackend()
        let x = try be.refUpload([0, 0, 2, 2], [4, 1])
        let y = try be.makeTensor([4, 1]), saveMean = try be.makeTensor([1]), saveInvStd = try be.makeTensor([1])
        let eps: Float = 1e-5
        try be.batchNormForwardTraining(x: x, gamma: try be.refUpload([1], [1]), beta: try be.refUpload([0], [1]), y: y,
                                        runningMean: try be.makeTensor([1]), runningVar: try be.refUpload([1], [1]),
                                        saveMean: saveMean, saveInvStd: saveInvStd, momentum: 0.1, epsilon: eps, activation: .identity)
        let inv = 1 / (1 + Double(eps)).squareRoot()
        RefCheck.close(try be.floats(y), [-inv, -inv, inv, inv], atol: 0, rtol: 1e-6, "y")
        RefCheck.close(try be.floats(saveInvStd), [inv], atol: 0, rtol: 1e-6, "saveInvStd")
    }

    /// One value per channel (N*spatial == 1): the unbiased variance would divide by zero, so
    /// training mode throws, as PyTorch does.
    @Test func oneValuePerChannelThrowsInTraining() throws {
        let be = CPUBackend()
        let x = try be.makeTensor([1, 3])
        let c = { try be.makeTensor([3]) }
        RefCheck.throwsInvalid("batchNormForwardTraining", "x") {
            try be.batchNormForwardTraining(x: x, gamma: try c(), beta: try c(), y: try be.makeTensor([1, 3]), runningMean: try c(),
                                            runningVar: try c(), saveMean: try c(), saveInvStd: try c(), momentum: 0.1, epsilon: 1e-5,
                                            activation: .identity)
        }
    }

    /// x = [1, 3], running mean 1, running var 3, epsilon 1: y = gamma (x - 1) / 2 + beta.
    @Test func inferenceUsesRunningStatistics() throws {
        let be = CPUBackend()
        let x = try be.refUpload([1, 3], [2, 1])
        let y = try be.makeTensor([2, 1])
        let (rm, rv) = (try be.refUpload([1], [1]), try be.refUpload([3], [1]))
        try be.batchNormForwardInference(x: x, gamma: try be.refUpload([4], [1]), beta: try be.refUpload([1], [1]),
                                         runningMean: rm, runningVar: rv, y: y, epsilon: 1, activation: .identity)
        RefCheck.exact(try be.floats(y), [1, 5], "gamma 4, beta 1")
        try be.batchNormForwardInference(x: x, gamma: try be.refUpload([4], [1]), beta: try be.refUpload([-3], [1]),
                                         runningMean: rm, runningVar: rv, y: y, epsilon: 1, activation: .relu)
        RefCheck.exact(try be.floats(y), [0, 1], "beta -3, relu")
    }

    /// x = [0, 0, 2, 2] (mean 1, invStd 1, xhat [-1, -1, 1, 1]), dy = [1, 0, 0, 0]:
    /// mean(dy) = 1/4, mean(dy xhat) = -1/4, so dx = gamma (dy - 1/4 + xhat/4) = gamma [1/2, -1/2, 0, 0];
    /// dGamma = sum(dy xhat) = -1, dBeta = sum(dy) = 1.
    @Test func backwardOnAKnownBatch() throws {
        let be = CPUBackend()
        let x = try be.refUpload([0, 0, 2, 2], [4, 1])
        let dx = try be.makeTensor([4, 1]), dGamma = try be.makeTensor([1]), dBeta = try be.makeTensor([1])
        try be.batchNormBackward(x: x, dy: try be.refUpload([1, 0, 0, 0], [4, 1]), gamma: try be.refUpload([3], [1]),
                                 saveMean: try be.refUpload([1], [1]), saveInvStd: try be.refUpload([1], [1]),
                                 dx: dx, dGamma: dGamma, dBeta: dBeta)
        RefCheck.exact(try be.floats(dx), [1.5, -1.5, 0, 0], "dx")
        RefCheck.exact(try be.floats(dGamma), [-1], "dGamma")
        RefCheck.exact(try be.floats(dBeta), [1], "dBeta")
    }

    @Test func badArgumentsThrow() throws {
        let be = CPUBackend()
        let x = try be.makeTensor([2, 3, 4, 4])
        let c = { try be.makeTensor([3]) }
        RefCheck.throwsInvalid("batchNormForwardTraining", "gamma") {
            try be.batchNormForwardTraining(x: x, gamma: try be.makeTensor([4]), beta: try c(), y: try be.makeTensor(x.shape),
                                            runningMean: try c(), runningVar: try c(), saveMean: try c(), saveInvStd: try c(),
                                            momentum: 0.1, epsilon: 1e-5, activation: .identity)
        }
        RefCheck.throwsInvalid("batchNormForwardTraining", "y") {   // y aliasing x is not allowed
            try be.batchNormForwardTraining(x: x, gamma: try c(), beta: try c(), y: x, runningMean: try c(), runningVar: try c(),
                                            saveMean: try c(), saveInvStd: try c(), momentum: 0.1, epsilon: 1e-5, activation: .identity)
        }
        RefCheck.throwsInvalid("batchNormForwardInference", "runningVar") {
            try be.batchNormForwardInference(x: x, gamma: try c(), beta: try c(), runningMean: try c(),
                                             runningVar: try be.makeTensor([3], dtype: .int32), y: try be.makeTensor(x.shape),
                                             epsilon: 1e-5, activation: .identity)
        }
        RefCheck.throwsInvalid("batchNormBackward", "dx") {
            try be.batchNormBackward(x: x, dy: try be.makeTensor(x.shape), gamma: try c(), saveMean: try c(), saveInvStd: try c(),
                                     dx: try be.makeTensor([2, 3, 4, 3]), dGamma: try c(), dBeta: try c())
        }
        RefCheck.throwsInvalid("batchNormBackward", "x") {
            try be.batchNormBackward(x: try be.makeTensor([6]), dy: try be.makeTensor([6]), gamma: try c(), saveMean: try c(),
                                     saveInvStd: try c(), dx: try be.makeTensor([6]), dGamma: try c(), dBeta: try c())
        }
    }
}

/// Finite-difference checks of batchNormBackward against training-mode BatchNorm (batch statistics
/// depend on x), in Double through the generic reference.
@Suite struct BatchNormGradientTests {
    /// (N, C, spatial) cases: N = 1 and 3, 5x7 / 7x5 planes, a BatchNorm1d matrix, and the smallest
    /// batch, N*S = 2 (there xhat = +-d / sqrt(d^2 + eps) depends on x only through eps, so that case
    /// uses a large epsilon to keep the gradient away from zero).
    static let shapes: [Shape] = [[3, 2, 5, 7], [1, 3, 7, 5], [3, 4], [2, 3]]

    @Test(arguments: shapes)
    func inputGammaAndBeta(shape: Shape) {
        let (n, c, s) = (shape[0], shape[1], shape.spatialCount)
        let x = RefCheck.random(shape.count, seed: 61, in: -2...3)
        let gamma = RefCheck.random(c, seed: 62, in: 0.5...2)
        let beta = RefCheck.random(c, seed: 63)
        let r = RefCheck.random(shape.count, seed: 64)   // dL/dy
        let eps = n * s == 2 ? 0.5 : 1e-3

        /// Training forward; returns (y, saveMean, saveInvStd).
        func forward(_ xv: [Double], _ gv: [Double], _ bv: [Double]) -> ([Double], RefBuffer<Double>, RefBuffer<Double>) {
            let (xb, gb, bb) = (RefBuffer(xv), RefBuffer(gv), RefBuffer(bv))
            let y = RefBuffer(count: xv.count, value: 0.0)
            let (rm, rv) = (RefBuffer(count: c, value: 0.0), RefBuffer(count: c, value: 1.0))
            let (sm, si) = (RefBuffer(count: c, value: 0.0), RefBuffer(count: c, value: 0.0))
            Ref.batchNormForwardTraining(x: xb.p, gamma: gb.p, beta: bb.p, y: y.p, runningMean: rm.p, runningVar: rv.p,
                                         saveMean: sm.p, saveInvStd: si.p, batch: n, channels: c, spatial: s,
                                         momentum: 0.1, epsilon: eps, activation: .identity)
            return (y.values, sm, si)
        }
        let (_, saveMean, saveInvStd) = forward(x, gamma, beta)
        let (xb, rb, gb) = (RefBuffer(x), RefBuffer(r), RefBuffer(gamma))
        let dx = RefBuffer(count: x.count, value: Double.nan)
        let (dGamma, dBeta) = (RefBuffer(count: c, value: Double.nan), RefBuffer(count: c, value: Double.nan))
        Ref.batchNormBackward(x: xb.p, dy: rb.p, gamma: gb.p, saveMean: saveMean.p, saveInvStd: saveInvStd.p,
                              dx: dx.p, dGamma: dGamma.p, dBeta: dBeta.p, batch: n, channels: c, spatial: s)

        RefCheck.gradient(dx.values, RefCheck.numericGradient(x) { RefCheck.dot(forward($0, gamma, beta).0, r) }, "BN dx \(shape)")
        RefCheck.gradient(dGamma.values, RefCheck.numericGradient(gamma) { RefCheck.dot(forward(x, $0, beta).0, r) }, "BN dGamma \(shape)")
        RefCheck.gradient(dBeta.values, RefCheck.numericGradient(beta) { RefCheck.dot(forward(x, gamma, $0).0, r) }, "BN dBeta \(shape)")
    }

    /// The statistics themselves, recomputed independently: mean, biased variance for invStd,
    /// unbiased variance in the running variance, per channel of an (N, C, H, W) batch.
    @Test func statisticsMatchAnIndependentComputation() {
        let (n, c, s) = (3, 2, 35)
        let x = RefCheck.random(n * c * s, seed: 65, in: -1...4)
        let (xb, gb, bb, y) = (RefBuffer(x), RefBuffer(count: c, value: 1.0), RefBuffer(count: c, value: 0.0), RefBuffer(count: x.count, value: 0.0))
        let (rm, rv) = (RefBuffer([0.5, -0.5]), RefBuffer([2.0, 3.0]))
        let (sm, si) = (RefBuffer(count: c, value: 0.0), RefBuffer(count: c, value: 0.0))
        Ref.batchNormForwardTraining(x: xb.p, gamma: gb.p, beta: bb.p, y: y.p, runningMean: rm.p, runningVar: rv.p,
                                     saveMean: sm.p, saveInvStd: si.p, batch: n, channels: c, spatial: s,
                                     momentum: 0.25, epsilon: 1e-5, activation: .identity)
        for ch in 0..<c {
            let values = (0..<n).flatMap { i in (0..<s).map { x[(i * c + ch) * s + $0] } }
            let mean = values.reduce(0, +) / Double(values.count)
            let ss = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
            RefCheck.close([sm[ch]], [mean], atol: 0, rtol: 1e-13, "mean c\(ch)")
            RefCheck.close([si[ch]], [1 / (ss / Double(values.count) + 1e-5).squareRoot()], atol: 0, rtol: 1e-13, "invStd c\(ch)")
            let (rm0, rv0) = ([0.5, -0.5][ch], [2.0, 3.0][ch])
            RefCheck.close([rm[ch]], [0.75 * rm0 + 0.25 * mean], atol: 0, rtol: 1e-13, "running mean c\(ch)")
            RefCheck.close([rv[ch]], [0.75 * rv0 + 0.25 * ss / Double(values.count - 1)], atol: 0, rtol: 1e-13, "running var c\(ch)")
        }
    }
}
