import CNNCore
import CPUBackend
import Testing

@Suite struct ElementwiseTests {
    @Test func reluForwardAndBackward() throws {
        let be = CPUBackend()
        let x = try be.refUpload([-2, -0.0, 0, 0.5, 3, .nan], [6])
        let y = try be.makeTensor([6])
        try be.relu(x: x, y: y)
        let got = try be.floats(y)
        RefCheck.exact(Array(got[0..<5]), [0, 0, 0, 0.5, 3], "relu")
        #expect(got[1].sign == .plus, "relu(-0) must be +0")
        #expect(got[5].isNaN, "relu propagates NaN")

        let dx = try be.makeTensor([6])
        try be.reluBackward(y: y, dy: try be.refUpload([1, 2, 3, 4, 5, 6], [6]), dx: dx)
        RefCheck.exact(try be.floats(dx), [0, 0, 0, 4, 5, 0], "dx = y > 0 ? dy : 0")
    }

    @Test func inPlaceWhereAllowed() throws {
        let be = CPUBackend()
        let t = try be.refUpload([-1, 2, -3, 4], [2, 2])
        try be.relu(x: t, y: t)
        RefCheck.exact(try be.floats(t), [0, 2, 0, 4], "relu in place")
        let dy = try be.refUpload([5, 6, 7, 8], [2, 2])
        try be.reluBackward(y: t, dy: dy, dx: dy)
        RefCheck.exact(try be.floats(dy), [0, 6, 0, 8], "reluBackward in place (dx = dy)")
        try be.add(t, dy, y: t)
        RefCheck.exact(try be.floats(t), [0, 8, 0, 12], "add in place")
        try be.mul(t, t, y: t)
        RefCheck.exact(try be.floats(t), [0, 64, 0, 144], "mul in place")
        try be.scale(t, by: 0.5, y: t)
        RefCheck.exact(try be.floats(t), [0, 32, 0, 72], "scale in place")
        try be.axpy(alpha: 1, x: t, y: t)
        RefCheck.exact(try be.floats(t), [0, 64, 0, 144], "axpy with x = y")
    }

    @Test func arithmetic() throws {
        let be = CPUBackend()
        let a = try be.refUpload([1, 2, 3], [3]), b = try be.refUpload([10, -20, 0.5], [3]), y = try be.makeTensor([3])
        try be.add(a, b, y: y)
        RefCheck.exact(try be.floats(y), [11, -18, 3.5], "add")
        try be.mul(a, b, y: y)
        RefCheck.exact(try be.floats(y), [10, -40, 1.5], "mul")
        try be.scale(a, by: -3, y: y)
        RefCheck.exact(try be.floats(y), [-3, -6, -9], "scale")
        try be.axpy(alpha: 2, x: a, y: y)   // y = [-3, -6, -9] + 2 [1, 2, 3]
        RefCheck.exact(try be.floats(y), [-1, -2, -3], "axpy")
        try be.fill(y, value: 7.25)
        RefCheck.exact(try be.floats(y), [7.25, 7.25, 7.25], "fill")
    }

    /// An op on a view writes only the view's elements.
    @Test func viewsAtAnOffset() throws {
        let be = CPUBackend()
        let t = try be.refUpload([-1, -2, -3, -4, -5, -6], [3, 2])
        try be.relu(x: t.slice(1..<2), y: t.slice(1..<2))
        try be.fill(t.slice(2..<3), value: 9)
        RefCheck.exact(try be.floats(t), [-1, -2, 0, 0, 9, 9], "relu and fill on row views")
    }

    /// loss = <relu(x), r>; dx = reluBackward(relu(x), r), checked against finite differences in Double.
    @Test(arguments: [(1, 35), (3, 35)])
    func reluGradient(n: Int, perItem: Int) {
        // |x| >= 0.005 and a step of 1e-6: no element crosses the kink at 0.
        let x = RefCheck.distinct(n * perItem, seed: 71).map { $0 >= 0 ? $0 + 0.005 : $0 - 0.005 }
        let r = RefCheck.random(x.count, seed: 72)
        func loss(_ xv: [Double]) -> Double {
            let (xb, y) = (RefBuffer(xv), RefBuffer(count: xv.count, value: 0.0))
            Ref.relu(x: xb.p, y: y.p, count: xv.count)
            return RefCheck.dot(y.values, r)
        }
        let (xb, y, rb) = (RefBuffer(x), RefBuffer(count: x.count, value: 0.0), RefBuffer(r))
        Ref.relu(x: xb.p, y: y.p, count: x.count)
        let dx = RefBuffer(count: x.count, value: Double.nan)
        Ref.reluBackward(y: y.p, dy: rb.p, dx: dx.p, count: x.count)
        RefCheck.gradient(dx.values, RefCheck.numericGradient(x, loss), "relu dx N=\(n)")
    }

