import CNNCore

// Reference convolution: im2col / col2im, direct convolution forward and both backward passes,
// bias add / bias gradient. Cross-correlation with zero padding, as PyTorch's Conv2d.
// Every sum accumulates in Double and is rounded once.

extension CPUBackend.Reference {
    /// The output index o with o * stride == t, if there is one in 0..<count: the window that reads
    /// input row (or column) `t + pad - kernelOffset` at kernel offset `kernelOffset`.
    @inline(__always)
    static func exactOutput(_ t: Int, stride: Int, count: Int) -> Int? {
        guard t >= 0, t % stride == 0 else { return nil }
        let o = t / stride
        return o < count ? o : nil
    }

    /// x: (N, C, H, W) -> cols: (N, C*KH*KW, OH*OW). Row (c, i, j) = (c*KH + i)*KW + j of image n,
    /// column oh*OW + ow, holds x[n, c, oh*sh - ph + i, ow*sw - pw + j], or 0 outside the image.
    package static func im2col<T: BinaryFloatingPoint>(
        x: UnsafePointer<T>, cols: UnsafeMutablePointer<T>, geometry g: Conv2DGeometry
    ) {
        let (C, H, W, KH, KW) = (g.inChannels, g.height, g.width, g.kernelH, g.kernelW)
        let (OH, OW) = (g.outHeight, g.outWidth)
        for n in 0..<g.batch {
            let xn = x + n * C * H * W                  // xn: (C, H, W)
            let cn = cols + n * g.patchSize * OH * OW   // cn: (C*KH*KW, OH*OW)
            for c in 0..<C {
                for i in 0..<KH {
                    for j in 0..<KW {
                        let row = cn + ((c * KH + i) * KW + j) * OH * OW   // row: (OH*OW)
                        for oh in 0..<OH {
                            for ow in 0..<OW {
                                let ih = oh * g.strideH - g.padH + i, iw = ow * g.strideW - g.padW + j
                                let inside = ih >= 0 && ih < H && iw >= 0 && iw < W
                                row[oh * OW + ow] = inside ? xn[(c * H + ih) * W + iw] : 0
                            }
                        }
                    }
                }
            }
        }
    }

    /// The adjoint of `im2col`: cols: (N, C*KH*KW, OH*OW) -> x: (N, C, H, W) (overwritten).
    /// x[n, c, h, w] = sum of cols[n, (c, i, j), (oh, ow)] over every (i, j, oh, ow) with
    /// oh*sh - ph + i == h and ow*sw - pw + j == w (gathered, summed in Double).
    package static func col2im<T: BinaryFloatingPoint>(
        cols: UnsafePointer<T>, x: UnsafeMutablePointer<T>, geometry g: Conv2DGeometry
    ) {
        let (C, H, W, KH, KW) = (g.inChannels, g.height, g.width, g.kernelH, g.kernelW)
        let (OH, OW) = (g.outHeight, g.outWidth)
        for n in 0..<g.batch {
            let cn = cols + n * g.patchSize * OH * OW   // cn: (C*KH*KW, OH*OW)
            let xn = x + n * C * H * W                  // xn: (C, H, W)
            for c in 0..<C {
                for h in 0..<H {
                    for w in 0..<W {
                        var acc = 0.0
                        for i in 0..<KH {
                            guard let oh = exactOutput(h + g.padH - i, stride: g.strideH, count: OH) else { continue }
                            for j in 0..<KW {
                                guard let ow = exactOutput(w + g.padW - j, stride: g.strideW, count: OW) else { continue }
                                acc += Double(cn[((c * KH + i) * KW + j) * OH * OW + oh * OW + ow])
                            }
                        }
                        xn[(c * H + h) * W + w] = T(acc)
                    }
                }
            }
        }
    }

    /// Direct convolution: y = activation(conv(x, weight) + bias).
    /// x: (N, Cin, H, W), weight: (Cout, Cin, KH, KW), bias: (Cout) or nil, y: (N, Cout, OH, OW).
    /// y[n, co, oh, ow] = bias[co] + sum over (ci, i, j) of weight[co, ci, i, j] * x[n, ci, oh*sh - ph + i, ow*sw - pw + j]
    /// (terms outside the image are zero); the activation is applied before rounding.
    package static func conv2DForward<T: BinaryFloatingPoint>(
        x: UnsafePointer<T>, weight: UnsafePointer<T>, bias: UnsafePointer<T>?, y: UnsafeMutablePointer<T>,
        geometry g: Conv2DGeometry, activation: Activation
    ) {
        let (Cin, H, W, Cout, KH, KW) = (g.inChannels, g.height, g.width, g.outChannels, g.kernelH, g.kernelW)
        let (OH, OW) = (g.outHeight, g.outWidth)
        for n in 0..<g.batch {
            let xn = x + n * Cin * H * W          // xn: (Cin, H, W)
            let yn = y + n * Cout * OH * OW       // yn: (Cout, OH, OW)
            for co in 0..<Cout {
                let wco = weight + co * Cin * KH * KW   // wco: (Cin, KH, KW)
                for oh in 0..<OH {
                    for ow in 0..<OW {
                        var acc = bias.map { Double($0[co]) } ?? 0
                        for ci in 0..<Cin {
                            for i in 0..<KH {
                                let ih = oh * g.strideH - g.padH + i
                                guard ih >= 0 && ih < H else { continue }
                                for j in 0..<KW {
                                    let iw = ow * g.strideW - g.padW + j
                                    guard iw >= 0 && iw < W else { continue }
                                    acc += Double(wco[(ci * KH + i) * KW + j]) * Double(xn[(ci * H + ih) * W + iw])
                                }
                            }
                        }
                        yn[(co * OH + oh) * OW + ow] = T(activate(acc, activation))
                    }
                }
            }
        }
    }

