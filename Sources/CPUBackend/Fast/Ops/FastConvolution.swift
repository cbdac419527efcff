// Fast convolution: implicit GEMM on FastGEMM's micro-kernels (GEMMKernel.swift), in NCHW.
//
// Forward (reference: `Reference.conv2DForward`), per image n:
//   y_n (Cout, P) = W (Cout, K) * cols_n (K, P),   K = Cin*KH*KW, P = OH*OW,
// with cols_n never materialised: its patch elements are packed straight into the B panels
// (ConvPacking.packForwardB) from the image — padded once per task so the copies need no bounds checks.
// The weights are packed once per call into A panels (all depth blocks), shared by every task.
// The columns of all images form one column space (image-major): a task takes a contiguous range
// of it (several small images, or part of a large one), packs its B blocks (KC x <=512 columns,
// in L2) and runs the micro-kernels over all output channels, writing C tiles straight into y
// (ldc = P) — or, where a tile crosses an image boundary or the edge, through a tile buffer.
// Bias + ReLU are applied to each tile right after its last depth block, while it is in L1.
//
// Backward data (reference: `Reference.conv2DBackwardData`): for stride 1 it is the forward
// convolution of dy with the flipped, transposed weights W'[ci, co, i, j] = W[co, ci, KH-1-i, KW-1-j]
// and padding KH-1-ph (same engine). Other strides: cols = W^T dy per image with FastGEMM, then col2im.
//
// Backward filter (reference: `Reference.conv2DBackwardFilter`):
//   dW (Cout, K) = sum over images and positions of dy (Cout, positions) * cols^T (positions, K),
// a GEMM whose depth is the batch's N*P positions. The batch is cut into a fixed number of image
// groups (independent of the thread count), each computing a partial dW with the micro-kernels
// (A panels: dy transposed; B panels: im2col rows built in a small buffer and transposed); the
// partials are then summed in group order. Results are bitwise the same for any thread count.
//
// Every output element of these paths is computed by one task with a fixed accumulation order, so
// results never depend on scheduling.

import CNNCore
import SGEMM

/// Row panels of an A operand with m rows: MR (12) rows each, except that m = 12k + 4 ends with two
/// panels of 8 instead of 12 + 4 (the 8-row kernel is twice as efficient as the 4-row one, and 64
/// and 256 output channels are common). Every panel is stored MR wide (rows beyond it zero).
struct RowPanels {
    let m: Int
    let count: Int
    private let split: Bool
    init(_ m: Int, standard: Bool = false) {
        self.m = m
        split = !standard && m % GEMMTile.mr == 4 && m >= 16
        count = split ? m / GEMMTile.mr + 1 : (m + GEMMTile.mr - 1) / GEMMTile.mr
    }
    /// Rows reserved per depth step (count * MR).
    var padded: Int { count * GEMMTile.mr }
    /// (first row, rows) of panel q.
    subscript(_ q: Int) -> (Int, Int) {
        if split && q >= count - 2 { return ((count - 2) * GEMMTile.mr + (q - count + 2) * 8, 8) }
        return (q * GEMMTile.mr, min(GEMMTile.mr, m - q * GEMMTile.mr))
    }
}

/// The fast paths' shared context: the thread pool, the SGEMM, and the scratch memory.
final class FastCPU: @unchecked Sendable {
    let pool: ThreadPool
    let gemm: FastGEMM
    let workspace = Workspace.fastPaths()
    /// Split every op that can be split, however small (tests use this to exercise the parallel
    /// paths on small shapes); otherwise small work runs on the calling thread.
    let splitAll: Bool

    init(pool: ThreadPool = .shared, gemm: FastGEMM = .shared, splitAll: Bool = false) {
        self.pool = pool
        self.gemm = gemm
        self.splitAll = splitAll
    }

    var threads: Int { pool.threadCount }

    /// Whether work of size `work` (in the op's units) goes to the pool: more than one thread, and
    /// at least `threshold` (or `splitAll`).
    @inline(__always)
    func split(_ work: Int, _ threshold: Int) -> Bool { threads > 1 && (splitAll || work >= threshold) }

    /// Nominal depth of a packed block (the GEMM's KC).
    static let depthBlock = 384
    /// Columns of a forward B block.
    static let columnBlock = 512
    /// Image groups of a weight gradient (fixed: the reduction order must not depend on threads).
    static let filterGroups = 4

