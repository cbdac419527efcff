// Fast elementwise ops, bias add / bias gradient and reductions: 16-lane SIMD loops, split into
// contiguous ranges over the pool's threads when the tensor is large (memory-bound work gains from
// the second core's bandwidth; below ~128K elements the pool's start-up cost is not worth it).
// Elementwise results are bit-exact with the reference (the same Float operations per element).
// Reductions sum fixed chunks (Double lanes for `sum`; Float lanes per plane, then Double, for the
// bias gradient) and add the chunk sums in chunk order, so they do not depend on the thread count.

import CNNCore
import SGEMM

extension FastCPU {
    static let parallelElements = 1 << 17

    /// Runs `task` over 0..<count: on the calling thread when small, else in chunks of at least 32K
    /// elements (64-aligned), about 4 per thread, handed out dynamically — a core busy with another
    /// process then delays one chunk, not half of the op.
    func elementwise<T: ParallelRangeTask>(_ count: Int, _ task: T) {
        if !split(count, Self.parallelElements) { task.run(0..<count); return }
        parallelChunks(count, grain: 64, minimum: 1 << 15, task)
    }

    /// `task.run(range)` over 0..<count in about 4 * threads dynamic chunks of at least `minimum`
    /// elements (multiples of `grain`). Which thread runs which chunk does not change any result.
    func parallelChunks<T: ParallelRangeTask>(_ count: Int, grain: Int, minimum: Int, _ task: T) {
        let chunks = max(1, min(4 * threads, count / max(1, minimum)))
        if chunks == 1 { task.run(0..<count); return }
        pool.parallelFor(chunks, ChunkTask(task: task, count: count, chunks: chunks, grain: grain))
    }

    /// Fast path of `Reference.relu` (bit-exact). y may be x.
    func relu(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, count: Int) {
        elementwise(count, UnaryTask(x: x, y: y, op: .relu, alpha: 0))
    }
    /// Fast path of `Reference.scale` (bit-exact). y may be x.
    func scale(_ x: UnsafePointer<Float>, by alpha: Float, y: UnsafeMutablePointer<Float>, count: Int) {
        elementwise(count, UnaryTask(x: x, y: y, op: .scale, alpha: alpha))
    }
    /// Fast path of `Reference.axpy` (bit-exact): y += alpha * x.
    func axpy(alpha: Float, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, count: Int) {
        elementwise(count, UnaryTask(x: x, y: y, op: .axpy, alpha: alpha))
    }
    /// Fast path of `Reference.fill` (bit-exact).
    func fill(_ t: UnsafeMutablePointer<Float>, value: Float, count: Int) {
        elementwise(count, UnaryTask(x: UnsafePointer(t), y: t, op: .fill, alpha: value))
    }
    /// Fast path of `Reference.add` (bit-exact). y may be a or b.
    func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, count: Int) {
        elementwise(count, BinaryTask(a: a, b: b, y: y, op: .add))
    }
    /// Fast path of `Reference.mul` (bit-exact). y may be a or b.
    func mul(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, count: Int) {
        elementwise(count, BinaryTask(a: a, b: b, y: y, op: .mul))
    }
    /// Fast path of `Reference.reluBackward` (bit-exact): dx = y > 0 ? dy : 0. dx may be dy.
    func reluBackward(y: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, count: Int) {
        elementwise(count, BinaryTask(a: y, b: dy, y: dx, op: .reluBackward))
    }

    /// Fast path of `Reference.dropoutForward` (bit-exact: the same counter-based mask).
    func dropoutForward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<Float>, count: Int,
                        probability p: Float, seed: UInt64) {
        elementwise(count, DropoutTask(x: x, y: y, mask: mask, key: CounterRNG.key(seed: seed), p: p, keepScale: 1 / (1 - p)))
    }

    /// Fast path of `Reference.biasAdd` (bit-exact): y = act(y + bias[c]) in place. y: (N, C, S).
    func biasAdd(y: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, batch: Int, channels: Int, spatial: Int, activation: Activation) {
        let task = BiasAddTask(y: y, bias: bias, c: channels, s: spatial, relu: activation == .relu)
        let planes = batch * channels
        if split(planes * spatial, Self.parallelElements) {
            parallelChunks(planes, grain: 1, minimum: max(1, (1 << 15) / max(1, spatial)), task)
        } else {
            task.run(0..<planes)
        }
    }

    /// Fast path of `Reference.biasGrad` (rtol ~1e-6: Float plane sums added in Double in image order).
    /// dy: (N, C, S), dBias: (C).
    func biasGrad(dy: UnsafePointer<Float>, dBias: UnsafeMutablePointer<Float>, batch: Int, channels: Int, spatial: Int) {
        if spatial == 1 {
            // (N, C) rows: accumulate along rows in Double (image order per channel, as below).
            let acc = workspace.buffer(.small, channels, as: Double.self)
            for c in 0..<channels { acc[c] = 0 }
            for n in 0..<batch {
                let row = dy + n * channels
                for c in 0..<channels { acc[c] += Double(row[c]) }
            }
            for c in 0..<channels { dBias[c] = Float(acc[c]) }
            return
        }
        let task = BiasGradTask(dy: dy, dBias: dBias, n: batch, c: channels, s: spatial)
        if split(batch * channels * spatial, Self.parallelElements) {
            parallelChunks(channels, grain: 1, minimum: 1, task)
        } else {
            task.run(0..<channels)
        }
    }

    // MARK: Reductions

    static let reductionChunk = 8192

    /// Fast path of `Reference.sum` / `Reference.sumOfSquares` (accumulated in Double like the
    /// reference, in another order: equal after rounding to Float but for rare last-bit ties).
    func sum(_ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>, accumulate: Bool, squares: Bool) {
        let chunks = (count + Self.reductionChunk - 1) / Self.reductionChunk
        let partial = workspace.buffer(.small, max(1, chunks), as: Double.self)
        let task = ChunkSumTask(x: x, count: count, partial: partial, squares: squares)
        if chunks > 1 && split(count, Self.parallelElements) { pool.parallelFor(chunks, task) } else { for i in 0..<chunks { task.run(i) } }
        var acc = accumulate ? Double(out[0]) : 0
        for i in 0..<chunks { acc += partial[i] }
        out[0] = Float(acc)
    }
}

