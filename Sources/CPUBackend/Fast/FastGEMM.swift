// Fast SGEMM: packed, cache-blocked, register-blocked SIMD matrix multiply in pure Swift.
//
// Reference: the Backend.gemm contract (CNNCore/Backend.swift) — row-major
//   C = alpha * op(A) * op(B) + beta * C,  op(A): (m, k), op(B): (k, n), C: (m, n),
// lda/ldb/ldc are row strides of the stored matrices, beta == 0 ignores C's contents (NaNs too).
// Tested against a plain triple loop in Tests/CPUBackendTests/FastGEMMTests.swift.
//
// Structure (BLIS's five loops; our broadcast operand A plays BLIS's B and vice versa):
//   for ic in m step MC:                 A block (MC x KC) packed once per (ic, pc), lives in L3
//     for pc in k step KC:
//       pack op(A)[ic.., pc..]
//       for jc in n step NC:             B block (KC x NC) packed, lives in L2
//         pack op(B)[pc.., jc..]
//         for ir in MC step MR:          A micro-panel (KC x MR) reused from L1/L2
//           for jr in NC step NR:        B micro-panels stream from L2; C tiles stream along rows
//             micro-kernel: C[ir.., jr..] (MR x NR) += A panel * B panel
// The innermost loop walks along rows of C (consecutive 128-byte pieces of the same 12 rows), which
// the hardware prefetchers follow; walking down C instead (12 new rows per call) measured up to
// 1.6x slower for large n.
// Multi-threading splits C into one rectangle per thread (along n when n >= m, else along m),
// each an independent serial GEMM with its own packing buffers; small problems run on one thread.
// Packing buffers come from a workspace that only grows: no allocation in the steady state.

import Synchronization

/// Cache-blocking sizes (in elements). Defaults suit 48 KiB L1d / 2 MiB L2 per core (Sapphire
/// Rapids); measured against (256, 3072, 1024) and (512, 3072, 512), which came within noise.
public struct GEMMBlocking: Sendable, Equatable {
    /// Depth of one packed block: the A micro-panel (KC x MR) and B micro-panel (KC x NR) lengths.
    public var kc: Int
    /// Rows of op(A) per packed A block (a multiple of GEMMTile.mr); the block lives in L3.
    public var mc: Int
    /// Columns of op(B) per packed B block (a multiple of GEMMTile.nr); KC x NC floats live in L2.
    public var nc: Int
    public init(kc: Int = 384, mc: Int = 3072, nc: Int = 768) {
        self.kc = max(1, kc)
        self.mc = max(GEMMTile.mr, mc / GEMMTile.mr * GEMMTile.mr)
        self.nc = max(GEMMTile.nr, nc / GEMMTile.nr * GEMMTile.nr)
    }
}

/// Reusable packing buffers: a set of per-task slots handed out under a lock, grown on demand,
/// never freed while the workspace lives. Safe to share between threads and concurrent calls.
public final class GEMMWorkspace: @unchecked Sendable {
    final class Slot: @unchecked Sendable {  // used by one task at a time
        var a: UnsafeMutablePointer<Float>? = nil
        var aCapacity = 0
        var b: UnsafeMutablePointer<Float>? = nil
        var bCapacity = 0
        /// One MR x NR tile for edges of C.
        let tile = UnsafeMutablePointer<Float>(
            OpaquePointer(UnsafeMutableRawPointer.allocate(byteCount: GEMMTile.mr * GEMMTile.nr * 4, alignment: 64)))

        func aBuffer(_ count: Int) -> UnsafeMutablePointer<Float> {
            if count > aCapacity {
                a.map { UnsafeMutableRawPointer($0).deallocate() }
                a = Self.allocate(count); aCapacity = count
            }
            return a!
        }
        func bBuffer(_ count: Int) -> UnsafeMutablePointer<Float> {
            if count > bCapacity {
                b.map { UnsafeMutableRawPointer($0).deallocate() }
                b = Self.allocate(count); bCapacity = count
            }
            return b!
        }
        static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
            let raw = UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64)
            return raw.bindMemory(to: Float.self, capacity: count)
        }
        deinit {
            a.map { UnsafeMutableRawPointer($0).deallocate() }
            b.map { UnsafeMutableRawPointer($0).deallocate() }
            UnsafeMutableRawPointer(tile).deallocate()
        }
    }

    private let free = Mutex<[Slot]>([])

    public init() {}

    /// Bytes held by all slots (for memory reports).
    public var bytesReserved: Int {
        free.withLock { slots in slots.reduce(0) { $0 + ($1.aCapacity + $1.bCapacity + GEMMTile.mr * GEMMTile.nr) * 4 } }
    }

    func withSlot<R>(_ body: (Slot) -> R) -> R {
        let slot = free.withLock { slots -> Slot? in slots.popLast() } ?? Slot()
        defer { free.withLock { slots in slots.append(slot) } }
        return body(slot)
    }
}

