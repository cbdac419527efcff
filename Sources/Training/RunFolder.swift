import CNNCore
import Datasets
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import NN

/// A metrics line of a training step (`logEvery`): the running totals of the epoch so far.
package struct StepMetrics: Codable, Sendable, Equatable {
    package var step: Int
    package var epoch: Int
    package var trainLoss: Double
    package var trainAccuracy: Double
    package var learningRate: Double

    package init(step: Int, epoch: Int, trainLoss: Double, trainAccuracy: Double, learningRate: Double) {
        self.step = step; self.epoch = epoch; self.trainLoss = trainLoss; self.trainAccuracy = trainAccuracy
        self.learningRate = learningRate
    }
}

/// The folder a training run writes (`runs/NAME`): config.json, metrics.jsonl, the TensorBoard
/// event file, the latest.* and best.* checkpoints, the test reports and filters.png. The
/// `Trainer` runs the loop and hands its results here; nothing else writes into the folder.
package final class RunFolder {
    package let url: URL
    private var tensorBoard: TensorBoardWriter?
    /// Test seam: called by `saveCheckpoint` between writing the tensor files and the commit point;
    /// throwing there simulates a write that fails mid-checkpoint (full disk, folder gone read-only).
    package var checkpointFault: ((_ stem: String) throws -> Void)?

    package init(url: URL) { self.url = url }

    package var configURL: URL { url.appendingPathComponent("config.json") }
    package var metricsURL: URL { url.appendingPathComponent("metrics.jsonl") }
    package var filtersURL: URL { url.appendingPathComponent("filters.png") }

    /// Creates the folder and writes config.json; metrics.jsonl and the TensorBoard event file
    /// restart from `history` (the epochs of a resumed checkpoint), so neither ever holds an epoch
    /// that the checkpoint dropped.
    package func start(config: TrainConfig, history: [EpochMetrics], probeBytes: Int = 1 << 20) throws {
        try probeWritable(bytes: probeBytes)
        for stem in ["latest", "best"] { try Checkpoint.completePending(dir: url, stem: stem) }
        removeLeftovers()
        try AtomicFile.write(Data(config.json().utf8), to: configURL)
        try AtomicFile.write(Data(history.map(Self.jsonLine).joined().utf8), to: metricsURL)
        // One event file per run folder (`tensorboard --logdir runs`).
        for old in (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? [] where old.hasPrefix("events.out.tfevents.") {
            try? FileManager.default.removeItem(at: url.appendingPathComponent(old))
        }
        tensorBoard = try TensorBoardWriter(directory: url)
        for m in history { try tensorBoard?.add(scalars: Self.tensorBoardScalars(m), step: m.epoch) }
    }

    /// Files a killed process left behind: temporaries of atomic writes (`.NAME.tmp-PID-N`) and probe
    /// files (`.write-probe-PID`) of processes that are gone, and pending checkpoint files that no
    /// committed save names (`completePending` has already renamed those that one does). Each can be
    /// as large as the model, and their names never repeat, so nothing else would replace them.
    func removeLeftovers() {
        let fm = FileManager.default
        func alive(_ pid: Int32) -> Bool { pid == getpid() || kill(pid, 0) == 0 || errno == EPERM }
        for name in (try? fm.contentsOfDirectory(atPath: url.path)) ?? [] where name.hasPrefix(".") {
            var stale = false
            if let r = name.range(of: ".tmp-") {
                let pid = name[r.upperBound...].split(separator: "-").first.flatMap { Int32($0) }
                stale = pid.map { !alive($0) } ?? false
            } else if name.hasPrefix(".write-probe-") {
                stale = Int32(name.dropFirst(".write-probe-".count)).map { !alive($0) } ?? false
            } else if name.contains(".pending.") {
                stale = true   // not committed (a committed one was renamed into place just before)
            }
            if stale { try? fm.removeItem(at: url.appendingPathComponent(name)) }
        }
    }

    /// Before training: creates the folder and writes, fsyncs and deletes a probe file of `bytes`
    /// (about one checkpoint set), so that a read-only, unwritable or full folder is reported now,
    /// naming the folder and what to do, instead of after the first epoch.
    package func probeWritable(bytes: Int) throws {
        let advice = "choose another folder with --runs-dir DIR (or --name), or make \(url.path) writable"
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            let why = (error as NSError).localizedFailureReason ?? (error as NSError).localizedDescription
            throw CNNError.io("cannot create the run folder \(url.path): \(why) — \(advice)")
        }
        let probe = url.appendingPathComponent(".write-probe-\(getpid())")
        defer { unlink(probe.path) }
        let fd = open(probe.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else {
            throw CNNError.io("the run folder \(url.path) is not writable (\(String(cString: strerror(errno)))) — \(advice)")
        }
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0, count: min(bytes, 1 << 20))
        var left = bytes
        while left > 0 {
            let n = chunk.withUnsafeBytes { Glibc.write(fd, $0.baseAddress!, min(left, $0.count)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw CNNError.io("cannot write \(bytes / 1_048_576 + 1) MiB (about one checkpoint) into the run folder \(url.path): "
                    + "\(String(cString: strerror(errno))) — free some space or \(advice)")
            }
            left -= n
        }
        guard fsync(fd) == 0 else {
            throw CNNError.io("cannot flush a file in the run folder \(url.path): \(String(cString: strerror(errno))) — free some space or \(advice)")
        }
    }

    /// Writes the checkpoint set `stem` (latest, best).
    package func saveCheckpoint(_ stem: String, model: Model, optimizer: Optimizer, state: CheckpointState,
                               normalization: Normalization) throws {
        try Checkpoint.save(dir: url, stem: stem, model: model, optimizer: optimizer, state: state, normalization: normalization,
                            beforeCommit: checkpointFault.map { fault in { try fault(stem) } })
    }

    /// The model file of checkpoint `stem`, if it exists.
    package func checkpointModel(_ stem: String) -> URL? {
        let u = Checkpoint.modelURL(url, stem)
        return FileManager.default.fileExists(atPath: u.path) ? u : nil
    }

    /// Appends the epoch to metrics.jsonl and to the TensorBoard curves.
    package func record(_ m: EpochMetrics) throws {
        try appendLine(Self.jsonLine(m), to: metricsURL)
        try tensorBoard?.add(scalars: Self.tensorBoardScalars(m), step: m.epoch)
    }

    /// TensorBoard images of the first training batch before and after augmentation (tags
    /// Samples/raw, Samples/augmented), as the guide's `add_image` of a `make_grid`.
    package func recordSampleGrids(data: TrainingData, config: TrainConfig) throws {
        let s = try RunFigures.sampleFigures(data: data, config: config, count: 16)
        try tensorBoard?.add(images: [("Samples/raw", s.raw), ("Samples/augmented", s.augmented)], step: 0)
    }

    /// TensorBoard: the first-layer filters as an image (tag Conv1_Weights, as the guide's
    /// `add_images`), and with `histograms` the weights and gradients of every parameter
    /// (Weights/NAME, Gradients/NAME; the gradients are those of the epoch's last step).
    package func recordModel(_ model: Model, epoch: Int, histograms: Bool) throws {
        guard let tb = tensorBoard else { return }
        if let (_, conv) = Visualization.firstConvolution(of: model) {
            let w = try model.backend.host(conv.weight.value)
            let grid = try Visualization.filterGrid(w, scale: Figures.filterScale(kernel: max(w.shape[2], w.shape[3])))
            try tb.add(images: [("Conv1_Weights", grid)], step: epoch)
        }
        guard histograms else { return }
        var h: [(tag: String, values: [Float])] = []
        for (name, p) in model.parameters {
            h.append(("Weights/\(name)", try model.backend.floats(p.value)))
            h.append(("Gradients/\(name)", try model.backend.floats(p.grad)))
        }
        try tb.add(histograms: h, step: epoch)
    }

    /// Appends a step line to metrics.jsonl.
    package func record(_ s: StepMetrics) throws {
        try appendLine(Self.jsonLine(s), to: metricsURL)
    }

    /// `<stem>_report.txt`, `<stem>_confusion_matrix.csv` and `<stem>_metrics.json`.
    package func writeReport(_ r: EvaluationResult, stem: String) throws {
        try Training.writeReport(r, to: url, stem: stem)
    }

    /// filters.png: the learned first-layer filters; returns the layer's name.
    package func writeFilters(of model: Model) throws -> String {
        try Visualization.writeFirstLayerFilters(of: model, to: filtersURL.path)
    }

    /// The epoch's curves under the tags of the PyTorch guide's SummaryWriter calls.
    static func tensorBoardScalars(_ m: EpochMetrics) -> [(tag: String, value: Double)] {
        [("Loss/train", m.trainLoss), ("Loss/val", m.validationLoss), ("Accuracy/train", m.trainAccuracy),
         ("Accuracy/val", m.validationAccuracy), ("LearningRate", m.learningRate), ("ImagesPerSecond", m.imagesPerSecond)]
    }

    // metrics.jsonl lines: snake_case keys, each number with a fixed precision (JSONEncoder would
    // write every float's shortest round-trip digits, changing the file's bytes and width).

    static func jsonLine(_ m: EpochMetrics) -> String {
        jsonObject([("epoch", "\(m.epoch)"), ("train_loss", jsonNumber(m.trainLoss, "%.6f")),
                    ("train_accuracy", jsonNumber(m.trainAccuracy, "%.6f")), ("val_loss", jsonNumber(m.validationLoss, "%.6f")),
                    ("val_accuracy", jsonNumber(m.validationAccuracy, "%.6f")), ("lr", jsonNumber(m.learningRate, "%.6g")),
                    ("seconds", jsonNumber(m.seconds, "%.3f")), ("images_per_second", jsonNumber(m.imagesPerSecond, "%.1f"))])
    }

    static func jsonLine(_ s: StepMetrics) -> String {
        jsonObject([("step", "\(s.step)"), ("epoch", "\(s.epoch)"), ("train_loss", jsonNumber(s.trainLoss, "%.6f")),
                    ("train_accuracy", jsonNumber(s.trainAccuracy, "%.6f")), ("lr", jsonNumber(s.learningRate, "%.6g"))])
    }

    /// One JSON object on one line, keys in the given order (values already JSON).
    static func jsonObject(_ fields: [(key: String, value: String)]) -> String {
        "{" + fields.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",") + "}\n"
    }
}

