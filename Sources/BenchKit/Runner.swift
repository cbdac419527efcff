import Foundation
import SwiftCNN

/// Everything a run is asked to do (the `cnn-bench` options). Unset numbers take the defaults of
/// the full run, or of `quick`.
package struct BenchOptions: Sendable {
    /// Device list: all, cpu, cpu-ref (the plain reference), opencl (the best one), opencl:P:D, auto.
    package var devices: [String] = ["all"]
    package var quick = false
    package var reps: Int?
    package var minReps: Int?
    package var warmup: Int?
    package var maxCaseSeconds: Double?
    package var caseBudgetSeconds: Double?
    package var deviceTimeReps: Int?
    package var opBatch: Int?
    package var batches: [Int]?
    package var models: [String]?
    package var gemmSizes: [Int]?
    package var epochImages: Int?
    package var filter: [String] = []
    package var exclude: [String] = []
    package var gate = true
    /// Reference multiply-accumulates allowed for an exact-shape check of a GEMM / convolution case.
    package var gateBudgetMACs = 1e8
    package var modelGateBatch = 2
    package var dataPath: String?
    package var dataWorkers: Int?
    /// Run the end-to-end cases before the per-op ones (a time-capped run keeps the most telling
    /// numbers; case-budget estimates then have no per-op rate to start from).
    package var endToEndFirst = false
    package var command: [String] = CommandLine.arguments

    package init() {}

    package var selection: CaseSelection {
        var s = quick ? CaseSelection.quick : CaseSelection.full
        if let v = gemmSizes { s.gemmSizes = v }
        if let v = models {
            s.models = v
            if let e = s.epochModel, !v.contains(e) { s.epochModel = v.first }
        }
        if let v = opBatch { s.opBatch = v }
        if let v = batches { s.batches = v; s.epochBatch = v[0] }
        if let v = epochImages { s.epochImages = v }
        return s
    }

    package var settings: BenchSettings {
        let s = selection
        return BenchSettings(quick: quick, reps: reps ?? (quick ? 3 : 10), minReps: minReps ?? (quick ? 1 : 3),
                             warmup: warmup ?? (quick ? 1 : 2), maxCaseSeconds: maxCaseSeconds ?? (quick ? 2 : 15),
                             caseBudgetSeconds: caseBudgetSeconds ?? (quick ? 10 : 120),
                             deviceTimeReps: deviceTimeReps ?? (quick ? 2 : 5), opBatch: s.opBatch, batches: s.batches,
                             models: s.models, epochImages: s.epochImages, filter: filter, exclude: exclude, gate: gate,
                             gateBudgetMACs: gateBudgetMACs)
    }

    package func cases() throws -> [BenchCase] {
        let cases = CaseCatalog.filter(try CaseCatalog.cases(selection), include: filter, exclude: exclude)
        return endToEndFirst ? cases.filter(\.isEndToEnd) + cases.filter { !$0.isEndToEnd } : cases
    }
}

/// A device to measure. Selection and construction are the library's (`selectDevice`,
/// `makeBackend`); cnn-bench adds only `all` (every device), `cpu-ref` and test backends.
struct DeviceTarget {
    /// `cpu`, `cpu-ref` or `opencl:P:D`: the result's device id, and (except cpu-ref) the spec
    /// `makeBackend` builds the backend from.
    var id: String
    /// The OpenCL device's description, for the device record.
    var openCL: OpenCLDeviceInfo?
    var isReference: Bool
    var reason: String
    var factory: (() throws -> any Backend)? = nil

    func make() throws -> any Backend {
        if let factory { return try factory() }
        if isReference { return CPUBackend(reference: true) }
        return try makeBackend(id).backend
    }

    static func choice(_ c: DeviceChoice) -> DeviceTarget {
        switch c {
        case let .cpu(reason): return DeviceTarget(id: "cpu", openCL: nil, isReference: false, reason: reason)
        case let .opencl(d, reason): return DeviceTarget(id: d.selector, openCL: d, isReference: false, reason: reason)
        }
    }

    /// Resolves `--device` entries; problems (no OpenCL, unknown device) come back as messages.
    static func resolve(_ specs: [String]) -> (targets: [DeviceTarget], problems: [(id: String, message: String)]) {
        var targets: [DeviceTarget] = [], problems: [(String, String)] = []
        func add(_ t: DeviceTarget) { if !targets.contains(where: { $0.id == t.id }) { targets.append(t) } }
        for raw in specs.flatMap({ $0.split(separator: ",") }).map({ $0.trimmingCharacters(in: .whitespaces).lowercased() })
        where !raw.isEmpty {
            switch raw {
            case "all":
                add(DeviceTarget(id: "cpu", openCL: nil, isReference: false, reason: "all: the Swift CPU backend"))
                let inventory = OpenCLDiscovery.inventory()
                if let why = inventory.noPlatformReason {
                    problems.append(("opencl", "all: no OpenCL device (\(why)); measuring the CPU only"))
                }
                for d in inventory.devices {
                    add(DeviceTarget(id: d.selector, openCL: d, isReference: false, reason: "all: \(d.name) [\(d.type.rawValue)]"))
                }
            case "cpu-ref", "reference":
                add(DeviceTarget(id: "cpu-ref", openCL: nil, isReference: true, reason: "the CPU reference (plain loops)"))
            default:
                do { add(choice(try selectDevice(raw))) } catch { problems.append((raw, "\(error)")) }
            }
        }
        return (targets, problems)
    }
}

