// Fast SGEMM: packed, cache-blocked, register-blocked SIMD matrix multiply in pure Swift.
//
// Reference: the Backend.gemm contract (CNNCore/Backend.swift) — row-major
//   C = alpha * op(A) * op(B) + beta * C,  op(A): (m, k), op(B): (k, n), C: (m, n),
// lda/ldb/ldc are row strides of the stored matrices, beta == 0 ignores C's contents (NaNs too).
// Tested against a plain triple loop in Tests/SGEMMTests/FastGEMMTests.swift.
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
// Multi-threading (splitPlan): C is split into one rectangle per thread (along n or m) — the
// threads run the same block loops, pack the operand they all need together into a shared buffer
// (barriers between packing and use) and each its own part of the other — or k is split into
// partial products that are summed afterwards (small C and long k: linear layers, weight
// gradients). Small problems run on the calling thread.
// Packing buffers come from a workspace (Workspace.swift) that only grows: no allocation in the
// steady state.

import Synchronization

/// Cache-blocking sizes (in elements). Defaults suit 48 KiB L1d / 2 MiB L2 per core (Sapphire
/// Rapids); measured against (256, 3072, 1024) and (512, 3072, 512), which came within noise.
package struct GEMMBlocking: Sendable, Equatable {
    /// Depth of one packed block: the A micro-panel (KC x MR) and B micro-panel (KC x NR) lengths.
    package var kc: Int
    /// Rows of op(A) per packed A block (a multiple of GEMMTile.mr); the block lives in L3.
    package var mc: Int
    /// Columns of op(B) per packed B block (a multiple of GEMMTile.nr); KC x NC floats live in L2.
    package var nc: Int
    package init(kc: Int = 384, mc: Int = 3072, nc: Int = 768) {
        self.kc = max(1, kc)
        self.mc = max(GEMMTile.mr, mc / GEMMTile.mr * GEMMTile.mr)
        self.nc = max(GEMMTile.nr, nc / GEMMTile.nr * GEMMTile.nr)
    }
}

/// The SGEMM's use of a workspace slot (Workspace.swift): buffer 0 the packed A block, 1 the packed
/// B block, 2 the partial products of a k split, 3 one MR x NR tile for edges of C.
extension Workspace.Slot {
    @inline(__always) func aBuffer(_ count: Int) -> UnsafeMutablePointer<Float> { floats(0, count) }
    @inline(__always) func bBuffer(_ count: Int) -> UnsafeMutablePointer<Float> { floats(1, count) }
    @inline(__always) func cBuffer(_ count: Int) -> UnsafeMutablePointer<Float> { floats(2, count) }
    @inline(__always) func tile() -> UnsafeMutablePointer<Float> { floats(3, GEMMTile.mr * GEMMTile.nr) }
}

/// How one GEMM is divided among threads (see `FastGEMM.splitPlan`).
package struct GEMMSplit: Sendable, Equatable, CustomStringConvertible {
    package enum Axis: String, Sendable {
        /// One thread.
        case none
        /// Row ranges of C (multiples of MR); op(B) is packed by all threads together into a
        /// shared buffer, each thread packs its rows of op(A).
        case m
        /// Column ranges of C (multiples of NR); op(A) is packed together, each thread packs its
        /// columns of op(B).
        case n
        /// Depth ranges: each thread computes a partial product, then the partials are summed
        /// (no operand is packed twice; costs an (m, n) buffer per extra thread and a reduction).
        case k
    }
    package var axis: Axis
    package var parts: Int
    package var description: String { axis == .none ? "serial" : "\(parts) parts along \(axis.rawValue)" }
}