/// The fast SGEMM with its thread pool and workspace. One instance per backend; calls may come
/// from several threads at once (each then uses its own workspace slots).
public final class FastGEMM: @unchecked Sendable {
    public let pool: ThreadPool
    public let workspace: GEMMWorkspace
    public let blocking: GEMMBlocking
    /// Problems with fewer multiply-adds (m*n*k) than this run on the calling thread only.
    public let parallelThreshold: Int

    public init(pool: ThreadPool = .shared, workspace: GEMMWorkspace = GEMMWorkspace(),
                blocking: GEMMBlocking = GEMMBlocking(), parallelThreshold: Int = 1 << 18) {
        self.pool = pool
        self.workspace = workspace
        self.blocking = blocking
        self.parallelThreshold = parallelThreshold
    }

    /// A process-wide instance on `ThreadPool.shared`.
    public static let shared = FastGEMM()

    // MARK: Public entry points

    /// Row-major C = alpha * op(A) * op(B) + beta * C (the `Backend.gemm` contract).
    /// op(A): (m, k) — A stored (m, k), or (k, m) if transA; op(B): (k, n) — B stored (k, n), or (n, k)
    /// if transB; C: (m, n). lda/ldb/ldc: row strides of the stored matrices. beta == 0 ignores C.
    public func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                      a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                      beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        sgemm(m: m, n: n, k: k, alpha: alpha,
              a: GEMMMatrixA(a, ld: lda, transposed: transA),
              b: GEMMMatrixB(b, ld: ldb, transposed: transB),
              beta: beta, c: c, ldc: ldc, epilogue: GEMMNoEpilogue())
    }

    /// `batch` independent GEMMs; item i uses a + i*strideA, b + i*strideB, c + i*strideC
    /// (a stride of 0 reuses one matrix for every item; C items must not overlap).
    public func sgemmStridedBatched(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                                    a: UnsafePointer<Float>, lda: Int, strideA: Int,
                                    b: UnsafePointer<Float>, ldb: Int, strideB: Int,
                                    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, strideC: Int,
                                    batch: Int) {
        if batch <= 0 || m <= 0 || n <= 0 { return }
        if batch == 1 {
            sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                  b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        let threads = pool.threadCount
        let work = m * n * max(k, 1)
        // Split each item into `parts` rectangles so that batch*parts tasks keep every thread busy.
        var parts = 1
        if batch < 2 * threads && work >= parallelThreshold {
            parts = min((2 * threads + batch - 1) / batch, threads)
        }
        let tasks = batch * parts
        if threads == 1 || work * batch < parallelThreshold {
            for i in 0..<batch {
                runSerial(m: m, n: n, k: k, alpha: alpha,
                          a: GEMMMatrixA(a + i * strideA, ld: lda, transposed: transA),
                          b: GEMMMatrixB(b + i * strideB, ld: ldb, transposed: transB),
                          beta: beta, c: c + i * strideC, ldc: ldc, epilogue: GEMMNoEpilogue(),
                          rows: 0..<m, cols: 0..<n)
            }
            return
        }
        pool.parallelFor(tasks) { t in
            let i = t / parts, part = t % parts
            let (rows, cols) = Self.partition(m: m, n: n, parts: parts, index: part)
            runSerial(m: m, n: n, k: k, alpha: alpha,
                      a: GEMMMatrixA(a + i * strideA, ld: lda, transposed: transA),
                      b: GEMMMatrixB(b + i * strideB, ld: ldb, transposed: transB),
                      beta: beta, c: c + i * strideC, ldc: ldc, epilogue: GEMMNoEpilogue(),
                      rows: rows, cols: cols)
        }
    }

    /// The general form: op(A) and op(B) come from packers (e.g. a convolution packing im2col
    /// patches on the fly), and `epilogue` runs on each finished block of C.
    /// C = alpha * op(A) * op(B) + beta * C, C: (m, n) row-major with row stride ldc.
    public func sgemm<PA: GEMMPackA, PB: GEMMPackB, E: GEMMEpilogue>(
        m: Int, n: Int, k: Int, alpha: Float, a: PA, b: PB, beta: Float,
        c: UnsafeMutablePointer<Float>, ldc: Int, epilogue: E
    ) {
        if m <= 0 || n <= 0 { return }
        let threads = pool.threadCount
        let parts = (threads == 1 || m * n * max(k, 1) < parallelThreshold) ? 1 : threads
        if parts == 1 {
            runSerial(m: m, n: n, k: k, alpha: alpha, a: a, b: b, beta: beta, c: c, ldc: ldc,
                      epilogue: epilogue, rows: 0..<m, cols: 0..<n)
            return
        }
        pool.parallelFor(parts) { t in
            let (rows, cols) = Self.partition(m: m, n: n, parts: parts, index: t)
            runSerial(m: m, n: n, k: k, alpha: alpha, a: a, b: b, beta: beta, c: c, ldc: ldc,
                      epilogue: epilogue, rows: rows, cols: cols)
        }
    }

    /// The same as `sgemm`, always on the calling thread (for callers that parallelize themselves).
    public func sgemmSerial<PA: GEMMPackA, PB: GEMMPackB, E: GEMMEpilogue>(
        m: Int, n: Int, k: Int, alpha: Float, a: PA, b: PB, beta: Float,
        c: UnsafeMutablePointer<Float>, ldc: Int, epilogue: E
    ) {
        if m <= 0 || n <= 0 { return }
        runSerial(m: m, n: n, k: k, alpha: alpha, a: a, b: b, beta: beta, c: c, ldc: ldc,
                  epilogue: epilogue, rows: 0..<m, cols: 0..<n)
    }

    // MARK: Work split

    /// Rectangle `index` of `parts`: C split along n (in NR multiples) when n >= m, else along m
    /// (in MR multiples). Splitting along n repacks A in each part, along m repacks B: the split
    /// follows the larger dimension so the repacked operand is the smaller one. A part may be empty.
    static func partition(m: Int, n: Int, parts: Int, index: Int) -> (Range<Int>, Range<Int>) {
        if parts == 1 { return (0..<m, 0..<n) }
        if n >= m {
            let r = split(n, parts: parts, index: index, grain: GEMMTile.nr)
            return (0..<m, r)
        } else {
            let r = split(m, parts: parts, index: index, grain: GEMMTile.mr)
            return (r, 0..<n)
        }
    }

    static func split(_ count: Int, parts: Int, index: Int, grain: Int) -> Range<Int> {
        let units = (count + grain - 1) / grain
        let lo = min(count, index * units / parts * grain)
        let hi = min(count, (index + 1) * units / parts * grain)
        return lo..<hi
    }

    // MARK: The serial blocked driver

    /// C[rows, cols] = alpha * op(A)[rows, :] * op(B)[:, cols] + beta * C[rows, cols].
    func runSerial<PA: GEMMPackA, PB: GEMMPackB, E: GEMMEpilogue>(
        m: Int, n: Int, k: Int, alpha: Float, a: PA, b: PB, beta: Float,
        c: UnsafeMutablePointer<Float>, ldc: Int, epilogue: E, rows: Range<Int>, cols: Range<Int>
    ) {
        if rows.isEmpty || cols.isEmpty { return }
        if k <= 0 || alpha == 0 {
            scaleC(c, ldc: ldc, rows: rows, cols: cols, beta: beta)
            epilogue.apply(c: c, ldc: ldc, i0: rows.lowerBound, mc: rows.count, j0: cols.lowerBound, nc: cols.count)
            return
        }
        let MR = GEMMTile.mr, NR = GEMMTile.nr
        let KC = min(blocking.kc, k)
        let MC = min(blocking.mc, (rows.count + MR - 1) / MR * MR)
        let NC = min(blocking.nc, (cols.count + NR - 1) / NR * NR)
        workspace.withSlot { slot in
            let aPack = slot.aBuffer(MC * KC)
            let bPack = slot.bBuffer(KC * NC)
            var ic = rows.lowerBound
            while ic < rows.upperBound {
                let mc = min(MC, rows.upperBound - ic)
                var pc = 0
                while pc < k {
                    let kc = min(KC, k - pc)
                    let betaBlock: Float = pc == 0 ? beta : 1
                    let last = pc + kc == k
                    a.packA(into: aPack, i0: ic, mc: mc, p0: pc, kc: kc)
                    var jc = cols.lowerBound
                    while jc < cols.upperBound {
                        let nc = min(NC, cols.upperBound - jc)
                        b.packB(into: bPack, p0: pc, kc: kc, j0: jc, nc: nc)
                        macroKernel(mc: mc, nc: nc, kc: kc, aPack: aPack, bPack: bPack,
                                    c: c + ic * ldc + jc, ldc: ldc, alpha: alpha, beta: betaBlock, tile: slot.tile)
                        if last { epilogue.apply(c: c, ldc: ldc, i0: ic, mc: mc, j0: jc, nc: nc) }
                        jc += nc
                    }
                    pc += kc
                }
                ic += mc
            }
        }
    }

    /// C block (mc x nc at c, row stride ldc) = alpha * packed A block * packed B block + beta * C.
    @inline(__always)
    func macroKernel(mc: Int, nc: Int, kc: Int, aPack: UnsafeMutablePointer<Float>, bPack: UnsafeMutablePointer<Float>,
                     c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float, beta: Float,
                     tile: UnsafeMutablePointer<Float>) {
        let MR = GEMMTile.mr, NR = GEMMTile.nr
        var ir = 0
        while ir < mc {
            let mr = min(MR, mc - ir)
            let aPanel = UnsafePointer(aPack + ir * kc)   // panel ir/MR starts at (ir/MR)*kc*MR
            var jr = 0
            while jr < nc {
                let nr = min(NR, nc - jr)
                let bPanel = UnsafePointer(bPack + jr * kc)   // panel jr/NR starts at (jr/NR)*kc*NR
                let cTile = c + ir * ldc + jr
                if nr == NR && (mr == MR || mr == 8 || mr == 4) {
                    // Full-width tile straight into C (8 and 4 rows: the last panel of m = 8, 16, 64, ...).
                    if mr == MR {
                        microKernel12x32(kc: kc, a: aPanel, b: bPanel, c: cTile, ldc: ldc, alpha: alpha, beta: beta)
                    } else if mr == 8 {
                        microKernel8x32(kc: kc, a: aPanel, b: bPanel, c: cTile, ldc: ldc, alpha: alpha, beta: beta)
                    } else {
                        microKernel4x32(kc: kc, a: aPanel, b: bPanel, c: cTile, ldc: ldc, alpha: alpha, beta: beta)
                    }
                } else {
                    // Edge tile: compute the smallest kernel that covers mr rows into `tile`, then merge.
                    if mr <= 4 {
                        microKernel4x32(kc: kc, a: aPanel, b: bPanel, c: tile, ldc: NR, alpha: 1, beta: 0)
                    } else if mr <= 8 {
                        microKernel8x32(kc: kc, a: aPanel, b: bPanel, c: tile, ldc: NR, alpha: 1, beta: 0)
                    } else {
                        microKernel12x32(kc: kc, a: aPanel, b: bPanel, c: tile, ldc: NR, alpha: 1, beta: 0)
                    }
                    for r in 0..<mr {
                        let src = tile + r * NR, dst = cTile + r * ldc
                        if beta == 0 {
                            for s in 0..<nr { dst[s] = alpha * src[s] }
                        } else {
                            for s in 0..<nr { dst[s] = alpha * src[s] + beta * dst[s] }
                        }
                    }
                }
                jr += NR
            }
            ir += MR
        }
    }

    /// C[rows, cols] *= beta (beta == 0 writes zeros without reading C).
    func scaleC(_ c: UnsafeMutablePointer<Float>, ldc: Int, rows: Range<Int>, cols: Range<Int>, beta: Float) {
        for i in rows {
            let row = c + i * ldc
            if beta == 0 {
                for j in cols { row[j] = 0 }
            } else if beta != 1 {
                for j in cols { row[j] *= beta }
            }
        }
    }
}
