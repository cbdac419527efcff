import CNNCore

/// Descriptors of the GEMM and convolution families.
extension OpDescriptor {
    /// C = alpha op(A) op(B) + beta C, row-major, with leading dimensions `pad` wider than needed.
    package static func gemm(m: Int, n: Int, k: Int, transA: Bool, transB: Bool, alpha: Float = 1, beta: Float = 0,
                            pad: Int = 0) -> OpDescriptor {
        let shape = "m\(m) n\(n) k\(k)\(transA ? " A^T" : "")\(transB ? " B^T" : "")"
            + (alpha != 1 ? " alpha \(alpha)" : "") + (beta != 0 ? " beta \(beta)" : "") + (pad > 0 ? " ld+\(pad)" : "")
        let macs = Double(m) * Double(n) * Double(k)
        return OpDescriptor(op: "gemm", shape: shape, family: "gemm", flops: 2 * macs, bytes: 4 * Double(m * k + k * n + m * n),
                            referenceMACs: macs) { b, inp in
            let (ar, ac) = transA ? (k, m) : (m, k)
            let (br, bc) = transB ? (n, k) : (k, n)
            let lda = ac + pad, ldb = bc + pad, ldc = n + pad
            let ha = inp.uniform(ar * lda), hb = inp.uniform(br * ldb)
            let a = try b.tensor(ha, [ar * lda])
            let bm = try b.tensor(hb, [br * ldb])
            // beta == 0 must ignore C: NaN junk proves it.
            let c = try b.tensor(beta == 0 ? [Float](repeating: .nan, count: m * ldc) : inp.uniform(m * ldc), [m * ldc])
            let geometry = SampledGEMM(m: m, n: n, k: k, transA: transA, transB: transB, alpha: alpha, lda: lda, ldb: ldb, ldc: ldc,
                                       strideA: 0, strideB: 0, strideC: 0, batch: 1)
            return PreparedOp(run: {
                try b.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: bm, ldb: ldb,
                           beta: beta, c: c, ldc: ldc)
            }, outputs: {
                var values = try b.floats(c)
                if pad > 0 {   // only the m x n window is defined (padding columns keep their old values)
                    values = (0..<m).flatMap { r in values[(r * ldc)..<(r * ldc + n)] }
                }
                return [VerifyOutput(name: "C", values: values, tolerance: .gemm)]
            }, sampled: beta != 0 ? nil : { [geometry.sample(got: try b.floats(c), a: ha, b: hb)] })
        }
    }

    /// `batch` GEMMs; A's stride may be 0 (one shared matrix, as convolution uses it). By default
    /// alpha 0.5, beta 0.25 and gaps between the matrices of B and C; `packed`: alpha 1, beta 0 and
    /// the matrices back to back (as a convolution's forward GEMM over im2col columns runs it).
    package static func gemmStridedBatched(m: Int, n: Int, k: Int, batch: Int, transA: Bool, transB: Bool,
                                          sharedA: Bool, packed: Bool = false) -> OpDescriptor {
        let shape = "batch \(batch) m\(m) n\(n) k\(k)\(transA ? " A^T" : "")\(transB ? " B^T" : "")\(sharedA ? " strideA 0" : "")"
            + (packed ? " packed" : "")
        let macs = Double(m) * Double(n) * Double(k) * Double(batch)
        return OpDescriptor(op: "gemmStridedBatched", shape: shape, family: "gemm", flops: 2 * macs,
                            bytes: 4 * Double((sharedA ? m * k : m * k * batch) + k * n * batch + m * n * batch),
                            referenceMACs: macs, batch: batch, rebatch: {
                                gemmStridedBatched(m: m, n: n, k: k, batch: $0, transA: transA, transB: transB, sharedA: sharedA,
                                                   packed: packed)
                            }) { b, inp in
            let sa = sharedA ? 0 : m * k, sb = k * n + (packed ? 0 : 3), sc = m * n + (packed ? 0 : 1)
            let alpha: Float = packed ? 1 : 0.5, beta: Float = packed ? 0 : 0.25
            let ha = inp.uniform(m * k * (sharedA ? 1 : batch)), hb = inp.uniform(sb * batch)
            let a = try b.tensor(ha, [ha.count])
            let bm = try b.tensor(hb, [sb * batch])
            let c = packed ? try b.junk([sc * batch]) : try b.tensor(inp.uniform(sc * batch), [sc * batch])
            let lda = transA ? m : k, ldb = transB ? k : n
            let geometry = SampledGEMM(m: m, n: n, k: k, transA: transA, transB: transB, alpha: alpha, lda: lda, ldb: ldb, ldc: n,
                                       strideA: sa, strideB: sb, strideC: sc, batch: batch)
            return PreparedOp(run: {
                try b.gemmStridedBatched(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                                         a: a, lda: lda, strideA: sa, b: bm, ldb: ldb, strideB: sb,
                                         beta: beta, c: c, ldc: n, strideC: sc, batch: batch)
            }, outputs: { [try b.output("C", c, .gemm)] },
            sampled: beta != 0 ? nil : { [geometry.sample(got: try b.floats(c), a: ha, b: hb)] })
        }
    }

    static func convName(_ g: Conv2DGeometry, _ extra: String = "") -> String {
        "N\(g.batch) \(g.inChannels)->\(g.outChannels) \(g.height)x\(g.width) k\(g.kernelH)x\(g.kernelW) "
            + "s\(g.strideH)x\(g.strideW) p\(g.padH)x\(g.padW)" + extra
    }

    /// A convolution descriptor's benchmark numbers: a GEMM's work; x, weights and y moved once.
    static func conv(_ op: String, _ g: Conv2DGeometry, _ shape: String, rebatch: @escaping @Sendable (Int) -> OpDescriptor,
                     setup: @escaping @Sendable (any Backend, inout Inputs) throws -> PreparedOp) -> OpDescriptor {
        let macs = Double(g.forwardMACs)
        let bytes = 4 * Double(g.inputShape.count + g.weightShape.count + g.outputShape.count)
        return OpDescriptor(op: op, shape: shape, family: "conv", flops: 2 * macs, bytes: bytes, referenceMACs: macs,
                            batch: g.batch, rebatch: rebatch, setup: setup)
    }

    package static func im2col(_ g: Conv2DGeometry) -> OpDescriptor {
        OpDescriptor(op: "im2col", shape: convName(g), family: "conv") { b, inp in
            let x = try b.tensor(inp.uniform(g.inputShape.count), g.inputShape)
            let cols = try b.junk(g.colsShape)
            return PreparedOp(run: { try b.im2col(x: x, cols: cols, geometry: g) },
                              outputs: { [try b.output("cols", cols, .exact)] })
        }
    }

    package static func col2im(_ g: Conv2DGeometry) -> OpDescriptor {
        OpDescriptor(op: "col2im", shape: convName(g), family: "conv") { b, inp in
            let cols = try b.tensor(inp.uniform(g.colsShape.count), g.colsShape)
            let x = try b.junk(g.inputShape)
            return PreparedOp(run: { try b.col2im(cols: cols, x: x, geometry: g) },
                              outputs: { [try b.output("x", x, .reduction(length: g.kernelH * g.kernelW))] })
        }
    }

    package static func conv2DForward(_ g: Conv2DGeometry, bias: Bool = true, activation: Activation = .identity) -> OpDescriptor {
        let shape = convName(g, (bias ? "" : " no bias") + (activation == .relu ? " relu" : ""))
        return conv("conv2DForward", g, shape, rebatch: { conv2DForward(g.withBatch($0), bias: bias, activation: activation) }) { b, inp in
            let hx = inp.uniform(g.inputShape.count), hw = inp.uniform(g.weightShape.count)
            let hbias = bias ? inp.uniform(g.outChannels) : []
            let x = try b.tensor(hx, g.inputShape), w = try b.tensor(hw, g.weightShape)
            let bs = bias ? try b.tensor(hbias, [g.outChannels]) : nil
            let y = try b.junk(g.outputShape)
            return PreparedOp(run: { try b.conv2DForward(x: x, weight: w, bias: bs, y: y, geometry: g, activation: activation) },
                              outputs: { [try b.output("y", y, .gemm)] },
                              sampled: { [sampleConvForward(g, got: try b.floats(y), x: hx, w: hw, bias: bias ? hbias : nil, activation)] })
        }
    }

    package static func conv2DBackwardData(_ g: Conv2DGeometry) -> OpDescriptor {
        conv("conv2DBackwardData", g, convName(g), rebatch: { conv2DBackwardData(g.withBatch($0)) }) { b, inp in
            let hdy = inp.uniform(g.outputShape.count), hw = inp.uniform(g.weightShape.count)
            let dy = try b.tensor(hdy, g.outputShape), w = try b.tensor(hw, g.weightShape)
            let dx = try b.junk(g.inputShape)
            return PreparedOp(run: { try b.conv2DBackwardData(dy: dy, weight: w, dx: dx, geometry: g) },
                              outputs: { [try b.output("dx", dx, .gemm)] },
                              sampled: { [sampleConvBackwardData(g, got: try b.floats(dx), dy: hdy, w: hw)] })
        }
    }

    package static func conv2DBackwardFilter(_ g: Conv2DGeometry, bias: Bool = true) -> OpDescriptor {
        let shape = convName(g, bias ? "" : " no bias")
        return conv("conv2DBackwardFilter", g, shape, rebatch: { conv2DBackwardFilter(g.withBatch($0), bias: bias) }) { b, inp in
            let hx = inp.uniform(g.inputShape.count), hdy = inp.uniform(g.outputShape.count)
            let x = try b.tensor(hx, g.inputShape), dy = try b.tensor(hdy, g.outputShape)
            let dw = try b.junk(g.weightShape)
            let db = bias ? try b.junk([g.outChannels]) : nil
            let biasTolerance = Tolerance.reduction(length: g.batch * g.outHeight * g.outWidth)
            return PreparedOp(run: { try b.conv2DBackwardFilter(x: x, dy: dy, dWeight: dw, dBias: db, geometry: g) }, outputs: {
                var outs = [try b.output("dWeight", dw, .gemm)]
                if let db { outs.append(try b.output("dBias", db, biasTolerance)) }
                return outs
            }, sampled: {
                var outs = [sampleConvBackwardFilter(g, got: try b.floats(dw), x: hx, dy: hdy)]
                if let db {   // every bias gradient: a plain sum of dy per channel
                    outs.append(SampledOutput(name: "dBias", got: try b.floats(db), reference: channelSums(g, hdy),
                                              tolerance: biasTolerance))
                }
                return outs
            })
        }
    }

    /// y: (N, C, *spatial) in place.
    package static func biasAdd(_ shape: Shape, activation: Activation = .identity) -> OpDescriptor {
        let name = "\(shape)\(activation == .relu ? " relu" : "")"
        return OpDescriptor(op: "biasAdd", shape: name, family: "conv") { b, inp in
            let y = try b.tensor(inp.uniform(shape.count), shape)
            let bias = try b.tensor(inp.uniform(shape[1]), [shape[1]])
            return PreparedOp(run: { try b.biasAdd(y: y, bias: bias, activation: activation) },
                              outputs: { [try b.output("y", y, .exact)] })
        }
    }

    package static func biasGrad(_ shape: Shape) -> OpDescriptor {
        OpDescriptor(op: "biasGrad", shape: "\(shape)", family: "conv") { b, inp in
            let dy = try b.tensor(inp.uniform(shape.count), shape)
            let db = try b.junk([shape[1]])
            return PreparedOp(run: { try b.biasGrad(dy: dy, dBias: db) },
                              outputs: { [try b.output("dBias", db, .reduction(length: shape[0] * shape.spatialCount))] })
        }
    }

    /// Every convolution primitive on one geometry.
    package static func convolutionFamily(_ g: Conv2DGeometry, activation: Activation = .identity) -> [OpDescriptor] {
        [im2col(g), col2im(g), conv2DForward(g, bias: true, activation: activation), conv2DBackwardData(g),
         conv2DBackwardFilter(g, bias: true)]
    }
}

