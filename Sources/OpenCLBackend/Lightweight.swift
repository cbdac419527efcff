import CNNCore

/// Launchers of Kernels/lightweight.cl: grouped / depthwise convolution, GELU, channel shuffle and
/// channel copy. 1-D launches, one work-item per output element. Grouped convolution with one group
/// is the dense convolution (im2col + CLBlast, Conv.swift).
extension OpenCLBackend {
    private func groupedArgs(_ g: Conv2DGeometry, groups: Int) -> [KernelArg] {
        [.int(g.inChannels), .int(g.height), .int(g.width), .int(g.outChannels), .int(g.kernelH), .int(g.kernelW),
         .int(g.strideH), .int(g.strideW), .int(g.padH), .int(g.padW), .int(g.outHeight), .int(g.outWidth),
         .int(g.inChannels / groups), .int(g.outChannels / groups)]
    }

    public func groupedConv2DForward(x: Tensor, weight: Tensor, bias: Tensor?, y: Tensor,
                                     geometry g: Conv2DGeometry, groups: Int, activation: Activation) throws {
        try Contract.groupedConv2DForward(x: x, weight: weight, bias: bias, y: y, g, groups: groups)
        if groups == 1 { return try conv2DForward(x: x, weight: weight, bias: bias, y: y, geometry: g, activation: activation) }
        let total = g.outputShape.count
        try launch1D(.lightweight, "groupedConvForward", count: total,
                     [.tensor(x), .tensor(weight), .optional(bias), .int(bias == nil ? 0 : 1), .tensor(y)] + groupedArgs(g, groups: groups)
                        + [.int(activation == .relu ? 1 : 0), .int(total)])
    }

    public func groupedConv2DBackwardData(dy: Tensor, weight: Tensor, dx: Tensor, geometry g: Conv2DGeometry, groups: Int) throws {
        try Contract.groupedConv2DBackwardData(dy: dy, weight: weight, dx: dx, g, groups: groups)
        if groups == 1 { return try conv2DBackwardData(dy: dy, weight: weight, dx: dx, geometry: g) }
        let total = g.inputShape.count
        try launch1D(.lightweight, "groupedConvBackwardData", count: total,
                     [.tensor(dy), .tensor(weight), .tensor(dx)] + groupedArgs(g, groups: groups) + [.int(total)])
    }

    public func groupedConv2DBackwardFilter(x: Tensor, dy: Tensor, dWeight: Tensor, dBias: Tensor?,
                                            geometry g: Conv2DGeometry, groups: Int) throws {
        try Contract.groupedConv2DBackwardFilter(x: x, dy: dy, dWeight: dWeight, dBias: dBias, g, groups: groups)
        if groups == 1 { return try conv2DBackwardFilter(x: x, dy: dy, dWeight: dWeight, dBias: dBias, geometry: g) }
        let total = dWeight.count
        try launch1D(.lightweight, "groupedConvBackwardFilter", count: total,
                     [.tensor(x), .tensor(dy), .tensor(dWeight), .int(g.batch)] + groupedArgs(g, groups: groups) + [.int(total)])
        if let dBias { try biasGrad(dy: dy, dBias: dBias) }
    }

    public func gelu(x: Tensor, y: Tensor) throws {
        try Contract.gelu(x: x, y: y)
        try launch1D(.lightweight, "gelu", count: x.count, [.tensor(x), .tensor(y), .int(x.count)])
    }

    public func geluBackward(x: Tensor, dy: Tensor, dx: Tensor) throws {
        try Contract.geluBackward(x: x, dy: dy, dx: dx)
        try launch1D(.lightweight, "geluBackward", count: dx.count, [.tensor(x), .tensor(dy), .tensor(dx), .int(dx.count)])
    }

    public func channelShuffle(x: Tensor, y: Tensor, groups: Int) throws {
        let (_, c, s) = try Contract.channelShuffle(x: x, y: y, groups: groups)
        try launch1D(.lightweight, "channelShuffle", count: x.count, [.tensor(x), .tensor(y), .int(c), .int(s), .int(groups), .int(x.count)])
    }

    public func copyChannels(src: Tensor, srcChannel: Int, dst: Tensor, dstChannel: Int, count: Int) throws {
        let (n, cs, cd, s) = try Contract.copyChannels(src: src, srcChannel: srcChannel, dst: dst, dstChannel: dstChannel, count: count)
        let total = n * count * s
        try launch1D(.lightweight, "copyChannels", count: total,
                     [.tensor(src), .tensor(dst), .int(cs), .int(srcChannel), .int(cd), .int(dstChannel), .int(count), .int(s), .int(total)])
    }
}