/// Runs the selected cases on the selected devices.
package final class BenchRunner {
    package let options: BenchOptions
    let settings: BenchSettings
    /// Table lines (stdout in the CLI).
    let out: (String) -> Void
    /// Progress and notes (stderr in the CLI).
    let log: (String) -> Void
    let reference = CPUBackend(reference: true)

    /// Called after every case with the results so far (`incomplete` set): the CLI rewrites `--out`.
    let checkpoint: ((BenchReport) -> Void)?

    package init(options: BenchOptions, out: @escaping (String) -> Void = { print($0) },
                log: @escaping (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) },
                checkpoint: ((BenchReport) -> Void)? = nil) {
        self.options = options
        settings = options.settings
        self.out = out
        self.log = log
        self.checkpoint = checkpoint
    }

    package func run() throws -> BenchReport { try run(customDevices: []) }

    /// Runs on the devices of `options.devices` and then on `customDevices` (id, backend factory) —
    /// e.g. a test's deliberately wrong backend, to show that the gate catches it.
    package func run(customDevices: [(id: String, make: () throws -> any Backend)]) throws -> BenchReport {
        let cases = try options.cases()
        guard !cases.isEmpty else {
            throw BenchError("no case matches --filter \(options.filter.joined(separator: ","))"
                             + (options.exclude.isEmpty ? "" : " --exclude \(options.exclude.joined(separator: ","))")
                             + "; list them with --list")
        }
        let env = EnvironmentProbe.collect(command: options.command)
        log("cnn-bench: \(cases.count) cases, \(env.cpuModel), \(env.activeCores) cores, \(env.build.configuration) build, "
            + "SWIFTCNN_FMA \(env.build.swiftcnnFMA ? "on" : "off"), SIMD FMA probe \(env.build.simdFMAProbeGflops) GFLOP/s, "
            + "commit \(env.gitCommit ?? "unknown")")
        if env.build.configuration == "debug" { log("note: a debug build; timings are for testing the tool, not for comparing") }
        var (targets, problems) = DeviceTarget.resolve(options.devices)
        targets += customDevices.map { DeviceTarget(id: $0.id, openCL: nil, isReference: false, reason: "custom backend", factory: $0.make) }
        var devices: [DeviceRecord] = []
        var results: [CaseResult] = []
        for p in problems {
            log("device \(p.id): \(p.message)")
            if !p.message.hasPrefix("all:") {
                devices.append(DeviceRecord(id: p.id, kind: "unknown", name: p.id, type: "unavailable", details: [:], setupSeconds: 0,
                                            error: p.message))
            }
        }
        for t in targets {
            let (record, rows) = runDevice(t, cases) { record, rows in
                guard let checkpoint = self.checkpoint else { return }
                var partial = BenchReport(environment: env, settings: self.settings, devices: devices + [record], results: results + rows)
                partial.incomplete = true
                checkpoint(partial)
            }
            devices.append(record)
            results += rows
        }
        let report = BenchReport(environment: env, settings: settings, devices: devices, results: results)
        let ids = devices.filter { $0.error == nil }.map(\.id)
        if ids.count >= 2 {
            out("")
            out("Devices side by side (speedup = \(ids[0]) time / other time; > 1 means faster than \(ids[0])):")
            let inputs = ids.map { id in CompareInput(label: id, results: results.filter { $0.device == id }) }
            out(BenchCompare.table(inputs, threshold: nil, metric: .wall))
        }
        return report
    }

    func runDevice(_ t: DeviceTarget, _ cases: [BenchCase],
                   progress: (DeviceRecord, [CaseResult]) -> Void = { _, _ in }) -> (DeviceRecord, [CaseResult]) {
        let t0 = monotonicSeconds()
        let before = ProgramCache.stats
        let backend: any Backend
        do { backend = try t.make() } catch {
            log("device \(t.id): \(error)")
            return (DeviceRecord(id: t.id, kind: t.openCL == nil ? "cpu" : "opencl", name: t.openCL?.name ?? t.id, type: "unavailable",
                                 details: [:], setupSeconds: monotonicSeconds() - t0, error: "\(error)"), [])
        }
        let setup = monotonicSeconds() - t0
        var rec = DeviceRecord(id: t.id, kind: backend.info.kind.rawValue, name: backend.info.name, type: backend.info.type,
                               details: backend.info.details, setupSeconds: setup)
        if let d = t.openCL {
            rec.vendor = d.vendor; rec.driverVersion = d.driverVersion; rec.platform = "\(d.platformName) (\(d.platformVersion))"
            rec.computeUnits = d.computeUnits; rec.globalMemoryGiB = (Double(d.globalMemoryBytes) / 1_073_741_824 * 10).rounded() / 10
        }
        out("")
        out("== \(t.id): \(backend.info.description) — \(t.reason)")
        if let d = t.openCL { out("   driver \(d.driverVersion), \(d.platformName), \(d.computeUnits) compute units") }
        let header = ResultTable.header
        out(ResultTable.line(header))
        var rows: [CaseResult] = []
        let gate = settings.gate ? CaseGate(reference: reference, budgetMACs: settings.gateBudgetMACs,
                                            modelBatch: options.modelGateBatch, deviceIsReference: t.isReference) : nil
        for c in cases {
            let r = runCase(c, on: backend, device: t.id, gate: gate, done: rows)
            rows.append(r)
            out(ResultTable.line(ResultTable.cells(r)))
            if r.status != "ok", let m = r.message { out("     \(r.status): \(m)") }
            if let g = r.gate, !g.passed { out("     gate FAILED (\(g.method)): \(g.detail ?? "")") }
            progress(rec, rows)
        }
        if t.openCL != nil {
            let after = ProgramCache.stats
            rec.programsCompiled = after.compilations - before.compilations
            rec.programsFromCache = after.hits - before.hits
            rec.compileSeconds = after.compileSeconds - before.compileSeconds
            rec.cacheLoadSeconds = after.loadSeconds - before.loadSeconds
        }
        rec.firstCallOverheadSeconds = rows.reduce(0) { acc, r in
            guard let f = r.firstCallMs, let m = r.wallMs?.median else { return acc }
            return acc + max(0, f - m) / 1000
        }
        let failed = rows.filter { $0.status == "gate-failed" }.count, errors = rows.filter { $0.status == "error" }.count
        let skipped = rows.filter { $0.status == "skipped" }.count
        out("   \(rows.count - failed - errors - skipped) measured, \(skipped) skipped, \(errors) errors, \(failed) failed the gate"
            + (rec.programsCompiled.map { "; OpenCL programs: \($0) compiled (\(String(format: "%.2f", rec.compileSeconds ?? 0)) s), "
                + "\(rec.programsFromCache ?? 0) from the cache" } ?? "")
            + String(format: "; first-call overhead %.2f s in total", rec.firstCallOverheadSeconds ?? 0))
        return (rec, rows)
    }

    /// One case: skip it (over the case budget), or prepare it, run it once, gate it against the
    /// CPU reference and measure it.
    func runCase(_ c: BenchCase, on b: any Backend, device: String, gate: CaseGate?, done: [CaseResult]) -> CaseResult {
        var r = CaseResult(name: c.name, device: device, family: c.family, op: c.op, shape: c.shape, batch: c.batch,
                           usedBy: c.usedBy, status: "ok")
        r.flops = c.flops
        r.bytes = c.bytes
        if let why = CaseBudget(seconds: settings.caseBudgetSeconds).skipReason(c, done: done) {
            r.status = "skipped"
            r.message = why
            return r
        }
        let measurement = Measurement(settings: settings)
        /// Records the gate's verdict; false when the case must not be timed.
        func passes(_ g: GateRecord) -> Bool {
            r.gate = g
            if !g.passed { r.status = "gate-failed" }
            return g.passed
        }
        do {
            let prep = try OpCases.prepare(c, on: b, dataPath: options.dataPath, dataWorkers: options.dataWorkers)
            try b.synchronize()
            if let selfTimed = prep.selfTimed {
                if let gate, let m = c.usedBy.first, !passes(gate.model(m, on: b)) { return r }
                let (seconds, extra) = try selfTimed()
                r.wallMs = Stats(seconds.map { $0 * 1000 })
                r.extra = extra
                if let images = extra["images"], let s = seconds.first, s > 0 {
                    r.imagesPerSecond = images / s
                    r.gflops = c.flops.map { $0 / s / 1e9 }
                }
                return r
            }
            // First call: kernel compilation, first-touch allocation; timed on its own. Its output
            // is what the sampled gate checks.
            r.firstCallMs = try measurement.once(prep, on: b) * 1000
            if let gate, !passes(gate.check(c, prep, on: b)) { return r }
            try measurement.measure(prep, on: b, endToEnd: c.isEndToEnd, into: &r)
            if let finish = prep.finish { r.extra = try finish() }
            Measurement.rates(c, into: &r)
            if let loss = r.extra?["meanLoss"], !loss.isFinite {
                r.status = "error"
                r.message = "the training loss is \(loss)"
            }
        } catch {
            r.status = "error"
            r.message = "\(error)"
        }
        return r
    }
}
