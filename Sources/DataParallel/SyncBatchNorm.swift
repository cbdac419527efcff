import CNNCore
import Foundation
import NN

/// `--sync-bn`: training-mode BatchNorm statistics over the whole global batch, as PyTorch's
/// SyncBatchNorm. Forward sums x and x² per channel on each rank and adds them over the ranks;
/// backward does the same with the sums of dy and dy·x̂ that the input gradient needs.
///
/// The arithmetic runs on the host (each BatchNorm's input and gradient are read back once per
/// step): exact, and cheap next to convolutions on the CPU backend; on a GPU it costs transfers,
/// and moving it into kernels (with only the 2C sums crossing) is future work.
final class SyncBatchNorm: BatchNormSync {
    let world: MPIWorld
    unowned let reducer: GradientReducer

    init(world: MPIWorld, reducer: GradientReducer) {
        self.world = world
        self.reducer = reducer
    }

    /// (C, per-channel inner size, outer size) of x (N, C, *).
    private func layout(_ x: Tensor, _ layer: BatchNorm) -> (c: Int, inner: Int, outer: Int) {
        let n = x.shape[0], c = layer.features
        return (c, x.count / (n * c), n)
    }

    func forwardTraining(_ layer: BatchNorm, x: Tensor, y: Tensor, saveMean: Tensor, saveInvStd: Tensor) throws {
        let backend = reducer.model.backend
        let xs = try backend.floats(x)
        let (C, inner, outer) = layout(x, layer)
        var sums = [Double](repeating: 0, count: 2 * C + 1)
        for n in 0..<outer {
            for c in 0..<C {
                let base = (n * C + c) * inner
                var s = 0.0, q = 0.0
                for i in 0..<inner { let v = Double(xs[base + i]); s += v; q += v * v }
                sums[c] += s
                sums[C + c] += q
            }
        }
        sums[2 * C] = Double(outer * inner)
        try world.sum(&sums)
        let m = sums[2 * C]
        let gamma = try backend.floats(layer.weight.value), beta = try backend.floats(layer.bias.value)
        var mean = [Float](repeating: 0, count: C), invStd = [Float](repeating: 0, count: C)
        var runMean = try backend.floats(layer.runningMean.value), runVar = try backend.floats(layer.runningVar.value)
        let mom = layer.momentum
        for c in 0..<C {
            let mu = sums[c] / m
            let variance = max(sums[C + c] / m - mu * mu, 0)
            mean[c] = Float(mu)
            invStd[c] = Float(1 / (variance + Double(layer.epsilon)).squareRoot())
            let unbiased = m > 1 ? variance * m / (m - 1) : variance
            runMean[c] = (1 - mom) * runMean[c] + mom * Float(mu)
            runVar[c] = (1 - mom) * runVar[c] + mom * Float(unbiased)
        }
        var ys = xs
        let relu = layer.fusedActivation == .relu
        for n in 0..<outer {
            for c in 0..<C {
                let base = (n * C + c) * inner
                let a = gamma[c] * invStd[c], bb = beta[c] - gamma[c] * invStd[c] * mean[c]
                for i in 0..<inner {
                    let v = a * xs[base + i] + bb
                    ys[base + i] = relu ? max(v, 0) : v
                }
            }
        }
        try backend.write(ys, to: y)
        try backend.write(mean, to: saveMean)
        try backend.write(invStd, to: saveInvStd)
        try backend.write(runMean, to: layer.runningMean.value)
        try backend.write(runVar, to: layer.runningVar.value)
    }

    func backward(_ layer: BatchNorm, x: Tensor, dy: Tensor, saveMean: Tensor, saveInvStd: Tensor, dx: Tensor) throws {
        let backend = reducer.model.backend
        let xs = try backend.floats(x), dys = try backend.floats(dy)
        let mean = try backend.floats(saveMean), invStd = try backend.floats(saveInvStd)
        let gamma = try backend.floats(layer.weight.value)
        let (C, inner, outer) = layout(x, layer)
        // Local sums of dy and dy·x̂ per channel: this rank's dBeta and dGamma.
        var local = [Double](repeating: 0, count: 2 * C)
        for n in 0..<outer {
            for c in 0..<C {
                let base = (n * C + c) * inner
                var s = 0.0, t = 0.0
                for i in 0..<inner {
                    let g = Double(dys[base + i])
                    s += g
                    t += g * Double((xs[base + i] - mean[c]) * invStd[c])
                }
                local[c] += s
                local[C + c] += t
            }
        }
        try backend.write(local[C..<(2 * C)].map { Float($0) }, to: layer.weight.grad)
        try backend.write(local[0..<C].map { Float($0) }, to: layer.bias.grad)
        // The global sums of the global loss's gradient: this rank's dy carries 1/n_r, the global
        // loss's 1/n, so its sums are weighted by n_r / n before adding (see GradientReducer).
        let w = Double(reducer.stepWeight)
        var global = local.map { $0 * w }
        try world.sum(&global)
        let m = Double(reducer.globalCount > 0 ? reducer.globalCount : outer) * Double(inner)
        var dxs = dys
        for c in 0..<C {
            // dx (in this rank's scaling) = gamma·invStd·(dy - Σdy/(m w) - x̂·Σ(dy x̂)/(m w)).
            let k1 = Float(global[c] / (m * w)), k2 = Float(global[C + c] / (m * w))
            let g = gamma[c] * invStd[c]
            for n in 0..<outer {
                let base = (n * C + c) * inner
                for i in 0..<inner {
                    let xhat = (xs[base + i] - mean[c]) * invStd[c]
                    dxs[base + i] = g * (dys[base + i] - k1 - xhat * k2)
                }
            }
        }
        try backend.write(dxs, to: dx)
    }
}

/// `--sync-bn`: every BatchNorm layer of `model` takes its training statistics over all ranks.
package func enableSyncBatchNorm(_ model: Model, world: MPIWorld, reducer: GradientReducer) {
    let sync = SyncBatchNorm(world: world, reducer: reducer)
    for (_, bn) in model.batchNormLayers { bn.sync = sync }
}

/// `--no-dropout`: every Dropout layer of `model` is the identity in training too.
package func disableDropout(_ model: Model) {
    for (_, layer) in model.network.flattened(shortcuts: true) { (layer as? Dropout)?.disabled = true }
}
