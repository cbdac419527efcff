import CNNCore
import Foundation

/// One line of the verification table: one output of one primitive on one shape.
package struct VerifyRow: Sendable, CustomStringConvertible {
    package var op: String
    package var shape: String
    /// The output compared (e.g. "dWeight"), or "error" when the primitive threw.
    package var output: String
    package var maxAbsError: Double
    package var maxRelError: Double
    package var tolerance: Tolerance
    package var passed: Bool
    /// Where it went wrong: the worst element, or the error message.
    package var detail: String
    /// Wall seconds of the case on the device (inputs, call and read-back).
    package var deviceSeconds: Double

    package var description: String {
        "\(op) \(shape) \(output): \(passed ? "pass" : "FAIL") (max abs \(sci(maxAbsError)), max rel \(sci(maxRelError)), "
            + "\(tolerance))" + (passed ? "" : " — \(detail)")
    }
}

/// Runs every case on `device` and on `reference` and compares each output. Never throws: a
/// primitive that throws on the device (or reads back the wrong size) is a failing row; one that
/// throws on the reference is a failing row too (the case itself is broken).
package func verify(device: any Backend, reference: any Backend, cases: [VerifyCase],
                   progress: ((VerifyRow) -> Void)? = nil) -> [VerifyRow] {
    var rows: [VerifyRow] = []
    for c in cases {
        func errorRow(_ side: String, _ error: Error) -> VerifyRow {
            VerifyRow(op: c.op, shape: c.shape, output: "error", maxAbsError: .infinity, maxRelError: .infinity,
                      tolerance: .exact, passed: false, detail: "\(side) threw: \(error)", deviceSeconds: 0)
        }
        let expected: [VerifyOutput]
        do { expected = try c.run(reference) } catch {
            let r = errorRow("reference", error)
            rows.append(r); progress?(r)
            continue
        }
        let t0 = Date()
        let got: [VerifyOutput]
        do {
            got = try c.run(device)
            try device.synchronize()
        } catch {
            let r = errorRow("device", error)
            rows.append(r); progress?(r)
            continue
        }
        let seconds = Date().timeIntervalSince(t0)
        for ref in expected {
            let row: VerifyRow
            if let out = got.first(where: { $0.name == ref.name }) {
                let cmp = compare(out.values, ref.values, ref.tolerance)
                row = VerifyRow(op: c.op, shape: c.shape, output: ref.name, maxAbsError: cmp.maxAbsError,
                                maxRelError: cmp.maxRelError, tolerance: ref.tolerance, passed: cmp.passed,
                                detail: cmp.description, deviceSeconds: seconds)
            } else {
                row = VerifyRow(op: c.op, shape: c.shape, output: ref.name, maxAbsError: .infinity, maxRelError: .infinity,
                                tolerance: ref.tolerance, passed: false, detail: "the device returned no output '\(ref.name)'",
                                deviceSeconds: seconds)
            }
            rows.append(row)
            progress?(row)
        }
    }
    return rows
}

/// The table `cnn verify` prints: one row per output, a FAIL row followed by its worst element
/// (or error), and a summary line.
package func formatVerifyTable(_ rows: [VerifyRow], device: String? = nil, reference: String? = nil) -> String {
    let header = ["op", "shape", "output", "max abs err", "max rel err", "tolerance", "result"]
    var table: [[String]] = rows.map {
        [$0.op, $0.shape, $0.output, sci($0.maxAbsError), sci($0.maxRelError), $0.tolerance.description, $0.passed ? "pass" : "FAIL"]
    }
    table.insert(header, at: 0)
    var widths = [Int](repeating: 0, count: header.count)
    for r in table { for (i, cell) in r.enumerated() { widths[i] = max(widths[i], cell.count) } }
    func line(_ r: [String]) -> String {
        r.enumerated().map { i, cell in cell + String(repeating: " ", count: widths[i] - cell.count) }
            .joined(separator: "  ").trimmingTrailingSpaces()
    }
    var out: [String] = []
    if let device { out.append("device:    \(device)") }
    if let reference { out.append("reference: \(reference)") }
    out.append(line(table[0]))
    out.append(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  "))
    for (i, row) in rows.enumerated() {
        out.append(line(table[i + 1]))
        if !row.passed { out.append("    -> \(row.detail)") }
    }
    let failed = rows.filter { !$0.passed }.count
    let ops = Set(rows.map(\.op)).count
    out.append(failed == 0 ? "all \(rows.count) checks passed (\(ops) primitives)"
               : "\(failed) of \(rows.count) checks FAILED (\(Set(rows.filter { !$0.passed }.map(\.op)).sorted().joined(separator: ", ")))")
    return out.joined(separator: "\n")
}

/// True when every row passed (the exit status of `cnn verify` and the benchmark gate).
package func allPassed(_ rows: [VerifyRow]) -> Bool { !rows.isEmpty && rows.allSatisfy(\.passed) }

extension String {
    func trimmingTrailingSpaces() -> String {
        var s = Substring(self)
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}
