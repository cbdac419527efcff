import CNNCore

/// Layers applied in order, PyTorch's `nn.Sequential`. Children are named "0", "1", ... unless
/// names are given, which become the state-dict path (e.g. `conv1.0.weight`).
///
/// Fusion: a `ReLU` right after a Conv2d / Linear / BatchNorm is applied by that layer (one pass
/// over memory instead of two). Names and indices are unchanged, so state dicts match PyTorch.
public final class Sequential: Layer {
    public let children: [(name: String, layer: any Layer)]
    public var needsInputGradient = true {
        didSet { propagateInputGradientFlag() }
    }
    /// Called with a child's index once its backward has returned (its parameter gradients are
    /// final): data-parallel training starts reducing them while the rest of backward runs.
    package var afterChildBackward: ((Int) throws -> Void)?

    public init(_ layers: [any Layer]) {
        children = layers.enumerated().map { (String($0.offset), $0.element) }
    }
    public convenience init(_ layers: any Layer...) { self.init(layers) }
    public init(named: [(String, any Layer)]) {
        children = named.map { (name: $0.0, layer: $0.1) }
    }

    public var summary: String { "Sequential(\(children.count) layers)" }

    private func propagateInputGradientFlag() {
        // Only the first layer may skip its input gradient; later layers must pass it on.
        for (i, c) in children.enumerated() { c.layer.needsInputGradient = i == 0 ? needsInputGradient : true }
    }

    public func build(_ b: LayerBuilder, input: Shape) throws -> Shape {
        fuseActivations()
        fuseBatchNormBlocks()
        propagateInputGradientFlag()
        var shape = input
        for c in children { shape = try b.build(c.layer, named: c.name, input: shape) }
        return shape
    }

    /// Marks every ReLU that follows a fusable layer as fused into it.
    func fuseActivations() {
        for i in children.indices.dropFirst() {
            guard let relu = children[i].layer as? ReLU, let prev = children[i - 1].layer as? (any ActivationFusable) else { continue }
            prev.fusedActivation = .relu
            relu.fused = true
        }
    }

    public func forward(_ x: Tensor, _ ctx: ForwardContext) throws -> Tensor {
        var h = x
        for c in children { h = try c.layer.forward(h, ctx) }
        return h
    }

    public func backward(_ dy: Tensor) throws -> Tensor? {
        var g: Tensor? = dy
        for (i, c) in children.enumerated().reversed() {
            guard let cur = g else { break }
            g = try c.layer.backward(cur)
            try afterChildBackward?(i)
        }
        return g
    }

    /// Every layer in the tree, depth first, with its module path.
    /// With `shortcuts`, a residual block's projection shortcut layers follow its body's (they are
    /// not on the main path, so shape walks leave them out; state dicts need them).
    public func flattened(prefix: String = "", shortcuts: Bool = false) -> [(path: String, layer: any Layer)] {
        var out: [(String, any Layer)] = []
        for c in children {
            let p = prefix.isEmpty ? c.name : prefix + "." + c.name
            if let s = c.layer as? Sequential { out += s.flattened(prefix: p, shortcuts: shortcuts) } else if let r = c.layer as? Residual {
                out.append((p, r))
                out += r.body.flattened(prefix: p + ".body", shortcuts: shortcuts)
                if shortcuts, let sc = r.shortcut { out += sc.flattened(prefix: p + ".shortcut", shortcuts: true) }
            } else if let nested = c.layer as? any NestedLayers {
                out.append((p, c.layer))
                for (name, s) in nested.nestedSequentials(shortcuts: shortcuts) { out += s.flattened(prefix: p + "." + name, shortcuts: shortcuts) }
            } else { out.append((p, c.layer)) }
        }
        return out
    }
}

/// y = body(x) + shortcut(x) (shortcut = identity when nil): the residual block of ResNets.
/// State-dict names: `body.*`, `shortcut.*`.
public final class Residual: Layer {
    public let body: Sequential
    public let shortcut: Sequential?
    public var needsInputGradient = true
    private var backend: (any Backend)!
    private var yCache = TensorCache(), dxCache = TensorCache(), bodyDyCache = TensorCache()

    public init(_ body: Sequential, shortcut: Sequential? = nil) {
        self.body = body
        self.shortcut = shortcut
    }
    public var summary: String { "Residual" + (shortcut == nil ? "" : " (projection shortcut)") }

    public func build(_ b: LayerBuilder, input: Shape) throws -> Shape {
        backend = b.backend
        let out = try b.build(body, named: "body", input: input)
        let sc = try shortcut.map { try b.build($0, named: "shortcut", input: input) } ?? input
        try require(out == sc, "Residual at '\(b.path)': body gives \(out) but shortcut gives \(sc)")
        body.needsInputGradient = true
        shortcut?.needsInputGradient = true
        return out
    }

    public func forward(_ x: Tensor, _ ctx: ForwardContext) throws -> Tensor {
        let a = try body.forward(x, ctx)
        let s = try shortcut?.forward(x, ctx) ?? x
        let y = try yCache.tensor(a.shape, on: backend)
        try backend.add(a, s, y: y)
        return y
    }

    public func backward(_ dy: Tensor) throws -> Tensor? {
        // dy feeds two branches and a layer's backward may overwrite its dy: the body gets a copy.
        let bodyDy = try bodyDyCache.tensor(dy.shape, on: backend)
        try backend.copy(dy, to: bodyDy)
        let dBody = try body.backward(bodyDy)
        let dShort = try shortcut?.backward(dy) ?? dy
        guard needsInputGradient, let dBody else { return nil }
        let dx = try dxCache.tensor(dBody.shape, on: backend)
        try backend.add(dBody, dShort, y: dx)
        return dx
    }
}
