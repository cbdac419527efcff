// Fast BatchNorm, pooling, elementwise, dropout, loss, optimizer, reduction and GEMM paths against
// the reference (Sources/CPUBackend/Fast/Ops). Tolerances as DESIGN.md: data movement (pooling
// routing, ReLU, dropout, bias add) and the optimizers / loss bit-exact (the same Float operations);
// BatchNorm statistics and other reductions rtol 1e-5 of the output's scale; GEMM rtol 1e-4.

@testable import CPUBackend
import CNNCore
import Testing

@Suite struct FastParityBatchNormTests {
    /// (N, C, S): S = 1 (BatchNorm1d), odd planes, S = 16 and 64 (several channels per task), 1024.
    static let shapes: [Shape] = [[2, 3, 1], [5, 4, 1], [1, 3, 5], [3, 5, 7], [4, 16, 4, 4], [2, 24, 8, 8], [3, 7, 32, 32], [2, 3, 33, 17]]

    struct Inputs {
        let x: [Float], gamma: [Float], beta: [Float], rm: [Float], rv: [Float], dy: [Float]
        init(_ s: Shape, seed: UInt64) {
            let c = s[1]
            // An offset mean and a small spread: the statistics must not cancel catastrophically.
            x = FastParity.random(s.count, seed: seed, in: 2.5...3.5)
            gamma = FastParity.random(c, seed: seed + 1, in: 0.5...1.5)
            beta = FastParity.random(c, seed: seed + 2)
            rm = FastParity.random(c, seed: seed + 3)
            rv = FastParity.random(c, seed: seed + 4, in: 0.5...2)
            dy = FastParity.random(s.count, seed: seed + 5)
        }
    }

    @Test(arguments: shapes.indices)
    func trainingForwardMatches(_ index: Int) throws {
        let s = Self.shapes[index]
        let c = s[1]
        let i = Inputs(s, seed: UInt64(700 + index))
        for act in [Activation.relu, .identity] {
            func run(_ be: CPUBackend) throws -> [[Float]] {
                let y = try be.makeTensor(s), rm = try be.upload(i.rm, shape: [c]), rv = try be.upload(i.rv, shape: [c])
                let sm = try be.makeTensor([c]), si = try be.makeTensor([c])
                try be.batchNormForwardTraining(x: try be.upload(i.x, shape: s), gamma: try be.upload(i.gamma, shape: [c]),
                                                beta: try be.upload(i.beta, shape: [c]), y: y, runningMean: rm, runningVar: rv,
                                                saveMean: sm, saveInvStd: si, momentum: 0.1, epsilon: 1e-5, activation: act)
                return [try be.floats(y), try be.floats(rm), try be.floats(rv), try be.floats(sm), try be.floats(si)]
            }
            let want = try run(CPUBackend(reference: true))
            var first: [[Float]]? = nil
            for (name, be) in FastParity.fastBackends() {
                let got = try run(be)
                for (k, what) in ["y", "runningMean", "runningVar", "saveMean", "saveInvStd"].enumerated() {
                    FastParity.closeToScale(got[k], want[k], rtol: 1e-5, "batchNormForwardTraining \(s) \(act) \(what) [\(name)]")
                    if let first { FastParity.same(got[k], first[k], "batchNormForwardTraining \(s) \(what) [\(name) vs default]") }
                }
                if first == nil { first = got }
            }
        }
    }

    @Test(arguments: shapes.indices)
    func inferenceForwardMatches(_ index: Int) throws {
        let s = Self.shapes[index]
        let c = s[1]
        let i = Inputs(s, seed: UInt64(800 + index))
        for act in [Activation.relu, .identity] {
            func run(_ be: CPUBackend) throws -> [Float] {
                let y = try be.makeTensor(s)
                try be.batchNormForwardInference(x: try be.upload(i.x, shape: s), gamma: try be.upload(i.gamma, shape: [c]),
                                                 beta: try be.upload(i.beta, shape: [c]), runningMean: try be.upload(i.rm, shape: [c]),
                                                 runningVar: try be.upload(i.rv, shape: [c]), y: y, epsilon: 1e-5, activation: act)
                return try be.floats(y)
            }
            let want = try run(CPUBackend(reference: true))
            for (name, be) in FastParity.fastBackends() {
                FastParity.closeToScale(try run(be), want, rtol: 1e-5, "batchNormForwardInference \(s) \(act) [\(name)]")
            }
        }
    }

