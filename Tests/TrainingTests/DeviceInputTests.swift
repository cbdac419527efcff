import Foundation
@testable import OpenCLBackend
import SwiftCNN
import Testing
@testable import Training

/// Batches built on the OpenCL device (Kernels/augment.cl, `DeviceFeed`) against the host pipeline
/// (`BatchLoader.makeBatch`): the same seed gives the same batch — bit for bit, except bilinear
/// rotation (at most 1 ulp per pixel) — with the dataset resident and with staged uint8 images.
@Suite(.enabled(if: OpenCLDiscovery.inventory().devices.contains { _ in true }, "needs an OpenCL device (PoCL in CI)"), .serialized)
struct DeviceInputTests {
    /// Random bytes, a non-square image (catches swapped axes), 3 channels, 5 classes.
    static func dataset(count: Int = 23, height: Int = 12, width: Int = 10) throws -> ImageDataset {
        var rng = SeededRNG(seed: 77)
        let pixels = (0..<(count * 3 * height * width)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let labels = (0..<count).map { _ in Int32(rng.nextInt(5)) }
        return try ImageDataset(pixels: pixels, labels: labels, classNames: ["a", "b", "c", "d", "e"],
                                channels: 3, height: height, width: width, source: "random")
    }

    static let configs: [(name: String, config: AugmentationConfig)] = [
        ("normalise only", .none),
        ("crop (zero) + flip", AugmentationConfig(horizontalFlip: 0.5, cropPadding: 3, normalization: .cifar10)),
        ("crop (reflect) + flip", AugmentationConfig(horizontalFlip: 0.5, cropPadding: 4, paddingMode: .reflect)),
        ("cutout", AugmentationConfig(cropPadding: 2, normalization: .cifar10, cutoutSize: 5, cutoutProbability: 0.7)),
        ("nearest rotation", AugmentationConfig(horizontalFlip: 0.5, rotationDegrees: 25, cropPadding: 2)),
        ("nearest rotation, reflect, cutout", AugmentationConfig(rotationDegrees: 40, cropPadding: 3, paddingMode: .reflect,
                                                                 normalization: .cifar10, cutoutSize: 4)),
        ("bilinear rotation", AugmentationConfig(horizontalFlip: 0.5, rotationDegrees: 30, rotationInterpolation: .bilinear,
                                                 cropPadding: 2, normalization: .cifar10)),
        ("MixUp", AugmentationConfig(horizontalFlip: 0.5, cropPadding: 2, cutoutSize: 4, mixupAlpha: 0.4)),
        ("CutMix", AugmentationConfig(rotationDegrees: 10, cropPadding: 2, cutmixAlpha: 1)),
        ("MixUp or CutMix, half the batches", AugmentationConfig(horizontalFlip: 0.5, rotationDegrees: 15, cropPadding: 1,
                                                                 mixupAlpha: 0.3, cutmixAlpha: 1, mixProbability: 0.5)),
    ]

    /// Distance in units in the last place between two floats of the same sign (or both zero).
    static func ulps(_ a: Float, _ b: Float) -> UInt32 {
        if a == b { return 0 }
        guard a.sign == b.sign else { return .max }
        let x = a.bitPattern, y = b.bitPattern
        return x > y ? x - y : y - x
    }

    @Test(arguments: [true, false])
    func deviceBatchesEqualTheHostPipeline(resident: Bool) throws {
        let data = try Self.dataset()
        let ocl = try OpenCLBackend(selector: "opencl")
        for (name, config) in Self.configs {
            // 19 of the 23 images in batches of 6: the last batch is partial.
            let loader = try BatchLoader(dataset: data, indices: Array(2..<21), batchSize: 6, augmentation: config, seed: 11, workers: 0)
            let input = try ocl.makeBatchInput(spec: loader.deviceInputSpec, maxBatch: 6, classes: data.numClasses)
            if resident { try input.makeResident(data.pixels, images: data.count) }
            #expect(input.isResident == resident)
            let feed = DeviceFeed(input: input, dataset: data)
            let bilinear = config.rotationDegrees > 0 && config.rotationInterpolation == .bilinear
            var worst: UInt32 = 0, rotated = 0, mixed = 0
            for epoch in 0..<2 {
                let order = loader.order(epoch: epoch)
                for b in 0..<loader.batchesPerEpoch {
                    let host = loader.makeBatch(epoch: epoch, index: b)
                    let dev = try feed.prepare(loader, epoch: epoch, index: b, order: order)
                    let recipe = loader.recipe(epoch: epoch, index: b, order: order)
                    #expect(recipe.rows == host.indices && recipe.mix == host.mix, "\(name) epoch \(epoch) batch \(b): recipe")
                    rotated += recipe.draws.filter { $0.angle != 0 }.count
                    if host.mix != nil { mixed += 1 }
                    #expect(dev.count == host.count && dev.x.shape == host.images.shape)
                    let got = try ocl.floats(dev.x), want = host.images.values
                    #expect(try ocl.ints(dev.y) == host.labels, "\(name): labels")
                    #expect((try dev.soft.map { try ocl.floats($0) }) == host.softTargets?.values, "\(name): soft targets")
                    for i in want.indices {
                        let d = Self.ulps(got[i], want[i])
                        worst = max(worst, d)
                        if d > (bilinear ? 1 : 0) {
                            Issue.record("\(name), resident \(resident), epoch \(epoch) batch \(b), element \(i): device \(got[i]), host \(want[i])")
                            return
                        }
                    }
                }
            }
            if config.rotationDegrees > 0 { #expect(rotated > 0, "\(name): some rotated samples") }
            if config.usesMixing { #expect(mixed > 0, "\(name): some mixed batches") }
            if !bilinear { #expect(worst == 0) }
        }
        #expect(ocl.launchedKernels.contains("augmentBatch"))
    }

    /// A training step fed from the device: no blocking call, one upload of at most the uint8
    /// batch plus its parameters (staged) or of the parameters only (resident), nothing read back.
    @Test(arguments: [true, false])
    func deviceFedStepUploadsOnlyTheUInt8BatchAndParameters(resident: Bool) throws {
        let data = try Self.dataset(count: 40, height: 8, width: 8)
        let ocl = try OpenCLBackend(selector: "opencl")
        let net = Sequential([Conv2d(3, 4, kernel: 3, padding: 1), ReLU(), MaxPool2d(2), Flatten(), Linear(4 * 4 * 4, 5)])
        let model = try Model(name: "tiny", network: net, inputShape: [3, 8, 8], backend: ocl, seed: 1)
        let runner = try StepRunner(model: model, optimizer: try Adam(model: model, hyper: AdamHyper(learningRate: 1e-3)))
        let config = AugmentationConfig(horizontalFlip: 0.5, rotationDegrees: 15, cropPadding: 2, cutoutSize: 3, mixupAlpha: 0.2)
        let n = 8
        let loader = try BatchLoader(dataset: data, batchSize: n, dropLast: true, augmentation: config, seed: 3, workers: 0)
        let feed = try #require(try DeviceFeed.make(backend: ocl, loader: loader, classes: 5, resident: resident, log: { _ in }))
        #expect(feed.input.isResident == resident)
        let order = loader.order(epoch: 0)
        func step(_ b: Int) throws {
            let t = try feed.prepare(loader, epoch: 0, index: b, order: order)
            try runner.trainStep(x: t.x, y: t.y, soft: t.soft, count: t.count, seed: UInt64(b))
        }
        try step(0)   // warm-up: kernels built, buffers allocated
        let paramBytes = 4 * (n + n * 5 + n * DeviceInputLayout.intsPerRow + n * DeviceInputLayout.floatsPerRow)
        for b in 1..<loader.batchesPerEpoch {
            try ocl.synchronize()   // the previous steps are done: this one never waits for its staging buffer
            let before = DeviceWorkCounts.snapshot(ocl), transfers = ocl.transferCounters
            try step(b)
            let c = DeviceWorkCounts.snapshot(ocl).perStep(since: before, steps: 1)
            #expect(c.blockingCalls == 0, "step \(b): \(c.summary)")
            #expect(c.deviceToHostBytes == 0)
            #expect(ocl.transferCounters.uploads - transfers.uploads == 1, "one upload per step")
            #expect(ocl.transferCounters.uploadBytes - transfers.uploadBytes == paramBytes + (resident ? 0 : n * 3 * 64),
                    "parameters (\(paramBytes) bytes) + uint8 images (staged only)")
        }
        // The progress bar's read: never waits; a completed read of this epoch's totals comes back.
        let blocking = ocl.commandCounters.blockingCalls
        var peeked: (loss: Double, accuracy: Double)?
        for _ in 0..<200 where peeked == nil {
            peeked = try runner.peekTotalsWithoutWaiting()
            if peeked == nil { usleep(5000) }
        }
        #expect(ocl.commandCounters.blockingCalls == blocking, "non-blocking totals reads")
        let exact = try runner.peekTotals()
        let p = try #require(peeked)
        #expect(p.loss.isFinite && p.loss > 0 && p.accuracy >= 0 && p.accuracy <= 1)
        // Read after the last step was enqueued, so it holds every step's totals.
        #expect(abs(p.loss - exact.loss) <= 1e-6 * exact.loss, "peeked \(p) vs \(exact)")
    }

    @Test func dataOnDeviceNeedsAnOpenCLDevice() throws {
        let data = try Self.dataset()
        let loader = try BatchLoader(dataset: data, batchSize: 4, seed: 1, workers: 0)
        #expect(try DeviceFeed.make(backend: CPUBackend(), loader: loader, classes: 5, resident: nil, log: { _ in }) == nil)
        #expect(throws: CNNError.self) { try DeviceFeed.make(backend: CPUBackend(), loader: loader, classes: 5, resident: true, log: { _ in }) }
    }
}

/// An interrupted-and-resumed `--data-on-device` run equals the uninterrupted one (as
/// `TrainerTests.resumeIsExact` for the host pipeline), and staged uint8 batches train exactly as
/// the resident dataset does.
@Suite(.enabled(if: TestData.cifarDirectory != nil && OpenCLDiscovery.inventory().devices.contains { _ in true },
                "needs CIFAR-10 and an OpenCL device"), .serialized)
struct DeviceInputTrainingTests {
    func config() -> TrainConfig {
        var c = TrainConfig()
        c.model = .lite
        c.data = TestData.cifarDirectory
        c.limit = 400
        c.epochs = 3
        c.batchSize = 32
        c.workers = 1
        c.evaluateTest = false
        c.augmentation.cutoutSize = 8
        c.augmentation.cropPadding = 2
        c.augmentation.mixupAlpha = 0.2
        c.schedule.kind = .cosine
        return c
    }

    func trainer(_ c: TrainConfig, _ data: TrainingData, dir: URL?, resident: Bool) throws -> Trainer {
        let t = try Trainer(config: c, data: data, backend: try OpenCLBackend(selector: "opencl"), runDirectory: dir)
        t.showProgress = false
        t.log = { _ in }
        t.dataOnDevice = resident
        return t
    }

    @Test func resumeIsExactWithDataOnDevice() throws {
        let c = config()
        let data = try TrainingData.load(c, log: { _ in })
        let a = TestData.temporaryDirectory(), b = TestData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: a); try? FileManager.default.removeItem(at: b) }
        let full = try trainer(c, data, dir: a, resident: true)
        let ra = try full.run()
        #expect(full.feed?.input.isResident == true)

        // Interrupted inside epoch 2 (a stop request after its third step), then resumed.
        let first = try trainer(c, data, dir: b, resident: true)
        let flag = StopFlag()
        first.stopFlag = flag
        let stopAt = first.trainLoader.batchesPerEpoch + 3
        first.afterStep = { if $0 == stopAt { flag.request() } }
        let stopped = try first.run()
        #expect(stopped.interrupted)
        let second = try trainer(c, data, dir: b, resident: true)
        try second.resume(from: b)
        let rb = try second.run()
        #expect(rb.history.count == 3)
        try expectSameRun(full, ra, second, rb)

        // Staged uint8 batches (--no-data-on-device) build the same batches: the same run.
        let staged = try trainer(c, data, dir: nil, resident: false)
        let rs = try staged.run()
        #expect(staged.feed?.input.isResident == false)
        try expectSameRun(full, ra, staged, rs)
    }
}
