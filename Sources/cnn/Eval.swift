import ArgumentParser
import Foundation
import SwiftCNN

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a checkpoint: accuracy, top-k, per-class precision/recall/F1, confusion matrix.")

    @OptionGroup var deviceOption: DeviceOption
    @Option(help: "Model weights (.safetensors, from SwiftCNN or a PyTorch state_dict saved with safetensors).") var checkpoint: String
    @Option(help: "Model name when the file has no SwiftCNN metadata (e.g. saved by PyTorch).") var model: ModelKind?
    @Option(help: "CIFAR-10 folder, or an image-folder root (root/<class>/*.png|jpg).") var data: String?
    @Option(help: "auto (detect the format of --data), cifar10 (evaluates test_batch.bin) or folder.") var format: TrainConfig.DataFormat = .auto
    @Option(help: "Use only the first N images.") var limit: Int?
    @Option(name: .customLong("top-k"), help: "Also report top-k accuracy.") var topK: Int = 5
    @Flag(help: "Average predictions over the image and its horizontal mirror.") var tta = false
    @Flag(name: .customLong("tta-translate"), help: "Also average over the image shifted by one pixel each way (reflect padding): half weight on the unshifted view(s), a quarter on each shift.") var ttaTranslate = false
    @Option(help: "Folder for the report, confusion matrix CSV and metrics JSON (default: next to the checkpoint).") var out: String?
    @Option(name: .customLong("batch-size")) var batchSize: Int = 256

    func validate() throws {
        if format == .folder, data == nil { throw ValidationError("--format folder needs --data ROOT") }
    }

    func run() throws {
        let backend = try deviceOption.make()
        let loaded = try Checkpoint.loadModel(path: checkpoint, backend: backend, modelName: model?.rawValue)
        var dataset: ImageDataset
        var format = format
        if format == .auto, let data, case .imageFolder = try DataDetection.detect(data) { format = .folder }
        if format == .folder, let data {
            let s = loaded.model.inputShape
            dataset = try ImageFolder.load(root: data, options: ImageFolderOptions(channels: s[0], height: s[1], width: s[2]))
        } else {
            let dir = try CIFAR10Locator(explicitPath: data).resolve()
            dataset = try CIFAR10.load(.test, directory: dir, limit: limit)
        }
        if let limit, limit < dataset.count { dataset = try dataset.subset(Array(0..<limit)) }
        let r = try evaluate(model: loaded.model, dataset: dataset, normalization: loaded.normalization, batchSize: batchSize,
                             flipTTA: tta, translateTTA: ttaTranslate, topK: [1, topK])
        print(String(format: "%@ on %@ (%d images): accuracy %.2f%%  top-%d %.2f%%  loss %.4f  (%.1fs)",
                     checkpoint, dataset.source, r.confusion.total, 100 * r.accuracy, topK, 100 * (r.topK[topK] ?? 0), r.loss, r.seconds))
        print()
        print(r.confusion.classificationReport())
        print("confusion matrix (rows: true class, columns: predicted)")
        print(r.confusion.formatted())
        let dir = URL(fileURLWithPath: out ?? (checkpoint as NSString).deletingLastPathComponent)
        let stem = "eval_" + ((checkpoint as NSString).lastPathComponent as NSString).deletingPathExtension
        try writeReport(r, to: dir, stem: stem)
        note("wrote \(dir.path)/\(stem)_report.txt, _confusion_matrix.csv, _metrics.json")
    }
}

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Classify image files with a checkpoint and print the top-k classes.")

    @OptionGroup var deviceOption: DeviceOption
    @Option(help: "Model weights (.safetensors).") var checkpoint: String
    @Option(help: "Model name when the file has no SwiftCNN metadata.") var model: ModelKind?
    @Option(name: .customLong("top-k")) var topK: Int = 3
    @Argument(help: "PNG or JPEG files.") var images: [String]

    func run() throws {
        guard !images.isEmpty else { throw ValidationError("give at least one image file") }
        let backend = try deviceOption.make(default: .cpu)
        let loaded = try Checkpoint.loadModel(path: checkpoint, backend: backend, modelName: model?.rawValue)
        let s = loaded.model.inputShape
        let input = try ModelInput(loaded.model, normalization: loaded.normalization)
        var values: [Float] = []
        for path in images { values += try input.image(path).tensor.values }
        let runner = try StepRunner(model: loaded.model, optimizer: nil)
        let k = loaded.model.numClasses
        let p = try runner.probabilities(images: HostTensor(shape: Shape([images.count] + s.dims), values: values))
        for (i, path) in images.enumerated() {
            let row = Array(p[(i * k)..<((i + 1) * k)])
            let top = row.indices.sorted { row[$0] > row[$1] }.prefix(min(topK, k))
            print(path + ": " + top.map { String(format: "%@ %.1f%%", loaded.classNames[$0], 100 * row[$0]) }.joined(separator: ", "))
        }
    }
}

