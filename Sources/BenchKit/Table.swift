import Foundation

/// Number formatting for the terminal tables.
enum Fmt {
    /// A duration given in milliseconds, in the unit that keeps 3-4 significant digits.
    static func time(ms: Double?) -> String {
        guard let ms, ms.isFinite else { return "-" }
        if ms < 1 { return String(format: "%.1f us", ms * 1000) }
        if ms < 1000 { return String(format: ms < 10 ? "%.3f ms" : (ms < 100 ? "%.2f ms" : "%.1f ms"), ms) }
        return String(format: "%.2f s", ms / 1000)
    }
    static func number(_ x: Double?, digits: Int = 1) -> String {
        guard let x, x.isFinite else { return "-" }
        if x >= 10_000 { return grouped(Int(x.rounded())) }
        if x >= 100 { return String(format: "%.0f", x) }
        if x < 1 && x > 0 && digits > 0 { return String(format: "%.2g", x) }
        return String(format: "%.\(digits)f", x)
    }
    static func grouped(_ n: Int) -> String {
        let s = String(abs(n))
        var out = ""
        for (i, ch) in s.enumerated() {
            if i > 0 && (s.count - i) % 3 == 0 { out.append(",") }
            out.append(ch)
        }
        return (n < 0 ? "-" : "") + out
    }
    /// min and max relative to the median, e.g. "-2% +9%".
    static func spread(_ s: Stats?) -> String {
        guard let s, s.median > 0, s.n > 1 else { return "-" }
        return String(format: "-%.0f%% +%.0f%%", (s.median - s.min) / s.median * 100, (s.max - s.median) / s.median * 100)
    }
    static func ratio(_ x: Double?) -> String {
        guard let x, x.isFinite else { return "-" }
        if x >= 100 { return String(format: "%.0fx", x) }
        if x >= 10 { return String(format: "%.1fx", x) }
        return x >= 0.1 ? String(format: "%.2fx", x) : String(format: "%.2gx", x)
    }
}

/// Aligns columns: left for the first `leftColumns`, right for the rest.
func formatTable(_ rows: [[String]], leftColumns: Int = 1, alsoLeft: Set<Int> = [], separatorAfterHeader: Bool = true) -> String {
    guard let first = rows.first else { return "" }
    var widths = [Int](repeating: 0, count: first.count)
    for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
    func line(_ r: [String]) -> String {
        var parts: [String] = []
        for (i, c) in r.enumerated() where i < widths.count {
            let pad = String(repeating: " ", count: widths[i] - c.count)
            parts.append(i < leftColumns || alsoLeft.contains(i) ? c + pad : pad + c)
        }
        var s = parts.joined(separator: "  ")
        while s.last == " " { s.removeLast() }
        return s
    }
    var out = [line(first)]
    if separatorAfterHeader { out.append(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")) }
    out += rows.dropFirst().map(line)
    return out.joined(separator: "\n")
}

/// The per-device result table, printed one row at a time as cases finish (fixed widths).
enum ResultTable {
    static let widths = [48, 4, 10, 11, 10, 8, 7, 8, 10, 0]
    static let header = ["case", "reps", "median", "min/max", "device", "GFLOP/s", "GB/s", "img/s", "first call", "gate"]

    static func line(_ cells: [String]) -> String {
        var s = ""
        for (i, c) in cells.enumerated() {
            let w = i < widths.count ? widths[i] : 0
            let pad = String(repeating: " ", count: max(0, w - c.count))
            if i == 0 { s += c + pad } else if i == cells.count - 1 { s += "  " + c } else { s += "  " + pad + c }
        }
        return s
    }

    static func cells(_ r: CaseResult) -> [String] {
        guard r.status == "ok" else {
            return [r.name, "-", "-", "-", "-", "-", "-", "-", Fmt.time(ms: r.firstCallMs), r.status == "gate-failed" ? "FAIL" : r.status]
        }
        return [r.name, "\(r.wallMs?.n ?? 0)", Fmt.time(ms: r.wallMs?.median), Fmt.spread(r.wallMs), Fmt.time(ms: r.deviceMs?.median),
                Fmt.number(r.gflops), Fmt.number(r.gbps), Fmt.number(r.imagesPerSecond, digits: 0), Fmt.time(ms: r.firstCallMs),
                gateLabel(r.gate)]
    }

    static func gateLabel(_ g: GateRecord?) -> String {
        guard let g else { return "off" }
        if !g.passed { return "FAIL" }
        if g.method.hasPrefix("the device is") { return "ref" }
        if g.method.hasPrefix("model") { return "model" }
        if g.method.hasPrefix("verify at the") { return "exact" }
        if g.method.hasPrefix("verify at batch") { return "batch+sampled" }
        return "sampled"
    }
}
