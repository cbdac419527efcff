// Fast convolution paths (Sources/CPUBackend/Fast/Ops/FastConvolution.swift) against the reference:
// forward (implicit GEMM, bias + ReLU epilogue), backward data (flipped-kernel implicit GEMM for
// stride 1, GEMM + col2im otherwise), backward filter (+ bias), im2col / col2im.
// Tolerance: rtol 1e-4 of the output's scale (DESIGN.md); im2col bit-exact; col2im rtol 1e-5.

@testable import CPUBackend
import CNNCore
import Testing

/// Shapes that hit every edge of the packing and tiling: N = 1, odd planes (P not a multiple of the
/// 32-column panel, panels crossing images), P = 16 and 64 (several images per panel / per block),
/// Cout not a multiple of the 12-row panel (4- and 8-row kernels, edge tiles), K > 384 (several
/// depth blocks) and K > 768 (several column blocks of the weight gradient), K = 27 (the first layer),
/// strides 2, padding 0 / 1 / 2, non-square kernels, 1x1 kernels, and the models' layers at batch 2.
enum FastConvShapes {
    static let all: [Conv2DGeometry] = [
        Conv2DGeometry(batch: 1, inChannels: 3, height: 7, width: 5, outChannels: 5, kernel: 3, padding: 1),
        Conv2DGeometry(batch: 3, inChannels: 2, height: 5, width: 7, outChannels: 13, kernelH: 3, kernelW: 2),
        Conv2DGeometry(batch: 2, inChannels: 4, height: 9, width: 9, outChannels: 6, kernel: 3, stride: 2, padding: 1),
        Conv2DGeometry(batch: 2, inChannels: 8, height: 8, width: 8, outChannels: 16, kernel: 1, stride: 2),
        Conv2DGeometry(batch: 2, inChannels: 5, height: 6, width: 11, outChannels: 7, kernelH: 5, kernelW: 3,
                       strideH: 1, strideW: 2, padH: 2, padW: 1),
        Conv2DGeometry(batch: 3, inChannels: 48, height: 4, width: 4, outChannels: 20, kernel: 3, padding: 1),    // K 432, P 16
        Conv2DGeometry(batch: 2, inChannels: 96, height: 8, width: 8, outChannels: 12, kernel: 3, padding: 1),    // K 864, P 64
        Conv2DGeometry(batch: 5, inChannels: 1, height: 13, width: 3, outChannels: 4, kernel: 3, padding: 1),
        Conv2DGeometry(batch: 2, inChannels: 6, height: 10, width: 10, outChannels: 8, kernel: 1, padding: 1),   // pad > kernel - 1
        // The models' layers (cnn / optimized conv1 and conv2, speedrun stem), batch 2.
        Conv2DGeometry(batch: 2, inChannels: 3, height: 32, width: 32, outChannels: 32, kernel: 3, padding: 1),
        Conv2DGeometry(batch: 2, inChannels: 32, height: 16, width: 16, outChannels: 64, kernel: 3, padding: 1),
        Conv2DGeometry(batch: 1, inChannels: 3, height: 32, width: 32, outChannels: 64, kernel: 3, padding: 1),
        // speedrun's 256->256 at 4x4 and 128->128 at 8x8 with fewer channels (same plane sizes).
        Conv2DGeometry(batch: 2, inChannels: 32, height: 4, width: 4, outChannels: 40, kernel: 3, padding: 1),
        Conv2DGeometry(batch: 2, inChannels: 24, height: 8, width: 8, outChannels: 28, kernel: 3, padding: 1),
    ]
}

@Suite struct FastParityConvolutionTests {
    struct Inputs {
        let x: [Float], w: [Float], b: [Float], dy: [Float]
        init(_ g: Conv2DGeometry, seed: UInt64) {
            x = FastParity.random(g.inputShape.count, seed: seed)
            w = FastParity.random(g.weightShape.count, seed: seed + 1)
            b = FastParity.random(g.outChannels, seed: seed + 2)
            dy = FastParity.random(g.outputShape.count, seed: seed + 3)
        }
    }