// MARK: - Tasks

struct UnaryTask: ParallelRangeTask {
    enum Op { case relu, scale, axpy, fill }
    let x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>
    let op: Op, alpha: Float
    func run(_ range: Range<Int>) {
        let xr = UnsafeRawPointer(x), yr = UnsafeMutableRawPointer(y)
        let av = SIMD16<Float>(repeating: alpha)
        var i = range.lowerBound
        let end = range.upperBound
        switch op {
        case .relu:
            while i &+ 16 <= end {
                yr.storeBytes(of: reluVector(xr.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self)), toByteOffset: i &* 4, as: SIMD16<Float>.self)
                i &+= 16
            }
            while i < end { y[i] = reluValue(x[i]); i &+= 1 }
        case .scale:
            while i &+ 16 <= end {
                yr.storeBytes(of: av * xr.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self), toByteOffset: i &* 4, as: SIMD16<Float>.self)
                i &+= 16
            }
            while i < end { y[i] = alpha * x[i]; i &+= 1 }
        case .axpy:
            while i &+ 16 <= end {
                let v = yr.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self) + av * xr.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self)
                yr.storeBytes(of: v, toByteOffset: i &* 4, as: SIMD16<Float>.self)
                i &+= 16
            }
            while i < end { y[i] += alpha * x[i]; i &+= 1 }
        case .fill:
            while i &+ 16 <= end { yr.storeBytes(of: av, toByteOffset: i &* 4, as: SIMD16<Float>.self); i &+= 16 }
            while i < end { y[i] = alpha; i &+= 1 }
        }
    }
}

struct BinaryTask: ParallelRangeTask {
    enum Op { case add, mul, reluBackward }
    let a: UnsafePointer<Float>, b: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>
    let op: Op
    func run(_ range: Range<Int>) {
        let ar = UnsafeRawPointer(a), br = UnsafeRawPointer(b), yr = UnsafeMutableRawPointer(y)
        var i = range.lowerBound
        let end = range.upperBound
        switch op {
        case .add:
            while i &+ 16 <= end {
                let v = ar.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self) + br.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self)
                yr.storeBytes(of: v, toByteOffset: i &* 4, as: SIMD16<Float>.self)
                i &+= 16
            }
            while i < end { y[i] = a[i] + b[i]; i &+= 1 }
        case .mul:
            while i &+ 16 <= end {
                let v = ar.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self) * br.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self)
                yr.storeBytes(of: v, toByteOffset: i &* 4, as: SIMD16<Float>.self)
                i &+= 16
            }
            while i < end { y[i] = a[i] * b[i]; i &+= 1 }
        case .reluBackward:
            // a = y (the ReLU's output), b = dy.
            while i &+ 16 <= end {
                let yv = ar.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self)
                let dv = br.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self)
                yr.storeBytes(of: dv.replacing(with: 0, where: .!(yv .> 0)), toByteOffset: i &* 4, as: SIMD16<Float>.self)
                i &+= 16
            }
            while i < end { y[i] = a[i] > 0 ? b[i] : 0; i &+= 1 }
        }
    }
}

/// CounterRNG.hash32 on 16 lanes.
@inline(__always)
func hash32(_ v: SIMD16<UInt32>) -> SIMD16<UInt32> {
    var x = v
    x ^= x &>> 16
    x = x &* 0x7FEB_352D
    x ^= x &>> 15
    x = x &* 0x846C_A68B
    x ^= x &>> 16
    return x
}

