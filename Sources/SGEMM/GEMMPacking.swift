// Packing of SGEMM operands into the micro-kernel's panel layouts (see GEMMKernel.swift).
//
// A caller may supply its own packer — e.g. a convolution that writes im2col patches straight
// into B panels, never materializing the (Cin*KH*KW, OH*OW) matrix — by conforming to
// `GEMMPackA` / `GEMMPackB`. The packers here read ordinary strided row-major matrices.
//
// Layouts (MR = GEMMTile.mr, NR = GEMMTile.nr):
//   packed A block: ceil(mc / MR) micro-panels one after another, panel q = (kc, MR) row-major:
//       dst[q*kc*MR + p*MR + r] = op(A)[i0 + q*MR + r, p0 + p]     (0 where q*MR + r >= mc)
//   packed B block: ceil(nc / NR) micro-panels one after another, panel q = (kc, NR) row-major:
//       dst[q*kc*NR + p*NR + s] = op(B)[p0 + p, j0 + q*NR + s]     (0 where q*NR + s >= nc)
// Packers are called concurrently from several threads for disjoint destinations; they must not
// mutate shared state.

/// Supplies op(A) (m x k) to the packed SGEMM block by block.
package protocol GEMMPackA {
    /// Packs op(A)[i0 ..< i0+mc, p0 ..< p0+kc] into `dst` in the packed-A layout (zero-padded rows).
    func packA(into dst: UnsafeMutablePointer<Float>, i0: Int, mc: Int, p0: Int, kc: Int)
}

/// Supplies op(B) (k x n) to the packed SGEMM block by block.
package protocol GEMMPackB {
    /// Packs op(B)[p0 ..< p0+kc, j0 ..< j0+nc] into `dst` in the packed-B layout (zero-padded columns).
    func packB(into dst: UnsafeMutablePointer<Float>, p0: Int, kc: Int, j0: Int, nc: Int)
}

/// Called once per finished block of C (all of k accumulated, alpha and beta applied), while the
/// block is still in cache: the place to fuse a bias add or an activation. Blocks are disjoint and
/// may be handed to different threads concurrently.
package protocol GEMMEpilogue {
    /// `c` is C's base pointer (element (i, j) at c[i*ldc + j]); the block is rows i0 ..< i0+mc,
    /// columns j0 ..< j0+nc.
    func apply(c: UnsafeMutablePointer<Float>, ldc: Int, i0: Int, mc: Int, j0: Int, nc: Int)
}

/// The epilogue that does nothing.
package struct GEMMNoEpilogue: GEMMEpilogue {
    package init() {}
    @inlinable package func apply(c: UnsafeMutablePointer<Float>, ldc: Int, i0: Int, mc: Int, j0: Int, nc: Int) {}
}

/// op(A) of a row-major matrix: A is (m, k) with row stride `ld`, or (k, m) when `transposed`.
package struct GEMMMatrixA: GEMMPackA {
    package var base: UnsafePointer<Float>
    package var ld: Int
    package var transposed: Bool
    package init(_ base: UnsafePointer<Float>, ld: Int, transposed: Bool) {
        self.base = base; self.ld = ld; self.transposed = transposed
    }

    package func packA(into dst: UnsafeMutablePointer<Float>, i0: Int, mc: Int, p0: Int, kc: Int) {
        let MR = GEMMTile.mr
        var q = 0
        while q * MR < mc {
            let panel = dst + q * kc * MR
            let rows = min(MR, mc - q * MR)
            let row0 = i0 + q * MR
            if transposed {
                // op(A)[row0 + r, p0 + p] = base[(p0 + p) * ld + row0 + r]: contiguous in r.
                packRowsContiguous(panel, width: MR, count: rows,
                                   src: base + p0 * ld + row0, srcStride: ld, kc: kc)
            } else {
                // op(A)[row0 + r, p0 + p] = base[(row0 + r) * ld + p0 + p]: contiguous in p.
                packTransposing(panel, width: MR, count: rows,
                                src: base + row0 * ld + p0, srcStride: ld, kc: kc)
            }
            q += 1
        }
    }
}

