import Foundation

/// `SWIFTCNN_UNFUSED=1`: every fusion of the training step off — the fused BatchNorm and Linear
/// blocks and the loss with its totals (the layers then call the unfused primitives), and the
/// OpenCL launchers' one-launch reductions (a bias gradient or scalar sum of one chunk then takes
/// its partial and finalize passes). The step then issues exactly what it did before the fusion,
/// for before/after comparisons from one binary (cnn-bench's perStep and --roofline).
package enum Fusion {
    package static let enabled: Bool = ProcessInfo.processInfo.environment["SWIFTCNN_UNFUSED"] != "1"
}

/// What follows a training-mode BatchNorm in a fused BatchNorm block, in this order: an activation,
/// inverted dropout, max pooling. `Sequential` builds it from the layers after a BatchNorm
/// (e.g. `optimized`'s BatchNorm2d-ReLU-Dropout(0.25)-MaxPool2d(2)); each part may be absent.
///
/// The dropout mask is not stored: both passes regenerate it from the counter RNG
/// (`CounterRNG.uniform(key(dropoutSeed), i)` at the flat index i of the BatchNorm output), which
/// is the mask `dropoutForward` with the same seed draws.
public struct BatchNormTail: Sendable, Equatable, CustomStringConvertible {
    public var activation: Activation
    /// Dropout probability in [0, 1); 0: no dropout.
    public var dropout: Float
    /// The dropout layer's seed for this step (`Dropout.seed(forStep:)`).
    public var dropoutSeed: UInt64
    /// Max pooling over the (N, C, H, W) BatchNorm output (its `inputShape` is x's shape); nil: none.
    public var pool: Pool2DGeometry?

    public init(activation: Activation = .identity, dropout: Float = 0, dropoutSeed: UInt64 = 0, pool: Pool2DGeometry? = nil) {
        self.activation = activation
        self.dropout = dropout
        self.dropoutSeed = dropoutSeed
        self.pool = pool
    }

    /// The block's output shape for BatchNorm input `x`.
    public func outputShape(_ x: Shape) -> Shape { pool?.outputShape ?? x }

    public var description: String {
        var parts: [String] = []
        if activation == .relu { parts.append("relu") }
        if dropout > 0 { parts.append("dropout \(dropout)") }
        if let pool { parts.append("maxpool k\(pool.kernelH)x\(pool.kernelW) s\(pool.strideH)x\(pool.strideW) p\(pool.padH)x\(pool.padW)") }
        return parts.isEmpty ? "bn" : "bn+" + parts.joined(separator: "+")
    }
}

extension Contract {
    static func batchNormTail(_ tail: BatchNormTail, x: Tensor, argmax: Tensor?, op: String) throws {
        try require(tail.dropout >= 0 && tail.dropout < 1, "\(op): dropout probability must be in [0, 1), got \(tail.dropout)")
        if tail.dropout > 0 {
            try require(UInt64(x.count) <= UInt64(UInt32.max) + 1, "\(op): \(x.count) elements exceed the 2^32 counter range of CounterRNG")
        }
        if let g = tail.pool {
            try g.validate()
            try require(x.shape == g.inputShape, "\(op): the pooling geometry's input \(g.inputShape) must be x's shape \(x.shape)")
            guard let argmax else { throw CNNError.invalidArgument("\(op): a max-pooling tail needs an argmax tensor (int32, \(g.outputShape))") }
            try Check.dtype(argmax, .int32, "argmax", op)
            try Check.shape(argmax, g.outputShape, "argmax", op)
        } else {
            try require(argmax == nil, "\(op): argmax is only for a max-pooling tail; pass nil")
        }
    }