    /// Depth blocks of nearly equal size, each at most `depthBlock`: (start, length) of block b.
    static func depthBlocks(_ k: Int) -> Int { max(1, (k + depthBlock - 1) / depthBlock) }
    static func depthBlock(_ b: Int, of blocks: Int, k: Int) -> Range<Int> {
        (b * k / blocks)..<((b + 1) * k / blocks)
    }
}

// MARK: - Forward

extension FastCPU {
    /// Fast path of `Reference.conv2DForward` (same layout and semantics; float accumulation,
    /// rtol 1e-4 of the output scale). x: (N, Cin, H, W), weight: (Cout, Cin, KH, KW), bias: (Cout)
    /// or nil, y: (N, Cout, OH, OW).
    func conv2DForward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                       y: UnsafeMutablePointer<Float>, geometry g: Conv2DGeometry, activation: Activation) {
        let d = ConvDims(g)
        let aPack = packWeights(GEMMMatrixA(weight, ld: d.k, transposed: false), m: d.cout, k: d.k)
        implicitForward(x: x, dims: d, aPack: aPack, bias: bias, relu: activation == .relu, y: y)
    }

    /// All depth blocks of op(A) (m x k) in A panels (`RowPanels(m)`): block b (depth range
    /// `depthBlock(b)`) starts at start(b) * panels.padded, panel q of it at q * MR * kc.
    func packWeights<PA: GEMMPackA>(_ a: PA, m: Int, k: Int) -> UnsafePointer<Float> {
        let panels = RowPanels(m)
        let dst = workspace.floats(.convA, panels.padded * max(k, 1))
        let blocks = Self.depthBlocks(k)
        for b in 0..<blocks {
            let r = Self.depthBlock(b, of: blocks, k: k)
            for q in 0..<panels.count {
                let (start, rows) = panels[q]
                a.packA(into: dst + r.lowerBound * panels.padded + q * GEMMTile.mr * r.count, i0: start, mc: rows,
                        p0: r.lowerBound, kc: r.count)
            }
        }
        return UnsafePointer(dst)
    }

    /// y = act(conv(x) + bias) with weights already packed by `packWeights` (m = Cout, k = K).
    func implicitForward(x: UnsafePointer<Float>, dims d: ConvDims, aPack: UnsafePointer<Float>,
                         bias: UnsafePointer<Float>?, relu: Bool, y: UnsafeMutablePointer<Float>) {
        let rowOffsets = workspace.buffer(.rowOffsets, d.k, as: Int.self)
        ConvPacking.rowOffsets(d, into: rowOffsets)
        // Work split: column ranges of the image-major column space.
        let nb = Self.columnBlock
        var imagesPerTask: Int, splits: Int
        if d.p >= nb {
            imagesPerTask = 1; splits = (d.p + nb - 1) / nb
        } else {
            imagesPerTask = max(1, nb / d.p); splits = 1
        }
        let macs = d.n * d.p * d.k * d.cout
        let parallel = split(macs, 1 << 20)
        if parallel {
            var tasks = (d.n + imagesPerTask - 1) / imagesPerTask * splits
            if tasks < 2 * threads && imagesPerTask > 1 {
                imagesPerTask = max(1, d.n / (2 * threads))
                tasks = (d.n + imagesPerTask - 1) / imagesPerTask * splits
            }
            if tasks < 2 * threads && imagesPerTask == 1 {
                splits = max(splits, min((d.p + 31) / 32, (2 * threads + d.n - 1) / d.n))
            }
        }
        let task = ConvForwardTask(d: d, x: x, y: y, aPack: aPack, rowOffsets: UnsafePointer(rowOffsets), bias: bias, relu: relu,
                                   imagesPerTask: imagesPerTask, splits: splits, scratch: workspace)
        let count = (d.n + imagesPerTask - 1) / imagesPerTask * splits
        if parallel { pool.parallelFor(count, task) } else { for t in 0..<count { task.run(t) } }
    }
}

/// One column range of an implicit-GEMM forward convolution (see the file comment).
struct ConvForwardTask: ParallelTask {
    let d: ConvDims
    let x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>
    let aPack: UnsafePointer<Float>, rowOffsets: UnsafePointer<Int>
    let bias: UnsafePointer<Float>?, relu: Bool
    let imagesPerTask: Int, splits: Int
    let scratch: Workspace

