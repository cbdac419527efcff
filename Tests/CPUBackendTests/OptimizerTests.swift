import CNNCore
import CPUBackend
import Testing

/// Two optimizer steps (so momentum and moments matter), compared with closed forms derived by
/// hand and evaluated in Double here — both through the backend (Float) and through the generic
/// reference in Double.
@Suite struct OptimizerTests {
    static let count = 7
    static let p0 = RefCheck.random(count, seed: 101)
    /// Step-1 gradient, with one exact zero; step-2 gradient.
    static let g1: [Double] = { var g = RefCheck.random(count, seed: 102); g[3] = 0; return g }()
    static let g2 = RefCheck.random(count, seed: 103)

    // MARK: SGD

    struct SGDCase: CustomTestStringConvertible, Sendable {
        var name: String
        var hyper: SGDHyper
        /// (p0, g1, g2) -> (p1, p2) by the closed form.
        var closedForm: @Sendable (Double, Double, Double) -> (Double, Double)
        var testDescription: String { name }
    }

    static let sgdCases: [SGDCase] = {
        let lrF: Float = 0.1, momF: Float = 0.9, wdF: Float = 0.01, dampF: Float = 0.5
        let (lr, mom, wd, damp) = (Double(lrF), Double(momF), Double(wdF), Double(dampF))
        return [
            SGDCase(name: "plain", hyper: SGDHyper(learningRate: lrF)) { p0, g1, g2 in
                let p1 = p0 - lr * g1
                return (p1, p1 - lr * g2)
            },
            SGDCase(name: "weight decay", hyper: SGDHyper(learningRate: lrF, weightDecay: wdF)) { p0, g1, g2 in
                let p1 = (1 - lr * wd) * p0 - lr * g1
                return (p1, (1 - lr * wd) * p1 - lr * g2)
            },
            // buf1 = g1, buf2 = mom g1 + g2
            SGDCase(name: "momentum", hyper: SGDHyper(learningRate: lrF, momentum: momF)) { p0, g1, g2 in
                let p1 = p0 - lr * g1
                return (p1, p1 - lr * (mom * g1 + g2))
            },
            // step uses g + mom * buf: (1 + mom) g1, then g2 + mom (mom g1 + g2)
            SGDCase(name: "nesterov", hyper: SGDHyper(learningRate: lrF, momentum: momF, nesterov: true)) { p0, g1, g2 in
                let p1 = p0 - lr * (1 + mom) * g1
                return (p1, p1 - lr * (g2 + mom * (mom * g1 + g2)))
            },
            // d_t = g_t + wd p_{t-1}; buf1 = (1 - damp) d1; buf2 = mom buf1 + (1 - damp) d2
            SGDCase(name: "momentum, dampening, weight decay",
                    hyper: SGDHyper(learningRate: lrF, momentum: momF, dampening: dampF, weightDecay: wdF)) { p0, g1, g2 in
                let buf1 = (1 - damp) * (g1 + wd * p0)
                let p1 = p0 - lr * buf1
                return (p1, p1 - lr * (mom * buf1 + (1 - damp) * (g2 + wd * p1)))
            },
        ]
    }()

