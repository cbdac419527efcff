import CNNCore
import CPUBackend
import Testing

/// x = arange(1...9) as one 3x3 plane:
///   1 2 3
///   4 5 6
///   7 8 9
private let arange3x3: [Float] = (1...9).map(Float.init)

@Suite struct ConvolutionHandTests {
    @Test func im2colNoPadding() throws {
        let be = CPUBackend()
        let g = Conv2DGeometry(batch: 1, inChannels: 1, height: 3, width: 3, outChannels: 1, kernel: 2)
        let x = try be.refUpload(arange3x3, g.inputShape)
        let cols = try be.makeTensor(g.colsShape)   // (1, 4, 4)
        try be.im2col(x: x, cols: cols, geometry: g)
        // Row (i, j) lists x[oh + i, ow + j] for (oh, ow) = (0,0), (0,1), (1,0), (1,1).
        RefCheck.exact(try be.floats(cols), [1, 2, 4, 5,
                                             2, 3, 5, 6,
                                             4, 5, 7, 8,
                                             5, 6, 8, 9], "im2col k2 s1 p0")
    }

    @Test func im2colStrideAndPadding() throws {
        let be = CPUBackend()
        let g = Conv2DGeometry(batch: 1, inChannels: 1, height: 3, width: 3, outChannels: 1, kernel: 2, stride: 2, padding: 1)
        let x = try be.refUpload(arange3x3, g.inputShape)
        let cols = try be.makeTensor(g.colsShape)   // (1, 4, 4): windows start at rows/cols -1 and 1
        try be.im2col(x: x, cols: cols, geometry: g)
        RefCheck.exact(try be.floats(cols), [0, 0, 0, 5,    // (i, j) = (0, 0): x[-1|1, -1|1]
                                             0, 0, 4, 6,    // (0, 1): x[-1|1, 0|2]
                                             0, 2, 0, 8,    // (1, 0): x[0|2, -1|1]
                                             1, 3, 7, 9],   // (1, 1): x[0|2, 0|2]
                       "im2col k2 s2 p1")
    }

    @Test func col2imCountsWindowsPerPixel() throws {
        let be = CPUBackend()
        let g = Conv2DGeometry(batch: 2, inChannels: 1, height: 3, width: 3, outChannels: 1, kernel: 2)
        let cols = try be.refUpload([Float](repeating: 1, count: g.colsShape.count), g.colsShape)
        let x = try be.refUpload([Float](repeating: .nan, count: 18), g.inputShape)   // overwritten
        try be.col2im(cols: cols, x: x, geometry: g)
        // Each pixel receives one 1 per 2x2 window covering it.
        let counts: [Float] = [1, 2, 1, 2, 4, 2, 1, 2, 1]
        RefCheck.exact(try be.floats(x), counts + counts, "col2im of ones")
    }

    /// Two output channels over x = arange 3x3, padding 1:
    /// channel 0: plus-shaped kernel [[0,1,0],[1,1,1],[0,1,0]], bias 10 -> sum of the in-image plus neighbourhood + 10;
    /// channel 1: -1 at the centre, bias 2, then ReLU -> relu(2 - x).
    @Test func conv3x3PaddedWithBiasAndRelu() throws {
        let be = CPUBackend()
        let g = Conv2DGeometry(batch: 1, inChannels: 1, height: 3, width: 3, outChannels: 2, kernel: 3, padding: 1)
        let x = try be.refUpload(arange3x3, g.inputShape)
        let w = try be.refUpload([0, 1, 0, 1, 1, 1, 0, 1, 0,
                                  0, 0, 0, 0, -1, 0, 0, 0, 0], g.weightShape)
        let bias = try be.refUpload([10, 2], [2])
        let y = try be.makeTensor(g.outputShape)
        try be.conv2DForward(x: x, weight: w, bias: bias, y: y, geometry: g, activation: .relu)
        let plus: [Float] = [1 + 2 + 4, 1 + 2 + 3 + 5, 2 + 3 + 6,
                             1 + 4 + 5 + 7, 2 + 4 + 5 + 6 + 8, 3 + 5 + 6 + 9,
                             4 + 7 + 8, 5 + 7 + 8 + 9, 6 + 8 + 9]
        RefCheck.exact(try be.floats(y), plus.map { $0 + 10 } + [1, 0, 0, 0, 0, 0, 0, 0, 0], "plus conv + bias, relu(2 - x)")

        try be.conv2DForward(x: x, weight: w, bias: nil, y: y, geometry: g, activation: .identity)
        RefCheck.exact(try be.floats(y), plus + (1...9).map { -Float($0) }, "no bias, identity")
    }

