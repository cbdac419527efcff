import CNNCore

/// Batch normalisation over axis 1, PyTorch's `nn.BatchNorm2d` (x: (N, C, H, W)) and `nn.BatchNorm1d`
/// (x: (N, C)). Training mode normalises with batch statistics and updates the running ones
/// (momentum 0.1, unbiased variance); eval mode uses the running statistics.
/// State dict: `weight` (C), `bias` (C), `running_mean` (C), `running_var` (C), `num_batches_tracked`.
public final class BatchNorm: ActivationFusable {
    public let features: Int
    public let momentum: Float
    public let epsilon: Float
    public let spatial: Bool
    public var fusedActivation: Activation = .identity
    public var needsInputGradient = true
    public let weight: Parameter
    public let bias: Parameter
    public let runningMean: StateBuffer
    public let runningVar: StateBuffer
    /// PyTorch's `num_batches_tracked` (kept on the host; saved in checkpoints).
    public var batchesTracked = 0
    /// Synchronised BatchNorm (data-parallel `--sync-bn`): training-mode statistics over all ranks.
    /// It runs the unfused chain (its fused block, if any, is undone).
    package var sync: (any BatchNormSync)? { didSet { if sync != nil { unfuseBlock() } } }

    private var backend: (any Backend)!
    private var x: Tensor?
    private var y: Tensor?
    private var saveMean: Tensor!
    private var saveInvStd: Tensor!
    private var yCache = TensorCache(), dxCache = TensorCache()
    /// Set by `Sequential`: the layers this BatchNorm runs fused in training (BatchNormFusion.swift).
    var block: BatchNormBlock?
    /// The tail and argmax of the latest fused training forward (nil after an unfused one).
    private var fusedTail: BatchNormTail?
    private var fusedArgmax: Tensor?
    private var argCache = TensorCache()

    init(features: Int, momentum: Float, epsilon: Float, spatial: Bool) {
        self.features = features; self.momentum = momentum; self.epsilon = epsilon; self.spatial = spatial
        // BatchNorm parameters: PyTorch decays them too by default; `decay` stays true for parity.
        weight = Parameter(shape: [features], initializer: .constant(1))
        bias = Parameter(shape: [features], initializer: .constant(0))
        runningMean = StateBuffer(shape: [features], initial: 0)
        runningVar = StateBuffer(shape: [features], initial: 1)
    }

    public var summary: String {
        "BatchNorm\(spatial ? "2d" : "1d")(\(features))" + (fusedActivation == .relu ? " + ReLU" : "")
    }

    public func build(_ b: LayerBuilder, input: Shape) throws -> Shape {
        if spatial {
            try require(input.rank == 3 && input[0] == features, "BatchNorm2d(\(features)) at '\(b.path)' expects (\(features), H, W) per sample, got \(input)")
        } else {
            try require(input.rank == 1 && input[0] == features, "BatchNorm1d(\(features)) at '\(b.path)' expects (\(features)) per sample, got \(input)")
        }
        backend = b.backend
        b.register("weight", weight)
        b.register("bias", bias)
        b.register("running_mean", runningMean)
        b.register("running_var", runningVar)
        saveMean = try backend.makeTensor([features])
        saveInvStd = try backend.makeTensor([features])
        return input
    }