/// Writes `<stem>_report.txt` (classification report + confusion matrix), `<stem>_confusion_matrix.csv`
/// and `<stem>_metrics.json` into `dir`.
package func writeReport(_ r: EvaluationResult, to dir: URL, stem: String) throws {
    let text = String(format: "accuracy %.4f  loss %.4f\n\n", r.accuracy, r.loss) + r.confusion.classificationReport()
        + "\nconfusion matrix (rows: true class, columns: predicted)\n" + r.confusion.formatted()
    try AtomicFile.write(Data(text.utf8), to: dir.appendingPathComponent("\(stem)_report.txt"))
    try AtomicFile.write(Data(r.confusion.csv().utf8), to: dir.appendingPathComponent("\(stem)_confusion_matrix.csv"))
    let json = try JSONSerialization.data(withJSONObject: r.jsonObject(), options: [.prettyPrinted, .sortedKeys])
    try AtomicFile.write(json, to: dir.appendingPathComponent("\(stem)_metrics.json"))
    if !r.top3.isEmpty, r.labels.count == r.top3.count {
        try AtomicFile.write(Data(RunFigures.predictionsCSV(r).utf8), to: dir.appendingPathComponent("\(stem)_predictions.csv"))
    }
}

func appendLine(_ line: String, to url: URL) throws {
    if !FileManager.default.fileExists(atPath: url.path), !FileManager.default.createFile(atPath: url.path, contents: nil) {
        throw CNNError.io("cannot create \(url.path): check that the run folder is writable")
    }
    guard let h = try? FileHandle(forWritingTo: url) else { throw CNNError.io("cannot append to \(url.path)") }
    defer { try? h.close() }
    h.seekToEndOfFile()
    h.write(Data(line.utf8))
}

/// A number for a JSON line: NaN and infinities (a diverged loss) become null, which JSON readers
/// accept, instead of the bare `nan` that printf writes.
func jsonNumber(_ v: Double, _ format: String) -> String {
    v.isFinite ? String(format: format, v) : "null"
}