struct Filters: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw a checkpoint's first-layer convolution filters as a PNG grid (colour for RGB input).")

    @Option(help: "Model weights (.safetensors).") var checkpoint: String
    @Option(help: "Model name when the file has no SwiftCNN metadata.") var model: ModelKind?
    @Option(help: "Output PNG file.") var out: String = "filters.png"
    @Option(help: "Pixels per weight (default: tiles about 48 pixels wide).") var scale: Int?

    func run() throws {
        if let scale, !(1...64).contains(scale) { throw ValidationError("--scale must be in 1...64, got \(scale)") }
        let loaded = try Checkpoint.loadModel(path: checkpoint, backend: CPUBackend(), modelName: model?.rawValue)
        let layer = try Visualization.writeFirstLayerFilters(of: loaded.model, to: out, scale: scale)
        print("wrote \(out): the filters of \(layer)")
    }
}

struct TSNECommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tsne",
        abstract: "t-SNE of a checkpoint's learned features on CIFAR-10 test images: a PNG scatter plot and a CSV.",
        discussion: """
        The features are the input of the model's last layer (for optimized: the 512 outputs of fc.0 after \
        ReLU), in eval mode, for the first --images test images. Colours: the matplotlib tab10 palette by \
        class, printed at the end.
        """)

    @OptionGroup var deviceOption: DeviceOption
    @Option(help: "Model weights (.safetensors).") var checkpoint: String
    @Option(help: "Model name when the file has no SwiftCNN metadata.") var model: ModelKind?
    @Option(help: "CIFAR-10 folder (default: ./data, then ../shared/data, else download).") var data: String?
    @Option(help: "Test images to embed (exact t-SNE is O(n²) per iteration).") var images: Int = 1000
    @Option(help: "t-SNE perplexity.") var perplexity: Double = 30
    @Option(help: "t-SNE iterations.") var iterations: Int = 1000
    @Option(help: "Random seed of the initial embedding.") var seed: UInt64 = 0
    @Option(help: "Output PNG; the CSV goes next to it (.csv).") var out: String = "tsne.png"

    func run() throws {
        guard (2...20_000).contains(images) else { throw ValidationError("--images must be in 2...20000, got \(images)") }
        let backend = try deviceOption.make(default: .cpu)
        let loaded = try Checkpoint.loadModel(path: checkpoint, backend: backend, modelName: model?.rawValue)
        let dir = try CIFAR10Locator(explicitPath: data).resolve()
        let test = try CIFAR10.load(.test, directory: dir, limit: images)
        let s = loaded.model.inputShape
        guard s.dims == [test.channels, test.height, test.width] else {
            throw ValidationError("the checkpoint's model takes \(s) images; CIFAR-10 images are 3x32x32")
        }
        let input = try ModelInput(loaded.model, normalization: loaded.normalization)
        let per = s.count
        var values: [Float] = []
        values.reserveCapacity(test.count * per)
        for i in 0..<test.count { values += input.normalized(Array(test.pixels[(i * per)..<((i + 1) * per)])) }
        let start = Date()
        let (features, dim) = try Visualization.penultimateFeatures(model: loaded.model,
                                                                    images: HostTensor(shape: Shape([test.count] + s.dims), values: values))
        let tsne = TSNE(perplexity: min(perplexity, Double(test.count - 1) / 3), iterations: iterations, seed: seed)
        let y = try tsne.embed(features, n: test.count, d: dim)
        try ImageCodec.writePNG(Charts.scatter(y, labels: test.labels, classNames: test.classNames,
                                               title: "t-SNE of \(test.count) test images (\(dim) features)"), to: out)
        let csvPath = (out as NSString).deletingPathExtension + ".csv"
        var csv = "x,y,label,class\n"
        for i in 0..<test.count {
            csv += String(format: "%.5f,%.5f,%d,%@\n", y[2 * i], y[2 * i + 1], Int(test.labels[i]), test.classNames[Int(test.labels[i])])
        }
        try AtomicFile.write(Data(csv.utf8), to: URL(fileURLWithPath: csvPath))
        print(String(format: "t-SNE of %d test images (%d features from the layer before the last) in %.1f s: %@ and %@",
                     test.count, dim, Date().timeIntervalSince(start), out, csvPath))
        print("colours: " + test.classNames.enumerated().map { i, name in
            let c = Visualization.palette[i % Visualization.palette.count]
            return String(format: "%@ #%02x%02x%02x", name, c.0, c.1, c.2)
        }.joined(separator: ", "))
    }
}

