// The SGEMM micro-kernel: one MR x NR tile of C from a packed A micro-panel and a packed B micro-panel.
// Reference: `CPUBackend.Reference.gemm` (Sources/CPUBackend/Reference/GEMM.swift): C = alpha * op(A) * op(B) + beta * C.
//
// Packed layouts (both zero-padded to full panels, see GEMMPacking.swift):
//   A micro-panel: (kc, MR) row-major — for each p, the MR values op(A)[i0 + 0..<MR, p0 + p]
//   B micro-panel: (kc, NR) row-major — for each p, the NR values op(B)[p0 + p, j0 + 0..<NR]
// Per p the kernel loads NR/16 vectors of B, broadcasts each of the MR values of A, and does
// MR * NR/16 vector multiply-adds into MR * NR/16 SIMD16<Float> accumulators (24 of the 32 AVX-512
// registers for 12x32).
//
// Fused multiply-add: `SIMD16.addProduct` is one vfmadd231ps when the compiler targets a CPU with
// FMA (`-Xswiftc -target-cpu -Xswiftc native|skylake-avx512|haswell`), but a call to `fmaf` per
// lane on the default x86-64 target (~100x slower). So it is used only under `SWIFTCNN_FMA`, a flag
// the Makefile passes together with the target-cpu flag; otherwise a separate multiply and add.

/// Tile sizes of the packed SGEMM (the packing layout callers must produce, see `GEMMPackB`).
package enum GEMMTile {
    /// Rows of C per micro-kernel call: A is packed in panels of `mr` rows.
    package static let mr = 12
    /// Columns of C per micro-kernel call: B is packed in panels of `nr` columns.
    package static let nr = 32
}

/// Two SIMD16 accumulators: one row of a 32-wide tile.
@usableFromInline
struct Row32 {
    @usableFromInline var lo = SIMD16<Float>()
    @usableFromInline var hi = SIMD16<Float>()
    @inlinable init() {}

    /// self += a * (b0, b1)
    @inlinable @inline(__always)
    mutating func madd(_ a: Float, _ b0: SIMD16<Float>, _ b1: SIMD16<Float>) {
        let av = SIMD16<Float>(repeating: a)
        #if SWIFTCNN_FMA
        lo.addProduct(av, b0)
        hi.addProduct(av, b1)
        #else
        lo += av * b0
        hi += av * b1
        #endif
    }

    /// c[0..<32] = alpha * self + beta * c[0..<32]; beta == 0 never reads c (NaNs there are ignored).
    @inlinable @inline(__always)
    func store(_ c: UnsafeMutablePointer<Float>, alpha: Float, beta: Float) {
        let p = UnsafeMutableRawPointer(c)
        var r0 = lo, r1 = hi
        if alpha != 1 { r0 *= alpha; r1 *= alpha }
        if beta == 1 {
            r0 += p.loadUnaligned(as: SIMD16<Float>.self)
            r1 += p.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
        } else if beta != 0 {
            r0 += beta * p.loadUnaligned(as: SIMD16<Float>.self)
            r1 += beta * p.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
        }
        p.storeBytes(of: r0, as: SIMD16<Float>.self)
        p.storeBytes(of: r1, toByteOffset: 64, as: SIMD16<Float>.self)
    }
}

@inlinable @inline(__always)
func loadB(_ b: UnsafeRawPointer, _ p: Int) -> (SIMD16<Float>, SIMD16<Float>) {
    (b.loadUnaligned(fromByteOffset: p &* 128, as: SIMD16<Float>.self),
     b.loadUnaligned(fromByteOffset: p &* 128 &+ 64, as: SIMD16<Float>.self))
}

