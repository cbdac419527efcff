import CNNCore
import Datasets
import Foundation
import NN
import Synchronization

/// The outcome of `Trainer.run()`.
public struct TrainResult: Sendable {
    public var history: [EpochMetrics]
    public var bestEpoch: Int
    public var bestValidationAccuracy: Double
    public var test: EvaluationResult?
    /// Test result of the best-validation checkpoint, when it is not the last epoch.
    public var testOfBest: EvaluationResult?
    public var stoppedEarly: Bool
    public var runDirectory: URL?
    /// The run stopped because `Trainer.stopFlag` was raised (SIGINT/SIGTERM in `cnn train`); the
    /// `latest` checkpoint holds the step it stopped at and `--resume` continues from there.
    public var interrupted = false
}

/// A request to stop training, raised from any thread (the CLI raises it from its signal sources)
/// and polled by the training loop after each step. The library installs no signal handlers.
public final class StopFlag: Sendable {
    private let raised = Atomic<Bool>(false)
    public init() {}
    public func request() { raised.store(true, ordering: .relaxed) }
    public var isRequested: Bool { raised.load(ordering: .relaxed) }
}

/// What the trainer does when the loss, a gradient or a weight stops being a finite number.
public enum NonFinitePolicy: String, Sendable, CaseIterable, Codable {
    /// Stop with the step, the first layer whose weights or gradients are not finite and the last
    /// good checkpoint (never overwritten with such weights).
    case stop
    /// Roll the weights, batch-norm statistics and optimizer state back to the last good snapshot
    /// (the start of the epoch: what the latest checkpoint holds), divide the learning rate by 10
    /// for the rest of the run and go on with the next batch; after `maxNonFiniteRecoveries` such
    /// rollbacks, stop as `stop` does.
    case skip
}

/// Trains a model on a device: the loop of the PyTorch CIFAR-10 guide, with checkpoints,
/// schedules, early stopping and a metrics log.
///
/// Reproducibility: the epoch's data order and augmentation are functions of (seed, epoch, index),
/// dropout masks of (seed, global step), and the schedule and optimizer state are saved, so a run
/// resumed from the checkpoint of epoch k continues exactly as the uninterrupted run.
public final class Trainer {
    public let config: TrainConfig
    public let data: TrainingData
    public let model: Model
    public let optimizer: Optimizer
    public let runner: StepRunner
    public let trainLoader: BatchLoader
    public let validationLoader: BatchLoader
    public let runDirectory: URL?
    /// Everything written to `runDirectory` goes through this.
    package let runFolder: RunFolder?
    /// Informational lines (stderr by default).
    public var log: (String) -> Void = { note($0) }
    /// Show a progress bar (default: when stderr is a terminal).
    public var showProgress: Bool?
    /// Stop after this epoch, as if the process were killed once its checkpoint is written
    /// (time-boxed runs, and the tests of `--resume`).
    public var stopAfterEpoch: Int?
    /// Raised (from any thread), the run stops after the current step: it writes `latest` with the
    /// step reached within the epoch and returns a result with `interrupted` set.
    public var stopFlag: StopFlag?
    /// See `NonFinitePolicy`.
    public var onNonFinite: NonFinitePolicy = .stop
    /// The epoch's loss sum is read every this many steps (one scalar) to catch a non-finite loss
    /// early; it is also read at every progress-bar update, metrics line and epoch end, and the
    /// weights are checked before every checkpoint. 1: the exact step, at one device read per step.
    public var nonFiniteCheckEvery = 10
    /// Rollbacks allowed by `NonFinitePolicy.skip` before the run stops.
    public var maxNonFiniteRecoveries = 5
    /// Multiplies the schedule's learning rate (`--on-nan skip` divides it by 10 per rollback).
    package var learningRateScale = 1.0
    /// TensorBoard weight and gradient histograms every this many epochs (0: none); the filter image
    /// is written every epoch.
    public var histogramEvery = 1
    /// Test seam: called after each training step with the global step count.
    package var afterStep: ((Int) -> Void)?
    /// Replaces the final test-set evaluation (data-parallel training: sharded over the ranks).
    package var evaluateTest: ((_ model: Model, _ test: ImageDataset) throws -> EvaluationResult)?
    /// Build batches on the device (an OpenCL backend; `DeviceFeed`): true uploads the training
    /// set once (`--data-on-device`), false sends each batch as uint8 images, nil (default) uploads
    /// it when it fits in a quarter of the device memory. The CPU backend builds batches on the host.
    public var dataOnDevice: Bool?
    /// The device feed (nil: host batches), made at the start of `run()`.
    private(set) var feed: DeviceFeed?
    /// Waits of the device feed for a staging buffer so far (nil: host batches).
    package var deviceInputWaits: Int? { feed?.input.inputWaits }

