// Fast grouped / depthwise convolution, GELU, channel shuffle and channel copy.
//
// Grouped convolution with one group is the dense convolution (FastConvolution.swift). Otherwise the
// channels per group are few (depthwise: one), a GEMM has nothing to gain, and the paths are direct
// loops in Float over whole rows (the inner loop runs over contiguous output columns, the window
// bounds hoisted out of it), split over the pool by planes:
//   forward (reference `Reference.groupedConv2DForward`): one task per output plane (n, co);
//   backward data (`Reference.groupedConv2DBackwardData`): one task per input plane (n, ci),
//     scattering the rows of its group's dy planes into its own plane;
//   backward filter (`Reference.groupedConv2DBackwardFilter`): one task per output channel co,
//     each row's Float sum added into a Double per weight, images in order.
// Every output element is computed by one task in a fixed order: results do not depend on the
// thread count. Tolerance against the reference: the convolutions' (rtol 1e-4).

import CNNCore
import SGEMM
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension FastCPU {
    /// The output columns ow whose input column ow*s - p + j lies in 0..<w.
    @inline(__always)
    static func validColumns(_ j: Int, stride s: Int, pad p: Int, width w: Int, outWidth ow: Int) -> Range<Int> {
        // ow*s >= p - j  and  ow*s <= w - 1 + p - j
        let lo = max(0, (p - j + s - 1) / s)
        let t = w - 1 + p - j
        let hi = t < 0 ? 0 : min(ow, t / s + 1)
        return lo < hi ? lo..<hi : 0..<0
    }

    /// Fast path of `Reference.groupedConv2DForward`.
    func groupedConv2DForward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                              y: UnsafeMutablePointer<Float>, geometry g: Conv2DGeometry, groups G: Int, activation: Activation) {
        if G == 1 { conv2DForward(x: x, weight: weight, bias: bias, y: y, geometry: g, activation: activation); return }
        let (Cin, H, W, Cout, KH, KW) = (g.inChannels, g.height, g.width, g.outChannels, g.kernelH, g.kernelW)
        let (OH, OW, sh, sw, ph, pw) = (g.outHeight, g.outWidth, g.strideH, g.strideW, g.padH, g.padW)
        let cpg = Cin / G, opg = Cout / G
        let planes = g.batch * Cout
        let body: (Int) -> Void = { plane in
            let n = plane / Cout, co = plane % Cout, k = co / opg
            let yp = y + plane * OH * OW
            let b0 = bias?[co] ?? 0
            for p in 0..<(OH * OW) { yp[p] = b0 }
            for c in 0..<cpg {
                let xp = x + (n * Cin + k * cpg + c) * H * W
                let wp = weight + (co * cpg + c) * KH * KW
                for i in 0..<KH {
                    for j in 0..<KW {
                        let wv = wp[i * KW + j]
                        let cols = Self.validColumns(j, stride: sw, pad: pw, width: W, outWidth: OW)
                        if cols.isEmpty { continue }
                        for oh in 0..<OH {
                            let ih = oh * sh - ph + i
                            if ih < 0 || ih >= H { continue }
                            let yr = yp + oh * OW, xr = xp + ih * W - pw + j
                            if sw == 1 {
                                for ow in cols { yr[ow] += wv * xr[ow] }
                            } else {
                                for ow in cols { yr[ow] += wv * xr[ow * sw] }
                            }
                        }
                    }
                }
            }
            if activation == .relu { for p in 0..<(OH * OW) { yp[p] = CPUBackend.Reference.relu(yp[p]) } }
        }
        if split(planes * OH * OW * cpg * KH * KW, 1 << 16) { pool.parallelFor(planes, body) } else { for p in 0..<planes { body(p) } }
    }

    /// Fast path of `Reference.groupedConv2DBackwardData`.
    func groupedConv2DBackwardData(dy: UnsafePointer<Float>, weight: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
                                   geometry g: Conv2DGeometry, groups G: Int) {
        if G == 1 { conv2DBackwardData(dy: dy, weight: weight, dx: dx, geometry: g); return }
        let (Cin, H, W, Cout, KH, KW) = (g.inChannels, g.height, g.width, g.outChannels, g.kernelH, g.kernelW)
        let (OH, OW, sh, sw, ph, pw) = (g.outHeight, g.outWidth, g.strideH, g.strideW, g.padH, g.padW)
        let cpg = Cin / G, opg = Cout / G
        let planes = g.batch * Cin
        let body: (Int) -> Void = { plane in
            let n = plane / Cin, ci = plane % Cin, k = ci / cpg, c = ci % cpg
            let dxp = dx + plane * H * W
            for p in 0..<(H * W) { dxp[p] = 0 }
            for co in (k * opg)..<((k + 1) * opg) {
                let dyp = dy + (n * Cout + co) * OH * OW
                let wp = weight + (co * cpg + c) * KH * KW
                for i in 0..<KH {
                    for j in 0..<KW {
                        let wv = wp[i * KW + j]
                        let cols = Self.validColumns(j, stride: sw, pad: pw, width: W, outWidth: OW)
                        if cols.isEmpty { continue }
                        for oh in 0..<OH {
                            let ih = oh * sh - ph + i
                            if ih < 0 || ih >= H { continue }
                            let dyr = dyp + oh * OW, dxr = dxp + ih * W - pw + j
                            if sw == 1 {
                                for ow in cols { dxr[ow] += wv * dyr[ow] }
                            } else {
                                for ow in cols { dxr[ow * sw] += wv * dyr[ow] }
                            }
                        }
                    }
                }
            }
        }
        if split(planes * OH * OW * opg * KH * KW, 1 << 16) { pool.parallelFor(planes, body) } else { for p in 0..<planes { body(p) } }
    }

    /// Fast path of `Reference.groupedConv2DBackwardFilter`.
    func groupedConv2DBackwardFilter(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dWeight: UnsafeMutablePointer<Float>,
                                     dBias: UnsafeMutablePointer<Float>?, geometry g: Conv2DGeometry, groups G: Int) {
        if G == 1 { conv2DBackwardFilter(x: x, dy: dy, dWeight: dWeight, dBias: dBias, geometry: g); return }
        let (Cin, H, W, Cout, KH, KW) = (g.inChannels, g.height, g.width, g.outChannels, g.kernelH, g.kernelW)
        let (OH, OW, sh, sw, ph, pw) = (g.outHeight, g.outWidth, g.strideH, g.strideW, g.padH, g.padW)
        let cpg = Cin / G, opg = Cout / G, N = g.batch
        let body: (Int) -> Void = { co in
            let k = co / opg
            for c in 0..<cpg {
                for i in 0..<KH {
                    for j in 0..<KW {
                        let cols = Self.validColumns(j, stride: sw, pad: pw, width: W, outWidth: OW)
                        var acc = 0.0
                        if !cols.isEmpty {
                            for n in 0..<N {
                                let xp = x + (n * Cin + k * cpg + c) * H * W
                                let dyp = dy + (n * Cout + co) * OH * OW
                                var rowSum: Float = 0
                                for oh in 0..<OH {
                                    let ih = oh * sh - ph + i
                                    if ih < 0 || ih >= H { continue }
                                    let dyr = dyp + oh * OW, xr = xp + ih * W - pw + j
                                    var s: Float = 0
                                    if sw == 1 { for ow in cols { s += dyr[ow] * xr[ow] } } else { for ow in cols { s += dyr[ow] * xr[ow * sw] } }
                                    rowSum += s
                                }
                                acc += Double(rowSum)
                            }
                        }
                        dWeight[((co * cpg + c) * KH + i) * KW + j] = Float(acc)
                    }
                }
            }
            if let dBias {
                var acc = 0.0
                for n in 0..<N {
                    let dyp = dy + (n * Cout + co) * OH * OW
                    var s: Float = 0
                    for p in 0..<(OH * OW) { s += dyp[p] }
                    acc += Double(s)
                }
                dBias[co] = Float(acc)
            }
        }
        if split(N * OH * OW * Cout * cpg * KH * KW, 1 << 16) { pool.parallelFor(Cout, body) } else { for co in 0..<Cout { body(co) } }
    }

    /// Fast path of `Reference.gelu` (Float erfc: rtol ~4e-6). y may be x.
    func gelu(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, count: Int) {
        elementwise(count, GELUTask(x: x, dy: nil, y: y))
    }
    /// Fast path of `Reference.geluBackward` (Float erfc/exp: rtol ~4e-6). dx may be dy.
    func geluBackward(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, count: Int) {
        elementwise(count, GELUTask(x: x, dy: dy, y: dx))
    }

    /// Fast path of `Reference.channelShuffle` (bit-exact: plane copies).
    func channelShuffle(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, batch: Int, channels C: Int, spatial S: Int, groups G: Int) {
        let k = C / G
        for n in 0..<batch {
            for i in 0..<G {
                for j in 0..<k { (y + (n * C + j * G + i) * S).update(from: x + (n * C + i * k + j) * S, count: S) }
            }
        }
    }

    /// Fast path of `Reference.copyChannels` (bit-exact: one copy per image).
    func copyChannels(src: UnsafePointer<Float>, srcChannels cs: Int, srcChannel: Int, dst: UnsafeMutablePointer<Float>,
                      dstChannels cd: Int, dstChannel: Int, count: Int, batch: Int, spatial S: Int) {
        for n in 0..<batch {
            (dst + (n * cd + dstChannel) * S).update(from: src + (n * cs + srcChannel) * S, count: count * S)
        }
    }
}

