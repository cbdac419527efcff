import CNNCore

/// Descriptors of the fused BatchNorm block (BatchNorm + ReLU + dropout + max pooling, and its
/// backward chain with the bias gradient of the layer before).
///
/// Inputs are on a coarse grid (multiples of 1/4, scaled): distinct values stay far apart after
/// the normalisation, so the window maximum and its argmax are the same on every device (only
/// exact ties occur, and every device keeps the first); the float outputs carry BatchNorm's
/// reduction tolerance over the channel's N*S values.
extension OpDescriptor {
    static func blockInput(_ inp: inout Inputs, _ shape: Shape) -> [Float] { inp.coarse(shape.count).map { $0 * 2 + 0.5 } }

    package static func batchNormBlockForwardTraining(_ shape: Shape, tail: BatchNormTail) -> OpDescriptor {
        let c = shape[1], red = Tolerance.reduction(length: shape[0] * shape.spatialCount)
        let out = tail.outputShape(shape)
        let bytes = 4 * Double(shape.count + out.count * (tail.pool == nil ? 1 : 2))
        return OpDescriptor(op: "batchNormBlockForwardTraining", shape: "\(shape) \(tail)", family: "batchnorm", bytes: bytes,
                            batch: shape[0], rebatch: { n in
                                var s = shape.dims, t = tail
                                s[0] = n
                                t.pool?.batch = n
                                return .batchNormBlockForwardTraining(Shape(s), tail: t)
                            }) { b, inp in
            let x = try b.tensor(blockInput(&inp, shape), shape)
            let gamma = try b.tensor(inp.uniform(c, 0.5, 1.5), [c]), beta = try b.tensor(inp.uniform(c), [c])
            let rm = try b.tensor(inp.uniform(c), [c]), rv = try b.tensor(inp.uniform(c, 0.5, 2), [c])
            let y = try b.junk(out), sm = try b.junk([c]), si = try b.junk([c])
            let am = try tail.pool.map { try b.junkInts($0.outputShape) }
            return PreparedOp(run: {
                try b.batchNormBlockForwardTraining(x: x, gamma: gamma, beta: beta, y: y, argmax: am, runningMean: rm, runningVar: rv,
                                                    saveMean: sm, saveInvStd: si, momentum: 0.1, epsilon: 1e-5, tail: tail)
            }, outputs: {
                var o = [try b.output("y", y, red), try b.output("saveMean", sm, red), try b.output("saveInvStd", si, red),
                         try b.output("runningMean", rm, red), try b.output("runningVar", rv, red)]
                if let am { o.append(try b.output("argmax", am, .exact)) }
                return o
            })
        }
    }

    /// Backward over the statistics and argmax of the same device's fused forward, as in training.
    /// With `bias`, the bias gradient is compared together with dx ("dx|dBias", one tolerance from
    /// dx's scale): it is the sum of dx over the channel, zero in exact arithmetic after a
    /// BatchNorm, so on its own it is rounding noise with no scale of its own.
    package static func batchNormBlockBackward(_ shape: Shape, tail: BatchNormTail, bias: Bool) -> OpDescriptor {
        let c = shape[1], red = Tolerance.reduction(length: shape[0] * shape.spatialCount)
        let out = tail.outputShape(shape)
        let bytes = 4 * Double(3 * shape.count + out.count * (tail.pool == nil ? 1 : 2))
        return OpDescriptor(op: "batchNormBlockBackward", shape: "\(shape) \(tail)" + (bias ? " dBias" : ""), family: "batchnorm",
                            bytes: bytes, batch: shape[0], rebatch: { n in
                                var s = shape.dims, t = tail
                                s[0] = n
                                t.pool?.batch = n
                                return .batchNormBlockBackward(Shape(s), tail: t, bias: bias)
                            }) { b, inp in
            let x = try b.tensor(blockInput(&inp, shape), shape)
            let gamma = try b.tensor(inp.uniform(c, 0.5, 1.5), [c]), beta = try b.tensor(inp.uniform(c), [c])
            let rm = try b.makeTensor([c]), rv = try b.makeTensor([c]), y = try b.makeTensor(out)
            let sm = try b.makeTensor([c]), si = try b.makeTensor([c])
            let am = try tail.pool.map { try b.makeTensor($0.outputShape, dtype: .int32) }
            try b.batchNormBlockForwardTraining(x: x, gamma: gamma, beta: beta, y: y, argmax: am, runningMean: rm, runningVar: rv,
                                                saveMean: sm, saveInvStd: si, momentum: 0.1, epsilon: 1e-5, tail: tail)
            let dy = try b.tensor(inp.uniform(out.count), out)
            let dx = try b.junk(shape), dg = try b.junk([c]), db = try b.junk([c])
            let dBias = bias ? try b.junk([c]) : nil
            return PreparedOp(run: {
                try b.batchNormBlockBackward(x: x, dy: dy, gamma: gamma, beta: beta, saveMean: sm, saveInvStd: si, argmax: am,
                                             dx: dx, dGamma: dg, dBeta: db, dBias: dBias, epsilon: 1e-5, tail: tail)
            }, outputs: {
                var first = try b.output("dx", dx, red)
                if let dBias {
                    // dBias sums M = N*S values of dx that cancel exactly: what is left is the float
                    // sum's rounding, which grows like sqrt(M) times a term's. Divided by sqrt(M) it is
                    // on dx's scale and takes dx's tolerance; a wrong term (e.g. a missing mean) still
                    // leaves an error of order rms(dx), far above it. Without the division the model
                    // shapes (M = 65,536) failed on PoCL at 6.8e-4 against a reference of 1e-6.
                    let m = Float(shape[0] * shape.spatialCount).squareRoot()
                    first = VerifyOutput(name: "dx|dBias/sqrt(N*S)", values: first.values + (try b.floats(dBias)).map { $0 / m },
                                         tolerance: red)
                }
                return [first, try b.output("dGamma", dg, red), try b.output("dBeta", db, red)]
            })
        }
    }
}

