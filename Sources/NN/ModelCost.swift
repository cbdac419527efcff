import CNNCore

/// What a network costs per image: multiply-accumulates of its convolutions and linear layers
/// (BatchNorm, activations, pooling and additions are not counted: they are a few percent at most),
/// found by walking the layer tree with the per-sample shapes.
package enum ModelCost {
    /// (forward MACs for one image, output shape) of `layer` on per-sample input `input`.
    package static func forwardMACs(_ layer: any Layer, input: Shape) throws -> (macs: Int, output: Shape) {
        func conv(_ cin: Int, _ cout: Int, _ k: Int, _ s: Int, _ p: Int, groups: Int) throws -> (Int, Shape) {
            try require(input.rank == 3, "\(layer.summary) expects (C, H, W), got \(input)")
            let g = Conv2DGeometry(batch: 1, inChannels: cin, height: input[1], width: input[2], outChannels: cout, kernel: k,
                                   stride: s, padding: p)
            try g.validate()
            return (cout * g.outHeight * g.outWidth * (cin / groups) * k * k, [cout, g.outHeight, g.outWidth])
        }
        switch layer {
        case let s as Sequential:
            var total = 0, shape = input
            for c in s.children {
                let (m, o) = try forwardMACs(c.layer, input: shape)
                total += m
                shape = o
            }
            return (total, shape)
        case let c as Conv2d: return try conv(c.inChannels, c.outChannels, c.kernel, c.stride, c.padding, groups: 1)
        case let c as GroupedConv2d: return try conv(c.inChannels, c.outChannels, c.kernel, c.stride, c.padding, groups: c.groups)
        case let l as Linear: return (l.inFeatures * l.outFeatures, [l.outFeatures])
        case let r as Residual:
            let (m, o) = try forwardMACs(r.body, input: input)
            return (m + (try r.shortcut.map { try forwardMACs($0, input: input).macs } ?? 0), o)
        case let r as InvertedResidual: return try forwardMACs(r.conv, input: input)
        case let u as ShuffleUnit:
            if let b1 = u.branch1 {
                let (m1, o1) = try forwardMACs(b1, input: input)
                let (m2, _) = try forwardMACs(u.branch2, input: input)
                return (m1 + m2, [2 * o1[0], o1[1], o1[2]])
            }
            let (m2, _) = try forwardMACs(u.branch2, input: [input[0] / 2, input[1], input[2]])
            return (m2, input)
        case let p as Pool2d:
            guard let k = p.kernel else { return (0, [input[0]]) }
            let g = Pool2DGeometry(batch: 1, channels: input[0], height: input[1], width: input[2], kernel: k, stride: p.stride,
                                   padding: p.padding)
            return (0, [input[0], g.outHeight, g.outWidth])
        case is Flatten: return (0, [input.count])
        default: return (0, input)   // shape-preserving: BatchNorm, activations, dropout, channel shuffle
        }
    }
}