extension VerifyCase {
    /// Every convolution primitive on one geometry.
    package static func convolutionFamily(_ g: Conv2DGeometry, activation: Activation = .identity) -> [VerifyCase] {
        OpDescriptor.convolutionFamily(g, activation: activation).map(\.verifyCase)
    }
}

extension Conv2DGeometry {
    func withBatch(_ n: Int) -> Conv2DGeometry {
        var g = self
        g.batch = n
        return g
    }
}

// MARK: - Sampled float64 checks (cnn-bench's gate for shapes too large for the reference)

/// Where the matrices of a (batched) GEMM lie, for checking sampled elements of C.
struct SampledGEMM {
    var m, n, k: Int
    var transA, transB: Bool
    var alpha: Float
    var lda, ldb, ldc: Int
    var strideA, strideB, strideC: Int
    var batch: Int

    func sample(got: [Float], a ha: [Float], b hb: [Float]) -> SampledOutput {
        var rng = SeededRNG(seed: 99)
        var g: [Float] = [], r: [Float] = []
        for _ in 0..<min(sampledElements, m * n * batch) {
            let item = rng.nextInt(batch), i = rng.nextInt(m), j = rng.nextInt(n)
            let ao = item * strideA, bo = item * strideB
            var acc = 0.0
            for q in 0..<k {
                let av = transA ? ha[ao + q * lda + i] : ha[ao + i * lda + q]
                let bv = transB ? hb[bo + j * ldb + q] : hb[bo + q * ldb + j]
                acc += Double(av) * Double(bv)
            }
            g.append(got[item * strideC + i * ldc + j]); r.append(Float(Double(alpha) * acc))
        }
        return SampledOutput(name: "C", got: g, reference: r, tolerance: .gemm)
    }
}

