import CNNCore
import CPUBackend
import Testing

@Suite struct PoolingHandTests {
    /// x = arange(16) as a 4x4 plane, 2x2 windows, stride 2:
    ///    0  1  2  3
    ///    4  5  6  7
    ///    8  9 10 11
    ///   12 13 14 15
    /// Each window's maximum is its bottom-right element, at plane index 5, 7, 13, 15.
    @Test func maxPool4x4Arange() throws {
        let be = CPUBackend()
        let g = Pool2DGeometry(batch: 1, channels: 1, height: 4, width: 4, kernel: 2)
        let x = try be.refUpload((0..<16).map(Float.init), g.inputShape)
        let y = try be.makeTensor(g.outputShape), argmax = try be.makeTensor(g.outputShape, dtype: .int32)
        try be.maxPool2DForward(x: x, y: y, argmax: argmax, geometry: g)
        RefCheck.exact(try be.floats(y), [5, 7, 13, 15], "max pool y")
        #expect(try be.ints(argmax) == [5, 7, 13, 15])

        let dy = try be.refUpload([1, 2, 3, 4], g.outputShape)
        let dx = try be.refUpload([Float](repeating: .nan, count: 16), g.inputShape)   // overwritten
        try be.maxPool2DBackward(dy: dy, argmax: argmax, dx: dx, geometry: g)
        var expected = [Float](repeating: 0, count: 16)
        (expected[5], expected[7], expected[13], expected[15]) = (1, 2, 3, 4)
        RefCheck.exact(try be.floats(dx), expected, "max pool dx")
    }

    /// Ties go to the first maximum in row-major window order; argmax indexes the (n, c) plane,
    /// so the second channel's indices restart at 0.
    @Test func maxPoolTiesAndPlaneIndices() throws {
        let be = CPUBackend()
        let g = Pool2DGeometry(batch: 1, channels: 2, height: 2, width: 4, kernel: 2)
        // channel 0: windows [[1,4],[4,2]] and [[3,3],[3,3]]; channel 1: [[0,0],[0,7]] and [[7,1],[7,7]]
        let x = try be.refUpload([1, 4, 3, 3,
                                  4, 2, 3, 3,
                                  0, 0, 7, 1,
                                  0, 7, 7, 7], g.inputShape)
        let y = try be.makeTensor(g.outputShape), argmax = try be.makeTensor(g.outputShape, dtype: .int32)
        try be.maxPool2DForward(x: x, y: y, argmax: argmax, geometry: g)
        RefCheck.exact(try be.floats(y), [4, 3, 7, 7], "tied maxima")
        #expect(try be.ints(argmax) == [1, 2, 5, 2])
    }

    /// All inputs negative with padding 1: the zero padding must never win.
    /// x = -arange(1...9) as 3x3, 2x2 windows, stride 2, padding 1.
    @Test func maxPoolPaddingNeverWins() throws {
        let be = CPUBackend()
        let g = Pool2DGeometry(batch: 1, channels: 1, height: 3, width: 3, kernel: 2, stride: 2, padding: 1)
        let x = try be.refUpload((1...9).map { -Float($0) }, g.inputShape)
        let y = try be.makeTensor(g.outputShape), argmax = try be.makeTensor(g.outputShape, dtype: .int32)
        try be.maxPool2DForward(x: x, y: y, argmax: argmax, geometry: g)
        // Windows: {x00}, {x01, x02}, {x10, x20}, {x11, x12, x21, x22}
        RefCheck.exact(try be.floats(y), [-1, -2, -4, -5], "padded max pool")
        #expect(try be.ints(argmax) == [0, 1, 3, 4])
    }

    @Test func maxPoolPropagatesNaN() throws {
        let be = CPUBackend()
        let g = Pool2DGeometry(batch: 1, channels: 1, height: 2, width: 2, kernel: 2)
        let x = try be.refUpload([1, .nan, 5, .nan], g.inputShape)
        let y = try be.makeTensor(g.outputShape), argmax = try be.makeTensor(g.outputShape, dtype: .int32)
        try be.maxPool2DForward(x: x, y: y, argmax: argmax, geometry: g)
        #expect(try be.floats(y)[0].isNaN)
        #expect(try be.ints(argmax) == [1])
    }

