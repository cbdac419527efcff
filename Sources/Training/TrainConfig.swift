import CNNCore
import Datasets
import Foundation
import NN

/// Everything that defines a training run. Defaults are the PyTorch CIFAR-10 guide's recipe:
/// `optimized`, batch 64, flip + rotation(15) + normalize(0.5), 80/20 split, Adam(lr 1e-3,
/// weight decay 1e-4), ReduceLROnPlateau(patience 3) on validation loss, 15 epochs.
/// A run is reproducible from its config (it is saved in the run folder and in checkpoints).
public struct TrainConfig: Codable, Sendable, Equatable {
    public enum OptimizerKind: String, Codable, Sendable, CaseIterable { case adam, adamw, sgd }
    /// `auto` (the default) detects the format of `data` (`DataDetection`): CIFAR-10 batch files or
    /// class folders of images; without `data` it is CIFAR-10 from the default locations. A config
    /// that names `cifar10` or `folder` gets exactly that format.
    public enum DataFormat: String, Codable, Sendable, CaseIterable { case auto, cifar10, folder }

    public var model: ModelKind = .optimized
    public var epochs = 15
    public var batchSize = 64
    public var optimizer: OptimizerKind = .adam
    public var learningRate: Double = 1e-3
    public var weightDecay: Double = 1e-4
    public var momentum: Double = 0.9
    public var nesterov = false
    public var beta1: Double = 0.9
    public var beta2: Double = 0.999
    public var schedule: ScheduleConfig = {
        var s = ScheduleConfig()
        s.kind = .plateau
        return s
    }()
    public var labelSmoothing: Double = 0
    /// Stop when validation loss has not improved for this many epochs (nil: never).
    public var earlyStoppingPatience: Int?
    /// Clip the global gradient norm (nil: no clipping).
    public var maxGradNorm: Double?
    public var seed: UInt64 = 42
    public var validationFraction: Double = 0.2
    public var stratify = false
    public var augmentation: AugmentationConfig = .guide

    // Data
    public var dataFormat: DataFormat = .auto
    /// CIFAR-10 folder, or the root of an image-folder dataset (nil: the default locations).
    public var data: String?
    /// Test folder for image-folder datasets (nil: no test set).
    public var testData: String?
    /// Use only the first N training images (nil: all).
    public var limit: Int?
    /// Use only the first N test images (nil: all).
    public var testLimit: Int?
    /// Image-folder inputs are resized to this (C, H, W).
    public var imageChannels = 3
    public var imageSize = 32
    public var workers = 2

    // Run
    /// Encoded as its text (`auto`, `cpu`, `opencl`, `opencl:P:D`), as in old config files.
    public var device: DeviceRequest = .auto
    public var runsDirectory = "runs"
    public var name: String?
    /// Also log a metrics line every N steps (nil: per epoch only).
    public var logEvery: Int?
    /// Evaluate the test set at the end.
    public var evaluateTest = true
    /// Flip test-time augmentation in the final evaluation.
    public var testTimeFlip = false
    /// Translation test-time augmentation in the final evaluation: the predictions of the image
    /// shifted by one pixel up-left and down-right (reflect padding) weigh half (airbench's level 2).
    public var testTimeTranslate = false
    /// Learning-rate multiplier of the BatchNorm biases (their weight decay is divided by it):
    /// airbench's `bias_scaler` 64.
    public var batchNormBiasLRScale: Double = 1
    /// Lookahead/EMA of the weights every this many steps (0: off; airbench: 5). See `Lookahead`.
    public var lookaheadEvery = 0
    /// Train the whitening layer's bias (models with one: `fast`) for this many epochs, then freeze
    /// it (nil: throughout; airbench: 3).
    public var whiteningBiasEpochs: Int?

    public init() {}

    /// A setting with a bad value: its config key ("learningRate", "schedule.patience") and what is
    /// wrong with it. The CLI maps keys to its flags.
    public struct SettingProblem: Sendable, Equatable, CustomStringConvertible {
        public var key: String
        public var problem: String
        public var description: String { "\(key) \(problem)" }
    }