    @Test(arguments: shapes.indices)
    func backwardMatches(_ index: Int) throws {
        let s = Self.shapes[index]
        let c = s[1]
        let i = Inputs(s, seed: UInt64(900 + index))
        // Statistics from the reference forward, so both backward passes see the same saved values.
        let ref = CPUBackend(reference: true)
        let sm = try ref.makeTensor([c]), si = try ref.makeTensor([c])
        try ref.batchNormForwardTraining(x: try ref.upload(i.x, shape: s), gamma: try ref.upload(i.gamma, shape: [c]),
                                         beta: try ref.upload(i.beta, shape: [c]), y: try ref.makeTensor(s),
                                         runningMean: try ref.makeTensor([c]), runningVar: try ref.makeTensor([c]),
                                         saveMean: sm, saveInvStd: si, momentum: 0.1, epsilon: 1e-5, activation: .identity)
        let (mean, invStd) = (try ref.floats(sm), try ref.floats(si))
        func run(_ be: CPUBackend) throws -> [[Float]] {
            let dx = try be.makeTensor(s), dg = try be.makeTensor([c]), db = try be.makeTensor([c])
            try be.batchNormBackward(x: try be.upload(i.x, shape: s), dy: try be.upload(i.dy, shape: s),
                                     gamma: try be.upload(i.gamma, shape: [c]), saveMean: try be.upload(mean, shape: [c]),
                                     saveInvStd: try be.upload(invStd, shape: [c]), dx: dx, dGamma: dg, dBeta: db)
            return [try be.floats(dx), try be.floats(dg), try be.floats(db)]
        }
        let want = try run(ref)
        // dx = gamma * invStd * (dy - mean(dy) - xhat * mean(dy * xhat)) cancels (with M = 2 values per
        // channel it is ~0 in exact arithmetic): its scale is that of gamma * invStd * dy, not its own.
        let kmax = zip(i.gamma, invStd).map { abs($0 * $1) }.max() ?? 1
        let dxScale = Double(kmax) * Double(i.dy.map { abs($0) }.max() ?? 1)
        var first: [[Float]]? = nil
        for (name, be) in FastParity.fastBackends() {
            let got = try run(be)
            RefCheck.close(got[0], want[0], atol: 1e-5 * dxScale, rtol: 1e-5, "batchNormBackward \(s) dx [\(name)]")
            for (k, what) in ["dx", "dGamma", "dBeta"].enumerated() {
                if k > 0 { FastParity.closeToScale(got[k], want[k], rtol: 1e-5, "batchNormBackward \(s) \(what) [\(name)]") }
                if let first { FastParity.same(got[k], first[k], "batchNormBackward \(s) \(what) [\(name) vs default]") }
            }
            if first == nil { first = got }
        }
    }
}

@Suite struct FastParityPoolingTests {
    static let shapes: [Pool2DGeometry] = [
        Pool2DGeometry(batch: 2, channels: 3, height: 32, width: 32, kernel: 2),
        Pool2DGeometry(batch: 1, channels: 5, height: 16, width: 34, kernel: 2),   // 17 outputs per row: SIMD + remainder
        Pool2DGeometry(batch: 3, channels: 2, height: 5, width: 7, kernel: 2),     // odd: last row / column unused
        Pool2DGeometry(batch: 2, channels: 4, height: 4, width: 4, kernel: 2),
        .global(batch: 3, channels: 5, height: 4, width: 4),
        .global(batch: 2, channels: 3, height: 7, width: 5),
        Pool2DGeometry(batch: 2, channels: 3, height: 9, width: 8, kernelH: 3, kernelW: 2, strideH: 3, strideW: 2, padH: 1, padW: 1),
        Pool2DGeometry(batch: 2, channels: 2, height: 7, width: 9, kernel: 3, stride: 2, padding: 1),   // overlapping windows
        Pool2DGeometry(batch: 1, channels: 2, height: 6, width: 6, kernel: 3, stride: 1, padding: 1),
    ]

