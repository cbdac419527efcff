// Fast BatchNorm over axis 1 of (N, C, S) tensors.
//
// Work is split into channel ranges sized so that a range's N*S*range values fit in L2 (one
// channel of a 128 x 32 x 32 batch is 512 KiB): the statistics pass and the normalising pass of a
// range read the same data, so the later passes hit L2 instead of memory. Within a range the loops
// go image by image over the range's contiguous (channels, S) block, so small planes (S = 16, 64)
// still stream contiguous memory.
//
// Per-channel sums: each plane (S values) is summed in Float with 16-lane SIMD accumulators, and
// the plane sums are added in Double in image order. The forward statistics take one pass (sums of
// x - K and (x - K)^2 around a per-channel shift K, see BatchNormTrainingTask) instead of the
// reference's two; the normalising pass then reads the range again from L2. Per-channel results
// never depend on how channels are grouped into tasks, so they are the same for any thread count.

import CNNCore
import SGEMM

extension FastCPU {
    /// Channels per task for (N, C, S) data: about 512 KiB per range, and at least ~4 tasks per
    /// thread when there are enough channels.
    func channelsPerTask(batch: Int, channels: Int, spatial: Int) -> Int {
        let perChannel = max(1, batch * spatial)
        var cpt = max(1, (1 << 17) / perChannel)
        if threads > 1 { cpt = min(cpt, max(1, channels / (4 * threads))) }
        return min(cpt, channels)
    }

    func runChannelTasks<T: ParallelTask>(channels: Int, perTask: Int, total: Int, _ task: T) {
        let count = (channels + perTask - 1) / perTask
        if count > 1 && split(total, 1 << 15) { pool.parallelFor(count, task) } else { for t in 0..<count { task.run(t) } }
    }

    /// Fast path of `Reference.batchNormForwardTraining` (statistics rtol ~1e-6, y within 1e-5 of its
    /// scale). x, y: (N, C, S); gamma, beta, runningMean, runningVar, saveMean, saveInvStd: (C).
    func batchNormForwardTraining(x: UnsafePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
                                  y: UnsafeMutablePointer<Float>, runningMean: UnsafeMutablePointer<Float>,
                                  runningVar: UnsafeMutablePointer<Float>, saveMean: UnsafeMutablePointer<Float>,
                                  saveInvStd: UnsafeMutablePointer<Float>, batch: Int, channels: Int, spatial: Int,
                                  momentum: Float, epsilon: Float, activation: Activation) {
        let cpt = channelsPerTask(batch: batch, channels: channels, spatial: spatial)
        let sums = workspace.buffer(.small, 2 * channels, as: Double.self)
        let task = BatchNormTrainingTask(x: x, gamma: gamma, beta: beta, y: y, runningMean: runningMean, runningVar: runningVar,
                                         saveMean: saveMean, saveInvStd: saveInvStd, n: batch, c: channels, s: spatial,
                                         momentum: momentum, epsilon: epsilon, relu: activation == .relu,
                                         perTask: cpt, sums: sums)
        runChannelTasks(channels: channels, perTask: cpt, total: batch * channels * spatial, task)
    }

    /// Fast path of `Reference.batchNormForwardInference` (within 1e-6 of the output's scale).
    func batchNormForwardInference(x: UnsafePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
                                   runningMean: UnsafePointer<Float>, runningVar: UnsafePointer<Float>,
                                   y: UnsafeMutablePointer<Float>, batch: Int, channels: Int, spatial: Int,
                                   epsilon: Float, activation: Activation) {
        // Per-channel affine map y = (x - mean) * a + beta, a = gamma / sqrt(var + eps) (in Double).
        let coef = workspace.floats(.small, 2 * channels)
        for c in 0..<channels {
            let invStd = 1 / (Double(runningVar[c]) + Double(epsilon)).squareRoot()
            coef[2 * c] = runningMean[c]
            coef[2 * c + 1] = Float(Double(gamma[c]) * invStd)
        }
        let task = BatchNormApplyTask(x: x, y: y, coef: UnsafePointer(coef), beta: beta, c: channels, s: spatial,
                                      relu: activation == .relu)
        let planes = batch * channels
        let total = planes * spatial
        if split(total, 1 << 15) {
            pool.parallelRanges(planes, grain: max(1, 4096 / max(1, spatial)), task)
        } else {
            task.run(0..<planes)
        }
    }