    /// 3x3 windows, stride 1 over a 4x4 plane whose only large value sits at (1, 1), inside all four
    /// windows: its gradient is the sum of all four dy.
    @Test func maxPoolOverlappingWindowsSumIntoTheArgmax() throws {
        let be = CPUBackend()
        let g = Pool2DGeometry(batch: 1, channels: 1, height: 4, width: 4, kernel: 3, stride: 1)
        var xv = [Float](repeating: 0, count: 16)
        xv[5] = 9
        let x = try be.refUpload(xv, g.inputShape)
        let y = try be.makeTensor(g.outputShape), argmax = try be.makeTensor(g.outputShape, dtype: .int32)
        try be.maxPool2DForward(x: x, y: y, argmax: argmax, geometry: g)
        #expect(try be.ints(argmax) == [5, 5, 5, 5])
        let dx = try be.makeTensor(g.inputShape)
        try be.maxPool2DBackward(dy: try be.refUpload([1, 2, 3, 4], g.outputShape), argmax: argmax, dx: dx, geometry: g)
        var expected = [Float](repeating: 0, count: 16)
        expected[5] = 10
        RefCheck.exact(try be.floats(dx), expected, "overlapping windows")
    }

    @Test func maxPoolBackwardRejectsAnArgmaxOutsideItsWindow() throws {
        let be = CPUBackend()
        let g = Pool2DGeometry(batch: 1, channels: 1, height: 4, width: 4, kernel: 2)
        let argmax = try be.refUpload(ints: [5, 7, 13, 3], g.outputShape)   // 3 is in window 1, not 3
        RefCheck.throwsInvalid("maxPool2DBackward", "argmax") {
            try be.maxPool2DBackward(dy: try be.makeTensor(g.outputShape), argmax: argmax, dx: try be.makeTensor(g.inputShape), geometry: g)
        }
    }

    /// 4x4 arange, 2x2 windows: means (0+1+4+5)/4, (2+3+6+7)/4, (8+9+12+13)/4, (10+11+14+15)/4.
    @Test func avgPool4x4Arange() throws {
        let be = CPUBackend()
        let g = Pool2DGeometry(batch: 1, channels: 1, height: 4, width: 4, kernel: 2)
        let x = try be.refUpload((0..<16).map(Float.init), g.inputShape)
        let y = try be.makeTensor(g.outputShape)
        try be.avgPool2DForward(x: x, y: y, geometry: g)
        RefCheck.exact(try be.floats(y), [2.5, 4.5, 10.5, 12.5], "avg pool")
    }

    /// count_include_pad: x = arange(1...9) 3x3, 2x2 windows, stride 2, padding 1 -> every window
    /// divides by 4: {1}/4, {2,3}/4, {4,7}/4, {5,6,8,9}/4. Each input is in exactly one window, so
    /// dx = dy / 4 routed back.
    @Test func avgPoolCountsPadding() throws {
        let be = CPUBackend()
        let g = Pool2DGeometry(batch: 1, channels: 1, height: 3, width: 3, kernel: 2, stride: 2, padding: 1)
        let x = try be.refUpload((1...9).map(Float.init), g.inputShape)
        let y = try be.makeTensor(g.outputShape)
        try be.avgPool2DForward(x: x, y: y, geometry: g)
        RefCheck.exact(try be.floats(y), [0.25, 1.25, 2.75, 7], "avg pool with padding")
        let dx = try be.makeTensor(g.inputShape)
        try be.avgPool2DBackward(dy: try be.refUpload([4, 8, 12, 16], g.outputShape), dx: dx, geometry: g)
        RefCheck.exact(try be.floats(dx), [1, 2, 2, 3, 4, 4, 3, 4, 4], "avg pool dx")
    }

    /// 2x2 windows, stride 1 over 3x3, dy = ones: dx = (windows covering the pixel) / 4.
    @Test func avgPoolBackwardOverlapping() throws {
        let be = CPUBackend()
        let g = Pool2DGeometry(batch: 1, channels: 1, height: 3, width: 3, kernel: 2, stride: 1)
        let dx = try be.makeTensor(g.inputShape)
        try be.avgPool2DBackward(dy: try be.refUpload([1, 1, 1, 1], g.outputShape), dx: dx, geometry: g)
        RefCheck.exact(try be.floats(dx), [0.25, 0.5, 0.25, 0.5, 1, 0.5, 0.25, 0.5, 0.25], "overlapping avg dx")
    }

