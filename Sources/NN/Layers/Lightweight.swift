import CNNCore

/// Grouped 2-D convolution, PyTorch's `nn.Conv2d(..., groups:)`; `groups == inChannels ==
/// outChannels` is the depthwise convolution. State dict: `weight` (Cout, Cin / groups, K, K), `bias` (Cout).
public final class GroupedConv2d: ActivationFusable {
    public let inChannels, outChannels, kernel, stride, padding, groups: Int
    public let hasBias: Bool
    public var fusedActivation: Activation = .identity
    public var needsInputGradient = true

    public let weight: Parameter
    public let bias: Parameter?
    private var backend: (any Backend)!
    private var x: Tensor?
    private var y: Tensor?
    private var geometry: Conv2DGeometry?
    private var yCache = TensorCache(), dxCache = TensorCache()

    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, groups: Int, bias: Bool = true) {
        self.inChannels = inChannels; self.outChannels = outChannels
        self.kernel = kernel; self.stride = stride; self.padding = padding; self.groups = groups; self.hasBias = bias
        let fanIn = max(1, inChannels / max(groups, 1)) * kernel * kernel   // PyTorch: fan-in of one group
        weight = Parameter(shape: [outChannels, inChannels / max(groups, 1), kernel, kernel], initializer: .kaimingUniformDefault(fanIn: fanIn))
        self.bias = bias ? Parameter(shape: [outChannels], initializer: .biasDefault(fanIn: fanIn)) : nil
    }

    /// The depthwise convolution: one filter per channel.
    public static func depthwise(_ channels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true) -> GroupedConv2d {
        GroupedConv2d(channels, channels, kernel: kernel, stride: stride, padding: padding, groups: channels, bias: bias)
    }

    public var summary: String {
        "Conv2d(\(inChannels), \(outChannels), kernel \(kernel), stride \(stride), padding \(padding), groups \(groups)\(hasBias ? "" : ", no bias"))"
            + (fusedActivation == .relu ? " + ReLU" : "")
    }

    func geometry(batch: Int, input: Shape) throws -> Conv2DGeometry {
        try require(input.rank == 3 && input[0] == inChannels,
                    "Conv2d(\(inChannels)->\(outChannels), groups \(groups)) expects per-sample input (\(inChannels), H, W), got \(input)")
        try require(groups > 0 && inChannels % groups == 0 && outChannels % groups == 0,
                    "Conv2d(\(inChannels)->\(outChannels)): groups = \(groups) must divide both channel counts")
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
        try backend.groupedConv2DForward(x: x, weight: weight.value, bias: bias?.value, y: y, geometry: g, groups: groups,
                                         activation: fusedActivation)
        if ctx.savesForBackward { self.x = x; self.y = y; geometry = g }
        return y
    }

    public func backward(_ dy: Tensor) throws -> Tensor? {
        guard let x, let y, let g = geometry else { throw CNNError.invalidArgument("Conv2d(groups).backward called before a training forward") }
        if fusedActivation == .relu { try backend.reluBackward(y: y, dy: dy, dx: dy) }
        try backend.groupedConv2DBackwardFilter(x: x, dy: dy, dWeight: weight.grad, dBias: bias?.grad, geometry: g, groups: groups)
        guard needsInputGradient else { return nil }
        let dx = try dxCache.tensor(g.inputShape, on: backend)
        try backend.groupedConv2DBackwardData(dy: dy, weight: weight.value, dx: dx, geometry: g, groups: groups)
        return dx
    }
}

/// GELU, PyTorch's `nn.GELU()` (exact, erf-based): y = x * Phi(x).
public final class GELU: Layer {
    public var needsInputGradient = true
    private var backend: (any Backend)!
    private var x: Tensor?
    private var yCache = TensorCache()
    public init() {}
    public var summary: String { "GELU" }

    public func build(_ b: LayerBuilder, input: Shape) throws -> Shape {
        backend = b.backend
        return input
    }
    public func forward(_ x: Tensor, _ ctx: ForwardContext) throws -> Tensor {
        let y = try yCache.tensor(x.shape, on: backend)
        try backend.gelu(x: x, y: y)
        if ctx.savesForBackward { self.x = x }
        return y
    }
    public func backward(_ dy: Tensor) throws -> Tensor? {
        guard let x else { throw CNNError.invalidArgument("GELU.backward called before a training forward") }
        try backend.geluBackward(x: x, dy: dy, dx: dy)   // in place (see `Layer.backward`)
        return dy
    }
}

