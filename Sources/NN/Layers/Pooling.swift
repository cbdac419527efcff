import CNNCore

/// Max or average pooling over (N, C, H, W). `MaxPool2d` / `AvgPool2d` match PyTorch's modules
/// (ceil_mode False; average counts padding). The global variants reduce each plane to one value
/// and output (N, C), as `x.amax(dim=(2, 3))` / `x.mean(dim=(2, 3))`.
public final class Pool2d: Layer {
    public enum Kind: String, Sendable { case max, average }
    public let kind: Kind
    public let kernel: Int?   // nil: global
    public let stride: Int
    public let padding: Int
    public var needsInputGradient = true
    private var backend: (any Backend)!
    private var geometry: Pool2DGeometry?
    private var argmax: Tensor?
    /// Set by `Sequential` when the BatchNorm before it pools in training (BatchNormFusion.swift).
    var fusedIntoBatchNorm = false
    private var passedThrough = false
    private var yCache = TensorCache(), argCache = TensorCache(), dxCache = TensorCache()

    init(kind: Kind, kernel: Int?, stride: Int?, padding: Int) {
        self.kind = kind; self.kernel = kernel; self.stride = stride ?? kernel ?? 1; self.padding = padding
    }
    public var isGlobal: Bool { kernel == nil }

    public var summary: String {
        let k = kind == .max ? "MaxPool2d" : "AvgPool2d"
        guard let kernel else { return "Global\(k)" }
        return "\(k)(\(kernel), stride \(stride)\(padding > 0 ? ", padding \(padding)" : ""))"
    }

    func geometry(batch: Int, input: Shape) throws -> Pool2DGeometry {
        try require(input.rank == 3, "\(summary) expects per-sample input (C, H, W), got \(input)")
        let g = kernel.map {
            Pool2DGeometry(batch: batch, channels: input[0], height: input[1], width: input[2], kernel: $0, stride: stride, padding: padding)
        } ?? .global(batch: batch, channels: input[0], height: input[1], width: input[2])
        try g.validate()
        return g
    }

    public func build(_ b: LayerBuilder, input: Shape) throws -> Shape {
        backend = b.backend
        let g = try geometry(batch: 1, input: input)
        return isGlobal ? [g.channels] : perSampleShape(g.outputShape)
    }

    public func forward(_ x: Tensor, _ ctx: ForwardContext) throws -> Tensor {
        passedThrough = fusedIntoBatchNorm && ctx.training
        if passedThrough { return x }   // the BatchNorm before pooled already
        let g = try geometry(batch: x.shape[0], input: perSampleShape(x.shape))
        let y = try yCache.tensor(g.outputShape, on: backend)
        switch kind {
        case .max:
            let a = try argCache.tensor(g.outputShape, dtype: .int32, on: backend)
            try backend.maxPool2DForward(x: x, y: y, argmax: a, geometry: g)
            argmax = a
        case .average:
            try backend.avgPool2DForward(x: x, y: y, geometry: g)
        }
        geometry = g
        return isGlobal ? y.reshaped([g.batch, g.channels]) : y
    }

    public func backward(_ dyIn: Tensor) throws -> Tensor? {
        if passedThrough { return dyIn }
        guard let g = geometry else { throw CNNError.invalidArgument("\(summary).backward called before forward") }
        guard needsInputGradient else { return nil }
        let dy = dyIn.reshaped(g.outputShape)
        let dx = try dxCache.tensor(g.inputShape, on: backend)
        switch kind {
        case .max:
            guard let argmax else { throw CNNError.invalidArgument("MaxPool backward without forward") }
            try backend.maxPool2DBackward(dy: dy, argmax: argmax, dx: dx, geometry: g)
        case .average:
            try backend.avgPool2DBackward(dy: dy, dx: dx, geometry: g)
        }
        return dx
    }
}

public func MaxPool2d(_ kernel: Int, stride: Int? = nil, padding: Int = 0) -> Pool2d {
    Pool2d(kind: .max, kernel: kernel, stride: stride, padding: padding)
}
public func AvgPool2d(_ kernel: Int, stride: Int? = nil, padding: Int = 0) -> Pool2d {
    Pool2d(kind: .average, kernel: kernel, stride: stride, padding: padding)
}
/// (N, C, H, W) -> (N, C): the maximum of each plane.
public func GlobalMaxPool() -> Pool2d { Pool2d(kind: .max, kernel: nil, stride: nil, padding: 0) }
/// (N, C, H, W) -> (N, C): the mean of each plane.
public func GlobalAvgPool() -> Pool2d { Pool2d(kind: .average, kernel: nil, stride: nil, padding: 0) }
