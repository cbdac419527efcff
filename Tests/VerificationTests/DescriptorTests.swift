import CNNCore
import CPUBackend
import Testing
@testable import Verification

/// The descriptors that drive both `cnn verify` and cnn-bench's per-op cases.
@Suite struct DescriptorTests {
    static let g = Conv2DGeometry(batch: 3, inChannels: 4, height: 9, width: 7, outChannels: 5, kernel: 3, stride: 2, padding: 1)
    /// The descriptors with a sampled float64 check (cnn-bench's gate for shapes the reference cannot afford).
    static let sampled: [OpDescriptor] = [
        .gemm(m: 9, n: 11, k: 13, transA: true, transB: false),
        .gemm(m: 9, n: 11, k: 13, transA: false, transB: true, alpha: 0.5, pad: 2),
        .gemmStridedBatched(m: 5, n: 6, k: 7, batch: 3, transA: false, transB: true, sharedA: true, packed: true),
        .gemmStridedBatched(m: 5, n: 6, k: 7, batch: 3, transA: true, transB: false, sharedA: false, packed: true),
        .conv2DForward(g, bias: true, activation: .relu),
        .conv2DBackwardData(g),
        .conv2DBackwardFilter(g, bias: true),
    ]

    /// Each sampled check agrees with the reference on the reference, and catches a wrong output.
    @Test(arguments: sampled)
    func sampledChecksMatchTheReference(_ d: OpDescriptor) throws {
        for (backend, ok) in [(CPUBackend(reference: true) as any Backend, true),
                              (PerturbingBackend(CPUBackend(reference: true), op: d.op, factor: 1.01), false)] {
            let p = try d.prepare(on: backend)
            try p.run()
            let sampled = try #require(p.sampled)
            let outs = try sampled()
            #expect(!outs.isEmpty)
            if ok {
                #expect(outs.allSatisfy { compare($0.got, $0.reference, $0.tolerance).passed }, "\(d)")
            } else {   // the perturbing backend scales the first output only
                #expect(!compare(outs[0].got, outs[0].reference, outs[0].tolerance).passed, "\(d): the perturbed output passed")
            }
        }
    }

    /// A descriptor rebuilt at another batch keeps everything but the batch.
    @Test func rebatching() throws {
        let d = OpDescriptor.conv2DForward(Self.g, bias: false, activation: .relu)
        let small = try #require(d.atBatch(1))
        #expect(small.batch == 1 && small.op == d.op && small.shape == "N1" + d.shape.dropFirst(2))
        #expect(small.referenceMACs * 3 == d.referenceMACs)
        #expect(OpDescriptor.relu(count: 5).atBatch(1) == nil)
    }

    /// Running twice repeats the op (cnn-bench times `run` many times); optimizers cycle their gradients.
    @Test func runsRepeat() throws {
        let d = OpDescriptor.adamStep(count: 33, hyper: AdamHyper(learningRate: 1e-3), steps: 2)
        #expect(d.verifyRuns == 2)
        let p = try d.prepare(on: CPUBackend(reference: true))
        for _ in 0..<5 { try p.run() }
        #expect(try p.outputs().allSatisfy { $0.values.allSatisfy(\.isFinite) })
    }
}

extension OpDescriptor {
    static func relu(count n: Int) -> OpDescriptor { elementwise(count: n)[0] }
}