    /// Global average pooling of a (2, 1, 2, 3) batch: one mean per plane.
    @Test func globalAveragePooling() throws {
        let be = CPUBackend()
        let g = Pool2DGeometry.global(batch: 2, channels: 1, height: 2, width: 3)
        let y = try be.makeTensor(g.outputShape)
        try be.avgPool2DForward(x: try be.refUpload([1, 2, 3, 4, 5, 6, -6, 0, 0, 0, 0, 0], g.inputShape), y: y, geometry: g)
        RefCheck.exact(try be.floats(y), [3.5, -1], "global average")
    }

    @Test func badArgumentsThrow() throws {
        let be = CPUBackend()
        let g = Pool2DGeometry(batch: 2, channels: 3, height: 4, width: 4, kernel: 2)
        let x = try be.makeTensor(g.inputShape), y = try be.makeTensor(g.outputShape)
        let argmax = try be.makeTensor(g.outputShape, dtype: .int32)
        RefCheck.throwsInvalid("maxPool2DForward", "argmax") {
            try be.maxPool2DForward(x: x, y: y, argmax: try be.makeTensor(g.outputShape), geometry: g)
        }
        RefCheck.throwsInvalid("maxPool2DForward", "y") {
            try be.maxPool2DForward(x: x, y: try be.makeTensor([2, 3, 3, 2]), argmax: argmax, geometry: g)
        }
        RefCheck.throwsInvalid("maxPool2DBackward", "dx") {
            try be.maxPool2DBackward(dy: y, argmax: argmax, dx: try be.makeTensor([2, 3, 4, 5]), geometry: g)
        }
        RefCheck.throwsInvalid("maxPool2DBackward", "dy") {
            try be.maxPool2DBackward(dy: x, argmax: argmax, dx: x, geometry: g)
        }
        RefCheck.throwsInvalid("avgPool2DForward", "x") {
            try be.avgPool2DForward(x: try be.makeTensor(g.inputShape, dtype: .int32), y: y, geometry: g)
        }
        RefCheck.throwsInvalid("avgPool2DBackward", "dx") {
            try be.avgPool2DBackward(dy: y, dx: y, geometry: g)
        }
    }
}

/// Finite-difference checks of the pooling gradients, in Double through the generic reference.
@Suite struct PoolingGradientTests {
    @Test(arguments: GradCheckShapes.pool)
    func maxPool(g: Pool2DGeometry) throws {
        // Distinct values 0.01 apart: a step of 1e-6 never changes which element wins.
        let x = RefCheck.distinct(g.inputShape.count, seed: 51)
        let r = RefCheck.random(g.outputShape.count, seed: 52)
        func loss(_ xv: [Double]) -> Double {
            let (xb, y) = (RefBuffer(xv), RefBuffer(count: r.count, value: 0.0))
            let a = RefBuffer(count: r.count, value: Int32(-1))
            Ref.maxPool2DForward(x: xb.p, y: y.p, argmax: a.p, geometry: g)
            return RefCheck.dot(y.values, r)
        }
        let (xb, y, a) = (RefBuffer(x), RefBuffer(count: r.count, value: 0.0), RefBuffer(count: r.count, value: Int32(-1)))
        Ref.maxPool2DForward(x: xb.p, y: y.p, argmax: a.p, geometry: g)
        let dx = RefBuffer(count: x.count, value: Double.nan)
        let rb = RefBuffer(r)
        try Ref.maxPool2DBackward(dy: rb.p, argmax: a.p, dx: dx.p, geometry: g)
        RefCheck.gradient(dx.values, RefCheck.numericGradient(x, loss), "max pool dx \(g)")
    }

    @Test(arguments: GradCheckShapes.pool)
    func avgPool(g: Pool2DGeometry) {
        let x = RefCheck.random(g.inputShape.count, seed: 53)
        let r = RefCheck.random(g.outputShape.count, seed: 54)
        func loss(_ xv: [Double]) -> Double {
            let (xb, y) = (RefBuffer(xv), RefBuffer(count: r.count, value: 0.0))
            Ref.avgPool2DForward(x: xb.p, y: y.p, geometry: g)
            return RefCheck.dot(y.values, r)
        }
        let dx = RefBuffer(count: x.count, value: Double.nan)
        let rb = RefBuffer(r)
        Ref.avgPool2DBackward(dy: rb.p, dx: dx.p, geometry: g)
        RefCheck.gradient(dx.values, RefCheck.numericGradient(x, loss), "avg pool dx \(g)")
    }
}
