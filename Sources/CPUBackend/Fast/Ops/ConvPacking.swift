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
import SGEMM

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
    /// `skipDirect`: leave out the panels the direct-B kernels read from the image (`directPanel`).
    static func packForwardB(into dst: UnsafeMutablePointer<Float>, pc: Int, kc: Int, q0: Int, nc: Int,
                             dims d: ConvDims, src: PaddedImages, rowOffsets: UnsafePointer<Int>,
                             runBuffer: UnsafeMutablePointer<PatchRun>, skipDirect: Bool = false) {
        let NR = GEMMTile.nr
        var jr = 0
        while jr < nc {
            let cnt = min(NR, nc - jr)
            let panel = dst + jr * kc
            if skipDirect && directPanel(q: q0 + jr, count: cnt, dims: d, src: src) != nil { jr += NR; continue }
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

    /// The image pointers (patch element 0) of the two 16-position halves of the 32-column panel at
    /// position q (from image src.first), when the direct-B kernels can read it from the image:
    /// stride 1 along rows, 32 columns inside one image, each half inside one output row.
    @inline(__always)
    static func directPanel(q: Int, count: Int, dims d: ConvDims, src: PaddedImages) -> (UnsafePointer<Float>, UnsafePointer<Float>)? {
        guard count == GEMMTile.nr && d.sw == 1 && d.ow % 16 == 0 else { return nil }
        let img = q / d.p, pos = q - img * d.p
        guard pos + 32 <= d.p else { return nil }
        func base(_ pos: Int) -> UnsafePointer<Float> {
            let orow = pos / d.ow, ocol = pos - orow * d.ow
            return src.base + (img * src.imageStride + orow * d.sh * d.wp + ocol)
        }
        return (base(pos), base(pos + 16))
    }

    // MARK: Weight gradient (channels-last source)
    //
    // The weight gradient reads x through a padded channels-last copy xT (images, Hp, Wp, Cin) and
    // orders the patch as (i, j, ci): patch element k' = (i*KW + j)*Cin + ci of output position
    // (n, oh, ow) is xT[posOffset(n, oh, ow) + (i*Wp + j)*Cin + ci] with
    // posOffset = ((n*Hp + oh*sh)*Wp + ow*sw)*Cin. For each i the (j, ci) part is contiguous
    // (KW*Cin floats), so a row of a B panel (one position, 32 consecutive k') is one or a few
    // contiguous copies — or, when KW*Cin is a multiple of 32, read in place by the direct-B kernels.

    /// xT[(i * Hp + ih) * Wp + iw] * Cin + ci for images first ..< first+count of x (N, Cin, H, W),
    /// zero-padded: the channels-last copy described above, in `dst` (count * Hp*Wp*Cin floats).
    static func channelsLast(x: UnsafePointer<Float>, dims d: ConvDims, first: Int, count: Int, into dst: UnsafeMutablePointer<Float>) {
        let (h, w, hp, wp, ph, pw, cin) = (d.h, d.w, d.hp, d.wp, d.ph, d.pw, d.cin)
        for i in 0..<count {
            let xn = x + (first + i) * cin * h * w
            let out = dst + i * hp * wp * cin
            out.update(repeating: 0, count: ph * wp * cin)
            for r in 0..<h {
                let row = out + (r + ph) * wp * cin
                row.update(repeating: 0, count: pw * cin)
                // row[(pw + c) * cin + ci] = x[ci, r, c]
                packTransposed(row + pw * cin, width: cin, count: cin, src: xn + r * w, srcStride: h * w, kc: w)
                (row + (pw + w) * cin).update(repeating: 0, count: (wp - pw - w) * cin)
            }
            (out + (ph + h) * wp * cin).update(repeating: 0, count: (hp - ph - h) * wp * cin)
        }
    }

    /// Offsets in xT of output positions d0 ..< d0+count counted from the chunk's first image
    /// (patch element 0 of each).
    static func positionOffsets(d0: Int, count: Int, dims d: ConvDims, into table: UnsafeMutablePointer<Int>) {
        var img = d0 / d.p, pos = d0 - img * d.p
        var orow = pos / d.ow, ocol = pos - orow * d.ow
        let imageSize = d.hp * d.wp * d.cin
        for t in 0..<count {
            table[t] = img * imageSize + (orow * d.sh * d.wp + ocol * d.sw) * d.cin
            ocol += 1
            if ocol == d.ow {
                ocol = 0; orow += 1
                if orow == d.oh { orow = 0; img += 1 }
            }
        }
    }

    /// Offset of patch element k' (i, j, ci order) in xT relative to its position's offset.
    @inline(__always)
    static func channelsLastOffset(_ k: Int, dims d: ConvDims) -> Int {
        let run = d.kw * d.cin
        let i = k / run
        return i * d.wp * d.cin + (k - i * run)
    }

    /// The weight-gradient B block in the packed-B layout: element (t, s) = patch element jc+s
    /// ((i, j, ci) order) of position t of the block (positions' xT offsets in `positions`).
    /// `segments`: scratch for up to 32 runs.
    static func packFilterB(into dst: UnsafeMutablePointer<Float>, kc: Int, jc: Int, nc: Int, dims d: ConvDims,
                            xT: UnsafePointer<Float>, positions: UnsafePointer<Int>, segments: UnsafeMutablePointer<PatchRun>) {
        let NR = GEMMTile.nr
        let run = d.kw * d.cin
        var jr = 0
        while jr < nc {
            let cnt = min(NR, nc - jr)
            let panel = dst + jr * kc
            // The panel's columns as runs contiguous in xT.
            var nSeg = 0, s = 0
            while s < cnt {
                let k = jc + jr + s
                let len = min(cnt - s, run - k % run)
                segments[nSeg] = PatchRun(start: s, length: len, offset: channelsLastOffset(k, dims: d))
                nSeg += 1; s += len
            }
            for t in 0..<kc {
                let row = panel + t &* NR, base = xT + positions[t]
                for g in 0..<nSeg {
                    let seg = segments[g]
                    copyFloats(row + seg.start, base + seg.offset, seg.length)
                }
                if cnt < NR { for c in cnt..<NR { row[c] = 0 } }
            }
            jr += NR
        }
    }

    /// The weight-gradient A block: op(A)[0 ..< cout, d0 ..< d0+kc] = dy viewed as (Cout, positions)
    /// over the images from `firstImage` (depth counted from its first position), in the packed-A layout.
    /// dy: (N, Cout, P).
    static func packFilterA(into dst: UnsafeMutablePointer<Float>, d0: Int, kc: Int, dims d: ConvDims,
                            dy: UnsafePointer<Float>, firstImage: Int, panels: RowPanels) {
        let MR = GEMMTile.mr
        for q in 0..<panels.count {
            let (co0, rows) = panels[q]
            let panel = dst + q * MR * kc
            var t = 0
            while t < kc {
                let q = d0 + t
                let img = q / d.p, pos = q - img * d.p
                let len = min(kc - t, d.p - pos)
                packTransposed(panel + t * MR, width: MR, count: rows,
                                src: dy + ((firstImage + img) * d.cout + co0) * d.p + pos, srcStride: d.p, kc: len)
                t += len
            }
        }
    }

    /// into[row] += sum over the kc depth steps of the packed A block's entry for that row, per
    /// panel (A block as `packFilterA` writes it; Float sums per block, added in Double). Reads 4
    /// floats past each panel row (lanes 12..15 of a 16-wide load are ignored).
    static func addPanelSums(_ a: UnsafePointer<Float>, kc: Int, panels: RowPanels, into: UnsafeMutablePointer<Double>) {
        let MR = GEMMTile.mr
        for q in 0..<panels.count {
            let (start, rows) = panels[q]
            let panel = UnsafeRawPointer(a + q * MR * kc)
            var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>()
            var t = 0
            while t &+ 2 <= kc {
                acc0 += panel.loadUnaligned(fromByteOffset: t &* MR &* 4, as: SIMD16<Float>.self)
                acc1 += panel.loadUnaligned(fromByteOffset: (t &+ 1) &* MR &* 4, as: SIMD16<Float>.self)
                t &+= 2
            }
            if t < kc { acc0 += panel.loadUnaligned(fromByteOffset: t &* MR &* 4, as: SIMD16<Float>.self) }
            let sum = acc0 + acc1
            for r in 0..<rows { into[start + r] += Double(sum[r]) }
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
