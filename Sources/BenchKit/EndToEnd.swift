import Foundation
import SwiftCNN

/// Deterministic inputs per case (the name seeds them).
struct HostInputs {
    var rng: SeededRNG
    init(_ name: String) {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        rng = SeededRNG(seed: h)
    }
    mutating func uniform(_ n: Int, _ lo: Float = -1, _ hi: Float = 1) -> [Float] {
        var out = [Float](repeating: 0, count: n)
        for i in 0..<n { out[i] = rng.uniform(lo, hi) }
        return out
    }
    mutating func labels(_ n: Int, classes: Int) -> [Int32] { (0..<n).map { _ in Int32(rng.nextInt(classes)) } }
}

/// Training steps, inference batches and a short epoch of real data.
enum EndToEnd {
    static func randomBatch(_ name: String, batch: Int, classes: Int = 10) -> (HostTensor, [Int32]) {
        var inp = HostInputs(name)
        return (HostTensor(shape: [batch, 3, 32, 32], values: inp.uniform(batch * 3 * 32 * 32)), inp.labels(batch, classes: classes))
    }

    /// A device feed of one random uint8 batch (no augmentation), or nil on a backend that takes
    /// host batches (the CPU).
    static func uint8Feed(_ name: String, batch: Int, on b: any Backend) throws -> (DeviceFeed, BatchLoader)? {
        var inp = HostInputs(name)
        let pixels = (0..<(batch * 3 * 32 * 32)).map { _ in UInt8(truncatingIfNeeded: inp.rng.next()) }
        let data = try ImageDataset(pixels: pixels, labels: inp.labels(batch, classes: 10), classNames: (0..<10).map { "c\($0)" },
                                    channels: 3, height: 32, width: 32, source: "random uint8 batch")
        let loader = try BatchLoader(dataset: data, batchSize: batch, shuffle: false, augmentation: .none, seed: 1, workers: 0)
        guard let feed = try DeviceFeed.make(backend: b, loader: loader, classes: 10, resident: false, log: { _ in }) else { return nil }
        return (feed, loader)
    }

    /// `dataPath`: where the epoch case finds CIFAR-10 (`--data`, else ./data or ../shared/data; never downloads).
    static func prepare(_ c: BenchCase, on b: any Backend, dataPath: String?, dataWorkers: Int?) throws -> PreparedCase {
        let p = PreparedCase()
        switch c.kind {
        case let .train(name, batch):
            let model = try ModelZoo.make(name, backend: b, seed: 1)
            let runner = try StepRunner(model: model, optimizer: try Adam(model: model, hyper: AdamHyper(learningRate: 1e-3, weightDecay: 1e-4)))
            let (images, labels) = randomBatch(c.name, batch: batch)
            var step: UInt64 = 0
            p.run = { step += 1; try runner.trainStep(images: images, labels: labels, seed: step) }
            if let (feed, loader) = try uint8Feed(c.name, batch: batch, on: b) {
                // An OpenCL device gets what `cnn train --no-data-on-device` sends per step: the
                // uint8 batch and its parameters (staged, non-blocking), normalised on the device.
                let order = loader.order(epoch: 0)
                p.run = {
                    step += 1
                    let t = try feed.prepare(loader, epoch: 0, index: 0, order: order)
                    try runner.trainStep(x: t.x, y: t.y, soft: t.soft, count: t.count, seed: step)
                }
            }
            p.finish = {
                let t = try runner.takeTotals()
                return ["meanLoss": t.loss, "parameters": Double(model.parameterCount)]
            }
        case let .infer(name, batch):
            let model = try ModelZoo.make(name, backend: b, seed: 1)
            let (images, _) = randomBatch(c.name, batch: batch)
            let x = try b.makeTensor(images.shape)
            let classes = try b.makeTensor([batch], dtype: .int32)
            var predicted = [Int32](repeating: 0, count: batch)
            p.run = {
                try b.write(images.values, to: x)
                let logits = try model.forward(x, training: false)
                try b.argmax(logits, into: classes)
                try predicted.withUnsafeMutableBufferPointer { try b.read(classes, into: $0) }
            }
            p.finish = { ["parameters": Double(model.parameterCount)] }
        case let .epoch(name, batch, images):
            let dir = try CIFAR10Locator(explicitPath: dataPath, allowDownload: false, log: nil).resolve()
            let data = try CIFAR10.load(.train, directory: dir, limit: images)
            let model = try ModelZoo.make(name, backend: b, seed: 1)
            let runner = try StepRunner(model: model, optimizer: try Adam(model: model, hyper: AdamHyper(learningRate: 1e-3, weightDecay: 1e-4)))
            let workers = dataWorkers ?? ProcessInfo.processInfo.activeProcessorCount
            let loader = try BatchLoader(dataset: data, batchSize: batch, shuffle: true, dropLast: true, augmentation: .guide,
                                         seed: 1, workers: workers)
            // OpenCL: batches built on the device (the training set resident when it fits), as `cnn train`.
            if let feed = try DeviceFeed.make(backend: b, loader: loader, classes: data.numClasses, resident: nil, log: { _ in }) {
                p.selfTimed = {
                    func epoch(_ e: Int, steps: Int) throws -> Int {
                        let order = loader.order(epoch: e)
                        var seen = 0
                        for i in 0..<steps {
                            let t = try feed.prepare(loader, epoch: e, index: i, order: order)
                            try runner.trainStep(x: t.x, y: t.y, soft: t.soft, count: t.count, seed: UInt64(i + 1))
                            seen += t.count
                        }
                        return seen
                    }
                    _ = try epoch(0, steps: min(2, loader.batchesPerEpoch))   // warm-up, as below
                    try b.synchronize()
                    _ = try runner.takeTotals()
                    let t0 = monotonicSeconds()
                    let seen = try epoch(1, steps: loader.batchesPerEpoch)
                    let totals = try runner.takeTotals()
                    let seconds = monotonicSeconds() - t0
                    return ([seconds], ["images": Double(seen), "meanLoss": totals.loss, "trainAccuracy": totals.accuracy,
                                        "dataOnDevice": feed.input.isResident ? 1 : 0])
                }
                return p
            }
            p.selfTimed = {
                // Warm-up: two steps of an untimed epoch (kernel builds, buffer allocation).
                var it = loader.batches(epoch: 0).makeIterator()
                for _ in 0..<2 {
                    guard let bt = it.next() else { break }
                    try runner.trainStep(images: bt.images, labels: bt.labels, seed: 1)
                    loader.recycle(bt)
                }
                try b.synchronize()
                _ = try runner.takeTotals()
                let t0 = monotonicSeconds()
                var seen = 0, step: UInt64 = 0
                for bt in loader.batches(epoch: 1) {
                    step += 1
                    try runner.trainStep(images: bt.images, labels: bt.labels, softTargets: bt.softTargets, seed: step)
                    seen += bt.count
                    loader.recycle(bt)
                }
                let totals = try runner.takeTotals()   // reads two scalars: waits for the device
                let seconds = monotonicSeconds() - t0
                return ([seconds], ["images": Double(seen), "meanLoss": totals.loss, "trainAccuracy": totals.accuracy,
                                    "dataWorkers": Double(workers)])
            }
        default:
            throw BenchError("\(c.name) is not an end-to-end case")
        }
        return p
    }