/// C[0..<12, 0..<32] (row stride ldc) = alpha * Apanel * Bpanel + beta * C.
/// a: (kc, 12) packed, b: (kc, 32) packed. beta == 0 ignores C's contents.
@inline(never)
package func microKernel12x32(kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                      c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float, beta: Float) {
    var c0 = Row32(), c1 = Row32(), c2 = Row32(), c3 = Row32(), c4 = Row32(), c5 = Row32()
    var c6 = Row32(), c7 = Row32(), c8 = Row32(), c9 = Row32(), c10 = Row32(), c11 = Row32()
    let bRaw = UnsafeRawPointer(b)
    var pa = a
    for p in 0..<kc {
        let (b0, b1) = loadB(bRaw, p)
        c0.madd(pa[0], b0, b1); c1.madd(pa[1], b0, b1); c2.madd(pa[2], b0, b1)
        c3.madd(pa[3], b0, b1); c4.madd(pa[4], b0, b1); c5.madd(pa[5], b0, b1)
        c6.madd(pa[6], b0, b1); c7.madd(pa[7], b0, b1); c8.madd(pa[8], b0, b1)
        c9.madd(pa[9], b0, b1); c10.madd(pa[10], b0, b1); c11.madd(pa[11], b0, b1)
        pa += 12
    }
    c0.store(c, alpha: alpha, beta: beta); c1.store(c + ldc, alpha: alpha, beta: beta)
    c2.store(c + 2 &* ldc, alpha: alpha, beta: beta); c3.store(c + 3 &* ldc, alpha: alpha, beta: beta)
    c4.store(c + 4 &* ldc, alpha: alpha, beta: beta); c5.store(c + 5 &* ldc, alpha: alpha, beta: beta)
    c6.store(c + 6 &* ldc, alpha: alpha, beta: beta); c7.store(c + 7 &* ldc, alpha: alpha, beta: beta)
    c8.store(c + 8 &* ldc, alpha: alpha, beta: beta); c9.store(c + 9 &* ldc, alpha: alpha, beta: beta)
    c10.store(c + 10 &* ldc, alpha: alpha, beta: beta); c11.store(c + 11 &* ldc, alpha: alpha, beta: beta)
}

/// Rows 0..<8 of a 12-row A panel: C[0..<8, 0..<32] = alpha * Apanel[:, 0..<8] * Bpanel + beta * C.
/// For the last panel of A when only 5...8 of its rows are real (e.g. m = 64 = 5 * 12 + 4).
@inline(never)
package func microKernel8x32(kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                     c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float, beta: Float) {
    var c0 = Row32(), c1 = Row32(), c2 = Row32(), c3 = Row32()
    var c4 = Row32(), c5 = Row32(), c6 = Row32(), c7 = Row32()
    let bRaw = UnsafeRawPointer(b)
    var pa = a
    for p in 0..<kc {
        let (b0, b1) = loadB(bRaw, p)
        c0.madd(pa[0], b0, b1); c1.madd(pa[1], b0, b1); c2.madd(pa[2], b0, b1); c3.madd(pa[3], b0, b1)
        c4.madd(pa[4], b0, b1); c5.madd(pa[5], b0, b1); c6.madd(pa[6], b0, b1); c7.madd(pa[7], b0, b1)
        pa += GEMMTile.mr
    }
    c0.store(c, alpha: alpha, beta: beta); c1.store(c + ldc, alpha: alpha, beta: beta)
    c2.store(c + 2 &* ldc, alpha: alpha, beta: beta); c3.store(c + 3 &* ldc, alpha: alpha, beta: beta)
    c4.store(c + 4 &* ldc, alpha: alpha, beta: beta); c5.store(c + 5 &* ldc, alpha: alpha, beta: beta)
    c6.store(c + 6 &* ldc, alpha: alpha, beta: beta); c7.store(c + 7 &* ldc, alpha: alpha, beta: beta)
}

/// Rows 0..<4 of a 12-row A panel (the last panel when only 1...4 of its rows are real).
@inline(never)
package func microKernel4x32(kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                     c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float, beta: Float) {
    var c0 = Row32(), c1 = Row32(), c2 = Row32(), c3 = Row32()
    let bRaw = UnsafeRawPointer(b)
    var pa = a
    for p in 0..<kc {
        let (b0, b1) = loadB(bRaw, p)
        c0.madd(pa[0], b0, b1); c1.madd(pa[1], b0, b1); c2.madd(pa[2], b0, b1); c3.madd(pa[3], b0, b1)
        pa += GEMMTile.mr
    }
    c0.store(c, alpha: alpha, beta: beta); c1.store(c + ldc, alpha: alpha, beta: beta)
    c2.store(c + 2 &* ldc, alpha: alpha, beta: beta); c3.store(c + 3 &* ldc, alpha: alpha, beta: beta)
}