/// op(B) of a row-major matrix: B is (k, n) with row stride `ld`, or (n, k) when `transposed`.
package struct GEMMMatrixB: GEMMPackB {
    package var base: UnsafePointer<Float>
    package var ld: Int
    package var transposed: Bool
    package init(_ base: UnsafePointer<Float>, ld: Int, transposed: Bool) {
        self.base = base; self.ld = ld; self.transposed = transposed
    }

    package func packB(into dst: UnsafeMutablePointer<Float>, p0: Int, kc: Int, j0: Int, nc: Int) {
        let NR = GEMMTile.nr
        var q = 0
        while q * NR < nc {
            let panel = dst + q * kc * NR
            let cols = min(NR, nc - q * NR)
            let col0 = j0 + q * NR
            if transposed {
                // op(B)[p0 + p, col0 + s] = base[(col0 + s) * ld + p0 + p]: contiguous in p.
                packTransposing(panel, width: NR, count: cols,
                                src: base + col0 * ld + p0, srcStride: ld, kc: kc)
            } else {
                // op(B)[p0 + p, col0 + s] = base[(p0 + p) * ld + col0 + s]: contiguous in s.
                packRowsContiguous(panel, width: NR, count: cols,
                                   src: base + p0 * ld + col0, srcStride: ld, kc: kc)
            }
            q += 1
        }
    }
}

// MARK: - Panel copy loops shared by the packers

/// panel[p*width + s] = src[p*srcStride + s] for s < count, 0 for count <= s < width; p in 0..<kc.
@inlinable
func packRowsContiguous(_ panel: UnsafeMutablePointer<Float>, width: Int, count: Int,
                        src: UnsafePointer<Float>, srcStride: Int, kc: Int) {
    if count == width && width == 32 {
        let d = UnsafeMutableRawPointer(panel)
        for p in 0..<kc {
            let s = UnsafeRawPointer(src + p &* srcStride)
            d.storeBytes(of: s.loadUnaligned(as: SIMD16<Float>.self), toByteOffset: p &* 128, as: SIMD16<Float>.self)
            d.storeBytes(of: s.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self), toByteOffset: p &* 128 &+ 64,
                         as: SIMD16<Float>.self)
        }
        return
    }
    if count == width && width == 12 {
        let d = UnsafeMutableRawPointer(panel)
        for p in 0..<kc {
            let s = UnsafeRawPointer(src + p &* srcStride)
            d.storeBytes(of: s.loadUnaligned(as: SIMD8<Float>.self), toByteOffset: p &* 48, as: SIMD8<Float>.self)
            d.storeBytes(of: s.loadUnaligned(fromByteOffset: 32, as: SIMD4<Float>.self), toByteOffset: p &* 48 &+ 32,
                         as: SIMD4<Float>.self)
        }
        return
    }
    for p in 0..<kc {
        let s = src + p &* srcStride
        let d = panel + p &* width
        for t in 0..<count { d[t] = s[t] }
        for t in count..<width { d[t] = 0 }
    }
}

/// panel[p*width + s] = src[s*srcStride + p] for s < count, 0 for count <= s < width; p in 0..<kc.
/// Full panels go through 8x8 / 4x8 register transposes (a plain loop here is auto-vectorized
/// into scatter instructions, which are slow).
@inlinable
func packTransposing(_ panel: UnsafeMutablePointer<Float>, width: Int, count: Int,
                     src: UnsafePointer<Float>, srcStride: Int, kc: Int) {
    var p0 = 0
    if count == width && (width % 8 == 0 || width % 8 == 4) {
        let kc8 = kc & ~7
        while p0 < kc8 {
            var s0 = 0
            while s0 + 8 <= width {
                transpose8x8(src + (s0 &* srcStride &+ p0), srcStride, panel + (p0 &* width &+ s0), width)
                s0 += 8
            }
            if s0 < width {   // 4 rows left
                transpose4x8(src + (s0 &* srcStride &+ p0), srcStride, panel + (p0 &* width &+ s0), width)
            }
            p0 += 8
        }
    }
    // Remaining depth, and edge panels (count < width).
    for p in p0..<kc {
        let d = panel + p &* width
        for s in 0..<count { d[s] = src[s &* srcStride &+ p] }
        for s in count..<width { d[s] = 0 }
    }
}