    /// Fast path of `Reference.batchNormBackward` (sums rtol ~1e-5, dx within 1e-5 of its scale).
    /// x, dy, dx: (N, C, S); gamma, saveMean, saveInvStd, dGamma, dBeta: (C).
    func batchNormBackward(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                           saveMean: UnsafePointer<Float>, saveInvStd: UnsafePointer<Float>,
                           dx: UnsafeMutablePointer<Float>, dGamma: UnsafeMutablePointer<Float>, dBeta: UnsafeMutablePointer<Float>,
                           batch: Int, channels: Int, spatial: Int) {
        let cpt = channelsPerTask(batch: batch, channels: channels, spatial: spatial)
        let sums = workspace.buffer(.small, 2 * channels, as: Double.self)
        let task = BatchNormBackwardTask(x: x, dy: dy, gamma: gamma, saveMean: saveMean, saveInvStd: saveInvStd, dx: dx,
                                         dGamma: dGamma, dBeta: dBeta, n: batch, c: channels, s: spatial, perTask: cpt, sums: sums)
        runChannelTasks(channels: channels, perTask: cpt, total: batch * channels * spatial, task)
    }
}

// MARK: - Plane kernels

/// Sum of p[0..<count] in Float: 16-lane accumulators (4 of them), lanes added at the end.
@inline(__always)
func planeSum(_ p: UnsafePointer<Float>, _ count: Int) -> Float {
    let r = UnsafeRawPointer(p)
    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
    var i = 0
    while i &+ 64 <= count {
        a0 += r.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self)
        a1 += r.loadUnaligned(fromByteOffset: i &* 4 &+ 64, as: SIMD16<Float>.self)
        a2 += r.loadUnaligned(fromByteOffset: i &* 4 &+ 128, as: SIMD16<Float>.self)
        a3 += r.loadUnaligned(fromByteOffset: i &* 4 &+ 192, as: SIMD16<Float>.self)
        i &+= 64
    }
    while i &+ 16 <= count {
        a0 += r.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self)
        i &+= 16
    }
    var s = ((a0 + a1) + (a2 + a3)).sum()
    while i < count { s += p[i]; i &+= 1 }
    return s
}

/// (sum of (p[i] - k), sum of (p[i] - k)^2) over a plane, in Float (as `planeSum`).
@inline(__always)
func planeShiftedMoments(_ p: UnsafePointer<Float>, _ count: Int, _ k: Float) -> (Float, Float) {
    let r = UnsafeRawPointer(p)
    let kv = SIMD16<Float>(repeating: k)
    var s0 = SIMD16<Float>(), s1 = SIMD16<Float>(), q0 = SIMD16<Float>(), q1 = SIMD16<Float>()
    var i = 0
    while i &+ 32 <= count {
        let d0 = r.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self) - kv
        let d1 = r.loadUnaligned(fromByteOffset: i &* 4 &+ 64, as: SIMD16<Float>.self) - kv
        s0 += d0; s1 += d1; q0 += d0 * d0; q1 += d1 * d1
        i &+= 32
    }
    while i &+ 16 <= count {
        let d0 = r.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self) - kv
        s0 += d0; q0 += d0 * d0
        i &+= 16
    }
    var a = (s0 + s1).sum(), b = (q0 + q1).sum()
    while i < count { let d = p[i] - k; a += d; b += d * d; i &+= 1 }
    return (a, b)
}

/// y[i] = act((x[i] - m) * a + b) for i in 0..<count.
@inline(__always)
func planeAffine(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ count: Int, m: Float, a: Float, b: Float, relu: Bool) {
    let xr = UnsafeRawPointer(x), yr = UnsafeMutableRawPointer(y)
    let mv = SIMD16<Float>(repeating: m), av = SIMD16<Float>(repeating: a), bv = SIMD16<Float>(repeating: b)
    var i = 0
    if relu {
        while i &+ 16 <= count {
            let v = (xr.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self) - mv) * av + bv
            yr.storeBytes(of: reluVector(v), toByteOffset: i &* 4, as: SIMD16<Float>.self)
            i &+= 16
        }
        while i < count { y[i] = reluValue((x[i] - m) * a + b); i &+= 1 }
    } else {
        while i &+ 16 <= count {
            let v = (xr.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self) - mv) * av + bv
            yr.storeBytes(of: v, toByteOffset: i &* 4, as: SIMD16<Float>.self)
            i &+= 16
        }
        while i < count { y[i] = (x[i] - m) * a + b; i &+= 1 }
    }
}