    @Test func conv2x2Stride2Padding1() throws {
        let be = CPUBackend()
        let g = Conv2DGeometry(batch: 1, inChannels: 1, height: 3, width: 3, outChannels: 1, kernel: 2, stride: 2, padding: 1)
        let x = try be.refUpload(arange3x3, g.inputShape)
        let w = try be.refUpload([1, 1, 1, 1], g.weightShape)
        let y = try be.makeTensor(g.outputShape)
        try be.conv2DForward(x: x, weight: w, bias: nil, y: y, geometry: g, activation: .identity)
        // Windows [-1,0]x[-1,0] = {1}, [-1,0]x[1,2] = {2,3}, [1,2]x[-1,0] = {4,7}, [1,2]x[1,2] = {5,6,8,9}.
        RefCheck.exact(try be.floats(y), [1, 5, 11, 28], "2x2 ones, stride 2, pad 1")
    }

    /// Same plus kernel, dy = ones: dx[h, w] = number of plus taps of (h, w) inside the image.
    @Test func backwardDataOfPlusKernel() throws {
        let be = CPUBackend()
        let g = Conv2DGeometry(batch: 1, inChannels: 1, height: 3, width: 3, outChannels: 1, kernel: 3, padding: 1)
        let w = try be.refUpload([0, 1, 0, 1, 1, 1, 0, 1, 0], g.weightShape)
        let dy = try be.refUpload([Float](repeating: 1, count: 9), g.outputShape)
        let dx = try be.makeTensor(g.inputShape)
        try be.conv2DBackwardData(dy: dy, weight: w, dx: dx, geometry: g)
        RefCheck.exact(try be.floats(dx), [3, 4, 3, 4, 5, 4, 3, 4, 3], "conv backward data")
    }

    /// x = arange 3x3, dy = ones, 3x3 kernel, padding 1: dWeight[i, j] = sum of x over the rows
    /// [i-1, i+1] and columns [j-1, j+1] clipped to the image; dBias = 9.
    @Test func backwardFilterOfOnes() throws {
        let be = CPUBackend()
        let g = Conv2DGeometry(batch: 1, inChannels: 1, height: 3, width: 3, outChannels: 1, kernel: 3, padding: 1)
        let x = try be.refUpload(arange3x3, g.inputShape)
        let dy = try be.refUpload([Float](repeating: 1, count: 9), g.outputShape)
        let dW = try be.refUpload([Float](repeating: .nan, count: 9), g.weightShape)   // overwritten
        let dB = try be.refUpload([.nan], [1])
        try be.conv2DBackwardFilter(x: x, dy: dy, dWeight: dW, dBias: dB, geometry: g)
        RefCheck.exact(try be.floats(dW), [1 + 2 + 4 + 5, 1 + 2 + 3 + 4 + 5 + 6, 2 + 3 + 5 + 6,
                                           1 + 2 + 4 + 5 + 7 + 8, 45, 2 + 3 + 5 + 6 + 8 + 9,
                                           4 + 5 + 7 + 8, 4 + 5 + 6 + 7 + 8 + 9, 5 + 6 + 8 + 9], "dWeight")
        RefCheck.exact(try be.floats(dB), [9], "dBias")
    }

    /// y: (N=2, C=2, 2), bias [1, -10]: channel 0 shifts up, channel 1 goes mostly negative (ReLU).
    @Test func biasAddAndBiasGrad() throws {
        let be = CPUBackend()
        let y = try be.refUpload([1, 2, 3, 14, -1, -2, 30, 40], [2, 2, 2])
        let bias = try be.refUpload([1, -10], [2])
        try be.biasAdd(y: y, bias: bias, activation: .relu)
        RefCheck.exact(try be.floats(y), [2, 3, 0, 4, 0, 0, 20, 30], "biasAdd + relu")
        let dB = try be.makeTensor([2])
        try be.biasGrad(dy: y, dBias: dB)
        RefCheck.exact(try be.floats(dB), [2 + 3 + 0 + 0, 0 + 4 + 20 + 30], "biasGrad")
        // (N, C) matrices (Linear layers): spatial size 1.
        let m = try be.refUpload([1, 2, 3, 4, 5, 6], [2, 3])
        try be.biasAdd(y: m, bias: try be.refUpload([10, 20, 30], [3]), activation: .identity)
        RefCheck.exact(try be.floats(m), [11, 22, 33, 14, 25, 36], "biasAdd on (N, C)")
    }

