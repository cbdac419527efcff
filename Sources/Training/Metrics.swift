import CNNCore
import Foundation

/// A confusion matrix: rows are true classes, columns predicted classes.
public struct ConfusionMatrix: Codable, Sendable, Equatable {
    public let classes: [String]
    public private(set) var counts: [[Int]]

    public init(classes: [String]) {
        self.classes = classes
        counts = Array(repeating: Array(repeating: 0, count: classes.count), count: classes.count)
    }
    public init(classes: [String], labels: [Int], predictions: [Int]) {
        self.init(classes: classes)
        for (l, p) in zip(labels, predictions) { add(label: l, prediction: p) }
    }
    public mutating func add(label: Int, prediction: Int) { counts[label][prediction] += 1 }

    public var total: Int { counts.joined().reduce(0, +) }
    public var correct: Int { classes.indices.reduce(0) { $0 + counts[$1][$1] } }
    public var accuracy: Double { total == 0 ? 0 : Double(correct) / Double(total) }

    /// Per-class precision, recall, F1 and support, as scikit-learn (0 where undefined).
    public func perClass() -> [(precision: Double, recall: Double, f1: Double, support: Int)] {
        classes.indices.map { c in
            let tp = Double(counts[c][c])
            let predicted = Double(classes.indices.reduce(0) { $0 + counts[$1][c] })
            let support = counts[c].reduce(0, +)
            let p = predicted > 0 ? tp / predicted : 0
            let r = support > 0 ? tp / Double(support) : 0
            let f = p + r > 0 ? 2 * p * r / (p + r) : 0
            return (p, r, f, support)
        }
    }

    /// scikit-learn's `classification_report` layout: names right-aligned to the longest name
    /// (at least "weighted avg"), then columns of width 9 separated by a space.
    public func classificationReport(digits: Int = 4) -> String {
        let rows = perClass()
        let width = max(classes.map(\.count).max() ?? 0, "weighted avg".count, digits)
        func right(_ s: String, _ w: Int) -> String { String(repeating: " ", count: max(0, w - s.count)) + s }
        func num(_ x: Double) -> String { " " + right(String(format: "%.\(digits)f", x), 9) }
        func int(_ x: Int) -> String { " " + right(String(x), 9) }
        var out = right("", width) + " " + ["precision", "recall", "f1-score", "support"].map { " " + right($0, 9) }.joined() + "\n\n"
        for (i, r) in rows.enumerated() {
            out += right(classes[i], width) + " " + num(r.precision) + num(r.recall) + num(r.f1) + int(r.support) + "\n"
        }
        let n = Double(max(total, 1))
        let k = Double(max(classes.count, 1))
        out += "\n" + right("accuracy", width) + " " + " " + right("", 9) + " " + right("", 9) + num(accuracy) + int(total) + "\n"
        let macro = (rows.map(\.precision).reduce(0, +) / k, rows.map(\.recall).reduce(0, +) / k, rows.map(\.f1).reduce(0, +) / k)
        let w = rows.map { Double($0.support) / n }
        let weighted = (zip(rows, w).map { $0.precision * $1 }.reduce(0, +), zip(rows, w).map { $0.recall * $1 }.reduce(0, +),
                        zip(rows, w).map { $0.f1 * $1 }.reduce(0, +))
        out += right("macro avg", width) + " " + num(macro.0) + num(macro.1) + num(macro.2) + int(total) + "\n"
        out += right("weighted avg", width) + " " + num(weighted.0) + num(weighted.1) + num(weighted.2) + int(total) + "\n"
        return out
    }

    /// The matrix as text, with class names (truncated to 6 characters) on both axes.
    public func formatted() -> String {
        let short = classes.map { String($0.prefix(6)) }
        let w = max(6, String(counts.joined().max() ?? 0).count + 1)
        func pad(_ s: String, _ n: Int) -> String { String(repeating: " ", count: max(0, n - s.count)) + s }
        var out = pad("true\\pred", 10) + short.map { pad($0, w + 1) }.joined() + "\n"
        for (i, row) in counts.enumerated() {
            out += pad(short[i], 10) + row.map { pad(String($0), w + 1) }.joined() + "\n"
        }
        return out
    }

    public func csv() -> String {
        var out = "true\\predicted," + classes.joined(separator: ",") + "\n"
        for (i, row) in counts.enumerated() { out += classes[i] + "," + row.map(String.init).joined(separator: ",") + "\n" }
        return out
    }
}

/// Top-k accuracy from probability (or logit) rows: the fraction whose label is among the k largest.
public func topKAccuracy(scores: [Float], classes k: Int, labels: [Int], top: Int) -> Double {
    guard !labels.isEmpty else { return 0 }
    var hits = 0
    for (i, l) in labels.enumerated() {
        let row = scores[(i * k)..<((i + 1) * k)]
        let s = row[row.startIndex + l]
        // Rank = number of strictly larger scores (+ equal ones before it, as a stable sort would).
        var rank = 0
        for (j, v) in row.enumerated() where v > s || (v == s && j < l) { rank += 1 }
        if rank < top { hits += 1 }
    }
    return Double(hits) / Double(labels.count)
}
