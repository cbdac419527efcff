import CNNCore
import CPUBackend
import Testing

/// Hand-computed GEMMs through the backend (Float). Small integers are exact in Float, so the
/// expected values are compared exactly.
@Suite struct GEMMTests {
    // A: (2, 3), B: (3, 2); A*B worked out by hand:
    // [1*7 + 2*9 + 3*11, 1*8 + 2*10 + 3*12] = [58, 64]
    // [4*7 + 5*9 + 6*11, 4*8 + 5*10 + 6*12] = [139, 154]
    static let a: [[Float]] = [[1, 2, 3], [4, 5, 6]]
    static let b: [[Float]] = [[7, 8], [9, 10], [11, 12]]
    static let ab: [Float] = [58, 64, 139, 154]

    /// Stores `rows` row-major with row stride `ld`, padding with NaN (a padding read would poison C).
    static func stored(_ rows: [[Float]], ld: Int) -> [Float] {
        rows.flatMap { $0 + [Float](repeating: .nan, count: ld - $0.count) }
    }
    static func transposed(_ rows: [[Float]]) -> [[Float]] {
        (0..<rows[0].count).map { j in rows.map { $0[j] } }
    }

    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func everyTransposeWithPaddedLeadingDimensions(transA: Bool, transB: Bool) throws {
        let be = CPUBackend()
        let aRows = transA ? Self.transposed(Self.a) : Self.a   // stored A: (2, 3) or (3, 2)
        let bRows = transB ? Self.transposed(Self.b) : Self.b   // stored B: (3, 2) or (2, 3)
        let lda = aRows[0].count + 2, ldb = bRows[0].count + 1, ldc = 5
        let a = try be.refUpload(Self.stored(aRows, ld: lda), [aRows.count, lda])
        let b = try be.refUpload(Self.stored(bRows, ld: ldb), [bRows.count, ldb])
        // C: (2, 2) inside a (2, 5) buffer; columns 2..4 are sentinels that must survive.
        let c = try be.refUpload([Float](repeating: -7, count: 10), [2, 5])
        try be.gemm(transA: transA, transB: transB, m: 2, n: 2, k: 3, alpha: 1, a: a, lda: lda, b: b, ldb: ldb,
                    beta: 0, c: c, ldc: ldc)
        RefCheck.exact(try be.floats(c), [58, 64, -7, -7, -7, 139, 154, -7, -7, -7], "gemm transA=\(transA) transB=\(transB)")
    }

    @Test func alphaAndBeta() throws {
        let be = CPUBackend()
        let a = try be.refUpload(Self.a.flatMap { $0 }, [2, 3])
        let b = try be.refUpload(Self.b.flatMap { $0 }, [3, 2])
        let c = try be.refUpload([1, 2, 3, 4], [2, 2])
        try be.gemm(transA: false, transB: false, m: 2, n: 2, k: 3, alpha: 2, a: a, lda: 3, b: b, ldb: 2, beta: 0.5, c: c, ldc: 2)
        // 2 * AB + 0.5 * C = [116 + 0.5, 128 + 1, 278 + 1.5, 308 + 2]
        RefCheck.exact(try be.floats(c), [116.5, 129, 279.5, 310], "alpha=2, beta=0.5")
    }

    @Test func betaZeroIgnoresNaNInC() throws {
        let be = CPUBackend()
        let a = try be.refUpload(Self.a.flatMap { $0 }, [2, 3])
        let b = try be.refUpload(Self.b.flatMap { $0 }, [3, 2])
        let c = try be.refUpload([.nan, .nan, .infinity, .nan], [2, 2])
        try be.gemm(transA: false, transB: false, m: 2, n: 2, k: 3, alpha: 1, a: a, lda: 3, b: b, ldb: 2, beta: 0, c: c, ldc: 2)
        RefCheck.exact(try be.floats(c), Self.ab, "beta=0 over NaN")
    }

    @Test func zeroDepthScalesC() throws {
        let be = CPUBackend()
        let a = try be.makeTensor([1]), b = try be.makeTensor([1])
        let c = try be.refUpload([1, -2, 3, 4], [2, 2])
        try be.gemm(transA: false, transB: false, m: 2, n: 2, k: 0, alpha: 1, a: a, lda: 1, b: b, ldb: 2, beta: 3, c: c, ldc: 2)
        RefCheck.exact(try be.floats(c), [3, -6, 9, 12], "k=0: C = beta*C")
    }

