import CNNCore

/// The fused BatchNorm block on the CPU: both modes run `BatchNormBlockComposition`, i.e. the
/// unfused primitives of this backend in order (the reference functions in reference mode, the
/// fast paths otherwise), so the fused op equals the unfused layer chain bit for bit here. A CPU
/// pays nothing per launch, so a single-pass CPU kernel would save only the intermediate tensor's
/// traffic; the fusion is for devices where every launch costs (OpenCL, Kernels/batchnorm.cl).
extension CPUBackend {
    func fusedTensor(_ name: String, _ shape: Shape, _ dtype: DType) throws -> Tensor {
        if let t = fusedScratch[name], t.dtype == dtype, t.count >= shape.count {
            return Tensor(storage: t.storage, offset: t.offset, shape: shape, dtype: dtype)
        }
        let t = try makeTensor(shape, dtype: dtype)
        fusedScratch[name] = t
        return t
    }

    public func batchNormBlockForwardTraining(x: Tensor, gamma: Tensor, beta: Tensor, y: Tensor, argmax: Tensor?,
                                              runningMean: Tensor, runningVar: Tensor, saveMean: Tensor, saveInvStd: Tensor,
                                              momentum: Float, epsilon: Float, tail: BatchNormTail) throws {
        _ = try Contract.batchNormBlockForwardTraining(
            x: x, gamma: gamma, beta: beta, y: y, argmax: argmax, runningMean: runningMean, runningVar: runningVar,
            saveMean: saveMean, saveInvStd: saveInvStd, momentum: momentum, epsilon: epsilon, tail: tail)
        try BatchNormBlockComposition.forwardTraining(
            on: self, x: x, gamma: gamma, beta: beta, y: y, argmax: argmax, runningMean: runningMean, runningVar: runningVar,
            saveMean: saveMean, saveInvStd: saveInvStd, momentum: momentum, epsilon: epsilon, tail: tail, scratch: fusedTensor)
    }

    public func batchNormBlockBackward(x: Tensor, dy: Tensor, gamma: Tensor, beta: Tensor, saveMean: Tensor, saveInvStd: Tensor,
                                       argmax: Tensor?, dx: Tensor, dGamma: Tensor, dBeta: Tensor, dBias: Tensor?,
                                       epsilon: Float, tail: BatchNormTail) throws {
        _ = try Contract.batchNormBlockBackward(
            x: x, dy: dy, gamma: gamma, beta: beta, saveMean: saveMean, saveInvStd: saveInvStd, argmax: argmax,
            dx: dx, dGamma: dGamma, dBeta: dBeta, dBias: dBias, epsilon: epsilon, tail: tail)
        try BatchNormBlockComposition.backward(
            on: self, x: x, dy: dy, gamma: gamma, beta: beta, saveMean: saveMean, saveInvStd: saveInvStd, argmax: argmax,
            dx: dx, dGamma: dGamma, dBeta: dBeta, dBias: dBias, epsilon: epsilon, tail: tail, scratch: fusedTensor)
    }
}

extension CPUBackend {
    public func biasActivationDropoutForward(y: Tensor, bias: Tensor, activation: Activation, probability p: Float, seed: UInt64) throws {
        _ = try Contract.biasActivationDropoutForward(y: y, bias: bias, probability: p)
        try BiasActivationDropoutComposition.forward(on: self, y: y, bias: bias, activation: activation, probability: p, seed: seed,
                                                     scratch: fusedTensor)
    }

    public func biasActivationDropoutBackward(y: Tensor, dy: Tensor, dBias: Tensor, activation: Activation,
                                              probability p: Float, seed: UInt64) throws {
        _ = try Contract.biasActivationDropoutBackward(y: y, dy: dy, dBias: dBias, probability: p)
        try BiasActivationDropoutComposition.backward(on: self, y: y, dy: dy, dBias: dBias, activation: activation, probability: p,
                                                      seed: seed, scratch: fusedTensor)
    }
}

extension CPUBackend {
    public func softmaxCrossEntropyWithTotals(logits: Tensor, targets: LossTargets, labelSmoothing: Float,
                                              losses: Tensor, dLogits: Tensor?, gradScale: Float,
                                              labels: Tensor, lossSum: Tensor, correctSum: Tensor) throws {
        _ = try Contract.softmaxCrossEntropyWithTotals(logits: logits, targets: targets, labelSmoothing: labelSmoothing, losses: losses,
                                                       dLogits: dLogits, gradScale: gradScale, labels: labels,
                                                       lossSum: lossSum, correctSum: correctSum)
        try LossTotalsComposition.run(on: self, logits: logits, targets: targets, labelSmoothing: labelSmoothing, losses: losses,
                                      dLogits: dLogits, gradScale: gradScale, labels: labels, lossSum: lossSum, correctSum: correctSum)
    }
}
