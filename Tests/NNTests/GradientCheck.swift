import CNNCore
import CPUBackend
@testable import NN

/// Finite-difference checking of a layer or model through the public Layer API on the CPU backend.
/// L(x, θ) = Σ y ⊙ r for a fixed random r; backward(dy = r) must give ∂L/∂x and ∂L/∂θ.
/// Central differences in Float with step h; compared norm-wise: ‖g_fd − g‖ / ‖g_fd‖ < 1e-3
/// (Float forward passes limit the attainable accuracy to ~1e-4 here; inputs are kept away
/// from the kinks of ReLU and max pooling by more than h so the function is smooth around x).
struct GradientChecker {
    let backend: any Backend
    var h: Float = 1e-2

    /// Returns the relative errors of dx and of each parameter gradient (name -> error).
    func check(layer: any Layer, input: HostTensor, seed: UInt64 = 1, training: Bool = true,
               coordinates: Int = 40) throws -> (dx: Double, params: [String: Double]) {
        let builder = LayerBuilder(backend: backend)
        _ = try layer.build(builder, input: Shape(Array(input.shape.dims.dropFirst())))
        var rng = SeededRNG(seed: seed)
        for (_, p) in builder.parameters {
            let vals = (0..<p.shape.count).map { _ in rng.uniform(-1, 1) }
            p.value = try backend.upload(vals, shape: p.shape)
            p.grad = try backend.makeTensor(p.shape)
        }
        for (_, b) in builder.buffers {
            b.value = try backend.makeTensor(b.shape)
            try backend.fill(b.value, value: b.initial)
        }
        let x = try backend.upload(input)
        let ctx = ForwardContext(training: training, seed: 99)
        let y0 = try layer.forward(x, ctx)
        let r = (0..<y0.count).map { _ in rng.uniform(-1, 1) }
        let dyT = try backend.upload(r, shape: y0.shape)

        func loss() throws -> Double {
            let y = try layer.forward(x, ctx)
            let v = try backend.floats(y)
            return zip(v, r).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        _ = try layer.forward(x, ctx)
        let dx = try layer.backward(dyT)
        let analyticDx = try dx.map { try backend.floats($0) }
        var analyticP: [String: [Float]] = [:]
        for (n, p) in builder.parameters { analyticP[n] = try backend.floats(p.grad) }

        func numeric(_ t: Tensor, indices: [Int]) throws -> [Double] {
            var vals = try backend.floats(t)
            var out: [Double] = []
            for i in indices {
                let orig = vals[i]
                vals[i] = orig + h; try backend.write(vals, to: t)
                let lp = try loss()
                vals[i] = orig - h; try backend.write(vals, to: t)
                let lm = try loss()
                vals[i] = orig; try backend.write(vals, to: t)
                out.append((lp - lm) / (2 * Double(h)))
            }
            return out
        }
        func pick(_ n: Int) -> [Int] {
            n <= coordinates ? Array(0..<n) : (0..<coordinates).map { _ in rng.nextInt(n) }
        }
        func relErr(_ a: [Double], _ b: [Double]) -> Double {
            let num = zip(a, b).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
            let den = max(a.map { $0 * $0 }.reduce(0, +).squareRoot(), 1e-12)
            return num / den
        }
        var dxErr = 0.0
        if let analyticDx {
            let idx = pick(x.count)
            dxErr = relErr(try numeric(x, indices: idx), idx.map { Double(analyticDx[$0]) })
        }
        var pe: [String: Double] = [:]
        for (n, p) in builder.parameters {
            let idx = pick(p.shape.count)
            pe[n] = relErr(try numeric(p.value, indices: idx), idx.map { Double(analyticP[n]![$0]) })
        }
        return (dxErr, pe)
    }
}

/// Values spaced at least `gap` apart in random order, so max pooling and ReLU have no kink within ±h.
func separatedValues(count: Int, gap: Float = 0.05, seed: UInt64) -> [Float] {
    var rng = SeededRNG(seed: seed)
    var v = (0..<count).map { Float($0) - Float(count) / 2 + 0.5 }.map { $0 * gap }
    v.shuffle(using: &rng)
    return v
}
