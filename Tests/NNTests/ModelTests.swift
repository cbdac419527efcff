import Testing
import Foundation
import CNNCore
import CPUBackend
@testable import NN

@Suite struct ModelTests {
    let backend = CPUBackend()

    @Test func optimizedStateDictNamesMatchPyTorch() throws {
        let m = try ModelZoo.make("optimized", backend: backend, seed: 1)
        // PyTorch: list(OptimizedCNN().state_dict().keys()) for the guide's class.
        let expected = [
            "conv1.0.weight", "conv1.0.bias", "conv1.1.weight", "conv1.1.bias", "conv1.1.running_mean",
            "conv1.1.running_var", "conv1.1.num_batches_tracked",
            "conv2.0.weight", "conv2.0.bias", "conv2.1.weight", "conv2.1.bias", "conv2.1.running_mean",
            "conv2.1.running_var", "conv2.1.num_batches_tracked",
            "fc.0.weight", "fc.0.bias", "fc.3.weight", "fc.3.bias",
        ]
        #expect(m.stateDictNames == expected)
        #expect(m.parameterCount == 896 + 64 + 18496 + 128 + 2_097_664 + 5130)
        let cnn = try ModelZoo.make("cnn", backend: backend, seed: 1)
        #expect(cnn.stateDictNames == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                                       "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"])
        let sr = try ModelZoo.make("speedrun", backend: backend, seed: 1)
        #expect(sr.stateDictNames.first == "stem.0.weight")
        #expect(sr.stateDictNames.contains("layers.2.5.running_var"))
        #expect(sr.stateDictNames.last == "head.weight")
    }

    /// Every BatchNorm, residual shortcuts included, has its `num_batches_tracked` (PyTorch's strict
    /// loading needs it), and a model's own state dict loads back into it.
    @Test(arguments: ModelZoo.names)
    func everyBatchNormIsInTheStateDict(_ name: String) throws {
        let m = try ModelZoo.make(name, backend: backend, seed: 1)
        let names = Set(m.stateDictNames)
        for n in names where n.hasSuffix(".running_mean") {
            let module = n.dropLast(".running_mean".count)
            #expect(names.contains(module + ".num_batches_tracked"), "\(name): \(module) has no num_batches_tracked")
        }
        let fresh = try ModelZoo.make(name, backend: backend, seed: 2)
        try fresh.load(stateDict: try m.stateDict())
        #expect(try backend.floats(fresh.flatParameters) == backend.floats(m.flatParameters))
        if name == "resnet8" {
            #expect(names.contains("layer2.0.shortcut.1.num_batches_tracked"))
            #expect(names.contains("layer3.0.shortcut.1.num_batches_tracked"))
        }
    }

    @Test func missingTensorNamesTheModel() throws {
        let m = try ModelZoo.make("cnn", backend: backend, seed: 1)
        let dict = try m.stateDict().filter { $0.0 != "conv1.weight" }
        do {
            try m.load(stateDict: dict, source: "x.safetensors")
            Issue.record("a state dict without conv1.weight loaded")
        } catch {
            #expect("\(error)".contains("missing tensor 'conv1.weight'") && "\(error)".contains("for model 'cnn'"), "\(error)")
        }
    }