    func run(_ t: Int) {
        let chunk = t / splits, part = t % splits
        let n0 = chunk * imagesPerTask, n1 = min(d.n, n0 + imagesPerTask)
        if n0 >= n1 { return }
        let columns = (n1 - n0) * d.p
        let range = FastGEMM.split(columns, parts: splits, index: part, grain: GEMMTile.nr)
        if range.isEmpty { return }
        let NR = GEMMTile.nr, MR = GEMMTile.mr
        let mPad = RowPanels(d.cout).padded
        let blocks = FastCPU.depthBlocks(d.k)
        scratch.withSlot { slot in
            let src = PaddedImages.make(x: x, dims: d, first: n0, count: n1 - n0, scratch: { slot.floats(0, $0) })
            let nbMax = min(FastCPU.columnBlock, range.count)
            let kcMax = (d.k + blocks - 1) / blocks
            let bPack = slot.floats(1, kcMax * ((nbMax + NR - 1) / NR * NR))
            let runs = slot.buffer(2, NR, as: PatchRun.self)
            let tile = slot.floats(3, MR * NR)
            let yChunk = y + n0 * d.cout * d.p
            var q0 = range.lowerBound
            while q0 < range.upperBound {
                let nb = min(FastCPU.columnBlock, range.upperBound - q0)
                for b in 0..<blocks {
                    let kr = FastCPU.depthBlock(b, of: blocks, k: d.k)
                    ConvPacking.packForwardB(into: bPack, pc: kr.lowerBound, kc: kr.count, q0: q0, nc: nb,
                                             dims: d, src: src, rowOffsets: rowOffsets, runBuffer: runs, skipDirect: true)
                    forwardMacro(kc: kr.count, pc: kr.lowerBound, aPack: aPack + kr.lowerBound * mPad, bPack: bPack, src: src,
                                 q0: q0, nb: nb, yChunk: yChunk, accumulate: b != 0, last: b == blocks - 1, tile: tile)
                }
                q0 += nb
            }
        }
    }