    @Test(arguments: sgdCases)
    func sgdTwoSteps(c: SGDCase) throws {
        let expected = (0..<Self.count).map { c.closedForm(Self.p0[$0], Self.g1[$0], Self.g2[$0]) }
        // Backend, Float: elementwise tolerance.
        let be = CPUBackend()
        let params = try be.refUpload(Self.p0.map(Float.init), [Self.count])
        let buffer = c.hyper.momentum != 0 ? try be.makeTensor([Self.count]) : nil
        try be.sgdStep(params: params, grads: try be.refUpload(Self.g1.map(Float.init), [Self.count]), momentumBuffer: buffer, hyper: c.hyper)
        RefCheck.close(try be.floats(params), expected.map { $0.0 }, atol: 1e-6, rtol: 1e-6, "SGD \(c.name) step 1 (Float)")
        try be.sgdStep(params: params, grads: try be.refUpload(Self.g2.map(Float.init), [Self.count]), momentumBuffer: buffer, hyper: c.hyper)
        RefCheck.close(try be.floats(params), expected.map { $0.1 }, atol: 1e-6, rtol: 1e-6, "SGD \(c.name) step 2 (Float)")

        // Reference, Double: only rounding differences.
        let (p, g1, g2) = (RefBuffer(Self.p0), RefBuffer(Self.g1), RefBuffer(Self.g2))
        let buf = RefBuffer(count: Self.count, value: 0.0)
        Ref.sgdStep(params: p.p, grads: g1.p, momentumBuffer: buf.p, count: Self.count, hyper: c.hyper)
        Ref.sgdStep(params: p.p, grads: g2.p, momentumBuffer: buf.p, count: Self.count, hyper: c.hyper)
        RefCheck.close(p.values, expected.map { $0.1 }, atol: 1e-15, rtol: 1e-13, "SGD \(c.name) step 2 (Double)")
    }

    @Test func sgdWithoutMomentumLeavesTheBufferAlone() throws {
        let be = CPUBackend()
        let params = try be.refUpload([1, 2], [2]), buffer = try be.refUpload([5, 6], [2])
        try be.sgdStep(params: params, grads: try be.refUpload([1, 1], [2]), momentumBuffer: buffer,
                       hyper: SGDHyper(learningRate: 0.5, dampening: 0.5))
        RefCheck.exact(try be.floats(params), [0.5, 1.5], "p - lr g (dampening has no effect without momentum)")
        RefCheck.exact(try be.floats(buffer), [5, 6], "buffer untouched")
    }

    // MARK: Adam

    struct AdamCase: CustomTestStringConvertible, Sendable {
        var name: String
        var hyper: AdamHyper
        var testDescription: String { name }
    }

    static let adamCases: [AdamCase] = [
        AdamCase(name: "Adam", hyper: AdamHyper(learningRate: 0.01)),
        AdamCase(name: "Adam, large epsilon", hyper: AdamHyper(learningRate: 0.01, beta1: 0.8, beta2: 0.9, epsilon: 0.1)),
        AdamCase(name: "Adam + L2", hyper: AdamHyper(learningRate: 0.01, weightDecay: 0.1)),
        AdamCase(name: "AdamW", hyper: AdamHyper(learningRate: 0.01, epsilon: 0.05, weightDecay: 0.1, decoupled: true)),
    ]

    /// Closed form of two steps from m = v = 0. With bias correction the first step is
    /// lr * g1 / (|g1| + eps); the second uses mhat2 = (b1 g1 + g2) / (1 + b1) and
    /// vhat2 = (b2 g1^2 + g2^2) / (1 + b2). Adam adds wd * p to g; AdamW scales p by 1 - lr wd first.
    static func adamClosedForm(_ h: AdamHyper, p0: Double, g1 raw1: Double, g2 raw2: Double)
        -> (p1: Double, p2: Double, m2: Double, v2: Double) {
        let (lr, b1, b2, eps, wd) = (Double(h.learningRate), Double(h.beta1), Double(h.beta2), Double(h.epsilon), Double(h.weightDecay))
        let g1 = h.decoupled ? raw1 : raw1 + wd * p0
        let p1 = (h.decoupled ? (1 - lr * wd) * p0 : p0) - lr * g1 / (abs(g1) + eps)
        let g2 = h.decoupled ? raw2 : raw2 + wd * p1
        let mhat2 = (b1 * g1 + g2) / (1 + b1), vhat2 = (b2 * g1 * g1 + g2 * g2) / (1 + b2)
        let p2 = (h.decoupled ? (1 - lr * wd) * p1 : p1) - lr * mhat2 / (vhat2.squareRoot() + eps)
        return (p1, p2, (1 - b1) * (b1 * g1 + g2), (1 - b2) * (b2 * g1 * g1 + g2 * g2))
    }