// MARK: - Tasks

/// Channels [t*perTask, ...) of a training-mode forward.
struct BatchNormTrainingTask: ParallelTask {
    let x: UnsafePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>
    let runningMean: UnsafeMutablePointer<Float>, runningVar: UnsafeMutablePointer<Float>
    let saveMean: UnsafeMutablePointer<Float>, saveInvStd: UnsafeMutablePointer<Float>
    let n: Int, c: Int, s: Int
    let momentum: Float, epsilon: Float, relu: Bool
    let perTask: Int
    /// (C) sums then (C) squared deviations, in Double.
    let sums: UnsafeMutablePointer<Double>

    func run(_ t: Int) {
        let c0 = t * perTask, c1 = min(c, c0 + perTask)
        if c0 >= c1 { return }
        let m = n * s
        // One statistics pass: per plane, Float sums of (x - K) and (x - K)^2 around a per-channel
        // shift K (the channel's first value, so that K is within a few deviations of the mean and
        // the variance does not cancel), added in Double in image order; then
        //   mean = K + S1/M,  var = S2/M - (S1/M)^2.
        let sum = sums + c0, sq = sums + c + c0
        for ch in 0..<(c1 - c0) { sum[ch] = 0; sq[ch] = 0 }
        for img in 0..<n {
            let base = x + (img * c + c0) * s
            for ch in 0..<(c1 - c0) {
                let (a, b) = planeShiftedMoments(base + ch * s, s, x[(c0 + ch) * s])
                sum[ch] += Double(a); sq[ch] += Double(b)
            }
        }
        let mom = Double(momentum)
        for ch in 0..<(c1 - c0) {
            let cc = c0 + ch
            let shift = Double(x[cc * s])
            let d = sum[ch] / Double(m)
            let mean = shift + d
            let variance = max(0, sq[ch] / Double(m) - d * d)
            let invStd = 1 / (variance + Double(epsilon)).squareRoot()
            saveMean[cc] = Float(mean)
            saveInvStd[cc] = Float(invStd)
            sq[ch] = Double(gamma[cc]) * invStd   // the scale a
            runningMean[cc] = Float((1 - mom) * Double(runningMean[cc]) + mom * mean)
            runningVar[cc] = Float((1 - mom) * Double(runningVar[cc]) + mom * variance * Double(m) / Double(m - 1))
        }
        for img in 0..<n {
            let off = (img * c + c0) * s
            for ch in 0..<(c1 - c0) {
                planeAffine(x + off + ch * s, y + off + ch * s, s, m: saveMean[c0 + ch], a: Float(sq[ch]), b: beta[c0 + ch], relu: relu)
            }
        }
    }
}

/// Planes [range] of an inference-mode forward: coef = (mean, scale) per channel.
struct BatchNormApplyTask: ParallelRangeTask {
    let x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>
    let coef: UnsafePointer<Float>, beta: UnsafePointer<Float>
    let c: Int, s: Int, relu: Bool
    func run(_ range: Range<Int>) {
        for plane in range {
            let ch = plane % c
            planeAffine(x + plane * s, y + plane * s, s, m: coef[2 * ch], a: coef[2 * ch + 1], b: beta[ch], relu: relu)
        }
    }
}

/// Channels [t*perTask, ...) of a backward pass.
struct BatchNormBackwardTask: ParallelTask {
    let x: UnsafePointer<Float>, dy: UnsafePointer<Float>, gamma: UnsafePointer<Float>
    let saveMean: UnsafePointer<Float>, saveInvStd: UnsafePointer<Float>
    let dx: UnsafeMutablePointer<Float>, dGamma: UnsafeMutablePointer<Float>, dBeta: UnsafeMutablePointer<Float>
    let n: Int, c: Int, s: Int
    let perTask: Int
    /// (C) sums of dy, then (C) sums of dy * (x - mean), in Double.
    let sums: UnsafeMutablePointer<Double>

