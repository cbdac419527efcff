import CNNCore
import Datasets
import Foundation
import NN

/// What a run folder holds, read back for figures and reports: config.json, the epoch lines of
/// metrics.jsonl, test_metrics.json and test_predictions.csv.
package struct RunRecord {
    package struct Epoch: Sendable {
        package var epoch: Int
        package var trainLoss, trainAccuracy, validationLoss, validationAccuracy, learningRate, seconds: Double
    }
    package struct PerClass: Sendable {
        package var name: String
        package var precision, recall, f1: Double
        package var support: Int
    }
    package struct Test: Sendable {
        package var accuracy, loss: Double
        package var images: Int
        package var topK: [(k: Int, accuracy: Double)]
        package var classes: [String]
        package var confusion: [[Int]]
        package var perClass: [PerClass]
    }
    package struct Prediction: Sendable {
        package var index: Int
        package var label: Int
        package var top: [(cls: Int, p: Double)]
    }

    package var url: URL
    package var name: String { url.lastPathComponent }
    /// config.json as written (nil when absent).
    package var config: [String: Any]?
    package var epochs: [Epoch] = []
    package var test: Test?
    package var testOfBest: Test?
    package var predictions: [Prediction] = []

    /// Reads what exists of the run folder `url`; a folder without config.json or metrics.jsonl is
    /// not a run folder (error naming the folder).
    package init(url: URL) throws {
        self.url = url
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue else {
            throw CNNError.invalidArgument("\(url.path) is not a folder: give a run folder written by `cnn train` (runs/NAME)")
        }
        let metrics = url.appendingPathComponent("metrics.jsonl")
        let configURL = url.appendingPathComponent("config.json")
        guard fm.fileExists(atPath: metrics.path) || fm.fileExists(atPath: configURL.path) else {
            throw CNNError.invalidArgument("\(url.path) holds neither config.json nor metrics.jsonl: not a run folder of `cnn train` (runs/NAME)")
        }
        if let d = fm.contents(atPath: configURL.path) {
            guard let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any] else {
                throw CNNError.invalidData("\(configURL.path) is not a JSON object")
            }
            config = o
        }
        if let d = fm.contents(atPath: metrics.path) {
            for (n, line) in String(decoding: d, as: UTF8.self).split(separator: "\n").enumerated() where !line.isEmpty {
                guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                    throw CNNError.invalidData("\(metrics.path) line \(n + 1) is not a JSON object")
                }
                guard o["val_loss"] != nil, let e = o["epoch"] as? Int else { continue }   // step lines
                func num(_ k: String) -> Double { (o[k] as? NSNumber)?.doubleValue ?? .nan }
                epochs.append(Epoch(epoch: e, trainLoss: num("train_loss"), trainAccuracy: num("train_accuracy"),
                                    validationLoss: num("val_loss"), validationAccuracy: num("val_accuracy"),
                                    learningRate: num("lr"), seconds: num("seconds")))
            }
        }
        test = try Self.readTest(url.appendingPathComponent("test_metrics.json"))
        testOfBest = try Self.readTest(url.appendingPathComponent("test_best_metrics.json"))
        let preds = url.appendingPathComponent("test_predictions.csv")
        if let d = fm.contents(atPath: preds.path) {
            for (n, line) in String(decoding: d, as: UTF8.self).split(separator: "\n").enumerated().dropFirst() {
                let f = line.split(separator: ",").map(String.init)
                guard f.count >= 4, f.count % 2 == 0, let i = Int(f[0]), let l = Int(f[1]) else {
                    throw CNNError.invalidData("\(preds.path) line \(n + 1): expected index,label,top1,p1[,top2,p2,...]")
                }
                var top: [(cls: Int, p: Double)] = []
                for j in stride(from: 2, to: f.count, by: 2) {
                    guard let c = Int(f[j]), let p = Double(f[j + 1]) else { throw CNNError.invalidData("\(preds.path) line \(n + 1): bad class or probability") }
                    top.append((c, p))
                }
                predictions.append(Prediction(index: i, label: l, top: top))
            }
        }
    }

    static func readTest(_ url: URL) throws -> Test? {
        guard let d = FileManager.default.contents(atPath: url.path) else { return nil }
        guard let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any],
              let classes = o["classes"] as? [String], let cm = o["confusion_matrix"] as? [[Int]] else {
            throw CNNError.invalidData("\(url.path): expected a JSON object with classes and confusion_matrix (written by cnn train)")
        }
        func num(_ v: Any?) -> Double { (v as? NSNumber)?.doubleValue ?? .nan }
        let topK = ((o["top_k"] as? [String: Any]) ?? [:]).compactMap { k, v in Int(k.dropFirst(3)).map { ($0, num(v)) } }.sorted { $0.0 < $1.0 }
        let rows = ((o["per_class"] as? [[String: Any]]) ?? []).map {
            PerClass(name: $0["class"] as? String ?? "?", precision: num($0["precision"]), recall: num($0["recall"]), f1: num($0["f1"]),
                     support: ($0["support"] as? Int) ?? 0)
        }
        return Test(accuracy: num(o["accuracy"]), loss: num(o["loss"]), images: (o["images"] as? Int) ?? 0,
                    topK: topK.map { (k: $0.0, accuracy: $0.1) }, classes: classes, confusion: cm, perClass: rows)
    }

    /// The config's value at `key` as text (nil when absent).
    package func configValue(_ key: String) -> String? {
        guard let v = config?[key] else { return nil }
        return RunReport.jsonText(v)
    }
}

