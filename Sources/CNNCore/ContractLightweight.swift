/// Argument checks of the grouped convolution, GELU, channel shuffle and channel copy primitives
/// (see `Contract`; every backend calls them before any work).
extension Contract {
    /// The weight shape of a grouped convolution: (Cout, Cin / groups, KH, KW).
    package static func groupedWeightShape(_ g: Conv2DGeometry, groups: Int) -> Shape {
        [g.outChannels, g.inChannels / max(groups, 1), g.kernelH, g.kernelW]
    }

    static func grouped(_ g: Conv2DGeometry, groups: Int, x: Tensor?, weight: Tensor?, bias: Tensor?, y: Tensor?, op: String) throws {
        try g.validate()
        try require(groups > 0, "\(op): groups must be positive, got \(groups)")
        try require(g.inChannels % groups == 0 && g.outChannels % groups == 0,
                    "\(op): groups = \(groups) must divide both the input channels (\(g.inChannels)) and the output channels (\(g.outChannels))")
        if let x { try Check.dtype(x, .float32, "x", op); try Check.shape(x, g.inputShape, "x", op) }
        if let weight {
            try Check.dtype(weight, .float32, "weight", op)
            try Check.shape(weight, groupedWeightShape(g, groups: groups), "weight", op)
        }
        if let bias { try Check.dtype(bias, .float32, "bias", op); try Check.count(bias, g.outChannels, "bias", op) }
        if let y { try Check.dtype(y, .float32, "y", op); try Check.shape(y, g.outputShape, "y", op) }
    }

    package static func groupedConv2DForward(x: Tensor, weight: Tensor, bias: Tensor?, y: Tensor, _ g: Conv2DGeometry, groups: Int) throws {
        let op = "groupedConv2DForward"
        try grouped(g, groups: groups, x: x, weight: weight, bias: bias, y: y, op: op)
        try disjoint(y, "y", from: [(x, "x"), (weight, "weight"), (bias, "bias")], op)
    }

    package static func groupedConv2DBackwardData(dy: Tensor, weight: Tensor, dx: Tensor, _ g: Conv2DGeometry, groups: Int) throws {
        let op = "groupedConv2DBackwardData"
        try grouped(g, groups: groups, x: nil, weight: weight, bias: nil, y: nil, op: op)
        try Check.float([(dy, "dy"), (dx, "dx")], op)
        try Check.shape(dy, g.outputShape, "dy", op)
        try Check.shape(dx, g.inputShape, "dx", op)
        try disjoint(dx, "dx", from: [(dy, "dy"), (weight, "weight")], op)
    }

    package static func groupedConv2DBackwardFilter(x: Tensor, dy: Tensor, dWeight: Tensor, dBias: Tensor?, _ g: Conv2DGeometry,
                                                    groups: Int) throws {
        let op = "groupedConv2DBackwardFilter"
        try grouped(g, groups: groups, x: x, weight: nil, bias: nil, y: nil, op: op)
        try Check.float([(dy, "dy"), (dWeight, "dWeight")], op)
        try Check.shape(dy, g.outputShape, "dy", op)
        try Check.shape(dWeight, groupedWeightShape(g, groups: groups), "dWeight", op)
        try disjoint(dWeight, "dWeight", from: [(x, "x"), (dy, "dy"), (dBias, "dBias")], op)
        if let dBias {
            try Check.dtype(dBias, .float32, "dBias", op)
            try Check.count(dBias, g.outChannels, "dBias", op)
            try disjoint(dBias, "dBias", from: [(x, "x"), (dy, "dy")], op)
        }
    }

    package static func gelu(x: Tensor, y: Tensor) throws {
        try unary(x, "x", y, "y", op: "gelu")
    }

    /// dx may be dy (in place) but not x.
    package static func geluBackward(x: Tensor, dy: Tensor, dx: Tensor) throws {
        let op = "geluBackward"
        try unary(dy, "dy", dx, "dx", op: op)
        try Check.dtype(x, .float32, "x", op)
        try Check.shape(x, dy.shape, "x", op)
        try disjoint(dx, "dx", from: [(x, "x")], op)
    }

    /// (N, C, S) of x.
    package static func channelShuffle(x: Tensor, y: Tensor, groups: Int) throws -> (n: Int, c: Int, s: Int) {
        let op = "channelShuffle"
        try Check.float([(x, "x"), (y, "y")], op)
        let (n, c, s) = try channels(x, "x", op)
        try Check.shape(y, x.shape, "y", op)
        try require(groups > 0 && c % groups == 0,
                    "\(op): groups = \(groups) must be positive and divide the \(c) channels of x \(x.shape)")
        try disjoint(y, "y", from: [(x, "x")], op)
        return (n, c, s)
    }

    /// (N, Cs, Cd, S).
    package static func copyChannels(src: Tensor, srcChannel: Int, dst: Tensor, dstChannel: Int,
                                     count: Int) throws -> (n: Int, cs: Int, cd: Int, s: Int) {
        let op = "copyChannels"
        try Check.float([(src, "src"), (dst, "dst")], op)
        let (n, cs, s) = try channels(src, "src", op)
        let (nd, cd, sd) = try channels(dst, "dst", op)
        try require(n == nd && s == sd && Array(src.shape.dims.dropFirst(2)) == Array(dst.shape.dims.dropFirst(2)),
                    "\(op): src \(src.shape) and dst \(dst.shape) must have the same batch and spatial sizes")
        try require(count >= 0 && srcChannel >= 0 && srcChannel + count <= cs,
                    "\(op): channels \(srcChannel)..<\(srcChannel + count) are outside src's \(cs) channels")
        try require(dstChannel >= 0 && dstChannel + count <= cd,
                    "\(op): channels \(dstChannel)..<\(dstChannel + count) are outside dst's \(cd) channels")
        try disjoint(dst, "dst", from: [(src, "src")], op)
        return (n, cs, cd, s)
    }
}
