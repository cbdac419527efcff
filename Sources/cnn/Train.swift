import ArgumentParser
import DataParallel
import Foundation
import SwiftCNN
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// SIGINT and SIGTERM during training: the first raises the trainer's stop flag (the loop finishes
/// its step, writes `latest` and returns), a second exits at once. Dispatch signal sources, with
/// the default action ignored, run the handler on a queue as ordinary Swift code.
final class StopSignals: Sendable {
    let flag = StopFlag()
    /// The first signal received (0: none).
    let received = Atomic<Int32>(0)
    nonisolated(unsafe) private var sources: [any DispatchSourceSignal] = []

    func install() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [self, source] in
                let name = sig == SIGINT ? "SIGINT" : "SIGTERM"
                // `data`: signals merged since the last call (a fast double Ctrl-C arrives as one call with 2).
                if source.data < 2 && received.compareExchange(expected: 0, desired: sig, ordering: .relaxed).exchanged {
                    flag.request()
                    FileHandle.standardError.write(Data("\n\(name): stopping after this step and writing the latest checkpoint (send it again to quit at once)\n".utf8))
                } else {
                    FileHandle.standardError.write(Data("\n\(name) again: quitting now, without a checkpoint of this step\n".utf8))
                    _exit(128 + sig)
                }
            }
            source.resume()
            sources.append(source)
        }
    }
}