    /// (N, C, S) of x. y: the tail's output shape; argmax: with a pooling tail only.
    package static func batchNormBlockForwardTraining(x: Tensor, gamma: Tensor, beta: Tensor, y: Tensor, argmax: Tensor?,
                                                      runningMean: Tensor, runningVar: Tensor, saveMean: Tensor, saveInvStd: Tensor,
                                                      momentum: Float, epsilon: Float, tail: BatchNormTail) throws -> (n: Int, c: Int, s: Int) {
        let op = "batchNormBlockForwardTraining"
        let perChannel = [(gamma, "gamma"), (beta, "beta"), (runningMean, "runningMean"), (runningVar, "runningVar"),
                          (saveMean, "saveMean"), (saveInvStd, "saveInvStd")]
        let (n, c, s) = try batchNorm(
            x: x, perChannel: perChannel, full: [],
            outputs: [(runningMean, "runningMean"), (runningVar, "runningVar"), (saveMean, "saveMean"), (saveInvStd, "saveInvStd")],
            epsilon: epsilon, op: op)
        try batchNormTail(tail, x: x, argmax: argmax, op: op)
        try Check.dtype(y, .float32, "y", op)
        try Check.shape(y, tail.outputShape(x.shape), "y", op)
        try disjoint(y, "y", from: [(x, "x"), (argmax, "argmax")] + perChannel.map { ($0.0, $0.1) }, op)
        if let argmax { try disjoint(argmax, "argmax", from: [(x, "x")] + perChannel.map { ($0.0, $0.1) }, op) }
        try require(momentum >= 0 && momentum <= 1, "\(op): momentum must be in [0, 1], got \(momentum)")
        try require(n * s >= 2, "\(op): x \(x.shape) has \(n * s) value per channel; training-mode BatchNorm needs at least 2 "
                    + "(the unbiased variance divides by N*spatial - 1, as PyTorch) — use a batch of 2 or more, or drop the last partial batch")
        return (n, c, s)
    }

    /// (N, C, S) of x. dy: the tail's output shape; dBias (C, optional): the gradient of a bias
    /// added right before the BatchNorm (the sum of dx over (N, S)).
    package static func batchNormBlockBackward(x: Tensor, dy: Tensor, gamma: Tensor, beta: Tensor, saveMean: Tensor, saveInvStd: Tensor,
                                               argmax: Tensor?, dx: Tensor, dGamma: Tensor, dBeta: Tensor, dBias: Tensor?,
                                               epsilon: Float, tail: BatchNormTail) throws -> (n: Int, c: Int, s: Int) {
        let op = "batchNormBlockBackward"
        var perChannel = [(gamma, "gamma"), (beta, "beta"), (saveMean, "saveMean"), (saveInvStd, "saveInvStd"),
                          (dGamma, "dGamma"), (dBeta, "dBeta")]
        if let dBias { perChannel.append((dBias, "dBias")) }
        var outputs = [(dx, "dx"), (dGamma, "dGamma"), (dBeta, "dBeta")]
        if let dBias { outputs.append((dBias, "dBias")) }
        let (n, c, s) = try batchNorm(x: x, perChannel: perChannel, full: [(dx, "dx")], outputs: outputs, epsilon: epsilon, op: op)
        try batchNormTail(tail, x: x, argmax: argmax, op: op)
        try Check.dtype(dy, .float32, "dy", op)
        try Check.shape(dy, tail.outputShape(x.shape), "dy", op)
        for (out, name) in outputs { try disjoint(out, name, from: [(dy, "dy"), (argmax, "argmax")], op) }
        return (n, c, s)
    }
}

extension Contract {
    /// (N, C, S) of y.
    package static func biasActivationDropoutForward(y: Tensor, bias: Tensor, probability p: Float) throws -> (n: Int, c: Int, s: Int) {
        let op = "biasActivationDropoutForward"
        let (n, c, s) = try biasAdd(y: y, bias: bias, op: op)
        try dropoutRange(y, p, op)
        return (n, c, s)
    }

    /// (N, C, S) of y.
    package static func biasActivationDropoutBackward(y: Tensor, dy: Tensor, dBias: Tensor, probability p: Float) throws -> (n: Int, c: Int, s: Int) {
        let op = "biasActivationDropoutBackward"
        try Check.float([(y, "y"), (dy, "dy"), (dBias, "dBias")], op)
        let (n, c, s) = try channels(dy, "dy", op)
        try Check.shape(y, dy.shape, "y", op)
        try Check.count(dBias, c, "dBias", op)
        try disjoint(dy, "dy", from: [(y, "y")], op)
        try disjoint(dBias, "dBias", from: [(y, "y"), (dy, "dy")], op)
        try dropoutRange(dy, p, op)
        return (n, c, s)
    }