    /// Values with ties, signed zeros and NaNs sprinkled in (the first maximum / first NaN must win).
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var v = FastParity.random(count, seed: seed).map { ($0 * 4).rounded() / 4 }   // many ties
        var rng = SeededRNG(seed: seed + 99)
        for _ in 0..<max(1, count / 50) { v[Int(rng.next() % UInt64(count))] = .nan }
        for _ in 0..<max(1, count / 50) { v[Int(rng.next() % UInt64(count))] = -0.0 }
        return v
    }

    @Test(arguments: shapes.indices)
    func maxPoolMatchesExactly(_ index: Int) throws {
        let g = Self.shapes[index]
        let x = Self.values(g.inputShape.count, seed: UInt64(1000 + index))
        let dyv = FastParity.random(g.outputShape.count, seed: UInt64(1100 + index))
        func run(_ be: CPUBackend) throws -> (y: [Float], a: [Int32], dx: [Float]) {
            let y = try be.makeTensor(g.outputShape), a = try be.makeTensor(g.outputShape, dtype: .int32)
            let dx = try be.makeTensor(g.inputShape)
            try be.fill(dx, value: .nan)
            try be.maxPool2DForward(x: try be.upload(x, shape: g.inputShape), y: y, argmax: a, geometry: g)
            try be.maxPool2DBackward(dy: try be.upload(dyv, shape: g.outputShape), argmax: a, dx: dx, geometry: g)
            return (try be.floats(y), try be.ints(a), try be.floats(dx))
        }
        let want = try run(CPUBackend(reference: true))
        for (name, be) in FastParity.fastBackends() {
            let got = try run(be)
            RefCheck.exact(got.y, want.y, "maxPool2DForward y \(g) [\(name)]")
            #expect(got.a == want.a, "maxPool2DForward argmax \(g) [\(name)]")
            if g.strideH >= g.kernelH && g.strideW >= g.kernelW {
                RefCheck.exact(got.dx, want.dx, "maxPool2DBackward \(g) [\(name)]")
            } else {
                FastParity.closeToScale(got.dx, want.dx, rtol: 1e-6, "maxPool2DBackward \(g) [\(name)]")
            }
        }
    }

    @Test func maxPoolBackwardRejectsForeignArgmaxBeforeWriting() throws {
        let g = Pool2DGeometry(batch: 2, channels: 2, height: 8, width: 8, kernel: 2)
        for (name, be) in FastParity.fastBackends() {
            let a = try be.makeTensor(g.outputShape, dtype: .int32)
            try be.maxPool2DForward(x: try be.upload(FastParity.random(g.inputShape.count, seed: 5), shape: g.inputShape),
                                    y: try be.makeTensor(g.outputShape), argmax: a, geometry: g)
            var ints = try be.ints(a)
            ints[ints.count - 3] = 0   // the top-left element is outside that window
            let bad = try be.upload(ints, shape: g.outputShape)
            let dx = try be.makeTensor(g.inputShape)
            try be.fill(dx, value: 7)
            RefCheck.throwsInvalid("maxPool2DBackward", "argmax[1, 1, 3, 1]") {
                try be.maxPool2DBackward(dy: try be.makeTensor(g.outputShape), argmax: bad, dx: dx, geometry: g)
            }
            #expect(try be.floats(dx).allSatisfy { $0 == 7 }, "dx was written before the argmax check failed [\(name)]")
        }
    }

    @Test(arguments: shapes.indices)
    func avgPoolMatches(_ index: Int) throws {
        let g = Self.shapes[index]
        let x = FastParity.random(g.inputShape.count, seed: UInt64(1200 + index))
        let dyv = FastParity.random(g.outputShape.count, seed: UInt64(1300 + index))
        func run(_ be: CPUBackend) throws -> (y: [Float], dx: [Float]) {
            let y = try be.makeTensor(g.outputShape), dx = try be.makeTensor(g.inputShape)
            try be.fill(dx, value: .nan)
            try be.avgPool2DForward(x: try be.upload(x, shape: g.inputShape), y: y, geometry: g)
            try be.avgPool2DBackward(dy: try be.upload(dyv, shape: g.outputShape), dx: dx, geometry: g)
            return (try be.floats(y), try be.floats(dx))
        }
        let want = try run(CPUBackend(reference: true))
        for (name, be) in FastParity.fastBackends() {
            let got = try run(be)
            FastParity.closeToScale(got.y, want.y, rtol: 1e-6 * Double(g.kernelH * g.kernelW), "avgPool2DForward \(g) [\(name)]")
            if g.strideH >= g.kernelH && g.strideW >= g.kernelW {
                RefCheck.exact(got.dx, want.dx, "avgPool2DBackward \(g) [\(name)]")
            } else {
                FastParity.closeToScale(got.dx, want.dx, rtol: 1e-6 * Double(g.kernelH * g.kernelW), "avgPool2DBackward \(g) [\(name)]")
            }
        }
    }
}

