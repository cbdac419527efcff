// Tests of the fast SGEMM (Sources/SGEMM) against a plain triple loop accumulating in Double.
//
// Tolerance: |got - ref| <= tol * (|alpha| * sum_p |op(A)[i,p] * op(B)[p,j]| + |beta * C0[i,j]|) + 1e-30,
// tol = max(1e-4, 2 * (k + 2) * 2^-24). The right side is the worst-case rounding bound of a float
// dot product of length k (it never fails a correct GEMM, and any wrong index, missed k block or
// lost alpha/beta shows up as an error of the size of the magnitude itself). The bound is relative
// to the sum of absolute products, not to |ref|, because random signs make |ref| small by cancellation.
//
// Small blockings (kc 16, mc 24, nc 64) exercise every block boundary with small matrices; the
// default blocking is covered by a few larger shapes. Thread splits must give bitwise the same
// C as one thread (same blocks, same order of accumulation per element).

import Testing
import SGEMM

/// Seeded values in [-1, 1) (a tiny LCG, so the test needs nothing else).
private struct FastGEMMTestRNG {
    var state: UInt64
    init(_ seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1 }
    mutating func next() -> Float {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Float(state >> 40) / Float(1 << 24) * 2 - 1
    }
    mutating func array(_ n: Int) -> [Float] { (0..<n).map { _ in next() } }
}

/// One GEMM problem with stored matrices (row-major, leading dimensions possibly padded).
private struct GEMMCase: CustomStringConvertible {
    var transA: Bool, transB: Bool
    var m: Int, n: Int, k: Int
    var lda: Int, ldb: Int, ldc: Int
    var alpha: Float, beta: Float
    var a: [Float], b: [Float], c0: [Float]

    init(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, pad: Int = 0,
         alpha: Float = 1, beta: Float = 0, nanC: Bool = false, seed: UInt64 = 1) {
        self.transA = transA; self.transB = transB; self.m = m; self.n = n; self.k = k
        self.alpha = alpha; self.beta = beta
        lda = (transA ? m : k) + pad
        ldb = (transB ? k : n) + pad
        ldc = n + pad
        var rng = FastGEMMTestRNG(seed &+ UInt64(m * 1_000_003 + n * 1009 + k))
        a = rng.array((transA ? k : m) * lda)
        b = rng.array((transB ? n : k) * ldb)
        c0 = nanC ? [Float](repeating: .nan, count: m * ldc) : rng.array(m * ldc)
    }

    var description: String {
        "\(transA ? "T" : "N")\(transB ? "T" : "N") m=\(m) n=\(n) k=\(k) lda=\(lda) ldb=\(ldb) ldc=\(ldc) alpha=\(alpha) beta=\(beta)"
    }

    func opA(_ i: Int, _ p: Int) -> Float { transA ? a[p * lda + i] : a[i * lda + p] }
    func opB(_ p: Int, _ j: Int) -> Float { transB ? b[j * ldb + p] : b[p * ldb + j] }

    /// Reference value and the magnitude the tolerance is relative to.
    func reference(_ i: Int, _ j: Int) -> (value: Double, magnitude: Double) {
        var s = 0.0, mag = 0.0
        for p in 0..<k {
            let t = Double(opA(i, p)) * Double(opB(p, j))
            s += t; mag += abs(t)
        }
        let c = beta == 0 ? 0 : Double(beta) * Double(c0[i * ldc + j])
        return (Double(alpha) * s + c, abs(Double(alpha)) * mag + abs(c))
    }

    func run(_ gemm: FastGEMM) -> [Float] {
        var c = c0
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    gemm.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                               a: pa.baseAddress!, lda: lda, b: pb.baseAddress!, ldb: ldb,
                               beta: beta, c: pc.baseAddress!, ldc: ldc)
                }
            }
        }
        return c
    }

    /// Checks `got` against the reference; padding columns of C must be untouched.
    func check(_ got: [Float], _ label: String = "") {
        let tol = max(1e-4, 2 * Double(k + 2) * 0x1p-24)
        var worst = 0.0, worstIndex = (0, 0), failures = 0
        for i in 0..<m {
            for j in 0..<n {
                let (ref, mag) = reference(i, j)
                let g = Double(got[i * ldc + j])
                let err = abs(g - ref)
                let bound = tol * mag + 1e-30
                if !(err <= bound) {
                    failures += 1
                    if !(err / bound <= worst) { worst = err / bound; worstIndex = (i, j) }
                }
            }
            for j in n..<ldc where !(got[i * ldc + j] == c0[i * ldc + j] || (got[i * ldc + j].isNaN && c0[i * ldc + j].isNaN)) {
                Issue.record("\(self) \(label): padding C[\(i), \(j)] was written")
                return
            }
        }
        if failures > 0 {
            let (i, j) = worstIndex
            Issue.record("\(self) \(label): \(failures) of \(m * n) entries off; worst C[\(i), \(j)] = \(got[i * ldc + j]), reference \(reference(i, j).value), \(worst)x the bound")
        }
    }
}