    @Test func extraTensorsAreRefusedByName() throws {
        let m = try ModelZoo.make("cnn", backend: backend, seed: 1)
        let dict = try m.stateDict() + [("conv9.weight", StateValue.float(HostTensor(zeros: [2])))]
        do {
            try m.load(stateDict: dict, source: "x.safetensors")
            Issue.record("a state dict with an extra tensor loaded")
        } catch {
            #expect("\(error)".contains("unexpected tensors for model 'cnn': conv9.weight") && "\(error)".contains("another model"),
                    "\(error)")
        }
    }

    @Test func unknownModelListsValidOnes() {
        #expect(throws: CNNError.self) { try ModelZoo.make("vgg", backend: backend, seed: 1) }
        do { _ = try ModelZoo.make("vgg", backend: backend, seed: 1) } catch {
            #expect("\(error)".contains("optimized") && "\(error)".contains("cnn"))
        }
    }

    @Test func defaultInitialisationBounds() throws {
        let m = try ModelZoo.make("cnn", backend: backend, seed: 5)
        for (name, p) in m.parameters {
            let v = try backend.floats(p.value)
            let fanIn = p.shape.rank == 4 ? p.shape[1] * p.shape[2] * p.shape[3] : (p.shape.rank == 2 ? p.shape[1] : nil)
            let bound: Float = 1 / Float(fanIn ?? m.parameters.first { $0.name == name.replacingOccurrences(of: "bias", with: "weight") }!
                .parameter.shape.dims.dropFirst().reduce(1, *)).squareRoot()
            #expect(v.allSatisfy { abs($0) <= bound }, "\(name) exceeds U(-\(bound), \(bound))")
            if v.count > 1000 {
                let std = (v.map { Double($0 * $0) }.reduce(0, +) / Double(v.count)).squareRoot()
                #expect(abs(std - Double(bound) / 3.0.squareRoot()) < 0.05 * Double(bound), "\(name) std \(std)")
            }
        }
    }

    @Test func seedDeterminesInitialisation() throws {
        let a = try ModelZoo.make("optimized", backend: backend, seed: 3)
        let b = try ModelZoo.make("optimized", backend: backend, seed: 3)
        let c = try ModelZoo.make("optimized", backend: backend, seed: 4)
        #expect(try backend.floats(a.flatParameters) == backend.floats(b.flatParameters))
        #expect(try backend.floats(a.flatParameters) != backend.floats(c.flatParameters))
    }

    @Test func stateDictRoundTripsThroughSafeTensors() throws {
        let a = try ModelZoo.make("optimized", backend: backend, seed: 3)
        a.batchNormLayers[0].layer.batchesTracked = 17
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("swiftcnn-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try SafeTensors.write(try a.stateDict(), metadata: ["format": "pt"], to: url)
        let b = try ModelZoo.make("optimized", backend: backend, seed: 4)
        let (entries, meta) = try SafeTensors.read(url)
        #expect(meta["format"] == "pt")
        try b.load(stateDict: entries, source: url.path)
        #expect(try backend.floats(a.flatParameters) == backend.floats(b.flatParameters))
        #expect(b.batchNormLayers[0].layer.batchesTracked == 17)
        // The header is plain JSON that other tools read: check its structure by hand.
        let data = try Data(contentsOf: url)
        let n = data.prefix(8).enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        #expect(n % 8 == 0)
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as! [String: Any]
        let w = header["conv1.0.weight"] as! [String: Any]
        #expect(w["dtype"] as? String == "F32")
        #expect(w["shape"] as? [Int] == [32, 3, 3, 3])
        let nbt = header["conv1.1.num_batches_tracked"] as! [String: Any]
        #expect(nbt["dtype"] as? String == "I64")
        #expect(nbt["shape"] as? [Int] == [])
    }

    @Test func loadingTheWrongModelNamesTheTensor() throws {
        let a = try ModelZoo.make("cnn", backend: backend, seed: 3)
        let b = try ModelZoo.make("optimized", backend: backend, seed: 3)
        #expect(throws: CNNError.self) { try b.load(stateDict: try a.stateDict()) }
        do { try b.load(stateDict: try a.stateDict()) } catch { #expect("\(error)".contains("conv1.0.weight")) }
    }

    @Test func truncatedSafeTensorsIsAClearError() throws {
        let a = try ModelZoo.make("cnn", backend: backend, seed: 3)
        let data = try SafeTensors.encode(try a.stateDict())
        #expect(throws: CNNError.self) { try SafeTensors.decode(data.prefix(data.count - 10), source: "x.safetensors") }
        #expect(throws: CNNError.self) { try SafeTensors.decode(Data([1, 2, 3]), source: "x.safetensors") }
    }

    @Test func trainingAndEvalModesDiffer() throws {
        let m = try ModelZoo.make("optimized", backend: backend, seed: 3)
        var rng = SeededRNG(seed: 1)
        let x = try backend.upload((0..<(4 * 3072)).map { _ in rng.uniform(-1, 1) }, shape: [4, 3, 32, 32])
        let e1 = try backend.floats(try m.forward(x, training: false))
        let e2 = try backend.floats(try m.forward(x, training: false))
        #expect(e1 == e2, "eval mode is deterministic")
        let t1 = try backend.floats(try m.forward(x, training: true, seed: 1))
        let t2 = try backend.floats(try m.forward(x, training: true, seed: 2))
        #expect(t1 != t2, "dropout masks differ between steps")
        #expect(m.batchNormLayers.allSatisfy { $0.layer.batchesTracked == 2 })
    }
}
