import CNNCore

/// Descriptors of the pooling and BatchNorm families.
extension OpDescriptor {
    /// Max pooling's argmax is data movement: bit-exact. `ties`: inputs on a coarse grid.
    package static func maxPool2DForward(_ g: Pool2DGeometry, ties: Bool = false) -> OpDescriptor {
        let x = Double(g.inputShape.count), y = Double(g.outputShape.count)
        return OpDescriptor(op: "maxPool2DForward", shape: g.description + (ties ? " ties" : ""), family: "pool",
                            bytes: 4 * (x + 2 * y)) { b, inp in
            let x = try b.tensor(ties ? inp.coarse(g.inputShape.count) : inp.uniform(g.inputShape.count), g.inputShape)
            let y = try b.junk(g.outputShape), am = try b.junkInts(g.outputShape)
            return PreparedOp(run: { try b.maxPool2DForward(x: x, y: y, argmax: am, geometry: g) },
                              outputs: { [try b.output("y", y, .exact), try b.output("argmax", am, .exact)] })
        }
    }

    /// The backward pass is bit-exact when windows do not overlap (each input gets at most one
    /// gradient); with overlap it sums (elementwise tolerance). The argmax comes from the same
    /// device's forward pass, as in training.
    package static func maxPool2DBackward(_ g: Pool2DGeometry, ties: Bool = false) -> OpDescriptor {
        let overlap = g.strideH < g.kernelH || g.strideW < g.kernelW
        let x = Double(g.inputShape.count), y = Double(g.outputShape.count)
        return OpDescriptor(op: "maxPool2DBackward", shape: g.description + (ties ? " ties" : ""), family: "pool",
                            bytes: 4 * (2 * y + x)) { b, inp in
            let x = try b.tensor(ties ? inp.coarse(g.inputShape.count) : inp.uniform(g.inputShape.count), g.inputShape)
            let y = try b.makeTensor(g.outputShape), am = try b.makeTensor(g.outputShape, dtype: .int32)
            try b.maxPool2DForward(x: x, y: y, argmax: am, geometry: g)
            let dy = try b.tensor(inp.uniform(g.outputShape.count), g.outputShape)
            let dx = try b.junk(g.inputShape)
            return PreparedOp(run: { try b.maxPool2DBackward(dy: dy, argmax: am, dx: dx, geometry: g) },
                              outputs: { [try b.output("dx", dx, overlap ? .elementwise : .exact)] })
        }
    }

    package static func avgPool2DForward(_ g: Pool2DGeometry) -> OpDescriptor {
        let x = Double(g.inputShape.count), y = Double(g.outputShape.count)
        return OpDescriptor(op: "avgPool2DForward", shape: g.description, family: "pool", bytes: 4 * (x + y)) { b, inp in
            let x = try b.tensor(inp.uniform(g.inputShape.count), g.inputShape)
            let y = try b.junk(g.outputShape)
            return PreparedOp(run: { try b.avgPool2DForward(x: x, y: y, geometry: g) },
                              outputs: { [try b.output("y", y, .reduction(length: g.kernelH * g.kernelW))] })
        }
    }

    package static func avgPool2DBackward(_ g: Pool2DGeometry) -> OpDescriptor {
        let x = Double(g.inputShape.count), y = Double(g.outputShape.count)
        return OpDescriptor(op: "avgPool2DBackward", shape: g.description, family: "pool", bytes: 4 * (y + x)) { b, inp in
            let dy = try b.tensor(inp.uniform(g.outputShape.count), g.outputShape)
            let dx = try b.junk(g.inputShape)
            return PreparedOp(run: { try b.avgPool2DBackward(dy: dy, dx: dx, geometry: g) },
                              outputs: { [try b.output("dx", dx, .reduction(length: g.kernelH * g.kernelW))] })
        }
    }

    static func batchNormName(_ shape: Shape, _ activation: Activation, _ offset: Float) -> String {
        "\(shape)" + (activation == .relu ? " relu" : "") + (offset != 0 ? " x+\(offset)" : "")
    }