    @Test func badArgumentsThrow() throws {
        let be = CPUBackend()
        let t = try be.makeTensor([4]), u = try be.makeTensor([5])
        RefCheck.throwsInvalid("relu", "y") { try be.relu(x: t, y: u) }
        RefCheck.throwsInvalid("relu", "x") { try be.relu(x: try be.makeTensor([4], dtype: .int32), y: t) }
        RefCheck.throwsInvalid("reluBackward", "y") { try be.reluBackward(y: u, dy: t, dx: t) }
        RefCheck.throwsInvalid("reluBackward", "dx") { try be.reluBackward(y: t, dy: try be.makeTensor([4]), dx: t) }   // dx aliasing y
        RefCheck.throwsInvalid("add", "b") { try be.add(t, u, y: t) }
        RefCheck.throwsInvalid("mul", "y") { try be.mul(t, t, y: u) }
        RefCheck.throwsInvalid("scale", "y") { try be.scale(t, by: 2, y: u) }
        RefCheck.throwsInvalid("axpy", "y") { try be.axpy(alpha: 1, x: t, y: u) }
        RefCheck.throwsInvalid("fill", "t") { try be.fill(try be.makeTensor([2], dtype: .int32), value: 1) }
        // Partial overlap is never allowed, even where in-place is.
        let big = try be.makeTensor([6])
        RefCheck.throwsInvalid("relu", "y") {
            try be.relu(x: big.view(elementOffset: 0, shape: [4]), y: big.view(elementOffset: 2, shape: [4]))
        }
    }
}

@Suite struct DropoutTests {
    static func run(_ be: CPUBackend, _ x: Tensor, p: Float, seed: UInt64) throws -> (y: [Float], mask: [Float]) {
        let y = try be.makeTensor(x.shape), mask = try be.makeTensor(x.shape)
        try be.dropoutForward(x: x, y: y, mask: mask, probability: p, seed: seed)
        return (try be.floats(y), try be.floats(mask))
    }

    @Test func maskFollowsTheCounterRNGRule() throws {
        let be = CPUBackend()
        let n = 10_000, p: Float = 0.3
        let xv = (0..<n).map { Float($0 % 97) - 48 }
        let x = try be.refUpload(xv, [100, 100])
        let (y, mask) = try Self.run(be, x, p: p, seed: 1234)
        let key = CounterRNG.key(seed: 1234)
        let keep = 1 / (1 - p)
        var kept = 0
        for i in 0..<n {
            let expectKept = CounterRNG.uniform(key: key, index: UInt32(i)) >= p
            #expect(mask[i] == (expectKept ? keep : 0), "mask[\(i)]")
            #expect(y[i] == xv[i] * mask[i], "y[\(i)] = x * mask")
            if expectKept { kept += 1 }
        }
        // Binomial(10000, 0.7): standard deviation 0.0046 of the kept fraction; 0.02 is over 4 sigma.
        #expect(abs(Double(kept) / Double(n) - 0.7) < 0.02, "kept fraction \(Double(kept) / Double(n))")
    }

    @Test func deterministicPerSeedAndDifferentAcrossSeeds() throws {
        let be = CPUBackend()
        let x = try be.refUpload([Float](repeating: 1, count: 4096), [4096])
        let a = try Self.run(be, x, p: 0.5, seed: 7), b = try Self.run(be, x, p: 0.5, seed: 7), c = try Self.run(be, x, p: 0.5, seed: 8)
        RefCheck.exact(a.mask, b.mask, "same seed, same mask")
        RefCheck.exact(a.y, b.y, "same seed, same output")
        let differ = zip(a.mask, c.mask).filter { $0 != $1 }.count
        #expect(differ > 1500, "seeds 7 and 8 differ in only \(differ) of 4096 mask entries")
        #expect(Set(a.mask) == [0, 2], "mask values must be 0 or 1/(1-p) = 2")
    }

    @Test func zeroProbabilityIsTheIdentity() throws {
        let be = CPUBackend()
        let xv = RefCheck.random(1000, seed: 73).map(Float.init)
        let (y, mask) = try Self.run(be, try be.refUpload(xv, [1000]), p: 0, seed: 99)
        RefCheck.exact(y, xv, "p = 0")
        RefCheck.exact(mask, [Float](repeating: 1, count: 1000), "p = 0 mask")
    }

    @Test func inPlaceAndBadArguments() throws {
        let be = CPUBackend()
        let x = try be.refUpload([Float](repeating: 3, count: 64), [64])
        let mask = try be.makeTensor([64])
        try be.dropoutForward(x: x, y: x, mask: mask, probability: 0.25, seed: 5)
        let (m, y) = (try be.floats(mask), try be.floats(x))
        RefCheck.exact(y, m.map { 3 * $0 }, "dropout in place")
        RefCheck.throwsInvalid("dropoutForward", "probability") {
            try be.dropoutForward(x: x, y: x, mask: mask, probability: 1, seed: 5)
        }
        RefCheck.throwsInvalid("dropoutForward", "mask") {
            try be.dropoutForward(x: x, y: x, mask: try be.makeTensor([63]), probability: 0.5, seed: 5)
        }
        RefCheck.throwsInvalid("dropoutForward", "mask") {
            try be.dropoutForward(x: x, y: try be.makeTensor([64]), mask: x, probability: 0.5, seed: 5)
        }
    }
}