    private(set) var schedule: LRSchedule
    private(set) var history: [EpochMetrics] = []
    private var startEpoch = 1
    private var globalStep = 0
    private var bestValidationAccuracy = -1.0
    private var bestValidationLoss = Double.infinity
    private var bestEpoch = 0
    private var epochsWithoutImprovement = 0
    /// From a mid-epoch checkpoint: the steps of `startEpoch` already done and the epoch's sums.
    private var resumeStepInEpoch = 0
    private var resumePartial: (lossSum: Float, correctSum: Float, seen: Int)?
    /// The last step after which the loss sum was read and finite.
    private var lastFiniteStep = 0
    private var recoveries = 0
    /// The weights, buffers and optimizer state of the last good point (`NonFinitePolicy.skip` only).
    private var snapshot: (model: [(String, StateValue)], optimizer: (tensors: [(String, HostTensor)], step: Int), epoch: Int)?

    /// Builds model, optimizer and loaders on `backend`. `runDirectory` nil: nothing is written.
    /// `shard`: this process's part of every batch and of the validation set in data-parallel training.
    public init(config: TrainConfig, data: TrainingData, backend: any Backend, runDirectory: URL?, shard: DataShard = .whole) throws {
        try config.validate()
        self.config = config
        self.data = data
        self.runDirectory = runDirectory
        runFolder = runDirectory.map(RunFolder.init(url:))
        model = try ModelZoo.make(config.model, inputShape: data.imageShape, classes: data.classNames.count,
                                  backend: backend, seed: config.seed)
        try fitWhiteningLayers(model: model, data: data, config: config)
        if config.batchNormBiasLRScale != 1 {
            for (_, bn) in model.batchNormLayers {
                bn.bias.learningRateScale *= Float(config.batchNormBiasLRScale)
                bn.bias.weightDecayScale /= Float(config.batchNormBiasLRScale)
            }
        }
        trainLoader = try BatchLoader(dataset: data.train, indices: data.split.train, batchSize: config.batchSize, shuffle: true,
                                      augmentation: config.augmentation, seed: config.seed, workers: config.workers, shard: shard)
        let base: any Optimizer
        switch config.optimizer {
        case .sgd:
            base = try SGD(model: model, hyper: SGDHyper(learningRate: Float(config.learningRate), momentum: Float(config.momentum),
                                                         nesterov: config.nesterov, weightDecay: Float(config.weightDecay)))
        case .adam, .adamw:
            base = try Adam(model: model, hyper: AdamHyper(learningRate: Float(config.learningRate), beta1: Float(config.beta1),
                                                           beta2: Float(config.beta2), weightDecay: Float(config.weightDecay),
                                                           decoupled: config.optimizer == .adamw))
        }
        optimizer = config.lookaheadEvery > 0
            ? try Lookahead(wrapping: base, model: model, every: config.lookaheadEvery, totalSteps: config.epochs * trainLoader.batchesPerEpoch)
            : base
        runner = try StepRunner(model: model, optimizer: optimizer, labelSmoothing: Float(config.labelSmoothing))
        runner.maxGradNorm = config.maxGradNorm.map { Float($0) }
        // Validation and test at the training batch size: a larger one would grow every layer's
        // activation buffers past what training needs (+118 MiB for `optimized` at 256 vs 128).
        validationLoader = try BatchLoader(dataset: data.train, indices: shard.slice(data.split.validation), batchSize: config.batchSize,
                                           shuffle: false, augmentation: config.augmentation.forEvaluation, seed: config.seed,
                                           workers: config.workers)
        schedule = LRSchedule(config: config.schedule, baseLR: config.learningRate, epochs: config.epochs,
                              stepsPerEpoch: trainLoader.batchesPerEpoch)
    }