/// `path` as a shell word (quoted when it holds anything but safe characters).
func shellWord(_ path: String) -> String {
    let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=+,@%")
    return path.allSatisfy { safe.contains($0) } ? path : "'" + path.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model (default: the PyTorch CIFAR-10 guide's recipe).",
        discussion: """
        Defaults reproduce the guide: --model optimized --batch-size 64 --optimizer adam --lr 1e-3 --weight-decay 1e-4, \
        ReduceLROnPlateau (patience 3, factor 0.1) on validation loss, flip + rotation 15 + normalize 0.5, 80/20 split, \
        15 epochs. Settings come from the defaults, then --config FILE (JSON, any subset of the keys that \
        --print-config shows), then the options given here. Each run writes runs/NAME/: config.json, metrics.jsonl, \
        latest.* and best.* checkpoints (PyTorch state-dict names, safetensors), test_report.txt and the confusion matrix.
        """)

    @OptionGroup var deviceOption: DeviceOption
    @OptionGroup(title: "Data-parallel training (mpirun -np N cnn train --distributed; docs/distributed.md)") var distributedOptions: DistributedOptions

    // Model and optimisation
    @Option(help: "Training recipe: a model with the settings it is tuned for (`cnn models` lists them); options given here still override it.") var recipe: Recipe?
    @Option(help: "Model architecture.") var model: ModelKind?
    @Option(help: "Epochs to train.") var epochs: Int?
    @Option(name: .customLong("batch-size"), help: "Images per step.") var batchSize: Int?
    @Option(help: "Optimizer.") var optimizer: TrainConfig.OptimizerKind?
    @Option(help: "Learning rate (the peak for one-cycle).") var lr: Double?
    @Option(name: .customLong("weight-decay"), help: "Weight decay (L2 for adam/sgd, decoupled for adamw).") var weightDecay: Double?
    @Option(help: "SGD momentum.") var momentum: Double?
    @Flag(help: "Nesterov momentum (sgd).") var nesterov = false
    @Option(help: "LR schedule (plateau: ReduceLROnPlateau on validation loss).") var schedule: ScheduleKind?
    @Option(name: .customLong("plateau-patience"), help: "Epochs without validation-loss improvement before the LR is cut.") var plateauPatience: Int?
    @Option(name: .customLong("plateau-factor"), help: "LR multiplier when the plateau schedule cuts.") var plateauFactor: Double?
    @Option(name: .customLong("step-size"), help: "Epochs between cuts of the step schedule.") var stepSize: Int?
    @Option(help: "LR multiplier of the step schedule.") var gamma: Double?
    @Option(name: .customLong("warmup-epochs"), help: "Linear LR warmup over this many epochs (fractions allowed).") var warmupEpochs: Double?
    @Option(name: .customLong("warmup-start"), help: "Warmup starts at lr times this (warmup and triangle schedules).") var warmupStart: Double?
    @Option(name: .customLong("pct-start"), help: "Share of the steps spent rising to the peak (onecycle, triangle).") var pctStart: Double?
    @Option(name: .customLong("end-fraction"), help: "Triangle schedule: the learning rate at the last step, as a fraction of --lr (0 to 1; airbench94: 0.07).") var endFraction: Double?
    @Option(name: .customLong("label-smoothing"), help: "Label smoothing in [0, 1).") var labelSmoothing: Double?
    @Option(name: .customLong("bn-bias-lr-scale"), help: "Learning-rate multiplier of the BatchNorm biases; their weight decay is divided by it (airbench: 64).") var bnBiasLRScale: Double?
    @Option(help: "Lookahead/EMA of the weights every K steps (0: off; airbench: 5).") var lookahead: Int?
    @Option(name: .customLong("whitening-bias-epochs"), help: "Train the whitening layer's bias (fast model) for this many epochs, then freeze it (airbench: 3).") var whiteningBiasEpochs: Int?
    @Option(name: .customLong("early-stopping"), help: "Stop after this many epochs without validation-loss improvement.") var earlyStopping: Int?
    @Option(name: .customLong("clip-grad-norm"), help: "Clip the global gradient norm to this value.") var clipGradNorm: Double?
    @Option(help: "Random seed (initialisation, split, shuffling, augmentation, dropout).") var seed: UInt64?

    // Data
    @Option(help: "CIFAR-10 folder (cifar-10-batches-bin, or a folder containing it), or an image-folder root (root/<class>/*.png|jpg). Default: ./data, then ../shared/data, else download into ./data (never into a folder given here).") var data: String?
    @Option(help: "Data format (default auto: detected from --data; folder: root/<class>/*.png|jpg).") var format: TrainConfig.DataFormat?
    @Option(name: .customLong("test-data"), help: "Test image folder (with --format folder).") var testData: String?
    @Option(help: "Use only the first N training images.") var limit: Int?
    @Option(name: .customLong("test-limit"), help: "Use only the first N test images.") var testLimit: Int?
    @Option(name: .customLong("image-size"), help: "Resize image-folder inputs to this side length.") var imageSize: Int?
    @Option(help: "Image-folder channels: 1 (grayscale) or 3 (RGB).") var channels: Int?
    @Option(name: .customLong("val-split"), help: "Fraction of the training images held out for validation, in (0, 1).") var valSplit: Double?
    @Flag(help: "Stratified train/validation split (keeps class proportions).") var stratify = false
    @Option(help: "Data-loading threads.") var workers: Int?
    @Flag(name: .customLong("data-on-device"), inversion: .prefixedNo,
          help: "OpenCL: upload the uint8 training set to the device once and augment there (default: when it fits in a quarter of the device memory; --no-data-on-device sends each batch as uint8 images, still augmented on the device). The CPU backend always builds batches on the host.")
    var dataOnDevice: Bool?

    // Augmentation
    @Option(help: "Horizontal flip probability.") var flip: Float?
    @Flag(name: .customLong("alternating-flip"), inversion: .prefixedNo,
          help: "Flip each image on alternate epochs (a random half in even epochs, the other half in odd ones) instead of at random each epoch.")
    var alternatingFlip: Bool?
    @Option(help: "Random rotation range in degrees (±).") var rotation: Float?
    @Option(name: .customLong("rotation-interpolation"), help: "Rotation sampling (nearest is torchvision's default).") var rotationInterpolation: RotationInterpolation?
    @Option(name: .customLong("crop-padding"), help: "Random crop with this much padding (0: off).") var cropPadding: Int?
    @Option(name: .customLong("padding-mode"), help: "Crop padding.") var paddingMode: PaddingMode?
    @Option(help: "Normalisation: half (mean 0.5, std 0.5, the guide's), cifar10 (dataset statistics) or none.") var normalize: String?
    @Option(help: "Cutout square side (0: off).") var cutout: Int?
    @Option(help: "MixUp alpha (0: off).") var mixup: Float?
    @Option(help: "CutMix alpha (0: off).") var cutmix: Float?
    @Flag(name: .customLong("no-augment"), help: "Turn off flip, rotation, crop, cutout, MixUp and CutMix.") var noAugment = false

    // Run
    @Option(help: "JSON config file (see --print-config for the keys).") var config: String?
    @Option(help: "Run name (folder under --runs-dir). Default: MODEL-DATE-TIME.") var name: String?
    @Option(name: .customLong("runs-dir"), help: "Folder for run folders.") var runsDir: String?
    @Option(help: "Resume the run in this folder (runs/NAME) from its latest checkpoint; other settings come from its config.") var resume: String?
    @Option(name: .customLong("log-every"), help: "Also write a metrics line every N steps.") var logEvery: Int?
    @Option(name: .customLong("histogram-every"), help: "TensorBoard weight/gradient histograms every N epochs (0: none).") var histogramEvery: Int = 1
    @Flag(name: .customLong("no-test"), help: "Skip the final test-set evaluation.") var noTest = false
    @Flag(help: "Flip test-time augmentation in the final evaluation.") var tta = false
    @Flag(name: .customLong("tta-translate"), help: "Also average over 1-pixel translations (reflect padding) in the final evaluation.") var ttaTranslate = false
    @Flag(name: .customLong("no-progress"), help: "No progress bar.") var noProgress = false
    @Flag(name: .customLong("no-tune"), help: "Keep CLBlast's default GEMM parameters: neither apply the cached tuning nor tune an untuned OpenCL device (see `cnn tune`).") var noTune = false
    @Flag(name: .customLong("print-config"), help: "Print the resolved config as JSON and exit.") var printConfig = false
    @Option(name: .customLong("on-nan"), help: "When the loss, a gradient or a weight is NaN/Inf: stop (keeping the last good checkpoint) or skip (roll back to the epoch's start, learning rate ÷10, go on; at most 5 times).") var onNaN: NonFinitePolicy?
    @Flag(help: "After each epoch, print what it asked of the device per training step: kernel launches, CLBlast calls, blocking calls, host<->device bytes (averaged over the epoch's steps; the validation pass is included).") var profile = false

    func resolvedConfig() throws -> TrainConfig {
        var c = TrainConfig()
        if let resume {
            c = try TrainConfig.load(path: (resume as NSString).appendingPathComponent("config.json"))
        } else if let config { c = try TrainConfig.load(path: config) }
        if let recipe, resume == nil { recipe.apply(to: &c) }
        if let v = deviceOption.device { c.device = v }
        if let v = model { c.model = v }
        if let v = epochs { c.epochs = v }
        if let v = batchSize { c.batchSize = v }
        if let v = optimizer { c.optimizer = v }
        if let v = lr { c.learningRate = v }
        if let v = weightDecay { c.weightDecay = v }
        if let v = momentum { c.momentum = v }
        if nesterov { c.nesterov = true }
        if let v = schedule { c.schedule.kind = v }
        if let v = plateauPatience { c.schedule.patience = v }
        if let v = plateauFactor { c.schedule.factor = v }
        if let v = stepSize { c.schedule.stepSize = v }
        if let v = gamma { c.schedule.gamma = v }
        if let v = warmupEpochs { c.schedule.warmupEpochs = v }
        if let v = warmupStart { c.schedule.warmupStart = v }
        if let v = pctStart { c.schedule.pctStart = v }
        if let v = endFraction { c.schedule.endFraction = v }
        if let v = labelSmoothing { c.labelSmoothing = v }
        if let v = bnBiasLRScale { c.batchNormBiasLRScale = v }
        if let v = lookahead { c.lookaheadEvery = v }
        if let v = whiteningBiasEpochs { c.whiteningBiasEpochs = v }
        if let v = earlyStopping { c.earlyStoppingPatience = v }
        if let v = clipGradNorm { c.maxGradNorm = v }
        if let v = seed { c.seed = v }
        if let v = data { c.data = v }
        if let v = format { c.dataFormat = v }
        if let v = testData { c.testData = v }
        if let v = limit { c.limit = v }
        if let v = testLimit { c.testLimit = v }
        if let v = imageSize { c.imageSize = v }
        if let v = channels { c.imageChannels = v }
        if let v = valSplit { c.validationFraction = v }
        if stratify { c.stratify = true }
        if let v = workers { c.workers = v }
        if noAugment {
            let n = c.augmentation.normalization
            c.augmentation = .none
            c.augmentation.normalization = n
        }
        if let v = flip { c.augmentation.horizontalFlip = v }
        if let v = alternatingFlip { c.augmentation.alternatingFlip = v }
        if let v = rotation { c.augmentation.rotationDegrees = v }
        if let v = rotationInterpolation { c.augmentation.rotationInterpolation = v }
        if let v = cropPadding { c.augmentation.cropPadding = v }
        if let v = paddingMode { c.augmentation.paddingMode = v }
        if let v = normalize { c.augmentation.normalization = try Normalization.named(v) }
        if let v = cutout { c.augmentation.cutoutSize = v }
        if let v = mixup { c.augmentation.mixupAlpha = v }
        if let v = cutmix { c.augmentation.cutmixAlpha = v }
        if let v = name { c.name = v }
        if let v = runsDir { c.runsDirectory = v }
        if let v = logEvery { c.logEvery = v }
        if noTest { c.evaluateTest = false }
        if tta { c.testTimeFlip = true }
        if ttaTranslate { c.testTimeTranslate = true }
        return c
    }

    /// The config as resolved must be valid; a bad setting is reported under its flag.
    func validate() throws {
        let c = try resolvedConfig()
        if c.dataFormat == .folder, c.data == nil { throw ValidationError("--format folder needs --data ROOT (a folder with one sub-folder of images per class)") }
        if let p = c.problems().first {
            let flag = Self.flags[p.key].map { "\($0) (\(p.key))" } ?? p.key
            throw ValidationError("\(flag) \(p.problem)")
        }
    }

    /// The flag of each config key that `TrainConfig.problems()` can name.
    static let flags = [
        "epochs": "--epochs", "batchSize": "--batch-size", "learningRate": "--lr", "weightDecay": "--weight-decay",
        "momentum": "--momentum", "labelSmoothing": "--label-smoothing", "validationFraction": "--val-split",
        "limit": "--limit", "schedule.patience": "--plateau-patience", "schedule.factor": "--plateau-factor",
        "maxGradNorm": "--clip-grad-norm", "workers": "--workers", "batchNormBiasLRScale": "--bn-bias-lr-scale",
        "lookaheadEvery": "--lookahead", "whiteningBiasEpochs": "--whitening-bias-epochs", "schedule.pctStart": "--pct-start", "schedule.warmupStart": "--warmup-start", "schedule.endFraction": "--end-fraction", "imageSize": "--image-size", "imageChannels": "--channels",
    ]

    func run() throws {
        let c = try resolvedConfig()
        if printConfig {
            print(c.json())
            return
        }
        if distributedOptions.distributed { return try runDistributed(c) }
        try checkPlainResume()
        let (backend, reason) = try makeBackend(c.device, tuning: noTune ? .off : .tuneGPUIfMissing,
                                                workload: TuningWorkload(model: c.model.rawValue, batch: c.batchSize,
                                                                         inputShape: [c.imageChannels, c.imageSize, c.imageSize]),
                                                log: { note($0) })
        note(reason)
        let data = try TrainingData.load(c, log: { note($0) })
        note(data.train.classCountTable(indices: data.split.train, title: "training split (\(data.split.train.count) images, validation \(data.split.validation.count))"))
        if let w = data.train.imbalanceWarning(indices: data.split.train) { note("warning: " + w) }
        let runDir: URL
        let runPath: String    // as the user would type it
        if let resume {
            runPath = resume
        } else {
            let f = DateFormatter()
            f.dateFormat = "yyyyMMdd-HHmmss"
            runPath = (c.runsDirectory as NSString).appendingPathComponent(c.name ?? "\(c.model)-\(f.string(from: Date()))")
        }
        runDir = URL(fileURLWithPath: runPath)
        let trainer = try Trainer(config: c, data: data, backend: backend, runDirectory: runDir)
        if noProgress { trainer.showProgress = false }
        if distributedOptions.noDropout { disableDropout(trainer.model) }
        trainer.dataOnDevice = dataOnDevice
        if profile {
            // Counted between two epoch-end lines (the first interval includes start-up work).
            var last = DeviceWorkCounts.snapshot(backend)
            var lastWaits = 0
            let log = trainer.log, steps = trainer.trainLoader.batchesPerEpoch
            trainer.log = { [weak trainer] line in
                log(line)
                guard line.hasPrefix("epoch ") else { return }
                let now = DeviceWorkCounts.snapshot(backend)
                // Batches built on the device: how many blocking calls were waits for a staging buffer.
                let waits = trainer?.deviceInputWaits.map { w in
                    defer { lastWaits = w }
                    return String(format: " (input waits for a staging buffer: %.2f)", Double(w - lastWaits) / Double(max(steps, 1)))
                } ?? ""
                log("  per step (\(steps) steps): " + now.perStep(since: last, steps: steps).summary + waits)
                last = now
            }
        }
        note(trainer.model.summary())
        note("optimizer: \(trainer.optimizer.summary), schedule: \(c.schedule.kind.rawValue), \(c.epochs) epochs of \(trainer.trainLoader.batchesPerEpoch) steps (batch \(c.batchSize))")
        note("run folder: \(runDir.path)")
        if let onNaN { trainer.onNonFinite = onNaN }
        guard histogramEvery >= 0 else { throw ValidationError("--histogram-every must be >= 0, got \(histogramEvery)") }
        trainer.histogramEvery = histogramEvery
        if resume != nil { try trainer.resume(from: runDir) }
        let signals = StopSignals()
        signals.install()
        trainer.stopFlag = signals.flag
        note("Ctrl-C (or SIGTERM) stops after the current step and writes a checkpoint to resume from")
        let result = try trainer.run()
        if result.interrupted {
            let sig = signals.received.load(ordering: .relaxed)
            let command = "cnn train --resume \(shellWord(runPath))" + (onNaN.map { " --on-nan \($0.rawValue)" } ?? "")
            note("interrupted\(sig == SIGINT ? " by SIGINT" : sig == SIGTERM ? " by SIGTERM" : ""); the latest checkpoint is in \(runDir.path)")
            note("resume with: \(command)")
            throw ExitCode(sig == 0 ? 1 : 128 + sig)
        }
        if let t = result.test {
            print(t.confusion.classificationReport())
            print("confusion matrix (rows: true class, columns: predicted)")
            print(t.confusion.formatted())
        }
        let best = String(format: "%.2f%%", 100 * result.bestValidationAccuracy)
        print("best validation accuracy \(best) at epoch \(result.bestEpoch)"
              + (result.test.map { String(format: "; test accuracy %.2f%%", 100 * $0.accuracy) } ?? "")
              + "; run folder \(runDir.path)")
    }
}