    /// The direct convolution equals im2col followed by one GEMM per image plus bias.
    @Test(arguments: GradCheckShapes.conv)
    func directConvEqualsIm2colGemm(g: Conv2DGeometry) {
        let x = RefBuffer(RefCheck.random(g.inputShape.count, seed: 11))
        let w = RefBuffer(RefCheck.random(g.weightShape.count, seed: 12))
        let b = RefBuffer(RefCheck.random(g.outChannels, seed: 13))
        let y = RefBuffer(count: g.outputShape.count, value: 0.0)
        Ref.conv2DForward(x: x.p, weight: w.p, bias: b.p, y: y.p, geometry: g, activation: .identity)
        let cols = RefBuffer(count: g.colsShape.count, value: 0.0)
        Ref.im2col(x: x.p, cols: cols.p, geometry: g)
        let ohw = g.outHeight * g.outWidth
        let viaGemm = RefBuffer(count: g.outputShape.count, value: 0.0)
        for n in 0..<g.batch {   // y[n]: (Cout, OH*OW) = weight (Cout, patch) * cols[n] (patch, OH*OW)
            Ref.gemm(transA: false, transB: false, m: g.outChannels, n: ohw, k: g.patchSize, alpha: 1,
                     a: w.p, lda: g.patchSize, b: cols.p + n * g.patchSize * ohw, ldb: ohw,
                     beta: 0, c: viaGemm.p + n * g.outChannels * ohw, ldc: ohw)
        }
        Ref.biasAdd(y: viaGemm.p, bias: b.p, batch: g.batch, channels: g.outChannels, spatial: ohw, activation: .identity)
        RefCheck.close(y.values, viaGemm.values, atol: 1e-14, rtol: 1e-13, "direct conv vs im2col+gemm \(g)")
    }
}

/// Finite-difference checks of the convolution gradients, in Double through the generic reference.
@Suite struct ConvolutionGradientTests {
    /// loss(x, w, b) = <conv(x, w) + b, r> for a fixed random r.
    static func loss(_ x: [Double], _ w: [Double], _ b: [Double], _ r: [Double], _ g: Conv2DGeometry) -> Double {
        let (xb, wb, bb) = (RefBuffer(x), RefBuffer(w), RefBuffer(b))
        let y = RefBuffer(count: g.outputShape.count, value: 0.0)
        Ref.conv2DForward(x: xb.p, weight: wb.p, bias: bb.p, y: y.p, geometry: g, activation: .identity)
        return RefCheck.dot(y.values, r)
    }

    @Test(arguments: GradCheckShapes.conv)
    func dataFilterAndBias(g: Conv2DGeometry) {
        let x = RefCheck.random(g.inputShape.count, seed: 21)
        let w = RefCheck.random(g.weightShape.count, seed: 22)
        let b = RefCheck.random(g.outChannels, seed: 23)
        let r = RefCheck.random(g.outputShape.count, seed: 24)   // dL/dy

        let dx = RefBuffer(count: x.count, value: Double.nan)
        let dW = RefBuffer(count: w.count, value: Double.nan)
        let dB = RefBuffer(count: b.count, value: Double.nan)
        let (rb, xb, wb) = (RefBuffer(r), RefBuffer(x), RefBuffer(w))
        Ref.conv2DBackwardData(dy: rb.p, weight: wb.p, dx: dx.p, geometry: g)
        Ref.conv2DBackwardFilter(x: xb.p, dy: rb.p, dWeight: dW.p, dBias: dB.p, geometry: g)

        RefCheck.gradient(dx.values, RefCheck.numericGradient(x) { Self.loss($0, w, b, r, g) }, "dx \(g)")
        RefCheck.gradient(dW.values, RefCheck.numericGradient(w) { Self.loss(x, $0, b, r, g) }, "dWeight \(g)")
        RefCheck.gradient(dB.values, RefCheck.numericGradient(b) { Self.loss(x, w, $0, r, g) }, "dBias \(g)")
    }

    /// col2im is the adjoint of im2col: <im2col(x), c> == <x, col2im(c)>.
    @Test(arguments: GradCheckShapes.conv)
    func col2imIsTheAdjointOfIm2col(g: Conv2DGeometry) {
        let x = RefBuffer(RefCheck.random(g.inputShape.count, seed: 31))
        let c = RefBuffer(RefCheck.random(g.colsShape.count, seed: 32))
        let colsOfX = RefBuffer(count: c.count, value: 0.0)
        let xOfC = RefBuffer(count: x.count, value: 0.0)
        Ref.im2col(x: x.p, cols: colsOfX.p, geometry: g)
        Ref.col2im(cols: c.p, x: xOfC.p, geometry: g)
        let lhs = RefCheck.dot(colsOfX.values, c.values), rhs = RefCheck.dot(x.values, xOfC.values)
        RefCheck.close([lhs], [rhs], atol: 0, rtol: 1e-12, "<im2col(x), c> vs <x, col2im(c)> \(g)")
        #expect(abs(rhs) > 1e-3, "vacuous adjoint test: <x, col2im(c)> is \(rhs)")
    }