extension OpDescriptor {
    static func biasBlockName(_ shape: Shape, _ activation: Activation, _ p: Float) -> String {
        "\(shape)" + (activation == .relu ? " relu" : "") + (p > 0 ? " dropout \(p)" : "")
    }

    /// The same float operations as biasAdd then dropoutForward: elementwise tolerance.
    package static func biasActivationDropoutForward(_ shape: Shape, activation: Activation, probability p: Float) -> OpDescriptor {
        OpDescriptor(op: "biasActivationDropoutForward", shape: biasBlockName(shape, activation, p), family: "conv",
                     bytes: 4 * 2 * Double(shape.count)) { b, inp in
            let y = try b.tensor(inp.uniform(shape.count), shape)
            let bias = try b.tensor(inp.uniform(shape[1]), [shape[1]])
            return PreparedOp(run: { try b.biasActivationDropoutForward(y: y, bias: bias, activation: activation, probability: p, seed: 9) },
                              outputs: { [try b.output("y", y, .elementwise)] })
        }
    }

    /// The forward output y comes from the same device's forward pass, as in training. dy is
    /// overwritten in place, so each run starts from a fresh copy of the incoming gradient.
    package static func biasActivationDropoutBackward(_ shape: Shape, activation: Activation, probability p: Float) -> OpDescriptor {
        OpDescriptor(op: "biasActivationDropoutBackward", shape: biasBlockName(shape, activation, p), family: "conv",
                     bytes: 4 * 3 * Double(shape.count)) { b, inp in
            let y = try b.tensor(inp.uniform(shape.count), shape)
            let bias = try b.tensor(inp.uniform(shape[1]), [shape[1]])
            try b.biasActivationDropoutForward(y: y, bias: bias, activation: activation, probability: p, seed: 9)
            let incoming = try b.tensor(inp.uniform(shape.count), shape)
            let dy = try b.junk(shape), db = try b.junk([shape[1]])
            return PreparedOp(run: {
                try b.copy(incoming, to: dy)
                try b.biasActivationDropoutBackward(y: y, dy: dy, dBias: db, activation: activation, probability: p, seed: 9)
            }, outputs: {
                [try b.output("dy", dy, .elementwise), try b.output("dBias", db, .reduction(length: shape[0] * shape.spatialCount))]
            })
        }
    }
}