    static func biasAdd(y: Tensor, bias: Tensor, op: String) throws -> (n: Int, c: Int, s: Int) {
        try Check.float([(y, "y"), (bias, "bias")], op)
        let (n, c, s) = try channels(y, "y", op)
        try Check.count(bias, c, "bias", op)
        try disjoint(y, "y", from: [(bias, "bias")], op)
        return (n, c, s)
    }

    static func dropoutRange(_ t: Tensor, _ p: Float, _ op: String) throws {
        try require(p >= 0 && p < 1, "\(op): probability must be in [0, 1), got \(p)")
        try require(UInt64(t.count) <= UInt64(UInt32.max) + 1, "\(op): \(t.count) elements exceed the 2^32 counter range of CounterRNG")
    }
}

/// `biasActivationDropoutForward` / `Backward` composed of the unfused primitives (see below).
package enum BiasActivationDropoutComposition {
    package static func forward(on b: any Backend, y: Tensor, bias: Tensor, activation: Activation, probability p: Float, seed: UInt64,
                                scratch: BatchNormBlockComposition.Scratch) throws {
        try b.biasAdd(y: y, bias: bias, activation: activation)
        if p > 0 {
            let mask = try scratch("biasBlock.mask", y.shape, .float32)
            try b.dropoutForward(x: y, y: y, mask: mask, probability: p, seed: seed)
        }
    }

    package static func backward(on b: any Backend, y: Tensor, dy: Tensor, dBias: Tensor, activation: Activation, probability p: Float,
                                 seed: UInt64, scratch: BatchNormBlockComposition.Scratch) throws {
        if p > 0 {
            let mask = try scratch("biasBlock.mask", y.shape, .float32)
            try b.dropoutForward(x: dy, y: dy, mask: mask, probability: p, seed: seed)
        }
        // y is the output after dropout: y > 0 exactly where the ReLU passed and the mask kept.
        if activation == .relu { try b.reluBackward(y: y, dy: dy, dx: dy) }
        try b.biasGrad(dy: dy, dBias: dBias)
    }
}

