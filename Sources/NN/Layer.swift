import CNNCore

/// Per-call state of a forward pass.
public struct ForwardContext {
    public var training: Bool
    /// Seed of this step; stochastic layers mix in their own index (so masks differ per layer).
    public var seed: UInt64
    /// In eval mode, keep what `backward` needs anyway (Grad-CAM differentiates an eval-mode forward).
    /// BatchNorm supports backward only after a training forward and throws otherwise.
    public var keepsBackwardState: Bool
    public init(training: Bool, seed: UInt64 = 0, keepsBackwardState: Bool = false) {
        self.training = training
        self.seed = seed
        self.keepsBackwardState = keepsBackwardState
    }
    /// Whether layers keep their backward state in this pass.
    public var savesForBackward: Bool { training || keepsBackwardState }
}

/// What a layer receives when the model is built: the backend, and registration of its
/// parameters and state buffers (allocated afterwards in one flat buffer per kind).
public final class LayerBuilder {
    public let backend: any Backend
    var parameters: [(String, Parameter)] = []
    var buffers: [(String, StateBuffer)] = []
    var prefix: [String] = []
    var layerCount = 0

    init(backend: any Backend) { self.backend = backend }

    public func register(_ name: String, _ p: Parameter) {
        parameters.append(((prefix + [name]).joined(separator: "."), p))
    }
    public func register(_ name: String, _ b: StateBuffer) {
        buffers.append(((prefix + [name]).joined(separator: "."), b))
    }
    /// Builds `child` under the name `name` (PyTorch's module path, e.g. "conv1" or "0").
    public func build(_ child: any Layer, named name: String, input: Shape) throws -> Shape {
        prefix.append(name)
        defer { prefix.removeLast() }
        return try child.build(self, input: input)
    }
    /// A process-unique index for stochastic layers (mixed into the dropout seed).
    public func nextLayerIndex() -> Int {
        layerCount += 1
        return layerCount
    }
    /// The current module path, e.g. "conv2.3".
    public var path: String { prefix.joined(separator: ".") }
}

/// A differentiable layer over device tensors.
///
/// Lifecycle: `build` once (registers parameters, returns the output shape for a per-sample input
/// shape (C, H, W) or (F)); then `forward` / `backward` pairs. `forward` in training mode keeps what
/// `backward` needs; `backward` receives dL/dy, writes parameter gradients (overwriting) and returns
/// dL/dx (nil when `needsInputGradient` is false, e.g. for the first layer).
/// `backward` may overwrite `dy`: the caller hands it over (ReLU, dropout and fused activations work
/// in place, which saves one activation-sized buffer each; `Residual` copies dy for its body).
/// Returned tensors are owned by the layer and stay valid until its next forward/backward.
public protocol Layer: AnyObject {
    func build(_ builder: LayerBuilder, input: Shape) throws -> Shape
    func forward(_ x: Tensor, _ ctx: ForwardContext) throws -> Tensor
    func backward(_ dy: Tensor) throws -> Tensor?
    var needsInputGradient: Bool { get set }
    /// A short description for model summaries, e.g. "Conv2d(3, 32, kernel 3, padding 1)".
    var summary: String { get }
}

/// A layer that can apply an activation to its own output (conv, linear, BatchNorm), so a
/// following ReLU costs no extra pass over memory. Set by `Sequential`'s fusion.
package protocol ActivationFusable: Layer {
    var fusedActivation: Activation { get set }
}

/// Reuses device memory across steps: a tensor of a requested shape is a view into one storage
/// that only grows, so the steady-state step allocates nothing (a smaller last batch reuses it).
package struct TensorCache {
    private var storageTensor: Tensor?
    package init() {}

    package mutating func tensor(_ shape: Shape, dtype: DType = .float32, on backend: any Backend) throws -> Tensor {
        if let t = storageTensor, t.dtype == dtype, t.count >= shape.count {
            return Tensor(storage: t.storage, offset: t.offset, shape: shape, dtype: dtype)
        }
        let t = try backend.makeTensor(shape, dtype: dtype)
        storageTensor = t
        return t
    }
}

func perSampleShape(_ s: Shape) -> Shape { Shape(Array(s.dims.dropFirst())) }
func batched(_ n: Int, _ s: Shape) -> Shape { Shape([n] + s.dims) }
