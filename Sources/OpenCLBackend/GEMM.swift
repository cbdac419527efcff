import CCLBlast
import CNNCore
import COpenCL

/// GEMM through CLBlast (row-major). Single GEMMs use CLBlastSgemmWithTempBuffer with a temporary
/// buffer from this backend's arena, so the steady state allocates nothing; batched GEMMs use
/// CLBlastSgemmStridedBatched (one call for the whole batch; a stride of 0 reuses one matrix).
extension OpenCLBackend {
    public func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                     a: Tensor, lda: Int, b: Tensor, ldb: Int, beta: Float, c: Tensor, ldc: Int) throws {
        try Contract.gemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, strideA: 0,
                          b: b, ldb: ldb, strideB: 0, c: c, ldc: ldc, strideC: 0, batch: 1, op: "gemm")
        try enqueueGemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, strideA: 0,
                        b: b, ldb: ldb, strideB: 0, beta: beta, c: c, ldc: ldc, strideC: 0, batch: 1)
    }

    public func gemmStridedBatched(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                                   a: Tensor, lda: Int, strideA: Int, b: Tensor, ldb: Int, strideB: Int,
                                   beta: Float, c: Tensor, ldc: Int, strideC: Int, batch: Int) throws {
        try Contract.gemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, strideA: strideA,
                          b: b, ldb: ldb, strideB: strideB, c: c, ldc: ldc, strideC: strideC, batch: batch,
                          op: "gemmStridedBatched")
        try enqueueGemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, strideA: strideA,
                        b: b, ldb: ldb, strideB: strideB, beta: beta, c: c, ldc: ldc, strideC: strideC, batch: batch)
    }

    /// The CLBlast call behind every GEMM of this backend (arguments already checked).
    /// Offsets are the tensors' element offsets, so views work as they are.
    func enqueueGemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                     a: Tensor, lda: Int, strideA: Int, b: Tensor, ldb: Int, strideB: Int,
                     beta: Float, c: Tensor, ldc: Int, strideC: Int, batch: Int) throws {
        guard m > 0, n > 0, batch > 0 else { return }
        if k == 0 {
            // CLBlast rejects k == 0; the product is empty, so C = beta * C.
            for i in 0..<batch {
                for row in 0..<m {
                    let r = c.view(elementOffset: i * strideC + row * ldc, shape: [n])
                    if beta == 0 { try fill(r, value: 0) } else { try scale(r, by: beta, y: r) }
                }
            }
            return
        }
        let am = try buffer(a, "gemm").mem, bm = try buffer(b, "gemm").mem, cm = try buffer(c, "gemm").mem
        let ta = transA ? CLBlastTransposeYes : CLBlastTransposeNo
        let tb = transB ? CLBlastTransposeYes : CLBlastTransposeNo
        var q = queue
        let name = batch > 1 ? "gemmStridedBatched" : "gemm"
        logWork(name, bytes: 4 * Double(batch) * Double(m * k + k * n + m * n * (beta == 0 ? 1 : 2)),
                flops: 2 * Double(batch) * Double(m) * Double(n) * Double(k))
        let what = "\(batch > 1 ? "SgemmStridedBatched" : "Sgemm")(m \(m), n \(n), k \(k), transA \(transA), transB \(transB)"
            + (batch > 1 ? ", batch \(batch))" : ")")
        if batch == 1 {
            var tempBytes = 0
            try clblastCheck(CLBlastSGemmTempBufferSize(CLBlastLayoutRowMajor, ta, tb, m, n, k, a.offset, lda, b.offset, ldb,
                                                        c.offset, ldc, &q, &tempBytes),
                             "SGemmTempBufferSize for \(what)")
            let temp = try gemmTemp((tempBytes + 3) / 4)
            try clblastCheck(enqueue(name) {
                                 CLBlastSgemmWithTempBuffer(CLBlastLayoutRowMajor, ta, tb, m, n, k, alpha, am, a.offset, lda,
                                                            bm, b.offset, ldb, beta, cm, c.offset, ldc, &q, $0, temp)
                             }, what)
            commandCounters.countCLBlastCall()
        } else {
            try clblastCheck(enqueue(name) {
                                 CLBlastSgemmStridedBatched(CLBlastLayoutRowMajor, ta, tb, m, n, k, alpha,
                                                            am, a.offset, lda, strideA, bm, b.offset, ldb, strideB,
                                                            beta, cm, c.offset, ldc, strideC, batch, &q, $0)
                             }, what)
            commandCounters.countCLBlastCall()
        }
    }
}
