// Direct-B micro-kernels of the implicit-GEMM convolution: the GEMM micro-kernel's register
// blocking (MR x 32 tile of C in 2*MR SIMD16 accumulators, A from a packed panel) with op(B) read
// straight from the (padded) image instead of a packed B panel.
//
// Row p of a 32-column B panel is im2col row k = pc + p at 32 output positions. For stride 1 and
// a panel that is two runs of 16 positions inside output rows (OW a multiple of 16), those are two
// contiguous 16-float pieces of the padded image:
//   b0 = image[base0 + rowOffset[k] ..< +16],  b1 = image[base1 + rowOffset[k] ..< +16]
// (base1 = base0 + 16 when the run continues in the same output row, base0 + Wp for OW = 16).
// So the kernel costs one table load more per depth step than the packed one and saves the whole B
// packing pass (for a 64-channel layer that pass took a third of the time: each B element feeds only
// 64 multiply-adds).
//
// FMA: as GEMMKernel.swift — `addProduct` only under SWIFTCNN_FMA, else multiply and add.

/// Two SIMD16 accumulators: one 32-wide row of a C tile.
struct ConvRow32 {
    var lo = SIMD16<Float>()
    var hi = SIMD16<Float>()

    @inline(__always)
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

    /// c[0..<32] = self (beta 0) or self + c[0..<32] (beta 1).
    @inline(__always)
    func store(_ c: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let p = UnsafeMutableRawPointer(c)
        var r0 = lo, r1 = hi
        if accumulate {
            r0 += p.loadUnaligned(as: SIMD16<Float>.self)
            r1 += p.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
        }
        p.storeBytes(of: r0, as: SIMD16<Float>.self)
        p.storeBytes(of: r1, toByteOffset: 64, as: SIMD16<Float>.self)
    }
}

/// Where the two 16-wide halves of a direct B panel come from.
struct DirectB {
    /// Image pointers of the panel's first and second 16 positions (patch element 0).
    let base0: UnsafePointer<Float>
    let base1: UnsafePointer<Float>
    /// rowOffsets[p]: offset of patch element pc + p (the caller passes rowOffsets + pc).
    let rowOffsets: UnsafePointer<Int>

    @inline(__always)
    func load(_ p: Int) -> (SIMD16<Float>, SIMD16<Float>) {
        let r = rowOffsets[p]
        return (UnsafeRawPointer(base0 + r).loadUnaligned(as: SIMD16<Float>.self),
                UnsafeRawPointer(base1 + r).loadUnaligned(as: SIMD16<Float>.self))
    }
}

/// C[0..<12, 0..<32] (row stride ldc) (+)= Apanel (kc, 12) * B (kc, 32) with B read directly.
@inline(never)
func convKernel12x32(kc: Int, a: UnsafePointer<Float>, b: DirectB, c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
    var c0 = ConvRow32(), c1 = ConvRow32(), c2 = ConvRow32(), c3 = ConvRow32(), c4 = ConvRow32(), c5 = ConvRow32()
    var c6 = ConvRow32(), c7 = ConvRow32(), c8 = ConvRow32(), c9 = ConvRow32(), c10 = ConvRow32(), c11 = ConvRow32()
    var pa = a
    for p in 0..<kc {
        let (b0, b1) = b.load(p)
        c0.madd(pa[0], b0, b1); c1.madd(pa[1], b0, b1); c2.madd(pa[2], b0, b1)
        c3.madd(pa[3], b0, b1); c4.madd(pa[4], b0, b1); c5.madd(pa[5], b0, b1)
        c6.madd(pa[6], b0, b1); c7.madd(pa[7], b0, b1); c8.madd(pa[8], b0, b1)
        c9.madd(pa[9], b0, b1); c10.madd(pa[10], b0, b1); c11.madd(pa[11], b0, b1)
        pa += 12
    }
    c0.store(c, accumulate: accumulate); c1.store(c + ldc, accumulate: accumulate)
    c2.store(c + 2 &* ldc, accumulate: accumulate); c3.store(c + 3 &* ldc, accumulate: accumulate)
    c4.store(c + 4 &* ldc, accumulate: accumulate); c5.store(c + 5 &* ldc, accumulate: accumulate)
    c6.store(c + 6 &* ldc, accumulate: accumulate); c7.store(c + 7 &* ldc, accumulate: accumulate)
    c8.store(c + 8 &* ldc, accumulate: accumulate); c9.store(c + 9 &* ldc, accumulate: accumulate)
    c10.store(c + 10 &* ldc, accumulate: accumulate); c11.store(c + 11 &* ldc, accumulate: accumulate)
}