    /// Item 0: A*B; item 1: an A that selects B's first two rows. B is shared (strideB = 0);
    /// C items are 5 apart with a sentinel between them.
    @Test func stridedBatchedWithSharedB() throws {
        let be = CPUBackend()
        let a = try be.refUpload(Self.a.flatMap { $0 } + [1, 0, 0, 0, 1, 0], [2, 2, 3])
        let b = try be.refUpload(Self.b.flatMap { $0 }, [3, 2])
        let c = try be.refUpload([Float](repeating: -1, count: 9), [9])
        try be.gemmStridedBatched(transA: false, transB: false, m: 2, n: 2, k: 3, alpha: 1, a: a, lda: 3, strideA: 6,
                                  b: b, ldb: 2, strideB: 0, beta: 0, c: c, ldc: 2, strideC: 5, batch: 2)
        RefCheck.exact(try be.floats(c), [58, 64, 139, 154, -1, 7, 8, 9, 10], "strided batched")
    }

    /// (A B)^T = B^T A^T: the transposed call must give exactly the transpose (same products, same
    /// summation order), on random Doubles with padded leading dimensions.
    @Test func transposeIdentityInDouble() {
        let (m, n, k) = (5, 7, 3)
        let a = RefBuffer(RefCheck.random(m * (k + 1), seed: 1))   // A: (m, k), lda = k + 1
        let b = RefBuffer(RefCheck.random(k * (n + 2), seed: 2))   // B: (k, n), ldb = n + 2
        let c = RefBuffer(count: m * n, value: Double.nan)          // C = A B: (m, n)
        let ct = RefBuffer(count: n * m, value: Double.nan)         // C^T = B^T A^T: (n, m)
        Ref.gemm(transA: false, transB: false, m: m, n: n, k: k, alpha: 1.5, a: a.p, lda: k + 1, b: b.p, ldb: n + 2,
                 beta: 0, c: c.p, ldc: n)
        Ref.gemm(transA: true, transB: true, m: n, n: m, k: k, alpha: 1.5, a: b.p, lda: n + 2, b: a.p, ldb: k + 1,
                 beta: 0, c: ct.p, ldc: m)
        let transposed = (0..<m * n).map { ct[($0 % n) * m + $0 / n] }
        RefCheck.exact(c.values, transposed, "(AB)^T vs B^T A^T")
        // One entry by hand: C[2, 4] = 1.5 * sum_p A[2, p] B[p, 4].
        let c24 = 1.5 * (0..<k).reduce(0.0) { $0 + a[2 * (k + 1) + $1] * b[$1 * (n + 2) + 4] }
        RefCheck.close([c[2 * n + 4]], [c24], atol: 0, rtol: 1e-15, "C[2, 4]")
    }

    @Test func badArgumentsThrow() throws {
        let be = CPUBackend()
        let a = try be.makeTensor([2, 3]), b = try be.makeTensor([3, 2]), c = try be.makeTensor([2, 2])
        RefCheck.throwsInvalid("gemm", "lda") {
            try be.gemm(transA: false, transB: false, m: 2, n: 2, k: 3, alpha: 1, a: a, lda: 2, b: b, ldb: 2, beta: 0, c: c, ldc: 2)
        }
        RefCheck.throwsInvalid("gemm", "B") {
            try be.gemm(transA: false, transB: false, m: 2, n: 3, k: 3, alpha: 1, a: a, lda: 3, b: b, ldb: 3, beta: 0,
                        c: try be.makeTensor([2, 3]), ldc: 3)
        }
        RefCheck.throwsInvalid("gemm", "A") {
            try be.gemm(transA: false, transB: false, m: 2, n: 2, k: 3, alpha: 1, a: try be.makeTensor([2, 3], dtype: .int32),
                        lda: 3, b: b, ldb: 2, beta: 0, c: c, ldc: 2)
        }
        RefCheck.throwsInvalid("gemm", "C") {   // C aliasing A
            try be.gemm(transA: false, transB: false, m: 2, n: 2, k: 2, alpha: 1, a: c, lda: 2, b: b, ldb: 2, beta: 0, c: c, ldc: 2)
        }
        RefCheck.throwsInvalid("gemmStridedBatched", "strideC") {
            try be.gemmStridedBatched(transA: false, transB: false, m: 2, n: 2, k: 3, alpha: 1, a: a, lda: 3, strideA: 0,
                                      b: b, ldb: 2, strideB: 0, beta: 0, c: c, ldc: 2, strideC: 0, batch: 2)
        }
        RefCheck.throwsInvalid("gemmStridedBatched", "strideC") {   // items 3 apart, each C spans 4 elements
            try be.gemmStridedBatched(transA: false, transB: false, m: 2, n: 2, k: 3, alpha: 1, a: a, lda: 3, strideA: 0,
                                      b: b, ldb: 2, strideB: 0, beta: 0, c: try be.makeTensor([7]), ldc: 2, strideC: 3, batch: 2)
        }
        RefCheck.throwsInvalid("gemmStridedBatched", "C") {
            try be.gemmStridedBatched(transA: false, transB: false, m: 2, n: 2, k: 3, alpha: 1, a: a, lda: 3, strideA: 0,
                                      b: b, ldb: 2, strideB: 0, beta: 0, c: c, ldc: 2, strideC: 4, batch: 2)
        }
    }
}