    /// Continues from the checkpoint `stem` ("latest" or "best") in `dir`.
    public func resume(from dir: URL, stem: String = "latest") throws {
        let s = try Checkpoint.load(dir: dir, stem: stem, model: model, optimizer: optimizer)
        try require(s.config.seed == config.seed && s.config.batchSize == config.batchSize && s.config.model == config.model,
                    "cannot resume \(dir.path): its seed/batch size/model (\(s.config.seed)/\(s.config.batchSize)/\(s.config.model)) differ from this run's")
        schedule = s.schedule
        history = s.history
        startEpoch = s.epoch + 1
        globalStep = s.globalStep
        bestValidationAccuracy = s.bestValidationAccuracy
        bestValidationLoss = s.bestValidationLoss
        bestEpoch = s.bestEpoch
        epochsWithoutImprovement = s.epochsWithoutImprovement
        learningRateScale = s.learningRateScale ?? 1
        lastFiniteStep = globalStep
        resumeStepInEpoch = s.stepInEpoch ?? 0
        if resumeStepInEpoch > 0, let l = s.partialLossSum, let c = s.partialCorrectSum, let n = s.partialSeen {
            resumePartial = (l, c, n)
        }
        let within = resumeStepInEpoch > 0 ? ", and \(resumeStepInEpoch) of \(trainLoader.batchesPerEpoch) steps of epoch \(s.epoch + 1)" : ""
        log("resumed from \(dir.path)/\(stem): epoch \(s.epoch) done\(within), step \(s.globalStep)"
            + (s.bestEpoch > 0 ? ", best validation accuracy " + String(format: "%.2f%%", 100 * s.bestValidationAccuracy) + " (epoch \(s.bestEpoch))" : ""))
    }

    /// The dropout seed of global step `step`.
    func stepSeed(_ step: Int) -> UInt64 {
        var s = config.seed ^ (UInt64(step) &* 0xD1B5_4A32_D192_ED03)
        return SeededRNG.splitMix64(&s)
    }

