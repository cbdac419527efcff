import CNNCore
import Datasets
import NN

/// Named training recipes: a model with the settings it is tuned for (`cnn train --recipe NAME`).
/// A recipe sets config values over the defaults or the config file; options given on the command
/// line still override it.
public enum Recipe: String, CaseIterable, Codable, Sendable, CustomStringConvertible {
    case guide, mobilenetv2, shufflenetv2, fast

    public var description: String { rawValue }

    /// One line: what the recipe does.
    public var summary: String {
        switch self {
        case .guide:
            return "the PyTorch CIFAR-10 guide (the defaults): optimized, Adam 1e-3, batch 64, flip + rotation 15, plateau schedule, 15 epochs"
        case .fast:
            return "the CIFAR-10 speed-record recipe (airbench94): fast model (frozen patch whitening fitted to the training data, "
                + "identity-initialised convolutions), SGD Nesterov 0.85 at batch 1024, lr 1.5 triangle (0.2 -> 1 over 23% of the steps, then down to 0.07), "
                + "BatchNorm biases at 64x lr, whitening bias trained for 3 epochs, weight decay 1.33e-3, lookahead EMA every 5 steps, label smoothing 0.2, "
                + "alternating flip + 2-pixel reflect translation, CIFAR normalisation, flip + translate TTA, 10 epochs"
        case .mobilenetv2, .shufflenetv2:
            return "\(rawValue): SGD Nesterov 0.9, lr 0.1 (batch 128) one-cycle, weight decay 4e-5, label smoothing 0.1, "
                + "flip + 4-pixel reflect crop, CIFAR normalisation, 15 epochs (about an hour here: the issue's time box)"
        }
    }

    /// The model the recipe trains.
    public var model: ModelKind {
        switch self {
        case .guide: return .optimized
        case .mobilenetv2: return .mobilenetv2
        case .shufflenetv2: return .shufflenetv2
        case .fast: return .fast
        }
    }

    /// The recipe a model is tuned for (nil: none beyond the defaults' guide recipe, which only the
    /// guide's two models were tuned with).
    public static func tuned(for model: ModelKind) -> Recipe? {
        switch model {
        case .cnn, .optimized: return .guide
        case .mobilenetv2: return .mobilenetv2
        case .shufflenetv2: return .shufflenetv2
        case .fast: return .fast
        default: return nil
        }
    }

    /// Applies the recipe's settings to `c`.
    public func apply(to c: inout TrainConfig) {
        switch self {
        case .guide:
            let keep = c
            c = TrainConfig()
            c.data = keep.data; c.dataFormat = keep.dataFormat; c.device = keep.device   // where, not how
        case .mobilenetv2, .shufflenetv2:
            c.model = model
            c.epochs = 15
            c.batchSize = 128
            c.optimizer = .sgd
            c.learningRate = 0.1
            c.momentum = 0.9
            c.nesterov = true
            c.weightDecay = 4e-5
            c.schedule.kind = .onecycle
            c.labelSmoothing = 0.1
            var a = AugmentationConfig(horizontalFlip: 0.5, rotationDegrees: 0)
            a.cropPadding = 4
            a.paddingMode = .reflect
            a.normalization = .cifar10
            c.augmentation = a
        case .fast:
            // airbench94's hyper-parameters in this trainer's terms. airbench sums the loss over the
            // batch and gives PyTorch's SGD lr = 11.5 / kilostep, kilostep = 1024 (1 + 1/(1 - momentum)),
            // and weight_decay = wd / lr with wd = 0.0153 · 1024 / kilostep: every step decays each
            // weight by (schedule) · 0.0153 / (1 + 1/0.15) = 0.002 of itself. With a mean loss the
            // gradient is 1024x smaller, so lr = 1024 · 11.5 / kilostep = 1.5, and the same decay
            // step lr · weightDecay = 0.002 needs weightDecay = 0.0153 / 11.5 = 1.33e-3.
            // BatchNorm biases: 64x lr and 1/64 decay (the same decay step, as airbench's wd / lr_biases).
            c.model = .fast
            c.epochs = 10
            c.batchSize = 1024
            c.optimizer = .sgd
            c.learningRate = 11.5 / (1 + 1 / 0.15)
            c.momentum = 0.85
            c.nesterov = true
            c.weightDecay = 0.0153 / 11.5
            c.batchNormBiasLRScale = 64
            c.schedule.kind = .triangle
            c.schedule.warmupStart = 0.2
            c.schedule.pctStart = 0.23
            c.schedule.endFraction = 0.07
            c.lookaheadEvery = 5
            c.whiteningBiasEpochs = 3
            c.labelSmoothing = 0.2
            var a = AugmentationConfig(horizontalFlip: 0.5, rotationDegrees: 0)
            a.alternatingFlip = true
            a.cropPadding = 2
            a.paddingMode = .reflect
            a.normalization = .cifar10
            c.augmentation = a
            c.testTimeFlip = true
            c.testTimeTranslate = true
        }
    }
}
