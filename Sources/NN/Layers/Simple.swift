import CNNCore

/// ReLU (`nn.ReLU`). When the previous layer in a `Sequential` can apply it itself, `Sequential`
/// fuses it there and this layer passes tensors through unchanged.
public final class ReLU: Layer {
    public var needsInputGradient = true
    /// Set by `Sequential` when the preceding layer applies the ReLU.
    public internal(set) var fused = false
    private var backend: (any Backend)!
    private var y: Tensor?
    private var yCache = TensorCache()
    public init() {}
    public var summary: String { fused ? "ReLU (fused into previous)" : "ReLU" }

    public func build(_ b: LayerBuilder, input: Shape) throws -> Shape {
        backend = b.backend
        return input
    }
    public func forward(_ x: Tensor, _ ctx: ForwardContext) throws -> Tensor {
        if fused { return x }
        let y = try yCache.tensor(x.shape, on: backend)
        try backend.relu(x: x, y: y)
        if ctx.savesForBackward { self.y = y }
        return y
    }
    public func backward(_ dy: Tensor) throws -> Tensor? {
        if fused { return dy }
        guard let y else { throw CNNError.invalidArgument("ReLU.backward called before a training forward") }
        try backend.reluBackward(y: y, dy: dy, dx: dy)   // in place (see `Layer.backward`)
        return dy
    }
}

/// Inverted dropout (`nn.Dropout(p)`): in training, zeroes each element with probability p and
/// scales the rest by 1/(1-p); the identity in eval mode. Masks come from the counter-based RNG,
/// so a step's mask is the same on every device.
public final class Dropout: Layer {
    public let probability: Float
    public var needsInputGradient = true
    /// Off: the identity in training too (`cnn train --no-dropout`).
    package var disabled = false
    /// The probability a training forward applies (0 when `disabled`); also what a fused block applies.
    var effectiveProbability: Float { disabled ? 0 : probability }
    private var backend: (any Backend)!
    private var layerIndex = 0
    private var mask: Tensor?
    /// Set by `Sequential` when the BatchNorm or Linear before it applies this dropout in training (BatchNormFusion.swift).
    var fusedIntoPrevious = false
    private var passedThrough = false
    private var yCache = TensorCache(), maskCache = TensorCache()

    public init(_ p: Float = 0.5) { probability = p }
    public var summary: String { "Dropout(\(probability))" }

    public func build(_ b: LayerBuilder, input: Shape) throws -> Shape {
        try require(probability >= 0 && probability < 1, "Dropout probability must be in [0, 1), got \(probability) at '\(b.path)'")
        backend = b.backend
        layerIndex = b.nextLayerIndex()
        return input
    }
    /// The seed this layer uses in a step with seed `stepSeed`.
    public func seed(forStep stepSeed: UInt64) -> UInt64 {
        var s = stepSeed ^ (UInt64(layerIndex) &* 0x9E37_79B9_7F4A_7C15)
        return SeededRNG.splitMix64(&s)
    }
    public func forward(_ x: Tensor, _ ctx: ForwardContext) throws -> Tensor {
        passedThrough = fusedIntoPrevious && ctx.training
        guard ctx.training, probability > 0, !passedThrough, !disabled else {
            mask = nil
            return x
        }
        let y = try yCache.tensor(x.shape, on: backend)
        let m = try maskCache.tensor(x.shape, on: backend)
        try backend.dropoutForward(x: x, y: y, mask: m, probability: probability, seed: seed(forStep: ctx.seed))
        mask = m
        return y
    }
    public func backward(_ dy: Tensor) throws -> Tensor? {
        guard let mask else { return dy }
        try backend.mul(dy, mask, y: dy)   // in place (see `Layer.backward`)
        return dy
    }
}

/// Flattens (N, C, H, W) to (N, C*H*W) without copying (`torch.flatten(x, 1)`).
public final class Flatten: Layer {
    public var needsInputGradient = true
    private var inputShape: Shape?
    public init() {}
    public var summary: String { "Flatten" }
    public func build(_ b: LayerBuilder, input: Shape) throws -> Shape { [input.count] }
    public func forward(_ x: Tensor, _ ctx: ForwardContext) throws -> Tensor {
        inputShape = x.shape
        return x.reshaped([x.shape[0], x.count / max(x.shape[0], 1)])
    }
    public func backward(_ dy: Tensor) throws -> Tensor? { dy.reshaped(inputShape ?? dy.shape) }
}

/// Multiplies by a constant (airbench's `Mul(scaling_factor)` after its head): y = s·x, dx = s·dy.
/// No parameters.
public final class Scale: Layer {
    public let factor: Float
    public var needsInputGradient = true
    private var backend: (any Backend)!
    private var yCache = TensorCache()
    public init(_ factor: Float) { self.factor = factor }
    public var summary: String { "Scale(\(factor))" }
    public func build(_ b: LayerBuilder, input: Shape) throws -> Shape {
        backend = b.backend
        return input
    }
    public func forward(_ x: Tensor, _ ctx: ForwardContext) throws -> Tensor {
        let y = try yCache.tensor(x.shape, on: backend)
        try backend.scale(x, by: factor, y: y)
        return y
    }
    public func backward(_ dy: Tensor) throws -> Tensor? {
        try backend.scale(dy, by: factor, y: dy)   // in place (see `Layer.backward`)
        return dy
    }
}
