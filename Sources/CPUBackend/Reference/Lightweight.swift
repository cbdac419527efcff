import CNNCore
import Foundation

// Reference grouped convolution (forward, backward data, backward filter), GELU and its gradient,
// channel shuffle and channel copy. Sums accumulate in Double and are rounded once, as the other
// reference convolutions.

extension CPUBackend.Reference {
    /// Grouped convolution: y = activation(conv(x, weight) + bias) with `groups` groups.
    /// x: (N, Cin, H, W), weight: (Cout, Cin/G, KH, KW), bias: (Cout) or nil, y: (N, Cout, OH, OW).
    /// With cpg = Cin/G and opg = Cout/G, output channel co belongs to group k = co / opg and
    /// y[n, co, oh, ow] = bias[co] + sum over (c < cpg, i, j) of weight[co, c, i, j] * x[n, k*cpg + c, oh*sh - ph + i, ow*sw - pw + j].
    package static func groupedConv2DForward<T: BinaryFloatingPoint>(
        x: UnsafePointer<T>, weight: UnsafePointer<T>, bias: UnsafePointer<T>?, y: UnsafeMutablePointer<T>,
        geometry g: Conv2DGeometry, groups G: Int, activation: Activation
    ) {
        let (Cin, H, W, Cout, KH, KW) = (g.inChannels, g.height, g.width, g.outChannels, g.kernelH, g.kernelW)
        let (OH, OW) = (g.outHeight, g.outWidth)
        let cpg = Cin / G, opg = Cout / G
        for n in 0..<g.batch {
            for co in 0..<Cout {
                let k = co / opg
                for oh in 0..<OH {
                    for ow in 0..<OW {
                        var acc = bias.map { Double($0[co]) } ?? 0
                        for c in 0..<cpg {
                            let ci = k * cpg + c
                            for i in 0..<KH {
                                let ih = oh * g.strideH - g.padH + i
                                guard ih >= 0 && ih < H else { continue }
                                for j in 0..<KW {
                                    let iw = ow * g.strideW - g.padW + j
                                    guard iw >= 0 && iw < W else { continue }
                                    acc += Double(weight[((co * cpg + c) * KH + i) * KW + j]) * Double(x[((n * Cin + ci) * H + ih) * W + iw])
                                }
                            }
                        }
                        y[((n * Cout + co) * OH + oh) * OW + ow] = T(activate(acc, activation))
                    }
                }
            }
        }
    }

    /// dx of the grouped convolution (overwrites dx). dx[n, ci, h, w] = sum over the opg output
    /// channels co of ci's group and every (i, j, oh, ow) with oh*sh - ph + i == h, ow*sw - pw + j == w
    /// of dy[n, co, oh, ow] * weight[co, ci - k*cpg, i, j].
    package static func groupedConv2DBackwardData<T: BinaryFloatingPoint>(
        dy: UnsafePointer<T>, weight: UnsafePointer<T>, dx: UnsafeMutablePointer<T>, geometry g: Conv2DGeometry, groups G: Int
    ) {
        let (Cin, H, W, Cout, KH, KW) = (g.inChannels, g.height, g.width, g.outChannels, g.kernelH, g.kernelW)
        let (OH, OW) = (g.outHeight, g.outWidth)
        let cpg = Cin / G, opg = Cout / G
        for n in 0..<g.batch {
            for ci in 0..<Cin {
                let k = ci / cpg, c = ci % cpg
                for h in 0..<H {
                    for w in 0..<W {
                        var acc = 0.0
                        for i in 0..<KH {
                            guard let oh = exactOutput(h + g.padH - i, stride: g.strideH, count: OH) else { continue }
                            for j in 0..<KW {
                                guard let ow = exactOutput(w + g.padW - j, stride: g.strideW, count: OW) else { continue }
                                for co in (k * opg)..<((k + 1) * opg) {
                                    acc += Double(dy[((n * Cout + co) * OH + oh) * OW + ow]) * Double(weight[((co * cpg + c) * KH + i) * KW + j])
                                }
                            }
                        }
                        dx[((n * Cin + ci) * H + h) * W + w] = T(acc)
                    }
                }
            }
        }
    }