    /// C tiles of one (depth block, column block): rows 0..<Cout, columns q0 ..< q0+nb of the task's
    /// images (y: (images, Cout, P) from yChunk). `accumulate` adds to C (depth blocks after the
    /// first); `last` applies bias + activation. B comes straight from the image for panels that
    /// allow it (`ConvPacking.directPanel`), else from `bPack`.
    @inline(__always)
    func forwardMacro(kc: Int, pc: Int, aPack: UnsafePointer<Float>, bPack: UnsafeMutablePointer<Float>, src: PaddedImages,
                      q0: Int, nb: Int, yChunk: UnsafeMutablePointer<Float>, accumulate: Bool, last: Bool,
                      tile: UnsafeMutablePointer<Float>) {
        let MR = GEMMTile.mr, NR = GEMMTile.nr
        let M = d.cout, P = d.p
        let epilogue = last && (bias != nil || relu)
        let beta: Float = accumulate ? 1 : 0
        let offsets = rowOffsets + pc
        let panels = RowPanels(M)
        for panel in 0..<panels.count {
            let (ir, mr) = panels[panel]
            let aPanel = aPack + panel * MR * kc
            var jr = 0
            while jr < nb {
                let nr = min(NR, nb - jr)
                let q = q0 + jr
                let img = q / P, pos = q - img * P
                let direct = ConvPacking.directPanel(q: q, count: nr, dims: d, src: src)
                let bPanel = UnsafePointer(bPack + jr * kc)
                if nr == NR && pos + NR <= P && (mr == MR || mr == 8 || mr == 4) {
                    let c = yChunk + (img * M + ir) * P + pos
                    if let direct {
                        let db = DirectB(base0: direct.0, base1: direct.1, rowOffsets: offsets)
                        if mr == MR {
                            convKernel12x32(kc: kc, a: aPanel, b: db, c: c, ldc: P, accumulate: accumulate)
                        } else if mr == 8 {
                            convKernel8x32(kc: kc, a: aPanel, b: db, c: c, ldc: P, accumulate: accumulate)
                        } else {
                            convKernel4x32(kc: kc, a: aPanel, b: db, c: c, ldc: P, accumulate: accumulate)
                        }
                    } else if mr == MR {
                        microKernel12x32(kc: kc, a: aPanel, b: bPanel, c: c, ldc: P, alpha: 1, beta: beta)
                    } else if mr == 8 {
                        microKernel8x32(kc: kc, a: aPanel, b: bPanel, c: c, ldc: P, alpha: 1, beta: beta)
                    } else {
                        microKernel4x32(kc: kc, a: aPanel, b: bPanel, c: c, ldc: P, alpha: 1, beta: beta)
                    }
                    if epilogue { applyEpilogue32(c, ldc: P, rows: mr, bias: bias.map { $0 + ir }, relu: relu) }
                } else {
                    if let direct {
                        let db = DirectB(base0: direct.0, base1: direct.1, rowOffsets: offsets)
                        if mr <= 4 {
                            convKernel4x32(kc: kc, a: aPanel, b: db, c: tile, ldc: NR, accumulate: false)
                        } else if mr <= 8 {
                            convKernel8x32(kc: kc, a: aPanel, b: db, c: tile, ldc: NR, accumulate: false)
                        } else {
                            convKernel12x32(kc: kc, a: aPanel, b: db, c: tile, ldc: NR, accumulate: false)
                        }
                    } else if mr <= 4 {
                        microKernel4x32(kc: kc, a: aPanel, b: bPanel, c: tile, ldc: NR, alpha: 1, beta: 0)
                    } else if mr <= 8 {
                        microKernel8x32(kc: kc, a: aPanel, b: bPanel, c: tile, ldc: NR, alpha: 1, beta: 0)
                    } else {
                        microKernel12x32(kc: kc, a: aPanel, b: bPanel, c: tile, ldc: NR, alpha: 1, beta: 0)
                    }
                    // Merge the tile's columns, image by image.
                    var s = 0
                    while s < nr {
                        let qs = q + s
                        let im = qs / P, ps = qs - im * P
                        let len = min(nr - s, P - ps)
                        for r in 0..<mr {
                            let dst = yChunk + (im * M + ir + r) * P + ps
                            let src = tile + r * NR + s
                            let bv: Float = bias.map { $0[ir + r] } ?? 0
                            for t in 0..<len {
                                var v = src[t]
                                if accumulate { v += dst[t] }
                                if last {
                                    if bias != nil { v += bv }
                                    if relu { v = reluValue(v) }
                                }
                                dst[t] = v
                            }
                        }
                        s += len
                    }
                }
                jr += NR
            }
        }
    }
}

/// ReLU of one value as the reference: v if v > 0 or NaN, else +0.
@inline(__always)
func reluValue(_ v: Float) -> Float { v > 0 || v.isNaN ? v : 0 }

/// ReLU of 16 values as the reference (v <= 0 becomes +0; NaN stays).
@inline(__always)
func reluVector(_ v: SIMD16<Float>) -> SIMD16<Float> { v.replacing(with: 0, where: v .<= 0) }

/// rows x 32 block of C at c (row stride ldc): v = v + bias[r] (if bias), then ReLU (if relu).
@inline(__always)
func applyEpilogue32(_ c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, bias: UnsafePointer<Float>?, relu: Bool) {
    for r in 0..<rows {
        let p = UnsafeMutableRawPointer(c + r &* ldc)
        var v0 = p.loadUnaligned(as: SIMD16<Float>.self)
        var v1 = p.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
        if let bias {
            let b = SIMD16<Float>(repeating: bias[r])
            v0 += b; v1 += b
        }
        if relu { v0 = reluVector(v0); v1 = reluVector(v1) }
        p.storeBytes(of: v0, as: SIMD16<Float>.self)
        p.storeBytes(of: v1, toByteOffset: 64, as: SIMD16<Float>.self)
    }
}

// MARK: - Backward data