/// Rows 0..<8 of a 12-row A panel (the last panel when 5...8 rows are real).
@inline(never)
func convKernel8x32(kc: Int, a: UnsafePointer<Float>, b: DirectB, c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
    var c0 = ConvRow32(), c1 = ConvRow32(), c2 = ConvRow32(), c3 = ConvRow32()
    var c4 = ConvRow32(), c5 = ConvRow32(), c6 = ConvRow32(), c7 = ConvRow32()
    var pa = a
    for p in 0..<kc {
        let (b0, b1) = b.load(p)
        c0.madd(pa[0], b0, b1); c1.madd(pa[1], b0, b1); c2.madd(pa[2], b0, b1); c3.madd(pa[3], b0, b1)
        c4.madd(pa[4], b0, b1); c5.madd(pa[5], b0, b1); c6.madd(pa[6], b0, b1); c7.madd(pa[7], b0, b1)
        pa += 12
    }
    c0.store(c, accumulate: accumulate); c1.store(c + ldc, accumulate: accumulate)
    c2.store(c + 2 &* ldc, accumulate: accumulate); c3.store(c + 3 &* ldc, accumulate: accumulate)
    c4.store(c + 4 &* ldc, accumulate: accumulate); c5.store(c + 5 &* ldc, accumulate: accumulate)
    c6.store(c + 6 &* ldc, accumulate: accumulate); c7.store(c + 7 &* ldc, accumulate: accumulate)
}

/// Rows 0..<4 of a 12-row A panel (the last panel when 1...4 rows are real).
@inline(never)
func convKernel4x32(kc: Int, a: UnsafePointer<Float>, b: DirectB, c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
    var c0 = ConvRow32(), c1 = ConvRow32(), c2 = ConvRow32(), c3 = ConvRow32()
    var pa = a
    for p in 0..<kc {
        let (b0, b1) = b.load(p)
        c0.madd(pa[0], b0, b1); c1.madd(pa[1], b0, b1); c2.madd(pa[2], b0, b1); c3.madd(pa[3], b0, b1)
        pa += 12
    }
    c0.store(c, accumulate: accumulate); c1.store(c + ldc, accumulate: accumulate)
    c2.store(c + 2 &* ldc, accumulate: accumulate); c3.store(c + 3 &* ldc, accumulate: accumulate)
}

// MARK: - Small-patch weight gradient (the first layer: Cin = 3, K = 27)