/// The run folder's figures (PNG): learning curves, confusion heatmap, per-class bars, sample grids
/// (raw and augmented), most-confused pairs and misclassified examples; written after training and
/// by `cnn plot RUN`.
package enum RunFigures {
    package static let learningCurves = "learning_curves.png"
    package static let confusion = "confusion_heatmap.png"
    package static let perClass = "per_class_metrics.png"
    package static let samples = "samples.png"
    package static let samplesAugmented = "samples_augmented.png"
    package static let mostConfused = "most_confused.png"
    package static let misclassified = "misclassified.png"
    package static let filters = "filters.png"
    package static let reportName = "report.html"

    /// test_predictions.csv: index,label,top1,p1,top2,p2,top3,p3 (probabilities to 4 decimals).
    package static func predictionsCSV(_ r: EvaluationResult) -> String {
        var out = "index,label,top1,p1,top2,p2,top3,p3\n"
        for (i, top) in r.top3.enumerated() {
            out += "\(i),\(r.labels[i])" + top.map { String(format: ",%d,%.4f", $0.index, Double($0.probability)) }.joined() + "\n"
        }
        return out
    }

    /// Loss, accuracy (train vs validation) and learning rate per epoch, three panels side by side;
    /// with several runs, one colour per run (train dashed, validation solid).
    package static func learningCurvesFigure(_ runs: [(name: String, epochs: [RunRecord.Epoch])], title: String) -> DecodedImage {
        let panelW = 620, panelH = 460
        let single = runs.count == 1
        func series(_ label: String, _ value: (RunRecord.Epoch) -> Double, train: Bool) -> [Charts.Series] {
            runs.enumerated().map { i, r in
                Charts.Series(name: single ? label : "\(r.name) \(label)", color: single ? .category(train ? 0 : 1) : .category(i),
                              dashed: train, points: r.epochs.map { (Double($0.epoch), value($0)) })
            }
        }
        let loss = series("train", \.trainLoss, train: true) + series("validation", \.validationLoss, train: false)
        let accuracy = series("train", \.trainAccuracy, train: true) + series("validation", \.validationAccuracy, train: false)
        let lr = runs.enumerated().map { i, r in
            Charts.Series(name: single ? "learning rate" : "\(r.name) learning rate", color: .category(single ? 2 : i),
                          points: r.epochs.map { (Double($0.epoch), $0.learningRate) })
        }
        // One legend under the three panels, where it hides no curve.
        let entries = (single ? [loss[0], loss[1], lr[0]] : loss + lr).map { ($0.name, $0.color, $0.dashed) }
        var probe = Canvas(width: 3 * panelW + 20, height: 1)
        let legendH = probe.legendRow(entries, x: 0, y: -1000, maxWidth: 3 * panelW - 40)
        var canvas = Canvas(width: 3 * panelW + 20, height: 50 + panelH + legendH + 16)
        canvas.text(title, x: canvas.width / 2, y: 12, scale: 3, align: .center)
        let top = 50
        Charts.drawLineChart(&canvas, rect: PixelRect(x: 10, y: top, width: panelW, height: panelH), title: "Loss", xLabel: "epoch",
                             yLabel: "cross-entropy loss", series: loss, legend: false)
        Charts.drawLineChart(&canvas, rect: PixelRect(x: 10 + panelW, y: top, width: panelW, height: panelH), title: "Accuracy",
                             xLabel: "epoch", yLabel: "accuracy", series: accuracy, legend: false)
        Charts.drawLineChart(&canvas, rect: PixelRect(x: 10 + 2 * panelW, y: top, width: panelW, height: panelH), title: "Learning rate",
                             xLabel: "epoch", yLabel: "learning rate (last step of epoch)", series: lr, legend: false)
        canvas.legendRow(entries, x: canvas.width / 2, y: top + panelH + 6, maxWidth: 3 * panelW - 40)
        return canvas.image
    }

    /// The per-class precision, recall and F1 bars.
    package static func perClassFigure(_ t: RunRecord.Test) -> DecodedImage {
        Charts.barChart(title: String(format: "Per-class precision, recall, F1 (test accuracy %.2f%%)", 100 * t.accuracy),
                        categories: t.perClass.map(\.name),
                        series: [("precision", t.perClass.map(\.precision)), ("recall", t.perClass.map(\.recall)), ("F1", t.perClass.map(\.f1))],
                        yLabel: "score")
    }

    /// The off-diagonal cells of a confusion matrix, largest first: (true, predicted, count).
    package static func confusedPairs(_ cm: [[Int]], limit: Int) -> [(truth: Int, predicted: Int, count: Int)] {
        var pairs: [(truth: Int, predicted: Int, count: Int)] = []
        for (r, row) in cm.enumerated() { for (c, n) in row.enumerated() where r != c && n > 0 { pairs.append((r, c, n)) } }
        return Array(pairs.sorted { $0.count != $1.count ? $0.count > $1.count : ($0.truth, $0.predicted) < ($1.truth, $1.predicted) }.prefix(limit))
    }

    /// The most-confused class pairs, one row each: heading and up to `examples` test images so confused.
    package static func mostConfusedFigure(_ t: RunRecord.Test, predictions: [RunRecord.Prediction], testSet: ImageDataset,
                                           pairs limit: Int = 6, examples: Int = 8) -> DecodedImage {
        let pairs = confusedPairs(t.confusion, limit: limit)
        let scale = 3, tile = testSet.width * scale, rowH = 40 + testSet.height * scale + 30
        var canvas = Canvas(width: max(examples * (tile + 10) + 40, 900), height: 84 + max(pairs.count, 1) * rowH)
        canvas.text("Most-confused class pairs (test set)", x: canvas.width / 2, y: 12, scale: 3, align: .center)
        canvas.text("under each image: the probability the model gave the wrong class", x: canvas.width / 2, y: 46, scale: 2,
                    color: RGB(70, 70, 70), align: .center)
        if pairs.isEmpty { canvas.text("no misclassified images", x: canvas.width / 2, y: 100, scale: 2, align: .center) }
        for (row, pair) in pairs.enumerated() {
            let y = 80 + row * rowH
            let support = t.confusion[pair.truth].reduce(0, +)
            canvas.text(String(format: "true %@ -> predicted %@: %d images (%.1f%% of %@)", t.classes[pair.truth], t.classes[pair.predicted],
                               pair.count, 100 * Double(pair.count) / Double(max(support, 1)), t.classes[pair.truth]),
                        x: 20, y: y, scale: 2)
            let shown = predictions.filter { $0.label == pair.truth && $0.top.first?.cls == pair.predicted && $0.index < testSet.count }
                .sorted { ($0.top.first?.p ?? 0) > ($1.top.first?.p ?? 0) }.prefix(examples)
            for (i, p) in shown.enumerated() {
                let x = 20 + i * (tile + 10)
                canvas.draw(Figures.datasetImage(testSet, p.index), x: x, y: y + 26, scale: scale)
                canvas.text(String(format: "%.0f%%", 100 * (p.top.first?.p ?? 0)), x: x + tile / 2, y: y + 30 + tile, scale: 2,
                            align: .center)
            }
        }
        return canvas.image
    }

    /// The most confident mistakes: each test image with its true class and the top-3 predictions.
    package static func misclassifiedFigure(_ classes: [String], predictions: [RunRecord.Prediction], testSet: ImageDataset,
                                            count: Int = 24) -> DecodedImage {
        let wrong = predictions.filter { p in p.index < testSet.count && (p.top.first.map { $0.cls != p.label } ?? false) }
            .sorted { ($0.top.first?.p ?? 0) > ($1.top.first?.p ?? 0) }.prefix(count)
        func name(_ c: Int) -> String { classes.indices.contains(c) ? classes[c] : "class \(c)" }
        let tiles = wrong.map { p in
            Charts.Tile(image: Figures.datasetImage(testSet, p.index),
                        caption: ["true: \(name(p.label))"] + p.top.map { String(format: "%@ %.0f%%", name($0.cls), 100 * $0.p) },
                        captionColor: RGB(0, 110, 0))
        }
        return Charts.imageGrid(tiles, columns: 8, scale: 3, title: "Misclassified test images (most confident first)",
                                subtitle: "green: the true class, then the model's top-3 predictions").image
    }

    /// The first training batch: raw images and the same images as the model sees them (augmented,
    /// mixed), each captioned with its class.
    package static func sampleFigures(data: TrainingData, config: TrainConfig, count: Int = 32)
        throws -> (raw: DecodedImage, augmented: DecodedImage) {
        let loader = try BatchLoader(dataset: data.train, indices: data.split.train.isEmpty ? nil : data.split.train,
                                     batchSize: min(count, max(data.split.train.count, 1)), shuffle: true,
                                     augmentation: config.augmentation, seed: config.seed, workers: 0)
        let batch = loader.makeBatch(epoch: 0, index: 0)
        let names = data.classNames
        func label(_ l: Int32) -> String { names.indices.contains(Int(l)) ? names[Int(l)] : "class \(l)" }
        let raw = batch.indices.enumerated().map { i, idx in
            Charts.Tile(image: Figures.datasetImage(data.train, idx), caption: [label(batch.labels[i])])
        }
        let aug = (0..<batch.count).map { i in
            Charts.Tile(image: Figures.denormalised(batch.images, index: i, normalization: config.augmentation.normalization),
                        caption: [label(batch.labels[i])])
        }
        let what = augmentationSummary(config.augmentation)
        return (Charts.imageGrid(raw, columns: 8, scale: 3, title: "Training images (as stored)",
                                 subtitle: "the first training batch of epoch 1, before augmentation").image,
                Charts.imageGrid(aug, columns: 8, scale: 3, title: "Training images as the model sees them",
                                 subtitle: "the same batch after augmentation: \(what)").image)
    }

    /// The augmentation in a few words (ASCII: the figures' font has no other characters).
    package static func augmentationSummary(_ a: AugmentationConfig) -> String {
        var parts: [String] = []
        if a.cropPadding > 0 { parts.append("random crop (padding \(a.cropPadding), \(a.paddingMode))") }
        if a.horizontalFlip > 0 { parts.append(String(format: "horizontal flip p=%g", a.horizontalFlip)) }
        if a.rotationDegrees > 0 { parts.append(String(format: "rotation +-%g deg", a.rotationDegrees)) }
        if a.cutoutSize > 0 { parts.append("cutout \(a.cutoutSize)px") }
        if a.mixupAlpha > 0 { parts.append(String(format: "mixup alpha %g", a.mixupAlpha)) }
        if a.cutmixAlpha > 0 { parts.append(String(format: "cutmix alpha %g", a.cutmixAlpha)) }
        return parts.isEmpty ? "none" : parts.joined(separator: ", ")
    }

    /// Writes every figure the folder's files (and `data`, `model` when given) allow; returns the
    /// names written and a note per figure left out (what was missing).
    @discardableResult
    package static func write(run url: URL, data: TrainingData?, config: TrainConfig?, model: Model?) throws
        -> (written: [String], skipped: [String]) {
        let rec = try RunRecord(url: url)
        var written: [String] = [], skipped: [String] = []
        func save(_ name: String, _ image: () throws -> DecodedImage) throws {
            try ImageCodec.writePNG(try image(), to: url.appendingPathComponent(name).path)
            written.append(name)
        }
        if rec.epochs.isEmpty { skipped.append("\(learningCurves): metrics.jsonl has no epoch") } else {
            try save(learningCurves) { learningCurvesFigure([(rec.name, rec.epochs)], title: "Learning curves: \(rec.name)") }
        }
        if let t = rec.test {
            try save(confusion) { Charts.confusionFigure(counts: t.confusion, classes: t.classes,
                                                         title: String(format: "Confusion matrix, test set (accuracy %.2f%%)", 100 * t.accuracy)).image }
            try save(perClass) { perClassFigure(t) }
            if let test = data?.test, !rec.predictions.isEmpty {
                try save(mostConfused) { mostConfusedFigure(t, predictions: rec.predictions, testSet: test) }
                try save(misclassified) { misclassifiedFigure(t.classes, predictions: rec.predictions, testSet: test) }
            } else {
                skipped.append("\(mostConfused), \(misclassified): " + (rec.predictions.isEmpty ? "no test_predictions.csv" : "no test images loaded"))
            }
        } else {
            skipped.append("\(confusion), \(perClass), \(mostConfused), \(misclassified): no test_metrics.json (run without a test set?)")
        }
        if let data, let config {
            let s = try sampleFigures(data: data, config: config)
            try save(samples) { s.raw }
            try save(samplesAugmented) { s.augmented }
        } else {
            skipped.append("\(samples), \(samplesAugmented): no training images loaded")
        }
        if let model, let (layer, conv) = Visualization.firstConvolution(of: model) {
            try save(filters) { try Figures.filtersFigure(try model.backend.host(conv.weight.value), layer: layer) }
        }
        return (written, skipped)
    }

    /// After `cnn train`: every figure and report.html; a failure is reported, never fatal (the
    /// checkpoints and metrics are already written).
    /// (The trainer has drawn filters.png already.)
    package static func finishRun(_ folder: URL, data: TrainingData, config: TrainConfig, log: (String) -> Void) {
        do {
            let r = try write(run: folder, data: data, config: config, model: nil)
            try RunReport.write(run: folder)
            log("figures: \(r.written.joined(separator: ", ")) and \(reportName) in \(folder.path)")
            for s in r.skipped { log("  not drawn: \(s)") }
        } catch {
            log("warning: could not draw the run's figures or report: \(error)")
        }
    }
}