extension FastCPU {
    /// Fast path of `Reference.conv2DBackwardData` (rtol 1e-4 of the output scale).
    /// dy: (N, Cout, OH, OW), weight: (Cout, Cin, KH, KW), dx: (N, Cin, H, W) (overwritten).
    func conv2DBackwardData(dy: UnsafePointer<Float>, weight: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
                            geometry g: Conv2DGeometry) {
        let (kh, kw) = (g.kernelH, g.kernelW)
        if g.strideH == 1 && g.strideW == 1 && g.padH <= kh - 1 && g.padW <= kw - 1 {
            // dx = conv(dy, W') with W'[ci, co, i, j] = W[co, ci, KH-1-i, KW-1-j], padding KH-1-ph.
            let (cin, cout) = (g.inChannels, g.outChannels)
            let flipped = workspace.floats(.convFlipped, cin * cout * kh * kw)   // W': (Cin, Cout, KH, KW)
            for co in 0..<cout {
                for ci in 0..<cin {
                    let src = weight + (co * cin + ci) * kh * kw
                    let dst = flipped + (ci * cout + co) * kh * kw
                    for i in 0..<kh {
                        for j in 0..<kw { dst[i * kw + j] = src[(kh - 1 - i) * kw + (kw - 1 - j)] }
                    }
                }
            }
            let gd = Conv2DGeometry(batch: g.batch, inChannels: cout, height: g.outHeight, width: g.outWidth,
                                    outChannels: cin, kernelH: kh, kernelW: kw, strideH: 1, strideW: 1,
                                    padH: kh - 1 - g.padH, padW: kw - 1 - g.padW)
            let d = ConvDims(gd)
            let aPack = packWeights(GEMMMatrixA(UnsafePointer(flipped), ld: d.k, transposed: false), m: d.cout, k: d.k)
            implicitForward(x: dy, dims: d, aPack: aPack, bias: nil, relu: false, y: dx)
            return
        }
        // General stride: cols_n (K, P) = W^T (K, Cout) * dy_n (Cout, P), then col2im, image by image.
        let task = ConvBackwardDataGEMMTask(gemm: gemm, dims: ConvDims(g), dy: dy, weight: weight, dx: dx, scratch: workspace)
        let d = task.dims
        if d.n > 1 && split(d.n * d.p * d.k * d.cout, 1 << 20) {
            pool.parallelFor(d.n, task)
        } else {
            for n in 0..<d.n { task.run(n) }
        }
    }
}

/// Image n of a strided backward-data convolution: a GEMM into scratch columns, then col2im.
struct ConvBackwardDataGEMMTask: ParallelTask {
    let gemm: FastGEMM
    let dims: ConvDims
    let dy: UnsafePointer<Float>, weight: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>
    let scratch: Workspace
    func run(_ n: Int) {
        let d = dims
        scratch.withSlot { slot in
            let cols = slot.floats(0, d.k * d.p)   // (K, P)
            gemm.sgemmSerial(m: d.k, n: d.p, k: d.cout, alpha: 1,
                             a: GEMMMatrixA(weight, ld: d.k, transposed: true),
                             b: GEMMMatrixB(dy + n * d.cout * d.p, ld: d.p, transposed: false),
                             beta: 0, c: cols, ldc: d.p, epilogue: GEMMNoEpilogue())
            FastCPU.col2imImage(cols: UnsafePointer(cols), x: dx + n * d.cin * d.h * d.w, dims: d)
        }
    }
}

// MARK: - im2col / col2im

extension FastCPU {
    /// One image of `Reference.col2im`: cols (K, P) -> x (Cin, H, W), overwritten. Contributions to
    /// each element are added in the reference's (i, j) order, in Float (rtol 1e-5 class).
    static func col2imImage(cols: UnsafePointer<Float>, x: UnsafeMutablePointer<Float>, dims d: ConvDims) {
        x.update(repeating: 0, count: d.cin * d.h * d.w)
        for c in 0..<d.cin {
            let plane = x + c * d.h * d.w
            for i in 0..<d.kh {
                for j in 0..<d.kw {
                    let row = cols + ((c * d.kh + i) * d.kw + j) * d.p
                    for oh in 0..<d.oh {
                        let ih = oh * d.sh - d.ph + i
                        if ih < 0 || ih >= d.h { continue }
                        let dst = plane + ih * d.w
                        let src = row + oh * d.ow
                        // ow range with 0 <= ow*sw - pw + j < W
                        let lo = max(0, (d.pw - j + d.sw - 1) / d.sw)
                        let hi = min(d.ow, (d.w - 1 + d.pw - j) / d.sw + 1)
                        if lo >= hi { continue }
                        if d.sw == 1 {
                            let off = j - d.pw
                            for ow in lo..<hi { dst[ow + off] += src[ow] }
                        } else {
                            for ow in lo..<hi { dst[ow * d.sw - d.pw + j] += src[ow] }
                        }
                    }
                }
            }
        }
    }