/// ShuffleNet's channel shuffle (`channel_shuffle(x, groups)` in torchvision): no parameters.
public final class ChannelShuffle: Layer {
    public let groups: Int
    public var needsInputGradient = true
    private var backend: (any Backend)!
    private var yCache = TensorCache(), dxCache = TensorCache()
    public init(groups: Int) { self.groups = groups }
    public var summary: String { "ChannelShuffle(\(groups))" }

    public func build(_ b: LayerBuilder, input: Shape) throws -> Shape {
        try require(input.rank >= 1 && groups > 0 && input[0] % groups == 0,
                    "ChannelShuffle(\(groups)) at '\(b.path)': groups must divide the channels of \(input)")
        backend = b.backend
        return input
    }
    public func forward(_ x: Tensor, _ ctx: ForwardContext) throws -> Tensor {
        let y = try yCache.tensor(x.shape, on: backend)
        try backend.channelShuffle(x: x, y: y, groups: groups)
        return y
    }
    public func backward(_ dy: Tensor) throws -> Tensor? {
        let dx = try dxCache.tensor(dy.shape, on: backend)
        try backend.channelShuffle(x: dy, y: dx, groups: dy.shape[1] / groups)   // the inverse permutation
        return dx
    }
}

/// A layer holding Sequentials of its own (`Sequential.flattened` lists their layers under its path).
protocol NestedLayers: Layer {
    /// The nested Sequentials and their names; with `shortcuts: false` only those on the main path
    /// (a shape walk follows them in order).
    func nestedSequentials(shortcuts: Bool) -> [(String, Sequential)]
}

extension InvertedResidual: NestedLayers {
    func nestedSequentials(shortcuts: Bool) -> [(String, Sequential)] { [("conv", conv)] }
}

extension ShuffleUnit: NestedLayers {
    /// The branches are parallel, not a path: listed only with `shortcuts`.
    func nestedSequentials(shortcuts: Bool) -> [(String, Sequential)] {
        guard shortcuts else { return [] }
        return (branch1.map { [("branch1", $0)] } ?? []) + [("branch2", branch2)]
    }
}

/// MobileNetV2's inverted residual block: y = conv(x) (+ x when `residual`). State dict: `conv.*`
/// (torchvision's `InvertedResidual.conv`).
public final class InvertedResidual: Layer {
    public let conv: Sequential
    public let residual: Bool
    public var needsInputGradient = true
    private var backend: (any Backend)!
    private var yCache = TensorCache(), dxCache = TensorCache(), bodyDyCache = TensorCache()

    public init(_ conv: Sequential, residual: Bool) {
        self.conv = conv
        self.residual = residual
    }
    public var summary: String { "InvertedResidual" + (residual ? " (+ identity)" : "") }

    public func build(_ b: LayerBuilder, input: Shape) throws -> Shape {
        backend = b.backend
        conv.needsInputGradient = residual ? true : needsInputGradient
        let out = try b.build(conv, named: "conv", input: input)
        if residual { try require(out == input, "InvertedResidual at '\(b.path)': a residual block maps \(input) to \(out)") }
        return out
    }

    public func forward(_ x: Tensor, _ ctx: ForwardContext) throws -> Tensor {
        let a = try conv.forward(x, ctx)
        guard residual else { return a }
        let y = try yCache.tensor(a.shape, on: backend)
        try backend.add(a, x, y: y)
        return y
    }

    public func backward(_ dy: Tensor) throws -> Tensor? {
        guard residual else { return try conv.backward(dy) }
        // dy feeds both paths and a layer's backward may overwrite its dy: the body gets a copy.
        let bodyDy = try bodyDyCache.tensor(dy.shape, on: backend)
        try backend.copy(dy, to: bodyDy)
        let dBody = try conv.backward(bodyDy)
        guard needsInputGradient, let dBody else { return nil }
        let dx = try dxCache.tensor(dBody.shape, on: backend)
        try backend.add(dBody, dy, y: dx)
        return dx
    }
}

/// ShuffleNetV2's unit (torchvision's `shufflenetv2.InvertedResidual`). Stride 1: x is split into two
/// channel halves, the second goes through `branch2`, the halves are concatenated; stride 2: both
/// `branch1(x)` and `branch2(x)` are concatenated. Then a channel shuffle with 2 groups.
/// State dict: `branch1.*` (stride 2 only), `branch2.*`.
public final class ShuffleUnit: Layer {
    public let branch1: Sequential?
    public let branch2: Sequential
    public var needsInputGradient = true
    private var backend: (any Backend)!
    private var inputShape: Shape?
    private var halfCache = TensorCache(), catCache = TensorCache(), yCache = TensorCache()
    private var dCatCache = TensorCache(), dHalf1Cache = TensorCache(), dHalf2Cache = TensorCache(), dxCache = TensorCache()

