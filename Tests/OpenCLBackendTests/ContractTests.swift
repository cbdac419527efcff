import CNNCore
import CPUBackend
import OpenCLBackend
import Testing

// One argument contract (`Contract` in CNNCore) for every backend: the same bad call is rejected
// with the same message by the fast CPU backend, the CPU reference and OpenCL, before any output
// is touched. Each case below once passed on at least one backend (the OpenCL launchers checked
// only some aliasing and no hyperparameters before the contract moved into CNNCore).

/// A bad call: builds its tensors on the backend it is given, then makes the call.
struct BadCall: CustomStringConvertible, Sendable {
    let description: String
    /// A substring the error message must contain (names the op and what is wrong).
    let expected: String
    let call: @Sendable (any Backend) throws -> Void

    init(_ description: String, expect expected: String, _ call: @escaping @Sendable (any Backend) throws -> Void) {
        self.description = description; self.expected = expected; self.call = call
    }
}

private func t(_ be: any Backend, _ shape: Shape, _ dtype: DType = .float32) throws -> Tensor {
    try be.makeTensor(shape, dtype: dtype)
}

private let conv = Conv2DGeometry(batch: 2, inChannels: 3, height: 5, width: 5, outChannels: 4, kernel: 3, padding: 1)
private let pool = Pool2DGeometry(batch: 2, channels: 3, height: 4, width: 4, kernel: 2)