extension OpDescriptor {
    /// The accumulators start from a non-zero value (they add); losses and the sum carry the
    /// transcendental / reduction tolerances of softmaxCrossEntropy and sum; the count is exact.
    package static func softmaxCrossEntropyWithTotals(rows n: Int, classes k: Int, soft: Bool, smoothing: Float = 0) -> OpDescriptor {
        OpDescriptor(op: "softmaxCrossEntropyWithTotals", shape: "N\(n) K\(k)" + (soft ? " soft" : "") + (smoothing > 0 ? " s\(smoothing)" : ""),
                     family: "loss", bytes: 4 * Double(2 * n * k + 3 * n)) { b, inp in
            let logits = try b.tensor(inp.uniform(n * k, -3, 3), [n, k])
            let labels = try b.tensor(inp.labels(n, classes: k), [n])
            let targets: LossTargets
            if soft {
                var t = inp.uniform(n * k, 0, 1)
                for r in 0..<n { let s = t[r * k..<(r + 1) * k].reduce(0, +); for c in 0..<k { t[r * k + c] /= s } }
                targets = .soft(try b.tensor(t, [n, k]))
            } else {
                targets = .labels(labels)
            }
            let losses = try b.junk([n]), d = try b.junk([n, k])
            let lossSum = try b.tensor([Float(2.5)], [1]), correct = try b.tensor([Float(3)], [1])
            return PreparedOp(run: {
                try b.softmaxCrossEntropyWithTotals(logits: logits, targets: targets, labelSmoothing: smoothing, losses: losses,
                                                    dLogits: d, gradScale: 1 / Float(n), labels: labels,
                                                    lossSum: lossSum, correctSum: correct)
            }, outputs: {
                [try b.output("losses", losses, .transcendental), try b.output("dLogits", d, .transcendental),
                 try b.output("lossSum", lossSum, .reduction(length: n)), try b.output("correctSum", correct, .exact)]
            })
        }
    }
}

extension VerifySuite {
    /// The fused BatchNorm block: every tail part alone and together, odd sizes, overlapping and
    /// padded pooling windows, BatchNorm1d; the blocks of `optimized` at the model batch.
    package static func fusedOps(modelBatch b: Int? = nil) -> [OpDescriptor] {
        func both(_ s: Shape, _ tail: BatchNormTail, bias: Bool = false) -> [OpDescriptor] {
            [.batchNormBlockForwardTraining(s, tail: tail), .batchNormBlockBackward(s, tail: tail, bias: bias)]
        }
        func pool(_ s: Shape, k: Int, stride: Int? = nil, padding: Int = 0) -> Pool2DGeometry {
            Pool2DGeometry(batch: s[0], channels: s[1], height: s[2], width: s[3], kernel: k, stride: stride, padding: padding)
        }
        let a: Shape = [2, 3, 6, 7], odd: Shape = [3, 5, 9, 11]
        var ops = both(a, BatchNormTail())
        ops += both(a, BatchNormTail(activation: .relu), bias: true)
        ops += both(a, BatchNormTail(dropout: 0.3, dropoutSeed: 11))
        ops += both(a, BatchNormTail(pool: pool(a, k: 2)))
        ops += both(odd, BatchNormTail(activation: .relu, dropout: 0.25, dropoutSeed: 7, pool: pool(odd, k: 2)), bias: true)
        ops += both(odd, BatchNormTail(activation: .relu, pool: pool(odd, k: 3, stride: 2, padding: 1)))   // overlapping, padded
        ops += both([1, 4, 17, 19], BatchNormTail(activation: .relu, pool: pool([1, 4, 17, 19], k: 3, stride: 1, padding: 1)))
        ops += both([17, 9], BatchNormTail(activation: .relu, dropout: 0.5, dropoutSeed: 3), bias: true)   // BatchNorm1d
        func bias(_ s: Shape, _ a: Activation, _ p: Float) -> [OpDescriptor] {
            [.biasActivationDropoutForward(s, activation: a, probability: p), .biasActivationDropoutBackward(s, activation: a, probability: p)]
        }
        ops += [.softmaxCrossEntropyWithTotals(rows: 7, classes: 3, soft: false, smoothing: 0.1),
                .softmaxCrossEntropyWithTotals(rows: 300, classes: 10, soft: true)]
        ops += bias([7, 13], .relu, 0.5) + bias([3, 5, 4, 3], .identity, 0.25) + bias([5, 300], .relu, 0) + bias([1, 1], .identity, 0)
        if let b {
            let s1: Shape = [b, 32, 32, 32], s2: Shape = [b, 64, 16, 16]
            ops += both(s1, BatchNormTail(activation: .relu, pool: pool(s1, k: 2)), bias: true)
            ops += both(s2, BatchNormTail(activation: .relu, dropout: 0.25, dropoutSeed: 5, pool: pool(s2, k: 2)), bias: true)
            ops += bias([b, 512], .relu, 0.5)
            ops.append(.softmaxCrossEntropyWithTotals(rows: b, classes: 10, soft: false))
        }
        return ops
    }
}
