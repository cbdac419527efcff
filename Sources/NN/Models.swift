import CNNCore

/// The built-in architectures: one case per model, with its description and its network in the
/// same place. Each is defined with PyTorch's module names, so checkpoints exchange with the
/// PyTorch classes of the same structure (see README, "Models"). The raw value is the name used
/// by `--model`, config files and checkpoints.
public enum ModelKind: String, CaseIterable, Codable, Sendable, CustomStringConvertible {
    case cnn, optimized, speedrun, lite, resnet8
    case mobilenetv2, shufflenetv2, fast

    /// The name (`--model`, config files, checkpoint metadata).
    public var name: String { rawValue }
    public var description: String { rawValue }

    /// One line describing the architecture.
    public var summary: String {
        switch self {
        case .cnn: return "the guide's CNN: conv(3->32)-ReLU-pool, conv(32->64)-ReLU-pool, fc 512, fc classes"
        case .optimized: return "the guide's OptimizedCNN: the same convs with BatchNorm, Dropout 0.25/0.5"
        case .speedrun: return "deeper net (0.55 GFLOP/img at 32x32): conv 64, three conv-pool-BN-ReLU-conv-BN-ReLU blocks (128, 256, 256), global max pool"
        case .lite: return "a lighter net: conv(3->16)-BN-ReLU-pool, conv(16->32)-BN-ReLU-pool, conv(32->64)-BN-ReLU, global average pool, fc"
        case .resnet8: return "a small residual net: stem conv 32, three residual stages (32, 64, 128), global average pool, fc"
        case .mobilenetv2, .shufflenetv2, .fast: return lightweightSummary
        }
    }

    /// The valid names, for messages and help ("cnn, optimized, ...").
    public static var validNames: String { allCases.map(\.rawValue).joined(separator: ", ") }

    /// The model called `name`; unknown names throw an error that lists the valid ones.
    public init(named name: String) throws {
        guard let k = ModelKind(rawValue: name) else {
            throw CNNError.invalidArgument("unknown model '\(name)'; valid models: \(ModelKind.validNames)")
        }
        self = k
    }

