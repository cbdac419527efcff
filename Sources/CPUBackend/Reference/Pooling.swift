import CNNCore

// Reference pooling over NCHW planes. Windows start at (oh*sh - ph, ow*sw - pw); output sizes round
// down (PyTorch's ceil_mode=False). Max pooling never picks padding; average pooling divides by
// KH*KW (padded zeros count: count_include_pad=True).

extension CPUBackend.Reference {
    /// Max pooling. x: (N, C, H, W), y: (N, C, OH, OW), argmax: (N, C, OH, OW) int32.
    /// y = the window maximum; argmax = h*W + w of that element inside its (n, c) plane: the first
    /// maximum in row-major window order, skipping padding. A NaN counts as larger than any number
    /// (the first NaN wins, so NaN propagates as in PyTorch). Every window holds at least one input
    /// element because padding is at most half the window (`Pool2DGeometry.validate`).
    package static func maxPool2DForward<T: BinaryFloatingPoint>(
        x: UnsafePointer<T>, y: UnsafeMutablePointer<T>, argmax: UnsafeMutablePointer<Int32>, geometry g: Pool2DGeometry
    ) {
        let (H, W, OH, OW) = (g.height, g.width, g.outHeight, g.outWidth)
        for plane in 0..<(g.batch * g.channels) {
            let xp = x + plane * H * W            // xp: (H, W)
            let yp = y + plane * OH * OW          // yp: (OH, OW)
            let ap = argmax + plane * OH * OW     // ap: (OH, OW)
            for oh in 0..<OH {
                for ow in 0..<OW {
                    var best = -1
                    for i in 0..<g.kernelH {
                        let ih = oh * g.strideH - g.padH + i
                        guard ih >= 0 && ih < H else { continue }
                        for j in 0..<g.kernelW {
                            let iw = ow * g.strideW - g.padW + j
                            guard iw >= 0 && iw < W else { continue }
                            let p = ih * W + iw
                            if best < 0 || isGreater(xp[p], than: xp[best]) { best = p }
                        }
                    }
                    precondition(best >= 0, "maxPool2DForward: window (\(oh), \(ow)) holds only padding: \(g)")
                    yp[oh * OW + ow] = xp[best]
                    ap[oh * OW + ow] = Int32(best)
                }
            }
        }
    }

    /// The ordering max pooling and argmax use: v beats the current best b when b is not NaN and
    /// v is larger or NaN. Ties keep the earlier element.
    @inline(__always)
    static func isGreater<T: FloatingPoint>(_ v: T, than b: T) -> Bool {
        !b.isNaN && (v > b || v.isNaN)
    }

    /// Max pooling backward (overwrites dx). dy: (N, C, OH, OW), argmax: (N, C, OH, OW) int32 from
    /// `maxPool2DForward`, dx: (N, C, H, W). dx[n, c, p] = sum of dy[n, c, o] over the windows o
    /// whose argmax is p (gathered over the windows that contain p, summed in Double).
    /// Throws `invalidArgument` when an argmax entry does not name an input element inside its own window.
    package static func maxPool2DBackward<T: BinaryFloatingPoint>(
        dy: UnsafePointer<T>, argmax: UnsafePointer<Int32>, dx: UnsafeMutablePointer<T>, geometry g: Pool2DGeometry
    ) throws {
        let (H, W, OH, OW) = (g.height, g.width, g.outHeight, g.outWidth)
        // Every argmax must lie inside its window, so that gathering over the windows containing p
        // sums exactly the windows whose argmax is p.
        for plane in 0..<(g.batch * g.channels) {
            for oh in 0..<OH {
                for ow in 0..<OW {
                    let a = Int(argmax[(plane * OH + oh) * OW + ow])
                    let (ih, iw) = a >= 0 ? (a / W, a % W) : (-1, -1)
                    let rowOK = ih >= max(0, oh * g.strideH - g.padH) && ih < min(H, oh * g.strideH - g.padH + g.kernelH)
                    let colOK = iw >= max(0, ow * g.strideW - g.padW) && iw < min(W, ow * g.strideW - g.padW + g.kernelW)
                    if !(rowOK && colOK) {
                        throw CNNError.invalidArgument(
                            "maxPool2DBackward: argmax[\(plane / g.channels), \(plane % g.channels), \(oh), \(ow)] = \(a) is not an input element of its window "
                            + "(\(g)); pass the argmax written by maxPool2DForward with the same geometry")
                    }
                }
            }
        }
        for plane in 0..<(g.batch * g.channels) {
            let dyp = dy + plane * OH * OW        // dyp: (OH, OW)
            let ap = argmax + plane * OH * OW     // ap: (OH, OW)
            let dxp = dx + plane * H * W          // dxp: (H, W)
            for h in 0..<H {
                for w in 0..<W {
                    var acc = 0.0
                    for oh in windows(containing: h, pad: g.padH, kernel: g.kernelH, stride: g.strideH, count: OH) {
                        for ow in windows(containing: w, pad: g.padW, kernel: g.kernelW, stride: g.strideW, count: OW)
                        where Int(ap[oh * OW + ow]) == h * W + w {
                            acc += Double(dyp[oh * OW + ow])
                        }
                    }
                    dxp[h * W + w] = T(acc)
                }
            }
        }
    }

