import CNNCore
import Datasets
import Foundation
import NN

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

    private(set) var schedule: LRSchedule
    private(set) var history: [EpochMetrics] = []
    private var startEpoch = 1
    private var globalStep = 0
    private var bestValidationAccuracy = -1.0
    private var bestValidationLoss = Double.infinity
    private var bestEpoch = 0
    private var epochsWithoutImprovement = 0

    /// Builds model, optimizer and loaders on `backend`. `runDirectory` nil: nothing is written.
    public init(config: TrainConfig, data: TrainingData, backend: any Backend, runDirectory: URL?) throws {
        try config.validate()
        self.config = config
        self.data = data
        self.runDirectory = runDirectory
        runFolder = runDirectory.map(RunFolder.init(url:))
        model = try ModelZoo.make(config.model, inputShape: data.imageShape, classes: data.classNames.count,
                                  backend: backend, seed: config.seed)
        switch config.optimizer {
        case .sgd:
            optimizer = try SGD(model: model, hyper: SGDHyper(learningRate: Float(config.learningRate), momentum: Float(config.momentum),
                                                              nesterov: config.nesterov, weightDecay: Float(config.weightDecay)))
        case .adam, .adamw:
            optimizer = try Adam(model: model, hyper: AdamHyper(learningRate: Float(config.learningRate), beta1: Float(config.beta1),
                                                                beta2: Float(config.beta2), weightDecay: Float(config.weightDecay),
                                                                decoupled: config.optimizer == .adamw))
        }
        runner = try StepRunner(model: model, optimizer: optimizer, labelSmoothing: Float(config.labelSmoothing))
        runner.maxGradNorm = config.maxGradNorm.map { Float($0) }
        trainLoader = try BatchLoader(dataset: data.train, indices: data.split.train, batchSize: config.batchSize, shuffle: true,
                                      augmentation: config.augmentation, seed: config.seed, workers: config.workers)
        // Validation and test at the training batch size: a larger one would grow every layer's
        // activation buffers past what training needs (+118 MiB for `optimized` at 256 vs 128).
        validationLoader = try BatchLoader(dataset: data.train, indices: data.split.validation, batchSize: config.batchSize,
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
        log("resumed from \(dir.path)/\(stem): epoch \(s.epoch) done, step \(s.globalStep), best validation accuracy "
            + String(format: "%.2f%%", 100 * s.bestValidationAccuracy) + " (epoch \(s.bestEpoch))")
    }

    /// The dropout seed of global step `step`.
    func stepSeed(_ step: Int) -> UInt64 {
        var s = config.seed ^ (UInt64(step) &* 0xD1B5_4A32_D192_ED03)
        return SeededRNG.splitMix64(&s)
    }

    public func run() throws -> TrainResult {
        try runFolder?.start(config: config, history: history)
        var stoppedEarly = false
        if startEpoch > config.epochs { log("nothing to do: \(config.epochs) epochs already done") }
        for epoch in startEpoch...max(config.epochs, startEpoch) where epoch <= config.epochs {
            let m = try trainEpoch(epoch)
            history.append(m)
            let improved = m.validationAccuracy > bestValidationAccuracy
            if improved { bestValidationAccuracy = m.validationAccuracy; bestEpoch = epoch }
            if m.validationLoss < bestValidationLoss { bestValidationLoss = m.validationLoss; epochsWithoutImprovement = 0 } else { epochsWithoutImprovement += 1 }
            if let msg = schedule.epochEnd(epoch: epoch, valLoss: m.validationLoss) { log("  " + msg) }
            log(String(format: "epoch %d/%d  train loss %.4f acc %.2f%%  val loss %.4f acc %.2f%%  lr %.2g  %.1fs (%.0f img/s)%@",
                       epoch, config.epochs, m.trainLoss, 100 * m.trainAccuracy, m.validationLoss, 100 * m.validationAccuracy,
                       m.learningRate, m.seconds, m.imagesPerSecond, improved ? "  *best" : ""))
            if let folder = runFolder {
                let state = checkpointState(epoch: epoch)
                let norm = config.augmentation.normalization
                try folder.saveCheckpoint("latest", model: model, optimizer: optimizer, state: state, normalization: norm)
                if improved { try folder.saveCheckpoint("best", model: model, optimizer: optimizer, state: state, normalization: norm) }
                try folder.record(m)
            }
            if epoch == startEpoch { log("  " + memoryReport()) }
            if !m.trainLoss.isFinite {
                // The weights are no longer numbers: every later epoch would be wasted. The latest
                // checkpoint now holds the diverged weights; best.* still holds the last good ones.
                throw CNNError.invalidArgument(String(format: "training diverged in epoch %d (train loss %@); lower learningRate (now %g) or set maxGradNorm", epoch, "\(m.trainLoss)", config.learningRate))
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
            let r = try evaluate(model: model, dataset: test, normalization: norm, batchSize: config.batchSize, flipTTA: config.testTimeFlip, workers: config.workers)
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
                    try model.load(stateDict: try SafeTensors.read(url).entries, source: url.path)
                    let rb = try evaluate(model: model, dataset: test, normalization: norm, batchSize: config.batchSize,
                                          flipTTA: config.testTimeFlip, workers: config.workers)
                    try model.load(stateDict: finalWeights, source: "final weights")
                    result.testOfBest = rb
                    log(String(format: "test (best validation checkpoint, epoch %d): accuracy %.2f%%", bestEpoch, 100 * rb.accuracy))
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
        CheckpointState(config: config, model: model.name, inputShape: model.inputShape.dims, classNames: data.classNames,
                        epoch: epoch, globalStep: globalStep, optimizerStep: optimizer.stepCount, schedule: schedule, history: history,
                        bestValidationAccuracy: bestValidationAccuracy, bestEpoch: bestEpoch, bestValidationLoss: bestValidationLoss,
                        epochsWithoutImprovement: epochsWithoutImprovement, savedAt: ISO8601DateFormatter().string(from: Date()))
    }

    /// One epoch of training, then validation.
    func trainEpoch(_ epoch: Int) throws -> EpochMetrics {
        let start = Date()
        let bar = ProgressBar(total: trainLoader.batchesPerEpoch, label: "epoch \(epoch)/\(config.epochs)", enabled: showProgress)
        var images = 0
        var done = 0
        var lastPeek = Date.distantPast
        var shown = (loss: 0.0, accuracy: 0.0)
        var lr = schedule.lr(step: globalStep)
        _ = try runner.takeTotals()
        for batch in trainLoader.batches(epoch: epoch - 1) {
            lr = schedule.lr(step: globalStep)
            optimizer.learningRate = Float(lr)
            try runner.trainStep(images: batch.images, labels: batch.labels, softTargets: batch.softTargets, seed: stepSeed(globalStep))
            globalStep += 1
            done += 1
            images += batch.count
            trainLoader.recycle(batch)
            if bar.enabled, Date().timeIntervalSince(lastPeek) > 0.5 {
                shown = try runner.peekTotals()
                lastPeek = Date()
            }
            bar.update(done: done, images: images, extra: String(format: "loss %.4f  acc %.1f%%", shown.loss, 100 * shown.accuracy))
            if let every = config.logEvery, globalStep % every == 0, let folder = runFolder {
                let t = try runner.peekTotals()
                try folder.record(StepMetrics(step: globalStep, epoch: epoch, trainLoss: t.loss, trainAccuracy: t.accuracy, learningRate: lr))
            }
        }
        bar.finish()
        let train = try runner.takeTotals()
        let trainSeconds = Date().timeIntervalSince(start)
        for batch in validationLoader.batches(epoch: 0) {
            try runner.evalStep(images: batch.images, labels: batch.labels)
            validationLoader.recycle(batch)
        }
        let val = try runner.takeTotals()
        return EpochMetrics(epoch: epoch, trainLoss: train.loss, trainAccuracy: train.accuracy, validationLoss: val.loss,
                            validationAccuracy: val.accuracy, learningRate: lr, seconds: Date().timeIntervalSince(start),
                            imagesPerSecond: Double(images) / max(trainSeconds, 1e-9))
    }
}
