// Packing for the implicit-GEMM convolutions (FastConvolution.swift): im2col patches written straight
// into the SGEMM's packed panels, never materialising the (Cin*KH*KW, OH*OW) column matrix.
//
// Source images are read through `PaddedImages`: either x itself (no padding) or a copy of a few
// images with the zero border written out (per task, in scratch), so that every patch element is
// at a fixed offset from its output position — no bounds checks in the copy loops:
//   element (ci, i, j) of the patch of output position (n, oh, ow) is
//   base[imageOffset(n) + colBase(oh, ow) + rowOffset(ci, i, j)], with
//   colBase = oh*sh*Wp + ow*sw and rowOffset = (ci*Hp + i)*Wp + j   (Hp, Wp: padded plane size).
// For stride 1, consecutive output positions of one output row read consecutive source elements:
// a panel of 32 columns is a few contiguous runs, copied with SIMD loads.

import CNNCore

/// The geometry of one convolution as the fast paths see it (sizes of the padded source).
struct ConvDims {
    let n, cin, h, w, cout, kh, kw, sh, sw, ph, pw: Int
    let oh, ow: Int
    /// Output positions per image (OH*OW) and patch length (Cin*KH*KW).
    let p, k: Int
    /// Padded source plane (Hp, Wp) and image size (Cin*Hp*Wp).
    let hp, wp, paddedImage: Int
    var padded: Bool { ph != 0 || pw != 0 }

    init(_ g: Conv2DGeometry) {
        n = g.batch; cin = g.inChannels; h = g.height; w = g.width; cout = g.outChannels
        kh = g.kernelH; kw = g.kernelW; sh = g.strideH; sw = g.strideW; ph = g.padH; pw = g.padW
        oh = g.outHeight; ow = g.outWidth
        p = oh * ow; k = cin * kh * kw
        hp = h + 2 * ph; wp = w + 2 * pw
        paddedImage = cin * hp * wp
    }
}

/// Source images of a convolution, padded or not (see the file comment).
struct PaddedImages {
    /// Image `first` starts here.
    let base: UnsafePointer<Float>
    /// Elements between consecutive images.
    let imageStride: Int
    /// The first image held.
    let first: Int

    /// Images first ..< first + count of x (N, Cin, H, W), padded into `scratch` (count * Cin*Hp*Wp
    /// floats) when the convolution pads, else x itself.
    static func make(x: UnsafePointer<Float>, dims d: ConvDims, first: Int, count: Int,
                     scratch: (Int) -> UnsafeMutablePointer<Float>) -> PaddedImages {
        let image = d.cin * d.h * d.w
        if !d.padded { return PaddedImages(base: x + first * image, imageStride: image, first: first) }
        let dst = scratch(count * d.paddedImage)
        for i in 0..<count {
            padImage(x + (first + i) * image, into: dst + i * d.paddedImage, dims: d)
        }
        return PaddedImages(base: UnsafePointer(dst), imageStride: d.paddedImage, first: first)
    }

    /// x: (Cin, H, W) -> dst: (Cin, Hp, Wp) with a zero border of (ph, pw).
    static func padImage(_ x: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, dims d: ConvDims) {
        let (h, w, hp, wp, ph, pw) = (d.h, d.w, d.hp, d.wp, d.ph, d.pw)
        for c in 0..<d.cin {
            let src = x + c * h * w, out = dst + c * hp * wp
            out.update(repeating: 0, count: ph * wp)
            for r in 0..<h {
                let row = out + (r + ph) * wp
                for t in 0..<pw { row[t] = 0 }
                copyFloats(row + pw, src + r * w, w)
                for t in (pw + w)..<wp { row[t] = 0 }
            }
            (out + (ph + h) * wp).update(repeating: 0, count: (hp - ph - h) * wp)
        }
    }
}

/// dst[0..<count] = src[0..<count] (SIMD copy; the ranges must not overlap).
@inline(__always)
func copyFloats(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ count: Int) {
    let d = UnsafeMutableRawPointer(dst), s = UnsafeRawPointer(src)
    var t = 0
    while t &+ 16 <= count {
        d.storeBytes(of: s.loadUnaligned(fromByteOffset: t &* 4, as: SIMD16<Float>.self), toByteOffset: t &* 4, as: SIMD16<Float>.self)
        t &+= 16
    }
    if t &+ 8 <= count {
        d.storeBytes(of: s.loadUnaligned(fromByteOffset: t &* 4, as: SIMD8<Float>.self), toByteOffset: t &* 4, as: SIMD8<Float>.self)
        t &+= 8
    }
    if t &+ 4 <= count {
        d.storeBytes(of: s.loadUnaligned(fromByteOffset: t &* 4, as: SIMD4<Float>.self), toByteOffset: t &* 4, as: SIMD4<Float>.self)
        t &+= 4
    }
    while t < count { dst[t] = src[t]; t &+= 1 }
}