    /// The output positions o in 0..<count whose window [o*stride - pad, o*stride - pad + kernel)
    /// contains input position t.
    @inline(__always)
    static func windows(containing t: Int, pad: Int, kernel: Int, stride: Int, count: Int) -> Range<Int> {
        // o*stride - pad <= t  and  t < o*stride - pad + kernel
        let hi = min(count - 1, (t + pad) / stride)
        let lowNumerator = t + pad - kernel + 1
        let lo = lowNumerator <= 0 ? 0 : (lowNumerator + stride - 1) / stride
        return lo <= hi ? lo..<(hi + 1) : 0..<0
    }

    /// Average pooling. x: (N, C, H, W), y: (N, C, OH, OW).
    /// y = (sum of the window's input elements, summed in Double) / (KH*KW): padded zeros count.
    package static func avgPool2DForward<T: BinaryFloatingPoint>(
        x: UnsafePointer<T>, y: UnsafeMutablePointer<T>, geometry g: Pool2DGeometry
    ) {
        let (H, W, OH, OW) = (g.height, g.width, g.outHeight, g.outWidth)
        let divisor = Double(g.kernelH * g.kernelW)
        for plane in 0..<(g.batch * g.channels) {
            let xp = x + plane * H * W            // xp: (H, W)
            let yp = y + plane * OH * OW          // yp: (OH, OW)
            for oh in 0..<OH {
                for ow in 0..<OW {
                    var acc = 0.0
                    for i in 0..<g.kernelH {
                        let ih = oh * g.strideH - g.padH + i
                        guard ih >= 0 && ih < H else { continue }
                        for j in 0..<g.kernelW {
                            let iw = ow * g.strideW - g.padW + j
                            guard iw >= 0 && iw < W else { continue }
                            acc += Double(xp[ih * W + iw])
                        }
                    }
                    yp[oh * OW + ow] = T(acc / divisor)
                }
            }
        }
    }

    /// The adjoint of `avgPool2DForward` (overwrites dx). dy: (N, C, OH, OW), dx: (N, C, H, W).
    /// dx[n, c, h, w] = (sum of dy over the windows containing (h, w), in Double) / (KH*KW).
    package static func avgPool2DBackward<T: BinaryFloatingPoint>(
        dy: UnsafePointer<T>, dx: UnsafeMutablePointer<T>, geometry g: Pool2DGeometry
    ) {
        let (H, W, OH, OW) = (g.height, g.width, g.outHeight, g.outWidth)
        let divisor = Double(g.kernelH * g.kernelW)
        for plane in 0..<(g.batch * g.channels) {
            let dyp = dy + plane * OH * OW        // dyp: (OH, OW)
            let dxp = dx + plane * H * W          // dxp: (H, W)
            for h in 0..<H {
                for w in 0..<W {
                    var acc = 0.0
                    for oh in windows(containing: h, pad: g.padH, kernel: g.kernelH, stride: g.strideH, count: OH) {
                        for ow in windows(containing: w, pad: g.padW, kernel: g.kernelW, stride: g.strideW, count: OW) {
                            acc += Double(dyp[oh * OW + ow])
                        }
                    }
                    dxp[h * W + w] = T(acc / divisor)
                }
            }
        }
    }
}
