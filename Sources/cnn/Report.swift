import ArgumentParser
import Foundation
import SwiftCNN

/// The run folder `path`, which must exist (a clear error otherwise).
private func runFolderURL(_ path: String) throws -> URL {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue else {
        throw ValidationError("\(path): no such run folder (give a folder written by `cnn train`, e.g. runs/NAME)")
    }
    return URL(fileURLWithPath: path).standardizedFileURL
}

struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw a run folder's figures as PNG: learning curves, confusion heatmap, per-class bars, sample grids, confused pairs, misclassified examples, filters.",
        discussion: """
        Reads config.json, metrics.jsonl, test_metrics.json and test_predictions.csv of RUN; loads the run's \
        data (from its config, or --data) for the image figures and its latest checkpoint for the filters. \
        Figures whose inputs are missing are listed, not drawn. `cnn train` writes the same figures at the end.
        """)

    @Argument(help: "Run folder (runs/NAME).") var runFolder: String
    @Option(help: "Data folder, when the run's own (config.json) has moved.") var data: String?
    @Flag(name: .customLong("no-data"), help: "Draw only the figures that need no images.") var noData = false

    func run() throws {
        let url = try runFolderURL(runFolder)
        var config: TrainConfig?
        let configPath = url.appendingPathComponent("config.json").path
        if FileManager.default.fileExists(atPath: configPath) {
            config = try TrainConfig.load(path: configPath)
            if let data { config?.data = data }
        }
        var trainingData: TrainingData?
        if let c = config, !noData {
            do {
                trainingData = try TrainingData.load(c, log: { note($0) })
            } catch {
                note("cannot load the run's data (\(error)); drawing the figures that need no images (--data DIR to point at it)")
            }
        }
        var model: Model?
        let latest = url.appendingPathComponent("latest.safetensors").path
        if FileManager.default.fileExists(atPath: latest) {
            model = try Checkpoint.loadModel(path: latest, backend: CPUBackend(), modelName: nil).model
        }
        let r = try RunFigures.write(run: url, data: trainingData, config: config, model: model)
        print("wrote \(r.written.count) figures to \(url.path): \(r.written.joined(separator: ", "))")
        for s in r.skipped { print("not drawn: \(s)") }
    }
}

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a run's report: one self-contained HTML page (images inlined, no network, no scripts).",
        discussion: """
        cnn report RUN           writes RUN/report.html from the run folder's files and figures (cnn plot redraws them).
        cnn report RUN_A RUN_B   writes a comparison (curves overlaid, metrics, per-class F1 and config differences) \
        to --out (default RUN_A/compare-NAME_B.html).
        """)

    @Argument(help: "One run folder, or two to compare.") var runs: [String]
    @Option(help: "Output HTML file (comparison only; a single run's report is RUN/report.html).") var out: String?

    func run() throws {
        switch runs.count {
        case 1:
            guard out == nil else { throw ValidationError("--out is for comparisons; a run's report is always RUN/report.html") }
            let url = try RunReport.write(run: try runFolderURL(runs[0]))
            print("wrote \(url.path)")
        case 2:
            let a = try runFolderURL(runs[0]), b = try runFolderURL(runs[1])
            let dest = out.map { URL(fileURLWithPath: $0) } ?? a.appendingPathComponent("compare-\(b.lastPathComponent).html")
            try RunReport.writeComparison(a, b, to: dest)
            print("wrote \(dest.path)")
        default:
            throw ValidationError("give one run folder (its report) or two (a comparison), got \(runs.count)")
        }
    }
}
