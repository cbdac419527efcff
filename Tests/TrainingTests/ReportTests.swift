import CNNCore
import CPUBackend
import Datasets
import Foundation
import NN
import Testing
@testable import Training

/// A run folder as `cnn train` leaves it, from synthetic data (no CIFAR-10 needed): config, three
/// epochs of metrics, a test report with predictions, the figures and the filters.
enum SyntheticRun {
    static let classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    static func dataset(_ n: Int, seed: UInt64) throws -> ImageDataset {
        var rng = SeededRNG(seed: seed)
        var px = [UInt8](repeating: 0, count: n * 3 * 32 * 32)
        let labels = (0..<n).map { Int32($0 % 10) }
        for i in 0..<n {
            // Each class a colour, plus noise: the tiles are told apart at a glance.
            let c = Visualization.palette[i % 10]
            for ch in 0..<3 {
                let base = [c.0, c.1, c.2][ch]
                for p in 0..<1024 { px[(i * 3 + ch) * 1024 + p] = UInt8(clamping: Int(base) + Int(rng.next() % 60) - 30) }
            }
        }
        return try ImageDataset(pixels: px, labels: labels, classNames: classes, channels: 3, height: 32, width: 32, source: "synthetic")
    }

    /// Writes the run folder into `dir` and returns the data it used.
    @discardableResult
    static func make(_ dir: URL, accuracyShift: Double = 0) throws -> TrainingData {
        let train = try dataset(80, seed: 1), test = try dataset(60, seed: 2)
        let data = TrainingData(train: train, split: try train.split(validationFraction: 0.2, seed: 1), test: test)
        var config = TrainConfig()
        config.augmentation.cropPadding = 4
        config.augmentation.horizontalFlip = 0.5
        try AtomicFile.write(Data(config.json().utf8), to: dir.appendingPathComponent("config.json"))
        var lines = ""
        for e in 1...3 {
            let m = EpochMetrics(epoch: e, trainLoss: 2.0 / Double(e), trainAccuracy: 0.3 + 0.15 * Double(e) + accuracyShift,
                                 validationLoss: 2.2 / Double(e), validationAccuracy: 0.25 + 0.12 * Double(e) + accuracyShift,
                                 learningRate: 0.001 / Double(e), seconds: 10, imagesPerSecond: 100)
            lines += RunFolder.jsonLine(m)
        }
        try AtomicFile.write(Data(lines.utf8), to: dir.appendingPathComponent("metrics.jsonl"))
        // Predictions: right for most, class+1 for every fourth, class+3 for every ninth.
        let labels = test.labels.map(Int.init)
        let preds = labels.enumerated().map { i, l in i % 4 == 0 ? (l + 1) % 10 : i % 9 == 0 ? (l + 3) % 10 : l }
        var r = EvaluationResult(loss: 0.9, accuracy: 0, topK: [1: 0, 5: 0.95], confusion: ConfusionMatrix(classes: classes, labels: labels, predictions: preds),
                                 predictions: preds, seconds: 1)
        r.accuracy = r.confusion.accuracy
        r.labels = labels
        r.top3 = preds.enumerated().map { i, p in
            [ClassProbability(index: p, probability: 0.7), ClassProbability(index: labels[i] == p ? (p + 2) % 10 : labels[i], probability: 0.2),
             ClassProbability(index: (p + 5) % 10, probability: 0.05)]
        }
        try writeReport(r, to: dir, stem: "test")
        let model = try ModelZoo.make("optimized", backend: CPUBackend(), seed: 1)
        try Visualization.writeFirstLayerFilters(of: model, to: dir.appendingPathComponent("filters.png").path)
        try RunFigures.write(run: dir, data: data, config: config, model: nil)
        try RunReport.write(run: dir)
        return data
    }
}