    func forward(_ be: CPUBackend, _ g: Conv2DGeometry, _ i: Inputs, bias: Bool, activation: Activation) throws -> [Float] {
        let x = try be.upload(i.x, shape: g.inputShape)
        let w = try be.upload(i.w, shape: g.weightShape)
        let b = bias ? try be.upload(i.b, shape: [g.outChannels]) : nil
        let y = try be.makeTensor(g.outputShape)
        try be.fill(y, value: .nan)   // every element must be written
        try be.conv2DForward(x: x, weight: w, bias: b, y: y, geometry: g, activation: activation)
        return try be.floats(y)
    }

    @Test(arguments: FastConvShapes.all.indices)
    func forwardMatchesReference(_ index: Int) throws {
        let g = FastConvShapes.all[index]
        let inputs = Inputs(g, seed: UInt64(100 + index))
        let ref = CPUBackend(reference: true)
        for (bias, act) in [(true, Activation.relu), (false, .identity)] {
            let want = try forward(ref, g, inputs, bias: bias, activation: act)
            var first: [Float]? = nil
            for (name, be) in FastParity.fastBackends() {
                let got = try forward(be, g, inputs, bias: bias, activation: act)
                FastParity.closeToScale(got, want, rtol: 1e-4, "conv2DForward \(g) bias \(bias) \(act) [\(name)]")
                if let first { FastParity.same(got, first, "conv2DForward \(g) [\(name) vs default]") } else { first = got }
            }
        }
    }

    @Test(arguments: FastConvShapes.all.indices)
    func backwardDataMatchesReference(_ index: Int) throws {
        let g = FastConvShapes.all[index]
        let inputs = Inputs(g, seed: UInt64(200 + index))
        func run(_ be: CPUBackend) throws -> [Float] {
            let dy = try be.upload(inputs.dy, shape: g.outputShape)
            let w = try be.upload(inputs.w, shape: g.weightShape)
            let dx = try be.makeTensor(g.inputShape)
            try be.fill(dx, value: .nan)
            try be.conv2DBackwardData(dy: dy, weight: w, dx: dx, geometry: g)
            return try be.floats(dx)
        }
        let want = try run(CPUBackend(reference: true))
        var first: [Float]? = nil
        for (name, be) in FastParity.fastBackends() {
            let got = try run(be)
            FastParity.closeToScale(got, want, rtol: 1e-4, "conv2DBackwardData \(g) [\(name)]")
            if let first { FastParity.same(got, first, "conv2DBackwardData \(g) [\(name) vs default]") } else { first = got }
        }
    }

    @Test(arguments: FastConvShapes.all.indices)
    func backwardFilterMatchesReference(_ index: Int) throws {
        let g = FastConvShapes.all[index]
        let inputs = Inputs(g, seed: UInt64(300 + index))
        func run(_ be: CPUBackend) throws -> (dw: [Float], db: [Float]) {
            let x = try be.upload(inputs.x, shape: g.inputShape)
            let dy = try be.upload(inputs.dy, shape: g.outputShape)
            let dw = try be.makeTensor(g.weightShape), db = try be.makeTensor([g.outChannels])
            try be.fill(dw, value: .nan); try be.fill(db, value: .nan)
            try be.conv2DBackwardFilter(x: x, dy: dy, dWeight: dw, dBias: db, geometry: g)
            return (try be.floats(dw), try be.floats(db))
        }
        let want = try run(CPUBackend(reference: true))
        var first: (dw: [Float], db: [Float])? = nil
        for (name, be) in FastParity.fastBackends() {
            let got = try run(be)
            FastParity.closeToScale(got.dw, want.dw, rtol: 1e-4, "conv2DBackwardFilter dWeight \(g) [\(name)]")
            FastParity.closeToScale(got.db, want.db, rtol: 1e-5, "conv2DBackwardFilter dBias \(g) [\(name)]")
            if let first {
                FastParity.same(got.dw, first.dw, "conv2DBackwardFilter dWeight \(g) [\(name) vs default]")
                FastParity.same(got.db, first.db, "conv2DBackwardFilter dBias \(g) [\(name) vs default]")
            } else { first = got }
        }
    }

