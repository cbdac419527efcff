import CNNCore
import CPUBackend
import NN
import Testing
import Training

/// A training step's result depends only on the weights, the batch and the seed — not on what a
/// layer's reused buffers held before (e.g. activations of a larger evaluation batch). Two models
/// from the same seed, one of which first evaluates a larger batch of other images, must train to
/// bit-identical weights.
@Suite struct BufferHistoryTests {
    func images(_ n: Int, seed: UInt64) -> HostTensor {
        var rng = SeededRNG(seed: seed)
        return HostTensor(shape: [n, 3, 32, 32], values: (0..<(n * 3072)).map { _ in rng.uniform(-1, 1) })
    }

    @Test(arguments: ["optimized", "cnn", "resnet8"])
    func trainingDoesNotDependOnEarlierBufferContents(model name: String) throws {
        let be = CPUBackend()
        func make() throws -> (Model, StepRunner) {
            let m = try ModelZoo.make(name, backend: be, seed: 7)
            return (m, try StepRunner(model: m, optimizer: try Adam(model: m, hyper: AdamHyper(learningRate: 1e-3, weightDecay: 1e-4))))
        }
        let (a, ra) = try make()
        let (b, rb) = try make()
        // b's buffers first hold activations of 24 unrelated images, then of a short batch of 5.
        _ = try rb.evalStep(images: images(24, seed: 99), labels: [Int32](repeating: 3, count: 24))
        try rb.trainStep(images: images(5, seed: 98), labels: [Int32](repeating: 1, count: 5), seed: 5)
        try b.load(stateDict: try a.stateDict())
        let opt = try Adam(model: b, hyper: AdamHyper(learningRate: 1e-3, weightDecay: 1e-4))
        let rb2 = try StepRunner(model: b, optimizer: opt)
        for step in 0..<3 {
            let x = images(8, seed: UInt64(step)), y = (0..<8).map { Int32(($0 + step) % 10) }
            try ra.trainStep(images: x, labels: y, seed: UInt64(step))
            try rb2.trainStep(images: x, labels: y, seed: UInt64(step))
            _ = try ra.evalStep(images: images(3, seed: 50), labels: [0, 1, 2])
            _ = try rb2.evalStep(images: images(3, seed: 50), labels: [0, 1, 2])
        }
        let wa = try be.floats(a.flatParameters), wb = try be.floats(b.flatParameters)
        let firstDiff = zip(wa, wb).enumerated().first { $0.element.0.bitPattern != $0.element.1.bitPattern }
        #expect(firstDiff == nil, "parameter \(firstDiff?.offset ?? -1) differs: \(String(describing: firstDiff?.element))")
    }
}