/// GELU forward (dy == nil: y = gelu(x)) or backward (y = dy * gelu'(x)) over a range, 16 floats at a
/// time (`SIMDMath`): Phi(v) = 1/2 ± (1/2 - erfc(|v| / sqrt 2) / 2), the sign of v's (erfc of a
/// non-negative argument: no cancellation for either sign). Against libm's scalar erfcf and expf it
/// made the `fast` model's training step 1.24x and its inference 1.10x faster (docs/models.md).
struct GELUTask: ParallelRangeTask {
    let x: UnsafePointer<Float>, dy: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>
    func run(_ range: Range<Int>) {
        var i = range.lowerBound
        let end = range.upperBound
        let xr = UnsafeRawPointer(x), yr = UnsafeMutableRawPointer(y)
        if let dy {
            let dr = UnsafeRawPointer(dy)
            while i &+ 16 <= end {
                let o = i &* 4
                let v = xr.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
                let g = dr.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
                yr.storeBytes(of: g * SIMDMath.geluDerivative(v), toByteOffset: o, as: SIMD16<Float>.self)
                i &+= 16
            }
        } else {
            while i &+ 16 <= end {
                let o = i &* 4
                let v = xr.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
                yr.storeBytes(of: SIMDMath.gelu(v), toByteOffset: o, as: SIMD16<Float>.self)
                i &+= 16
            }
        }
        guard i < end else { return }
        // The tail, through the same vector code (padded with zeros).
        var v = SIMD16<Float>(repeating: 0), g = SIMD16<Float>(repeating: 0)
        for j in i..<end { v[j - i] = x[j]; if let dy { g[j - i] = dy[j] } }
        let out = dy == nil ? SIMDMath.gelu(v) : g * SIMDMath.geluDerivative(v)
        for j in i..<end { y[j] = out[j - i] }
    }
}