    /// Config files and checkpoints store the name; a bad one names the key, the value and the valid names.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let s = try c.decode(String.self)
        guard let k = ModelKind(rawValue: s) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "unknown model '\(s)'; valid models: \(ModelKind.validNames)")
        }
        self = k
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }

    /// The network for per-sample inputs (C, H, W) and `classes` outputs.
    public func network(inputShape: Shape, classes: Int) throws -> Sequential {
        try require(inputShape.rank == 3, "models take (C, H, W) inputs, got \(inputShape)")
        let c = inputShape[0], h = inputShape[1], w = inputShape[2]
        switch self {
        case .cnn:
            // class CNN: conv1, conv2, pool, fc1, fc2 — the pool is shared in PyTorch and has no parameters.
            return Sequential(named: [
                ("conv1", Conv2d(c, 32, kernel: 3, padding: 1)), ("relu1", ReLU()), ("pool1", MaxPool2d(2)),
                ("conv2", Conv2d(32, 64, kernel: 3, padding: 1)), ("relu2", ReLU()), ("pool2", MaxPool2d(2)),
                ("flatten", Flatten()),
                ("fc1", Linear(64 * (h / 4) * (w / 4), 512)), ("relu3", ReLU()),
                ("fc2", Linear(512, classes)),
            ])
        case .optimized:
            return Sequential(named: [
                ("conv1", Sequential(Conv2d(c, 32, kernel: 3, padding: 1), BatchNorm2d(32), ReLU(), MaxPool2d(2))),
                ("conv2", Sequential(Conv2d(32, 64, kernel: 3, padding: 1), BatchNorm2d(64), ReLU(), Dropout(0.25), MaxPool2d(2))),
                ("flatten", Flatten()),
                ("fc", Sequential(Linear(64 * (h / 4) * (w / 4), 512), ReLU(), Dropout(0.5), Linear(512, classes))),
            ])
        case .speedrun:
            func block(_ cin: Int, _ cout: Int) -> Sequential {
                Sequential(Conv2d(cin, cout, kernel: 3, padding: 1, bias: false), MaxPool2d(2), BatchNorm2d(cout), ReLU(),
                           Conv2d(cout, cout, kernel: 3, padding: 1, bias: false), BatchNorm2d(cout), ReLU())
            }
            return Sequential(named: [
                ("stem", Sequential(Conv2d(c, 64, kernel: 3, padding: 1, bias: false), BatchNorm2d(64), ReLU())),
                ("layers", Sequential(block(64, 128), block(128, 256), block(256, 256))),
                ("pool", GlobalMaxPool()),
                ("head", Linear(256, classes, bias: false)),
            ])
        case .lite:
            return Sequential(named: [
                ("features", Sequential(
                    Conv2d(c, 16, kernel: 3, padding: 1), BatchNorm2d(16), ReLU(), MaxPool2d(2),
                    Conv2d(16, 32, kernel: 3, padding: 1), BatchNorm2d(32), ReLU(), MaxPool2d(2),
                    Conv2d(32, 64, kernel: 3, padding: 1), BatchNorm2d(64), ReLU())),
                ("pool", GlobalAvgPool()),
                ("fc", Linear(64, classes)),
            ])
        case .resnet8:
            func basic(_ cin: Int, _ cout: Int, stride: Int) -> Sequential {
                let body = Sequential(Conv2d(cin, cout, kernel: 3, stride: stride, padding: 1, bias: false), BatchNorm2d(cout), ReLU(),
                                      Conv2d(cout, cout, kernel: 3, padding: 1, bias: false), BatchNorm2d(cout))
                let shortcut = (stride != 1 || cin != cout)
                    ? Sequential(Conv2d(cin, cout, kernel: 1, stride: stride, bias: false), BatchNorm2d(cout)) : nil
                return Sequential(Residual(body, shortcut: shortcut), ReLU())
            }
            return Sequential(named: [
                ("stem", Sequential(Conv2d(c, 32, kernel: 3, padding: 1, bias: false), BatchNorm2d(32), ReLU())),
                ("layer1", basic(32, 32, stride: 1)),
                ("layer2", basic(32, 64, stride: 2)),
                ("layer3", basic(64, 128, stride: 2)),
                ("pool", GlobalAvgPool()),
                ("fc", Linear(128, classes)),
            ])
        case .mobilenetv2, .shufflenetv2, .fast:
            return try lightweightNetwork(channels: c, classes: classes)
        }
    }
}

/// Model construction by kind, or by name (checkpoints and other callers that hold a string).
public enum ModelZoo {
    /// The valid model names, in `ModelKind` order.
    public static var names: [String] { ModelKind.allCases.map(\.rawValue) }

    /// The network called `name`; unknown names throw an error listing the valid ones.
    public static func network(_ name: String, inputShape: Shape, classes: Int) throws -> Sequential {
        try ModelKind(named: name).network(inputShape: inputShape, classes: classes)
    }

    /// Builds model `kind` on `backend`.
    public static func make(_ kind: ModelKind, inputShape: Shape = [3, 32, 32], classes: Int = 10,
                            backend: any Backend, seed: UInt64) throws -> Model {
        try Model(name: kind.rawValue, network: try kind.network(inputShape: inputShape, classes: classes),
                  inputShape: inputShape, backend: backend, seed: seed)
    }

    /// Builds the model called `name` on `backend` (unknown names: an error listing the valid ones).
    public static func make(_ name: String, inputShape: Shape = [3, 32, 32], classes: Int = 10,
                            backend: any Backend, seed: UInt64) throws -> Model {
        try make(try ModelKind(named: name), inputShape: inputShape, classes: classes, backend: backend, seed: seed)
    }
}