    public func run() throws -> TrainResult {
        try runFolder?.start(config: config, history: history, probeBytes: 4 * model.parameterCount * 4 + (1 << 20))
        do { try runFolder?.recordSampleGrids(data: data, config: config) } catch { log("warning: could not draw the sample grids: \(error)") }
        if feed == nil {
            feed = try DeviceFeed.make(backend: model.backend, loader: trainLoader, classes: data.classNames.count,
                                       resident: dataOnDevice, log: log)
        }
        var stoppedEarly = false
        if startEpoch > config.epochs { log("nothing to do: \(config.epochs) epochs already done") }
        if onNonFinite == .skip { try takeSnapshot(epoch: startEpoch - 1) }
        for epoch in startEpoch...max(config.epochs, startEpoch) where epoch <= config.epochs {
            guard let m = try trainEpoch(epoch) else {
                return TrainResult(history: history, bestEpoch: bestEpoch, bestValidationAccuracy: bestValidationAccuracy,
                                   test: nil, testOfBest: nil, stoppedEarly: true, runDirectory: runDirectory, interrupted: true)
            }
            history.append(m)
            let improved = m.validationAccuracy > bestValidationAccuracy
            if improved { bestValidationAccuracy = m.validationAccuracy; bestEpoch = epoch }
            if m.validationLoss < bestValidationLoss { bestValidationLoss = m.validationLoss; epochsWithoutImprovement = 0 } else { epochsWithoutImprovement += 1 }
            if let msg = schedule.epochEnd(epoch: epoch, valLoss: m.validationLoss) { log("  " + msg) }
            log(String(format: "epoch %d/%d  train loss %.4f acc %.2f%%  val loss %.4f acc %.2f%%  lr %.2g  %.1fs (%.0f img/s)%@",
                       epoch, config.epochs, m.trainLoss, 100 * m.trainAccuracy, m.validationLoss, 100 * m.validationAccuracy,
                       m.learningRate, m.seconds, m.imagesPerSecond, improved ? "  *best" : ""))
            if let folder = runFolder {
                // trainEpoch checked the loss sums and the weights: no non-finite weights get here.
                let state = checkpointState(epoch: epoch)
                saveOrWarn("latest", folder: folder, state: state)
                if improved { saveOrWarn("best", folder: folder, state: state) }
                try folder.record(m)
                try folder.recordModel(model, epoch: epoch, histograms: histogramEvery > 0 && epoch % histogramEvery == 0)
            }
            if onNonFinite == .skip { try takeSnapshot(epoch: epoch) }
            if epoch == startEpoch { log("  " + memoryReport()) }
            if stopFlag?.isRequested == true {
                log("stopped after epoch \(epoch) as asked (its checkpoint is written)")
                return TrainResult(history: history, bestEpoch: bestEpoch, bestValidationAccuracy: bestValidationAccuracy,
                                   test: nil, testOfBest: nil, stoppedEarly: true, runDirectory: runDirectory, interrupted: true)
            }
            if let stop = stopAfterEpoch, epoch >= stop, epoch < config.epochs {
                log("stopping after epoch \(epoch) as asked; continue with --resume")
                return TrainResult(history: history, bestEpoch: bestEpoch, bestValidationAccuracy: bestValidationAccuracy,
                                   test: nil, testOfBest: nil, stoppedEarly: true, runDirectory: runDirectory)
            }
            if let p = config.earlyStoppingPatience, epochsWithoutImprovement >= p, epoch < config.epochs {
                log("early stopping: validation loss has not improved for \(p) epochs")
                stoppedEarly = true
                break
            }
        }
        var result = TrainResult(history: history, bestEpoch: bestEpoch, bestValidationAccuracy: bestValidationAccuracy,
                                 test: nil, testOfBest: nil, stoppedEarly: stoppedEarly, runDirectory: runDirectory)
        if let test = data.test, config.evaluateTest {
            let norm = config.augmentation.normalization
            let r = try evaluateTest?(model, test)
                ?? evaluate(model: model, dataset: test, normalization: norm, batchSize: config.batchSize, flipTTA: config.testTimeFlip, translateTTA: config.testTimeTranslate,
                                workers: config.workers)
            result.test = r
            log(String(format: "test (final weights, epoch %d): loss %.4f  accuracy %.2f%%  top-5 %.2f%%  (%d images, %.1fs)",
                       history.last?.epoch ?? 0, r.loss, 100 * r.accuracy, 100 * (r.topK[5] ?? 0), r.confusion.total, r.seconds))
            if let folder = runFolder {
                try folder.writeReport(r, stem: "test")
                if bestEpoch != history.last?.epoch, let url = folder.checkpointModel("best") {
                    // The best weights go into this model (training is over): a second model would
                    // hold a second set of parameters and activation buffers at the run's peak.
                    // Afterwards the model gets its final weights back.
                    let finalWeights = try model.stateDict()
                    let bestFile = try SafeTensors.read(url)
                    // Label it with the epoch the file holds (a failed 'best' write keeps an older one).
                    let fileEpoch = Int(bestFile.metadata["swiftcnn_epoch"] ?? "") ?? bestEpoch
                    try model.load(stateDict: bestFile.entries, source: url.path)
                    let rb = try evaluate(model: model, dataset: test, normalization: norm, batchSize: config.batchSize,
                                          flipTTA: config.testTimeFlip, translateTTA: config.testTimeTranslate,
                                workers: config.workers)
                    try model.load(stateDict: finalWeights, source: "final weights")
                    result.testOfBest = rb
                    log(String(format: "test (best validation checkpoint, epoch %d): accuracy %.2f%%", fileEpoch, 100 * rb.accuracy))
                    try folder.writeReport(rb, stem: "test_best")
                }
            }
        }
        if let folder = runFolder, Visualization.firstConvolution(of: model) != nil {
            // The guide's look at the learned first-layer filters (final weights).
            do {
                let layer = try folder.writeFilters(of: model)
                log("first-layer filters (\(layer)): \(folder.filtersURL.path)")
            } catch { log("could not draw the filters: \(error)") }
        }
        if let folder = runFolder { RunFigures.finishRun(folder.url, data: data, config: config, log: log) }
        if let peak = ProcessMemory.peakResidentBytes() { log("peak resident memory \(ProcessMemory.mebibytes(peak))") }
        return result
    }

    /// Where the memory goes: peak resident set, the images held, device tensors and scratch.
    func memoryReport() -> String {
        var parts: [String] = []
        let dataBytes = data.train.pixels.count + (data.test?.pixels.count ?? 0)
        parts.append("images \(ProcessMemory.mebibytes(dataBytes))")
        parts.append("model parameters \(ProcessMemory.mebibytes(model.parameterCount * 4))")
        let backendMemory = model.backend.memoryReport
        if let b = backendMemory.tensorBytes { parts.append("tensors \(ProcessMemory.mebibytes(b))") }
        if let b = backendMemory.scratchBytes { parts.append("scratch \(ProcessMemory.mebibytes(b))") }
        let peak = ProcessMemory.peakResidentBytes().map { "peak resident memory \(ProcessMemory.mebibytes($0))" } ?? "memory"
        return peak + " (" + parts.joined(separator: ", ") + ")"
    }