    /// dWeight[co, c, i, j] = sum over (n, oh, ow) of dy[n, co, oh, ow] * x[n, k*cpg + c, oh*sh - ph + i, ow*sw - pw + j];
    /// dBias[co] = sum of dy[:, co] (both overwritten).
    package static func groupedConv2DBackwardFilter<T: BinaryFloatingPoint>(
        x: UnsafePointer<T>, dy: UnsafePointer<T>, dWeight: UnsafeMutablePointer<T>, dBias: UnsafeMutablePointer<T>?,
        geometry g: Conv2DGeometry, groups G: Int
    ) {
        let (Cin, H, W, Cout, KH, KW) = (g.inChannels, g.height, g.width, g.outChannels, g.kernelH, g.kernelW)
        let (OH, OW) = (g.outHeight, g.outWidth)
        let cpg = Cin / G, opg = Cout / G
        for co in 0..<Cout {
            let k = co / opg
            for c in 0..<cpg {
                for i in 0..<KH {
                    for j in 0..<KW {
                        var acc = 0.0
                        for n in 0..<g.batch {
                            for oh in 0..<OH {
                                let ih = oh * g.strideH - g.padH + i
                                guard ih >= 0 && ih < H else { continue }
                                for ow in 0..<OW {
                                    let iw = ow * g.strideW - g.padW + j
                                    guard iw >= 0 && iw < W else { continue }
                                    acc += Double(dy[((n * Cout + co) * OH + oh) * OW + ow]) * Double(x[((n * Cin + k * cpg + c) * H + ih) * W + iw])
                                }
                            }
                        }
                        dWeight[((co * cpg + c) * KH + i) * KW + j] = T(acc)
                    }
                }
            }
            if let dBias {
                var acc = 0.0
                for n in 0..<g.batch { for p in 0..<(OH * OW) { acc += Double(dy[(n * Cout + co) * OH * OW + p]) } }
                dBias[co] = T(acc)
            }
        }
    }

    /// GELU of one value in Double: v * Phi(v), Phi(v) = erfc(-v / sqrt 2) / 2 (= (1 + erf(v / sqrt 2)) / 2).
    @inline(__always)
    package static func gelu(_ v: Double) -> Double { 0.5 * v * erfc(-v * 0.7071067811865476) }

    /// d GELU / dv = Phi(v) + v * phi(v), phi the standard normal density.
    @inline(__always)
    package static func geluDerivative(_ v: Double) -> Double {
        0.5 * erfc(-v * 0.7071067811865476) + v * 0.3989422804014327 * exp(-0.5 * v * v)
    }

    /// y = gelu(x), computed in Double. x, y: (count); y may be x.
    package static func gelu<T: BinaryFloatingPoint>(x: UnsafePointer<T>, y: UnsafeMutablePointer<T>, count: Int) {
        for i in 0..<count { y[i] = T(gelu(Double(x[i]))) }
    }

    /// dx = dy * gelu'(x), computed in Double. dx may be dy.
    package static func geluBackward<T: BinaryFloatingPoint>(
        x: UnsafePointer<T>, dy: UnsafePointer<T>, dx: UnsafeMutablePointer<T>, count: Int
    ) {
        for i in 0..<count { dx[i] = T(Double(dy[i]) * geluDerivative(Double(x[i]))) }
    }

    /// y[n, j*G + i, s] = x[n, i*k + j, s] with k = C / G. x, y: (N, C, S), disjoint.
    package static func channelShuffle<T>(x: UnsafePointer<T>, y: UnsafeMutablePointer<T>, batch: Int, channels C: Int,
                                          spatial S: Int, groups G: Int) {
        let k = C / G
        for n in 0..<batch {
            for i in 0..<G {
                for j in 0..<k {
                    for s in 0..<S { y[(n * C + j * G + i) * S + s] = x[(n * C + i * k + j) * S + s] }
                }
            }
        }
    }

    /// dst[n, dstChannel + c, s] = src[n, srcChannel + c, s] for c < count. src: (N, Cs, S), dst: (N, Cd, S).
    package static func copyChannels<T>(src: UnsafePointer<T>, srcChannels cs: Int, srcChannel: Int, dst: UnsafeMutablePointer<T>,
                                        dstChannels cd: Int, dstChannel: Int, count: Int, batch: Int, spatial S: Int) {
        for n in 0..<batch {
            for c in 0..<count {
                for s in 0..<S { dst[(n * cd + dstChannel + c) * S + s] = src[(n * cs + srcChannel + c) * S + s] }
            }
        }
    }
}
