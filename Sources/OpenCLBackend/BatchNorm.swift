import CNNCore

/// BatchNorm launchers (kernels in Kernels/batchnorm.cl). Per-channel statistics and gradient sums
/// are local-memory reductions over chunks of the (N, spatial) elements of each channel, then one
/// small pass per channel; the elementwise apply passes fuse the activation.
extension OpenCLBackend {
    public func batchNormForwardTraining(x: Tensor, gamma: Tensor, beta: Tensor, y: Tensor,
                                         runningMean: Tensor, runningVar: Tensor, saveMean: Tensor, saveInvStd: Tensor,
                                         momentum: Float, epsilon: Float, activation: Activation) throws {
        let (n, c, s) = try Contract.batchNormForwardTraining(
            x: x, gamma: gamma, beta: beta, y: y, runningMean: runningMean, runningVar: runningVar,
            saveMean: saveMean, saveInvStd: saveInvStd, momentum: momentum, epsilon: epsilon)
        let m = n * s
        let (chunks, chunkLen) = channelChunks(m: m, channels: c)
        let partials = try scratch(c * chunks * 2)
        try launchReduction(.batchnorm, "batchNormStatsPartial", groups: [chunks, c],
                            [.tensor(x), .tensor(partials), .int(n), .int(c), .int(s), .int(chunkLen)])
        try launch1D(.batchnorm, "batchNormStatsFinalize", count: c,
                     [.tensor(partials), .tensor(saveMean), .tensor(saveInvStd), .tensor(runningMean), .tensor(runningVar),
                      .int(c), .int(chunks), .int(chunkLen), .int(m), .float(momentum), .float(epsilon)])
        try launchPlanes(.batchnorm, "batchNormForwardTraining", planeSize: s, channels: c, images: n, tensors: [x, y],
                         [.tensor(x), .tensor(y), .tensor(saveMean), .tensor(saveInvStd), .tensor(gamma), .tensor(beta),
                          .int(c), .int(s), .int(activation == .relu ? 1 : 0)])
    }

    public func batchNormForwardInference(x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor,
                                          y: Tensor, epsilon: Float, activation: Activation) throws {
        let (n, c, s) = try Contract.batchNormForwardInference(
            x: x, gamma: gamma, beta: beta, runningMean: runningMean, runningVar: runningVar, y: y, epsilon: epsilon)
        try launchPlanes(.batchnorm, "batchNormForwardInference", planeSize: s, channels: c, images: n, tensors: [x, y],
                         [.tensor(x), .tensor(y), .tensor(runningMean), .tensor(runningVar), .tensor(gamma), .tensor(beta),
                          .int(c), .int(s), .float(epsilon), .int(activation == .relu ? 1 : 0)])
    }

    public func batchNormBackward(x: Tensor, dy: Tensor, gamma: Tensor, saveMean: Tensor, saveInvStd: Tensor,
                                  dx: Tensor, dGamma: Tensor, dBeta: Tensor) throws {
        let (n, c, s) = try Contract.batchNormBackward(
            x: x, dy: dy, gamma: gamma, saveMean: saveMean, saveInvStd: saveInvStd, dx: dx, dGamma: dGamma, dBeta: dBeta)
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
