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
    /// Steps of epoch `epoch + 1` already done when the run was stopped mid-epoch (SIGINT/SIGTERM,
    /// `Trainer.stopRequested`); nil or 0: the checkpoint is at an epoch boundary. Resume skips these
    /// batches of the epoch (the data order is a function of seed and epoch) and restores the
    /// epoch's running loss and accuracy sums, so the resumed run equals the uninterrupted one.
    public var stepInEpoch: Int?
    /// The partial epoch's device-side sums (loss, correct count) and image count, with `stepInEpoch`.
    public var partialLossSum: Float?
    public var partialCorrectSum: Float?
    public var partialSeen: Int?
    /// The learning-rate multiplier left by `--on-nan skip` recoveries (nil: 1).
    public var learningRateScale: Double?
    /// A fresh identifier of each save, also written into both tensor files: the commit token that
    /// ties the three files of one save together (nil in checkpoints of older versions).
    public var saveID: String?
}

/// Reads and writes checkpoints: `<stem>.safetensors` (the model, PyTorch state-dict names),
/// `<stem>.optim.safetensors` (optimizer tensors) and `<stem>.json` (everything else).
///
/// A save is a two-phase commit, so that `kill -9` at any instant leaves either the previous set or
/// the new one, never a mix that resume accepts:
/// 1. both tensor files are written (each atomically: temporary file, fsync, rename) under pending
///    names `.<stem>.pending.safetensors` and `.<stem>.pending.optim.safetensors`;
/// 2. `<stem>.json` is written atomically: the commit point. It holds a fresh `saveID`, which both
///    tensor files also carry in their metadata;
/// 3. the pending files are renamed over `<stem>.safetensors` and `<stem>.optim.safetensors`.
/// A crash before 2 leaves the previous set whole (its JSON still names the previous files); a crash
/// after 2 is rolled forward by `load`, which takes each tensor file from its final or its pending
/// name, whichever carries the JSON's `saveID`, and refuses with a message when neither does.
public enum Checkpoint {
    /// `.<stem>.pending.safetensors` / `.<stem>.pending.optim.safetensors` beside `final`.
    static func pendingURL(_ final: URL) -> URL {
        let name = final.lastPathComponent
        let optim = name.hasSuffix(".optim.safetensors")
        let stem = String(name.dropLast(optim ? ".optim.safetensors".count : ".safetensors".count))
        return final.deletingLastPathComponent().appendingPathComponent("." + stem + ".pending" + (optim ? ".optim.safetensors" : ".safetensors"))
    }

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
                            normalization: Normalization, beforeCommit: (() throws -> Void)? = nil) throws {
        try completePending(dir: dir, stem: stem)   // never overwrite the pending files of a committed save
        var state = state
        let id = UUID().uuidString
        state.saveID = id
        var meta = modelMetadata(model: model, classNames: state.classNames, normalization: normalization, epoch: state.epoch)
        meta["swiftcnn_save_id"] = id
        let (mURL, oURL) = (modelURL(dir, stem), optimizerURL(dir, stem))
        try SafeTensors.write(try model.stateDict(), metadata: meta, to: pendingURL(mURL))
        let opt = try optimizer.state()
        meta = ["swiftcnn_epoch": String(state.epoch), "swiftcnn_optimizer_step": String(opt.step), "swiftcnn_save_id": id]
        try SafeTensors.write(opt.tensors.map { ($0.0, .float($0.1)) }, metadata: meta, to: pendingURL(oURL))
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try beforeCommit?()
        // A plateau schedule that has not seen a validation loss holds best = +inf, and a diverged run
        // may hold NaN: JSON has neither, so they are written as strings (and read back the same way).
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        try AtomicFile.write(try enc.encode(state), to: stateURL(dir, stem))
        try commitPending(mURL)
        try commitPending(oURL)
    }

    /// Finishes a save that was interrupted after its commit point (its JSON names a `saveID` that
    /// only the pending tensor files carry): renames them into place. Called before a new save of
    /// the same stem overwrites the pending files, and when a run folder is opened, so that `best`
    /// (which resume does not load) is rolled forward too. Nothing to do in the usual case.
    static func completePending(dir: URL, stem: String) throws {
        let (mURL, oURL) = (modelURL(dir, stem), optimizerURL(dir, stem))
        let fm = FileManager.default
        guard fm.fileExists(atPath: pendingURL(mURL).path) || fm.fileExists(atPath: pendingURL(oURL).path),
              let data = fm.contents(atPath: stateURL(dir, stem).path),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let id = object["saveID"] as? String else { return }
        for final in [mURL, oURL] where fm.fileExists(atPath: pendingURL(final).path) {
            // readCommitted renames the pending file when it carries the committed save's id.
            _ = try readCommitted(final, id: id)
        }
    }

    static func commitPending(_ final: URL) throws {
        let pending = pendingURL(final)
        guard rename(pending.path, final.path) == 0 else {
            throw CNNError.io("cannot rename \(pending.path) to \(final.path): \(String(cString: strerror(errno)))")
        }
    }

    /// The tensors and metadata of a checkpoint file for the save `id`: the final file when it
    /// carries `id`, else the pending one (a save interrupted after its commit point), which is then
    /// renamed into place; nil when neither does.
    static func readCommitted(_ final: URL, id: String) throws -> (entries: [(String, StateValue)], metadata: [String: String])? {
        if FileManager.default.fileExists(atPath: final.path) {
            let r = try SafeTensors.read(final)
            if r.metadata["swiftcnn_save_id"] == id { return r }
        }
        let pending = pendingURL(final)
        guard FileManager.default.fileExists(atPath: pending.path) else { return nil }
        let r = try SafeTensors.read(pending)
        guard r.metadata["swiftcnn_save_id"] == id else { return nil }
        try commitPending(final)
        return r
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
        let model_, optim_: (entries: [(String, StateValue)], metadata: [String: String])
        if let id = state.saveID {
            let (mURL, oURL) = (modelURL(dir, stem), optimizerURL(dir, stem))
            guard let m = try readCommitted(mURL, id: id), let o = try readCommitted(oURL, id: id) else {
                throw CNNError.invalidData("cannot resume: the checkpoint files in \(dir.path) do not belong to \(stem).json "
                    + "(save \(id)): the run was interrupted while saving or they were replaced — restart the run (a best.* set, when "
                    + "there is one, still evaluates with cnn eval)")
            }
            (model_, optim_) = (m, o)
        } else {
            // Checkpoints written before `saveID`: their tensor files carry the epoch only.
            (model_, optim_) = (try SafeTensors.read(modelURL(dir, stem)), try SafeTensors.read(optimizerURL(dir, stem)))
        }
        let (entries, meta) = model_, (optEntries, optMeta) = optim_
        guard meta["swiftcnn_epoch"] == String(state.epoch), optMeta["swiftcnn_epoch"] == String(state.epoch) else {
            throw CNNError.invalidData("cannot resume: the checkpoint files in \(dir.path) are from different epochs "
                + "(\(stem).json: \(state.epoch), model: \(meta["swiftcnn_epoch"] ?? "?"), optimizer: \(optMeta["swiftcnn_epoch"] ?? "?")); "
                + "the run was interrupted while saving — restart the run (a best.* set, when there is one, still evaluates with cnn eval)")
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