/// The weight gradient of a convolution with a small patch (KW = 3, stride 1, OW a multiple of 16),
/// vectorised along output positions instead of packed into GEMM panels: for 8 output channels and
/// the 3 taps j of one patch row (ci, i), 24 SIMD16 accumulators collect
///   acc[co][j] += dy[n, co, oh, ow ..< ow+16] * xPadded[ci, oh + i, ow + j ..< ow + j + 16],
/// i.e. 24 multiply-adds per 8 + 3 loads, with no packing at all (the packed GEMM spent most of its
/// time packing 27-long rows for 32 or 64 output channels). Lanes are summed at the end of the group.
///
/// `acc`: (Cout, K, 16) lane accumulators, K in (ci, i, j) order; `src`: the padded images of the
/// chunk; `dy` points at the chunk's first image. Adds this chunk's images into `acc`.
/// `bias` (Cout, optional): adds each image's sums of dy per output channel (read while the
/// 8-channel block of dy is still in L1).
func smallPatchFilterGradient(dims d: ConvDims, src: PaddedImages, images: Int, dy: UnsafePointer<Float>,
                              acc: UnsafeMutablePointer<SIMD16<Float>>, bias: UnsafeMutablePointer<Double>?) {
    let rowsPerImage = d.cin * d.kh   // patch rows (ci, i), each with 3 taps
    for img in 0..<images {
        let xImage = src.base + img * src.imageStride
        let dyImage = dy + img * d.cout * d.p
        var co0 = 0
        while co0 < d.cout {
            for r in 0..<rowsPerImage {
                let ci = r / d.kh, i = r - ci * d.kh
                let a = acc + (co0 * d.k + r * 3) * 1   // acc[(co0 + c) * K + r*3 + j]
                var s00 = a[0], s01 = a[1], s02 = a[2]
                var s10 = a[d.k], s11 = a[d.k + 1], s12 = a[d.k + 2]
                var s20 = a[2 * d.k], s21 = a[2 * d.k + 1], s22 = a[2 * d.k + 2]
                var s30 = a[3 * d.k], s31 = a[3 * d.k + 1], s32 = a[3 * d.k + 2]
                var s40 = a[4 * d.k], s41 = a[4 * d.k + 1], s42 = a[4 * d.k + 2]
                var s50 = a[5 * d.k], s51 = a[5 * d.k + 1], s52 = a[5 * d.k + 2]
                var s60 = a[6 * d.k], s61 = a[6 * d.k + 1], s62 = a[6 * d.k + 2]
                var s70 = a[7 * d.k], s71 = a[7 * d.k + 1], s72 = a[7 * d.k + 2]
                for oh in 0..<d.oh {
                    let xRow = UnsafeRawPointer(xImage + (ci * d.hp + oh + i) * d.wp)
                    let dyRow = UnsafeRawPointer(dyImage + co0 * d.p + oh * d.ow)
                    let plane = d.p &* 4
                    var ow = 0
                    while ow < d.ow {
                        let o = ow &* 4
                        let x0 = xRow.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
                        let x1 = xRow.loadUnaligned(fromByteOffset: o &+ 4, as: SIMD16<Float>.self)
                        let x2 = xRow.loadUnaligned(fromByteOffset: o &+ 8, as: SIMD16<Float>.self)
                        @inline(__always) func madd(_ s: inout SIMD16<Float>, _ a: SIMD16<Float>, _ b: SIMD16<Float>) {
                            #if SWIFTCNN_FMA
                            s.addProduct(a, b)
                            #else
                            s += a * b
                            #endif
                        }
                        var g = dyRow.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
                        madd(&s00, g, x0); madd(&s01, g, x1); madd(&s02, g, x2)
                        g = dyRow.loadUnaligned(fromByteOffset: o &+ plane, as: SIMD16<Float>.self)
                        madd(&s10, g, x0); madd(&s11, g, x1); madd(&s12, g, x2)
                        g = dyRow.loadUnaligned(fromByteOffset: o &+ 2 &* plane, as: SIMD16<Float>.self)
                        madd(&s20, g, x0); madd(&s21, g, x1); madd(&s22, g, x2)
                        g = dyRow.loadUnaligned(fromByteOffset: o &+ 3 &* plane, as: SIMD16<Float>.self)
                        madd(&s30, g, x0); madd(&s31, g, x1); madd(&s32, g, x2)
                        g = dyRow.loadUnaligned(fromByteOffset: o &+ 4 &* plane, as: SIMD16<Float>.self)
                        madd(&s40, g, x0); madd(&s41, g, x1); madd(&s42, g, x2)
                        g = dyRow.loadUnaligned(fromByteOffset: o &+ 5 &* plane, as: SIMD16<Float>.self)
                        madd(&s50, g, x0); madd(&s51, g, x1); madd(&s52, g, x2)
                        g = dyRow.loadUnaligned(fromByteOffset: o &+ 6 &* plane, as: SIMD16<Float>.self)
                        madd(&s60, g, x0); madd(&s61, g, x1); madd(&s62, g, x2)
                        g = dyRow.loadUnaligned(fromByteOffset: o &+ 7 &* plane, as: SIMD16<Float>.self)
                        madd(&s70, g, x0); madd(&s71, g, x1); madd(&s72, g, x2)
                        ow &+= 16
                    }
                }
                a[0] = s00; a[1] = s01; a[2] = s02
                a[d.k] = s10; a[d.k + 1] = s11; a[d.k + 2] = s12
                a[2 * d.k] = s20; a[2 * d.k + 1] = s21; a[2 * d.k + 2] = s22
                a[3 * d.k] = s30; a[3 * d.k + 1] = s31; a[3 * d.k + 2] = s32
                a[4 * d.k] = s40; a[4 * d.k + 1] = s41; a[4 * d.k + 2] = s42
                a[5 * d.k] = s50; a[5 * d.k + 1] = s51; a[5 * d.k + 2] = s52
                a[6 * d.k] = s60; a[6 * d.k + 1] = s61; a[6 * d.k + 2] = s62
                a[7 * d.k] = s70; a[7 * d.k + 1] = s71; a[7 * d.k + 2] = s72
            }
            if let bias {
                for c in 0..<8 { bias[co0 + c] += Double(planeSum(dyImage + (co0 + c) * d.p, d.p)) }
            }
            co0 += 8
        }
    }
}
