import CNNCore

/// Launchers of the fused BatchNorm block (kernels at the end of Kernels/batchnorm.cl): one
/// launch per pass, one work-group per channel (see the kernel file for the scheme). The unfused
/// training forward is 3 launches (+1 dropout, +1 pooling) and its backward 4 (ReLU backward,
/// partial, finalize, data; +1 pooling backward, +1 dropout mask product, +2 for the bias gradient
/// of a convolution before the BatchNorm).
///
/// Trade-off: with one work-group per channel a layer of C channels occupies at most C compute
/// units (32 and 64 for `optimized`), which a GPU with more units does not fill; at these sizes
/// a step is launch-bound (docs/benchmarks.md), so fewer launches win. The roofline view
/// (`cnn-bench --roofline`) shows each kernel's time against its memory bound.
extension OpenCLBackend {
    private func tailArgs(_ tail: BatchNormTail) -> [KernelArg] {
        let drop = tail.dropout > 0
        let scale: Float = drop ? 1 / (1 - tail.dropout) : 1
        var args: [KernelArg] = [.int(drop ? 1 : 0), .uint(CounterRNG.key(seed: tail.dropoutSeed)), .float(tail.dropout), .float(scale)]
        if let g = tail.pool {
            args += [.int(1), .int(g.height), .int(g.width), .int(g.kernelH), .int(g.kernelW), .int(g.strideH), .int(g.strideW),
                     .int(g.padH), .int(g.padW), .int(g.outHeight), .int(g.outWidth)]
        } else {
            args += [.int(0), .int(1), .int(1), .int(1), .int(1), .int(1), .int(1), .int(0), .int(0), .int(1), .int(1)]
        }
        return args
    }

    public func batchNormBlockForwardTraining(x: Tensor, gamma: Tensor, beta: Tensor, y: Tensor, argmax: Tensor?,
                                              runningMean: Tensor, runningVar: Tensor, saveMean: Tensor, saveInvStd: Tensor,
                                              momentum: Float, epsilon: Float, tail: BatchNormTail) throws {
        let (n, c, s) = try Contract.batchNormBlockForwardTraining(
            x: x, gamma: gamma, beta: beta, y: y, argmax: argmax, runningMean: runningMean, runningVar: runningVar,
            saveMean: saveMean, saveInvStd: saveInvStd, momentum: momentum, epsilon: epsilon, tail: tail)
        try launchReduction(.batchnorm, "batchNormBlockForward", groups: [c],
                            [.tensor(x), .tensor(y), .optional(argmax), .tensor(gamma), .tensor(beta),
                             .tensor(runningMean), .tensor(runningVar), .tensor(saveMean), .tensor(saveInvStd),
                             .int(n), .int(c), .int(s), .float(momentum), .float(epsilon), .int(tail.activation == .relu ? 1 : 0)]
                            + tailArgs(tail))
    }

    public func batchNormBlockBackward(x: Tensor, dy: Tensor, gamma: Tensor, beta: Tensor, saveMean: Tensor, saveInvStd: Tensor,
                                       argmax: Tensor?, dx: Tensor, dGamma: Tensor, dBeta: Tensor, dBias: Tensor?,
                                       epsilon: Float, tail: BatchNormTail) throws {
        let (n, c, s) = try Contract.batchNormBlockBackward(
            x: x, dy: dy, gamma: gamma, beta: beta, saveMean: saveMean, saveInvStd: saveInvStd, argmax: argmax,
            dx: dx, dGamma: dGamma, dBeta: dBeta, dBias: dBias, epsilon: epsilon, tail: tail)
        try launchReduction(.batchnorm, "batchNormBlockBackward", groups: [c],
                            [.tensor(x), .tensor(dy), .tensor(gamma), .tensor(beta), .tensor(saveMean), .tensor(saveInvStd),
                             .optional(argmax), .tensor(dx), .tensor(dGamma), .tensor(dBeta), .optional(dBias), .int(dBias == nil ? 0 : 1),
                             .int(n), .int(c), .int(s), .int(tail.activation == .relu ? 1 : 0)]
                            + tailArgs(tail))
    }
}

/// Launchers of the bias + activation + dropout block (kernels in Kernels/conv.cl): one launch
/// each way. Unfused: biasAdd + dropoutForward forward (2), and dropout's mask product, ReLU
/// backward and the bias gradient (1-2) backward.
extension OpenCLBackend {
    private func dropoutArgs(_ p: Float, _ seed: UInt64) -> [KernelArg] {
        [.int(p > 0 ? 1 : 0), .uint(CounterRNG.key(seed: seed)), .float(p), .float(p > 0 ? 1 / (1 - p) : 1)]
    }

    public func biasActivationDropoutForward(y: Tensor, bias: Tensor, activation: Activation, probability p: Float, seed: UInt64) throws {
        let (n, c, s) = try Contract.biasActivationDropoutForward(y: y, bias: bias, probability: p)
        let k = try kernel(.conv, "biasActivationDropout")
        try launchTunable(k, global: [c * s, n], clip: false,
                   [.tensor(y), .tensor(bias), .int(n), .int(c), .int(s), .int(activation == .relu ? 1 : 0)] + dropoutArgs(p, seed))
    }

    public func biasActivationDropoutBackward(y: Tensor, dy: Tensor, dBias: Tensor, activation: Activation,
                                              probability p: Float, seed: UInt64) throws {
        let (n, c, s) = try Contract.biasActivationDropoutBackward(y: y, dy: dy, dBias: dBias, probability: p)
        try launchReduction(.conv, "biasActivationDropoutBackward", groups: [c],
                            [.tensor(y), .tensor(dy), .tensor(dBias), .int(n), .int(c), .int(s), .int(activation == .relu ? 1 : 0)]
                            + dropoutArgs(p, seed))
    }
}

/// The loss with its totals in one launch (kernel in Kernels/loss.cl): one work-group over all
/// rows, instead of the cross-entropy, a sum and a correct-count (3 launches; 5 when those take a
/// partial and a finalize pass each).
extension OpenCLBackend {
    public func softmaxCrossEntropyWithTotals(logits: Tensor, targets: LossTargets, labelSmoothing: Float,
                                              losses: Tensor, dLogits: Tensor?, gradScale: Float,
                                              labels: Tensor, lossSum: Tensor, correctSum: Tensor) throws {
        let (n, k) = try Contract.softmaxCrossEntropyWithTotals(
            logits: logits, targets: targets, labelSmoothing: labelSmoothing, losses: losses, dLogits: dLogits,
            gradScale: gradScale, labels: labels, lossSum: lossSum, correctSum: correctSum)
        var soft: Tensor?
        if case let .soft(t) = targets { soft = t }
        try launchReduction(.loss, "softmaxCrossEntropyTotals", groups: [1],
                            [.tensor(logits), .tensor(labels), .optional(soft), .int(soft == nil ? 0 : 1),
                             .tensor(losses), .optional(dLogits), .int(n), .int(k), .float(labelSmoothing),
                             .float(gradScale), .int(dLogits == nil ? 0 : 1), .tensor(lossSum), .tensor(correctSum)])
    }
}
