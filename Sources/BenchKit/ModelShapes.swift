import SwiftCNN

/// The layer shapes of a zoo model at a batch size: what each primitive sees inside a training step.
/// Derived by walking the model's layers (so a change in `ModelZoo` changes the benchmark cases).
/// Sequential models only (cnn, optimized, speedrun, lite); residual nets give their forward MACs
/// where possible and no per-op cases.
package struct ModelShapes: Sendable {
    package struct Conv: Sendable {
        package var path: String
        package var geometry: Conv2DGeometry
        package var bias: Bool
        package var activation: Activation
        /// False for the first layer (its input gradient is never computed).
        package var needsInputGradient: Bool
    }
    package struct Pool: Sendable {
        package var path: String
        package var geometry: Pool2DGeometry
        package var isMax: Bool
    }
    package struct Norm: Sendable {
        package var path: String
        /// (N, C, H, W) or (N, F).
        package var shape: Shape
        package var activation: Activation
    }
    package struct Dense: Sendable {
        package var path: String
        package var batch: Int
        package var inFeatures: Int
        package var outFeatures: Int
        package var needsInputGradient: Bool
    }

    package var model: String
    package var batch: Int
    package var convs: [Conv] = []
    package var pools: [Pool] = []
    package var norms: [Norm] = []
    package var denses: [Dense] = []
    /// Multiply-accumulates of one image's forward pass (convolutions and linear layers).
    package var forwardMACsPerImage = 0
    /// Parameters (weights, biases, BatchNorm scale and shift).
    package var parameterCount = 0

    package static func of(_ model: String, batch: Int, inputShape: Shape = [3, 32, 32], classes: Int = 10) throws -> ModelShapes {
        let net = try ModelZoo.network(model, inputShape: inputShape, classes: classes)
        var out = ModelShapes(model: model, batch: batch)
        let layers = net.flattened()
        var shape = inputShape   // per sample
        var first = true
        for (i, entry) in layers.enumerated() {
            let path = "\(model).\(entry.path)"
            let nextIsReLU = i + 1 < layers.count && layers[i + 1].layer is ReLU
            let act: Activation = nextIsReLU ? .relu : .identity
            switch entry.layer {
            case let c as Conv2d:
                let g = Conv2DGeometry(batch: batch, inChannels: shape[0], height: shape[1], width: shape[2],
                                       outChannels: c.outChannels, kernel: c.kernel, stride: c.stride, padding: c.padding)
                try g.validate()
                out.convs.append(Conv(path: path, geometry: g, bias: c.hasBias, activation: act, needsInputGradient: !first))
                out.forwardMACsPerImage += g.forwardMACs / batch
                out.parameterCount += c.outChannels * c.inChannels * c.kernel * c.kernel + (c.hasBias ? c.outChannels : 0)
                shape = [g.outChannels, g.outHeight, g.outWidth]
                first = false
            case let p as Pool2d:
                let g = p.kernel.map {
                    Pool2DGeometry(batch: batch, channels: shape[0], height: shape[1], width: shape[2], kernel: $0,
                                   stride: p.stride, padding: p.padding)
                } ?? .global(batch: batch, channels: shape[0], height: shape[1], width: shape[2])
                out.pools.append(Pool(path: path, geometry: g, isMax: p.kind == .max))
                shape = p.isGlobal ? [shape[0]] : [shape[0], g.outHeight, g.outWidth]
            case let b as BatchNorm:
                out.norms.append(Norm(path: path, shape: Shape([batch] + shape.dims), activation: act))
                out.parameterCount += 2 * b.features
            case let l as Linear:
                out.denses.append(Dense(path: path, batch: batch, inFeatures: l.inFeatures, outFeatures: l.outFeatures,
                                        needsInputGradient: !first))
                out.forwardMACsPerImage += l.inFeatures * l.outFeatures
                out.parameterCount += l.inFeatures * l.outFeatures + (l.hasBias ? l.outFeatures : 0)
                shape = [l.outFeatures]
                first = false
            case is Flatten:
                shape = [shape.count]
            case is ReLU, is Dropout:
                break
            default:
                throw BenchError("model '\(model)': layer \(entry.path) (\(entry.layer.summary)) is not sequential; "
                                 + "per-op cases cover sequential models only")
            }
        }
        return out
    }
}
