import CNNCore
import Datasets
import Foundation

/// `cnn report`: one self-contained HTML page per run (every image inlined as a data: URI; no
/// network access, no script), or a comparison of two runs.
package enum RunReport {
    /// Writes RUN/report.html; returns its URL.
    @discardableResult
    package static func write(run url: URL) throws -> URL {
        let out = url.appendingPathComponent(RunFigures.reportName)
        try AtomicFile.write(Data(try html(run: RunRecord(url: url)).utf8), to: out)
        return out
    }

    /// Writes the comparison of runs `a` and `b` to `out`.
    package static func writeComparison(_ a: URL, _ b: URL, to out: URL) throws {
        try AtomicFile.write(Data(try comparisonHTML(RunRecord(url: a), RunRecord(url: b)).utf8), to: out)
    }

    // MARK: Pieces

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// A JSON value as compact text (strings bare).
    package static func jsonText(_ v: Any) -> String {
        if let s = v as? String { return s }
        if let d = try? JSONSerialization.data(withJSONObject: v, options: [.sortedKeys, .fragmentsAllowed]) {
            return String(decoding: d, as: UTF8.self)
        }
        return "\(v)"
    }

    static func dataURI(_ png: [UInt8]) -> String { "data:image/png;base64," + Data(png).base64EncodedString() }

    static func figure(_ png: [UInt8], alt: String, caption: String) -> String {
        "<figure><img src=\"\(dataURI(png))\" alt=\"\(escape(alt))\"><figcaption>\(escape(caption))</figcaption></figure>\n"
    }

    /// The PNG `name` of the run folder inlined, or a note that it is missing.
    static func fileFigure(_ run: URL, _ name: String, alt: String, caption: String) -> String {
        guard let d = FileManager.default.contents(atPath: run.appendingPathComponent(name).path) else {
            return "<p class=\"missing\">\(escape(name)) is not in the run folder (\(escape(caption))).</p>\n"
        }
        return figure([UInt8](d), alt: alt, caption: caption)
    }

    static func table(_ header: [String], _ rows: [[String]], id: String) -> String {
        var s = "<table id=\"\(id)\"><thead><tr>" + header.map { "<th>\(escape($0))</th>" }.joined() + "</tr></thead><tbody>\n"
        for r in rows { s += "<tr>" + r.map { "<td>\(escape($0))</td>" }.joined() + "</tr>\n" }
        return s + "</tbody></table>\n"
    }

    static func pct(_ v: Double) -> String { v.isFinite ? String(format: "%.2f%%", 100 * v) : "n/a" }
    static func num(_ v: Double, _ f: String = "%.4f") -> String { v.isFinite ? String(format: f, v) : "n/a" }

    static let style = """
    body{font-family:sans-serif;margin:2em;max-width:1900px;color:#222}h1{margin-bottom:0}\
    table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}\
    th{background:#eef}td:first-child{text-align:left}figure{margin:1em 0}img{max-width:100%;border:1px solid #ddd}\
    figcaption{color:#555;font-size:90%}.missing{color:#a00}.pos{color:#070}.neg{color:#a00}
    """

    static func page(title: String, body: String) -> String {
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>\(escape(title))</title>\n<style>\(style)</style></head>\n<body>\n"
            + body + "</body></html>\n"
    }

    // MARK: One run

    static func html(run r: RunRecord) throws -> String {
        var b = "<h1>Run \(escape(r.name))</h1>\n<p>Folder: \(escape(r.url.path)). Written \(escape(ISO8601DateFormatter().string(from: Date()))).</p>\n"
        // Summary.
        if let last = r.epochs.last, let best = r.epochs.max(by: { $0.validationAccuracy < $1.validationAccuracy }) {
            let secs = r.epochs.map(\.seconds).filter(\.isFinite).reduce(0, +)
            b += "<h2>Summary</h2>\n" + table(["", "value"], [
                ["model", r.configValue("model") ?? "?"],
                ["epochs run", "\(r.epochs.count)"],
                ["final validation accuracy (epoch \(last.epoch))", pct(last.validationAccuracy)],
                ["best validation accuracy (epoch \(best.epoch))", pct(best.validationAccuracy)],
                ["test accuracy (final weights)", r.test.map { pct($0.accuracy) } ?? "not evaluated"],
                ["training time", String(format: "%.1f s", secs)],
            ], id: "summary")
        }
        b += "<h2>Learning curves</h2>\n"
        b += fileFigure(r.url, RunFigures.learningCurves, alt: "learning curves", caption: "Loss, accuracy and learning rate per epoch; train and validation.")
        if !r.epochs.isEmpty {
            b += table(["epoch", "train loss", "train acc", "val loss", "val acc", "lr", "seconds"], r.epochs.map {
                ["\($0.epoch)", num($0.trainLoss), pct($0.trainAccuracy), num($0.validationLoss), pct($0.validationAccuracy),
                 num($0.learningRate, "%.3g"), num($0.seconds, "%.1f")]
            }, id: "epochs")
        }
        b += "<h2>Test metrics</h2>\n"
        if let t = r.test {
            var rows = [["final weights", pct(t.accuracy), num(t.loss), t.topK.map { "top-\($0.k): " + pct($0.accuracy) }.joined(separator: ", "), "\(t.images)"]]
            if let tb = r.testOfBest {
                rows.append(["best validation checkpoint", pct(tb.accuracy), num(tb.loss), tb.topK.map { "top-\($0.k): " + pct($0.accuracy) }.joined(separator: ", "), "\(tb.images)"])
            }
            b += table(["weights", "accuracy", "loss", "top-k", "images"], rows, id: "test-metrics")
            b += fileFigure(r.url, RunFigures.confusion, alt: "confusion matrix heatmap",
                            caption: "Confusion matrix: counts (left) and each row divided by its class's test images (right).")
            b += "<h3>Per class</h3>\n"
            b += table(["class", "precision", "recall", "F1", "support"], t.perClass.map {
                [$0.name, num($0.precision), num($0.recall), num($0.f1), "\($0.support)"]
            }, id: "per-class")
            b += fileFigure(r.url, RunFigures.perClass, alt: "per-class precision recall F1", caption: "Per-class precision, recall and F1.")
            b += "<h3>Misclassified examples</h3>\n"
            b += fileFigure(r.url, RunFigures.misclassified, alt: "misclassified test images",
                            caption: "The most confident mistakes, each with its true class and the model's top-3 predictions.")
            b += misclassifiedTable(r)
            b += fileFigure(r.url, RunFigures.mostConfused, alt: "most-confused pairs", caption: "The class pairs confused most often, with examples.")
        } else {
            b += "<p class=\"missing\">No test_metrics.json: the run was not evaluated on a test set.</p>\n"
        }
        b += "<h2>Data</h2>\n"
        b += fileFigure(r.url, RunFigures.samples, alt: "training samples", caption: "The first training batch as stored, with class names.")
        b += fileFigure(r.url, RunFigures.samplesAugmented, alt: "augmented training samples",
                        caption: "The same batch after augmentation: what the model trains on.")
        b += "<h2>Filters</h2>\n"
        b += fileFigure(r.url, RunFigures.filters, alt: "first-layer filters", caption: "The first convolution's learned filters (final weights).")
        let extras = ((try? FileManager.default.contentsOfDirectory(atPath: r.url.path)) ?? []).sorted()
            .filter { ($0.hasPrefix("tsne") || $0.hasPrefix("gradcam")) && $0.hasSuffix(".png") }
        if !extras.isEmpty {
            b += "<h2>t-SNE and Grad-CAM</h2>\n"
            for e in extras { b += fileFigure(r.url, e, alt: e, caption: e.hasPrefix("tsne") ? "t-SNE of the learned features (\(e))" : "Grad-CAM (\(e))") }
        }
        b += "<h2>Configuration</h2>\n"
        b += table(["setting", "value"], (r.config ?? [:]).keys.sorted().map { [$0, r.configValue($0) ?? ""] }, id: "config")
        return page(title: "SwiftCNN run \(r.name)", body: b)
    }

    static func misclassifiedTable(_ r: RunRecord) -> String {
        guard let t = r.test, !r.predictions.isEmpty else { return "" }
        func name(_ c: Int) -> String { t.classes.indices.contains(c) ? t.classes[c] : "class \(c)" }
        let wrong = r.predictions.filter { p in p.top.first.map { $0.cls != p.label } ?? false }
            .sorted { ($0.top.first?.p ?? 0) > ($1.top.first?.p ?? 0) }.prefix(24)
        return table(["test image", "true class", "1st", "2nd", "3rd"], wrong.map { p in
            ["#\(p.index)", name(p.label)] + (0..<3).map { i in p.top.indices.contains(i) ? String(format: "%@ %.1f%%", name(p.top[i].cls), 100 * p.top[i].p) : "" }
        }, id: "misclassified")
    }

    // MARK: Two runs

    static func comparisonHTML(_ a: RunRecord, _ c: RunRecord) throws -> String {
        var b = "<h1>Runs \(escape(a.name)) and \(escape(c.name))</h1>\n<p>\(escape(a.url.path)) vs \(escape(c.url.path))</p>\n"
        let img = RunFigures.learningCurvesFigure([(a.name, a.epochs), (c.name, c.epochs)], title: "Learning curves: \(a.name) vs \(c.name)")
        b += "<h2>Learning curves</h2>\n" + figure(try Figures.pngData(img), alt: "learning curves of both runs",
                                                   caption: "One colour per run; dashed: train, solid: validation.")
        func best(_ r: RunRecord) -> Double { r.epochs.map(\.validationAccuracy).filter(\.isFinite).max() ?? .nan }
        func row(_ label: String, _ x: Double, _ y: Double, percent: Bool) -> [String] {
            let d = y - x
            let diff: String
            if !d.isFinite { diff = "n/a" } else if percent { diff = String(format: "%+.2f pp", 100 * d) } else { diff = String(format: "%+.4f", d) }
            return percent ? [label, pct(x), pct(y), diff] : [label, num(x), num(y), diff]
        }
        var rows: [[String]] = [
            ["epochs", "\(a.epochs.count)", "\(c.epochs.count)", "\(c.epochs.count - a.epochs.count)"],
            row("best validation accuracy", best(a), best(c), percent: true),
            row("final validation accuracy", a.epochs.last?.validationAccuracy ?? .nan, c.epochs.last?.validationAccuracy ?? .nan, percent: true),
            row("final validation loss", a.epochs.last?.validationLoss ?? .nan, c.epochs.last?.validationLoss ?? .nan, percent: false),
            row("final train loss", a.epochs.last?.trainLoss ?? .nan, c.epochs.last?.trainLoss ?? .nan, percent: false),
            row("test accuracy", a.test?.accuracy ?? .nan, c.test?.accuracy ?? .nan, percent: true),
            row("test loss", a.test?.loss ?? .nan, c.test?.loss ?? .nan, percent: false),
        ]
        let ta = a.epochs.map(\.seconds).filter(\.isFinite).reduce(0, +), tc = c.epochs.map(\.seconds).filter(\.isFinite).reduce(0, +)
        rows.append(["training time (s)", String(format: "%.1f", ta), String(format: "%.1f", tc), String(format: "%+.1f", tc - ta)])
        b += "<h2>Metrics</h2>\n" + table(["", a.name, c.name, "difference (\(c.name) - \(a.name))"], rows, id: "compare-metrics")
        if let x = a.test, let y = c.test, x.classes == y.classes {
            b += "<h2>Per-class F1</h2>\n" + table(["class", a.name, c.name, "difference"], zip(x.perClass, y.perClass).map { p, q in
                [p.name, num(p.f1), num(q.f1), String(format: "%+.4f", q.f1 - p.f1)]
            }, id: "compare-per-class")
        }
        let keys = Set((a.config ?? [:]).keys).union((c.config ?? [:]).keys).sorted()
        let differing = keys.filter { a.configValue($0) != c.configValue($0) }
        b += "<h2>Configuration differences</h2>\n"
        b += differing.isEmpty ? "<p>The two configs are identical.</p>\n"
            : table(["setting", a.name, c.name], differing.map { [$0, a.configValue($0) ?? "(absent)", c.configValue($0) ?? "(absent)"] }, id: "compare-config")
        return page(title: "SwiftCNN: \(a.name) vs \(c.name)", body: b)
    }
}
