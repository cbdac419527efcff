import CNNCore

/// BatchNorm launchers (kernels in Kernels/batchnorm.cl). Per-channel statistics and gradient sums
/// are local-memory reductions over chunks of the (N, spatial) elements of each channel, then one
/// small pass per channel; the elementwise apply passes fuse the activation.
extension OpenCLBackend {
    private func checkChannelVectors(_ op: String, _ c: Int, _ ts: [(Tensor, String)]) throws {
        for (t, name) in ts {
            try Check.dtype(t, .float32, name, op)
            try Check.count(t, c, name, op)
        }
    }

    public func batchNormForwardTraining(x: Tensor, gamma: Tensor, beta: Tensor, y: Tensor,
                                         runningMean: Tensor, runningVar: Tensor, saveMean: Tensor, saveInvStd: Tensor,
                                         momentum: Float, epsilon: Float, activation: Activation) throws {
        let op = "batchNormForwardTraining"
        let (n, c, s) = try Check.channels(x, op)
        try Check.float([(x, "x"), (y, "y")], op)
        try Check.shape(y, x.shape, "y", op)
        try checkChannelVectors(op, c, [(gamma, "gamma"), (beta, "beta"), (runningMean, "runningMean"),
                                        (runningVar, "runningVar"), (saveMean, "saveMean"), (saveInvStd, "saveInvStd")])
        try require(epsilon >= 0 && epsilon.isFinite, "\(op): epsilon must be finite and >= 0, got \(epsilon)")
        try require(momentum >= 0 && momentum <= 1, "\(op): momentum must be in [0, 1], got \(momentum)")
        try require(n * s >= 2, "\(op): x \(x.shape) has \(n * s) value per channel; training-mode BatchNorm needs at least 2 "
                    + "(the unbiased variance divides by N*spatial - 1, as PyTorch) — use a batch of 2 or more, or drop the last partial batch")
        let m = n * s
        let (chunks, chunkLen) = channelChunks(m: m, channels: c)
        let partials = try scratch(c * chunks * 2)
        try launchReduction(.batchnorm, "batchNormStatsPartial", groups: [chunks, c],
                            [.tensor(x), .tensor(partials), .int(n), .int(c), .int(s), .int(chunkLen)])
        try launch1D(.batchnorm, "batchNormStatsFinalize", count: c,
                     [.tensor(partials), .tensor(saveMean), .tensor(saveInvStd), .tensor(runningMean), .tensor(runningVar),
                      .int(c), .int(chunks), .int(chunkLen), .int(m), .float(momentum), .float(epsilon)])
        try launch1D(.batchnorm, "batchNormForwardTraining", count: x.count,
                     [.tensor(x), .tensor(y), .tensor(saveMean), .tensor(saveInvStd), .tensor(gamma), .tensor(beta),
                      .int(c), .int(s), .int(x.count), .int(activation == .relu ? 1 : 0)])
    }

    public func batchNormForwardInference(x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor,
                                          y: Tensor, epsilon: Float, activation: Activation) throws {
        let op = "batchNormForwardInference"
        let (_, c, s) = try Check.channels(x, op)
        try Check.float([(x, "x"), (y, "y")], op)
        try Check.shape(y, x.shape, "y", op)
        try checkChannelVectors(op, c, [(gamma, "gamma"), (beta, "beta"), (runningMean, "runningMean"), (runningVar, "runningVar")])
        try launch1D(.batchnorm, "batchNormForwardInference", count: x.count,
                     [.tensor(x), .tensor(y), .tensor(runningMean), .tensor(runningVar), .tensor(gamma), .tensor(beta),
                      .int(c), .int(s), .int(x.count), .float(epsilon), .int(activation == .relu ? 1 : 0)])
    }

    public func batchNormBackward(x: Tensor, dy: Tensor, gamma: Tensor, saveMean: Tensor, saveInvStd: Tensor,
                                  dx: Tensor, dGamma: Tensor, dBeta: Tensor) throws {
        let op = "batchNormBackward"
        let (n, c, s) = try Check.channels(x, op)
        try Check.float([(x, "x"), (dy, "dy"), (dx, "dx")], op)
        try Check.shape(dy, x.shape, "dy", op)
        try Check.shape(dx, x.shape, "dx", op)
        try checkChannelVectors(op, c, [(gamma, "gamma"), (saveMean, "saveMean"), (saveInvStd, "saveInvStd"),
                                        (dGamma, "dGamma"), (dBeta, "dBeta")])
        try require(n * s > 0, "\(op): empty batch \(x.shape)")
        try require(!dx.overlaps(x), "\(op): dx must not overlap x")
        let m = n * s
        let (chunks, chunkLen) = channelChunks(m: m, channels: c)
        let partials = try scratch(c * chunks * 2)
        try launchReduction(.batchnorm, "batchNormBackwardPartial", groups: [chunks, c],
                            [.tensor(x), .tensor(dy), .tensor(saveMean), .tensor(saveInvStd), .tensor(partials),
                             .int(n), .int(c), .int(s), .int(chunkLen)])
        try launch1D(.batchnorm, "batchNormBackwardFinalize", count: c,
                     [.tensor(partials), .tensor(dGamma), .tensor(dBeta), .int(c), .int(chunks)])
        try launch1D(.batchnorm, "batchNormBackwardData", count: x.count,
                     [.tensor(x), .tensor(dy), .tensor(saveMean), .tensor(saveInvStd), .tensor(gamma),
                      .tensor(dGamma), .tensor(dBeta), .tensor(dx), .int(c), .int(s), .int(x.count), .int(m)])
    }
}
