import Testing
import CNNCore
import CPUBackend
@testable import NN

@Suite struct LayerGradientTests {
    let backend = CPUBackend()
    var checker: GradientChecker { GradientChecker(backend: backend) }

    func expectSmall(_ r: (dx: Double, params: [String: Double]), _ what: String, checkDx: Bool = true) {
        if checkDx { #expect(r.dx < 1e-3, "\(what): dx relative error \(r.dx)") }
        for (n, e) in r.params { #expect(e < 1e-3, "\(what): d\(n) relative error \(e)") }
    }

    @Test(arguments: [(1, 1, 0), (3, 2, 1), (2, 1, 1)])
    func conv2d(n: Int, stride: Int, padding: Int) throws {
        let x = HostTensor(shape: [n, 3, 5, 7], values: separatedValues(count: n * 105, gap: 0.02, seed: 3))
        expectSmall(try checker.check(layer: Conv2d(3, 4, kernel: 3, stride: stride, padding: padding), input: x),
                    "conv n\(n) s\(stride) p\(padding)")
    }

    @Test func conv2dNoBiasNonSquareInput() throws {
        let x = HostTensor(shape: [3, 2, 7, 5], values: separatedValues(count: 210, gap: 0.02, seed: 4))
        expectSmall(try checker.check(layer: Conv2d(2, 3, kernel: 2, stride: 2, padding: 1, bias: false), input: x), "conv no bias")
    }

    @Test func linear() throws {
        let x = HostTensor(shape: [3, 7], values: separatedValues(count: 21, seed: 5))
        expectSmall(try checker.check(layer: Linear(7, 5), input: x), "linear")
        let x1 = HostTensor(shape: [1, 7], values: separatedValues(count: 7, seed: 6))
        expectSmall(try checker.check(layer: Linear(7, 2, bias: false), input: x1), "linear N=1 no bias")
    }

    @Test func batchNorm2dTraining() throws {
        let x = HostTensor(shape: [3, 4, 5, 3], values: separatedValues(count: 180, gap: 0.05, seed: 7))
        expectSmall(try checker.check(layer: BatchNorm2d(4), input: x), "bn2d")
    }

    @Test func batchNorm1dTraining() throws {
        let x = HostTensor(shape: [5, 6], values: separatedValues(count: 30, gap: 0.1, seed: 8))
        expectSmall(try checker.check(layer: BatchNorm1d(6), input: x), "bn1d")
    }

    @Test func pooling() throws {
        let x = HostTensor(shape: [3, 2, 7, 5], values: separatedValues(count: 210, gap: 0.05, seed: 9))
        expectSmall(try checker.check(layer: MaxPool2d(2), input: x), "maxpool 2")
        expectSmall(try checker.check(layer: MaxPool2d(3, stride: 2, padding: 1), input: x), "maxpool 3/2/1")
        expectSmall(try checker.check(layer: AvgPool2d(3, stride: 2, padding: 1), input: x), "avgpool 3/2/1")
        expectSmall(try checker.check(layer: GlobalMaxPool(), input: x), "global max")
        expectSmall(try checker.check(layer: GlobalAvgPool(), input: x), "global avg")
    }

    @Test func reluAndDropoutAndFlatten() throws {
        let x = HostTensor(shape: [3, 2, 3, 5], values: separatedValues(count: 90, gap: 0.05, seed: 10))
        expectSmall(try checker.check(layer: ReLU(), input: x), "relu")
        expectSmall(try checker.check(layer: Dropout(0.3), input: x), "dropout")
        expectSmall(try checker.check(layer: Flatten(), input: x), "flatten")
    }

    /// A deep composite without kinks (no ReLU / max pool), so per-coordinate finite differences stay
    /// exact enough for 1e-3: checks the wiring of Sequential, Flatten, reshapes and every layer's
    /// gradient hand-off. (With ReLUs, a few of the many units always sit within ±h of their kink.)
    @Test func smoothSequential() throws {
        let net = Sequential(Conv2d(2, 3, kernel: 3, padding: 1), BatchNorm2d(3), AvgPool2d(2),
                             Conv2d(3, 4, kernel: 2, stride: 1), Flatten(), Linear(4 * 2 * 1, 5), Linear(5, 3))
        let x = HostTensor(shape: [3, 2, 7, 5], values: separatedValues(count: 210, gap: 0.02, seed: 11))
        let r = try checker.check(layer: net, input: x, coordinates: 20)
        #expect(r.params.count == 10)
        // conv 0's bias feeds BatchNorm, so its gradient is zero in exact arithmetic: checked absolutely.
        var rest = r
        rest.params["0.bias"] = nil
        expectSmall(rest, "smooth sequential")
        let b = net.children[0].layer as! Conv2d
        #expect(try backend.floats(b.bias!.grad).allSatisfy { abs($0) < 1e-4 })
    }

    /// ReLU fusion (Conv/BN/Linear apply the ReLU themselves) and the fused blocks (BatchNorm-ReLU-
    /// Dropout-MaxPool with the conv bias gradient, Linear bias-ReLU-Dropout) must not change outputs
    /// or gradients: on the CPU the fused primitives compose the same ops, so bit for bit.
    @Test func fusedActivationsMatchUnfused() throws {
        func net() -> [any Layer] {
            [Conv2d(2, 3, kernel: 3, padding: 1), BatchNorm2d(3), ReLU(), Dropout(0.3), MaxPool2d(2),
             Conv2d(3, 4, kernel: 3, padding: 1), ReLU(), Flatten(), Linear(4 * 3 * 2, 5), ReLU(), Dropout(0.4), Linear(5, 3)]
        }
        let fused = Sequential(net())
        // Unfused: a pass-through wrapper hides each layer's type from the fusion pass.
        let unfused = Sequential(net().map { Opaque($0) })
        let x = HostTensor(shape: [3, 2, 7, 5], values: separatedValues(count: 210, gap: 0.02, seed: 11))
        var results: [[Float]] = []
        var bnFedBias: [Float] = []
        for s in [fused, unfused] {
            let b = LayerBuilder(backend: backend)
            _ = try s.build(b, input: [2, 7, 5])
            var rng = SeededRNG(seed: 4)
            for (_, p) in b.parameters {
                p.value = try backend.upload((0..<p.shape.count).map { _ in rng.uniform(-1, 1) }, shape: p.shape)
                p.grad = try backend.makeTensor(p.shape)
            }
            for (_, buf) in b.buffers { buf.value = try backend.makeTensor(buf.shape); try backend.fill(buf.value, value: buf.initial) }
            let y = try s.forward(try backend.upload(x), ForwardContext(training: true, seed: 17))
            let dx = try s.backward(try backend.upload((0..<y.count).map { _ in rng.uniform(-1, 1) }, shape: y.shape))!
            var all = try backend.floats(y) + backend.floats(dx)
            for (name, p) in b.parameters {
                // The first conv's bias feeds BatchNorm: its gradient is zero in exact arithmetic and
                // only rounding noise, summed from the BatchNorm's dx by the fused BatchNorm block and
                // from dy by the unfused convolution, in different orders. Checked to be tiny instead.
                if name == "0.bias" { bnFedBias += try backend.floats(p.grad); continue }
                all += try backend.floats(p.grad)
            }
            results.append(all)
        }
        #expect(fused.children.compactMap { $0.layer as? ReLU }.allSatisfy { $0.fused })
        #expect(results[0] == results[1], "fused and unfused networks differ")
        #expect(bnFedBias.count == 6 && bnFedBias.allSatisfy { abs($0) < 1e-5 }, "\(bnFedBias)")
    }

    @Test func residualBlock() throws {
        let body = Sequential(Conv2d(3, 3, kernel: 3, padding: 1, bias: false), BatchNorm2d(3),
                              Conv2d(3, 3, kernel: 3, padding: 1, bias: false))
        let x = HostTensor(shape: [2, 3, 5, 4], values: separatedValues(count: 120, gap: 0.02, seed: 12))
        expectSmall(try checker.check(layer: Residual(body), input: x, coordinates: 25), "residual identity")
        let body2 = Sequential(Conv2d(3, 4, kernel: 3, stride: 2, padding: 1, bias: false), BatchNorm2d(4))
        let sc = Sequential(Conv2d(3, 4, kernel: 1, stride: 2, bias: false))
        expectSmall(try checker.check(layer: Residual(body2, shortcut: sc), input: x, coordinates: 25), "residual projection")
    }
}

/// Hides a layer's type (so Sequential does not fuse it) and forwards everything.
final class Opaque: Layer {
    let inner: any Layer
    init(_ inner: any Layer) { self.inner = inner }
    var needsInputGradient: Bool {
        get { inner.needsInputGradient }
        set { inner.needsInputGradient = newValue }
    }
    var summary: String { inner.summary }
    func build(_ b: LayerBuilder, input: Shape) throws -> Shape { try inner.build(b, input: input) }
    func forward(_ x: Tensor, _ ctx: ForwardContext) throws -> Tensor { try inner.forward(x, ctx) }
    func backward(_ dy: Tensor) throws -> Tensor? { try inner.backward(dy) }
}
