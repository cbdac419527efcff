import Foundation
import Testing
import SwiftCNN

/// A whole training step of `optimized` (forward with dropout, loss, backward, Adam) on OpenCL
/// against the CPU backend, from the same weights and batch — and the transfers a step makes.
@Suite(.enabled(if: OpenCLDiscovery.inventory().devices.contains { _ in true }, "needs an OpenCL device (PoCL in CI)"))
struct OpenCLTrainingStepTests {
    let n = 16

    func batch(seed: UInt64) -> (HostTensor, [Int32]) {
        var rng = SeededRNG(seed: seed)
        let x = HostTensor(shape: [n, 3, 32, 32], values: (0..<(n * 3072)).map { _ in rng.uniform(-1, 1) })
        return (x, (0..<n).map { _ in Int32(rng.nextInt(10)) })
    }

    func openCL() throws -> OpenCLBackend {
        try OpenCLBackend(device: OpenCLDiscovery.inventory().devices[0])
    }

    /// ‖a − b‖ / ‖b‖.
    func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        var num = 0.0, den = 0.0
        for (x, y) in zip(a, b) { num += Double(x - y) * Double(x - y); den += Double(y) * Double(y) }
        return (num / max(den, 1e-30)).squareRoot()
    }

    @Test func oneStepMatchesTheCPU() throws {
        let cpu = CPUBackend(), ocl = try openCL()
        var states: [(loss: Float, grads: [(String, [Float])], delta: [(String, [Float])])] = []
        for backend in [cpu, ocl] as [any Backend] {
            let model = try ModelZoo.make("optimized", backend: backend, seed: 5)
            let opt = try Adam(model: model, hyper: AdamHyper(learningRate: 1e-3, weightDecay: 1e-4))
            let (x, y) = batch(seed: 1)
            let logits = try model.forward(try backend.upload(x), training: true, seed: 77)
            let loss = try SoftmaxCrossEntropyLoss(backend: backend)
            let (losses, d) = try loss(logits, .labels(try backend.upload(y, shape: [n])))
            try model.backward(d!)
            let grads = try model.parameters.map { ($0.name, try backend.floats($0.parameter.grad)) }
            let before = try model.parameters.map { try backend.floats($0.parameter.value) }
            try opt.step()
            let delta = try zip(model.parameters, before).map { p, b in (p.name, zip(try backend.floats(p.parameter.value), b).map { $0 - $1 }) }
            let l = try backend.floats(losses).reduce(0, +) / Float(n)
            states.append((l, grads, delta))
        }
        let (c, o) = (states[0], states[1])
        #expect(abs(c.loss - o.loss) <= 1e-5 * abs(c.loss), "loss: CPU \(c.loss), OpenCL \(o.loss)")
        // The convolution biases feed BatchNorm, which removes any per-channel constant: their gradient
        // is zero in exact arithmetic and only rounding noise here, so it is checked to be tiny on both.
        let zeroInExactArithmetic: Set = ["conv1.0.bias", "conv2.0.bias"]
        let largest = c.grads.flatMap { $0.1 }.map { abs($0) }.max() ?? 0
        for ((name, gc), (_, go)) in zip(c.grads, o.grads) {
            if zeroInExactArithmetic.contains(name) {
                #expect((gc + go).allSatisfy { abs($0) <= 1e-5 * largest }, "gradient \(name) should vanish")
                continue
            }
            // Norm-wise over each gradient tensor: the step composes ~20 primitives, each within 1e-4.
            let e = relativeError(go, gc)
            #expect(e < 1e-4, "gradient \(name): relative error \(e)")
        }
        // Adam's first step is ≈ lr·sign(g): where |g| is ~1e-8 rounding can flip an element's step
        // (and the BN-fed biases are pure noise), so updates are compared norm-wise per tensor.
        for ((name, dc), (_, dO)) in zip(c.delta, o.delta) where !zeroInExactArithmetic.contains(name) {
            let e = relativeError(dO, dc)
            #expect(e < 1e-3, "update of \(name): relative error \(e)")
        }
    }

    @Test func twentyStepsLaterTheLossesStillAgree() throws {
        var losses: [[Double]] = []
        for backend in [CPUBackend(), try openCL()] as [any Backend] {
            let model = try ModelZoo.make("optimized", backend: backend, seed: 5)
            let runner = try StepRunner(model: model, optimizer: try Adam(model: model, hyper: AdamHyper(learningRate: 1e-3, weightDecay: 1e-4)))
            var curve: [Double] = []
            for step in 0..<21 {
                let (x, y) = batch(seed: UInt64(100 + step % 4))
                try runner.trainStep(images: x, labels: y, seed: UInt64(step))
                curve.append(try runner.takeTotals().loss)
            }
            losses.append(curve)
        }
        let (c, o) = (losses[0].last!, losses[1].last!)
        #expect(abs(c - o) <= 1e-3 * abs(c), "loss after 20 steps: CPU \(c), OpenCL \(o)")
        #expect(losses[0].last! < losses[0].first!, "the loss fell over 20 steps on 4 repeated batches")
    }

    @Test(arguments: ["cpu", "opencl"])
    func steadyStateStepMovesOnlyTheBatchInAndTwoScalarsOut(device: String) throws {
        let backend: any Backend = device == "cpu" ? CPUBackend() : try openCL()
        let model = try ModelZoo.make("optimized", backend: backend, seed: 5)
        let runner = try StepRunner(model: model, optimizer: try Adam(model: model, hyper: AdamHyper(learningRate: 1e-3)))
        let (x, y) = batch(seed: 3)
        try runner.trainStep(images: x, labels: y, seed: 0)   // warm-up: buffers are allocated here
        _ = try runner.takeTotals()
        let before = backend.transferCounters
        let steps = 5
        for s in 1...steps { try runner.trainStep(images: x, labels: y, seed: UInt64(s)) }
        let mid = backend.transferCounters
        #expect(mid.uploads - before.uploads == 2 * steps, "one upload of images and one of labels per step")
        #expect(mid.uploadBytes - before.uploadBytes == steps * (n * 3072 * 4 + n * 4))
        #expect(mid.downloads == before.downloads, "no reads inside training steps")
        let totals = try runner.takeTotals()
        let after = backend.transferCounters
        #expect(after.downloads - mid.downloads == 2 && after.downloadBytes - mid.downloadBytes == 8, "loss sum and correct count: two floats")
        #expect(totals.count == steps * n)
    }

    /// The fused training step of `optimized` (issue 10's goal: at most 30 launches), derived here
    /// from the code; the batch does not change the count (one convolution chunk, one bias-gradient chunk).
    @Test func optimizedStepLaunchesThirtyKernels() throws {
        let ocl = try openCL()
        let model = try ModelZoo.make("optimized", backend: ocl, seed: 5)
        let runner = try StepRunner(model: model, optimizer: try Adam(model: model, hyper: AdamHyper(learningRate: 1e-3)))
        let (x, y) = batch(seed: 2)
        try runner.trainStep(images: x, labels: y, seed: 0)   // warm-up
        try ocl.synchronize()
        let before = DeviceWorkCounts.snapshot(ocl)
        try runner.trainStep(images: x, labels: y, seed: 1)
        let c = DeviceWorkCounts.snapshot(ocl).perStep(since: before, steps: 1)
        // Forward 12: conv1 3 (im2col, GEMM, epilogue), BatchNorm-ReLU-MaxPool block 1, conv2 3,
        //   BatchNorm-ReLU-Dropout-MaxPool block 1, fc1 GEMM + bias-ReLU-Dropout 2, fc2 GEMM + bias 2.
        // Loss with its totals 1.
        // Backward 16: fc2 3 (dW GEMM, bias gradient, dx GEMM), fc1 3 (bias-ReLU-Dropout backward with
        //   the bias gradient, 2 GEMMs), block 1 (with conv2's bias gradient), conv2 5 (im2col, dY'
        //   reorder, dW GEMM, dx GEMM, col2im), block 1, conv1 3 (no dx). Adam 1.
        #expect(c.kernelLaunches == 30 && c.clblastCalls == 11 && c.blockingCalls == 2 && c.deviceToHostBytes == 0, "\(c.summary)")
    }

    /// Exact device work of a steady-state training step of a tiny network, counted by the backend
    /// and derived here from the code: conv(3->4, 3x3, pad 1, bias, ReLU fused)-maxpool-flatten-fc(64->10),
    /// softmax cross-entropy, Adam.
    @Test func steadyStateStepLaunchesExactlyWhatTheCodeSays() throws {
        let ocl = try openCL()
        let net = Sequential([Conv2d(3, 4, kernel: 3, padding: 1), ReLU(), MaxPool2d(2), Flatten(), Linear(4 * 4 * 4, 10)])
        let model = try Model(name: "tiny", network: net, inputShape: [3, 8, 8], backend: ocl, seed: 1)
        let runner = try StepRunner(model: model, optimizer: try Adam(model: model, hyper: AdamHyper(learningRate: 1e-3)))
        var rng = SeededRNG(seed: 9)
        let x = HostTensor(shape: [2, 3, 8, 8], values: (0..<(2 * 192)).map { _ in rng.uniform(-1, 1) })
        let y: [Int32] = [3, 7]
        try runner.trainStep(images: x, labels: y, seed: 0)   // warm-up: kernels built, buffers allocated
        try ocl.synchronize()
        let steps = 3
        var perStep: [DeviceWorkCounts] = []
        for s in 1...steps {
            let before = DeviceWorkCounts.snapshot(ocl)
            try runner.trainStep(images: x, labels: y, seed: UInt64(s))
            perStep.append(DeviceWorkCounts.snapshot(ocl).perStep(since: before, steps: 1))
        }
        // Forward 6: conv 3 (im2col, GEMM, bias+ReLU epilogue), max-pool 1, fc 2 (GEMM, bias).
        // Loss and metrics 1: softmax cross-entropy with the loss sum and correct count (softmaxCrossEntropyWithTotals).
        // Backward 9: fc 3 (dW GEMM, bias gradient 1 — one chunk per channel —, dx GEMM), max-pool 1,
        //   conv 5 (ReLU backward, bias gradient 1, im2col, dy reorder, dW GEMM; no dx for the first layer). Adam 1.
        // CLBlast: conv forward, fc forward, fc dW and dx, conv dW = 5. Blocking: the two uploads.
        let expected = DeviceWorkCounts(kernelLaunches: 17, clblastCalls: 5, blockingCalls: 2,
                                        hostToDeviceBytes: Double(2 * 192 * 4 + 2 * 4), deviceToHostBytes: 0)
        for (s, c) in perStep.enumerated() { #expect(c == expected, "step \(s + 1): \(c.summary)") }
    }
}
