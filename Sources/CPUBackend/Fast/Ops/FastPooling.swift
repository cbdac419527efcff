// Fast pooling over NCHW planes, parallel over planes.
//
// Max pooling 2x2 / stride 2 / no padding (every model's pool): 16 outputs at a time from two
// input rows (even / odd lanes of 32-wide loads), maximum and argmax in one pass with the reference's
// order (row-major window order, first maximum wins, NaN beats numbers, the first NaN wins).
// Other windows: the reference's loop, per plane. Backward for non-overlapping windows (stride >=
// kernel, which includes global pooling): each input element receives at most one value, so dx is
// dy routed to its argmax and zero elsewhere — bit-exact with the reference; 2x2 / stride 2 writes
// both input rows of an output row in one SIMD pass, other windows zero dx and then route.
// Overlapping windows use the reference.

import CNNCore
import SGEMM

extension FastCPU {
    func runPlanes<T: ParallelRangeTask>(_ planes: Int, work: Int, _ task: T) {
        if planes > 1 && split(work, 1 << 15) {
            pool.parallelRanges(planes, task)
        } else {
            task.run(0..<planes)
        }
    }

    /// Fast path of `Reference.maxPool2DForward` (bit-exact). x: (N, C, H, W), y, argmax: (N, C, OH, OW).
    func maxPool2DForward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<Int32>,
                          geometry g: Pool2DGeometry) {
        let planes = g.batch * g.channels
        runPlanes(planes, work: planes * g.height * g.width, MaxPoolForwardTask(x: x, y: y, argmax: argmax, g: g))
    }

    /// Fast path of `Reference.maxPool2DBackward` (bit-exact; the same argmax check, before dx is touched).
    func maxPool2DBackward(dy: UnsafePointer<Float>, argmax: UnsafePointer<Int32>, dx: UnsafeMutablePointer<Float>,
                           geometry g: Pool2DGeometry) throws {
        if g.strideH < g.kernelH || g.strideW < g.kernelW {
            try CPUBackend.Reference.maxPool2DBackward(dy: dy, argmax: argmax, dx: dx, geometry: g)
            return
        }
        let planes = g.batch * g.channels
        let outputs = planes * g.outHeight * g.outWidth
        // The check first (as the reference): every argmax inside its window.
        let check = MaxPoolArgmaxCheck(argmax: argmax, g: g, failures: workspace.buffer(.small, max(1, threads) * 4 + 64, as: Int.self))
        let chunks = min(64, max(1, planes))
        for i in 0..<chunks { check.failures[i] = -1 }
        let checkTask = MaxPoolArgmaxCheckChunks(check: check, planes: planes, chunks: chunks)
        if split(outputs, 1 << 15) { pool.parallelFor(chunks, checkTask) } else { for i in 0..<chunks { checkTask.run(i) } }
        for i in 0..<chunks where check.failures[i] >= 0 {
            let o = check.failures[i]
            let (OH, OW) = (g.outHeight, g.outWidth)
            let plane = o / (OH * OW), oh = (o / OW) % OH, ow = o % OW
            throw CNNError.invalidArgument(
                "maxPool2DBackward: argmax[\(plane / g.channels), \(plane % g.channels), \(oh), \(ow)] = \(argmax[o]) is not an input element of its window "
                + "(\(g)); pass the argmax written by maxPool2DForward with the same geometry")
        }
        runPlanes(planes, work: planes * g.height * g.width, MaxPoolBackwardTask(dy: dy, argmax: argmax, dx: dx, g: g))
    }

    /// Fast path of `Reference.avgPool2DForward` (rtol 1e-6 x window size: Float sums).
    func avgPool2DForward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, geometry g: Pool2DGeometry) {
        let planes = g.batch * g.channels
        runPlanes(planes, work: planes * g.height * g.width, AvgPoolForwardTask(x: x, y: y, g: g))
    }

    /// Fast path of `Reference.avgPool2DBackward` (bit-exact for non-overlapping windows, which
    /// include global pooling; Float sums otherwise).
    func avgPool2DBackward(dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, geometry g: Pool2DGeometry) {
        let planes = g.batch * g.channels
        runPlanes(planes, work: planes * g.height * g.width, AvgPoolBackwardTask(dy: dy, dx: dx, g: g))
    }
}