    /// The backward data pass equals col2im(weight^T * dy), the GEMM formulation a device may use.
    @Test(arguments: GradCheckShapes.conv)
    func backwardDataEqualsGemmCol2im(g: Conv2DGeometry) {
        let dy = RefBuffer(RefCheck.random(g.outputShape.count, seed: 41))
        let w = RefBuffer(RefCheck.random(g.weightShape.count, seed: 42))
        let dx = RefBuffer(count: g.inputShape.count, value: 0.0)
        Ref.conv2DBackwardData(dy: dy.p, weight: w.p, dx: dx.p, geometry: g)
        let ohw = g.outHeight * g.outWidth
        let cols = RefBuffer(count: g.colsShape.count, value: 0.0)
        for n in 0..<g.batch {   // cols[n]: (patch, OH*OW) = weight^T (patch, Cout) * dy[n] (Cout, OH*OW)
            Ref.gemm(transA: true, transB: false, m: g.patchSize, n: ohw, k: g.outChannels, alpha: 1,
                     a: w.p, lda: g.patchSize, b: dy.p + n * g.outChannels * ohw, ldb: ohw,
                     beta: 0, c: cols.p + n * g.patchSize * ohw, ldc: ohw)
        }
        let viaCols = RefBuffer(count: dx.count, value: 0.0)
        Ref.col2im(cols: cols.p, x: viaCols.p, geometry: g)
        RefCheck.close(dx.values, viaCols.values, atol: 1e-14, rtol: 1e-13, "backward data vs col2im(W^T dy) \(g)")
    }
}

@Suite struct ConvolutionArgumentTests {
    @Test func badShapesAndDtypesThrow() throws {
        let be = CPUBackend()
        let g = Conv2DGeometry(batch: 2, inChannels: 3, height: 5, width: 7, outChannels: 4, kernel: 3, padding: 1)
        let x = try be.makeTensor(g.inputShape), w = try be.makeTensor(g.weightShape), y = try be.makeTensor(g.outputShape)
        RefCheck.throwsInvalid("conv2DForward", "x") {
            try be.conv2DForward(x: try be.makeTensor([2, 3, 5, 6]), weight: w, bias: nil, y: y, geometry: g, activation: .identity)
        }
        RefCheck.throwsInvalid("conv2DForward", "weight") {
            try be.conv2DForward(x: x, weight: try be.makeTensor([4, 3, 3, 3], dtype: .int32), bias: nil, y: y, geometry: g, activation: .identity)
        }
        RefCheck.throwsInvalid("conv2DForward", "bias") {
            try be.conv2DForward(x: x, weight: w, bias: try be.makeTensor([3]), y: y, geometry: g, activation: .identity)
        }
        RefCheck.throwsInvalid("conv2DForward", "y") {
            try be.conv2DForward(x: x, weight: w, bias: nil, y: try be.makeTensor([2, 4, 5, 5]), geometry: g, activation: .identity)
        }
        RefCheck.throwsInvalid("conv2DBackwardData", "dy") {
            try be.conv2DBackwardData(dy: x, weight: w, dx: try be.makeTensor(g.inputShape), geometry: g)
        }
        RefCheck.throwsInvalid("conv2DBackwardData", "dx") {
            try be.conv2DBackwardData(dy: y, weight: w, dx: y, geometry: g)
        }
        RefCheck.throwsInvalid("conv2DBackwardFilter", "dWeight") {
            try be.conv2DBackwardFilter(x: x, dy: y, dWeight: try be.makeTensor([4, 3, 3, 2]), dBias: nil, geometry: g)
        }
        RefCheck.throwsInvalid("conv2DBackwardFilter", "dBias") {
            try be.conv2DBackwardFilter(x: x, dy: y, dWeight: w, dBias: try be.makeTensor([5]), geometry: g)
        }
        RefCheck.throwsInvalid("im2col", "cols") {
            try be.im2col(x: x, cols: try be.makeTensor([2, 27, 34]), geometry: g)
        }
        RefCheck.throwsInvalid("col2im", "x") {
            try be.col2im(cols: try be.makeTensor(g.colsShape), x: try be.makeTensor([2, 3, 5, 7], dtype: .int32), geometry: g)
        }
        RefCheck.throwsInvalid("biasAdd", "bias") { try be.biasAdd(y: y, bias: try be.makeTensor([3]), activation: .relu) }
        RefCheck.throwsInvalid("biasGrad", "dBias") { try be.biasGrad(dy: y, dBias: try be.makeTensor([5])) }
        RefCheck.throwsInvalid("biasGrad", "dy") { try be.biasGrad(dy: try be.makeTensor([8]), dBias: try be.makeTensor([5])) }
    }
}