    public func forward(_ x: Tensor, _ ctx: ForwardContext) throws -> Tensor {
        fusedTail = nil
        if ctx.training, let block {
            let tail = try block.tail(activation: fusedActivation, x: x.shape, stepSeed: ctx.seed)
            let y = try yCache.tensor(tail.outputShape(x.shape), on: backend)
            let argmax = try tail.pool.map { try argCache.tensor($0.outputShape, dtype: .int32, on: backend) }
            try backend.batchNormBlockForwardTraining(
                x: x, gamma: weight.value, beta: bias.value, y: y, argmax: argmax, runningMean: runningMean.value,
                runningVar: runningVar.value, saveMean: saveMean, saveInvStd: saveInvStd, momentum: momentum, epsilon: epsilon, tail: tail)
            batchesTracked += 1
            self.x = x
            self.y = y
            fusedTail = tail
            fusedArgmax = argmax
            return y
        }
        let y = try yCache.tensor(x.shape, on: backend)
        if ctx.training, let sync {
            try sync.forwardTraining(self, x: x, y: y, saveMean: saveMean, saveInvStd: saveInvStd)
            batchesTracked += 1
            self.x = x
            self.y = y
        } else if ctx.training {
            try backend.batchNormForwardTraining(
                x: x, gamma: weight.value, beta: bias.value, y: y, runningMean: runningMean.value, runningVar: runningVar.value,
                saveMean: saveMean, saveInvStd: saveInvStd, momentum: momentum, epsilon: epsilon, activation: fusedActivation)
            batchesTracked += 1
            self.x = x
            self.y = y
        } else {
            // Backward needs batch statistics: after an eval forward it must fail, not use stale ones.
            self.x = nil
            self.y = nil
            try backend.batchNormForwardInference(
                x: x, gamma: weight.value, beta: bias.value, runningMean: runningMean.value, runningVar: runningVar.value,
                y: y, epsilon: epsilon, activation: fusedActivation)
        }
        return y
    }

    public func backward(_ dyIn: Tensor) throws -> Tensor? {
        guard let x, let y else { throw CNNError.unsupported("BatchNorm.backward needs a training-mode forward (no backward through BatchNorm in eval mode, e.g. for Grad-CAM below a BatchNorm)") }
        if let tail = fusedTail {
            let dx = try dxCache.tensor(x.shape, on: backend)
            try backend.batchNormBlockBackward(
                x: x, dy: dyIn.reshaped(tail.outputShape(x.shape)), gamma: weight.value, beta: bias.value, saveMean: saveMean,
                saveInvStd: saveInvStd, argmax: fusedArgmax, dx: dx, dGamma: weight.grad, dBeta: bias.grad,
                dBias: block?.conv?.bias?.grad, epsilon: epsilon, tail: tail)
            return dx
        }
        let dy = dyIn
        // The fused ReLU's backward in place: dy is ours to overwrite (see `Layer.backward`).
        if fusedActivation == .relu { try backend.reluBackward(y: y, dy: dy, dx: dy) }
        let dx = try dxCache.tensor(x.shape, on: backend)
        if let sync {
            try sync.backward(self, x: x, dy: dy, saveMean: saveMean, saveInvStd: saveInvStd, dx: dx)
            return dx
        }
        try backend.batchNormBackward(x: x, dy: dy, gamma: weight.value, saveMean: saveMean, saveInvStd: saveInvStd,
                                      dx: dx, dGamma: weight.grad, dBeta: bias.grad)
        return dx
    }
}

/// `nn.BatchNorm2d(features)`: x (N, C, H, W). `trainableWeight` false keeps the scale at 1 (airbench's
/// `weight.requires_grad = False`): it stays in the state dict, and the optimizer leaves it alone.
public func BatchNorm2d(_ features: Int, momentum: Float = 0.1, epsilon: Float = 1e-5, trainableWeight: Bool = true) -> BatchNorm {
    let bn = BatchNorm(features: features, momentum: momentum, epsilon: epsilon, spatial: true)
    if !trainableWeight { bn.weight.learningRateScale = 0; bn.weight.weightDecayScale = 0 }
    return bn
}
/// `nn.BatchNorm1d(features)`: x (N, C).
public func BatchNorm1d(_ features: Int, momentum: Float = 0.1, epsilon: Float = 1e-5) -> BatchNorm {
    BatchNorm(features: features, momentum: momentum, epsilon: epsilon, spatial: false)
}

/// Training-mode BatchNorm whose statistics (and the matching backward sums) are reduced across
/// the ranks of a data-parallel job. `forwardTraining` writes y (with the layer's fused activation),
/// saveMean and saveInvStd and updates the running statistics; `backward` gets dy after the fused
/// ReLU's backward and writes dx and the layer's local dGamma, dBeta.
package protocol BatchNormSync: AnyObject {
    func forwardTraining(_ layer: BatchNorm, x: Tensor, y: Tensor, saveMean: Tensor, saveInvStd: Tensor) throws
    func backward(_ layer: BatchNorm, x: Tensor, dy: Tensor, saveMean: Tensor, saveInvStd: Tensor, dx: Tensor) throws
}