let badCalls: [BadCall] = [
    // Memory
    BadCall("write: wrong count", expect: "write: 3 host values") { be in
        try be.write([1, 2, 3] as [Float], to: t(be, [4]))
    },
    BadCall("read: int32 into float32 tensor", expect: "read: tensor is int32") { be in
        var out = [Float](repeating: 0, count: 4)
        try out.withUnsafeMutableBufferPointer { try be.read(t(be, [4], .int32), into: $0) }
    },
    BadCall("copy: overlapping views", expect: "copy: dst") { be in
        let a = try t(be, [8])
        try be.copy(a.view(elementOffset: 0, shape: [4]), to: a.view(elementOffset: 2, shape: [4]))
    },
    BadCall("copy: dtype mismatch", expect: "copy: dst is int32") { be in
        try be.copy(t(be, [4]), to: t(be, [4], .int32))
    },
    // GEMM
    BadCall("gemm: C overlaps A", expect: "gemm: C") { be in
        let a = try t(be, [4, 4])
        try be.gemm(transA: false, transB: false, m: 2, n: 2, k: 2, alpha: 1, a: a, lda: 4, b: t(be, [2, 2]), ldb: 2,
                    beta: 0, c: a.view(elementOffset: 8, shape: [2, 4]), ldc: 4)
    },
    BadCall("gemm: lda too small", expect: "gemm: leading dimensions") { be in
        try be.gemm(transA: false, transB: false, m: 2, n: 2, k: 3, alpha: 1, a: t(be, [2, 3]), lda: 2, b: t(be, [3, 2]), ldb: 2,
                    beta: 0, c: t(be, [2, 2]), ldc: 2)
    },
    BadCall("gemmStridedBatched: C matrices overlap", expect: "gemmStridedBatched: strideC = 2") { be in
        try be.gemmStridedBatched(transA: false, transB: false, m: 2, n: 2, k: 2, alpha: 1, a: t(be, [2, 2]), lda: 2, strideA: 0,
                                  b: t(be, [2, 2]), ldb: 2, strideB: 0, beta: 0, c: t(be, [8]), ldc: 2, strideC: 2, batch: 3)
    },
    BadCall("gemmStridedBatched: negative stride", expect: "gemmStridedBatched: negative batch stride") { be in
        try be.gemmStridedBatched(transA: false, transB: false, m: 2, n: 2, k: 2, alpha: 1, a: t(be, [2, 2]), lda: 2, strideA: -1,
                                  b: t(be, [2, 2]), ldb: 2, strideB: 0, beta: 0, c: t(be, [8]), ldc: 2, strideC: 4, batch: 2)
    },
    // Convolution
    BadCall("im2col: cols overlaps x", expect: "im2col: cols") { be in
        let buf = try t(be, [conv.inputShape.count + conv.colsShape.count])
        try be.im2col(x: buf.view(elementOffset: 0, shape: conv.inputShape),
                      cols: buf.view(elementOffset: 10, shape: conv.colsShape), geometry: conv)
    },
    BadCall("conv2DForward: y overlaps bias", expect: "conv2DForward: y") { be in
        let y = try t(be, conv.outputShape)
        try be.conv2DForward(x: t(be, conv.inputShape), weight: t(be, conv.weightShape),
                             bias: y.view(elementOffset: 0, shape: [4]), y: y, geometry: conv, activation: .identity)
    },
    BadCall("conv2DForward: wrong weight shape", expect: "conv2DForward: weight has shape") { be in
        try be.conv2DForward(x: t(be, conv.inputShape), weight: t(be, [4, 3, 2, 2]), bias: nil, y: t(be, conv.outputShape),
                             geometry: conv, activation: .relu)
    },
    BadCall("conv2DBackwardData: dx overlaps weight", expect: "conv2DBackwardData: dx") { be in
        let buf = try t(be, [conv.inputShape.count + conv.weightShape.count])
        try be.conv2DBackwardData(dy: t(be, conv.outputShape), weight: buf.view(elementOffset: 0, shape: conv.weightShape),
                                  dx: buf.view(elementOffset: 1, shape: conv.inputShape), geometry: conv)
    },
    BadCall("conv2DBackwardFilter: dWeight overlaps dy", expect: "conv2DBackwardFilter: dWeight") { be in
        let dy = try t(be, conv.outputShape)
        try be.conv2DBackwardFilter(x: t(be, conv.inputShape), dy: dy, dWeight: dy.view(elementOffset: 0, shape: conv.weightShape),
                                    dBias: nil, geometry: conv)
    },
    BadCall("conv2DBackwardFilter: dBias overlaps x", expect: "conv2DBackwardFilter: dBias") { be in
        let x = try t(be, conv.inputShape)
        try be.conv2DBackwardFilter(x: x, dy: t(be, conv.outputShape), dWeight: t(be, conv.weightShape),
                                    dBias: x.view(elementOffset: 0, shape: [4]), geometry: conv)
    },
    BadCall("conv2DBackwardFilter: int32 dWeight", expect: "conv2DBackwardFilter: dWeight is int32") { be in
        try be.conv2DBackwardFilter(x: t(be, conv.inputShape), dy: t(be, conv.outputShape), dWeight: t(be, conv.weightShape, .int32),
                                    dBias: nil, geometry: conv)
    },
    BadCall("biasAdd: y overlaps bias", expect: "biasAdd: y") { be in
        let y = try t(be, [2, 3, 4])
        try be.biasAdd(y: y, bias: y.view(elementOffset: 0, shape: [3]), activation: .identity)
    },
    BadCall("biasGrad: wrong dBias count", expect: "biasGrad: dBias has 4 elements") { be in
        try be.biasGrad(dy: t(be, [2, 3, 4]), dBias: t(be, [4]))
    },
    // Pooling
    BadCall("maxPool2DForward: y overlaps x", expect: "maxPool2DForward: y") { be in
        let x = try t(be, pool.inputShape)
        try be.maxPool2DForward(x: x, y: x.view(elementOffset: 0, shape: pool.outputShape),
                                argmax: t(be, pool.outputShape, .int32), geometry: pool)
    },
    BadCall("maxPool2DBackward: float argmax", expect: "maxPool2DBackward: argmax is float32") { be in
        try be.maxPool2DBackward(dy: t(be, pool.outputShape), argmax: t(be, pool.outputShape), dx: t(be, pool.inputShape),
                                 geometry: pool)
    },
    BadCall("avgPool2DBackward: dx overlaps dy", expect: "avgPool2DBackward: dx") { be in
        let dx = try t(be, pool.inputShape)
        try be.avgPool2DBackward(dy: dx.view(elementOffset: 0, shape: pool.outputShape), dx: dx, geometry: pool)
    },
    BadCall("avgPool2DForward: padding over half the window", expect: "pooling padding") { be in
        let g = Pool2DGeometry(batch: 1, channels: 1, height: 4, width: 4, kernel: 2, stride: 2, padding: 2)
        try be.avgPool2DForward(x: t(be, g.inputShape), y: t(be, [1, 1, 4, 4]), geometry: g)
    },
    // BatchNorm
    BadCall("batchNormForwardTraining: momentum > 1", expect: "batchNormForwardTraining: momentum") { be in
        try be.batchNormForwardTraining(x: t(be, [2, 3, 4]), gamma: t(be, [3]), beta: t(be, [3]), y: t(be, [2, 3, 4]),
                                        runningMean: t(be, [3]), runningVar: t(be, [3]), saveMean: t(be, [3]),
                                        saveInvStd: t(be, [3]), momentum: 1.5, epsilon: 1e-5, activation: .identity)
    },
    BadCall("batchNormForwardTraining: one value per channel", expect: "training-mode BatchNorm needs at least 2") { be in
        try be.batchNormForwardTraining(x: t(be, [1, 3]), gamma: t(be, [3]), beta: t(be, [3]), y: t(be, [1, 3]),
                                        runningMean: t(be, [3]), runningVar: t(be, [3]), saveMean: t(be, [3]),
                                        saveInvStd: t(be, [3]), momentum: 0.1, epsilon: 1e-5, activation: .relu)
    },
    BadCall("batchNormForwardTraining: saveMean overlaps runningMean", expect: "batchNormForwardTraining: runningMean") { be in
        let stats = try t(be, [3])
        try be.batchNormForwardTraining(x: t(be, [2, 3, 4]), gamma: t(be, [3]), beta: t(be, [3]), y: t(be, [2, 3, 4]),
                                        runningMean: stats, runningVar: t(be, [3]), saveMean: stats,
                                        saveInvStd: t(be, [3]), momentum: 0.1, epsilon: 1e-5, activation: .identity)
    },
    BadCall("batchNormForwardInference: negative epsilon", expect: "batchNormForwardInference: epsilon") { be in
        try be.batchNormForwardInference(x: t(be, [2, 3, 4]), gamma: t(be, [3]), beta: t(be, [3]), runningMean: t(be, [3]),
                                         runningVar: t(be, [3]), y: t(be, [2, 3, 4]), epsilon: -1, activation: .identity)
    },
    BadCall("batchNormBackward: dx overlaps x", expect: "batchNormBackward: dx") { be in
        let x = try t(be, [2, 3, 4])
        try be.batchNormBackward(x: x, dy: t(be, [2, 3, 4]), gamma: t(be, [3]), saveMean: t(be, [3]), saveInvStd: t(be, [3]),
                                 dx: x, dGamma: t(be, [3]), dBeta: t(be, [3]))
    },
    // Elementwise
    BadCall("relu: partial overlap", expect: "relu: y partially overlaps x") { be in
        let a = try t(be, [8])
        try be.relu(x: a.view(elementOffset: 0, shape: [4]), y: a.view(elementOffset: 2, shape: [4]))
    },
    BadCall("reluBackward: dx is y", expect: "reluBackward: dx") { be in
        let y = try t(be, [4])
        try be.reluBackward(y: y, dy: t(be, [4]), dx: y)
    },
    BadCall("dropoutForward: p = 1", expect: "dropoutForward: probability") { be in
        try be.dropoutForward(x: t(be, [4]), y: t(be, [4]), mask: t(be, [4]), probability: 1, seed: 1)
    },
    BadCall("dropoutForward: mask is y", expect: "dropoutForward: mask") { be in
        let y = try t(be, [4])
        try be.dropoutForward(x: t(be, [4]), y: y, mask: y, probability: 0.5, seed: 1)
    },
    BadCall("add: shapes differ", expect: "add: b has shape") { be in
        try be.add(t(be, [4]), t(be, [5]), y: t(be, [4]))
    },
    BadCall("mul: y partially overlaps b", expect: "mul: y partially overlaps b") { be in
        let b = try t(be, [8])
        try be.mul(t(be, [4]), b.view(elementOffset: 0, shape: [4]), y: b.view(elementOffset: 1, shape: [4]))
    },
    BadCall("axpy: shapes differ", expect: "axpy: y has shape") { be in
        try be.axpy(alpha: 2, x: t(be, [4]), y: t(be, [5]))
    },
    BadCall("fill: int32 tensor", expect: "fill: t is int32") { be in
        try be.fill(t(be, [4], .int32), value: 1)
    },
    // Loss
    BadCall("softmax: y is x", expect: "softmax: y") { be in
        let x = try t(be, [2, 3])
        try be.softmax(x: x, y: x)
    },
    BadCall("softmaxCrossEntropy: label smoothing > 1", expect: "softmaxCrossEntropy: labelSmoothing") { be in
        try be.softmaxCrossEntropy(logits: t(be, [2, 3]), targets: .labels(t(be, [2], .int32)), labelSmoothing: 2,
                                   losses: t(be, [2]), dLogits: nil, gradScale: 1)
    },
    BadCall("softmaxCrossEntropy: infinite gradScale", expect: "softmaxCrossEntropy: gradScale") { be in
        try be.softmaxCrossEntropy(logits: t(be, [2, 3]), targets: .labels(t(be, [2], .int32)), labelSmoothing: 0,
                                   losses: t(be, [2]), dLogits: t(be, [2, 3]), gradScale: .infinity)
    },
    BadCall("softmaxCrossEntropy: dLogits is logits", expect: "softmaxCrossEntropy: dLogits") { be in
        let logits = try t(be, [2, 3])
        try be.softmaxCrossEntropy(logits: logits, targets: .soft(t(be, [2, 3])), labelSmoothing: 0,
                                   losses: t(be, [2]), dLogits: logits, gradScale: 1)
    },
    // Optimizers
    BadCall("sgdStep: negative learning rate", expect: "sgdStep: learningRate, momentum and weightDecay") { be in
        try be.sgdStep(params: t(be, [4]), grads: t(be, [4]), momentumBuffer: nil, hyper: SGDHyper(learningRate: -1))
    },
    BadCall("sgdStep: Nesterov without momentum", expect: "sgdStep: Nesterov") { be in
        try be.sgdStep(params: t(be, [4]), grads: t(be, [4]), momentumBuffer: t(be, [4]),
                       hyper: SGDHyper(learningRate: 0.1, nesterov: true))
    },
    BadCall("sgdStep: grads are params", expect: "sgdStep: params") { be in
        let p = try t(be, [4])
        try be.sgdStep(params: p, grads: p, momentumBuffer: nil, hyper: SGDHyper(learningRate: 0.1))
    },
    BadCall("adamStep: beta1 = 1", expect: "adamStep: beta1 and beta2") { be in
        try be.adamStep(params: t(be, [4]), grads: t(be, [4]), m: t(be, [4]), v: t(be, [4]),
                        hyper: AdamHyper(learningRate: 1e-3, beta1: 1), step: 1)
    },
    BadCall("adamStep: step 0", expect: "adamStep: step counts from 1") { be in
        try be.adamStep(params: t(be, [4]), grads: t(be, [4]), m: t(be, [4]), v: t(be, [4]),
                        hyper: AdamHyper(learningRate: 1e-3), step: 0)
    },
    BadCall("adamStep: m is v", expect: "adamStep: m") { be in
        let m = try t(be, [4])
        try be.adamStep(params: t(be, [4]), grads: t(be, [4]), m: m, v: m, hyper: AdamHyper(learningRate: 1e-3), step: 1)
    },
    // Reductions
    BadCall("sum: out overlaps x", expect: "sum: out") { be in
        let x = try t(be, [4])
        try be.sum(x, into: x.view(elementOffset: 0, shape: [1]), accumulate: false)
    },
    BadCall("argmax: float out", expect: "argmax: out is float32") { be in
        try be.argmax(t(be, [2, 3]), into: t(be, [2]))
    },
    BadCall("countCorrect: wrong label count", expect: "countCorrect: labels has 3 elements") { be in
        try be.countCorrect(logits: t(be, [2, 3]), labels: t(be, [3], .int32), into: t(be, [1]), accumulate: false)
    },
]