/// A run of `length` consecutive output positions in one output row of one image: columns
/// start ..< start+length of a panel (or of a depth block), reading source elements
/// base[offset + rowOffset + t*sw] for t in 0..<length.
struct PatchRun {
    var start: Int
    var length: Int
    var offset: Int
}

enum ConvPacking {
    /// Row offsets of the patch elements in the padded source: table[(ci*KH + i)*KW + j] = (ci*Hp + i)*Wp + j.
    static func rowOffsets(_ d: ConvDims, into table: UnsafeMutablePointer<Int>) {
        var r = 0
        for ci in 0..<d.cin {
            for i in 0..<d.kh {
                for j in 0..<d.kw { table[r] = (ci * d.hp + i) * d.wp + j; r += 1 }
            }
        }
    }

    /// Splits `count` output positions starting at position `q0` (counted from image `src.first`'s
    /// first position) into runs within output rows; returns the number of runs written to `runs`
    /// (at most `count`). Run starts are relative to q0.
    @inline(__always)
    static func runs(q0: Int, count: Int, dims d: ConvDims, src: PaddedImages, into runs: UnsafeMutablePointer<PatchRun>) -> Int {
        var s = 0, r = 0
        var img = q0 / d.p, pos = q0 - img * d.p
        var orow = pos / d.ow, ocol = pos - orow * d.ow
        while s < count {
            let len = min(count - s, d.ow - ocol)
            runs[r] = PatchRun(start: s, length: len,
                               offset: img * src.imageStride + orow * d.sh * d.wp + ocol * d.sw)
            r += 1; s += len
            ocol = 0; orow += 1
            if orow == d.oh { orow = 0; img += 1 }
        }
        return r
    }

    /// Copies one run of source elements: dst[t] = src[t*stride], t in 0..<length.
    @inline(__always)
    static func copyRun(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ length: Int, stride: Int) {
        if stride == 1 {
            copyFloats(dst, src, length)
        } else {
            for t in 0..<length { dst[t] = src[t &* stride] }
        }
    }