/// Evens and odds of the 16 values (a, b): one step of a register transpose.
@inlinable @inline(__always)
func unshuffle(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> (even: SIMD8<Float>, odd: SIMD8<Float>) {
    (SIMD8(lowHalf: a.evenHalf, highHalf: b.evenHalf), SIMD8(lowHalf: a.oddHalf, highHalf: b.oddHalf))
}

/// dst[p*ldd + r] = src[r*lds + p] for r, p in 0..<8.
/// Three rounds of "evens then odds" on the 64 values rotate the index bits (r, p) into (p, r).
@inlinable @inline(__always)
package func transpose8x8(_ src: UnsafePointer<Float>, _ lds: Int, _ dst: UnsafeMutablePointer<Float>, _ ldd: Int) {
    let s = UnsafeRawPointer(src), rowBytes = lds &* 4
    var v0 = s.loadUnaligned(as: SIMD8<Float>.self)
    var v1 = s.loadUnaligned(fromByteOffset: rowBytes, as: SIMD8<Float>.self)
    var v2 = s.loadUnaligned(fromByteOffset: 2 &* rowBytes, as: SIMD8<Float>.self)
    var v3 = s.loadUnaligned(fromByteOffset: 3 &* rowBytes, as: SIMD8<Float>.self)
    var v4 = s.loadUnaligned(fromByteOffset: 4 &* rowBytes, as: SIMD8<Float>.self)
    var v5 = s.loadUnaligned(fromByteOffset: 5 &* rowBytes, as: SIMD8<Float>.self)
    var v6 = s.loadUnaligned(fromByteOffset: 6 &* rowBytes, as: SIMD8<Float>.self)
    var v7 = s.loadUnaligned(fromByteOffset: 7 &* rowBytes, as: SIMD8<Float>.self)
    for _ in 0..<3 {
        let (a0, a4) = unshuffle(v0, v1), (a1, a5) = unshuffle(v2, v3)
        let (a2, a6) = unshuffle(v4, v5), (a3, a7) = unshuffle(v6, v7)
        v0 = a0; v1 = a1; v2 = a2; v3 = a3; v4 = a4; v5 = a5; v6 = a6; v7 = a7
    }
    let d = UnsafeMutableRawPointer(dst), outBytes = ldd &* 4
    d.storeBytes(of: v0, as: SIMD8<Float>.self)
    d.storeBytes(of: v1, toByteOffset: outBytes, as: SIMD8<Float>.self)
    d.storeBytes(of: v2, toByteOffset: 2 &* outBytes, as: SIMD8<Float>.self)
    d.storeBytes(of: v3, toByteOffset: 3 &* outBytes, as: SIMD8<Float>.self)
    d.storeBytes(of: v4, toByteOffset: 4 &* outBytes, as: SIMD8<Float>.self)
    d.storeBytes(of: v5, toByteOffset: 5 &* outBytes, as: SIMD8<Float>.self)
    d.storeBytes(of: v6, toByteOffset: 6 &* outBytes, as: SIMD8<Float>.self)
    d.storeBytes(of: v7, toByteOffset: 7 &* outBytes, as: SIMD8<Float>.self)
}

/// dst[p*ldd + r] = src[r*lds + p] for r in 0..<4, p in 0..<8.
/// After three rounds vector t holds p = 2t (low half) and p = 2t + 1 (high half).
@inlinable @inline(__always)
package func transpose4x8(_ src: UnsafePointer<Float>, _ lds: Int, _ dst: UnsafeMutablePointer<Float>, _ ldd: Int) {
    let s = UnsafeRawPointer(src), rowBytes = lds &* 4
    var v0 = s.loadUnaligned(as: SIMD8<Float>.self)
    var v1 = s.loadUnaligned(fromByteOffset: rowBytes, as: SIMD8<Float>.self)
    var v2 = s.loadUnaligned(fromByteOffset: 2 &* rowBytes, as: SIMD8<Float>.self)
    var v3 = s.loadUnaligned(fromByteOffset: 3 &* rowBytes, as: SIMD8<Float>.self)
    for _ in 0..<3 {
        let (a0, a2) = unshuffle(v0, v1), (a1, a3) = unshuffle(v2, v3)
        v0 = a0; v1 = a1; v2 = a2; v3 = a3
    }
    let d = UnsafeMutableRawPointer(dst), outBytes = ldd &* 4
    d.storeBytes(of: v0.lowHalf, as: SIMD4<Float>.self)
    d.storeBytes(of: v0.highHalf, toByteOffset: outBytes, as: SIMD4<Float>.self)
    d.storeBytes(of: v1.lowHalf, toByteOffset: 2 &* outBytes, as: SIMD4<Float>.self)
    d.storeBytes(of: v1.highHalf, toByteOffset: 3 &* outBytes, as: SIMD4<Float>.self)
    d.storeBytes(of: v2.lowHalf, toByteOffset: 4 &* outBytes, as: SIMD4<Float>.self)
    d.storeBytes(of: v2.highHalf, toByteOffset: 5 &* outBytes, as: SIMD4<Float>.self)
    d.storeBytes(of: v3.lowHalf, toByteOffset: 6 &* outBytes, as: SIMD4<Float>.self)
    d.storeBytes(of: v3.highHalf, toByteOffset: 7 &* outBytes, as: SIMD4<Float>.self)
}