struct MaxPoolForwardTask: ParallelRangeTask {
    let x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<Int32>
    let g: Pool2DGeometry

    func run(_ range: Range<Int>) {
        let (H, W, OH, OW) = (g.height, g.width, g.outHeight, g.outWidth)
        let is2x2 = g.kernelH == 2 && g.kernelW == 2 && g.strideH == 2 && g.strideW == 2 && g.padH == 0 && g.padW == 0
        for plane in range {
            let xp = x + plane * H * W, yp = y + plane * OH * OW, ap = argmax + plane * OH * OW
            if is2x2 {
                for oh in 0..<OH { pool2x2Row(xp, W: W, oh: oh, OW: OW, y: yp + oh * OW, a: ap + oh * OW) }
            } else if g.kernelH == H && g.kernelW == W && g.padH == 0 && g.padW == 0 {
                // Global: one window per plane.
                var best = 0
                for p in 1..<(H * W) where CPUBackend.Reference.isGreater(xp[p], than: xp[best]) { best = p }
                yp[0] = xp[best]; ap[0] = Int32(best)
            } else {
                generalPlane(xp, yp, ap)
            }
        }
    }

    /// One output row of a 2x2 / stride 2 pool: outputs ow in 0..<OW from input rows 2oh, 2oh+1.
    @inline(__always)
    func pool2x2Row(_ xp: UnsafePointer<Float>, W: Int, oh: Int, OW: Int, y: UnsafeMutablePointer<Float>, a: UnsafeMutablePointer<Int32>) {
        let r0 = xp + 2 * oh * W, r1 = r0 + W
        let base = Int32(2 * oh * W)
        let w32 = Int32(W)
        let lane = SIMD16<Int32>(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
        var ow = 0
        while ow + 16 <= OW {
            let v0 = UnsafeRawPointer(r0 + 2 * ow).loadUnaligned(as: SIMD32<Float>.self)
            let v1 = UnsafeRawPointer(r1 + 2 * ow).loadUnaligned(as: SIMD32<Float>.self)
            let i00 = lane &+ (base &+ Int32(2 * ow))
            var best = v0.evenHalf, idx = i00
            Self.consider(&best, &idx, v0.oddHalf, i00 &+ 1)
            Self.consider(&best, &idx, v1.evenHalf, i00 &+ w32)
            Self.consider(&best, &idx, v1.oddHalf, i00 &+ (w32 &+ 1))
            UnsafeMutableRawPointer(y + ow).storeBytes(of: best, as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(a + ow).storeBytes(of: idx, as: SIMD16<Int32>.self)
            ow += 16
        }
        if ow + 8 <= OW {
            let v0 = UnsafeRawPointer(r0 + 2 * ow).loadUnaligned(as: SIMD16<Float>.self)
            let v1 = UnsafeRawPointer(r1 + 2 * ow).loadUnaligned(as: SIMD16<Float>.self)
            let i00 = lane.lowHalf &+ (base &+ Int32(2 * ow))
            var best = v0.evenHalf, idx = i00
            Self.consider8(&best, &idx, v0.oddHalf, i00 &+ 1)
            Self.consider8(&best, &idx, v1.evenHalf, i00 &+ w32)
            Self.consider8(&best, &idx, v1.oddHalf, i00 &+ (w32 &+ 1))
            UnsafeMutableRawPointer(y + ow).storeBytes(of: best, as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(a + ow).storeBytes(of: idx, as: SIMD8<Int32>.self)
            ow += 8
        }
        if ow + 4 <= OW {
            let v0 = UnsafeRawPointer(r0 + 2 * ow).loadUnaligned(as: SIMD8<Float>.self)
            let v1 = UnsafeRawPointer(r1 + 2 * ow).loadUnaligned(as: SIMD8<Float>.self)
            let i00 = lane.lowHalf.lowHalf &+ (base &+ Int32(2 * ow))
            var best = v0.evenHalf, idx = i00
            Self.consider4(&best, &idx, v0.oddHalf, i00 &+ 1)
            Self.consider4(&best, &idx, v1.evenHalf, i00 &+ w32)
            Self.consider4(&best, &idx, v1.oddHalf, i00 &+ (w32 &+ 1))
            UnsafeMutableRawPointer(y + ow).storeBytes(of: best, as: SIMD4<Float>.self)
            UnsafeMutableRawPointer(a + ow).storeBytes(of: idx, as: SIMD4<Int32>.self)
            ow += 4
        }
        while ow < OW {
            // Branch-free: the comparisons select, they do not branch (random data mispredicts).
            let p00 = 2 * oh * W + 2 * ow
            var best = xp[p00], bi = p00
            var v = xp[p00 + 1]
            var take = !best.isNaN && (v > best || v.isNaN)
            best = take ? v : best; bi = take ? p00 + 1 : bi
            v = xp[p00 + W]
            take = !best.isNaN && (v > best || v.isNaN)
            best = take ? v : best; bi = take ? p00 + W : bi
            v = xp[p00 + W + 1]
            take = !best.isNaN && (v > best || v.isNaN)
            best = take ? v : best; bi = take ? p00 + W + 1 : bi
            y[ow] = best; a[ow] = Int32(bi)
            ow += 1
        }
    }

    /// The reference's ordering on 16 lanes: v replaces best where best is not NaN and v > best or v is NaN.
    @inline(__always)
    static func consider(_ best: inout SIMD16<Float>, _ idx: inout SIMD16<Int32>, _ v: SIMD16<Float>, _ iv: SIMD16<Int32>) {
        let take = (best .== best) .& ((v .> best) .| (v .!= v))
        best.replace(with: v, where: take)
        idx.replace(with: iv, where: take)   // Float's mask storage is SIMD16<Int32>
    }
    @inline(__always)
    static func consider8(_ best: inout SIMD8<Float>, _ idx: inout SIMD8<Int32>, _ v: SIMD8<Float>, _ iv: SIMD8<Int32>) {
        let take = (best .== best) .& ((v .> best) .| (v .!= v))
        best.replace(with: v, where: take)
        idx.replace(with: iv, where: take)
    }
    @inline(__always)
    static func consider4(_ best: inout SIMD4<Float>, _ idx: inout SIMD4<Int32>, _ v: SIMD4<Float>, _ iv: SIMD4<Int32>) {
        let take = (best .== best) .& ((v .> best) .| (v .!= v))
        best.replace(with: v, where: take)
        idx.replace(with: iv, where: take)
    }

    func generalPlane(_ xp: UnsafePointer<Float>, _ yp: UnsafeMutablePointer<Float>, _ ap: UnsafeMutablePointer<Int32>) {
        let (H, W, OH, OW) = (g.height, g.width, g.outHeight, g.outWidth)
        for oh in 0..<OH {
            let h0 = oh * g.strideH - g.padH
            let hLo = max(0, h0), hHi = min(H, h0 + g.kernelH)
            for ow in 0..<OW {
                let w0 = ow * g.strideW - g.padW
                let wLo = max(0, w0), wHi = min(W, w0 + g.kernelW)
                var best = hLo * W + wLo
                for ih in hLo..<hHi {
                    for iw in wLo..<wHi {
                        let p = ih * W + iw
                        if CPUBackend.Reference.isGreater(xp[p], than: xp[best]) { best = p }
                    }
                }
                yp[oh * OW + ow] = xp[best]; ap[oh * OW + ow] = Int32(best)
            }
        }
    }
}

/// Records, per chunk of planes, the first output whose argmax lies outside its window (-1: none).
struct MaxPoolArgmaxCheck {
    let argmax: UnsafePointer<Int32>
    let g: Pool2DGeometry
    let failures: UnsafeMutablePointer<Int>

    func check(planes: Range<Int>) -> Int {
        let (H, W, OH, OW) = (g.height, g.width, g.outHeight, g.outWidth)
        let is2x2 = g.kernelH == 2 && g.kernelW == 2 && g.strideH == 2 && g.strideW == 2 && g.padH == 0 && g.padW == 0
        for plane in planes {
            let ap = argmax + plane * OH * OW
            for oh in 0..<OH {
                let h0 = oh * g.strideH - g.padH
                let hLo = max(0, h0), hHi = min(H, h0 + g.kernelH)
                if is2x2 {
                    // a - (2oh*W + 2ow) must be one of 0, 1, W, W + 1: (r >> 1) == 0 or ((r - W) >> 1) == 0
                    // as unsigned values. Branch-free (vectorizes); OR of the per-output minimums.
                    var bad: UInt32 = 0
                    let row = ap + oh * OW
                    let base = Int32(truncatingIfNeeded: 2 * oh * W), w32 = Int32(truncatingIfNeeded: W)
                    for ow in 0..<OW {
                        let r = UInt32(bitPattern: row[ow] &- (base &+ Int32(truncatingIfNeeded: 2 * ow)))
                        bad |= min(r &>> 1, (r &- UInt32(bitPattern: w32)) &>> 1)
                    }
                    if bad == 0 { continue }
                }
                for ow in 0..<OW {
                    let w0 = ow * g.strideW - g.padW
                    let wLo = max(0, w0), wHi = min(W, w0 + g.kernelW)
                    let a = Int(ap[oh * OW + ow])
                    // Inside iff a - ih*W lies in [wLo, wHi) for one of the window's rows ih.
                    var ok = false
                    for ih in hLo..<hHi {
                        let c = a - ih * W
                        if c >= wLo && c < wHi { ok = true; break }
                    }
                    if !ok { return (plane * OH + oh) * OW + ow }
                }
            }
        }
        return -1
    }
}

struct MaxPoolArgmaxCheckChunks: ParallelTask {
    let check: MaxPoolArgmaxCheck
    let planes: Int, chunks: Int
    func run(_ i: Int) {
        check.failures[i] = check.check(planes: (i * planes / chunks)..<((i + 1) * planes / chunks))
    }
}

struct MaxPoolBackwardTask: ParallelRangeTask {
    let dy: UnsafePointer<Float>, argmax: UnsafePointer<Int32>, dx: UnsafeMutablePointer<Float>
    let g: Pool2DGeometry
    func run(_ range: Range<Int>) {
        let (H, W, OH, OW) = (g.height, g.width, g.outHeight, g.outWidth)
        let hw = H * W, o = OH * OW
        let is2x2 = g.kernelH == 2 && g.kernelW == 2 && g.strideH == 2 && g.strideW == 2 && g.padH == 0 && g.padW == 0
        if !is2x2 {
            // Non-overlapping windows: zero, then route each dy to its argmax.
            (dx + range.lowerBound * hw).update(repeating: 0, count: range.count * hw)
            for plane in range {
                let dyp = dy + plane * o, ap = argmax + plane * o, dxp = dx + plane * hw
                for i in 0..<o { dxp[Int(ap[i])] = dyp[i] }
            }
            return
        }
        // 2x2 / stride 2: every element of dx written once, in one pass (no zeroing pass): the two
        // input rows of an output row are built 16 floats at a time from 8 outputs — dy and the
        // argmax offsets duplicated into even / odd lanes, kept where the offset names that lane.
        let dup = SIMD8<Int32>(0, 2, 4, 6, 8, 10, 12, 14)
        let w32 = Int32(truncatingIfNeeded: W)
        let parity = SIMD16<Int32>(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1)
        let lower = parity &+ SIMD16<Int32>(repeating: w32)
        for plane in range {
            let dyp = dy + plane * o, ap = argmax + plane * o, dxp = dx + plane * hw
            for oh in 0..<OH {
                let r0 = dxp + 2 * oh * W, r1 = r0 + W
                let drow = dyp + oh * OW, arow = ap + oh * OW
                let base = Int32(truncatingIfNeeded: 2 * oh * W)
                var ow = 0
                while ow + 8 <= OW {
                    let d = UnsafeRawPointer(drow + ow).loadUnaligned(as: SIMD8<Float>.self)
                    let r = UnsafeRawPointer(arow + ow).loadUnaligned(as: SIMD8<Int32>.self)
                        &- (dup &+ (base &+ Int32(truncatingIfNeeded: 2 * ow)))
                    let d2 = SIMD16<Float>(d[0], d[0], d[1], d[1], d[2], d[2], d[3], d[3], d[4], d[4], d[5], d[5], d[6], d[6], d[7], d[7])
                    let r2 = SIMD16<Int32>(r[0], r[0], r[1], r[1], r[2], r[2], r[3], r[3], r[4], r[4], r[5], r[5], r[6], r[6], r[7], r[7])
                    let zero = SIMD16<Float>(repeating: 0)
                    UnsafeMutableRawPointer(r0 + 2 * ow).storeBytes(of: zero.replacing(with: d2, where: r2 .== parity), as: SIMD16<Float>.self)
                    UnsafeMutableRawPointer(r1 + 2 * ow).storeBytes(of: zero.replacing(with: d2, where: r2 .== lower), as: SIMD16<Float>.self)
                    ow += 8
                }
                while ow < OW {
                    let v = drow[ow], r = Int(arow[ow]) - (2 * oh * W + 2 * ow)
                    r0[2 * ow] = r == 0 ? v : 0
                    r0[2 * ow + 1] = r == 1 ? v : 0
                    r1[2 * ow] = r == W ? v : 0
                    r1[2 * ow + 1] = r == W + 1 ? v : 0
                    ow += 1
                }
                for c in (2 * OW)..<W { r0[c] = 0; r1[c] = 0 }   // odd W: the last column is in no window
            }
            if 2 * OH < H { (dxp + 2 * OH * W).update(repeating: 0, count: (H - 2 * OH) * W) }
        }
    }
}

struct AvgPoolForwardTask: ParallelRangeTask {
    let x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>
    let g: Pool2DGeometry
    func run(_ range: Range<Int>) {
        let (H, W, OH, OW) = (g.height, g.width, g.outHeight, g.outWidth)
        let divisor = Float(g.kernelH * g.kernelW)
        let global = g.kernelH == H && g.kernelW == W && g.padH == 0 && g.padW == 0
        for plane in range {
            let xp = x + plane * H * W, yp = y + plane * OH * OW
            if global { yp[0] = planeSum(xp, H * W) / divisor; continue }
            for oh in 0..<OH {
                let h0 = oh * g.strideH - g.padH
                let hLo = max(0, h0), hHi = min(H, h0 + g.kernelH)
                for ow in 0..<OW {
                    let w0 = ow * g.strideW - g.padW
                    let wLo = max(0, w0), wHi = min(W, w0 + g.kernelW)
                    var acc: Float = 0
                    for ih in hLo..<hHi { for iw in wLo..<wHi { acc += xp[ih * W + iw] } }
                    yp[oh * OW + ow] = acc / divisor
                }
            }
        }
    }
}

struct AvgPoolBackwardTask: ParallelRangeTask {
    let dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>
    let g: Pool2DGeometry
    func run(_ range: Range<Int>) {
        let (H, W, OH, OW) = (g.height, g.width, g.outHeight, g.outWidth)
        let divisor = Float(g.kernelH * g.kernelW)
        for plane in range {
            let dyp = dy + plane * OH * OW, dxp = dx + plane * H * W
            if g.strideH >= g.kernelH && g.strideW >= g.kernelW {
                // Each input element lies in at most one window: dx = dy / divisor there, else 0.
                dxp.update(repeating: 0, count: H * W)
                for oh in 0..<OH {
                    let h0 = oh * g.strideH - g.padH
                    let hLo = max(0, h0), hHi = min(H, h0 + g.kernelH)
                    for ow in 0..<OW {
                        let w0 = ow * g.strideW - g.padW
                        let wLo = max(0, w0), wHi = min(W, w0 + g.kernelW)
                        let v = dyp[oh * OW + ow] / divisor
                        for ih in hLo..<hHi { for iw in wLo..<wHi { dxp[ih * W + iw] = v } }
                    }
                }
                continue
            }
            for h in 0..<H {
                for w in 0..<W {
                    var acc: Float = 0
                    for oh in CPUBackend.Reference.windows(containing: h, pad: g.padH, kernel: g.kernelH, stride: g.strideH, count: OH) {
                        for ow in CPUBackend.Reference.windows(containing: w, pad: g.padW, kernel: g.kernelW, stride: g.strideW, count: OW) {
                            acc += dyp[oh * OW + ow]
                        }
                    }
                    dxp[h * W + w] = acc / divisor
                }
            }
        }
    }
}