    func run(_ t: Int) {
        let c0 = t * perTask, c1 = min(c, c0 + perTask)
        if c0 >= c1 { return }
        let sumDy = sums + c0, sumDyXc = sums + c + c0
        for ch in 0..<(c1 - c0) { sumDy[ch] = 0; sumDyXc[ch] = 0 }
        for img in 0..<n {
            let off = (img * c + c0) * s
            for ch in 0..<(c1 - c0) {
                let (a, b) = planeDySums(dy + off + ch * s, x + off + ch * s, s, saveMean[c0 + ch])
                sumDy[ch] += Double(a); sumDyXc[ch] += Double(b)
            }
        }
        let m = Double(n * s)
        for ch in 0..<(c1 - c0) {
            let cc = c0 + ch
            let invStd = Double(saveInvStd[cc])
            let sDyXhat = sumDyXc[ch] * invStd
            dGamma[cc] = Float(sDyXhat)
            dBeta[cc] = Float(sumDy[ch])
            let k = Double(gamma[cc]) * invStd
            // dx = k * (dy - meanDy) - (k * invStd * meanDyXhat) * (x - mean)
            sumDy[ch] = sumDy[ch] / m                  // meanDy
            sumDyXc[ch] = k * invStd * (sDyXhat / m)   // c2
        }
        for img in 0..<n {
            let off = (img * c + c0) * s
            for ch in 0..<(c1 - c0) {
                let cc = c0 + ch
                planeBackward(dy + off + ch * s, x + off + ch * s, dx + off + ch * s, s,
                              k: gamma[cc] * saveInvStd[cc], meanDy: Float(sumDy[ch]), c2: Float(sumDyXc[ch]), mean: saveMean[cc])
            }
        }
    }
}

/// (sum of dy, sum of dy * (x - m)) over a plane, in Float.
@inline(__always)
func planeDySums(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ count: Int, _ m: Float) -> (Float, Float) {
    let dr = UnsafeRawPointer(dy), xr = UnsafeRawPointer(x)
    let mv = SIMD16<Float>(repeating: m)
    var s0 = SIMD16<Float>(), s1 = SIMD16<Float>(), p0 = SIMD16<Float>(), p1 = SIMD16<Float>()
    var i = 0
    while i &+ 32 <= count {
        let d0 = dr.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self)
        let d1 = dr.loadUnaligned(fromByteOffset: i &* 4 &+ 64, as: SIMD16<Float>.self)
        let x0 = xr.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self) - mv
        let x1 = xr.loadUnaligned(fromByteOffset: i &* 4 &+ 64, as: SIMD16<Float>.self) - mv
        s0 += d0; s1 += d1; p0 += d0 * x0; p1 += d1 * x1
        i &+= 32
    }
    while i &+ 16 <= count {
        let d0 = dr.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self)
        let x0 = xr.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self) - mv
        s0 += d0; p0 += d0 * x0
        i &+= 16
    }
    var a = (s0 + s1).sum(), b = (p0 + p1).sum()
    while i < count { a += dy[i]; b += dy[i] * (x[i] - m); i &+= 1 }
    return (a, b)
}

/// dx = k * (dy - meanDy) - c2 * (x - mean) over a plane.
@inline(__always)
func planeBackward(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ count: Int,
                   k: Float, meanDy: Float, c2: Float, mean: Float) {
    let dr = UnsafeRawPointer(dy), xr = UnsafeRawPointer(x), out = UnsafeMutableRawPointer(dx)
    let kv = SIMD16<Float>(repeating: k), mdy = SIMD16<Float>(repeating: meanDy)
    let c2v = SIMD16<Float>(repeating: c2), mv = SIMD16<Float>(repeating: mean)
    var i = 0
    while i &+ 16 <= count {
        let d = dr.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self)
        let xv = xr.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self)
        out.storeBytes(of: kv * (d - mdy) - c2v * (xv - mv), toByteOffset: i &* 4, as: SIMD16<Float>.self)
        i &+= 16
    }
    while i < count { dx[i] = k * (dy[i] - meanDy) - c2 * (x[i] - mean); i &+= 1 }
}