    /// The forward B block: op(B)[pc ..< pc+kc, q0 ..< q0+nc] of the im2col matrix of the images in
    /// `src` (columns = output positions counted from image src.first), in the packed-B layout
    /// (panels of NR columns, each (kc, NR) row-major, zero-padded columns).
    static func packForwardB(into dst: UnsafeMutablePointer<Float>, pc: Int, kc: Int, q0: Int, nc: Int,
                             dims d: ConvDims, src: PaddedImages, rowOffsets: UnsafePointer<Int>,
                             runBuffer: UnsafeMutablePointer<PatchRun>) {
        let NR = GEMMTile.nr
        var jr = 0
        while jr < nc {
            let cnt = min(NR, nc - jr)
            let panel = dst + jr * kc
            let nRuns = runs(q0: q0 + jr, count: cnt, dims: d, src: src, into: runBuffer)
            let base = src.base
            if nRuns == 1 && cnt == NR && d.sw == 1 {
                // One contiguous run of 32: two SIMD16 copies per patch row.
                let s0 = base + runBuffer[0].offset
                let out = UnsafeMutableRawPointer(panel)
                for kk in 0..<kc {
                    let s = UnsafeRawPointer(s0 + rowOffsets[pc &+ kk])
                    out.storeBytes(of: s.loadUnaligned(as: SIMD16<Float>.self), toByteOffset: kk &* 128, as: SIMD16<Float>.self)
                    out.storeBytes(of: s.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self), toByteOffset: kk &* 128 &+ 64,
                                   as: SIMD16<Float>.self)
                }
            } else {
                for kk in 0..<kc {
                    let row = panel + kk &* NR
                    let ro = rowOffsets[pc &+ kk]
                    for r in 0..<nRuns {
                        let run = runBuffer[r]
                        copyRun(row + run.start, base + (run.offset &+ ro), run.length, stride: d.sw)
                    }
                    if cnt < NR { for t in cnt..<NR { row[t] = 0 } }
                }
            }
            jr += NR
        }
    }

    /// The weight-gradient B block: op(B)[d0 ..< d0+kc, jc ..< jc+nc] = cols^T, i.e. element (t, s)
    /// is patch element jc+s of output position d0+t (positions counted from image src.first), in
    /// the packed-B layout. Built per panel through `temp` (NR rows of up to `tempDepth` positions,
    /// contiguous along positions: runs of source rows), then transposed into the panel.
    static func packFilterB(into dst: UnsafeMutablePointer<Float>, d0: Int, kc: Int, jc: Int, nc: Int,
                            dims d: ConvDims, src: PaddedImages, rowOffsets: UnsafePointer<Int>,
                            runs runBuffer: UnsafePointer<PatchRun>, runCount: Int,
                            temp: UnsafeMutablePointer<Float>, tempDepth: Int) {
        let NR = GEMMTile.nr
        var jr = 0
        while jr < nc {
            let cnt = min(NR, nc - jr)
            let panel = dst + jr * kc
            // Depth in chunks of tempDepth positions; the runs cover d0 ..< d0+kc (starts relative to d0).
            var t0 = 0, r0 = 0
            while t0 < kc {
                let tc = min(tempDepth, kc - t0)
                // Rows s of temp: patch element jc+jr+s at positions t0 ..< t0+tc.
                for s in cnt..<NR { (temp + s * tempDepth).update(repeating: 0, count: tc) }
                for s in 0..<cnt {
                    let ro = rowOffsets[jc + jr + s]
                    let row = temp + s * tempDepth - t0
                    var r = r0
                    while r < runCount {
                        let run = runBuffer[r]
                        if run.start >= t0 + tc { break }
                        // The part of the run inside [t0, t0+tc).
                        let a = max(run.start, t0), b = min(run.start + run.length, t0 + tc)
                        copyRun(row + a, src.base + (run.offset &+ ro &+ (a - run.start) &* d.sw), b - a, stride: d.sw)
                        r += 1
                    }
                }
                packTransposed(panel + t0 * NR, width: NR, count: NR, src: UnsafePointer(temp), srcStride: tempDepth, kc: tc)
                t0 += tc
                // Skip runs that ended before the next chunk.
                while r0 < runCount && runBuffer[r0].start + runBuffer[r0].length <= t0 { r0 += 1 }
            }
            jr += NR
        }
    }

    /// The weight-gradient A block: op(A)[0 ..< cout, d0 ..< d0+kc] = dy viewed as (Cout, positions)
    /// over the images from `firstImage` (depth counted from its first position), in the packed-A layout.
    /// dy: (N, Cout, P).
    static func packFilterA(into dst: UnsafeMutablePointer<Float>, d0: Int, kc: Int, dims d: ConvDims,
                            dy: UnsafePointer<Float>, firstImage: Int) {
        let MR = GEMMTile.mr
        var co0 = 0
        while co0 < d.cout {
            let rows = min(MR, d.cout - co0)
            let panel = dst + co0 * kc
            var t = 0
            while t < kc {
                let q = d0 + t
                let img = q / d.p, pos = q - img * d.p
                let len = min(kc - t, d.p - pos)
                packTransposed(panel + t * MR, width: MR, count: rows,
                                src: dy + ((firstImage + img) * d.cout + co0) * d.p + pos, srcStride: d.p, kc: len)
                t += len
            }
            co0 += MR
        }
    }

    /// panel[p*width + s] = src[s*srcStride + p] for s < count, 0 for count <= s < width; p in 0..<kc.
    /// Rows go through 8x8 and 4x8 register transposes in groups of 8 and 4 (so partial panels of
    /// 8 or 4 rows, e.g. the last 8 of 32 output channels, stay fast); the rest is scalar.
    @inline(__always)
    static func packTransposed(_ panel: UnsafeMutablePointer<Float>, width: Int, count: Int,
                               src: UnsafePointer<Float>, srcStride: Int, kc: Int) {
        let kc8 = kc & ~7
        var p0 = 0
        while p0 < kc8 {
            var s0 = 0
            while s0 &+ 8 <= count {
                transpose8x8(src + (s0 &* srcStride &+ p0), srcStride, panel + (p0 &* width &+ s0), width)
                s0 &+= 8
            }
            if s0 &+ 4 <= count {
                transpose4x8(src + (s0 &* srcStride &+ p0), srcStride, panel + (p0 &* width &+ s0), width)
                s0 &+= 4
            }
            for p in p0..<(p0 &+ 8) {
                let d = panel + p &* width
                for s in s0..<count { d[s] = src[s &* srcStride &+ p] }
                for s in count..<width { d[s] = 0 }
            }
            p0 &+= 8
        }
        for p in kc8..<kc {
            let d = panel + p &* width
            for s in 0..<count { d[s] = src[s &* srcStride &+ p] }
            for s in count..<width { d[s] = 0 }
        }
    }
}