@Suite struct FastParityElementwiseTests {
    /// Lengths around the 16-lane vectors and the parallel threshold (2^17).
    static let counts = [1, 15, 16, 17, 1000, (1 << 17) + 5]

    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var v = FastParity.random(count, seed: seed, in: -2...2)
        if count > 3 { v[1] = .nan; v[2] = -0.0; v[3] = 0 }
        return v
    }

    @Test(arguments: counts)
    func unaryAndBinaryOpsAreExact(_ count: Int) throws {
        let a = Self.values(count, seed: 1), b = Self.values(count, seed: 2)
        func run(_ be: CPUBackend) throws -> [[Float]] {
            let ta = try be.upload(a, shape: [count]), tb = try be.upload(b, shape: [count])
            var out: [[Float]] = []
            let y = try be.makeTensor([count])
            try be.relu(x: ta, y: y); out.append(try be.floats(y))
            try be.reluBackward(y: ta, dy: tb, dx: y); out.append(try be.floats(y))
            try be.add(ta, tb, y: y); out.append(try be.floats(y))
            try be.mul(ta, tb, y: y); out.append(try be.floats(y))
            try be.scale(ta, by: -0.37, y: y); out.append(try be.floats(y))
            try be.copy(tb, to: y)
            try be.axpy(alpha: 1.7, x: ta, y: y); out.append(try be.floats(y))
            try be.fill(y, value: 3.25); out.append(try be.floats(y))
            // In place.
            let t = try be.upload(a, shape: [count])
            try be.relu(x: t, y: t); out.append(try be.floats(t))
            try be.add(t, tb, y: t); out.append(try be.floats(t))
            try be.mul(tb, t, y: t); out.append(try be.floats(t))
            try be.scale(t, by: 0.5, y: t); out.append(try be.floats(t))
            return out
        }
        let want = try run(CPUBackend(reference: true))
        for (name, be) in FastParity.fastBackends() {
            let got = try run(be)
            for k in want.indices { RefCheck.exact(got[k], want[k], "elementwise op \(k) count \(count) [\(name)]") }
        }
    }

    @Test(arguments: counts)
    func dropoutIsExact(_ count: Int) throws {
        let x = Self.values(count, seed: 3)
        for p: Float in [0, 0.25, 0.5] {
            func run(_ be: CPUBackend) throws -> [[Float]] {
                let y = try be.makeTensor([count]), m = try be.makeTensor([count])
                try be.dropoutForward(x: try be.upload(x, shape: [count]), y: y, mask: m, probability: p, seed: 12345)
                return [try be.floats(y), try be.floats(m)]
            }
            let want = try run(CPUBackend(reference: true))
            for (name, be) in FastParity.fastBackends() {
                let got = try run(be)
                RefCheck.exact(got[0], want[0], "dropout y p \(p) count \(count) [\(name)]")
                RefCheck.exact(got[1], want[1], "dropout mask p \(p) count \(count) [\(name)]")
            }
        }
    }

    @Test func biasAddIsExactAndBiasGradMatches() throws {
        for s in [Shape([3, 5]), [128, 512], [2, 7, 5, 3], [4, 32, 16, 16]] {
            let c = s[1]
            let y0 = Self.values(s.count, seed: 4), bias = FastParity.random(c, seed: 5)
            for act in [Activation.relu, .identity] {
                func run(_ be: CPUBackend) throws -> [[Float]] {
                    let y = try be.upload(y0, shape: s), b = try be.upload(bias, shape: [c]), db = try be.makeTensor([c])
                    try be.biasAdd(y: y, bias: b, activation: act)
                    try be.biasGrad(dy: try be.upload(y0.map { $0.isNaN ? 0.5 : $0 }, shape: s), dBias: db)
                    return [try be.floats(y), try be.floats(db)]
                }
                let want = try run(CPUBackend(reference: true))
                for (name, be) in FastParity.fastBackends() {
                    let got = try run(be)
                    RefCheck.exact(got[0], want[0], "biasAdd \(s) \(act) [\(name)]")
                    FastParity.closeToScale(got[1], want[1], rtol: 1e-5, "biasGrad \(s) [\(name)]")
                }
            }
        }
    }

    @Test func reductionsMatch() throws {
        for count in [1, 17, 8192, 8193, 300_001] {
            let x = FastParity.random(count, seed: UInt64(count), in: -1...3)
            func run(_ be: CPUBackend) throws -> [Float] {
                let t = try be.upload(x, shape: [count]), out = try be.upload([Float(0.5)], shape: [1])
                var r: [Float] = []
                try be.sum(t, into: out, accumulate: true); r.append(try be.floats(out)[0])
                try be.sum(t, into: out, accumulate: false); r.append(try be.floats(out)[0])
                try be.sumOfSquares(t, into: out, accumulate: true); r.append(try be.floats(out)[0])
                try be.sumOfSquares(t, into: out, accumulate: false); r.append(try be.floats(out)[0])
                return r
            }
            let want = try run(CPUBackend(reference: true))
            for (name, be) in FastParity.fastBackends() {
                RefCheck.close(try run(be), want, atol: 0, rtol: 1e-6, "sum / sumOfSquares count \(count) [\(name)]")
            }
        }
    }
}