/// Blocking small enough that small matrices cross every kc / mc / nc boundary.
private let tinyBlocking = GEMMBlocking(kc: 16, mc: 24, nc: 64)

@Suite("Fast SGEMM")
struct FastGEMMTests {
    let serialTiny = FastGEMM(pool: ThreadPool(threadCount: 1), blocking: tinyBlocking)

    @Test("blocking rounds mc and nc to the tile sizes")
    func blockingRounding() {
        let b = GEMMBlocking(kc: 0, mc: 25, nc: 65)
        #expect(b.kc == 1)
        #expect(b.mc % GEMMTile.mr == 0 && b.mc >= GEMMTile.mr)
        #expect(b.nc % GEMMTile.nr == 0 && b.nc >= GEMMTile.nr)
    }

    @Test("odd, prime and tile-boundary shapes, all transposes", arguments: [false, true])
    func shapes(transA: Bool) {
        let dims = [(1, 1, 1), (1, 7, 1), (5, 1, 3), (1, 1, 37), (2, 3, 4), (7, 13, 5), (11, 31, 17),
                    (12, 32, 16), (13, 33, 17), (24, 64, 32), (25, 65, 33), (23, 97, 41), (37, 29, 1),
                    (3, 131, 7), (61, 5, 19), (47, 70, 53)]
        for transB in [false, true] {
            for (m, n, k) in dims {
                let c = GEMMCase(transA: transA, transB: transB, m: m, n: n, k: k)
                c.check(c.run(serialTiny), "tiny blocking")
            }
        }
    }

    @Test("leading dimensions larger than the matrix", arguments: [false, true])
    func paddedStrides(transA: Bool) {
        for transB in [false, true] {
            for (m, n, k, pad) in [(9, 35, 20, 3), (14, 40, 33, 16), (1, 33, 2, 1), (26, 8, 50, 7)] {
                let c = GEMMCase(transA: transA, transB: transB, m: m, n: n, k: k, pad: pad, beta: 0.5)
                c.check(c.run(serialTiny), "padded")
            }
        }
    }

    @Test("alpha and beta variants; beta 0 ignores NaNs in C")
    func alphaBeta() {
        let params: [(Float, Float)] = [(1, 0), (1, 1), (2.5, 0), (-0.75, 1), (1, -2), (0.5, 0.25), (0, 0.5), (0, 0), (3, 1)]
        for (alpha, beta) in params {
            for (ta, tb) in [(false, false), (true, true), (false, true)] {
                let c = GEMMCase(transA: ta, transB: tb, m: 19, n: 45, k: 37, alpha: alpha, beta: beta)
                c.check(c.run(serialTiny), "alpha/beta")
            }
        }
        for (alpha, ta, tb) in [(Float(1), false, false), (-2, true, false), (0, false, true)] {
            let c = GEMMCase(transA: ta, transB: tb, m: 17, n: 40, k: 21, pad: 2, alpha: alpha, beta: 0, nanC: true)
            let got = c.run(serialTiny)
            #expect((0..<c.m).allSatisfy { i in (0..<c.n).allSatisfy { !got[i * c.ldc + $0].isNaN } }, "\(c)")
            c.check(got, "NaN C, beta 0")
        }
    }

    @Test("k = 0 scales C by beta; empty m or n leaves C alone")
    func degenerate() {
        let gemm = serialTiny
        for beta: Float in [0, 1, -1.5] {
            var c: [Float] = [1, 2, 3, .nan, 5, 6]
            let a: [Float] = [9], b: [Float] = [9]
            gemm.sgemm(transA: false, transB: false, m: 2, n: 3, k: 0, alpha: 1, a: a, lda: 1, b: b, ldb: 3,
                       beta: beta, c: &c, ldc: 3)
            let expected: [Float] = beta == 0 ? [0, 0, 0, 0, 0, 0] : [1, 2, 3, .nan, 5, 6].map { $0 * beta }
            #expect(zip(c, expected).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }, "beta \(beta): \(c)")
        }
        var c: [Float] = [7, 7]
        gemm.sgemm(transA: false, transB: false, m: 0, n: 2, k: 3, alpha: 1, a: [1, 2, 3], lda: 3,
                   b: [1, 2, 3, 4, 5, 6], ldb: 2, beta: 0, c: &c, ldc: 2)
        gemm.sgemm(transA: false, transB: false, m: 1, n: 0, k: 3, alpha: 1, a: [1, 2, 3], lda: 3,
                   b: [1, 2, 3], ldb: 1, beta: 0, c: &c, ldc: 2)
        #expect(c == [7, 7])
    }