func sampleConvForward(_ gm: Conv2DGeometry, got: [Float], x hx: [Float], w hw: [Float], bias hbias: [Float]?,
                       _ act: Activation) -> SampledOutput {
    var rng = SeededRNG(seed: 99)
    var g: [Float] = [], r: [Float] = []
    let (OH, OW) = (gm.outHeight, gm.outWidth)
    for _ in 0..<sampledElements {
        let n = rng.nextInt(gm.batch), co = rng.nextInt(gm.outChannels), oh = rng.nextInt(OH), ow = rng.nextInt(OW)
        var acc = hbias.map { Double($0[co]) } ?? 0
        for ci in 0..<gm.inChannels {
            for i in 0..<gm.kernelH {
                let ih = oh * gm.strideH - gm.padH + i
                guard ih >= 0 && ih < gm.height else { continue }
                for j in 0..<gm.kernelW {
                    let iw = ow * gm.strideW - gm.padW + j
                    guard iw >= 0 && iw < gm.width else { continue }
                    acc += Double(hw[((co * gm.inChannels + ci) * gm.kernelH + i) * gm.kernelW + j])
                        * Double(hx[((n * gm.inChannels + ci) * gm.height + ih) * gm.width + iw])
                }
            }
        }
        if act == .relu { acc = max(acc, 0) }
        g.append(got[((n * gm.outChannels + co) * OH + oh) * OW + ow]); r.append(Float(acc))
    }
    return SampledOutput(name: "y", got: g, reference: r, tolerance: .gemm)
}