struct GradCAMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gradcam",
        abstract: "Grad-CAM: where in an image the model looks for a class (a heat map over the image, as PNG).")

    @OptionGroup var deviceOption: DeviceOption
    @Option(help: "Model weights (.safetensors).") var checkpoint: String
    @Option(help: "Model name when the file has no SwiftCNN metadata.") var model: ModelKind?
    @Option(name: .customLong("class"), help: "Class name or index to explain (default: the predicted class).") var className: String?
    @Option(help: "Output PNG.") var out: String = "gradcam.png"
    @Option(help: "Enlargement of the model-sized image.") var scale: Int = 4
    @Argument(help: "A PNG or JPEG file.") var image: String

    func run() throws {
        guard (1...32).contains(scale) else { throw ValidationError("--scale must be in 1...32, got \(scale)") }
        let backend = try deviceOption.make(default: .cpu)
        let loaded = try Checkpoint.loadModel(path: checkpoint, backend: backend, modelName: model?.rawValue)
        let (x, img) = try ModelInput(loaded.model, normalization: loaded.normalization).image(image)
        var target: Int? = nil
        if let name = className {
            if let i = Int(name) { target = i } else if let i = loaded.classNames.firstIndex(of: name) { target = i } else {
                throw ValidationError("--class '\(name)': not a class of this model (\(loaded.classNames.joined(separator: ", ")))")
            }
            guard let t = target, loaded.classNames.indices.contains(t) else {
                throw ValidationError("--class \(name): the model has classes 0..<\(loaded.classNames.count)")
            }
        }
        let cam = try Visualization.gradCAM(model: loaded.model, image: x, classIndex: target)
        let m = cam.logits.max()!
        let e = cam.logits.map { exp($0 - m) }, z = e.reduce(0, +)
        let predicted = cam.logits.indices.max { cam.logits[$0] < cam.logits[$1] }!
        let overlay = Visualization.overlay(map: cam.map, mapHeight: cam.height, mapWidth: cam.width, on: img, scale: scale)
        try ImageCodec.writePNG(Charts.captioned(overlay, lines: [
            "Grad-CAM: \(loaded.classNames[cam.classIndex])" + String(format: " (p=%.2f)", e[cam.classIndex] / z),
            "predicted: \(loaded.classNames[predicted])", "red: most evidence, blue: none",
        ], scale: 2), to: out)
        print(String(format: "%@: Grad-CAM of '%@' (probability %.1f%%) over a %dx%d feature map -> %@",
                     image, loaded.classNames[cam.classIndex], 100 * e[cam.classIndex] / z, cam.height, cam.width, out))
    }
}

/// Turns image files and dataset images into model input: decoded and resized to the model's input
/// shape, (H, W, C) -> (C, H, W), normalised as the checkpoint was trained.
struct ModelInput {
    let shape: Shape
    let augmenter: Augmenter

    init(_ model: Model, normalization: Normalization) throws {
        shape = model.inputShape
        var aug = AugmentationConfig.none
        aug.normalization = normalization
        augmenter = try Augmenter(config: aug, channels: shape[0], height: shape[1], width: shape[2])
    }

    /// A (C, H, W) UInt8 image, normalised.
    func normalized(_ chw: [UInt8]) -> [Float] { augmenter.apply(augmenter.identityDraw, to: chw) }

    /// One file as a (1, C, H, W) tensor, and the decoded, resized image.
    func image(_ path: String) throws -> (tensor: HostTensor, decoded: DecodedImage) {
        let (c, h, w) = (shape[0], shape[1], shape[2])
        let img = try ImageFolder.decodeForModel(path: path, options: ImageFolderOptions(channels: c, height: h, width: w))
        return (HostTensor(shape: Shape([1] + shape.dims), values: normalized(img.planes)), img)
    }
}
