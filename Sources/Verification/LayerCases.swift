import CNNCore

/// Cases of the pooling and BatchNorm families.
extension VerifyCase {
    /// Max pooling's argmax is data movement: bit-exact. The backward pass is too when windows do
    /// not overlap (each input gets at most one gradient); with overlap it sums (elementwise tolerance).
    public static func maxPool2D(_ g: Pool2DGeometry, ties: Bool = false) -> [VerifyCase] {
        let name = g.description + (ties ? " ties" : "")
        let overlap = g.strideH < g.kernelH || g.strideW < g.kernelW
        let forward = VerifyCase(op: "maxPool2DForward", shape: name) { b in
            var inp = Inputs(seed("maxPool2DForward" + name))
            let x = try b.tensor(ties ? inp.coarse(g.inputShape.count) : inp.uniform(g.inputShape.count), g.inputShape)
            let y = try b.junk(g.outputShape), am = try b.junkInts(g.outputShape)
            try b.maxPool2DForward(x: x, y: y, argmax: am, geometry: g)
            return [try b.output("y", y, .exact), try b.output("argmax", am, .exact)]
        }
        let backward = VerifyCase(op: "maxPool2DBackward", shape: name) { b in
            var inp = Inputs(seed("maxPool2DBackward" + name))
            let x = try b.tensor(ties ? inp.coarse(g.inputShape.count) : inp.uniform(g.inputShape.count), g.inputShape)
            let y = try b.makeTensor(g.outputShape), am = try b.makeTensor(g.outputShape, dtype: .int32)
            try b.maxPool2DForward(x: x, y: y, argmax: am, geometry: g)
            let dy = try b.tensor(inp.uniform(g.outputShape.count), g.outputShape)
            let dx = try b.junk(g.inputShape)
            try b.maxPool2DBackward(dy: dy, argmax: am, dx: dx, geometry: g)
            return [try b.output("dx", dx, overlap ? .elementwise : .exact)]
        }
        return [forward, backward]
    }

    public static func avgPool2D(_ g: Pool2DGeometry) -> [VerifyCase] {
        let area = g.kernelH * g.kernelW
        let forward = VerifyCase(op: "avgPool2DForward", shape: g.description) { b in
            var inp = Inputs(seed("avgPool2DForward" + g.description))
            let x = try b.tensor(inp.uniform(g.inputShape.count), g.inputShape)
            let y = try b.junk(g.outputShape)
            try b.avgPool2DForward(x: x, y: y, geometry: g)
            return [try b.output("y", y, .reduction(length: area))]
        }
        let backward = VerifyCase(op: "avgPool2DBackward", shape: g.description) { b in
            var inp = Inputs(seed("avgPool2DBackward" + g.description))
            let dy = try b.tensor(inp.uniform(g.outputShape.count), g.outputShape)
            let dx = try b.junk(g.inputShape)
            try b.avgPool2DBackward(dy: dy, dx: dx, geometry: g)
            return [try b.output("dx", dx, .reduction(length: area))]
        }
        return [forward, backward]
    }

    /// Training forward (y, saved statistics, running statistics), inference forward and backward
    /// over x: `shape` = (N, C, *). `offset` shifts x (a large offset tests the variance's stability).
    public static func batchNorm(_ shape: Shape, activation: Activation = .identity, offset: Float = 0) -> [VerifyCase] {
        let c = shape[1], m = shape[0] * shape.spatialCount
        let name = "\(shape)" + (activation == .relu ? " relu" : "") + (offset != 0 ? " x+\(offset)" : "")
        let red = Tolerance.reduction(length: m)
        let training = VerifyCase(op: "batchNormForwardTraining", shape: name) { b in
            var inp = Inputs(seed("batchNormForwardTraining" + name))
            let x = try b.tensor(inp.uniform(shape.count).map { $0 * 2 + offset }, shape)
            let gamma = try b.tensor(inp.uniform(c, 0.5, 1.5), [c]), beta = try b.tensor(inp.uniform(c), [c])
            let rm = try b.tensor(inp.uniform(c), [c]), rv = try b.tensor(inp.uniform(c, 0.5, 2), [c])
            let y = try b.junk(shape), sm = try b.junk([c]), si = try b.junk([c])
            try b.batchNormForwardTraining(x: x, gamma: gamma, beta: beta, y: y, runningMean: rm, runningVar: rv,
                                           saveMean: sm, saveInvStd: si, momentum: 0.1, epsilon: 1e-5, activation: activation)
            return [try b.output("y", y, red), try b.output("saveMean", sm, red), try b.output("saveInvStd", si, red),
                    try b.output("runningMean", rm, red), try b.output("runningVar", rv, red)]
        }
        let inference = VerifyCase(op: "batchNormForwardInference", shape: name) { b in
            var inp = Inputs(seed("batchNormForwardInference" + name))
            let x = try b.tensor(inp.uniform(shape.count).map { $0 * 2 + offset }, shape)
            let gamma = try b.tensor(inp.uniform(c, 0.5, 1.5), [c]), beta = try b.tensor(inp.uniform(c), [c])
            let rm = try b.tensor(inp.uniform(c).map { $0 + offset }, [c]), rv = try b.tensor(inp.uniform(c, 0.5, 2), [c])
            let y = try b.junk(shape)
            try b.batchNormForwardInference(x: x, gamma: gamma, beta: beta, runningMean: rm, runningVar: rv, y: y,
                                            epsilon: 1e-5, activation: activation)
            return [try b.output("y", y, .transcendental)]
        }
        let backward = VerifyCase(op: "batchNormBackward", shape: name) { b in
            var inp = Inputs(seed("batchNormBackward" + name))
            let x = try b.tensor(inp.uniform(shape.count).map { $0 * 2 + offset }, shape)
            let gamma = try b.tensor(inp.uniform(c, 0.5, 1.5), [c]), beta = try b.tensor(inp.uniform(c), [c])
            let rm = try b.makeTensor([c]), rv = try b.makeTensor([c]), y = try b.makeTensor(shape)
            let sm = try b.makeTensor([c]), si = try b.makeTensor([c])
            // Saved statistics from the same device's forward pass, as in training.
            try b.batchNormForwardTraining(x: x, gamma: gamma, beta: beta, y: y, runningMean: rm, runningVar: rv,
                                           saveMean: sm, saveInvStd: si, momentum: 0.1, epsilon: 1e-5, activation: .identity)
            let dy = try b.tensor(inp.uniform(shape.count), shape)
            let dx = try b.junk(shape), dg = try b.junk([c]), db = try b.junk([c])
            try b.batchNormBackward(x: x, dy: dy, gamma: gamma, saveMean: sm, saveInvStd: si, dx: dx, dGamma: dg, dBeta: db)
            return [try b.output("dx", dx, red), try b.output("dGamma", dg, red), try b.output("dBeta", db, red)]
        }
        return [training, inference, backward]
    }
}