    @Test func backwardFilterWithoutBiasAndNonFiniteInputs() throws {
        // No dBias; an infinity in x must reach exactly the weights that see it (NaN there), as the reference.
        let g = Conv2DGeometry(batch: 2, inChannels: 2, height: 6, width: 6, outChannels: 3, kernel: 3, padding: 1)
        var x = FastParity.random(g.inputShape.count, seed: 9)
        x[7] = .infinity
        let dyv = FastParity.random(g.outputShape.count, seed: 10)
        func run(_ be: CPUBackend) throws -> [Float] {
            let dw = try be.makeTensor(g.weightShape)
            try be.conv2DBackwardFilter(x: try be.upload(x, shape: g.inputShape), dy: try be.upload(dyv, shape: g.outputShape),
                                        dWeight: dw, dBias: nil, geometry: g)
            return try be.floats(dw)
        }
        let want = try run(CPUBackend(reference: true))
        for (name, be) in FastParity.fastBackends() {
            let got = try run(be)
            #expect(zip(got, want).allSatisfy { $0.isFinite == $1.isFinite && ($0.isFinite || $0 == $1 || ($0.isNaN && $1.isNaN)) },
                    "non-finite entries differ [\(name)]")
            #expect(want.contains { !$0.isFinite }, "the infinity reaches no weight: the check would be vacuous")
            let finite = zip(got, want).filter { $0.isFinite && $1.isFinite }
            FastParity.closeToScale(finite.map(\.0), finite.map(\.1), rtol: 1e-4, "finite dWeight [\(name)]")
        }
    }

    @Test(arguments: FastConvShapes.all.indices)
    func im2colIsExactAndCol2imMatches(_ index: Int) throws {
        let g = FastConvShapes.all[index]
        let x = FastParity.random(g.inputShape.count, seed: UInt64(400 + index))
        let cols = FastParity.random(g.colsShape.count, seed: UInt64(500 + index))
        func run(_ be: CPUBackend) throws -> (cols: [Float], x: [Float]) {
            let c = try be.makeTensor(g.colsShape), xt = try be.makeTensor(g.inputShape)
            try be.fill(c, value: .nan); try be.fill(xt, value: .nan)
            try be.im2col(x: try be.upload(x, shape: g.inputShape), cols: c, geometry: g)
            try be.col2im(cols: try be.upload(cols, shape: g.colsShape), x: xt, geometry: g)
            return (try be.floats(c), try be.floats(xt))
        }
        let want = try run(CPUBackend(reference: true))
        for (name, be) in FastParity.fastBackends() {
            let got = try run(be)
            RefCheck.exact(got.cols, want.cols, "im2col \(g) [\(name)]")
            FastParity.closeToScale(got.x, want.x, rtol: 1e-5, "col2im \(g) [\(name)]")
        }
    }

    @Test func largeBatchUsesEveryTaskShape() throws {
        // Enough work for the production thresholds: column splits of 32x32 images, several images
        // per task at 8x8, several depth blocks; the default backend against one thread, bitwise.
        let shapes = [
            Conv2DGeometry(batch: 3, inChannels: 16, height: 32, width: 32, outChannels: 24, kernel: 3, padding: 1),
            Conv2DGeometry(batch: 9, inChannels: 64, height: 8, width: 8, outChannels: 36, kernel: 3, padding: 1),
        ]
        for (s, g) in shapes.enumerated() {
            let inputs = Inputs(g, seed: UInt64(600 + s))
            let one = CPUBackend(reference: false, pool: FastParity.onePool, splitAll: false)
            let def = CPUBackend()
            let a = try forward(one, g, inputs, bias: true, activation: .relu)
            let b = try forward(def, g, inputs, bias: true, activation: .relu)
            FastParity.same(b, a, "conv2DForward \(g) default vs 1 thread")
            // Spot-check the reference on a sub-batch of one image (its first image's outputs).
            var g1 = g; g1.batch = 1
            let i1 = Inputs(g1, seed: UInt64(600 + s))
            let want = try forward(CPUBackend(reference: true), g1, i1, bias: true, activation: .relu)
            let got = try forward(def, g1, i1, bias: true, activation: .relu)
            FastParity.closeToScale(got, want, rtol: 1e-4, "conv2DForward \(g1)")
        }
    }
}