/// The run's figures and report.html from a synthetic run folder.
@Suite struct ReportTests {
    @Test func figuresAndReportAreWritten() throws {
        let dir = TestData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try SyntheticRun.make(dir)
        for name in [RunFigures.learningCurves, RunFigures.confusion, RunFigures.perClass, RunFigures.samples, RunFigures.samplesAugmented,
                     RunFigures.mostConfused, RunFigures.misclassified, RunFigures.filters] {
            let img = try ImageCodec.decode(fileAt: dir.appendingPathComponent(name).path)
            #expect(img.width >= 300 && img.height >= 200, "\(name): \(img.width)x\(img.height)")
        }
        let html = try String(contentsOf: dir.appendingPathComponent(RunFigures.reportName), encoding: .utf8)
        // Self-contained: every image a data URI, nothing fetched, no script.
        let srcs = html.components(separatedBy: "src=\"").dropFirst().map { $0.prefix(22) }
        #expect(srcs.count == 8 && srcs.allSatisfy { $0 == "data:image/png;base64," }, "\(srcs)")
        #expect(!html.contains("http://") && !html.contains("https://") && !html.lowercased().contains("<script"))
        for id in ["summary", "epochs", "test-metrics", "per-class", "misclassified", "config"] { #expect(html.contains("<table id=\"\(id)\""), "\(id)") }
        // The per-class table has a row per class, and the misclassified table the top-3 predictions.
        #expect(html.contains("<td>automobile</td>"))
        #expect(html.contains("70.0%") && html.contains("20.0%"))
        // The predictions file: header and one line per test image.
        let csv = try String(contentsOf: dir.appendingPathComponent("test_predictions.csv"), encoding: .utf8)
        #expect(csv.split(separator: "\n").count == 61 && csv.hasPrefix("index,label,top1,p1,top2,p2,top3,p3\n0,0,1,0.7000,0,0.2000,6,0.0500\n"))
    }

    @Test func mostConfusedPairsAreTheLargestOffDiagonalCells() {
        let cm = [[5, 1, 7], [0, 9, 2], [3, 0, 4]]
        let p = RunFigures.confusedPairs(cm, limit: 3)
        #expect(p.map { [$0.truth, $0.predicted, $0.count] } == [[0, 2, 7], [2, 0, 3], [1, 2, 2]])
    }

    @Test func comparisonTabulatesDifferences() throws {
        let a = TestData.temporaryDirectory(), b = TestData.temporaryDirectory()
        defer { for d in [a, b] { try? FileManager.default.removeItem(at: d) } }
        try SyntheticRun.make(a)
        try SyntheticRun.make(b, accuracyShift: 0.05)
        let out = a.appendingPathComponent("compare.html")
        try RunReport.writeComparison(a, b, to: out)
        let html = try String(contentsOf: out, encoding: .utf8)
        #expect(html.contains("<table id=\"compare-metrics\""))
        // Best validation accuracy 61% vs 66%: +5.00 pp.
        #expect(html.contains("<td>61.00%</td><td>66.00%</td><td>+5.00 pp</td>"), "\(html.prefix(3000))")
        #expect(html.contains("The two configs are identical."))
        #expect(html.components(separatedBy: "data:image/png;base64,").count == 2)
    }

    @Test func notARunFolderIsAClearError() throws {
        let dir = TestData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(throws: CNNError.self) { _ = try RunRecord(url: dir) }
        do { _ = try RunRecord(url: dir) } catch { #expect("\(error)".contains("not a run folder")) }
        try Data("{\"epoch\":1,\"val_loss\":\n".utf8).write(to: dir.appendingPathComponent("metrics.jsonl"))
        do { _ = try RunRecord(url: dir); Issue.record("a broken metrics line was accepted") } catch {
            #expect("\(error)".contains("metrics.jsonl line 1"))
        }
    }
}

// MARK: - Headless Chromium

enum Browser {
    /// $SWIFTCNN_CHROMIUM, or chromium / chromium-browser / google-chrome on PATH; nil if none.
    static let path: String? = {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["SWIFTCNN_CHROMIUM"] { candidates.append(env) }
        let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map(String.init)
        for name in ["chromium", "chromium-browser", "google-chrome"] { candidates += dirs.map { "\($0)/\(name)" } }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()
    static var inCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    static func run(_ args: [String]) throws -> (status: Int32, output: String) {
        try TestData.run(path!, ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                                 "--user-data-dir=" + TestData.temporaryDirectory().path] + args)
    }
}

@Suite(.serialized) struct BrowserTests {
    @Test(.enabled(if: Browser.inCI, "only in CI (CI=true), where Chromium is installed"))
    func chromiumIsInstalledInCI() {
        #expect(Browser.path != nil, "CI must install Chromium (Debian package chromium): the report's browser test cannot run")
    }

    @Test(.enabled(if: Browser.path != nil, "Chromium not found (Debian package chromium; or set SWIFTCNN_CHROMIUM)"))
    func reportRendersInChromium() throws {
        let dir = TestData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try SyntheticRun.make(dir)
        let report = dir.appendingPathComponent(RunFigures.reportName)
        var html = try String(contentsOf: report, encoding: .utf8)
        // The report has no script; the test adds one that writes each image's decoded size into the DOM.
        let probe = """
        <script>window.addEventListener('load',function(){var s=[];for(var i of document.images){s.push(i.naturalWidth+'x'+i.naturalHeight+(i.complete?'':'-incomplete'))}\
        var p=document.createElement('pre');p.id='probe';p.textContent='SIZES '+s.join(' ')+' TABLES '+document.querySelectorAll('table').length+' END';document.body.appendChild(p)});</script>
        """
        html = html.replacingOccurrences(of: "</body>", with: probe + "</body>")
        let probed = dir.appendingPathComponent("probed.html")
        try html.write(to: probed, atomically: true, encoding: .utf8)
        let dom = try Browser.run(["--virtual-time-budget=10000", "--dump-dom", probed.absoluteString])
        #expect(dom.status == 0, "\(dom.output.suffix(2000))")
        guard let s = dom.output.range(of: "id=\"probe\">SIZES "), let e = dom.output.range(of: " END", range: s.upperBound..<dom.output.endIndex) else {
            Issue.record("the probe did not run: \(dom.output.suffix(2000))")
            return
        }
        let fields = dom.output[s.upperBound..<e.lowerBound].split(separator: " ")
        let tablesAt = try #require(fields.firstIndex(of: "TABLES"))
        let sizes = fields[..<tablesAt]
        #expect(sizes.count == 8, "\(sizes)")
        for sz in sizes {
            let wh = sz.split(separator: "x").compactMap { Int($0) }
            #expect(wh.count == 2 && wh[0] > 0 && wh[1] > 0, "image not decoded: \(sz)")
        }
        #expect(Int(fields[tablesAt + 1]) == 6)
        // A screenshot of the page as a person sees it: not blank (white), with dark text and colour.
        let shot = dir.appendingPathComponent("shot.png")
        let r = try Browser.run(["--window-size=1400,2400", "--hide-scrollbars", "--screenshot=" + shot.path, report.absoluteString])
        #expect(r.status == 0, "\(r.output.suffix(2000))")
        let img = try ImageCodec.decode(fileAt: shot.path)
        #expect(img.width == 1400 && img.height == 2400)
        var dark = 0, coloured = 0
        for i in 0..<(img.width * img.height) {
            let (rr, g, b) = (Int(img.pixels[3 * i]), Int(img.pixels[3 * i + 1]), Int(img.pixels[3 * i + 2]))
            if rr + g + b < 200 { dark += 1 }
            if max(rr, g, b) - min(rr, g, b) > 60 { coloured += 1 }
        }
        let n = img.width * img.height
        #expect(dark > n / 1000 && coloured > n / 100, "screenshot looks blank: \(dark) dark, \(coloured) coloured of \(n) pixels")
    }
}