/// The fast SGEMM with its thread pool and workspace. One instance per backend; calls may come
/// from several threads at once (each then uses its own workspace slots).
package final class FastGEMM: @unchecked Sendable {
    package let pool: ThreadPool
    package let workspace: Workspace
    package let blocking: GEMMBlocking
    /// The estimated cost of running a job on the pool, in multiply-adds: the work split compares
    /// it with what a thread saves. 0 splits every problem that can be split (tests use that).
    package let parallelOverhead: Int

    package init(pool: ThreadPool = .shared, workspace: Workspace = Workspace(),
                 blocking: GEMMBlocking = GEMMBlocking(), parallelOverhead: Int = 1 << 18) {
        self.pool = pool
        self.workspace = workspace
        self.blocking = blocking
        self.parallelOverhead = max(0, parallelOverhead)
    }

    /// A process-wide instance on `ThreadPool.shared`.
    package static let shared = FastGEMM()

    // MARK: Public entry points

    /// Row-major C = alpha * op(A) * op(B) + beta * C (the `Backend.gemm` contract).
    /// op(A): (m, k) — A stored (m, k), or (k, m) if transA; op(B): (k, n) — B stored (k, n), or (n, k)
    /// if transB; C: (m, n). lda/ldb/ldc: row strides of the stored matrices. beta == 0 ignores C.
    package func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                       a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                       beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        sgemm(m: m, n: n, k: k, alpha: alpha,
              a: GEMMMatrixA(a, ld: lda, transposed: transA),
              b: GEMMMatrixB(b, ld: ldb, transposed: transB),
              beta: beta, c: c, ldc: ldc, epilogue: GEMMNoEpilogue())
    }

    /// `batch` independent GEMMs; item i uses a + i*strideA, b + i*strideB, c + i*strideC
    /// (a stride of 0 reuses one matrix for every item; C items must not overlap).
    /// Many small items run one per task; a few large ones each use the pool in turn.
    package func sgemmStridedBatched(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                                     a: UnsafePointer<Float>, lda: Int, strideA: Int,
                                     b: UnsafePointer<Float>, ldb: Int, strideB: Int,
                                     beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, strideC: Int,
                                     batch: Int) {
        if batch <= 0 || m <= 0 || n <= 0 { return }
        let threads = pool.threadCount
        let itemPlan = splitPlan(m: m, n: n, k: k)
        if batch == 1 || (itemPlan.axis != .none && batch < 2 * threads) {
            for i in 0..<batch {
                sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                      a: a + i * strideA, lda: lda, b: b + i * strideB, ldb: ldb,
                      beta: beta, c: c + i * strideC, ldc: ldc)
            }
            return
        }
        let items = BatchItemTask(gemm: self, transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                                  a: a, lda: lda, strideA: strideA, b: b, ldb: ldb, strideB: strideB,
                                  beta: beta, c: c, ldc: ldc, strideC: strideC)
        if threads == 1 || m * n * max(k, 1) * batch < parallelOverhead {
            for i in 0..<batch { items.run(i) }
        } else {
            pool.parallelFor(batch, items)
        }
    }

    /// The general form: op(A) and op(B) come from packers (e.g. a convolution packing im2col
    /// patches on the fly), and `epilogue` runs on each finished block of C.
    /// C = alpha * op(A) * op(B) + beta * C, C: (m, n) row-major with row stride ldc.
    package func sgemm<PA: GEMMPackA, PB: GEMMPackB, E: GEMMEpilogue>(
        m: Int, n: Int, k: Int, alpha: Float, a: PA, b: PB, beta: Float,
        c: UnsafeMutablePointer<Float>, ldc: Int, epilogue: E
    ) {
        if m <= 0 || n <= 0 { return }
        let plan = (k <= 0 || alpha == 0) ? GEMMSplit(axis: .none, parts: 1) : splitPlan(m: m, n: n, k: k)
        switch plan.axis {
        case .none:
            runSerial(m: m, n: n, k: k, alpha: alpha, a: a, b: b, beta: beta, c: c, ldc: ldc,
                      epilogue: epilogue, rows: 0..<m, cols: 0..<n, depth: 0..<max(k, 0))
        case .m, .n:
            // One rectangle of C per thread; the operand every thread needs (A for an n split, B for
            // an m split) is packed once, cooperatively, into a shared buffer.
            let KC = min(blocking.kc, k)
            let MC = min(blocking.mc, (m + GEMMTile.mr - 1) / GEMMTile.mr * GEMMTile.mr)
            let NC = min(blocking.nc, (n + GEMMTile.nr - 1) / GEMMTile.nr * GEMMTile.nr)
            workspace.withSlots(plan.parts + 1) { slots in
                let shared = plan.axis == .n ? slots[plan.parts].aBuffer(MC * KC) : slots[plan.parts].bBuffer(KC * NC)
                let ran = pool.runConcurrently(plan.parts, CooperativeTask(
                    gemm: self, plan: plan, m: m, n: n, k: k, alpha: alpha, a: a, b: b, beta: beta,
                    c: c, ldc: ldc, epilogue: epilogue, shared: shared, slots: slots))
                if !ran {   // the pool is busy: we are inside someone's parallel region already
                    runSerial(m: m, n: n, k: k, alpha: alpha, a: a, b: b, beta: beta, c: c, ldc: ldc,
                              epilogue: epilogue, rows: 0..<m, cols: 0..<n, depth: 0..<k)
                }
            }
        case .k:
            workspace.withSlots(plan.parts) { slots in
                // partial t (1..<parts): (m, n) with row stride n, in slot 0; part 0 goes straight into C.
                let partials = slots[0].cBuffer((plan.parts - 1) * m * n)
                pool.parallelFor(plan.parts, DepthTask(gemm: self, parts: plan.parts, m: m, n: n, k: k, alpha: alpha,
                                                       a: a, b: b, beta: beta, c: c, ldc: ldc, partials: partials,
                                                       slots: slots))
                pool.parallelRanges(m, SumPartialsTask(parts: plan.parts, m: m, n: n, c: c, ldc: ldc,
                                                       partials: partials, epilogue: epilogue))
            }
        }
    }

    /// The same as `sgemm`, always on the calling thread (for callers that parallelize themselves).
    package func sgemmSerial<PA: GEMMPackA, PB: GEMMPackB, E: GEMMEpilogue>(
        m: Int, n: Int, k: Int, alpha: Float, a: PA, b: PB, beta: Float,
        c: UnsafeMutablePointer<Float>, ldc: Int, epilogue: E
    ) {
        if m <= 0 || n <= 0 { return }
        runSerial(m: m, n: n, k: k, alpha: alpha, a: a, b: b, beta: beta, c: c, ldc: ldc,
                  epilogue: epilogue, rows: 0..<m, cols: 0..<n, depth: 0..<max(k, 0))
    }

    // MARK: Work split

    /// The split `sgemm` uses for an (m, n, k) problem on this pool: the one with the shortest
    /// estimated critical path, in multiply-add units, counting
    ///   the multiply-adds of the largest part (parts are whole MR / NR tiles, so they can be uneven),
    ///   ~16 per packed element (the shared operand of an m / n split is packed by all parts together),
    ///   ~16 per element of C summed in a k split, and `parallelOverhead` per pool job.
    package func splitPlan(m: Int, n: Int, k: Int) -> GEMMSplit {
        let threads = pool.threadCount
        let work = Double(m) * Double(n) * Double(max(k, 1))
        let pack = 16.0, reduce = 16.0, overhead = Double(parallelOverhead)
        let mk = Double(m) * Double(k), kn = Double(k) * Double(n), mn = Double(m) * Double(n)
        var best = GEMMSplit(axis: .none, parts: 1)
        var bestCost = work + pack * (mk + kn)
        if threads == 1 || k <= 0 { return best }
        func consider(_ axis: GEMMSplit.Axis, _ parts: Int, _ cost: Double) {
            if parts > 1 && cost < bestCost { best = GEMMSplit(axis: axis, parts: parts); bestCost = cost }
        }
        // Along n: A packed together (1/parts each), B by each part for its columns.
        let unitsN = (n + GEMMTile.nr - 1) / GEMMTile.nr
        let pn = min(threads, unitsN)
        if pn > 1 {
            let share = Double(Self.largestPart(n, parts: pn, grain: GEMMTile.nr)) / Double(n)
            consider(.n, pn, work * share + pack * (mk / Double(pn) + kn * share) + overhead)
        }
        // Along m: B packed together, A by each part for its rows.
        let unitsM = (m + GEMMTile.mr - 1) / GEMMTile.mr
        let pm = min(threads, unitsM)
        if pm > 1 {
            let share = Double(Self.largestPart(m, parts: pm, grain: GEMMTile.mr)) / Double(m)
            consider(.m, pm, work * share + pack * (kn / Double(pm) + mk * share) + overhead)
        }
        // Along k (at least 64 deep per part): shares of both operands, then a parallel reduction.
        let pk = min(threads, k / 64)
        if pk > 1 {
            let share = 1.0 / Double(pk)
            consider(.k, pk, work * share + pack * (mk + kn) * share + reduce * mn * Double(pk - 1) / Double(pk) + 2 * overhead)
        }
        return best
    }

    static func largestPart(_ count: Int, parts: Int, grain: Int) -> Int {
        (0..<parts).reduce(0) { max($0, split(count, parts: parts, index: $1, grain: grain).count) }
    }

    /// Part `index` of `parts` of 0..<count, in multiples of `grain` (the last part takes the rest).
    /// A part may be empty.
    package static func split(_ count: Int, parts: Int, index: Int, grain: Int) -> Range<Int> {
        let units = (count + grain - 1) / grain
        let lo = min(count, index * units / parts * grain)
        let hi = min(count, (index + 1) * units / parts * grain)
        return lo..<hi
    }

    // MARK: The cooperative driver (one call per thread of a runConcurrently job)

    /// Thread `t` of `plan.parts`: C[rows_t, cols_t] of an m or n split, with the same block loops
    /// in every thread. The operand all threads need goes into `shared`, each thread packing a
    /// contiguous share of its micro-panels between two barriers:
    ///   n split: the A block (MC x KC) is shared; each thread packs and uses its own B blocks.
    ///   m split: each B block (KC x NC) is shared; each thread packs its own rows of the A block.
    /// Every thread runs the same number of barriers (the ic / pc / jc loops are global; a thread
    /// whose rows miss a block still takes part in packing it).
    func runCooperative<PA: GEMMPackA, PB: GEMMPackB, E: GEMMEpilogue>(
        thread t: Int, plan: GEMMSplit, m: Int, n: Int, k: Int, alpha: Float, a: PA, b: PB, beta: Float,
        c: UnsafeMutablePointer<Float>, ldc: Int, epilogue: E, shared: UnsafeMutablePointer<Float>,
        slot: Workspace.Slot
    ) {
        let MR = GEMMTile.mr, NR = GEMMTile.nr, P = plan.parts
        let KC = min(blocking.kc, k)
        let MC = min(blocking.mc, (m + MR - 1) / MR * MR)
        let NC = min(blocking.nc, (n + NR - 1) / NR * NR)
        let myRows = plan.axis == .m ? Self.split(m, parts: P, index: t, grain: MR) : 0..<m
        let myCols = plan.axis == .n ? Self.split(n, parts: P, index: t, grain: NR) : 0..<n
        do {
            let own = plan.axis == .n ? slot.bBuffer(KC * NC) : slot.aBuffer(MC * KC)
            let tile = slot.tile()
            var ic = 0
            while ic < m {
                let mc = min(MC, m - ic)
                var pc = 0
                while pc < k {
                    let kc = min(KC, k - pc)
                    let betaBlock: Float = pc == 0 ? beta : 1
                    let last = pc + kc == k
                    if plan.axis == .n {
                        pool.barrier()   // everyone is done with the previous A block
                        let panels = Self.split((mc + MR - 1) / MR, parts: P, index: t, grain: 1)
                        if !panels.isEmpty {
                            let r0 = panels.lowerBound * MR
                            a.packA(into: shared + r0 * kc, i0: ic + r0, mc: min(panels.count * MR, mc - r0), p0: pc, kc: kc)
                        }
                        pool.barrier()   // the A block is complete
                        var jc = myCols.lowerBound
                        while jc < myCols.upperBound {
                            let nc = min(NC, myCols.upperBound - jc)
                            b.packB(into: own, p0: pc, kc: kc, j0: jc, nc: nc)
                            macroKernel(mc: mc, nc: nc, kc: kc, aPack: shared, bPack: own,
                                        c: c + ic * ldc + jc, ldc: ldc, alpha: alpha, beta: betaBlock, tile: tile)
                            if last { epilogue.apply(c: c, ldc: ldc, i0: ic, mc: mc, j0: jc, nc: nc) }
                            jc += nc
                        }
                    } else {
                        let lo = max(ic, myRows.lowerBound), hi = min(ic + mc, myRows.upperBound)
                        if lo < hi { a.packA(into: own, i0: lo, mc: hi - lo, p0: pc, kc: kc) }
                        var jc = 0
                        while jc < n {
                            let nc = min(NC, n - jc)
                            pool.barrier()   // everyone is done with the previous B block
                            let panels = Self.split((nc + NR - 1) / NR, parts: P, index: t, grain: 1)
                            if !panels.isEmpty {
                                let c0 = panels.lowerBound * NR
                                b.packB(into: shared + c0 * kc, p0: pc, kc: kc, j0: jc + c0, nc: min(panels.count * NR, nc - c0))
                            }
                            pool.barrier()   // the B block is complete
                            if lo < hi {
                                macroKernel(mc: hi - lo, nc: nc, kc: kc, aPack: own, bPack: shared,
                                            c: c + lo * ldc + jc, ldc: ldc, alpha: alpha, beta: betaBlock, tile: tile)
                                if last { epilogue.apply(c: c, ldc: ldc, i0: lo, mc: hi - lo, j0: jc, nc: nc) }
                            }
                            jc += nc
                        }
                    }
                    pc += kc
                }
                ic += mc
            }
        }
    }

    // MARK: The serial blocked driver

    /// C[rows, cols] = alpha * op(A)[rows, depth] * op(B)[depth, cols] + beta * C[rows, cols].
    func runSerial<PA: GEMMPackA, PB: GEMMPackB, E: GEMMEpilogue>(
        m: Int, n: Int, k: Int, alpha: Float, a: PA, b: PB, beta: Float,
        c: UnsafeMutablePointer<Float>, ldc: Int, epilogue: E, rows: Range<Int>, cols: Range<Int>,
        depth: Range<Int>
    ) {
        if rows.isEmpty || cols.isEmpty { return }
        if depth.isEmpty || alpha == 0 {
            scaleC(c, ldc: ldc, rows: rows, cols: cols, beta: beta)
            epilogue.apply(c: c, ldc: ldc, i0: rows.lowerBound, mc: rows.count, j0: cols.lowerBound, nc: cols.count)
            return
        }
        workspace.withSlot { slot in
            runSerial(m: m, n: n, k: k, alpha: alpha, a: a, b: b, beta: beta, c: c, ldc: ldc, epilogue: epilogue,
                      rows: rows, cols: cols, depth: depth, slot: slot)
        }
    }

    /// `runSerial` with the packing buffers of `slot`.
    func runSerial<PA: GEMMPackA, PB: GEMMPackB, E: GEMMEpilogue>(
        m: Int, n: Int, k: Int, alpha: Float, a: PA, b: PB, beta: Float,
        c: UnsafeMutablePointer<Float>, ldc: Int, epilogue: E, rows: Range<Int>, cols: Range<Int>,
        depth: Range<Int>, slot: Workspace.Slot
    ) {
        if rows.isEmpty || cols.isEmpty { return }
        if depth.isEmpty || alpha == 0 {
            scaleC(c, ldc: ldc, rows: rows, cols: cols, beta: beta)
            epilogue.apply(c: c, ldc: ldc, i0: rows.lowerBound, mc: rows.count, j0: cols.lowerBound, nc: cols.count)
            return
        }
        let MR = GEMMTile.mr, NR = GEMMTile.nr
        let KC = min(blocking.kc, depth.count)
        let MC = min(blocking.mc, (rows.count + MR - 1) / MR * MR)
        let NC = min(blocking.nc, (cols.count + NR - 1) / NR * NR)
        do {
            let aPack = slot.aBuffer(MC * KC)
            let bPack = slot.bBuffer(KC * NC)
            let tile = slot.tile()
            var ic = rows.lowerBound
            while ic < rows.upperBound {
                let mc = min(MC, rows.upperBound - ic)
                var pc = depth.lowerBound
                while pc < depth.upperBound {
                    let kc = min(KC, depth.upperBound - pc)
                    let betaBlock: Float = pc == depth.lowerBound ? beta : 1
                    let last = pc + kc == depth.upperBound
                    a.packA(into: aPack, i0: ic, mc: mc, p0: pc, kc: kc)
                    var jc = cols.lowerBound
                    while jc < cols.upperBound {
                        let nc = min(NC, cols.upperBound - jc)
                        b.packB(into: bPack, p0: pc, kc: kc, j0: jc, nc: nc)
                        macroKernel(mc: mc, nc: nc, kc: kc, aPack: aPack, bPack: bPack,
                                    c: c + ic * ldc + jc, ldc: ldc, alpha: alpha, beta: betaBlock, tile: tile)
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
    package func macroKernel(mc: Int, nc: Int, kc: Int, aPack: UnsafeMutablePointer<Float>, bPack: UnsafeMutablePointer<Float>,
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

// MARK: - Parallel tasks (structs, so that starting them allocates nothing)

/// Thread t of a cooperative m / n split.
private struct CooperativeTask<PA: GEMMPackA, PB: GEMMPackB, E: GEMMEpilogue>: ParallelTask {
    let gemm: FastGEMM, plan: GEMMSplit
    let m: Int, n: Int, k: Int, alpha: Float, a: PA, b: PB, beta: Float
    let c: UnsafeMutablePointer<Float>, ldc: Int, epilogue: E, shared: UnsafeMutablePointer<Float>
    let slots: UnsafeBufferPointer<Workspace.Slot>
    func run(_ t: Int) {
        gemm.runCooperative(thread: t, plan: plan, m: m, n: n, k: k, alpha: alpha, a: a, b: b, beta: beta,
                            c: c, ldc: ldc, epilogue: epilogue, shared: shared, slot: slots[t])
    }
}

/// One depth range per part: part 0 into C (with beta), part t > 0 into partials[t - 1] (beta 0).
private struct DepthTask<PA: GEMMPackA, PB: GEMMPackB>: ParallelTask {
    let gemm: FastGEMM, parts: Int
    let m: Int, n: Int, k: Int, alpha: Float, a: PA, b: PB, beta: Float
    let c: UnsafeMutablePointer<Float>, ldc: Int, partials: UnsafeMutablePointer<Float>
    let slots: UnsafeBufferPointer<Workspace.Slot>
    func run(_ t: Int) {
        let depth = FastGEMM.split(k, parts: parts, index: t, grain: 8)
        if t == 0 {
            gemm.runSerial(m: m, n: n, k: k, alpha: alpha, a: a, b: b, beta: beta, c: c, ldc: ldc,
                           epilogue: GEMMNoEpilogue(), rows: 0..<m, cols: 0..<n, depth: depth, slot: slots[t])
        } else {
            gemm.runSerial(m: m, n: n, k: k, alpha: alpha, a: a, b: b, beta: 0,
                           c: partials + (t - 1) * m * n, ldc: n,
                           epilogue: GEMMNoEpilogue(), rows: 0..<m, cols: 0..<n, depth: depth, slot: slots[t])
        }
    }
}

/// C[rows, :] += sum of the partial products, then the epilogue on those rows.
private struct SumPartialsTask<E: GEMMEpilogue>: ParallelRangeTask {
    let parts: Int, m: Int, n: Int
    let c: UnsafeMutablePointer<Float>, ldc: Int, partials: UnsafeMutablePointer<Float>, epilogue: E
    func run(_ rows: Range<Int>) {
        for i in rows {
            let row = c + i * ldc
            for t in 1..<parts {
                let src = partials + (t - 1) * m * n + i * n
                for j in 0..<n { row[j] += src[j] }
            }
        }
        epilogue.apply(c: c, ldc: ldc, i0: rows.lowerBound, mc: rows.count, j0: 0, nc: n)
    }
}

/// Item i of a strided batch, on one thread.
private struct BatchItemTask: ParallelTask {
    let gemm: FastGEMM
    let transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float
    let a: UnsafePointer<Float>, lda: Int, strideA: Int, b: UnsafePointer<Float>, ldb: Int, strideB: Int
    let beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, strideC: Int
    func run(_ i: Int) {
        gemm.runSerial(m: m, n: n, k: k, alpha: alpha,
                       a: GEMMMatrixA(a + i * strideA, ld: lda, transposed: transA),
                       b: GEMMMatrixB(b + i * strideB, ld: ldb, transposed: transB),
                       beta: beta, c: c + i * strideC, ldc: ldc, epilogue: GEMMNoEpilogue(),
                       rows: 0..<m, cols: 0..<n, depth: 0..<max(k, 0))
    }
}
