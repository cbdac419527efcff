import CNNCore

/// Descriptors of the grouped / depthwise convolution, GELU, channel shuffle and channel copy
/// (the primitives of `mobilenetv2`, `shufflenetv2` and `fast`).
extension OpDescriptor {
    static func groupedName(_ g: Conv2DGeometry, groups: Int, _ extra: String = "") -> String {
        convName(g, " groups \(groups)" + extra)
    }

    /// Multiply-accumulates of the grouped forward pass (also those of each backward pass).
    static func groupedMACs(_ g: Conv2DGeometry, groups: Int) -> Double {
        Double(g.batch) * Double(g.outChannels * g.outHeight * g.outWidth) * Double(g.inChannels / groups * g.kernelH * g.kernelW)
    }

    static func grouped(_ op: String, _ g: Conv2DGeometry, groups: Int, _ shape: String, rebatch: @escaping @Sendable (Int) -> OpDescriptor,
                        setup: @escaping @Sendable (any Backend, inout Inputs) throws -> PreparedOp) -> OpDescriptor {
        let macs = groupedMACs(g, groups: groups)
        let w = Contract.groupedWeightShape(g, groups: groups)
        let bytes = 4 * Double(g.inputShape.count + w.count + g.outputShape.count)
        return OpDescriptor(op: op, shape: shape, family: "conv", flops: 2 * macs, bytes: bytes, referenceMACs: macs,
                            batch: g.batch, rebatch: rebatch, setup: setup)
    }

    package static func groupedConv2DForward(_ g: Conv2DGeometry, groups: Int, bias: Bool = true,
                                             activation: Activation = .identity) -> OpDescriptor {
        let shape = groupedName(g, groups: groups, (bias ? "" : " no bias") + (activation == .relu ? " relu" : ""))
        let ws = Contract.groupedWeightShape(g, groups: groups)
        return grouped("groupedConv2DForward", g, groups: groups, shape, rebatch: {
            groupedConv2DForward(g.withBatch($0), groups: groups, bias: bias, activation: activation)
        }) { b, inp in
            let x = try b.tensor(inp.uniform(g.inputShape.count), g.inputShape), w = try b.tensor(inp.uniform(ws.count), ws)
            let bs = bias ? try b.tensor(inp.uniform(g.outChannels), [g.outChannels]) : nil
            let y = try b.junk(g.outputShape)
            return PreparedOp(run: {
                try b.groupedConv2DForward(x: x, weight: w, bias: bs, y: y, geometry: g, groups: groups, activation: activation)
            }, outputs: { [try b.output("y", y, .gemm)] })
        }
    }

    package static func groupedConv2DBackwardData(_ g: Conv2DGeometry, groups: Int) -> OpDescriptor {
        let ws = Contract.groupedWeightShape(g, groups: groups)
        return grouped("groupedConv2DBackwardData", g, groups: groups, groupedName(g, groups: groups), rebatch: {
            groupedConv2DBackwardData(g.withBatch($0), groups: groups)
        }) { b, inp in
            let dy = try b.tensor(inp.uniform(g.outputShape.count), g.outputShape), w = try b.tensor(inp.uniform(ws.count), ws)
            let dx = try b.junk(g.inputShape)
            return PreparedOp(run: { try b.groupedConv2DBackwardData(dy: dy, weight: w, dx: dx, geometry: g, groups: groups) },
                              outputs: { [try b.output("dx", dx, .gemm)] })
        }
    }

    package static func groupedConv2DBackwardFilter(_ g: Conv2DGeometry, groups: Int, bias: Bool = true) -> OpDescriptor {
        let ws = Contract.groupedWeightShape(g, groups: groups)
        return grouped("groupedConv2DBackwardFilter", g, groups: groups, groupedName(g, groups: groups, bias ? "" : " no bias"), rebatch: {
            groupedConv2DBackwardFilter(g.withBatch($0), groups: groups, bias: bias)
        }) { b, inp in
            let x = try b.tensor(inp.uniform(g.inputShape.count), g.inputShape)
            let dy = try b.tensor(inp.uniform(g.outputShape.count), g.outputShape)
            let dw = try b.junk(ws)
            let db = bias ? try b.junk([g.outChannels]) : nil
            let biasTolerance = Tolerance.reduction(length: g.batch * g.outHeight * g.outWidth)
            return PreparedOp(run: {
                try b.groupedConv2DBackwardFilter(x: x, dy: dy, dWeight: dw, dBias: db, geometry: g, groups: groups)
            }, outputs: {
                var outs = [try b.output("dWeight", dw, .gemm)]
                if let db { outs.append(try b.output("dBias", db, biasTolerance)) }
                return outs
            })
        }
    }

    /// The three grouped-convolution primitives on one geometry.
    package static func groupedConvolutionFamily(_ g: Conv2DGeometry, groups: Int, activation: Activation = .identity) -> [OpDescriptor] {
        [groupedConv2DForward(g, groups: groups, activation: activation), groupedConv2DBackwardData(g, groups: groups),
         groupedConv2DBackwardFilter(g, groups: groups)]
    }