    /// Fast path of `Reference.im2col` (bit-exact: a copy). x: (N, C, H, W) -> cols: (N, C*KH*KW, OH*OW).
    func im2col(x: UnsafePointer<Float>, cols: UnsafeMutablePointer<Float>, geometry g: Conv2DGeometry) {
        let d = ConvDims(g)
        let task = Im2colTask(d: d, x: x, cols: cols)
        if d.n > 1 && split(d.n * d.k * d.p, 1 << 16) { pool.parallelFor(d.n, task) } else { for n in 0..<d.n { task.run(n) } }
    }

    /// Fast path of `Reference.col2im` (rtol 1e-5: Float sums in the reference's order).
    /// cols: (N, C*KH*KW, OH*OW) -> x: (N, C, H, W), overwritten.
    func col2im(cols: UnsafePointer<Float>, x: UnsafeMutablePointer<Float>, geometry g: Conv2DGeometry) {
        let d = ConvDims(g)
        let task = Col2imTask(d: d, cols: cols, x: x)
        if d.n > 1 && split(d.n * d.k * d.p, 1 << 16) { pool.parallelFor(d.n, task) } else { for n in 0..<d.n { task.run(n) } }
    }
}

struct Im2colTask: ParallelTask {
    let d: ConvDims
    let x: UnsafePointer<Float>, cols: UnsafeMutablePointer<Float>
    func run(_ n: Int) {
        let xn = x + n * d.cin * d.h * d.w
        let cn = cols + n * d.k * d.p
        for c in 0..<d.cin {
            for i in 0..<d.kh {
                for j in 0..<d.kw {
                    let row = cn + ((c * d.kh + i) * d.kw + j) * d.p
                    let lo = max(0, (d.pw - j + d.sw - 1) / d.sw)
                    let hi = max(lo, min(d.ow, (d.w - 1 + d.pw - j) / d.sw + 1))
                    for oh in 0..<d.oh {
                        let out = row + oh * d.ow
                        let ih = oh * d.sh - d.ph + i
                        if ih < 0 || ih >= d.h { out.update(repeating: 0, count: d.ow); continue }
                        let src = xn + (c * d.h + ih) * d.w
                        for ow in 0..<lo { out[ow] = 0 }
                        if d.sw == 1 {
                            copyFloats(out + lo, src + (lo - d.pw + j), hi - lo)
                        } else {
                            for ow in lo..<hi { out[ow] = src[ow * d.sw - d.pw + j] }
                        }
                        for ow in hi..<d.ow { out[ow] = 0 }
                    }
                }
            }
        }
    }
}

struct Col2imTask: ParallelTask {
    let d: ConvDims
    let cols: UnsafePointer<Float>, x: UnsafeMutablePointer<Float>
    func run(_ n: Int) {
        FastCPU.col2imImage(cols: cols + n * d.k * d.p, x: x + n * d.cin * d.h * d.w, dims: d)
    }
}

// MARK: - Backward filter

extension FastCPU {
    /// Fast path of `Reference.conv2DBackwardFilter` (rtol 1e-4 of the output scale; dBias as `biasGrad`).
    /// x: (N, Cin, H, W), dy: (N, Cout, OH, OW), dWeight: (Cout, Cin, KH, KW), dBias: (Cout) or nil.
    func conv2DBackwardFilter(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dWeight: UnsafeMutablePointer<Float>,
                              dBias: UnsafeMutablePointer<Float>?, geometry g: Conv2DGeometry) {
        let d = ConvDims(g)
        let groups = min(d.n, Self.filterGroups)
        let size = d.cout * d.k
        // (groups, Cout, K') partial gradients, patch in (i, j, ci) order.
        let partials = workspace.floats(.convPartials, groups * size)
        // (groups, Cout) bias partials, summed while dy is packed (no separate pass over dy).
        let biasPartials: UnsafeMutablePointer<Double>? = dBias == nil ? nil : workspace.buffer(.biasPartials, groups * d.cout, as: Double.self)
        let task = ConvFilterTask(d: d, x: x, dy: dy, partials: partials, biasPartials: biasPartials, groups: groups, gemm: gemm,
                                  scratch: workspace)
        let parallel = split(d.n * d.p * d.k * d.cout, 1 << 20)
        if parallel { pool.parallelFor(groups, task) } else { for t in 0..<groups { task.run(t) } }
        let sum = FilterGradientSum(d: d, partials: UnsafePointer(partials), groups: groups, dWeight: dWeight,
                                    channelsLastOrder: !ConvFilterTask.usesSmallPatch(d))
        if parallel && size >= 1 << 14 { pool.parallelRanges(d.cout, sum) } else { sum.run(0..<d.cout) }
        if let dBias, let biasPartials {
            for co in 0..<d.cout {
                var v = 0.0
                for t in 0..<groups { v += biasPartials[t * d.cout + co] }
                dBias[co] = Float(v)
            }
        }
    }
}