@Suite struct FastParityLossAndOptimizerTests {
    @Test func softmaxCrossEntropyIsExact() throws {
        for (n, k) in [(1, 10), (128, 10), (7, 3), (700, 100)] {
            let logits = FastParity.random(n * k, seed: UInt64(n), in: -8...8)
            var rng = SeededRNG(seed: 3)
            let labels = (0..<n).map { _ in Int32(rng.next() % UInt64(k)) }
            let soft = FastParity.random(n * k, seed: 4, in: 0...1)
            for smoothing: Float in [0, 0.1] {
                for useSoft in [false, true] {
                    func run(_ be: CPUBackend) throws -> [[Float]] {
                        let l = try be.upload(logits, shape: [n, k]), losses = try be.makeTensor([n]), d = try be.makeTensor([n, k])
                        let targets: LossTargets = useSoft ? .soft(try be.upload(soft, shape: [n, k])) : .labels(try be.upload(labels, shape: [n]))
                        try be.softmaxCrossEntropy(logits: l, targets: targets, labelSmoothing: smoothing, losses: losses, dLogits: d,
                                                   gradScale: 1 / Float(n))
                        return [try be.floats(losses), try be.floats(d)]
                    }
                    let want = try run(CPUBackend(reference: true))
                    for (name, be) in FastParity.fastBackends() {
                        let got = try run(be)
                        RefCheck.exact(got[0], want[0], "losses (\(n), \(k)) s \(smoothing) soft \(useSoft) [\(name)]")
                        RefCheck.exact(got[1], want[1], "dLogits (\(n), \(k)) s \(smoothing) soft \(useSoft) [\(name)]")
                    }
                }
            }
        }
        for (_, be) in FastParity.fastBackends() {
            RefCheck.throwsInvalid("softmaxCrossEntropy", "label 10 of row 1") {
                try be.softmaxCrossEntropy(logits: try be.makeTensor([2, 10]), targets: .labels(try be.upload([Int32(0), 10], shape: [2])),
                                           labelSmoothing: 0, losses: try be.makeTensor([2]), dLogits: nil, gradScale: 1)
            }
        }
    }