    @Test("a hand-computed product")
    func handComputed() {
        // [1 2 3; 4 5 6] * [7 8; 9 10; 11 12] = [58 64; 139 154]
        var c: [Float] = [100, 100, 100, 100]
        FastGEMM(pool: ThreadPool(threadCount: 1)).sgemm(
            transA: false, transB: false, m: 2, n: 2, k: 3, alpha: 1, a: [1, 2, 3, 4, 5, 6], lda: 3,
            b: [7, 8, 9, 10, 11, 12], ldb: 2, beta: 0, c: &c, ldc: 2)
        #expect(c == [58, 64, 139, 154])
        // transposed storage of the same matrices, alpha 2, beta 1 on C = 1
        var c2: [Float] = [1, 1, 1, 1]
        FastGEMM(pool: ThreadPool(threadCount: 1)).sgemm(
            transA: true, transB: true, m: 2, n: 2, k: 3, alpha: 2, a: [1, 4, 2, 5, 3, 6], lda: 2,
            b: [7, 9, 11, 8, 10, 12], ldb: 3, beta: 1, c: &c2, ldc: 2)
        #expect(c2 == [117, 129, 279, 309])
    }

    @Test("default blocking on shapes that span several k blocks")
    func defaultBlocking() {
        let gemm = FastGEMM(pool: ThreadPool(threadCount: 1))
        for (ta, tb, m, n, k) in [(false, false, 13, 70, 300), (true, true, 30, 33, 520), (false, true, 50, 40, 257)] {
            let c = GEMMCase(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 1, beta: 1)
            c.check(c.run(gemm), "default blocking")
        }
    }

    @Test("m and n splits give bitwise the serial result", arguments: [2, 3])
    func threaded(threads: Int) {
        let parallel = FastGEMM(pool: ThreadPool(threadCount: threads), blocking: tinyBlocking, parallelOverhead: 0)
        var axes = Set<String>()
        for (ta, tb, m, n, k) in [(false, false, 40, 150, 20), (true, false, 75, 30, 9), (false, true, 1, 200, 5),
                                  (true, true, 100, 3, 33), (false, false, 2, 2, 2), (false, true, 37, 64, 40)] {
            let c = GEMMCase(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 1.5, beta: 0.5)
            let plan = parallel.splitPlan(m: m, n: n, k: k)
            axes.insert(plan.axis.rawValue)
            #expect(plan.axis != .k, "\(c): \(plan)")
            let serial = c.run(serialTiny)
            let got = c.run(parallel)
            c.check(got, "\(threads) threads, \(plan)")
            #expect(got == serial, "\(c): \(plan) differs from 1 thread")
        }
        #expect(axes.isSuperset(of: ["m", "n"]), "both split axes exercised: \(axes)")
    }

    @Test("k splits (long k, small C) sum the partial products", arguments: [2, 3])
    func splitK(threads: Int) {
        let parallel = FastGEMM(pool: ThreadPool(threadCount: threads), blocking: tinyBlocking, parallelOverhead: 0)
        for (ta, tb, m, n, k, beta) in [(false, false, 5, 7, 700, Float(0)), (true, true, 13, 33, 1000, 1),
                                        (false, true, 1, 1, 300, -0.5), (true, false, 10, 30, 2000, 0)] {
            let c = GEMMCase(transA: ta, transB: tb, m: m, n: n, k: k, pad: 3, alpha: 0.75, beta: beta, nanC: beta == 0)
            let plan = parallel.splitPlan(m: m, n: n, k: k)
            #expect(plan.axis == .k && plan.parts == min(threads, k / 64), "\(c): \(plan)")
            c.check(c.run(parallel), "\(threads) threads, \(plan)")
        }
    }