    /// dx = d(conv)/dx applied to dy (overwrites dx).
    /// dy: (N, Cout, OH, OW), weight: (Cout, Cin, KH, KW), dx: (N, Cin, H, W).
    /// dx[n, ci, h, w] = sum over (co, i, j, oh, ow) with oh*sh - ph + i == h, ow*sw - pw + j == w
    /// of dy[n, co, oh, ow] * weight[co, ci, i, j].
    package static func conv2DBackwardData<T: BinaryFloatingPoint>(
        dy: UnsafePointer<T>, weight: UnsafePointer<T>, dx: UnsafeMutablePointer<T>, geometry g: Conv2DGeometry
    ) {
        let (Cin, H, W, Cout, KH, KW) = (g.inChannels, g.height, g.width, g.outChannels, g.kernelH, g.kernelW)
        let (OH, OW) = (g.outHeight, g.outWidth)
        for n in 0..<g.batch {
            let dyn = dy + n * Cout * OH * OW     // dyn: (Cout, OH, OW)
            let dxn = dx + n * Cin * H * W        // dxn: (Cin, H, W)
            for ci in 0..<Cin {
                for h in 0..<H {
                    for w in 0..<W {
                        var acc = 0.0
                        for i in 0..<KH {
                            guard let oh = exactOutput(h + g.padH - i, stride: g.strideH, count: OH) else { continue }
                            for j in 0..<KW {
                                guard let ow = exactOutput(w + g.padW - j, stride: g.strideW, count: OW) else { continue }
                                for co in 0..<Cout {
                                    acc += Double(dyn[(co * OH + oh) * OW + ow]) * Double(weight[((co * Cin + ci) * KH + i) * KW + j])
                                }
                            }
                        }
                        dxn[(ci * H + h) * W + w] = T(acc)
                    }
                }
            }
        }
    }

    /// Filter and bias gradients (overwrite dWeight and dBias).
    /// x: (N, Cin, H, W), dy: (N, Cout, OH, OW), dWeight: (Cout, Cin, KH, KW), dBias: (Cout) or nil.
    /// dWeight[co, ci, i, j] = sum over (n, oh, ow) of dy[n, co, oh, ow] * x[n, ci, oh*sh - ph + i, ow*sw - pw + j];
    /// dBias[co] = sum over (n, oh, ow) of dy[n, co, oh, ow].
    package static func conv2DBackwardFilter<T: BinaryFloatingPoint>(
        x: UnsafePointer<T>, dy: UnsafePointer<T>, dWeight: UnsafeMutablePointer<T>, dBias: UnsafeMutablePointer<T>?,
        geometry g: Conv2DGeometry
    ) {
        let (Cin, H, W, Cout, KH, KW) = (g.inChannels, g.height, g.width, g.outChannels, g.kernelH, g.kernelW)
        let (OH, OW) = (g.outHeight, g.outWidth)
        for co in 0..<Cout {
            for ci in 0..<Cin {
                for i in 0..<KH {
                    for j in 0..<KW {
                        var acc = 0.0
                        for n in 0..<g.batch {
                            let xn = x + (n * Cin + ci) * H * W         // xn: (H, W) plane of channel ci
                            let dyn = dy + (n * Cout + co) * OH * OW    // dyn: (OH, OW) plane of channel co
                            for oh in 0..<OH {
                                let ih = oh * g.strideH - g.padH + i
                                guard ih >= 0 && ih < H else { continue }
                                for ow in 0..<OW {
                                    let iw = ow * g.strideW - g.padW + j
                                    guard iw >= 0 && iw < W else { continue }
                                    acc += Double(dyn[oh * OW + ow]) * Double(xn[ih * W + iw])
                                }
                            }
                        }
                        dWeight[((co * Cin + ci) * KH + i) * KW + j] = T(acc)
                    }
                }
            }
        }
        if let dBias {
            biasGrad(dy: dy, dBias: dBias, batch: g.batch, channels: Cout, spatial: OH * OW)
        }
    }

    /// y = activation(y + bias[c]) in place. y: (N, C, S) with S the product of the trailing
    /// dimensions (1 for an (N, C) matrix), bias: (C). The sum is rounded to T, then activated.
    package static func biasAdd<T: BinaryFloatingPoint>(
        y: UnsafeMutablePointer<T>, bias: UnsafePointer<T>, batch: Int, channels: Int, spatial: Int, activation: Activation
    ) {
        for n in 0..<batch {
            for c in 0..<channels {
                let plane = y + (n * channels + c) * spatial   // plane: (S)
                for s in 0..<spatial { plane[s] = activate(plane[s] + bias[c], activation) }
            }
        }
    }

    /// dBias[c] = sum over (n, s) of dy[n, c, s] (overwrites dBias).
    /// dy: (N, C, S) with S the product of the trailing dimensions, dBias: (C). Summed in Double.
    package static func biasGrad<T: BinaryFloatingPoint>(
        dy: UnsafePointer<T>, dBias: UnsafeMutablePointer<T>, batch: Int, channels: Int, spatial: Int
    ) {
        for c in 0..<channels {
            var acc = 0.0
            for n in 0..<batch {
                let plane = dy + (n * channels + c) * spatial   // plane: (S)
                for s in 0..<spatial { acc += Double(plane[s]) }
            }
            dBias[c] = T(acc)
        }
    }
}