func sampleConvBackwardData(_ gm: Conv2DGeometry, got: [Float], dy hdy: [Float], w hw: [Float]) -> SampledOutput {
    var rng = SeededRNG(seed: 99)
    var g: [Float] = [], r: [Float] = []
    let (OH, OW) = (gm.outHeight, gm.outWidth)
    for _ in 0..<sampledElements {
        let n = rng.nextInt(gm.batch), ci = rng.nextInt(gm.inChannels), h = rng.nextInt(gm.height), wq = rng.nextInt(gm.width)
        var acc = 0.0
        for co in 0..<gm.outChannels {
            for i in 0..<gm.kernelH {
                let th = h + gm.padH - i
                guard th >= 0, th % gm.strideH == 0, th / gm.strideH < OH else { continue }
                for j in 0..<gm.kernelW {
                    let tw = wq + gm.padW - j
                    guard tw >= 0, tw % gm.strideW == 0, tw / gm.strideW < OW else { continue }
                    acc += Double(hdy[((n * gm.outChannels + co) * OH + th / gm.strideH) * OW + tw / gm.strideW])
                        * Double(hw[((co * gm.inChannels + ci) * gm.kernelH + i) * gm.kernelW + j])
                }
            }
        }
        g.append(got[((n * gm.inChannels + ci) * gm.height + h) * gm.width + wq]); r.append(Float(acc))
    }
    return SampledOutput(name: "dx", got: g, reference: r, tolerance: .gemm)
}

func sampleConvBackwardFilter(_ gm: Conv2DGeometry, got: [Float], x hx: [Float], dy hdy: [Float]) -> SampledOutput {
    var rng = SeededRNG(seed: 99)
    var g: [Float] = [], r: [Float] = []
    let (OH, OW) = (gm.outHeight, gm.outWidth)
    // Each element sums N*OH*OW products: sample fewer when that is large.
    let count = max(16, min(sampledElements, 50_000_000 / max(gm.batch * OH * OW, 1)))
    for _ in 0..<count {
        let co = rng.nextInt(gm.outChannels), ci = rng.nextInt(gm.inChannels)
        let i = rng.nextInt(gm.kernelH), j = rng.nextInt(gm.kernelW)
        var acc = 0.0
        for n in 0..<gm.batch {
            for oh in 0..<OH {
                let ih = oh * gm.strideH - gm.padH + i
                guard ih >= 0 && ih < gm.height else { continue }
                for ow in 0..<OW {
                    let iw = ow * gm.strideW - gm.padW + j
                    guard iw >= 0 && iw < gm.width else { continue }
                    acc += Double(hdy[((n * gm.outChannels + co) * OH + oh) * OW + ow])
                        * Double(hx[((n * gm.inChannels + ci) * gm.height + ih) * gm.width + iw])
                }
            }
        }
        g.append(got[((co * gm.inChannels + ci) * gm.kernelH + i) * gm.kernelW + j]); r.append(Float(acc))
    }
    return SampledOutput(name: "dWeight", got: g, reference: r, tolerance: .gemm)
}

/// dy summed per output channel (the bias gradient), in float64.
func channelSums(_ gm: Conv2DGeometry, _ hdy: [Float]) -> [Float] {
    let plane = gm.outHeight * gm.outWidth
    return (0..<gm.outChannels).map { co in
        var acc = 0.0
        for n in 0..<gm.batch {
            let base = (n * gm.outChannels + co) * plane
            for q in 0..<plane { acc += Double(hdy[base + q]) }
        }
        return Float(acc)
    }
}