    @Test("the split plan: serial for small work, never more parts than threads or tiles")
    func plans() {
        let gemm = FastGEMM(pool: ThreadPool(threadCount: 2))
        #expect(gemm.splitPlan(m: 8, n: 8, k: 8).axis == .none)
        #expect(gemm.splitPlan(m: 2048, n: 2048, k: 2048).parts == 2)
        #expect(gemm.splitPlan(m: 64, n: 32768, k: 288).axis == .n)       // conv forward
        #expect(gemm.splitPlan(m: 64, n: 288, k: 32768).axis == .k)       // conv weight gradient
        #expect(gemm.splitPlan(m: 4096, n: 16, k: 64).axis == .m)
        #expect(FastGEMM(pool: ThreadPool(threadCount: 1)).splitPlan(m: 2048, n: 2048, k: 2048).axis == .none)
        let wide = FastGEMM(pool: ThreadPool(threadCount: 8), parallelOverhead: 0)
        #expect(wide.splitPlan(m: 12, n: 64, k: 4).parts <= 2)
    }

    @Test("strided batched equals one GEMM per item (shared A via stride 0, padded strides)")
    func stridedBatched() {
        for (threads, batch) in [(1, 3), (2, 1), (2, 3), (3, 7)] {
            let gemm = FastGEMM(pool: ThreadPool(threadCount: threads), blocking: tinyBlocking, parallelOverhead: 0)
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let m = 14, n = 37, k = 19
                let lda = ta ? m : k, ldb = tb ? k : n, ldc = n + 3
                let aSize = (ta ? k : m) * lda, bSize = (tb ? n : k) * ldb
                let strideA = 0, strideB = bSize + 5, strideC = m * ldc + 2
                var rng = FastGEMMTestRNG(UInt64(batch * 31 + threads))
                let a = rng.array(aSize), b = rng.array(strideB * batch)
                let c0 = rng.array(strideC * batch)
                var c = c0
                gemm.sgemmStridedBatched(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.5,
                                         a: a, lda: lda, strideA: strideA, b: b, ldb: ldb, strideB: strideB,
                                         beta: 2, c: &c, ldc: ldc, strideC: strideC, batch: batch)
                for i in 0..<batch {
                    var item = GEMMCase(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.5, beta: 2)
                    item.lda = lda; item.ldb = ldb; item.ldc = ldc
                    item.a = a
                    item.b = Array(b[(i * strideB)..<(i * strideB + bSize)])
                    item.c0 = Array(c0[(i * strideC)..<(i * strideC + m * ldc)])
                    item.check(Array(c[(i * strideC)..<(i * strideC + m * ldc)]), "batch item \(i) of \(batch), \(threads) threads")
                }
                // Gaps between C items are untouched.
                for i in 0..<batch {
                    let gap = (i * strideC + m * ldc)..<((i + 1) * strideC)
                    #expect(Array(c[gap]) == Array(c0[gap]), "gap after item \(i) written")
                }
            }
        }
    }
}

// MARK: - Custom packers and epilogues

/// op(B)[p, j] = sin(p) + j / 8, computed while packing (as a convolution would pack im2col patches).
private struct ComputedB: GEMMPackB {
    static func value(_ p: Int, _ j: Int) -> Float { Float(p % 7) - 3 + Float(j % 5) / 8 }
    func packB(into dst: UnsafeMutablePointer<Float>, p0: Int, kc: Int, j0: Int, nc: Int) {
        let NR = GEMMTile.nr
        for q in 0..<((nc + NR - 1) / NR) {
            for p in 0..<kc {
                for s in 0..<NR {
                    let j = q * NR + s
                    dst[q * kc * NR + p * NR + s] = j < nc ? Self.value(p0 + p, j0 + j) : 0
                }
            }
        }
    }
}

/// c = max(c + bias[i], 0), and counts how often each element was visited.
private final class BiasReLUCounting: GEMMEpilogue, @unchecked Sendable {
    let bias: [Float]
    let visits: UnsafeMutablePointer<Int>
    let n: Int
    init(bias: [Float], n: Int) {
        self.bias = bias; self.n = n
        visits = .allocate(capacity: bias.count * n)
        visits.initialize(repeating: 0, count: bias.count * n)
    }
    deinit { visits.deallocate() }
    func apply(c: UnsafeMutablePointer<Float>, ldc: Int, i0: Int, mc: Int, j0: Int, nc: Int) {
        for i in i0..<(i0 + mc) {
            for j in j0..<(j0 + nc) {
                c[i * ldc + j] = max(c[i * ldc + j] + bias[i], 0)
                visits[i * n + j] += 1   // blocks are disjoint, so no two threads touch one counter
            }
        }
    }
}