/// The fused BatchNorm block as a composition of the unfused primitives on any backend: the
/// definition the fused kernels are tested against, and the CPU backend's implementation (in
/// reference mode it composes the reference ops, otherwise the fast ones). `scratch(name, shape,
/// dtype)` returns a reusable tensor of that shape (contents undefined).
package enum BatchNormBlockComposition {
    package typealias Scratch = (String, Shape, DType) throws -> Tensor

    /// z = BN_train(x) with the activation; z *= dropout mask; y, argmax = maxpool(z).
    package static func forwardTraining(on b: any Backend, x: Tensor, gamma: Tensor, beta: Tensor, y: Tensor, argmax: Tensor?,
                                        runningMean: Tensor, runningVar: Tensor, saveMean: Tensor, saveInvStd: Tensor,
                                        momentum: Float, epsilon: Float, tail: BatchNormTail, scratch: Scratch) throws {
        let z = tail.pool == nil ? y : try scratch("bnBlock.z", x.shape, .float32)
        try b.batchNormForwardTraining(x: x, gamma: gamma, beta: beta, y: z, runningMean: runningMean, runningVar: runningVar,
                                       saveMean: saveMean, saveInvStd: saveInvStd, momentum: momentum, epsilon: epsilon,
                                       activation: tail.activation)
        if tail.dropout > 0 {
            let mask = try scratch("bnBlock.mask", x.shape, .float32)
            try b.dropoutForward(x: z, y: z, mask: mask, probability: tail.dropout, seed: tail.dropoutSeed)
        }
        if let g = tail.pool, let argmax { try b.maxPool2DForward(x: z, y: y, argmax: argmax, geometry: g) }
    }

    /// g = maxpool backward of dy (or dy); g *= dropout mask; g *= (activation output > 0) for ReLU,
    /// with the activation output recomputed from x and the batch statistics; then BatchNorm's
    /// backward into dx, dGamma, dBeta, and dBias = the per-channel sum of dx.
    package static func backward(on b: any Backend, x: Tensor, dy: Tensor, gamma: Tensor, beta: Tensor,
                                 saveMean: Tensor, saveInvStd: Tensor, argmax: Tensor?,
                                 dx: Tensor, dGamma: Tensor, dBeta: Tensor, dBias: Tensor?,
                                 epsilon: Float, tail: BatchNormTail, scratch: Scratch) throws {
        let c = x.shape[1]
        let g = try scratch("bnBlock.g", x.shape, .float32)
        if let pool = tail.pool, let argmax {
            try b.maxPool2DBackward(dy: dy, argmax: argmax, dx: g, geometry: pool)
        } else {
            try b.copy(dy, to: g)
        }
        if tail.dropout > 0 {
            let mask = try scratch("bnBlock.mask", x.shape, .float32)
            try b.dropoutForward(x: g, y: g, mask: mask, probability: tail.dropout, seed: tail.dropoutSeed)
        }
        if tail.activation == .relu {
            // The activation output, recomputed: the same batch statistics from the same x give the
            // forward pass's values (the running statistics go to scratch, not the layer's).
            let a = try scratch("bnBlock.activation", x.shape, .float32)
            let rm = try scratch("bnBlock.runningMean", [c], .float32), rv = try scratch("bnBlock.runningVar", [c], .float32)
            let sm = try scratch("bnBlock.saveMean", [c], .float32), si = try scratch("bnBlock.saveInvStd", [c], .float32)
            try b.batchNormForwardTraining(x: x, gamma: gamma, beta: beta, y: a, runningMean: rm, runningVar: rv,
                                           saveMean: sm, saveInvStd: si, momentum: 0, epsilon: epsilon, activation: .relu)
            try b.reluBackward(y: a, dy: g, dx: g)
        }
        try b.batchNormBackward(x: x, dy: g, gamma: gamma, saveMean: saveMean, saveInvStd: saveInvStd,
                                dx: dx, dGamma: dGamma, dBeta: dBeta)
        if let dBias { try b.biasGrad(dy: dx, dBias: dBias) }
    }
}

extension Contract {
    /// (N, K) of logits.
    package static func softmaxCrossEntropyWithTotals(logits: Tensor, targets: LossTargets, labelSmoothing: Float,
                                                      losses: Tensor, dLogits: Tensor?, gradScale: Float,
                                                      labels: Tensor, lossSum: Tensor, correctSum: Tensor) throws -> (n: Int, k: Int) {
        let op = "softmaxCrossEntropyWithTotals"
        let (n, k) = try softmaxCrossEntropy(logits: logits, targets: targets, labelSmoothing: labelSmoothing,
                                             losses: losses, dLogits: dLogits, gradScale: gradScale)
        try Check.dtype(labels, .int32, "labels", op)
        try Check.count(labels, n, "labels", op)
        for (t, name) in [(lossSum, "lossSum"), (correctSum, "correctSum")] {
            try Check.dtype(t, .float32, name, op)
            try Check.count(t, 1, name, op)
            try disjoint(t, name, from: [(logits, "logits"), (losses, "losses"), (dLogits, "dLogits"), (labels, "labels")], op)
        }
        try disjoint(lossSum, "lossSum", from: [(correctSum, "correctSum")], op)
        for (t, name) in [(losses, "losses"), (dLogits, "dLogits")] {
            if let t { try disjoint(t, name, from: [(labels, "labels")], op) }
        }
        return (n, k)
    }
}

/// `softmaxCrossEntropyWithTotals` composed of the unfused primitives.
package enum LossTotalsComposition {
    package static func run(on b: any Backend, logits: Tensor, targets: LossTargets, labelSmoothing: Float,
                            losses: Tensor, dLogits: Tensor?, gradScale: Float,
                            labels: Tensor, lossSum: Tensor, correctSum: Tensor) throws {
        try b.softmaxCrossEntropy(logits: logits, targets: targets, labelSmoothing: labelSmoothing,
                                  losses: losses, dLogits: dLogits, gradScale: gradScale)
        try b.sum(losses, into: lossSum, accumulate: true)
        try b.countCorrect(logits: logits, labels: labels, into: correctSum, accumulate: true)
    }
}
