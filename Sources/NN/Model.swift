import Foundation
import CNNCore

/// One value of a model's state dict: a float tensor, or an int64 tensor (BatchNorm's
/// `num_batches_tracked`, a 0-d tensor in PyTorch).
public enum StateValue: Equatable, Sendable {
    case float(HostTensor)
    case int64(shape: Shape, values: [Int64])
}

/// A network on a device, ready to train: every parameter lives in one flat buffer (and every
/// gradient in another), so an optimizer step is one launch over all of them.
public final class Model {
    public let name: String
    public let network: Sequential
    public let backend: any Backend
    /// Per-sample input shape, e.g. (3, 32, 32).
    public let inputShape: Shape
    /// Per-sample output shape, e.g. (10).
    public let outputShape: Shape
    /// PyTorch state-dict names in registration order.
    public let parameters: [(name: String, parameter: Parameter)]
    public let buffers: [(name: String, buffer: StateBuffer)]
    /// All parameters, flat: (parameterCount).
    public let flatParameters: Tensor
    /// All gradients, flat: (parameterCount), in the same order.
    public let flatGradients: Tensor

    public var parameterCount: Int { flatParameters.count }
    public var numClasses: Int { outputShape.count }

    /// Builds `network` for per-sample inputs of `inputShape` on `backend`, initialising
    /// parameters as PyTorch does, from `seed`.
    public init(name: String, network: Sequential, inputShape: Shape, backend: any Backend, seed: UInt64) throws {
        self.name = name
        self.network = network
        self.backend = backend
        self.inputShape = inputShape
        let builder = LayerBuilder(backend: backend)
        network.needsInputGradient = false
        outputShape = try network.build(builder, input: inputShape)
        parameters = builder.parameters.map { (name: $0.0, parameter: $0.1) }
        buffers = builder.buffers.map { (name: $0.0, buffer: $0.1) }

        let total = max(parameters.reduce(0) { $0 + $1.parameter.shape.count }, 1)
        flatParameters = try backend.makeTensor([total])
        flatGradients = try backend.makeTensor([total])
        var rng = SeededRNG(seed: seed)
        var initial = [Float](repeating: 0, count: total)
        var offset = 0
        for (_, p) in parameters {
            let n = p.shape.count
            p.flatOffset = offset
            p.value = flatParameters.view(elementOffset: offset, shape: p.shape)
            p.grad = flatGradients.view(elementOffset: offset, shape: p.shape)
            initial.replaceSubrange(offset..<offset + n, with: p.initializer.values(count: n, rng: &rng))
            offset += n
        }
        try backend.write(initial, to: flatParameters)
        for (_, b) in buffers {
            b.value = try backend.makeTensor(b.shape)
            if b.initial != 0 { try backend.fill(b.value, value: b.initial) }
        }
    }

    /// Logits (N, K) for a batch x (N, C, H, W). Training mode keeps activations for `backward`;
    /// `seed` drives dropout masks (use a different one each step).
    public func forward(_ x: Tensor, training: Bool, seed: UInt64 = 0) throws -> Tensor {
        try require(x.shape.rank >= 1 && perSampleShape(x.shape) == inputShape,
                    "model '\(name)' expects input (N, \(inputShape.dims.map(String.init).joined(separator: ", "))), got \(x.shape)")
        return try network.forward(x, ForwardContext(training: training, seed: seed))
    }

    /// Back-propagates dL/dlogits, overwriting every parameter gradient.
    public func backward(_ dLogits: Tensor) throws {
        _ = try network.backward(dLogits)
    }

    /// Every BatchNorm layer with its module path, residual shortcuts included.
    public var batchNormLayers: [(path: String, layer: BatchNorm)] {
        network.flattened(shortcuts: true).compactMap { e in (e.layer as? BatchNorm).map { (e.path, $0) } }
    }

    /// The PyTorch-compatible state dict: parameters, running statistics and `num_batches_tracked`.
    public func stateDict() throws -> [(String, StateValue)] {
        var out: [(String, StateValue)] = []
        var byName: [String: StateValue] = [:]
        for (n, p) in parameters { byName[n] = .float(try backend.host(p.value)) }
        for (n, b) in buffers { byName[n] = .float(try backend.host(b.value)) }
        for (path, bn) in batchNormLayers {
            byName[path + ".num_batches_tracked"] = .int64(shape: [], values: [Int64(bn.batchesTracked)])
        }
        // Order as PyTorch: per module, parameters then buffers; approximate with registration order.
        for n in stateDictNames where byName[n] != nil { out.append((n, byName[n]!)) }
        return out
    }

    /// Names of the state dict in PyTorch's order.
    public var stateDictNames: [String] {
        var names: [String] = []
        var seen = Set<String>()
        var entries = parameters.map { ($0.name, 0) } + buffers.map { ($0.name, 1) }
        entries += batchNormLayers.map { ($0.path + ".num_batches_tracked", 2) }
        // Group by module path, keep first-seen module order.
        var modules: [String] = []
        for (n, _) in entries {
            let m = n.split(separator: ".").dropLast().joined(separator: ".")
            if !seen.contains(m) { seen.insert(m); modules.append(m) }
        }
        for m in modules {
            for kind in 0...2 {
                for (n, k) in entries where k == kind && n.split(separator: ".").dropLast().joined(separator: ".") == m {
                    names.append(n)
                }
            }
        }
        return names
    }

    /// Loads a state dict: every parameter and buffer must be present with the right shape
    /// (extra entries are an error too, naming them), as PyTorch's strict loading.
    public func load(stateDict: [(String, StateValue)], source: String = "state dict") throws {
        var dict: [String: StateValue] = [:]
        for (k, v) in stateDict { dict[k] = v }
        var used = Set<String>()
        func floats(_ name: String, _ shape: Shape) throws -> [Float] {
            guard let v = dict[name] else { throw CNNError.invalidData("\(source): missing tensor '\(name)' \(shape) for model '\(self.name)'") }
            guard case .float(let t) = v else { throw CNNError.invalidData("\(source): tensor '\(name)' should be float32") }
            guard t.shape.count == shape.count else {
                throw CNNError.invalidData("\(source): tensor '\(name)' has shape \(t.shape), model '\(self.name)' needs \(shape)")
            }
            used.insert(name)
            return t.values
        }
        for (n, p) in parameters { try backend.write(try floats(n, p.shape), to: p.value) }
        for (n, b) in buffers { try backend.write(try floats(n, b.shape), to: b.value) }
        for (path, bn) in batchNormLayers {
            let key = path + ".num_batches_tracked"
            if case .int64(_, let v)? = dict[key], let c = v.first { bn.batchesTracked = Int(c); used.insert(key) }
        }
        let extra = dict.keys.filter { !used.contains($0) }.sorted()
        if !extra.isEmpty {
            throw CNNError.invalidData("\(source): unexpected tensors for model '\(name)': \(extra.prefix(8).joined(separator: ", "))"
                                       + (extra.count > 8 ? " (+\(extra.count - 8) more)" : "") + " — is this a checkpoint of another model?")
        }
    }

    /// A table of layers, output shapes and parameter counts.
    public func summary(batch: Int = 1) -> String {
        var lines = ["Model '\(name)': input \(inputShape) -> \(outputShape), \(parameterCount) parameters"]
        for (path, layer) in network.flattened(shortcuts: true) where !(layer is Residual) {
            lines.append("  \(path.padding(toLength: 12, withPad: " ", startingAt: 0)) \(layer.summary)")
        }
        return lines.joined(separator: "\n")
    }
}