/// dWeight[co, ci, i, j] = partial[0][co, k'] + partial[1][co, k'] + ... (group order),
/// k' = (i*KW + j)*Cin + ci, for co in a range.
struct FilterGradientSum: ParallelRangeTask {
    let d: ConvDims
    let partials: UnsafePointer<Float>
    let groups: Int
    let dWeight: UnsafeMutablePointer<Float>
    /// Partials in (i, j, ci) patch order (else already in the reference's (ci, i, j) order).
    let channelsLastOrder: Bool
    func run(_ range: Range<Int>) {
        let size = d.cout * d.k, taps = d.kh * d.kw
        if !channelsLastOrder {
            for i in (range.lowerBound * d.k)..<(range.upperBound * d.k) {
                var v = partials[i]
                for g in 1..<max(1, groups) { v += partials[g * size + i] }
                dWeight[i] = v
            }
            return
        }
        for co in range {
            let out = dWeight + co * d.k
            let src = partials + co * d.k
            for tap in 0..<taps {
                for ci in 0..<d.cin {
                    let k = tap * d.cin + ci
                    var v = src[k]
                    for g in 1..<max(1, groups) { v += src[g * size + k] }
                    out[ci * taps + tap] = v
                }
            }
        }
    }
}

extension ConvFilterTask {
    /// The first layer's shape (KW = 3, a small patch, stride 1, OW a multiple of 16, Cout a multiple
    /// of 8): `smallPatchFilterGradient` instead of the packed GEMM. Its partials are in the
    /// reference's (ci, i, j) patch order.
    static func usesSmallPatch(_ d: ConvDims) -> Bool {
        d.kw == 3 && d.k <= 64 && d.sw == 1 && d.sh == 1 && d.ow % 16 == 0 && d.cout % 8 == 0
    }

    func runSmallPatch(images: Range<Int>, out: UnsafeMutablePointer<Float>, bias: UnsafeMutablePointer<Double>?) {
        scratch.withSlot { slot in
            let acc = slot.buffer(1, d.cout * d.k, as: SIMD16<Float>.self)
            acc.update(repeating: SIMD16<Float>(), count: d.cout * d.k)
            let perChunk = 8
            var n0 = images.lowerBound
            while n0 < images.upperBound {
                let n1 = min(images.upperBound, n0 + perChunk)
                let src = PaddedImages.make(x: x, dims: d, first: n0, count: n1 - n0, scratch: { slot.floats(0, $0) })
                smallPatchFilterGradient(dims: d, src: src, images: n1 - n0, dy: dy + n0 * d.cout * d.p, acc: acc, bias: bias)
                n0 = n1
            }
            for i in 0..<(d.cout * d.k) { out[i] = acc[i].sum() }
        }
    }
}

/// Image group t of a weight gradient: its partial dW' (Cout, K') over the group's positions.
/// A panels: dy transposed (positions x 12 channels); B: the channels-last copy of x, read in place
/// by the direct-B kernels when KW*Cin is a multiple of 32, else packed (ConvPacking.packFilterB).
struct ConvFilterTask: ParallelTask {
    let d: ConvDims
    let x: UnsafePointer<Float>, dy: UnsafePointer<Float>
    let partials: UnsafeMutablePointer<Float>
    /// (groups, Cout): the group's sums of dy per output channel (nil: no bias).
    let biasPartials: UnsafeMutablePointer<Double>?
    let groups: Int
    let gemm: FastGEMM
    let scratch: Workspace

