/// Argument checks shared by every backend, so each primitive rejects the same bad input
/// with the same message on every device.
package enum Check {
    package static func shape(_ t: Tensor, _ expected: Shape, _ name: String, _ op: String) throws {
        if t.shape.count != expected.count || (t.shape != expected && t.shape.rank == expected.rank) {
            throw CNNError.invalidArgument("\(op): \(name) has shape \(t.shape), expected \(expected)")
        }
    }
    package static func count(_ t: Tensor, _ expected: Int, _ name: String, _ op: String) throws {
        if t.count != expected {
            throw CNNError.invalidArgument("\(op): \(name) has \(t.count) elements \(t.shape), expected \(expected)")
        }
    }
    package static func dtype(_ t: Tensor, _ expected: DType, _ name: String, _ op: String) throws {
        if t.dtype != expected {
            throw CNNError.invalidArgument("\(op): \(name) is \(t.dtype), expected \(expected)")
        }
    }
    package static func float(_ ts: [(Tensor, String)], _ op: String) throws {
        for (t, n) in ts { try dtype(t, .float32, n, op) }
    }
    package static func sameCount(_ a: Tensor, _ b: Tensor, _ names: String, _ op: String) throws {
        if a.count != b.count {
            throw CNNError.invalidArgument("\(op): \(names) differ in size: \(a.shape) vs \(b.shape)")
        }
    }

    package static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                            a: Tensor, lda: Int, strideA: Int, b: Tensor, ldb: Int, strideB: Int,
                            c: Tensor, ldc: Int, strideC: Int, batch: Int) throws {
        let op = "gemm"
        try float([(a, "A"), (b, "B"), (c, "C")], op)
        try require(m >= 0 && n >= 0 && k >= 0 && batch >= 0, "\(op): negative size m=\(m) n=\(n) k=\(k) batch=\(batch)")
        let (ar, ac) = transA ? (k, m) : (m, k)
        let (br, bc) = transB ? (n, k) : (k, n)
        try require(lda >= max(ac, 1) && ldb >= max(bc, 1) && ldc >= max(n, 1),
                    "\(op): leading dimensions lda=\(lda) ldb=\(ldb) ldc=\(ldc) too small for m=\(m) n=\(n) k=\(k)")
        func need(_ rows: Int, _ ld: Int, _ cols: Int, _ stride: Int) -> Int {
            rows == 0 || cols == 0 || batch == 0 ? 0 : (batch - 1) * stride + (rows - 1) * ld + cols
        }
        try require(a.count >= need(ar, lda, ac, strideA), "\(op): A \(a.shape) too small for \(ar)x\(ac) (lda \(lda), batch \(batch))")
        try require(b.count >= need(br, ldb, bc, strideB), "\(op): B \(b.shape) too small for \(br)x\(bc) (ldb \(ldb), batch \(batch))")
        try require(c.count >= need(m, ldc, n, strideC), "\(op): C \(c.shape) too small for \(m)x\(n) (ldc \(ldc), batch \(batch))")
    }

    package static func conv(_ g: Conv2DGeometry, x: Tensor?, weight: Tensor?, bias: Tensor?, y: Tensor?, op: String) throws {
        try g.validate()
        if let x { try dtype(x, .float32, "x", op); try shape(x, g.inputShape, "x", op) }
        if let weight { try dtype(weight, .float32, "weight", op); try shape(weight, g.weightShape, "weight", op) }
        if let bias { try dtype(bias, .float32, "bias", op); try count(bias, g.outChannels, "bias", op) }
        if let y { try dtype(y, .float32, "y", op); try shape(y, g.outputShape, "y", op) }
    }

    package static func pool(_ g: Pool2DGeometry, x: Tensor, y: Tensor, argmax: Tensor?, op: String) throws {
        try g.validate()
        try dtype(x, .float32, "x", op); try shape(x, g.inputShape, "x", op)
        try dtype(y, .float32, "y", op); try shape(y, g.outputShape, "y", op)
        if let argmax { try dtype(argmax, .int32, "argmax", op); try shape(argmax, g.outputShape, "argmax", op) }
    }
}