    /// gelu and geluBackward over `count` elements (inputs in [-4, 4]: both tails and the bend).
    package static func gelu(count n: Int) -> [OpDescriptor] {
        [OpDescriptor(op: "gelu", shape: "n\(n)", family: "elementwise", bytes: 4 * 2 * Double(n)) { b, inp in
            let x = try b.tensor(inp.uniform(n, -4, 4), [n])
            let y = try b.junk([n])
            return PreparedOp(run: { try b.gelu(x: x, y: y) }, outputs: { [try b.output("y", y, .transcendental)] })
        },
         OpDescriptor(op: "geluBackward", shape: "n\(n)", family: "elementwise", bytes: 4 * 3 * Double(n)) { b, inp in
            let x = try b.tensor(inp.uniform(n, -4, 4), [n]), dy = try b.tensor(inp.uniform(n), [n])
            let dx = try b.junk([n])
            return PreparedOp(run: { try b.geluBackward(x: x, dy: dy, dx: dx) }, outputs: { [try b.output("dx", dx, .transcendental)] })
        }]
    }

    /// channelShuffle of an (N, C, *) tensor.
    package static func channelShuffle(_ shape: Shape, groups: Int) -> OpDescriptor {
        OpDescriptor(op: "channelShuffle", shape: "\(shape) groups \(groups)", family: "elementwise", bytes: 4 * 2 * Double(shape.count)) { b, inp in
            let x = try b.tensor(inp.uniform(shape.count), shape)
            let y = try b.junk(shape)
            return PreparedOp(run: { try b.channelShuffle(x: x, y: y, groups: groups) }, outputs: { [try b.output("y", y, .exact)] })
        }
    }

    /// copyChannels of `count` channels from src (N, cs, *spatial) at `from` into dst (N, cd, *spatial) at `to`
    /// (dst's other channels keep their values: checked too).
    package static func copyChannels(batch n: Int, spatial: [Int], src cs: Int, from: Int, dst cd: Int, to: Int, count: Int) -> OpDescriptor {
        let ss = Shape([n, cs] + spatial), ds = Shape([n, cd] + spatial)
        return OpDescriptor(op: "copyChannels", shape: "\(ss)[\(from)..<\(from + count)] -> \(ds)[\(to)...]", family: "elementwise",
                            bytes: 4 * 2 * Double(n * count * ds.spatialCount)) { b, inp in
            let src = try b.tensor(inp.uniform(ss.count), ss)
            let dst = try b.tensor(inp.uniform(ds.count), ds)
            return PreparedOp(run: { try b.copyChannels(src: src, srcChannel: from, dst: dst, dstChannel: to, count: count) },
                              outputs: { [try b.output("dst", dst, .exact)] })
        }
    }
}

extension VerifySuite {
    /// Grouped and depthwise convolutions (odd sizes, strides, one and several channels per group),
    /// GELU, channel shuffle and channel copy; with a batch, the depthwise layers of `mobilenetv2`.
    package static func lightweightOps(modelBatch b: Int? = nil) -> [OpDescriptor] {
        var ops = OpDescriptor.groupedConvolutionFamily(conv(2, 6, 7, 9, 6, k: 3, p: 1), groups: 6)              // depthwise
        ops += OpDescriptor.groupedConvolutionFamily(conv(2, 4, 9, 8, 4, k: 3, s: 2, p: 1), groups: 4, activation: .relu)
        ops += OpDescriptor.groupedConvolutionFamily(
            Conv2DGeometry(batch: 3, inChannels: 6, height: 8, width: 7, outChannels: 9, kernelH: 3, kernelW: 2,
                           strideH: 1, strideW: 2, padH: 1, padW: 0), groups: 3)                                  // 2 in, 3 out per group
        ops += OpDescriptor.groupedConvolutionFamily(conv(1, 4, 5, 5, 8, k: 1), groups: 1)                       // one group: dense path
        ops += [.groupedConv2DForward(conv(2, 5, 6, 6, 10, k: 3, p: 1), groups: 5, bias: false),
                .groupedConv2DBackwardFilter(conv(2, 5, 6, 6, 10, k: 3, p: 1), groups: 5, bias: false)]
        ops += OpDescriptor.gelu(count: 1) + OpDescriptor.gelu(count: 4099)
        ops += [.channelShuffle([2, 6, 3, 5], groups: 2), .channelShuffle([3, 12, 1, 1], groups: 3), .channelShuffle([1, 5, 2, 2], groups: 5),
                .copyChannels(batch: 2, spatial: [3, 5], src: 8, from: 4, dst: 4, to: 0, count: 4),
                .copyChannels(batch: 3, spatial: [2, 2], src: 3, from: 0, dst: 7, to: 4, count: 3)]
        if let b {
            ops += OpDescriptor.groupedConvolutionFamily(conv(b, 96, 16, 16, 96, k: 3, s: 2, p: 1), groups: 96)
            ops += OpDescriptor.groupedConvolutionFamily(conv(b, 192, 8, 8, 192, k: 3, p: 1), groups: 192)
            ops += OpDescriptor.gelu(count: b * 64 * 32 * 32)
        }
        return ops
    }
}