struct DropoutTask: ParallelRangeTask {
    let x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<Float>
    let key: UInt32, p: Float, keepScale: Float
    func run(_ range: Range<Int>) {
        let xr = UnsafeRawPointer(x), yr = UnsafeMutableRawPointer(y), mr = UnsafeMutableRawPointer(mask)
        let lanes = SIMD16<UInt32>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
        let keyV = SIMD16<UInt32>(repeating: key)
        let scale = SIMD16<Float>(repeating: keepScale)
        // u >= p  <=>  (h >> 8) >= threshold, with u = (h >> 8) * 2^-24 exact: compare the integers
        // (threshold = ceil(p * 2^24), exact in Double), no conversion to Float needed.
        let threshold = SIMD16<UInt32>(repeating: UInt32((Double(p) * 16_777_216).rounded(.up)))
        var i = range.lowerBound
        let end = range.upperBound
        while i &+ 16 <= end {
            let index = lanes &+ UInt32(truncatingIfNeeded: i)
            let h = hash32(hash32((index &* 0x9E37_79B1) ^ keyV) &+ keyV)
            let m = SIMD16<Float>(repeating: 0).replacing(with: scale, where: (h &>> 8) .>= threshold)
            mr.storeBytes(of: m, toByteOffset: i &* 4, as: SIMD16<Float>.self)
            yr.storeBytes(of: xr.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self) * m, toByteOffset: i &* 4, as: SIMD16<Float>.self)
            i &+= 16
        }
        while i < end {
            let u = CounterRNG.uniform(key: key, index: UInt32(truncatingIfNeeded: i))
            let m: Float = u >= p ? keepScale : 0
            mask[i] = m
            y[i] = x[i] * m
            i &+= 1
        }
    }
}

struct BiasAddTask: ParallelRangeTask {
    let y: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>
    let c: Int, s: Int, relu: Bool
    func run(_ range: Range<Int>) {
        for plane in range {
            let p = y + plane * s
            let b = bias[plane % c]
            let bv = SIMD16<Float>(repeating: b)
            let r = UnsafeMutableRawPointer(p)
            var i = 0
            while i &+ 16 <= s {
                var v = r.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self) + bv
                if relu { v = reluVector(v) }
                r.storeBytes(of: v, toByteOffset: i &* 4, as: SIMD16<Float>.self)
                i &+= 16
            }
            while i < s {
                let v = p[i] + b
                p[i] = relu ? reluValue(v) : v
                i &+= 1
            }
        }
    }
}

struct BiasGradTask: ParallelRangeTask {
    let dy: UnsafePointer<Float>, dBias: UnsafeMutablePointer<Float>
    let n: Int, c: Int, s: Int
    func run(_ range: Range<Int>) {
        for ch in range {
            var acc = 0.0
            for img in 0..<n { acc += Double(planeSum(dy + (img * c + ch) * s, s)) }
            dBias[ch] = Float(acc)
        }
    }
}

struct ChunkSumTask: ParallelTask {
    let x: UnsafePointer<Float>, count: Int
    let partial: UnsafeMutablePointer<Double>
    let squares: Bool
    /// Chunk i summed in Double on 8 lanes (as the reference, which accumulates in Double: a Float
    /// running sum would lose 1 in 1e8 + 1 - 1e8).
    func run(_ i: Int) {
        let lo = i * FastCPU.reductionChunk, hi = min(count, lo + FastCPU.reductionChunk)
        let r = UnsafeRawPointer(x)
        var a0 = SIMD8<Double>(), a1 = SIMD8<Double>()
        var j = lo
        if squares {
            while j &+ 16 <= hi {
                let v0 = SIMD8<Double>(r.loadUnaligned(fromByteOffset: j &* 4, as: SIMD8<Float>.self))
                let v1 = SIMD8<Double>(r.loadUnaligned(fromByteOffset: j &* 4 &+ 32, as: SIMD8<Float>.self))
                a0 += v0 * v0; a1 += v1 * v1
                j &+= 16
            }
        } else {
            while j &+ 16 <= hi {
                a0 += SIMD8<Double>(r.loadUnaligned(fromByteOffset: j &* 4, as: SIMD8<Float>.self))
                a1 += SIMD8<Double>(r.loadUnaligned(fromByteOffset: j &* 4 &+ 32, as: SIMD8<Float>.self))
                j &+= 16
            }
        }
        var acc = (a0 + a1).sum()
        while j < hi { let v = Double(x[j]); acc += squares ? v * v : v; j &+= 1 }
        partial[i] = acc
    }
}

/// Chunk c of `chunks` grain-aligned ranges covering 0..<count.
struct ChunkTask<T: ParallelRangeTask>: ParallelTask {
    let task: T, count: Int, chunks: Int, grain: Int
    func run(_ c: Int) {
        let units = (count + grain - 1) / grain
        let lo = min(count, c * units / chunks * grain), hi = min(count, (c + 1) * units / chunks * grain)
        if lo < hi { task.run(lo..<hi) }
    }
}