    func checkpointState(epoch: Int) -> CheckpointState {
        var s = CheckpointState(config: config, model: model.name, inputShape: model.inputShape.dims, classNames: data.classNames,
                                epoch: epoch, globalStep: globalStep, optimizerStep: optimizer.stepCount, schedule: schedule, history: history,
                                bestValidationAccuracy: bestValidationAccuracy, bestEpoch: bestEpoch, bestValidationLoss: bestValidationLoss,
                                epochsWithoutImprovement: epochsWithoutImprovement, savedAt: ISO8601DateFormatter().string(from: Date()))
        s.learningRateScale = learningRateScale == 1 ? nil : learningRateScale
        return s
    }

    /// Writes checkpoint `stem`; a failed write (full disk, folder gone read-only) is reported and
    /// training goes on: the previous checkpoint set is untouched (see `Checkpoint`) and the next
    /// epoch tries again.
    func saveOrWarn(_ stem: String, folder: RunFolder, state: CheckpointState) {
        do {
            try folder.saveCheckpoint(stem, model: model, optimizer: optimizer, state: state, normalization: config.augmentation.normalization)
        } catch {
            log("warning: could not write checkpoint '\(stem)' of epoch \(state.epoch): \(error)\n  " + keptCheckpointNote(stem)
                + "; training continues and the next epoch tries again")
        }
    }

