import Foundation

/// One column of a comparison: a result file, or one device of a result file.
package struct CompareInput: Sendable {
    package var label: String
    package var results: [CaseResult]
    package init(label: String, results: [CaseResult]) {
        self.label = label
        self.results = results
    }
    /// The single device of these results, if there is exactly one.
    var singleDevice: String? {
        let d = Set(results.map(\.device))
        return d.count == 1 ? d.first : nil
    }
}

package enum CompareMetric: String, Sendable, CaseIterable {
    /// Median wall time per repetition.
    case wall
    /// Median OpenCL device time (profiling events); "-" where none was measured.
    case device
}

/// One row of a comparison.
package struct CompareRow: Sendable {
    package var key: String
    package var device: String?
    /// Median milliseconds per input (nil: missing or not measured there).
    package var ms: [Double?]
    package var imagesPerSecond: [Double?]
    /// base time / input time, per input after the first (> 1: faster than the base).
    package var speedups: [Double?]
    /// Inputs (after the first) slower than the base by more than the threshold.
    package var regressions: [Int]
    package var improvements: [Int]
}

/// `cnn-bench compare`: the same cases side by side.
package enum BenchCompare {
    /// Reads `FILE` or `FILE@DEVICE` (only that device's results). Accepts cnn-bench JSON and the
    /// JSON of /work/shared/bench/pytorch_baseline.py (its cases become device "pytorch").
    package static func load(_ spec: String) throws -> CompareInput {
        var path = spec, device: String?
        if !FileManager.default.fileExists(atPath: spec), let at = spec.lastIndex(of: "@") {
            path = String(spec[..<at])
            device = String(spec[spec.index(after: at)...])
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw BenchError("compare: cannot read \(path)")
        }
        var results: [CaseResult]
        if let py = try? pytorchResults(data) {
            results = py
        } else {
            results = try BenchSchema.decode(data, source: path).results
        }
        var name = (path as NSString).lastPathComponent
        if name.hasSuffix(".json") { name.removeLast(5) }
        if let device {
            let all = Set(results.map(\.device)).sorted()
            results = results.filter { $0.device == device }
            guard !results.isEmpty else {
                throw BenchError("compare: \(path) has no results for device '\(device)' (it has: \(all.joined(separator: ", ")))")
            }
            return CompareInput(label: "\(name)@\(device)", results: results)
        }
        let devices = Set(results.map(\.device))
        return CompareInput(label: devices.count == 1 ? "\(name)@\(devices.first!)" : name, results: results)
    }

    /// pytorch_baseline.py's JSON: {"env": {"torch": ...}, "results": [{"case", "step_s_median", ...}]}.
    static func pytorchResults(_ data: Data) throws -> [CaseResult] {
        guard let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let env = obj["env"] as? [String: Any], env["torch"] != nil,
              let rows = obj["results"] as? [[String: Any]] else { throw BenchError("not a PyTorch baseline file") }
        return rows.compactMap { row -> CaseResult? in
            guard let name = row["case"] as? String, let median = row["step_s_median"] as? Double else { return nil }
            let parts = name.split(separator: ":").map(String.init)
            var r = CaseResult(name: name, device: "pytorch", family: parts.first ?? "", op: parts.first ?? "",
                               shape: "PyTorch \(env["torch"] ?? "")", batch: parts.count == 3 ? Int(parts[2]) : nil, usedBy: [],
                               status: "ok")
            let mn = (row["step_s_min"] as? Double) ?? median, mx = (row["step_s_max"] as? Double) ?? median
            r.wallMs = Stats(n: (row["n_timed"] as? Int) ?? 0, median: median * 1000, min: mn * 1000, max: mx * 1000,
                             q1: mn * 1000, q3: mx * 1000, mean: ((row["step_s_mean"] as? Double) ?? median) * 1000, samples: [])
            r.imagesPerSecond = row["images_per_s"] as? Double
            r.gflops = (row["gemm_gflops_per_s"] as? Double) ?? (row["approx_train_gflops_per_s"] as? Double)
                ?? (row["approx_infer_gflops_per_s"] as? Double)
            return r
        }
    }

    /// Matches rows by case name, and by device too unless every input holds a single device.
    package static func rows(_ inputs: [CompareInput], threshold: Double?, metric: CompareMetric) -> [CompareRow] {
        let byCaseOnly = inputs.allSatisfy { $0.singleDevice != nil }
        func key(_ r: CaseResult) -> String { byCaseOnly ? r.name : r.name + "\u{1}" + r.device }
        func value(_ r: CaseResult?) -> Double? {
            guard let r, r.status == "ok" else { return nil }
            return metric == .wall ? r.wallMs?.median : r.deviceMs?.median
        }
        var order: [String] = []
        var seen = Set<String>()
        for input in inputs { for r in input.results where !seen.contains(key(r)) { seen.insert(key(r)); order.append(key(r)) } }
        let maps = inputs.map { input in Dictionary(input.results.map { (key($0), $0) }, uniquingKeysWith: { a, _ in a }) }
        return order.map { k in
            let rs = maps.map { $0[k] }
            let ms = rs.map(value)
            var row = CompareRow(key: rs.compactMap { $0?.name }.first ?? k, device: byCaseOnly ? nil : rs.compactMap { $0?.device }.first,
                                 ms: ms, imagesPerSecond: rs.map { $0?.status == "ok" ? $0?.imagesPerSecond : nil },
                                 speedups: [], regressions: [], improvements: [])
            for i in ms.indices.dropFirst() {
                guard let base = ms[0], let x = ms[i], base > 0, x > 0 else { row.speedups.append(nil); continue }
                row.speedups.append(base / x)
                if let threshold {
                    if x > base * (1 + threshold) { row.regressions.append(i) }
                    if x < base / (1 + threshold) { row.improvements.append(i) }
                }
            }
            return row
        }
    }

    /// The comparison table, with a summary line per input (geometric-mean speedup over the matched cases).
    package static func table(_ inputs: [CompareInput], threshold: Double?, metric: CompareMetric) -> String {
        let rows = rows(inputs, threshold: threshold, metric: metric)
        // Different devices side by side: "slower" / "faster", not a regression of one build against another.
        let crossDevice = inputs.allSatisfy { $0.singleDevice != nil } && Set(inputs.compactMap(\.singleDevice)).count > 1
        let slowerWord = crossDevice ? "slower" : "REGRESSION"
        let showDevice = rows.contains { $0.device != nil }
        var header = ["case"] + (showDevice ? ["device"] : []) + inputs.map(\.label)
        header += inputs.dropFirst().map { inputs.count == 2 ? "speedup" : "speedup \($0.label)" }
        if threshold != nil { header.append("flag") }
        var table = [header]
        for r in rows {
            var cells = [r.key] + (showDevice ? [r.device ?? ""] : [])
            for (i, ms) in r.ms.enumerated() {
                var s = Fmt.time(ms: ms)
                if let ips = r.imagesPerSecond[i], ms != nil { s += " (\(Fmt.number(ips, digits: 0)) img/s)" }
                cells.append(s)
            }
            cells += r.speedups.map(Fmt.ratio)
            if threshold != nil {
                var flags: [String] = []
                for i in r.regressions {
                    let pct = (r.ms[i]! / r.ms[0]! - 1) * 100
                    flags.append(slowerWord + (inputs.count > 2 ? " (\(inputs[i].label))" : "") + String(format: " +%.0f%%", pct))
                }
                for i in r.improvements where inputs.count > 2 || r.regressions.isEmpty {
                    flags.append("faster" + (inputs.count > 2 ? " (\(inputs[i].label))" : ""))
                }
                cells.append(flags.joined(separator: ", "))
            }
            table.append(cells)
        }
        var out = formatTable(table, leftColumns: showDevice ? 2 : 1)
        for i in inputs.indices.dropFirst() {
            let s = rows.compactMap { $0.speedups[i - 1] }
            guard !s.isEmpty else { out += "\n\(inputs[i].label) vs \(inputs[0].label): no case measured in both"; continue }
            let geo = exp(s.map { log($0) }.reduce(0, +) / Double(s.count))
            out += "\n\(inputs[i].label) vs \(inputs[0].label): geometric-mean speedup \(Fmt.ratio(geo)) over \(s.count) cases"
                + " (\(metric.rawValue) time; > 1 means \(inputs[i].label) is faster)"
            if threshold != nil {
                let reg = rows.filter { $0.regressions.contains(i) }.count
                out += crossDevice
                    ? String(format: "; %d case%@ slower by more than %.0f%%", reg, reg == 1 ? "" : "s", (threshold ?? 0) * 100)
                    : String(format: "; %d regression%@ beyond %.0f%%", reg, reg == 1 ? "" : "s", (threshold ?? 0) * 100)
            }
        }
        return out
    }
}
