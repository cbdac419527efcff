import Foundation
import Testing
import SwiftCNN

/// End-to-end training on real CIFAR-10 images with the CPU backend (skipped without the data).
@Suite(.enabled(if: TestData.cifarDirectory != nil, "needs CIFAR-10"), .serialized)
struct TrainerTests {
    func config(model: ModelKind, limit: Int, epochs: Int) -> TrainConfig {
        var c = TrainConfig()
        c.model = model
        c.data = TestData.cifarDirectory
        c.limit = limit
        c.epochs = epochs
        c.testLimit = 500
        c.workers = 2
        return c
    }

    /// Issue 2's smoke test: `optimized` on the first 2,000 training images (the guide's recipe and
    /// augmentation), validated on 500 other images. The bar: the training loss falls every epoch
    /// after the first and validation accuracy reaches 30% — three times chance (10%); this setup
    /// reaches about 40% (PyTorch with the same recipe and data: similar).
    @Test func smokeTrainingLearns() throws {
        var c = config(model: .optimized, limit: 2500, epochs: 4)
        c.evaluateTest = false
        let data = try TrainingData.load(c, log: { _ in })
        #expect(data.split.train.count == 2000 && data.split.validation.count == 500)
        let trainer = try Trainer(config: c, data: data, backend: CPUBackend(), runDirectory: nil)
        trainer.showProgress = false
        trainer.log = { _ in }
        let r = try trainer.run()
        let losses = r.history.map(\.trainLoss)
        #expect(losses.last! < losses.first!, "training loss \(losses)")
        #expect(r.bestValidationAccuracy >= 0.30, "validation accuracy \(r.history.map(\.validationAccuracy))")
    }

    /// `--resume` continues exactly: an interrupted run resumed from its epoch-2 checkpoint gives the
    /// same epoch-3 and 4 metrics, bit for bit, and the same final weights as the uninterrupted run.
    @Test func resumeIsExact() throws {
        var c = config(model: .lite, limit: 1000, epochs: 4)
        c.augmentation.cutoutSize = 8        // exercise every random stream: augmentation...
        c.augmentation.mixupAlpha = 0.2      // ...MixUp soft targets
        c.schedule.kind = .cosine            // and a step-level schedule
        c.evaluateTest = false
        let data = try TrainingData.load(c, log: { _ in })
        let a = TestData.temporaryDirectory(), b = TestData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: a); try? FileManager.default.removeItem(at: b) }

        let full = try Trainer(config: c, data: data, backend: CPUBackend(), runDirectory: a)
        full.showProgress = false; full.log = { _ in }
        let ra = try full.run()

        let first = try Trainer(config: c, data: data, backend: CPUBackend(), runDirectory: b)
        first.showProgress = false; first.log = { _ in }; first.stopAfterEpoch = 2
        _ = try first.run()
        let second = try Trainer(config: c, data: data, backend: CPUBackend(), runDirectory: b)
        second.showProgress = false; second.log = { _ in }
        try second.resume(from: b)
        let rb = try second.run()

        #expect(rb.history.count == 4)
        try expectSameRun(full, ra, second, rb)
        // The metrics log of the resumed run holds each epoch once.
        let lines = try String(contentsOf: b.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 4)
        // So does its TensorBoard event file: one file, one scalar event per epoch (and the images and
        // histograms of the epochs the resumed process ran, after one sample grid).
        let events = try FileManager.default.contentsOfDirectory(atPath: b.path).filter { $0.hasPrefix("events.out.tfevents.") }
        #expect(events.count == 1)
        if let e = events.first {
            let tags = try TensorBoardWriter.readRecords(b.appendingPathComponent(e)).map(TensorBoardImageTests.tags)
            #expect(tags.filter { $0.contains("Loss/train") }.count == 4)
            #expect(tags.filter { $0.contains("Samples/raw") }.count == 1)
            #expect(tags.filter { $0.contains("Conv1_Weights") }.count == 2)
        }
    }

    @Test func tornCheckpointSetIsDetected() throws {
        var c = config(model: .lite, limit: 300, epochs: 2)
        c.evaluateTest = false
        let data = try TrainingData.load(c, log: { _ in })
        let dir = TestData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let t = try Trainer(config: c, data: data, backend: CPUBackend(), runDirectory: dir)
        t.showProgress = false; t.log = { _ in }; t.stopAfterEpoch = 1
        _ = try t.run()
        // Simulate a crash between writing the model of epoch 2 and its state: the model file's epoch changes.
        let (entries, meta) = try SafeTensors.read(dir.appendingPathComponent("latest.safetensors"))
        var m2 = meta
        m2["swiftcnn_epoch"] = "2"
        try SafeTensors.write(entries, metadata: m2, to: dir.appendingPathComponent("latest.safetensors"))
        let r = try Trainer(config: c, data: data, backend: CPUBackend(), runDirectory: dir)
        #expect(throws: CNNError.self) { try r.resume(from: dir) }
        do { try r.resume(from: dir) } catch { #expect("\(error)".contains("different epochs")) }
    }
}