    /// What the run folder holds of checkpoint `stem` now.
    func keptCheckpointNote(_ stem: String) -> String {
        guard let folder = runFolder else { return "no run folder" }
        let json = Checkpoint.stateURL(folder.url, stem)
        guard let d = FileManager.default.contents(atPath: json.path),
              let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any], let e = o["epoch"] as? Int else {
            return "there is no earlier '\(stem)' checkpoint in \(folder.url.path)"
        }
        let step = (o["stepInEpoch"] as? Int).map { $0 > 0 ? ", step \($0) of epoch \(e + 1)" : "" } ?? ""
        return "the previous checkpoint \(folder.url.appendingPathComponent(stem).path).* (epoch \(e)\(step)) is kept"
    }

    func takeSnapshot(epoch: Int) throws {
        let o = try optimizer.state()
        snapshot = (try model.stateDict(), (o.tensors, o.step), epoch)
    }

    /// The first parameter (model order) whose weights, and the first whose gradients, hold a
    /// non-finite value; read to the host only after the loss sum was found non-finite.
    func nonFiniteLayers() throws -> String {
        var weights: String?, grads: String?
        for (name, p) in model.parameters {
            if weights == nil, try model.backend.floats(p.value).contains(where: { !$0.isFinite }) { weights = name }
            if grads == nil, try model.backend.floats(p.grad).contains(where: { !$0.isFinite }) { grads = name }
            if weights != nil && grads != nil { break }
        }
        var buffer: String?
        for (name, b) in model.buffers where try model.backend.floats(b.value).contains(where: { !$0.isFinite }) { buffer = name; break }
        var parts: [String] = []
        parts.append(weights.map { "first non-finite weights in \($0)" } ?? "all weights finite")
        parts.append(grads.map { "first non-finite gradient in \($0)" } ?? "all gradients finite")
        if let buffer { parts.append("first non-finite statistic in \(buffer)") }
        return parts.joined(separator: ", ")
    }

    /// The loss sum or the weights stopped being finite: stop (throw) or, with `.skip`, roll back.
    func nonFinite(_ what: String, epoch: Int) throws {
        let layers = try nonFiniteLayers()
        let steps = lastFiniteStep + 1 >= globalStep ? "step \(globalStep)" : "steps \(lastFiniteStep + 1)...\(globalStep) (finite until step \(lastFiniteStep))"
        if onNonFinite == .skip, let snap = snapshot, recoveries < maxNonFiniteRecoveries {
            recoveries += 1
            try model.load(stateDict: snap.model, source: "the weights of epoch \(snap.epoch)")
            try optimizer.loadState(tensors: snap.optimizer.tensors, step: snap.optimizer.step)
            try runner.resetTotals()
            learningRateScale /= 10
            lastFiniteStep = globalStep
            log(String(format: "non-finite %@ at %@ in epoch %d (%@): rolled back to the weights of epoch %d, learning rate ×%g from now on (rollback %d of %d)",
                       what, steps, epoch, layers, snap.epoch, learningRateScale, recoveries, maxNonFiniteRecoveries))
            return
        }
        var kept = ["latest", "best"].map(keptCheckpointNote).joined(separator: "; ")
        kept = kept.prefix(1).uppercased() + kept.dropFirst()
        let hint = onNonFinite == .skip ? "after \(recoveries) rollbacks with a lower learning rate" : "(--on-nan skip rolls back and lowers the learning rate instead)"
        throw CNNError.invalidArgument("training diverged: non-finite \(what) at \(steps) in epoch \(epoch); \(layers). "
            + "\(kept). Stopped \(hint); lower the learning rate (now \(String(format: "%g", config.learningRate * learningRateScale))) or set maxGradNorm (--clip-grad-norm)")
    }

    /// Reads the epoch's loss sum (one scalar); handles a non-finite one.
    func checkLoss(epoch: Int) throws {
        if try runner.lossSumSoFar().isFinite { lastFiniteStep = globalStep } else { try nonFinite("loss", epoch: epoch) }
    }

    /// Writes `latest` at step `index` of `epoch` (a stop request), with the epoch's sums so far.
    func saveStopped(epoch: Int, index: Int, sums: (lossSum: Float, correctSum: Float, seen: Int)) throws {
        log("stop requested: stopping at step \(index) of \(trainLoader.batchesPerEpoch) in epoch \(epoch) (global step \(globalStep))")
        guard let folder = runFolder else { return }
        var state = checkpointState(epoch: epoch - 1)
        state.stepInEpoch = index
        (state.partialLossSum, state.partialCorrectSum, state.partialSeen) = (sums.lossSum, sums.correctSum, sums.seen)
        do {
            try folder.saveCheckpoint("latest", model: model, optimizer: optimizer, state: state, normalization: config.augmentation.normalization)
        } catch {
            throw CNNError.io("could not write the checkpoint on stopping: \(error); " + keptCheckpointNote("latest"))
        }
        log("checkpoint written: \(folder.url.appendingPathComponent("latest").path).* (epoch \(epoch), step \(index) of \(trainLoader.batchesPerEpoch))")
    }

    /// One epoch of training, then validation; nil when a stop request ended it (latest is written).
    func trainEpoch(_ epoch: Int) throws -> EpochMetrics? {
        let start = Date()
        if let last = config.whiteningBiasEpochs {
            // A function of the epoch alone, so a resumed run freezes it at the same point.
            for case let whiten as PatchWhitening in model.network.flattened().map(\.layer) {
                whiten.bias?.learningRateScale = epoch <= last ? 1 : 0
            }
        }
        let steps = trainLoader.batchesPerEpoch
        let skip = min(resumeStepInEpoch, steps)
        resumeStepInEpoch = 0
        let bar = ProgressBar(total: steps, label: "epoch \(epoch)/\(config.epochs)", enabled: showProgress)
        var images = 0
        var done = skip
        var lastPeek = Date.distantPast
        var shown = (loss: 0.0, accuracy: 0.0)
        var lr = schedule.lr(step: max(globalStep - (skip > 0 ? 1 : 0), 0)) * learningRateScale
        _ = try runner.takeTotals()
        if let p = resumePartial { try runner.restoreTotals(lossSum: p.lossSum, correctSum: p.correctSum, seen: p.seen) }
        resumePartial = nil
        var index = 0
        // One training step on the next batch: the host pipeline's, or the device feed's.
        func step(_ body: () throws -> Int) throws {
            lr = schedule.lr(step: globalStep) * learningRateScale
            optimizer.learningRate = Float(lr)
            images += try body()
            globalStep += 1
            done += 1
        }
        // Device feed: batches skip..<steps are built on the device, none before (a resumed epoch).
        var deviceBatches = (feed != nil && skip < steps) ? Array(skip..<steps).makeIterator() : [Int]().makeIterator()
        let deviceOrder = feed != nil && skip < steps ? trainLoader.order(epoch: epoch - 1) : []
        // A resumed epoch skips the batches already done (built, not trained: the data order and
        // augmentation are functions of seed, epoch and index); none are built if all are done.
        if skip < steps {
            var hostBatches = feed == nil ? trainLoader.batches(epoch: epoch - 1).makeIterator() : nil
            while true {
                if let feed {
                    guard let b = deviceBatches.next() else { break }
                    index = b + 1
                    try step {
                        let t = try feed.prepare(trainLoader, epoch: epoch - 1, index: b, order: deviceOrder)
                        try runner.trainStep(x: t.x, y: t.y, soft: t.soft, count: t.count, seed: stepSeed(globalStep))
                        return t.count
                    }
                } else {
                    guard let batch = hostBatches!.next() else { break }
                    index += 1
                    if index <= skip { trainLoader.recycle(batch); continue }
                    try step {
                        try runner.trainStep(images: batch.images, labels: batch.labels, softTargets: batch.softTargets, seed: stepSeed(globalStep))
                        return batch.count
                    }
                    trainLoader.recycle(batch)
                }
                afterStep?(globalStep)
                if globalStep % max(nonFiniteCheckEvery, 1) == 0 { try checkLoss(epoch: epoch) }
                if bar.enabled, Date().timeIntervalSince(lastPeek) > 0.5 {
                    // A read of the totals that has completed; the queue is not drained for it.
                    if let t = try runner.peekTotalsWithoutWaiting() { shown = t }
                    if !shown.loss.isFinite { try checkLoss(epoch: epoch) }
                    lastPeek = Date()
                }
                bar.update(done: done, images: images, extra: String(format: "loss %.4f  acc %.1f%%", shown.loss, 100 * shown.accuracy))
                if let every = config.logEvery, globalStep % every == 0, let folder = runFolder {
                    let t = try runner.peekTotals()
                    if !t.loss.isFinite { try checkLoss(epoch: epoch) }
                    try folder.record(StepMetrics(step: globalStep, epoch: epoch, trainLoss: t.loss, trainAccuracy: t.accuracy, learningRate: lr))
                }
                if stopFlag?.isRequested == true, index < steps {
                    bar.finish()
                    try checkLoss(epoch: epoch)
                    try checkWeights(epoch: epoch)
                    try saveStopped(epoch: epoch, index: index, sums: try runner.rawTotals())
                    return nil
                }
            }
        }
        bar.finish()
        try checkLoss(epoch: epoch)
        let trainSums = try runner.rawTotals()
        let train = try runner.takeTotals()
        let trainSeconds = Date().timeIntervalSince(start)
        var val = (loss: 0.0, accuracy: 0.0, count: 0)
        for attempt in 0..<2 {
            var hostBatches = feed == nil ? validationLoader.batches(epoch: 0).makeIterator() : nil
            let validationOrder = feed == nil ? [] : validationLoader.order(epoch: 0)
            var b = 0
            while true {
                var batch: Batch?
                if feed == nil {
                    guard let next = hostBatches!.next() else { break }
                    batch = next
                } else if b >= validationLoader.batchesPerEpoch {
                    break
                }
                if stopFlag?.isRequested == true {
                    // Stopped during validation: the epoch's training steps are all done; the
                    // resumed run repeats only the validation.
                    _ = try runner.takeTotals()
                    try checkWeights(epoch: epoch)
                    try saveStopped(epoch: epoch, index: steps, sums: trainSums)
                    return nil
                }
                if let batch {
                    try runner.evalStep(images: batch.images, labels: batch.labels)
                    validationLoader.recycle(batch)
                } else if let feed {
                    let t = try feed.prepare(validationLoader, epoch: 0, index: b, order: validationOrder)
                    try runner.evalStep(x: t.x, y: t.y, count: t.count)
                }
                b += 1
            }
            val = try runner.takeTotals()
            // A finite training loss but non-finite weights (the epoch's last update) or validation loss.
            if val.loss.isFinite, try runner.parametersAreFinite() { break }
            let rollbacks = recoveries
            try nonFinite(val.loss.isFinite ? "weights" : "validation loss", epoch: epoch)
            if attempt == 1 || recoveries == rollbacks { break }
        }
        return EpochMetrics(epoch: epoch, trainLoss: train.loss, trainAccuracy: train.accuracy, validationLoss: val.loss,
                            validationAccuracy: val.accuracy, learningRate: lr, seconds: Date().timeIntervalSince(start),
                            imagesPerSecond: Double(images) / max(trainSeconds, 1e-9))
    }

    /// The weights must be finite before a checkpoint is written (one scalar read).
    func checkWeights(epoch: Int) throws {
        if try !runner.parametersAreFinite() { try nonFinite("weights", epoch: epoch) }
    }
}