    /// The model gate: the same weights and batch on the device and on the CPU reference. Compares
    /// the eval-mode logits, the training-mode loss and every parameter gradient.
    ///
    /// Tolerance rtol 1e-3, atol 1e-3 x RMS: a whole network is a chain of float32 reductions whose
    /// rounding differs from the reference's float64 sums at every layer (the per-primitive gates
    /// hold each op to the DESIGN.md tolerances).
    static func modelGate(model name: String, device b: any Backend, batch: Int) -> GateRecord {
        let t0 = monotonicSeconds()
        let method = "model '\(name)' on the CPU reference, batch \(batch): eval logits, training loss and all gradients"
        do {
            let ref = CPUBackend(reference: true)
            let (images, labels) = randomBatch("gate-\(name)", batch: batch)
            func run(_ be: any Backend) throws -> (logits: [Float], loss: [Float], grads: [Float]) {
                let model = try ModelZoo.make(name, backend: be, seed: 7)
                let x = try be.upload(images)
                let y = try be.upload(labels, shape: [batch])
                let logits = try be.floats(try model.forward(x, training: false))
                let lossFn = try SoftmaxCrossEntropyLoss(backend: be)
                let out = try model.forward(x, training: true, seed: 5)
                let (losses, d) = try lossFn(out, .labels(y))
                try model.backward(d!)
                return (logits, try be.floats(losses), try be.floats(model.flatGradients))
            }
            let got = try run(b), want = try run(ref)
            let tol = Tolerance(rtol: 1e-3, atolRMS: 1e-3)
            var rec = GateRecord(passed: true, method: method, checks: 0, maxAbsError: 0, maxRelError: 0, seconds: 0, detail: nil)
            for (label, g, w) in [("logits", got.logits, want.logits), ("losses", got.loss, want.loss), ("gradients", got.grads, want.grads)] {
                let c = compare(g, w, tol)
                rec.checks += 1
                rec.maxAbsError = finite(max(rec.maxAbsError ?? 0, c.maxAbsError))
                rec.maxRelError = finite(max(rec.maxRelError ?? 0, c.maxRelError))
                if !c.passed && rec.passed {
                    rec.passed = false
                    rec.detail = "\(label): \(c)"
                }
            }
            rec.seconds = monotonicSeconds() - t0
            return rec
        } catch {
            return GateRecord(passed: false, method: method, checks: 0, maxAbsError: nil, maxRelError: nil,
                              seconds: monotonicSeconds() - t0, detail: "threw: \(error)")
        }
    }
}