/// Transcendental functions on 16 floats at a time, for the fast CPU paths.
enum SIMDMath {
    typealias V = SIMD16<Float>
    typealias U = SIMD16<UInt32>

    /// exp(x): Cephes' expf (Cody-Waite reduction by ln 2, degree-6 polynomial; about 2 ulp). x is
    /// clamped to [-87.3, 88.3], so results under 2^-126 come out near 1e-38 instead of 0.
    @inline(__always)
    static func exp(_ x: V) -> V {
        // Clamped with compare-and-blend (`clamped(lowerBound:upperBound:)` compiles to per-lane scalar code).
        var x = x
        x.replace(with: 88.3, where: x .> 88.3)
        x.replace(with: -87.3, where: x .< -87.3)
        // k = round(x / ln 2): adding 1.5 * 2^23 rounds to an integer held in the low mantissa bits.
        let magic = V(repeating: 12_582_912)
        let biased = x * 1.442_695_04 + magic
        let k = biased - magic
        let r = x - k * 0.693_359_375 + k * 2.121_944_4e-4
        var p = V(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        p = p * (r * r) + r + 1
        // 2^k: biased's bits are 0x4B40_0000 + k; k + 127 goes to the exponent field.
        let bits = (unsafeBitCast(biased, to: U.self) &- 0x4B40_0000 &+ 127) &<< 23
        return p * unsafeBitCast(bits, to: V.self)
    }

    /// erfc(z) for z >= 0 (Numerical Recipes' erfcc: fractional error under 1.2e-7 in exact arithmetic).
    @inline(__always)
    static func erfcNonNegative(_ z: V) -> V {
        let t = 1 / (1 + 0.5 * z)
        var p = V(repeating: 0.170_872_77)
        p = p * t - 0.822_152_23
        p = p * t + 1.488_515_87
        p = p * t - 1.135_203_98
        p = p * t + 0.278_868_07
        p = p * t - 0.186_288_06
        p = p * t + 0.096_784_18
        p = p * t + 0.374_091_96
        p = p * t + 1.000_023_68
        p = p * t - 1.265_512_23
        return t * exp(p - z * z)
    }

    /// Phi(v), the standard normal CDF: 1/2 + sign(v) (1/2 - erfc(|v| / sqrt 2) / 2).
    @inline(__always)
    static func normalCDF(_ v: V) -> V {
        let bits = unsafeBitCast(v, to: U.self)
        let a = unsafeBitCast(bits & 0x7FFF_FFFF, to: V.self) * 0.707_106_78
        let half = 0.5 - 0.5 * erfcNonNegative(a)
        return 0.5 + unsafeBitCast(unsafeBitCast(half, to: U.self) | (bits & 0x8000_0000), to: V.self)
    }

    /// v * Phi(v) (NaN and -inf give NaN, as the reference).
    @inline(__always)
    static func gelu(_ v: V) -> V { v * normalCDF(v) }

    /// Phi(v) + v * phi(v); `+ (v - v)` keeps a NaN or infinite v NaN, as the reference's.
    @inline(__always)
    static func geluDerivative(_ v: V) -> V {
        normalCDF(v) + v * 0.398_942_28 * exp(-0.5 * v * v) + (v - v)
    }
}
