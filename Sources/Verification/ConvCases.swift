import CNNCore

/// Cases of the GEMM and convolution families.
extension VerifyCase {
    /// C = alpha op(A) op(B) + beta C, row-major, with leading dimensions `pad` wider than needed.
    public static func gemm(m: Int, n: Int, k: Int, transA: Bool, transB: Bool, alpha: Float = 1, beta: Float = 0,
                            pad: Int = 0) -> VerifyCase {
        let shape = "m\(m) n\(n) k\(k)\(transA ? " A^T" : "")\(transB ? " B^T" : "")"
            + (alpha != 1 ? " alpha \(alpha)" : "") + (beta != 0 ? " beta \(beta)" : "") + (pad > 0 ? " ld+\(pad)" : "")
        return VerifyCase(op: "gemm", shape: shape) { b in
            var inp = Inputs(seed("gemm" + shape))
            let (ar, ac) = transA ? (k, m) : (m, k)
            let (br, bc) = transB ? (n, k) : (k, n)
            let lda = ac + pad, ldb = bc + pad, ldc = n + pad
            let a = try b.tensor(inp.uniform(ar * lda), [ar * lda])
            let bm = try b.tensor(inp.uniform(br * ldb), [br * ldb])
            // beta == 0 must ignore C: NaN junk proves it.
            let c = try b.tensor(beta == 0 ? [Float](repeating: .nan, count: m * ldc) : inp.uniform(m * ldc), [m * ldc])
            try b.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: bm, ldb: ldb,
                       beta: beta, c: c, ldc: ldc)
            var values = try b.floats(c)
            if pad > 0 {   // only the m x n window is defined (padding columns keep their old values)
                values = (0..<m).flatMap { r in values[(r * ldc)..<(r * ldc + n)] }
            }
            return [VerifyOutput(name: "C", values: values, tolerance: .gemm)]
        }
    }

    /// `batch` GEMMs; A's stride may be 0 (one shared matrix, as convolution uses it).
    public static func gemmStridedBatched(m: Int, n: Int, k: Int, batch: Int, transA: Bool, transB: Bool,
                                          sharedA: Bool) -> VerifyCase {
        let shape = "batch \(batch) m\(m) n\(n) k\(k)\(transA ? " A^T" : "")\(transB ? " B^T" : "")\(sharedA ? " strideA 0" : "")"
        return VerifyCase(op: "gemmStridedBatched", shape: shape) { b in
            var inp = Inputs(seed("gemmStridedBatched" + shape))
            let sa = sharedA ? 0 : m * k, sb = k * n + 3, sc = m * n + 1
            let a = try b.tensor(inp.uniform(m * k * (sharedA ? 1 : batch)), [m * k * (sharedA ? 1 : batch)])
            let bm = try b.tensor(inp.uniform(sb * batch), [sb * batch])
            let c = try b.tensor(inp.uniform(sc * batch), [sc * batch])
            try b.gemmStridedBatched(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5,
                                     a: a, lda: transA ? m : k, strideA: sa, b: bm, ldb: transB ? k : n, strideB: sb,
                                     beta: 0.25, c: c, ldc: n, strideC: sc, batch: batch)
            return [try b.output("C", c, .gemm)]
        }
    }

    static func convName(_ g: Conv2DGeometry, _ extra: String = "") -> String {
        "N\(g.batch) \(g.inChannels)->\(g.outChannels) \(g.height)x\(g.width) k\(g.kernelH)x\(g.kernelW) "
            + "s\(g.strideH)x\(g.strideW) p\(g.padH)x\(g.padW)" + extra
    }

    public static func im2col(_ g: Conv2DGeometry) -> VerifyCase {
        VerifyCase(op: "im2col", shape: convName(g)) { b in
            var inp = Inputs(seed("im2col" + convName(g)))
            let x = try b.tensor(inp.uniform(g.inputShape.count), g.inputShape)
            let cols = try b.junk(g.colsShape)
            try b.im2col(x: x, cols: cols, geometry: g)
            return [try b.output("cols", cols, .exact)]
        }
    }

    public static func col2im(_ g: Conv2DGeometry) -> VerifyCase {
        VerifyCase(op: "col2im", shape: convName(g)) { b in
            var inp = Inputs(seed("col2im" + convName(g)))
            let cols = try b.tensor(inp.uniform(g.colsShape.count), g.colsShape)
            let x = try b.junk(g.inputShape)
            try b.col2im(cols: cols, x: x, geometry: g)
            return [try b.output("x", x, .reduction(length: g.kernelH * g.kernelW))]
        }
    }

    public static func conv2DForward(_ g: Conv2DGeometry, bias: Bool = true, activation: Activation = .identity) -> VerifyCase {
        let shape = convName(g, (bias ? "" : " no bias") + (activation == .relu ? " relu" : ""))
        return VerifyCase(op: "conv2DForward", shape: shape) { b in
            var inp = Inputs(seed("conv2DForward" + shape))
            let x = try b.tensor(inp.uniform(g.inputShape.count), g.inputShape)
            let w = try b.tensor(inp.uniform(g.weightShape.count), g.weightShape)
            let bs = bias ? try b.tensor(inp.uniform(g.outChannels), [g.outChannels]) : nil
            let y = try b.junk(g.outputShape)
            try b.conv2DForward(x: x, weight: w, bias: bs, y: y, geometry: g, activation: activation)
            return [try b.output("y", y, .gemm)]
        }
    }

    public static func conv2DBackwardData(_ g: Conv2DGeometry) -> VerifyCase {
        VerifyCase(op: "conv2DBackwardData", shape: convName(g)) { b in
            var inp = Inputs(seed("conv2DBackwardData" + convName(g)))
            let dy = try b.tensor(inp.uniform(g.outputShape.count), g.outputShape)
            let w = try b.tensor(inp.uniform(g.weightShape.count), g.weightShape)
            let dx = try b.junk(g.inputShape)
            try b.conv2DBackwardData(dy: dy, weight: w, dx: dx, geometry: g)
            return [try b.output("dx", dx, .gemm)]
        }
    }

    public static func conv2DBackwardFilter(_ g: Conv2DGeometry, bias: Bool = true) -> VerifyCase {
        let shape = convName(g, bias ? "" : " no bias")
        return VerifyCase(op: "conv2DBackwardFilter", shape: shape) { b in
            var inp = Inputs(seed("conv2DBackwardFilter" + shape))
            let x = try b.tensor(inp.uniform(g.inputShape.count), g.inputShape)
            let dy = try b.tensor(inp.uniform(g.outputShape.count), g.outputShape)
            let dw = try b.junk(g.weightShape)
            let db = bias ? try b.junk([g.outChannels]) : nil
            try b.conv2DBackwardFilter(x: x, dy: dy, dWeight: dw, dBias: db, geometry: g)
            var outs = [try b.output("dWeight", dw, .gemm)]
            if let db { outs.append(try b.output("dBias", db, .reduction(length: g.batch * g.outHeight * g.outWidth))) }
            return outs
        }
    }

    /// y: (N, C, *spatial) in place.
    public static func biasAdd(_ shape: Shape, activation: Activation = .identity) -> VerifyCase {
        let name = "\(shape)\(activation == .relu ? " relu" : "")"
        return VerifyCase(op: "biasAdd", shape: name) { b in
            var inp = Inputs(seed("biasAdd" + name))
            let y = try b.tensor(inp.uniform(shape.count), shape)
            let bias = try b.tensor(inp.uniform(shape[1]), [shape[1]])
            try b.biasAdd(y: y, bias: bias, activation: activation)
            return [try b.output("y", y, .exact)]
        }
    }

    public static func biasGrad(_ shape: Shape) -> VerifyCase {
        VerifyCase(op: "biasGrad", shape: "\(shape)") { b in
            var inp = Inputs(seed("biasGrad\(shape)"))
            let dy = try b.tensor(inp.uniform(shape.count), shape)
            let db = try b.junk([shape[1]])
            try b.biasGrad(dy: dy, dBias: db)
            return [try b.output("dBias", db, .reduction(length: shape[0] * shape.spatialCount))]
        }
    }

    /// Every convolution primitive on one geometry.
    public static func convolutionFamily(_ g: Conv2DGeometry, activation: Activation = .identity) -> [VerifyCase] {
        [im2col(g), col2im(g), conv2DForward(g, bias: true, activation: activation), conv2DBackwardData(g),
         conv2DBackwardFilter(g, bias: true)]
    }
}
