import CNNCore
import Datasets
import NN

/// Named training recipes: a model with the settings it is tuned for (`cnn train --recipe NAME`).
/// A recipe sets config values over the defaults or the config file; options given on the command
/// line still override it.
public enum Recipe: String, CaseIterable, Codable, Sendable, CustomStringConvertible {
    case guide, mobilenetv2, shufflenetv2

    public var description: String { rawValue }

    /// One line: what the recipe does.
    public var summary: String {
        switch self {
        case .guide:
            return "the PyTorch CIFAR-10 guide (the defaults): optimized, Adam 1e-3, batch 64, flip + rotation 15, plateau schedule, 15 epochs"
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
        }
    }

    /// The recipe a model is tuned for (nil: none beyond the defaults' guide recipe, which only the
    /// guide's two models were tuned with).
    public static func tuned(for model: ModelKind) -> Recipe? {
        switch model {
        case .cnn, .optimized: return .guide
        case .mobilenetv2: return .mobilenetv2
        case .shufflenetv2: return .shufflenetv2
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
        }
    }
}