    @Test(arguments: adamCases)
    func adamTwoSteps(c: AdamCase) throws {
        let e = (0..<Self.count).map { Self.adamClosedForm(c.hyper, p0: Self.p0[$0], g1: Self.g1[$0], g2: Self.g2[$0]) }
        let be = CPUBackend()
        let params = try be.refUpload(Self.p0.map(Float.init), [Self.count])
        let m = try be.makeTensor([Self.count]), v = try be.makeTensor([Self.count])
        try be.adamStep(params: params, grads: try be.refUpload(Self.g1.map(Float.init), [Self.count]), m: m, v: v, hyper: c.hyper, step: 1)
        RefCheck.close(try be.floats(params), e.map { $0.p1 }, atol: 1e-6, rtol: 1e-6, "\(c.name) step 1 (Float)")
        try be.adamStep(params: params, grads: try be.refUpload(Self.g2.map(Float.init), [Self.count]), m: m, v: v, hyper: c.hyper, step: 2)
        RefCheck.close(try be.floats(params), e.map { $0.p2 }, atol: 1e-6, rtol: 1e-6, "\(c.name) step 2 (Float)")
        RefCheck.close(try be.floats(m), e.map { $0.m2 }, atol: 1e-7, rtol: 1e-6, "\(c.name) m after 2 steps")
        RefCheck.close(try be.floats(v), e.map { $0.v2 }, atol: 1e-7, rtol: 1e-6, "\(c.name) v after 2 steps")

        let (p, g1, g2) = (RefBuffer(Self.p0), RefBuffer(Self.g1), RefBuffer(Self.g2))
        let (mb, vb) = (RefBuffer(count: Self.count, value: 0.0), RefBuffer(count: Self.count, value: 0.0))
        Ref.adamStep(params: p.p, grads: g1.p, m: mb.p, v: vb.p, count: Self.count, hyper: c.hyper, step: 1)
        Ref.adamStep(params: p.p, grads: g2.p, m: mb.p, v: vb.p, count: Self.count, hyper: c.hyper, step: 2)
        RefCheck.close(p.values, e.map { $0.p2 }, atol: 1e-15, rtol: 1e-13, "\(c.name) step 2 (Double)")
    }

    @Test func badArgumentsThrow() throws {
        let be = CPUBackend()
        let p = try be.makeTensor([4]), g = try be.makeTensor([4])
        RefCheck.throwsInvalid("sgdStep", "momentumBuffer") {
            try be.sgdStep(params: p, grads: g, momentumBuffer: nil, hyper: SGDHyper(learningRate: 0.1, momentum: 0.9))
        }
        RefCheck.throwsInvalid("sgdStep", "grads") {
            try be.sgdStep(params: p, grads: try be.makeTensor([5]), momentumBuffer: nil, hyper: SGDHyper(learningRate: 0.1))
        }
        RefCheck.throwsInvalid("sgdStep", "Nesterov") {
            try be.sgdStep(params: p, grads: g, momentumBuffer: try be.makeTensor([4]), hyper: SGDHyper(learningRate: 0.1, nesterov: true))
        }
        RefCheck.throwsInvalid("sgdStep", "grads") {   // grads aliasing params
            try be.sgdStep(params: p, grads: p, momentumBuffer: nil, hyper: SGDHyper(learningRate: 0.1))
        }
        RefCheck.throwsInvalid("adamStep", "step") {
            try be.adamStep(params: p, grads: g, m: try be.makeTensor([4]), v: try be.makeTensor([4]), hyper: AdamHyper(learningRate: 0.1), step: 0)
        }
        RefCheck.throwsInvalid("adamStep", "v") {
            try be.adamStep(params: p, grads: g, m: try be.makeTensor([4]), v: try be.makeTensor([4], dtype: .int32),
                            hyper: AdamHyper(learningRate: 0.1), step: 1)
        }
        RefCheck.throwsInvalid("adamStep", "beta") {
            try be.adamStep(params: p, grads: g, m: try be.makeTensor([4]), v: try be.makeTensor([4]),
                            hyper: AdamHyper(learningRate: 0.1, beta1: 1), step: 1)
        }
    }
}