    @Test(arguments: [37, (1 << 17) + 3])
    func optimizersAreExact(_ count: Int) throws {
        let p0 = FastParity.random(count, seed: 1), g = FastParity.random(count, seed: 2), s0 = FastParity.random(count, seed: 3, in: 0...1)
        let sgd = [SGDHyper(learningRate: 0.1), SGDHyper(learningRate: 0.05, momentum: 0.9, nesterov: true, weightDecay: 5e-4),
                   SGDHyper(learningRate: 0.05, momentum: 0.8, dampening: 0.1, weightDecay: 1e-3)]
        let adam = [AdamHyper(learningRate: 1e-3), AdamHyper(learningRate: 1e-3, weightDecay: 1e-4),
                    AdamHyper(learningRate: 2e-3, beta1: 0.8, beta2: 0.99, epsilon: 1e-6, weightDecay: 1e-2, decoupled: true)]
        func run(_ be: CPUBackend) throws -> [[Float]] {
            var out: [[Float]] = []
            for h in sgd {
                let p = try be.upload(p0, shape: [count]), buf = try be.upload(s0, shape: [count])
                for _ in 0..<2 { try be.sgdStep(params: p, grads: try be.upload(g, shape: [count]), momentumBuffer: h.momentum != 0 ? buf : nil, hyper: h) }
                out += [try be.floats(p), try be.floats(buf)]
            }
            for h in adam {
                let p = try be.upload(p0, shape: [count]), m = try be.upload(s0, shape: [count]), v = try be.upload(s0, shape: [count])
                for step in 1...3 { try be.adamStep(params: p, grads: try be.upload(g, shape: [count]), m: m, v: v, hyper: h, step: step) }
                out += [try be.floats(p), try be.floats(m), try be.floats(v)]
            }
            return out
        }
        let want = try run(CPUBackend(reference: true))
        for (name, be) in FastParity.fastBackends() {
            let got = try run(be)
            for k in want.indices { RefCheck.exact(got[k], want[k], "optimizer state \(k) count \(count) [\(name)]") }
        }
    }
}

@Suite struct FastParityGEMMTests {
    /// The backend's GEMM entry points (FastGEMM) on the models' linear-layer shapes and odd ones.
    @Test func gemmMatchesReference() throws {
        let cases: [(Bool, Bool, Int, Int, Int)] = [(false, true, 8, 512, 96), (true, false, 40, 96, 8), (false, false, 8, 96, 40),
                                                    (false, false, 13, 7, 5), (true, true, 17, 33, 65), (false, true, 1, 10, 512)]
        for (ta, tb, m, n, k) in cases {
            let a = FastParity.random(m * k, seed: 1), b = FastParity.random(k * n, seed: 2), c0 = FastParity.random(m * n, seed: 3)
            for (alpha, beta): (Float, Float) in [(1, 0), (0.5, 1.5)] {
                func run(_ be: CPUBackend) throws -> [Float] {
                    let c = try be.upload(c0, shape: [m, n])
                    try be.gemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: alpha, a: try be.upload(a, shape: [m * k]), lda: ta ? m : k,
                                b: try be.upload(b, shape: [k * n]), ldb: tb ? k : n, beta: beta, c: c, ldc: n)
                    return try be.floats(c)
                }
                let want = try run(CPUBackend(reference: true))
                for (name, be) in FastParity.fastBackends() {
                    FastParity.closeToScale(try run(be), want, rtol: 1e-4, "gemm \(ta) \(tb) \(m)x\(n)x\(k) [\(name)]")
                }
            }
        }
    }

    @Test func stridedBatchedMatchesReference() throws {
        let (m, n, k, batch) = (12, 40, 27, 5)
        let a = FastParity.random(m * k, seed: 1), b = FastParity.random(batch * k * n, seed: 2)
        func run(_ be: CPUBackend) throws -> [Float] {
            let c = try be.makeTensor([batch, m, n])
            try be.gemmStridedBatched(transA: false, transB: false, m: m, n: n, k: k, alpha: 1, a: try be.upload(a, shape: [m, k]), lda: k,
                                      strideA: 0, b: try be.upload(b, shape: [batch, k, n]), ldb: n, strideB: k * n,
                                      beta: 0, c: c, ldc: n, strideC: m * n, batch: batch)
            return try be.floats(c)
        }
        let want = try run(CPUBackend(reference: true))
        for (name, be) in FastParity.fastBackends() {
            FastParity.closeToScale(try run(be), want, rtol: 1e-4, "gemmStridedBatched [\(name)]")
        }
    }
}