/// The message of the error `call` throws on `be`, or nil if it does not throw.
private func rejection(_ call: BadCall, on be: any Backend) -> String? {
    do {
        try call.call(be)
        return nil
    } catch let e as CNNError {
        return e.kind == .invalidArgument ? e.message : "not invalidArgument: \(e)"
    } catch {
        return "not a CNNError: \(error)"
    }
}

struct ContractTests {
    @Test func cpuBackendsRejectTheSame() {
        let fast = CPUBackend(), reference = CPUBackend(reference: true)
        for call in badCalls {
            let got = rejection(call, on: fast)
            let want = rejection(call, on: reference)
            #expect(got != nil, "\(call): accepted by the fast CPU backend")
            #expect(got?.contains(call.expected) == true, "\(call): '\(got ?? "accepted")' does not say '\(call.expected)'")
            #expect(want == got, "\(call): reference says '\(want ?? "accepted")', fast says '\(got ?? "accepted")'")
        }
    }

    @Test(.enabled(if: OCL.available, "no OpenCL device"))
    func openCLRejectsLikeTheReference() throws {
        let device = try OCL.backend(), reference = CPUBackend(reference: true)
        for call in badCalls {
            let got = rejection(call, on: device)
            let want = rejection(call, on: reference)
            #expect(got != nil, "\(call): accepted by OpenCL")
            #expect(got == want, "\(call): OpenCL says '\(got ?? "accepted")', the reference says '\(want ?? "accepted")'")
        }
        try device.synchronize()   // nothing bad was enqueued
    }

    /// A rejected call leaves its outputs as they were (the contract runs before any work).
    @Test func rejectedCallChangesNothing() throws {
        for be: any Backend in [CPUBackend(), CPUBackend(reference: true)] {
            let y = try be.upload([1, 2, 3, 4] as [Float], shape: [4])
            #expect(throws: CNNError.self) { try be.dropoutForward(x: y, y: y, mask: y, probability: 0.5, seed: 1) }
            #expect(try be.floats(y) == [1, 2, 3, 4])
        }
    }
}
