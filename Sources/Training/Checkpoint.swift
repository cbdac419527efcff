import CNNCore
import Datasets
import Foundation
import NN

/// Metrics of one epoch (one line of metrics.jsonl).
public struct EpochMetrics: Codable, Sendable, Equatable {
    public var epoch: Int
    public var trainLoss: Double
    public var trainAccuracy: Double
    public var validationLoss: Double
    public var validationAccuracy: Double
    public var learningRate: Double
    public var seconds: Double
    public var imagesPerSecond: Double
}

/// The state that, with the model and optimizer tensors, resumes a run exactly.
public struct CheckpointState: Codable, Sendable {
    public static let formatVersion = "swiftcnn-checkpoint-1"
    public var format = CheckpointState.formatVersion
    public var config: TrainConfig
    public var model: String
    public var inputShape: [Int]
    public var classNames: [String]
    /// Epochs completed (1-based count).
    public var epoch: Int
    public var globalStep: Int
    public var optimizerStep: Int
    public var schedule: LRSchedule
    public var history: [EpochMetrics]
    public var bestValidationAccuracy: Double
    public var bestEpoch: Int
    public var bestValidationLoss: Double
    public var epochsWithoutImprovement: Int
    public var savedAt: String
}

/// Reads and writes checkpoints: `<stem>.safetensors` (the model, PyTorch state-dict names),
/// `<stem>.optim.safetensors` (optimizer tensors) and `<stem>.json` (everything else). Each file is
/// written atomically and the JSON last: it is the commit point, and both tensor files carry its
/// epoch in their metadata, so a set torn by a crash is detected instead of silently mixed.
public enum Checkpoint {
    public static func modelURL(_ dir: URL, _ stem: String) -> URL { dir.appendingPathComponent("\(stem).safetensors") }
    static func optimizerURL(_ dir: URL, _ stem: String) -> URL { dir.appendingPathComponent("\(stem).optim.safetensors") }
    static func stateURL(_ dir: URL, _ stem: String) -> URL { dir.appendingPathComponent("\(stem).json") }

    /// Metadata stored in the model file, enough for `cnn eval` / `cnn predict` to rebuild the model.
    public static func modelMetadata(model: Model, classNames: [String], normalization: Normalization, epoch: Int) -> [String: String] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys   // the same run writes the same bytes
        let norm = (try? encoder.encode(normalization)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        return ["format": "pt", "swiftcnn_model": model.name,
                "swiftcnn_input_shape": model.inputShape.dims.map(String.init).joined(separator: ","),
                "swiftcnn_classes": classNames.joined(separator: "\n"),
                "swiftcnn_normalization": norm, "swiftcnn_epoch": String(epoch)]
    }

    public static func save(dir: URL, stem: String, model: Model, optimizer: Optimizer, state: CheckpointState,
                            normalization: Normalization) throws {
        var meta = modelMetadata(model: model, classNames: state.classNames, normalization: normalization, epoch: state.epoch)
        try SafeTensors.write(try model.stateDict(), metadata: meta, to: modelURL(dir, stem))
        let opt = try optimizer.state()
        meta = ["swiftcnn_epoch": String(state.epoch), "swiftcnn_optimizer_step": String(opt.step)]
        try SafeTensors.write(opt.tensors.map { ($0.0, .float($0.1)) }, metadata: meta, to: optimizerURL(dir, stem))
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        // A plateau schedule that has not seen a validation loss holds best = +inf, and a diverged run
        // may hold NaN: JSON has neither, so they are written as strings (and read back the same way).
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        try AtomicFile.write(try enc.encode(state), to: stateURL(dir, stem))
    }

    /// Loads a checkpoint into `model` and `optimizer` and returns its state.
    public static func load(dir: URL, stem: String, model: Model, optimizer: Optimizer) throws -> CheckpointState {
        let su = stateURL(dir, stem)
        guard let data = FileManager.default.contents(atPath: su.path) else {
            throw CNNError.io("cannot resume: \(su.path) does not exist (a run folder holds latest.json after its first epoch)")
        }
        let state: CheckpointState
        let dec = JSONDecoder()
        dec.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do { state = try dec.decode(CheckpointState.self, from: data) } catch {
            throw CNNError.invalidData("cannot resume: \(su.path) is not a SwiftCNN checkpoint state (\(error))")
        }
        try require(state.format == CheckpointState.formatVersion, "cannot resume: \(su.path) has format \(state.format), expected \(CheckpointState.formatVersion)")
        try require(state.model == model.name, "cannot resume: \(su.path) is a checkpoint of model '\(state.model)', not '\(model.name)'")
        let (entries, meta) = try SafeTensors.read(modelURL(dir, stem))
        let (optEntries, optMeta) = try SafeTensors.read(optimizerURL(dir, stem))
        guard meta["swiftcnn_epoch"] == String(state.epoch), optMeta["swiftcnn_epoch"] == String(state.epoch) else {
            throw CNNError.invalidData("cannot resume: the checkpoint files in \(dir.path) are from different epochs "
                + "(\(stem).json: \(state.epoch), model: \(meta["swiftcnn_epoch"] ?? "?"), optimizer: \(optMeta["swiftcnn_epoch"] ?? "?")); "
                + "the run was interrupted while saving — resume from best.json or restart")
        }
        try model.load(stateDict: entries, source: modelURL(dir, stem).path)
        var tensors: [(String, HostTensor)] = []
        for (n, v) in optEntries {
            guard case .float(let t) = v else { throw CNNError.invalidData("\(optimizerURL(dir, stem).path): tensor \(n) is not float32") }
            tensors.append((n, t))
        }
        try optimizer.loadState(tensors: tensors, step: state.optimizerStep)
        return state
    }

    /// Rebuilds the model stored in a `.safetensors` file written by SwiftCNN (or by PyTorch, given
    /// `modelName`, `classNames` and `inputShape`), on `backend`.
    public static func loadModel(path: String, backend: any Backend, modelName: String? = nil, classNames: [String]? = nil,
                                 inputShape: Shape? = nil) throws -> (model: Model, classNames: [String], normalization: Normalization) {
        let (entries, meta) = try SafeTensors.read(URL(fileURLWithPath: path))
        guard let name = modelName ?? meta["swiftcnn_model"] else {
            throw CNNError.invalidArgument("\(path) does not say which model it holds (no SwiftCNN metadata): pass --model \(ModelKind.allCases.map(\.rawValue).joined(separator: "|"))")
        }
        let shape = try inputShape ?? meta["swiftcnn_input_shape"].map { s -> Shape in
            let d = s.split(separator: ",").compactMap { Int($0) }
            try require(d.count == 3, "\(path): bad swiftcnn_input_shape '\(s)'")
            return Shape(d)
        } ?? [3, 32, 32]
        let classes = classNames ?? meta["swiftcnn_classes"].map { $0.split(separator: "\n").map(String.init) } ?? CIFAR10.defaultClassNames
        var norm = Normalization.half
        if let n = meta["swiftcnn_normalization"], let d = n.data(using: .utf8), let v = try? JSONDecoder().decode(Normalization.self, from: d) {
            norm = v
        }
        let model = try ModelZoo.make(name, inputShape: shape, classes: classes.count, backend: backend, seed: 0)
        try model.load(stateDict: entries, source: path)
        return (model, classes, norm)
    }
}
