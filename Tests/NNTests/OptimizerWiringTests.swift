import Testing
import CNNCore
import CPUBackend
@testable import NN

/// The optimizers update every parameter of the flat buffer (the closed-form math of each step is
/// tested on the primitives in CPUBackendTests; here: the wiring through Model).
@Suite struct OptimizerWiringTests {
    let backend = CPUBackend()

    func modelWithGradients() throws -> (Model, [Float], [Float]) {
        let m = try ModelZoo.make("lite", backend: backend, seed: 2)
        var rng = SeededRNG(seed: 9)
        let g = (0..<m.parameterCount).map { _ in rng.uniform(-1, 1) }
        try backend.write(g, to: m.flatGradients)
        return (m, try backend.floats(m.flatParameters), g)
    }

    @Test func sgdStepUpdatesEveryParameter() throws {
        let (m, p0, g) = try modelWithGradients()
        let opt = try SGD(model: m, hyper: SGDHyper(learningRate: 0.1))
        try opt.step()
        let p1 = try backend.floats(m.flatParameters)
        for i in stride(from: 0, to: p0.count, by: 97) {
            #expect(abs(p1[i] - (p0[i] - 0.1 * g[i])) <= 1e-6 + 1e-6 * abs(p0[i]))
        }
        #expect(opt.stepCount == 1)
    }

    @Test func adamFirstStepMovesByLearningRate() throws {
        // With bias correction, Adam's first step is lr * g / (|g| + eps') ≈ lr * sign(g).
        let (m, p0, g) = try modelWithGradients()
        let opt = try Adam(model: m, hyper: AdamHyper(learningRate: 1e-3))
        try opt.step()
        let p1 = try backend.floats(m.flatParameters)
        for i in stride(from: 0, to: p0.count, by: 89) where abs(g[i]) > 1e-3 {
            #expect(abs((p0[i] - p1[i]) - 1e-3 * (g[i] > 0 ? 1 : -1)) < 1e-5)
        }
    }

    @Test func adamStateRoundTrips() throws {
        let (m, _, _) = try modelWithGradients()
        let opt = try Adam(model: m, hyper: AdamHyper(learningRate: 1e-3))
        try opt.step(); try opt.step()
        let s = try opt.state()
        let opt2 = try Adam(model: m, hyper: AdamHyper(learningRate: 1e-3))
        try opt2.loadState(tensors: s.tensors, step: s.step)
        let s2 = try opt2.state()
        #expect(s2.step == 2)
        #expect(s2.tensors.map(\.1) == s.tensors.map(\.1))
    }
}
