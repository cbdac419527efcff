import SwiftCNN

/// The correctness gate of one device: each case's primitive (or model) against the CPU reference,
/// before it is timed (see README, "cnn-bench"). Model gates are computed once per model and device.
final class CaseGate {
    let reference: any Backend
    let budgetMACs: Double
    let modelBatch: Int
    /// The device is the CPU reference itself: nothing to compare.
    let deviceIsReference: Bool
    private var models: [String: GateRecord] = [:]

    init(reference: any Backend, budgetMACs: Double, modelBatch: Int, deviceIsReference: Bool) {
        self.reference = reference
        self.budgetMACs = budgetMACs
        self.modelBatch = modelBatch
        self.deviceIsReference = deviceIsReference
    }

    static let trivial = GateRecord(passed: true, method: "the device is the CPU reference", checks: 0, maxAbsError: 0,
                                    maxRelError: 0, seconds: 0, detail: nil)

    /// A model's eval logits, training loss and gradients against the reference.
    func model(_ name: String, on b: any Backend) -> GateRecord {
        if deviceIsReference { return Self.trivial }
        if let g = models[name] { return g }
        let g = EndToEnd.modelGate(model: name, device: b, batch: modelBatch)
        models[name] = g
        return g
    }

    /// Checks `c` on `b` after its first run: the primitive at the benchmarked shape when the
    /// reference can afford it, else at a reduced batch plus sampled elements of the timed output.
    func check(_ c: BenchCase, _ prep: PreparedCase, on b: any Backend) -> GateRecord {
        if c.isEndToEnd, let m = c.usedBy.first { return model(m, on: b) }
        if deviceIsReference { return Self.trivial }
        let t0 = monotonicSeconds()
        var rec: GateRecord
        if c.referenceMACs <= budgetMACs || prep.sampledCheck == nil, let vcs = OpCases.verifyCases(c) {
            rec = Self.record(verify(device: b, reference: reference, cases: vcs), method: "verify at the benchmarked shape")
        } else {
            var parts: [GateRecord] = []
            if let rb = OpCases.reducedBatch(c, budgetMACs: budgetMACs), let vcs = OpCases.verifyCases(c, batch: rb) {
                parts.append(Self.record(verify(device: b, reference: reference, cases: vcs), method: "verify at batch \(rb)"))
            }
            if let sampled = prep.sampledCheck {
                do { parts.append(try sampled()) } catch {
                    parts.append(GateRecord(passed: false, method: "sampled", checks: 1, maxAbsError: nil, maxRelError: nil,
                                            seconds: 0, detail: "threw: \(error)"))
                }
            }
            rec = GateRecord(passed: parts.allSatisfy(\.passed), method: parts.map(\.method).joined(separator: " + "),
                             checks: parts.reduce(0) { $0 + $1.checks },
                             maxAbsError: finite(parts.compactMap(\.maxAbsError).max()),
                             maxRelError: finite(parts.compactMap(\.maxRelError).max()), seconds: 0,
                             detail: parts.first { !$0.passed }?.detail)
        }
        rec.seconds = monotonicSeconds() - t0
        return rec
    }

    static func record(_ rows: [VerifyRow], method: String) -> GateRecord {
        let bad = rows.first { !$0.passed }
        return GateRecord(passed: allPassed(rows), method: method, checks: rows.count,
                          maxAbsError: finite(rows.map(\.maxAbsError).max()), maxRelError: finite(rows.map(\.maxRelError).max()),
                          seconds: 0, detail: bad.map { "\($0.op) \($0.shape) \($0.output): \($0.detail)" })
    }
}
