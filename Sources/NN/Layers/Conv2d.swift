import CNNCore

/// 2-D convolution, PyTorch's `nn.Conv2d` (no dilation, no groups). State dict: `weight` (Cout, Cin, KH, KW), `bias` (Cout).
/// x: (N, Cin, H, W) -> y: (N, Cout, OH, OW).
public final class Conv2d: ActivationFusable {
    public let inChannels, outChannels, kernel, stride, padding: Int
    public let hasBias: Bool
    public var fusedActivation: Activation = .identity
    public var needsInputGradient = true
    /// Set by `Sequential` when the BatchNorm after it computes this layer's bias gradient (BatchNormFusion.swift).
    var biasGradientFromNext = false

    public let weight: Parameter
    public let bias: Parameter?
    private var backend: (any Backend)!
    private var x: Tensor?
    private var y: Tensor?
    private var geometry: Conv2DGeometry?
    private var yCache = TensorCache(), dxCache = TensorCache()

    /// `identityInit`: PyTorch's default initialisation, then the first min(Cout, Cin) filters set to the
    /// identity (`Initializer.uniformThenDirac`; airbench's convolutions).
    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true,
                identityInit: Bool = false) {
        self.inChannels = inChannels; self.outChannels = outChannels
        self.kernel = kernel; self.stride = stride; self.padding = padding; self.hasBias = bias
        let fanIn = inChannels * kernel * kernel
        let bound = 1 / Float(fanIn).squareRoot()
        weight = Parameter(shape: [outChannels, inChannels, kernel, kernel],
                           initializer: identityInit ? .uniformThenDirac(bound: bound, outChannels: outChannels, inChannels: inChannels, kernel: kernel)
                               : .kaimingUniformDefault(fanIn: fanIn))
        self.bias = bias ? Parameter(shape: [outChannels], initializer: .biasDefault(fanIn: fanIn)) : nil
    }

    public var summary: String {
        "Conv2d(\(inChannels), \(outChannels), kernel \(kernel), stride \(stride), padding \(padding)\(hasBias ? "" : ", no bias"))"
            + (fusedActivation == .relu ? " + ReLU" : "")
    }

    func geometry(batch: Int, input: Shape) throws -> Conv2DGeometry {
        try require(input.rank == 3 && input[0] == inChannels,
                    "Conv2d(\(inChannels)->\(outChannels)) expects per-sample input (\(inChannels), H, W), got \(input)")
        let g = Conv2DGeometry(batch: batch, inChannels: inChannels, height: input[1], width: input[2],
                               outChannels: outChannels, kernel: kernel, stride: stride, padding: padding)
        try g.validate()
        return g
    }

    public func build(_ b: LayerBuilder, input: Shape) throws -> Shape {
        backend = b.backend
        b.register("weight", weight)
        if let bias { b.register("bias", bias) }
        return perSampleShape(try geometry(batch: 1, input: input).outputShape)
    }

    public func forward(_ x: Tensor, _ ctx: ForwardContext) throws -> Tensor {
        let g = try geometry(batch: x.shape[0], input: perSampleShape(x.shape))
        let y = try yCache.tensor(g.outputShape, on: backend)
        try backend.conv2DForward(x: x, weight: weight.value, bias: bias?.value, y: y, geometry: g, activation: fusedActivation)
        if ctx.savesForBackward { self.x = x; self.y = y; geometry = g }
        return y
    }

    public func backward(_ dyIn: Tensor) throws -> Tensor? {
        guard let x, let y, let g = geometry else { throw CNNError.invalidArgument("Conv2d.backward called before a training forward") }
        let dy = dyIn
        // The fused ReLU's backward in place: dy is ours to overwrite (see `Layer.backward`).
        if fusedActivation == .relu { try backend.reluBackward(y: y, dy: dy, dx: dy) }
        try backend.conv2DBackwardFilter(x: x, dy: dy, dWeight: weight.grad, dBias: biasGradientFromNext ? nil : bias?.grad, geometry: g)
        guard needsInputGradient else { return nil }
        let dx = try dxCache.tensor(g.inputShape, on: backend)
        try backend.conv2DBackwardData(dy: dy, weight: weight.value, dx: dx, geometry: g)
        return dx
    }
}
