import Foundation
import Testing
import SwiftCNN

/// Checkpoints move between SwiftCNN and PyTorch in both directions (the guide's model classes,
/// safetensors, PyTorch state-dict names): the same weights give the same predictions.
/// Skipped when PyTorch (with safetensors) or the CIFAR-10 data is absent.
@Suite(.enabled(if: TestData.torchPython != nil && TestData.cifarDirectory != nil, "needs PyTorch + safetensors and CIFAR-10"))
struct PyTorchInteropTests {
    let script = TestData.packageRoot.appendingPathComponent("scripts/pytorch_interop.py").path
    let limit = 1000

    func swiftPredictions(model: Model) throws -> (accuracy: Double, predictions: [Int]) {
        let test = try CIFAR10.load(.test, directory: TestData.cifarDirectory!, limit: limit)
        let r = try evaluate(model: model, dataset: test, normalization: .half, batchSize: 250)
        return (r.accuracy, r.predictions)
    }

    func pytorchPredictions(weights: URL, model: String, dir: URL) throws -> (accuracy: Double, predictions: [Int]) {
        let out = dir.appendingPathComponent("pt-\(model).json")
        let r = try TestData.run(TestData.torchPython!, [script, "eval", "--model", model, "--data", TestData.cifarDirectory!,
                                                         "--limit", String(limit), "--weights", weights.path, "--out", out.path])
        #expect(r.status == 0, "pytorch eval failed:\n\(r.output)")
        let obj = try JSONSerialization.jsonObject(with: Data(contentsOf: out)) as! [String: Any]
        return (obj["accuracy"] as! Double, obj["predictions"] as! [Int])
    }

    /// Trains `name` briefly here so BatchNorm statistics and weights are far from initialisation.
    func trainedSwiftModel(_ name: String) throws -> Model {
        let backend = CPUBackend()
        let model = try ModelZoo.make(name, backend: backend, seed: 7)
        let data = try CIFAR10.load(.train, directory: TestData.cifarDirectory!, limit: 640)
        let loader = try BatchLoader(dataset: data, batchSize: 64, augmentation: .none, seed: 1, workers: 1)
        let runner = try StepRunner(model: model, optimizer: try Adam(model: model, hyper: AdamHyper(learningRate: 1e-3)))
        var step: UInt64 = 0
        for b in loader.batches(epoch: 0) {
            try runner.trainStep(images: b.images, labels: b.labels, seed: step)
            step += 1
        }
        return model
    }

    @Test(arguments: ["optimized", "cnn"])
    func swiftCheckpointLoadsInPyTorch(model name: String) throws {
        let dir = TestData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try trainedSwiftModel(name)
        let file = dir.appendingPathComponent("\(name).safetensors")
        try SafeTensors.write(try model.stateDict(), metadata: ["format": "pt"], to: file)
        let ours = try swiftPredictions(model: model)
        let theirs = try pytorchPredictions(weights: file, model: name, dir: dir)
        let agree = zip(ours.predictions, theirs.predictions).filter { $0 == $1 }.count
        // Float rounding differs between the two engines; a handful of near-tie images may flip.
        #expect(agree >= limit - 3, "\(name): predictions agree on \(agree)/\(limit)")
        #expect(abs(ours.accuracy - theirs.accuracy) <= 0.003, "\(name): accuracy here \(ours.accuracy), in PyTorch \(theirs.accuracy)")
        #expect(ours.accuracy > 0.15, "the briefly trained model should beat chance (10%)")
    }

    @Test func pytorchCheckpointEvaluatesHere() throws {
        let dir = TestData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("pt.safetensors")
        let r = try TestData.run(TestData.torchPython!, [script, "train", "--model", "optimized", "--data", TestData.cifarDirectory!,
                                                         "--limit", "2000", "--steps", "60", "--out", file.path])
        #expect(r.status == 0, "pytorch train failed:\n\(r.output)")
        let theirs = try pytorchPredictions(weights: file, model: "optimized", dir: dir)
        // A PyTorch state_dict has no SwiftCNN metadata: the model name is given, as `cnn eval --model` does.
        let loaded = try Checkpoint.loadModel(path: file.path, backend: CPUBackend(), modelName: "optimized")
        let ours = try swiftPredictions(model: loaded.model)
        let agree = zip(ours.predictions, theirs.predictions).filter { $0 == $1 }.count
        #expect(agree >= limit - 3, "predictions agree on \(agree)/\(limit)")
        #expect(abs(ours.accuracy - theirs.accuracy) <= 0.003, "accuracy here \(ours.accuracy), in PyTorch \(theirs.accuracy)")
    }
}