    /// Training forward (y, saved statistics, running statistics) over x: `shape` = (N, C, *).
    /// `offset` shifts x (a large offset tests the variance's stability).
    package static func batchNormForwardTraining(_ shape: Shape, activation: Activation = .identity,
                                                offset: Float = 0) -> OpDescriptor {
        let c = shape[1], red = Tolerance.reduction(length: shape[0] * shape.spatialCount)
        return OpDescriptor(op: "batchNormForwardTraining", shape: batchNormName(shape, activation, offset), family: "batchnorm",
                            bytes: 4 * 2 * Double(shape.count)) { b, inp in
            let x = try b.tensor(inp.uniform(shape.count).map { $0 * 2 + offset }, shape)
            let gamma = try b.tensor(inp.uniform(c, 0.5, 1.5), [c]), beta = try b.tensor(inp.uniform(c), [c])
            let rm = try b.tensor(inp.uniform(c), [c]), rv = try b.tensor(inp.uniform(c, 0.5, 2), [c])
            let y = try b.junk(shape), sm = try b.junk([c]), si = try b.junk([c])
            return PreparedOp(run: {
                try b.batchNormForwardTraining(x: x, gamma: gamma, beta: beta, y: y, runningMean: rm, runningVar: rv,
                                               saveMean: sm, saveInvStd: si, momentum: 0.1, epsilon: 1e-5, activation: activation)
            }, outputs: {
                [try b.output("y", y, red), try b.output("saveMean", sm, red), try b.output("saveInvStd", si, red),
                 try b.output("runningMean", rm, red), try b.output("runningVar", rv, red)]
            })
        }
    }

    package static func batchNormForwardInference(_ shape: Shape, activation: Activation = .identity,
                                                 offset: Float = 0) -> OpDescriptor {
        let c = shape[1]
        return OpDescriptor(op: "batchNormForwardInference", shape: batchNormName(shape, activation, offset), family: "batchnorm",
                            bytes: 4 * 2 * Double(shape.count)) { b, inp in
            let x = try b.tensor(inp.uniform(shape.count).map { $0 * 2 + offset }, shape)
            let gamma = try b.tensor(inp.uniform(c, 0.5, 1.5), [c]), beta = try b.tensor(inp.uniform(c), [c])
            let rm = try b.tensor(inp.uniform(c).map { $0 + offset }, [c]), rv = try b.tensor(inp.uniform(c, 0.5, 2), [c])
            let y = try b.junk(shape)
            return PreparedOp(run: {
                try b.batchNormForwardInference(x: x, gamma: gamma, beta: beta, runningMean: rm, runningVar: rv, y: y,
                                                epsilon: 1e-5, activation: activation)
            }, outputs: { [try b.output("y", y, .transcendental)] })
        }
    }

    /// Backward over saved statistics from the same device's (identity) training forward pass, as in
    /// training; `activation` only names the case after the layer it belongs to.
    package static func batchNormBackward(_ shape: Shape, activation: Activation = .identity, offset: Float = 0) -> OpDescriptor {
        let c = shape[1], red = Tolerance.reduction(length: shape[0] * shape.spatialCount)
        return OpDescriptor(op: "batchNormBackward", shape: batchNormName(shape, activation, offset), family: "batchnorm",
                            bytes: 4 * 3 * Double(shape.count)) { b, inp in
            let x = try b.tensor(inp.uniform(shape.count).map { $0 * 2 + offset }, shape)
            let gamma = try b.tensor(inp.uniform(c, 0.5, 1.5), [c]), beta = try b.tensor(inp.uniform(c), [c])
            let rm = try b.makeTensor([c]), rv = try b.makeTensor([c]), y = try b.makeTensor(shape)
            let sm = try b.makeTensor([c]), si = try b.makeTensor([c])
            try b.batchNormForwardTraining(x: x, gamma: gamma, beta: beta, y: y, runningMean: rm, runningVar: rv,
                                           saveMean: sm, saveInvStd: si, momentum: 0.1, epsilon: 1e-5, activation: .identity)
            let dy = try b.tensor(inp.uniform(shape.count), shape)
            let dx = try b.junk(shape), dg = try b.junk([c]), db = try b.junk([c])
            return PreparedOp(run: {
                try b.batchNormBackward(x: x, dy: dy, gamma: gamma, saveMean: sm, saveInvStd: si, dx: dx, dGamma: dg, dBeta: db)
            }, outputs: { [try b.output("dx", dx, red), try b.output("dGamma", dg, red), try b.output("dBeta", db, red)] })
        }
    }
}
