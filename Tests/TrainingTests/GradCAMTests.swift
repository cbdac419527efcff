import CNNCore
import CPUBackend
import Datasets
import NN
import Testing
@testable import Training

@Suite struct GradCAMTests {
    func image(seed: UInt64) -> HostTensor {
        var rng = SeededRNG(seed: seed)
        return HostTensor(shape: [1, 3, 32, 32], values: (0..<3072).map { _ in rng.uniform(-1, 1) })
    }

    /// ∂y_c/∂A from the layers' backward after an eval forward equals central differences of the
    /// head (the layers after the target) at sampled elements of A.
    @Test func featureGradientMatchesFiniteDifferences() throws {
        let be = CPUBackend(reference: true)
        let model = try ModelZoo.make("optimized", backend: be, seed: 3)
        let f = try Visualization.featureGradient(model: model, image: image(seed: 4), classIndex: 7)
        #expect(f.shape.dims == [1, 64, 8, 8] && f.classIndex == 7)
        let layers = Visualization.executionOrder(model.network)
        let head = Array(layers[(f.target + 1)...])
        let ctx = ForwardContext(training: false)
        func score(_ a: [Float]) throws -> Double {
            var h = try be.upload(a, shape: f.shape)
            for l in head { h = try l.forward(h, ctx) }
            return Double(try be.floats(h)[7])
        }
        #expect(abs(try score(f.features) - Double(f.logits[7])) < 1e-5)
        let eps: Float = 1e-2
        var rng = SeededRNG(seed: 9)
        for _ in 0..<12 {
            let i = rng.nextInt(f.features.count)
            var plus = f.features, minus = f.features
            plus[i] += eps; minus[i] -= eps
            let numeric = (try score(plus) - score(minus)) / (2 * Double(eps))
            // The head is piecewise linear (Linear, ReLU, dropout off): a kink inside ±eps is the
            // only source of disagreement, and is rare at these sizes.
            #expect(abs(numeric - Double(f.gradient[i])) <= 2e-3 + 1e-2 * abs(numeric), "element \(i): \(numeric) vs \(f.gradient[i])")
        }
    }

    @Test func mapIsScaledAndOverlayHasTheRightSize() throws {
        let model = try ModelZoo.make("optimized", backend: CPUBackend(), seed: 3)
        let cam = try Visualization.gradCAM(model: model, image: image(seed: 5))
        #expect(cam.height == 8 && cam.width == 8 && cam.map.count == 64)
        #expect(cam.map.allSatisfy { $0 >= 0 && $0 <= 1 })
        #expect(cam.map.max() == 1 || cam.map.allSatisfy { $0 == 0 })
        #expect(cam.classIndex == cam.logits.indices.max { cam.logits[$0] < cam.logits[$1] })
        let img = DecodedImage(width: 32, height: 32, channels: 3, pixels: [UInt8](repeating: 100, count: 3072))
        let o = Visualization.overlay(map: cam.map, mapHeight: 8, mapWidth: 8, on: img, scale: 2)
        #expect(o.width == 64 && o.height == 64 && o.channels == 3)
    }

    @Test func batchNormInTheHeadIsRefused() throws {
        let net = Sequential(Conv2d(3, 4, kernel: 3, padding: 1), ReLU(), GlobalAvgPool(), BatchNorm1d(4), Linear(4, 10))
        let model = try Model(name: "bn-head", network: net, inputShape: [3, 32, 32], backend: CPUBackend(), seed: 1)
        #expect(throws: CNNError.self) { _ = try Visualization.gradCAM(model: model, image: image(seed: 6)) }
    }
}
