import Foundation
import SwiftCNN

/// A case set up on one backend: inputs uploaded, outputs allocated.
final class PreparedCase {
    /// One repetition (enqueues the work; the runner synchronizes).
    var run: () throws -> Void = {}
    /// Checks the output of the latest `run` at sampled elements against float64 sums on the host
    /// (for shapes too large for a full reference run); nil where the case has none.
    var sampledCheck: (() throws -> GateRecord)?
    /// After timing: numbers to keep (e.g. the mean training loss).
    var finish: (() throws -> [String: Double])?
    /// Whole-case runner (the epoch case times itself): returns per-repetition seconds.
    var selfTimed: (() throws -> (seconds: [Double], extra: [String: Double]))?
}

/// Per-op cases: everything comes from the case's `OpDescriptor` (Verification), so a new
/// primitive needs no code here.
enum OpCases {
    static func prepare(_ c: BenchCase, on b: any Backend, dataPath: String? = nil, dataWorkers: Int? = nil) throws -> PreparedCase {
        guard case let .op(d) = c.kind else { return try EndToEnd.prepare(c, on: b, dataPath: dataPath, dataWorkers: dataWorkers) }
        let op = try d.prepare(on: b)
        let p = PreparedCase()
        p.run = op.run
        p.sampledCheck = op.sampled.map { sampled in { sampledRecord(try sampled()) } }
        return p
    }

    /// Sampled outputs as a gate record: one check per output.
    static func sampledRecord(_ outputs: [SampledOutput]) -> GateRecord {
        var rec = GateRecord(passed: true, method: "sampled \(outputs.first?.reference.count ?? 0) elements of the timed output "
                             + "vs float64 sums", checks: 0, maxAbsError: 0, maxRelError: 0, seconds: 0, detail: nil)
        for o in outputs {
            let c = compare(o.got, o.reference, o.tolerance)
            rec.checks += 1
            rec.maxAbsError = finite(max(rec.maxAbsError ?? 0, c.maxAbsError))
            rec.maxRelError = finite(max(rec.maxRelError ?? 0, c.maxRelError))
            if !c.passed {
                rec.passed = false
                rec.detail = (rec.detail.map { $0 + "; " } ?? "") + "\(o.name): \(c)"
            }
        }
        return rec
    }

    /// The Verification cases that check `c`'s primitive at `c`'s shape (batch reduced to `batch`
    /// where given), or nil for end-to-end cases and for a batch the case cannot be rebuilt at.
    static func verifyCases(_ c: BenchCase, batch: Int? = nil) -> [VerifyCase]? {
        guard case let .op(d) = c.kind else { return nil }
        guard let batch else { return [d.verifyCase] }
        return d.atBatch(batch).map { [$0.verifyCase] }
    }

    /// For cases with a batch axis over the reference budget: the batch at which a reference check
    /// fits it (nil when one item alone exceeds it, or the case has no batch axis).
    static func reducedBatch(_ c: BenchCase, budgetMACs: Double) -> Int? {
        guard case let .op(d) = c.kind, let batch = d.batch, batch > 1, d.referenceMACs > 0 else { return nil }
        let per = d.referenceMACs / Double(batch)
        return per <= budgetMACs ? max(1, min(batch - 1, Int(budgetMACs / per))) : nil
    }
}
