import CNNCore

/// Fully connected layer, PyTorch's `nn.Linear`: y = x W^T + b. State dict: `weight` (out, in), `bias` (out).
/// x: (N, in) -> y: (N, out).
public final class Linear: ActivationFusable {
    public let inFeatures, outFeatures: Int
    public let hasBias: Bool
    public var fusedActivation: Activation = .identity
    public var needsInputGradient = true
    public let weight: Parameter
    public let bias: Parameter?
    private var backend: (any Backend)!
    private var x: Tensor?
    private var y: Tensor?
    private var inputShape: Shape?
    private var yCache = TensorCache(), dxCache = TensorCache()
    /// Set by `Sequential` (BatchNormFusion.swift): the Dropout this layer applies with its bias in
    /// training, and whether its backward runs as one fused kernel with the bias gradient.
    var fusedDropout: Dropout?
    var fusedBiasBackward = false
    /// The dropout probability and seed of the latest forward (0: none).
    private var dropout: (p: Float, seed: UInt64) = (0, 0)

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true) {
        self.inFeatures = inFeatures; self.outFeatures = outFeatures; self.hasBias = bias
        weight = Parameter(shape: [outFeatures, inFeatures], initializer: .kaimingUniformDefault(fanIn: inFeatures))
        self.bias = bias ? Parameter(shape: [outFeatures], initializer: .biasDefault(fanIn: inFeatures)) : nil
    }

    public var summary: String {
        "Linear(\(inFeatures), \(outFeatures)\(hasBias ? "" : ", no bias"))" + (fusedActivation == .relu ? " + ReLU" : "")
    }

    public func build(_ b: LayerBuilder, input: Shape) throws -> Shape {
        try require(input.count == inFeatures, "Linear(\(inFeatures), \(outFeatures)) at '\(b.path)' gets \(input.count) features per sample \(input); add a Flatten or fix in_features")
        backend = b.backend
        b.register("weight", weight)
        if let bias { b.register("bias", bias) }
        return [outFeatures]
    }

    public func forward(_ xIn: Tensor, _ ctx: ForwardContext) throws -> Tensor {
        let n = xIn.shape[0]
        try require(xIn.count == n * inFeatures, "Linear(\(inFeatures), \(outFeatures)) got input \(xIn.shape)")
        let x = xIn.reshaped([n, inFeatures])
        let y = try yCache.tensor([n, outFeatures], on: backend)
        // y (N, out) = x (N, in) * W^T (in, out)
        try backend.gemm(transA: false, transB: true, m: n, n: outFeatures, k: inFeatures, alpha: 1,
                         a: x, lda: inFeatures, b: weight.value, ldb: inFeatures, beta: 0, c: y, ldc: outFeatures)
        dropout = (0, 0)
        if let bias, ctx.training, let d = fusedDropout, d.effectiveProbability > 0 {
            dropout = (d.effectiveProbability, d.seed(forStep: ctx.seed))
            try backend.biasActivationDropoutForward(y: y, bias: bias.value, activation: fusedActivation,
                                                     probability: dropout.p, seed: dropout.seed)
        } else if let bias {
            try backend.biasAdd(y: y, bias: bias.value, activation: fusedActivation)
        } else if fusedActivation == .relu {
            try backend.relu(x: y, y: y)
        }
        if ctx.savesForBackward { self.x = x; self.y = y; inputShape = xIn.shape }
        return y
    }

    public func backward(_ dyIn: Tensor) throws -> Tensor? {
        guard let x, let y else { throw CNNError.invalidArgument("Linear.backward called before a training forward") }
        let n = x.shape[0]
        let dy = dyIn.reshaped([n, outFeatures])
        // The fused ReLU's (and dropout's) backward in place: dy is ours to overwrite (see `Layer.backward`).
        let fused = fusedBiasBackward && bias != nil && (fusedActivation == .relu || dropout.p > 0)
        if fused, let bias {
            try backend.biasActivationDropoutBackward(y: y, dy: dy, dBias: bias.grad, activation: fusedActivation,
                                                      probability: dropout.p, seed: dropout.seed)
        } else if fusedActivation == .relu {
            try backend.reluBackward(y: y, dy: dy, dx: dy)
        }
        // dW (out, in) = dy^T (out, N) * x (N, in)
        try backend.gemm(transA: true, transB: false, m: outFeatures, n: inFeatures, k: n, alpha: 1,
                         a: dy, lda: outFeatures, b: x, ldb: inFeatures, beta: 0, c: weight.grad, ldc: inFeatures)
        if let bias, !fused { try backend.biasGrad(dy: dy, dBias: bias.grad) }
        guard needsInputGradient else { return nil }
        // dx (N, in) = dy (N, out) * W (out, in)
        let dx = try dxCache.tensor([n, inFeatures], on: backend)
        try backend.gemm(transA: false, transB: false, m: n, n: inFeatures, k: outFeatures, alpha: 1,
                         a: dy, lda: outFeatures, b: weight.value, ldb: inFeatures, beta: 0, c: dx, ldc: inFeatures)
        return dx.reshaped(inputShape ?? dx.shape)
    }
}