    public init(branch1: Sequential?, branch2: Sequential) {
        self.branch1 = branch1
        self.branch2 = branch2
    }
    public var summary: String { "ShuffleUnit" + (branch1 == nil ? " (split)" : " (two branches)") }

    public func build(_ b: LayerBuilder, input: Shape) throws -> Shape {
        backend = b.backend
        try require(input.rank == 3, "ShuffleUnit at '\(b.path)' expects (C, H, W) inputs, got \(input)")
        let out: Shape
        if let branch1 {
            branch1.needsInputGradient = true
            branch2.needsInputGradient = true
            let o1 = try b.build(branch1, named: "branch1", input: input)
            let o2 = try b.build(branch2, named: "branch2", input: input)
            try require(o1 == o2, "ShuffleUnit at '\(b.path)': branch1 gives \(o1) but branch2 gives \(o2)")
            out = [2 * o1[0], o1[1], o1[2]]
        } else {
            try require(input[0] % 2 == 0, "ShuffleUnit at '\(b.path)': stride-1 units split an even channel count, got \(input)")
            branch2.needsInputGradient = true
            let half: Shape = [input[0] / 2, input[1], input[2]]
            let o2 = try b.build(branch2, named: "branch2", input: half)
            try require(o2 == half, "ShuffleUnit at '\(b.path)': branch2 must keep \(half), gives \(o2)")
            out = input
        }
        return out
    }

    public func forward(_ x: Tensor, _ ctx: ForwardContext) throws -> Tensor {
        let n = x.shape[0], c = x.shape[1]
        let a: Tensor, bOut: Tensor
        if let branch1 {
            a = try branch1.forward(x, ctx)
            bOut = try branch2.forward(x, ctx)
        } else {
            let half = try halfCache.tensor([n, c / 2, x.shape[2], x.shape[3]], on: backend)
            try backend.copyChannels(src: x, srcChannel: c / 2, dst: half, dstChannel: 0, count: c / 2)
            a = x
            bOut = try branch2.forward(half, ctx)
        }
        let cb = bOut.shape[1], ca = branch1 == nil ? c / 2 : a.shape[1]
        let cat = try catCache.tensor([n, ca + cb, bOut.shape[2], bOut.shape[3]], on: backend)
        try backend.copyChannels(src: a, srcChannel: 0, dst: cat, dstChannel: 0, count: ca)
        try backend.copyChannels(src: bOut, srcChannel: 0, dst: cat, dstChannel: ca, count: cb)
        let y = try yCache.tensor(cat.shape, on: backend)
        try backend.channelShuffle(x: cat, y: y, groups: 2)
        inputShape = x.shape
        return y
    }

    public func backward(_ dy: Tensor) throws -> Tensor? {
        guard let xs = inputShape else { throw CNNError.invalidArgument("ShuffleUnit.backward called before a training forward") }
        let n = dy.shape[0], c = dy.shape[1], half = c / 2
        let dCat = try dCatCache.tensor(dy.shape, on: backend)
        try backend.channelShuffle(x: dy, y: dCat, groups: half)   // the inverse of the 2-group shuffle
        let hs: Shape = [n, half, dy.shape[2], dy.shape[3]]
        let d2 = try dHalf2Cache.tensor(hs, on: backend)
        try backend.copyChannels(src: dCat, srcChannel: half, dst: d2, dstChannel: 0, count: half)
        if let branch1 {
            let d1 = try dHalf1Cache.tensor(hs, on: backend)
            try backend.copyChannels(src: dCat, srcChannel: 0, dst: d1, dstChannel: 0, count: half)
            let dx1 = try branch1.backward(d1)
            let dx2 = try branch2.backward(d2)
            guard needsInputGradient, let dx1, let dx2 else { return nil }
            let dx = try dxCache.tensor(xs, on: backend)
            try backend.add(dx1, dx2, y: dx)
            return dx
        }
        let dx2 = try branch2.backward(d2)
        guard needsInputGradient, let dx2 else { return nil }
        let dx = try dxCache.tensor(xs, on: backend)
        try backend.copyChannels(src: dCat, srcChannel: 0, dst: dx, dstChannel: 0, count: half)
        try backend.copyChannels(src: dx2, srcChannel: 0, dst: dx, dstChannel: half, count: half)
        return dx
    }
}
