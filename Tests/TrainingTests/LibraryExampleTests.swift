import Foundation
import Testing
import SwiftCNN

/// The README's "use it as a library" example, kept compiling and working here.
@Suite struct LibraryExampleTests {
    @Test func customModelAndLoopInAFewLines() throws {
        // --- README example start ---
        let backend = try makeBackend(.auto).backend           // GPU if there is one, else the CPU
        let net = Sequential(
            Conv2d(3, 16, kernel: 3, padding: 1), BatchNorm2d(16), ReLU(), MaxPool2d(2),
            Conv2d(16, 32, kernel: 3, padding: 1), BatchNorm2d(32), ReLU(), GlobalAvgPool(),
            Linear(32, 10))
        let model = try Model(name: "tiny", network: net, inputShape: [3, 16, 16], backend: backend, seed: 1)
        let runner = try StepRunner(model: model, optimizer: try Adam(model: model, hyper: AdamHyper(learningRate: 3e-3)))

        var rng = SeededRNG(seed: 2)                           // stand-in data: two noisy "classes"
        func batch() -> (HostTensor, [Int32]) {
            let labels = (0..<16).map { _ in Int32(rng.nextInt(2)) }
            let x = HostTensor(shape: [16, 3, 16, 16]) { i in Float(labels[i / 768]) + rng.uniform(-1, 1) }
            return (x, labels)
        }
        for step in 0..<30 {
            let (x, y) = batch()
            try runner.trainStep(images: x, labels: y, seed: UInt64(step))
        }
        let (x, y) = batch()
        try runner.evalStep(images: x, labels: y)
        let result = try runner.takeTotals()
        // --- README example end ---
        #expect(result.accuracy > 0.9, "the two classes are separable: accuracy \(result.accuracy)")
    }
}
