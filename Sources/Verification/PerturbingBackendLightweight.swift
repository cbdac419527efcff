import CNNCore

/// PerturbingBackend's forwarding of the grouped convolution, GELU, channel shuffle and channel copy.
extension PerturbingBackend {
    package func groupedConv2DForward(x: Tensor, weight: Tensor, bias: Tensor?, y: Tensor, geometry g: Conv2DGeometry, groups: Int,
                                      activation: Activation) throws {
        try inner.groupedConv2DForward(x: x, weight: weight, bias: bias, y: y, geometry: g, groups: groups, activation: activation)
        try perturb("groupedConv2DForward", y)
    }
    package func groupedConv2DBackwardData(dy: Tensor, weight: Tensor, dx: Tensor, geometry g: Conv2DGeometry, groups: Int) throws {
        try inner.groupedConv2DBackwardData(dy: dy, weight: weight, dx: dx, geometry: g, groups: groups)
        try perturb("groupedConv2DBackwardData", dx)
    }
    package func groupedConv2DBackwardFilter(x: Tensor, dy: Tensor, dWeight: Tensor, dBias: Tensor?, geometry g: Conv2DGeometry,
                                             groups: Int) throws {
        try inner.groupedConv2DBackwardFilter(x: x, dy: dy, dWeight: dWeight, dBias: dBias, geometry: g, groups: groups)
        try perturb("groupedConv2DBackwardFilter", dWeight)
    }
    package func gelu(x: Tensor, y: Tensor) throws { try inner.gelu(x: x, y: y); try perturb("gelu", y) }
    package func geluBackward(x: Tensor, dy: Tensor, dx: Tensor) throws {
        try inner.geluBackward(x: x, dy: dy, dx: dx); try perturb("geluBackward", dx)
    }
    package func channelShuffle(x: Tensor, y: Tensor, groups: Int) throws {
        try inner.channelShuffle(x: x, y: y, groups: groups); try perturb("channelShuffle", y)
    }
    package func copyChannels(src: Tensor, srcChannel: Int, dst: Tensor, dstChannel: Int, count: Int) throws {
        try inner.copyChannels(src: src, srcChannel: srcChannel, dst: dst, dstChannel: dstChannel, count: count)
        try perturb("copyChannels", dst)
    }
}