@Suite("Fast SGEMM with caller-supplied packing")
struct FastGEMMPackerTests {
    @Test("computed B panels and a fused bias + ReLU epilogue (serial, n split, k split)",
          arguments: [(1, 45), (2, 45), (2, 300)])
    func customPackerAndEpilogue(threads: Int, k: Int) {
        let m = 29, n = 150
        let gemm = FastGEMM(pool: ThreadPool(threadCount: threads), blocking: tinyBlocking, parallelOverhead: 0)
        let plan = gemm.splitPlan(m: m, n: n, k: k)
        if threads == 1 { #expect(plan.axis == .none) } else if k > 64 { #expect(plan.axis == .k, "\(plan)") } else {
            #expect(plan.axis == .m || plan.axis == .n, "\(plan)")   // a cooperative split
        }
        var rng = FastGEMMTestRNG(7)
        let a = rng.array(m * k)
        let bias = rng.array(m)
        var c = [Float](repeating: .nan, count: m * n)
        let epilogue = BiasReLUCounting(bias: bias, n: n)
        a.withUnsafeBufferPointer { pa in
            c.withUnsafeMutableBufferPointer { pc in
                gemm.sgemm(m: m, n: n, k: k, alpha: 1, a: GEMMMatrixA(pa.baseAddress!, ld: k, transposed: false),
                           b: ComputedB(), beta: 0, c: pc.baseAddress!, ldc: n, epilogue: epilogue)
            }
        }
        #expect((0..<(m * n)).allSatisfy { epilogue.visits[$0] == 1 }, "every element of C gets the epilogue exactly once")
        var worst = 0.0
        for i in 0..<m {
            for j in 0..<n {
                var s = Double(bias[i]), mag = abs(Double(bias[i]))
                for p in 0..<k {
                    let t = Double(a[i * k + p]) * Double(ComputedB.value(p, j))
                    s += t; mag += abs(t)
                }
                let ref = max(s, 0)
                worst = max(worst, abs(Double(c[i * n + j]) - ref) / (1e-4 * mag + 1e-30))
            }
        }
        #expect(worst <= 1, "worst error \(worst)x the bound")
    }

    @Test("sgemmSerial equals sgemm")
    func serialEntry() {
        let c = GEMMCase(transA: true, transB: false, m: 33, n: 70, k: 40, alpha: 1, beta: 1)
        let gemm = FastGEMM(pool: ThreadPool(threadCount: 2), blocking: tinyBlocking, parallelOverhead: 0)
        var got = c.c0
        c.a.withUnsafeBufferPointer { pa in
            c.b.withUnsafeBufferPointer { pb in
                got.withUnsafeMutableBufferPointer { pc in
                    gemm.sgemmSerial(m: c.m, n: c.n, k: c.k, alpha: c.alpha,
                                     a: GEMMMatrixA(pa.baseAddress!, ld: c.lda, transposed: true),
                                     b: GEMMMatrixB(pb.baseAddress!, ld: c.ldb, transposed: false),
                                     beta: c.beta, c: pc.baseAddress!, ldc: c.ldc, epilogue: GEMMNoEpilogue())
                }
            }
        }
        c.check(got, "serial entry")
        #expect(got == c.run(gemm))
    }

    @Test("sgemm called from inside pool tasks (nested: runs serially per task, shared workspace)")
    func nestedCalls() {
        let pool = ThreadPool(threadCount: 2)
        let gemm = FastGEMM(pool: pool, blocking: tinyBlocking, parallelOverhead: 0)
        let cases = (0..<6).map { GEMMCase(transA: $0 % 2 == 0, transB: $0 % 3 == 0, m: 20 + $0, n: 70, k: 30, seed: UInt64($0)) }
        let results = UnsafeMutablePointer<[Float]>.allocate(capacity: cases.count)
        results.initialize(repeating: [], count: cases.count)
        defer { results.deinitialize(count: cases.count); results.deallocate() }
        pool.parallelFor(cases.count) { i in results[i] = cases[i].run(gemm) }
        for i in cases.indices { cases[i].check(results[i], "nested call \(i)") }
    }

    @Test("workspace keeps its buffers between calls")
    func workspaceReuse() {
        let ws = Workspace()
        let gemm = FastGEMM(pool: ThreadPool(threadCount: 1), workspace: ws, blocking: tinyBlocking)
        let c = GEMMCase(transA: false, transB: false, m: 30, n: 70, k: 40)
        _ = c.run(gemm)
        let reserved = ws.bytesReserved
        #expect(reserved > 0)
        _ = c.run(gemm)
        #expect(ws.bytesReserved == reserved)
    }
}