    /// The values a user can get wrong, each naming its config key (empty: the config is valid).
    public func problems() -> [SettingProblem] {
        var out: [SettingProblem] = []
        func check(_ ok: Bool, _ key: String, _ problem: @autoclosure () -> String) {
            if !ok { out.append(SettingProblem(key: key, problem: problem())) }
        }
        check(epochs >= 1, "epochs", "must be at least 1, got \(epochs)")
        check(batchSize >= 1 && batchSize <= 65_536, "batchSize", "must be in 1...65536, got \(batchSize)")
        check(learningRate > 0 && learningRate.isFinite, "learningRate", "must be positive, got \(learningRate)")
        check(weightDecay >= 0, "weightDecay", "must be >= 0, got \(weightDecay)")
        check(momentum >= 0 && momentum < 1, "momentum", "must be in [0, 1), got \(momentum)")
        check(labelSmoothing >= 0 && labelSmoothing < 1, "labelSmoothing", "must be in [0, 1), got \(labelSmoothing)")
        check(validationFraction > 0 && validationFraction < 1, "validationFraction",
              "\(validationFraction) is out of range: it must be strictly between 0 and 1 (e.g. 0.2)")
        check(limit.map { $0 > 0 } ?? true, "limit", "must be positive")
        check(schedule.patience >= 0, "schedule.patience", "must be >= 0")
        check(schedule.factor > 0 && schedule.factor < 1, "schedule.factor", "must be in (0, 1), got \(schedule.factor)")
        check(maxGradNorm.map { $0 > 0 } ?? true, "maxGradNorm", "must be positive")
        check(workers >= 0, "workers", "must be >= 0")
        check(batchNormBiasLRScale > 0 && batchNormBiasLRScale.isFinite, "batchNormBiasLRScale", "must be positive, got \(batchNormBiasLRScale)")
        check(whiteningBiasEpochs.map { $0 >= 0 } ?? true, "whiteningBiasEpochs", "must be >= 0, got \(whiteningBiasEpochs ?? 0)")
        check(lookaheadEvery >= 0, "lookaheadEvery", "must be >= 0 (0: off), got \(lookaheadEvery)")
        check(schedule.kind != .triangle || (schedule.pctStart > 0 && schedule.pctStart < 1), "schedule.pctStart",
              "must be in (0, 1) for the triangle schedule, got \(schedule.pctStart)")
        check(schedule.warmupStart >= 0 && schedule.warmupStart <= 1, "schedule.warmupStart", "must be in [0, 1], got \(schedule.warmupStart)")
        check(schedule.endFraction >= 0 && schedule.endFraction <= 1, "schedule.endFraction", "must be in [0, 1], got \(schedule.endFraction)")
        check(imageSize >= 4, "imageSize", "must be >= 4, got \(imageSize)")
        check(imageChannels == 1 || imageChannels == 3, "imageChannels", "must be 1 or 3, got \(imageChannels)")
        return out
    }

    /// Throws `invalidArgument` naming the first bad setting (see `problems()`).
    public func validate() throws {
        if let p = problems().first { throw CNNError.invalidArgument(p.description) }
    }

