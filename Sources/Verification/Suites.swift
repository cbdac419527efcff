import CNNCore

/// The case sets: per family (small awkward shapes: odd sizes, N=1, sizes that are no multiple of
/// any tile), plus the layer shapes of the `cnn` and `optimized` models when a batch size is given.
///
/// Models (CIFAR-10, 3x32x32): `cnn` = conv(3->32, 3x3, pad 1)-ReLU-maxpool2 -> conv(32->64)-ReLU-
/// maxpool2 -> linear(4096->512)-ReLU -> linear(512->10); `optimized` adds BatchNorm after each
/// conv, Dropout(0.25) after the second conv block's ReLU and Dropout(0.5) after the first linear.
package enum VerifySuite {
    static func conv(_ n: Int, _ cin: Int, _ h: Int, _ w: Int, _ cout: Int, k: Int, s: Int = 1, p: Int = 0) -> Conv2DGeometry {
        Conv2DGeometry(batch: n, inChannels: cin, height: h, width: w, outChannels: cout, kernel: k, stride: s, padding: p)
    }

    /// The two convolutions of both models.
    package static func modelConvolutions(batch b: Int) -> [Conv2DGeometry] {
        [conv(b, 3, 32, 32, 32, k: 3, p: 1), conv(b, 32, 16, 16, 64, k: 3, p: 1)]
    }

    /// The descriptors of one family (small awkward shapes; the models' layer shapes at `modelBatch`).
    package static func gemmOps(modelBatch b: Int? = nil) -> [OpDescriptor] {
        var ops: [OpDescriptor] = [
            .gemm(m: 1, n: 1, k: 1, transA: false, transB: false),
            .gemm(m: 1, n: 7, k: 33, transA: false, transB: true),
        ]
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            ops.append(.gemm(m: 17, n: 33, k: 29, transA: ta, transB: tb, pad: 3))
        }
        ops += [
            .gemm(m: 65, n: 31, k: 130, transA: false, transB: true, alpha: 0.5, beta: -1.5),
            .gemmStridedBatched(m: 7, n: 13, k: 5, batch: 3, transA: false, transB: false, sharedA: true),
            .gemmStridedBatched(m: 9, n: 11, k: 6, batch: 4, transA: true, transB: true, sharedA: false),
        ]
        if let b {   // the Linear layers: forward x W^T, weight gradient dy^T x, input gradient dy W
            for (inF, outF) in [(4096, 512), (512, 10)] {
                ops += [.gemm(m: b, n: outF, k: inF, transA: false, transB: true),
                        .gemm(m: outF, n: inF, k: b, transA: true, transB: false),
                        .gemm(m: b, n: inF, k: outF, transA: false, transB: false)]
            }
        }
        return ops
    }

    package static func convolutionOps(modelBatch b: Int? = nil) -> [OpDescriptor] {
        var ops = OpDescriptor.convolutionFamily(conv(1, 3, 7, 9, 5, k: 3, p: 1))
        ops += OpDescriptor.convolutionFamily(
            Conv2DGeometry(batch: 2, inChannels: 4, height: 11, width: 13, outChannels: 6, kernelH: 3, kernelW: 5,
                           strideH: 2, strideW: 1, padH: 1, padW: 2), activation: .relu)
        ops += OpDescriptor.convolutionFamily(conv(3, 5, 8, 7, 7, k: 1))            // pointwise: no im2col
        ops += OpDescriptor.convolutionFamily(conv(2, 3, 10, 9, 4, k: 4, s: 3, p: 2))  // gaps between windows
        ops += [.conv2DForward(conv(2, 3, 6, 6, 5, k: 3), bias: false, activation: .relu),
                .conv2DBackwardFilter(conv(2, 3, 6, 6, 5, k: 3), bias: false),
                .biasAdd([3, 5, 4, 3]), .biasAdd([7, 13], activation: .relu), .biasAdd([1, 3, 5, 5], activation: .relu),
                .biasGrad([3, 5, 4, 3]), .biasGrad([7, 13]), .biasGrad([1, 1, 9, 9]),
                .biasGrad([4, 3, 40, 41])]   // long channels: several chunks per channel (partial + finalize)
        if let b {
            for g in modelConvolutions(batch: b) { ops += OpDescriptor.convolutionFamily(g, activation: .relu) }
            ops += [.biasAdd([b, 512], activation: .relu), .biasGrad([b, 512]), .biasAdd([b, 10]), .biasGrad([b, 10])]
        }
        return ops
    }

    package static func poolingOps(modelBatch b: Int? = nil) -> [OpDescriptor] {
        func maxPool(_ g: Pool2DGeometry, ties: Bool = false) -> [OpDescriptor] {
            [.maxPool2DForward(g, ties: ties), .maxPool2DBackward(g, ties: ties)]
        }
        func avgPool(_ g: Pool2DGeometry) -> [OpDescriptor] { [.avgPool2DForward(g), .avgPool2DBackward(g)] }
        var ops = maxPool(Pool2DGeometry(batch: 1, channels: 3, height: 7, width: 9, kernel: 2))
        ops += maxPool(Pool2DGeometry(batch: 2, channels: 3, height: 9, width: 11, kernel: 3, stride: 2, padding: 1))
        ops += maxPool(Pool2DGeometry(batch: 2, channels: 2, height: 8, width: 8, kernel: 2), ties: true)
        ops += maxPool(Pool2DGeometry(batch: 2, channels: 2, height: 7, width: 7, kernel: 3, stride: 1, padding: 1), ties: true)
        ops += avgPool(Pool2DGeometry(batch: 1, channels: 3, height: 7, width: 9, kernel: 2))
        ops += avgPool(Pool2DGeometry(batch: 2, channels: 3, height: 9, width: 11, kernel: 3, stride: 2, padding: 1))
        ops += avgPool(.global(batch: 2, channels: 5, height: 5, width: 7))
        if let b {
            ops += maxPool(Pool2DGeometry(batch: b, channels: 32, height: 32, width: 32, kernel: 2))
            ops += maxPool(Pool2DGeometry(batch: b, channels: 64, height: 16, width: 16, kernel: 2))
        }
        return ops
    }

    package static func batchNormOps(modelBatch b: Int? = nil) -> [OpDescriptor] {
        /// Training forward, inference forward and backward over one shape.
        func all(_ s: Shape, activation: Activation = .identity, offset: Float = 0) -> [OpDescriptor] {
            [.batchNormForwardTraining(s, activation: activation, offset: offset),
             .batchNormForwardInference(s, activation: activation, offset: offset),
             .batchNormBackward(s, activation: activation, offset: offset)]
        }
        var ops = all([1, 3, 5, 7])
        ops += all([3, 5, 4, 4], activation: .relu, offset: 3)
        ops += all([17, 9])                      // BatchNorm1d: spatial 1
        ops += all([2, 3, 33, 31], offset: 100)  // long channels, large mean
        if let b {
            ops += all([b, 32, 32, 32], activation: .relu)
            ops += all([b, 64, 16, 16], activation: .relu)
        }
        return ops
    }

    package static func elementwiseOps(modelBatch b: Int? = nil) -> [OpDescriptor] {
        var ops = OpDescriptor.elementwise(count: 1) + OpDescriptor.elementwise(count: 4099)
        ops += [.dropoutForward(count: 1, probability: 0.5), .dropoutForward(count: 4099, probability: 0.25),
                .dropoutForward(count: 1000, probability: 0)]
        if let b {
            ops += [.dropoutForward(count: b * 64 * 16 * 16, probability: 0.25), .dropoutForward(count: b * 512, probability: 0.5)]
        }
        return ops
    }

    package static func lossOps(modelBatch b: Int? = nil) -> [OpDescriptor] {
        var ops: [OpDescriptor] = [
            .softmax(rows: 1, classes: 10), .softmax(rows: 5, classes: 17),
            .softmaxCrossEntropy(rows: 1, classes: 10, soft: false),
            .softmaxCrossEntropy(rows: 7, classes: 3, soft: false, smoothing: 0.1),
            .softmaxCrossEntropy(rows: 5, classes: 10, soft: true),
            .softmaxCrossEntropy(rows: 5, classes: 10, soft: true, smoothing: 0.2, gradient: false),
        ]
        if let b { ops += [.softmaxCrossEntropy(rows: b, classes: 10, soft: false), .softmax(rows: b, classes: 10)] }
        return ops
    }

    package static func optimizerOps(modelBatch b: Int? = nil) -> [OpDescriptor] {
        var ops: [OpDescriptor] = [
            .sgdStep(count: 1, hyper: SGDHyper(learningRate: 0.1)),
            .sgdStep(count: 1031, hyper: SGDHyper(learningRate: 0.05, momentum: 0.9, weightDecay: 5e-4)),
            .sgdStep(count: 1031, hyper: SGDHyper(learningRate: 0.05, momentum: 0.9, nesterov: true)),
            .sgdStep(count: 77, hyper: SGDHyper(learningRate: 0.05, momentum: 0.5, dampening: 0.3)),
            .adamStep(count: 1031, hyper: AdamHyper(learningRate: 1e-3)),
            .adamStep(count: 1031, hyper: AdamHyper(learningRate: 1e-3, weightDecay: 1e-2)),
            .adamStep(count: 1031, hyper: AdamHyper(learningRate: 1e-3, weightDecay: 5e-2, decoupled: true)),
        ]
        if b != nil {   // all parameters of `cnn` in one flat buffer (896 + 18496 + 2097664 + 5130)
            ops.append(.adamStep(count: 2_122_186, hyper: AdamHyper(learningRate: 1e-3, weightDecay: 1e-4, decoupled: true), steps: 2))
        }
        return ops
    }

    package static func reductionOps(modelBatch b: Int? = nil) -> [OpDescriptor] {
        func argmaxAndCount(_ n: Int, _ k: Int) -> [OpDescriptor] { [.argmax(rows: n, classes: k), .countCorrect(rows: n, classes: k)] }
        var ops = OpDescriptor.sums(count: 1) + OpDescriptor.sums(count: 100_003)
        ops += argmaxAndCount(1, 10) + argmaxAndCount(300, 7)
        if let b { ops += argmaxAndCount(b, 10) }
        return ops
    }

    // The verification cases of each family.
    package static func gemm(modelBatch b: Int? = nil) -> [VerifyCase] { gemmOps(modelBatch: b).map(\.verifyCase) }
    package static func convolution(modelBatch b: Int? = nil) -> [VerifyCase] { convolutionOps(modelBatch: b).map(\.verifyCase) }
    package static func pooling(modelBatch b: Int? = nil) -> [VerifyCase] { poolingOps(modelBatch: b).map(\.verifyCase) }
    package static func batchNorm(modelBatch b: Int? = nil) -> [VerifyCase] { batchNormOps(modelBatch: b).map(\.verifyCase) }
    package static func elementwise(modelBatch b: Int? = nil) -> [VerifyCase] { elementwiseOps(modelBatch: b).map(\.verifyCase) }
    package static func loss(modelBatch b: Int? = nil) -> [VerifyCase] { lossOps(modelBatch: b).map(\.verifyCase) }
    package static func optimizers(modelBatch b: Int? = nil) -> [VerifyCase] { optimizerOps(modelBatch: b).map(\.verifyCase) }
    package static func reductions(modelBatch b: Int? = nil) -> [VerifyCase] { reductionOps(modelBatch: b).map(\.verifyCase) }

    /// Every primitive over the small shapes, plus the models' layer shapes at `batch`
    /// (what `cnn verify` runs).
    package static func standard(batch: Int = 64) -> [VerifyCase] {
        all(modelBatch: batch)
    }

    /// Every primitive over the small shapes only (seconds, for tests).
    package static var quick: [VerifyCase] { all(modelBatch: nil) }

    static func all(modelBatch b: Int?) -> [VerifyCase] { allOps(modelBatch: b).map(\.verifyCase) }

    /// Every descriptor, family by family.
    package static func allOps(modelBatch b: Int?) -> [OpDescriptor] {
        gemmOps(modelBatch: b) + convolutionOps(modelBatch: b) + poolingOps(modelBatch: b) + batchNormOps(modelBatch: b)
            + elementwiseOps(modelBatch: b) + lossOps(modelBatch: b) + optimizerOps(modelBatch: b) + reductionOps(modelBatch: b)
            + fusedOps(modelBatch: b)
            + lightweightOps(modelBatch: b)
    }
}