    func run(_ t: Int) {
        let images = FastGEMM.split(d.n, parts: groups, index: t, grain: 1)
        let out = partials + t * d.cout * d.k
        let bias = biasPartials.map { $0 + t * d.cout }
        if let bias { bias.update(repeating: 0, count: d.cout) }
        if images.isEmpty { out.update(repeating: 0, count: d.cout * d.k); return }
        let MR = GEMMTile.mr, NR = GEMMTile.nr
        let KC = FastCPU.depthBlock, NC = 768
        let K = d.k, M = d.cout
        let perChunk = max(1, KC / d.p)
        let direct = (d.kw * d.cin) % NR == 0
        // Direct path: A panels as RowPanels (no 4-row panels); packed path: FastGEMM's 12-row panels.
        let panels = direct ? RowPanels(M) : RowPanels(M, standard: true)
        let mPad = panels.padded
        if ConvFilterTask.usesSmallPatch(d) { runSmallPatch(images: images, out: out, bias: bias); return }
        scratch.withSlot { slot in
            let xT = slot.floats(0, perChunk * d.hp * d.wp * d.cin)
            let aPack = slot.floats(1, mPad * KC + 16)   // + 16: panelColumnSums reads 4 past the last row
            let bPack = direct ? slot.floats(2, 1) : slot.floats(2, KC * min(NC, (K + NR - 1) / NR * NR))
            let positions = slot.buffer(3, KC, as: Int.self)
            let segments = slot.buffer(4, NR, as: PatchRun.self)
            let tile = slot.floats(5, MR * NR)
            var first = true
            var n0 = images.lowerBound
            while n0 < images.upperBound {
                let n1 = min(images.upperBound, n0 + perChunk)
                ConvPacking.channelsLast(x: x, dims: d, first: n0, count: n1 - n0, into: xT)
                let count = (n1 - n0) * d.p
                let blocks = max(1, (count + KC - 1) / KC)
                for b in 0..<blocks {
                    let dr = FastGEMM.split(count, parts: blocks, index: b, grain: 8)
                    if dr.isEmpty { continue }
                    let kc = dr.count
                    ConvPacking.packFilterA(into: aPack, d0: dr.lowerBound, kc: kc, dims: d, dy: dy, firstImage: n0, panels: panels)
                    if let bias { ConvPacking.addPanelSums(aPack, kc: kc, panels: panels, into: bias) }
                    ConvPacking.positionOffsets(d0: dr.lowerBound, count: kc, dims: d, into: positions)
                    if direct {
                        var jr = 0
                        while jr < K {
                            let koff = ConvPacking.channelsLastOffset(jr, dims: d)
                            let db = DirectB(base0: UnsafePointer(xT + koff), base1: UnsafePointer(xT + koff + 16), rowOffsets: positions)
                            for panel in 0..<panels.count {
                                let (ir, mr) = panels[panel]
                                let a = UnsafePointer(aPack + panel * MR * kc)
                                let c = out + ir * K + jr
                                if mr == MR {
                                    convKernel12x32(kc: kc, a: a, b: db, c: c, ldc: K, accumulate: !first)
                                } else if mr == 8 {
                                    convKernel8x32(kc: kc, a: a, b: db, c: c, ldc: K, accumulate: !first)
                                } else if mr == 4 {
                                    convKernel4x32(kc: kc, a: a, b: db, c: c, ldc: K, accumulate: !first)
                                } else {
                                    if mr < 4 {
                                        convKernel4x32(kc: kc, a: a, b: db, c: tile, ldc: NR, accumulate: false)
                                    } else if mr < 8 {
                                        convKernel8x32(kc: kc, a: a, b: db, c: tile, ldc: NR, accumulate: false)
                                    } else {
                                        convKernel12x32(kc: kc, a: a, b: db, c: tile, ldc: NR, accumulate: false)
                                    }
                                    for r in 0..<mr {
                                        let dst = c + r * K, src = tile + r * NR
                                        for s in 0..<NR { dst[s] = first ? src[s] : src[s] + dst[s] }
                                    }
                                }
                            }
                            jr += NR
                        }
                    } else {
                        var jc = 0
                        while jc < K {
                            let nc = min(NC, K - jc)
                            ConvPacking.packFilterB(into: bPack, kc: kc, jc: jc, nc: nc, dims: d, xT: UnsafePointer(xT),
                                                    positions: positions, segments: segments)
                            gemm.macroKernel(mc: M, nc: nc, kc: kc, aPack: aPack, bPack: bPack, c: out + jc, ldc: K,
                                             alpha: 1, beta: first ? 0 : 1, tile: tile)
                            jc += nc
                        }
                    }
                    first = false
                }
                n0 = n1
            }
        }
    }
}
