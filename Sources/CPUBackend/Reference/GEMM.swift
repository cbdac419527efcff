import CNNCore

// Reference GEMM: the spec for CLBlast calls and for any fast CPU GEMM.

extension CPUBackend.Reference {
    /// Row-major C = alpha * op(A) * op(B) + beta * C.
    ///
    /// - a: op(A) is (m, k). Stored as (m, k) with row stride `lda`, or as (k, m) when `transA`.
    /// - b: op(B) is (k, n). Stored as (k, n) with row stride `ldb`, or as (n, k) when `transB`.
    /// - c: (m, n) with row stride `ldc`. Only the m x n window is touched.
    ///
    /// Each dot product accumulates in Double and C is rounded once. beta == 0 ignores C's old
    /// contents, even NaN (BLAS semantics); k == 0 gives C = beta * C. C must not overlap A or B.
    package static func gemm<T: BinaryFloatingPoint>(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: T,
        a: UnsafePointer<T>, lda: Int, b: UnsafePointer<T>, ldb: Int,
        beta: T, c: UnsafeMutablePointer<T>, ldc: Int
    ) {
        let alphaD = Double(alpha), betaD = Double(beta)
        for i in 0..<m {
            for j in 0..<n {
                var acc = 0.0
                for p in 0..<k {
                    let aip = transA ? a[p * lda + i] : a[i * lda + p]   // op(A)[i, p]
                    let bpj = transB ? b[j * ldb + p] : b[p * ldb + j]   // op(B)[p, j]
                    acc += Double(aip) * Double(bpj)
                }
                let old = beta == 0 ? 0 : betaD * Double(c[i * ldc + j])
                c[i * ldc + j] = T(alphaD * acc + old)
            }
        }
    }

    /// `batch` independent GEMMs (see `gemm`); matrix i of A, B and C starts `i * strideA`,
    /// `i * strideB`, `i * strideC` elements in. A stride of 0 reuses one A or B for every item
    /// (C's stride must separate the outputs).
    package static func gemmStridedBatched<T: BinaryFloatingPoint>(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: T,
        a: UnsafePointer<T>, lda: Int, strideA: Int, b: UnsafePointer<T>, ldb: Int, strideB: Int,
        beta: T, c: UnsafeMutablePointer<T>, ldc: Int, strideC: Int, batch: Int
    ) {
        for item in 0..<batch {
            gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                 a: a + item * strideA, lda: lda, b: b + item * strideB, ldb: ldb,
                 beta: beta, c: c + item * strideC, ldc: ldc)
        }
    }
}