    /// Reads a JSON config; unknown keys are an error naming them (a typo must not be ignored).
    public static func load(path: String) throws -> TrainConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CNNError.io("cannot read config file \(path)")
        }
        guard let obj = try? JSONSerialization.jsonObject(with: data), let dict = obj as? [String: Any] else {
            throw CNNError.invalidData("config file \(path) is not a JSON object")
        }
        let known = Set(TrainConfig.CodingKeys.allCases.map(\.stringValue))
        let unknown = dict.keys.filter { !known.contains($0) }.sorted()
        if !unknown.isEmpty {
            throw CNNError.invalidData("config file \(path): unknown setting(s) \(unknown.joined(separator: ", ")); valid: \(known.sorted().joined(separator: ", "))")
        }
        do {
            return try JSONDecoder().decode(TrainConfig.self, from: data)
        } catch let DecodingError.typeMismatch(_, ctx), let DecodingError.valueNotFound(_, ctx) {
            throw CNNError.invalidData("config file \(path): bad value at \(ctx.codingPath.map(\.stringValue).joined(separator: ".")): \(ctx.debugDescription)")
        } catch let DecodingError.dataCorrupted(ctx) {
            let key = ctx.codingPath.map(\.stringValue).joined(separator: ".")
            let valid = enumValues[key].map { "; valid values: \($0.joined(separator: ", "))" } ?? ""
            throw CNNError.invalidData("config file \(path): \(key): \(ctx.debugDescription)\(valid)")
        } catch {
            throw CNNError.invalidData("config file \(path): \(error)")
        }
    }

    /// The settings whose values are enum cases, by key path (`model` and `device` say theirs themselves).
    static let enumValues: [String: [String]] = [
        "optimizer": OptimizerKind.allCases.map(\.rawValue), "dataFormat": DataFormat.allCases.map(\.rawValue),
        "schedule.kind": ScheduleKind.allCases.map(\.rawValue),
        "augmentation.rotationInterpolation": RotationInterpolation.allCases.map(\.rawValue),
        "augmentation.paddingMode": PaddingMode.allCases.map(\.rawValue),
    ]

    public func json() -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: (try? e.encode(self)) ?? Data(), as: UTF8.self)
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case model, epochs, batchSize, optimizer, learningRate, weightDecay, momentum, nesterov, beta1, beta2
        case schedule, labelSmoothing, earlyStoppingPatience, maxGradNorm, seed, validationFraction, stratify, augmentation
        case dataFormat, data, testData, limit, testLimit, imageChannels, imageSize, workers
        case device, runsDirectory, name, logEvery, evaluateTest, testTimeFlip
        case testTimeTranslate, batchNormBiasLRScale, lookaheadEvery, whiteningBiasEpochs
    }

    /// Missing keys keep their defaults, so a config file holds only what it changes.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TrainConfig()
        func get<T: Decodable>(_ k: CodingKeys, _ def: T) throws -> T { try c.decodeIfPresent(T.self, forKey: k) ?? def }
        model = try get(.model, d.model); epochs = try get(.epochs, d.epochs); batchSize = try get(.batchSize, d.batchSize)
        optimizer = try get(.optimizer, d.optimizer); learningRate = try get(.learningRate, d.learningRate)
        weightDecay = try get(.weightDecay, d.weightDecay); momentum = try get(.momentum, d.momentum)
        nesterov = try get(.nesterov, d.nesterov); beta1 = try get(.beta1, d.beta1); beta2 = try get(.beta2, d.beta2)
        schedule = try get(.schedule, d.schedule); labelSmoothing = try get(.labelSmoothing, d.labelSmoothing)
        earlyStoppingPatience = try c.decodeIfPresent(Int.self, forKey: .earlyStoppingPatience)
        maxGradNorm = try c.decodeIfPresent(Double.self, forKey: .maxGradNorm)
        seed = try get(.seed, d.seed); validationFraction = try get(.validationFraction, d.validationFraction)
        stratify = try get(.stratify, d.stratify); augmentation = try get(.augmentation, d.augmentation)
        dataFormat = try get(.dataFormat, d.dataFormat); data = try c.decodeIfPresent(String.self, forKey: .data)
        testData = try c.decodeIfPresent(String.self, forKey: .testData)
        limit = try c.decodeIfPresent(Int.self, forKey: .limit); testLimit = try c.decodeIfPresent(Int.self, forKey: .testLimit)
        imageChannels = try get(.imageChannels, d.imageChannels); imageSize = try get(.imageSize, d.imageSize)
        workers = try get(.workers, d.workers); device = try get(.device, d.device)
        runsDirectory = try get(.runsDirectory, d.runsDirectory); name = try c.decodeIfPresent(String.self, forKey: .name)
        logEvery = try c.decodeIfPresent(Int.self, forKey: .logEvery); evaluateTest = try get(.evaluateTest, d.evaluateTest)
        testTimeFlip = try get(.testTimeFlip, d.testTimeFlip)
        testTimeTranslate = try get(.testTimeTranslate, d.testTimeTranslate)
        batchNormBiasLRScale = try get(.batchNormBiasLRScale, d.batchNormBiasLRScale)
        lookaheadEvery = try get(.lookaheadEvery, d.lookaheadEvery)
        whiteningBiasEpochs = try c.decodeIfPresent(Int.self, forKey: .whiteningBiasEpochs)
    }
}
