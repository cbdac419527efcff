import CNNCore
import Foundation

/// A bounded search over CLBlast's single-precision GEMM parameters for the GEMMs a model runs.
///
/// 1. CLBlast's defaults for the device are read (`RetrieveParameters`) and timed as they are.
/// 2. Indirect kernel (`Xgemm`): the defaults, then candidates from a grid (seeded order), each
///    timed with every GEMM forced onto the indirect path (XGEMM_MIN_INDIRECT_SIZE 1).
/// 3. Direct kernel (`XgemmDirect`): likewise, with every GEMM forced direct.
/// 4. The threshold: the XGEMM_MIN_INDIRECT_SIZE that sends each shape to the faster of the two
///    winners (shapes sorted by m*n*k; the cut with the least total time).
/// 5. The combination is timed, then timed twice more interleaved with the defaults; it is kept
///    only if it passes the gate every time and its median total beats the defaults' by more than
///    3%, else the defaults stay.
///
/// Correctness gate: every timed run of every candidate first writes C over a sentinel and its
/// result is compared with the CPU result of the same GEMM (`accept`); a candidate that fails on any
/// shape, or that CLBlast cannot compile or launch, is dropped. Time: wall clock around a
/// `synchronize`d loop of calls (adaptive repetitions). The search stops starting candidates when
/// its budget is spent (the defaults and the final check always run).
package struct GEMMTuner {
    package struct Options {
        /// Seconds for the whole search (about: a candidate that started finishes).
        package var budgetSeconds: Double
        /// Most candidates per kernel (indirect, direct), the defaults included.
        package var maxIndirectCandidates: Int
        package var maxDirectCandidates: Int
        /// Wall seconds of timed calls per shape and candidate (repetitions adapt to it).
        package var secondsPerShape: Double
        package var seed: UInt64 = 0x5EED_7E57
        /// Progress lines.
        package var log: (String) -> Void = { _ in }
        /// Test hook: when it returns true for a candidate, one element of that candidate's device
        /// output is changed before the gate (so the gate must reject it).
        package var corruptOutput: ((CLBlastGEMMParameters) -> Bool)?

        /// About 30 s and dozens of candidates on a GPU. Elsewhere (PoCL) a handful within 40 s: there
        /// CLBlast's program compile dominates (each candidate is a new program; seconds each).
        package static func forDevice(_ info: OpenCLDeviceInfo) -> Options {
            info.type == .gpu
                ? Options(budgetSeconds: 30, maxIndirectCandidates: 40, maxDirectCandidates: 16, secondsPerShape: 0.01)
                : Options(budgetSeconds: 40, maxIndirectCandidates: 3, maxDirectCandidates: 3, secondsPerShape: 0.01)
        }

        package init(budgetSeconds: Double, maxIndirectCandidates: Int, maxDirectCandidates: Int, secondsPerShape: Double) {
            self.budgetSeconds = budgetSeconds
            self.maxIndirectCandidates = maxIndirectCandidates
            self.maxDirectCandidates = maxDirectCandidates
            self.secondsPerShape = secondsPerShape
        }
    }

    let backend: OpenCLBackend
    let reference: any Backend
    /// The gate: nil when `got` matches the CPU result `expected`, else why not.
    let accept: (_ got: [Float], _ expected: [Float]) -> String?
    var options: Options

    package init(backend: OpenCLBackend, reference: any Backend, options: Options,
                 accept: @escaping (_ got: [Float], _ expected: [Float]) -> String?) {
        self.backend = backend
        self.reference = reference
        self.options = options
        self.accept = accept
    }

    /// The problem of one shape: inputs on the device, the CPU result, and C.
    private struct Problem {
        var shape: GEMMShape
        var a: Tensor, b: Tensor, c: Tensor
        var expected: [Float]
    }

    private enum Outcome {
        case timed([Double])
        case rejected(String)
        case failed(String)
    }

    /// Runs the search for `shapes` and applies the result to the device (process-wide). Call it
    /// before any tuning was applied in this process: CLBlast's parameters at the start are taken
    /// as the defaults.
    package func run(shapes requested: [GEMMShape], workload: String) throws -> TuningRecord {
        let defaults = try backend.currentGEMMParameters()
        do {
            return try search(shapes: requested, workload: workload, defaults: defaults)
        } catch {
            try? backend.applyGEMMParameters(defaults)   // never leave a half-searched candidate applied
            throw error
        }
    }

    private func search(shapes requested: [GEMMShape], workload: String, defaults: CLBlastGEMMParameters) throws -> TuningRecord {
        let t0 = Date()
        let shapes = Array(Set(requested.filter { $0.m > 0 && $0.n > 0 && $0.k > 0 })).sorted {
            ($0.volume, $0.m, $0.n, $0.k, $0.transA ? 1 : 0, $0.transB ? 1 : 0) < ($1.volume, $1.m, $1.n, $1.k, $1.transA ? 1 : 0, $1.transB ? 1 : 0)
        }
        try require(!shapes.isEmpty, "tuning \(backend.deviceInfo.name): no GEMM shapes to tune for (\(workload))")
        options.log("tuning CLBlast GEMM on \(backend.deviceInfo.name) for \(shapes.count) shapes (\(workload)), "
                    + "budget \(String(format1: options.budgetSeconds)) s")
        options.log("  defaults: \(defaults)")

        var rng = SeededRNG(seed: options.seed)
        var problems: [Problem] = []
        for s in shapes {
            let aCount = s.m * s.k, bCount = s.k * s.n
            let av = (0..<aCount).map { _ in Float.random(in: -1...1, using: &rng) }
            let bv = (0..<bCount).map { _ in Float.random(in: -1...1, using: &rng) }
            let ra = try reference.upload(av, shape: [aCount]), rb = try reference.upload(bv, shape: [bCount])
            let rc = try reference.makeTensor([s.m * s.n])
            try reference.gemm(transA: s.transA, transB: s.transB, m: s.m, n: s.n, k: s.k, alpha: 1,
                               a: ra, lda: s.transA ? s.m : s.k, b: rb, ldb: s.transB ? s.k : s.n, beta: 0, c: rc, ldc: s.n)
            problems.append(Problem(shape: s, a: try backend.upload(av, shape: [aCount]), b: try backend.upload(bv, shape: [bCount]),
                                    c: try backend.makeTensor([s.m * s.n]), expected: try reference.floats(rc)))
        }

        var timed = 0, rejected = 0, failed = 0
        var lastCost = 0.0   // seconds the last evaluation took (on a CPU driver mostly CLBlast's compile)
        func evaluate(_ p: CLBlastGEMMParameters, _ label: String) -> Outcome {
            let start = Date()
            let outcome = measure(p, problems)
            lastCost = Date().timeIntervalSince(start)
            let took = "[\(String(format1: lastCost)) s]"
            switch outcome {
            case .timed(let t): timed += 1; options.log("  \(label): \(ms(t.reduce(0, +))) ms \(took)  \(p.describe(label))")
            case .rejected(let why): rejected += 1; options.log("  \(label): REJECTED by the gate \(took) (\(why))  \(p.describe(label))")
            case .failed(let why): failed += 1; options.log("  \(label): failed to run \(took) (\(why))  \(p.describe(label))")
            }
            return outcome
        }
        var elapsed: Double { Date().timeIntervalSince(t0) }
        /// Another candidate fits when the last one's cost, repeated, stays within `share` of the budget.
        func fits(_ share: Double) -> Bool { elapsed + lastCost <= options.budgetSeconds * share }

        // 1. The defaults as they are: the baseline (the gate applies to them too).
        guard case .timed(let defaultTimes) = evaluate(defaults, "defaults") else {
            throw CNNError.device("tuning \(backend.deviceInfo.name): CLBlast's default GEMM parameters fail the correctness "
                                  + "gate or do not run; the device is not usable for training (run `cnn verify`)")
        }

        // 2. Indirect kernel.
        var forced = defaults
        forced.minIndirectSize = 1
        // When the defaults already sent every shape down one path, their run is that path's baseline
        // (one CLBlast compile less: each parameter set, the threshold included, is a new program).
        let cube = defaults.minIndirectSize * defaults.minIndirectSize * defaults.minIndirectSize
        let allIndirect = shapes.allSatisfy { $0.volume >= cube }, allDirect = shapes.allSatisfy { $0.volume < cube }
        var bestIndirect = (params: defaults.xgemm, times: allIndirect ? defaultTimes : nil)
        let indirectGrid = Self.xgemmCandidates(defaults.xgemm, device: backend.deviceInfo, seed: options.seed)
        for (i, candidate) in ([defaults.xgemm] + indirectGrid).prefix(options.maxIndirectCandidates).enumerated() {
            if i == 0 && allIndirect { continue }
            if i > 0 && !fits(0.6) { break }
            forced.xgemm = candidate
            if case .timed(let t) = evaluate(forced, i == 0 ? "indirect defaults" : "indirect \(i)"),
               bestIndirect.times == nil || t.reduce(0, +) < bestIndirect.times!.reduce(0, +) {
                bestIndirect = (candidate, t)
            }
        }

        // 3. Direct kernel.
        forced = defaults
        forced.xgemm = bestIndirect.params
        forced.minIndirectSize = 1 << 16   // every m*n*k < 2^48: all direct
        var bestDirect = (params: defaults.xgemmDirect, times: allDirect ? defaultTimes : nil)
        let directGrid = Self.xgemmDirectCandidates(defaults.xgemmDirect, device: backend.deviceInfo, seed: options.seed)
        for (i, candidate) in ([defaults.xgemmDirect] + directGrid).prefix(options.maxDirectCandidates).enumerated() {
            if i == 0 && allDirect { continue }
            if i > 0 && !fits(0.9) { break }
            forced.xgemmDirect = candidate
            if case .timed(let t) = evaluate(forced, i == 0 ? "direct defaults" : "direct \(i)"),
               bestDirect.times == nil || t.reduce(0, +) < bestDirect.times!.reduce(0, +) {
                bestDirect = (candidate, t)
            }
        }

        // 4. The threshold, and 5. the final check.
        var chosen = defaults
        var baselineTimes = defaultTimes
        var chosenTimes = defaultTimes
        if bestIndirect.times != nil || bestDirect.times != nil {
            let threshold = Self.bestThreshold(volumes: shapes.map(\.volume), indirect: bestIndirect.times,
                                               direct: bestDirect.times, current: defaults.minIndirectSize)
            let combined = CLBlastGEMMParameters(xgemm: bestIndirect.params, xgemmDirect: bestDirect.params,
                                                 minIndirectSize: threshold)
            if combined != defaults, case .timed(let t) = evaluate(combined, "tuned") {
                // Confirmation, interleaved: defaults and tuned twice more each (both programs are
                // compiled by now, so this is cheap), every run gated; per-shape medians of the three.
                // The tuned set is kept only if it passes every run and its total beats the defaults'
                // by more than 3% (single timings on a busy machine vary more than that).
                var d = [defaultTimes], c = [t], passed = true
                for _ in 0..<2 {
                    guard case .timed(let dt) = measure(defaults, problems), case .timed(let ct) = measure(combined, problems) else {
                        passed = false
                        rejected += 1
                        options.log("  tuned: REJECTED in the confirmation runs (gate or launch failure)")
                        break
                    }
                    d.append(dt); c.append(ct)
                }
                if passed {
                    let dm = Self.medians(d), cm = Self.medians(c)
                    options.log("  confirmation (medians of 3, interleaved): defaults \(ms(dm.reduce(0, +))) ms, tuned \(ms(cm.reduce(0, +))) ms")
                    baselineTimes = dm
                    if cm.reduce(0, +) < 0.97 * dm.reduce(0, +) {
                        chosen = combined
                        chosenTimes = cm
                    } else {
                        chosenTimes = dm
                    }
                }
            }
        }
        try backend.applyGEMMParameters(chosen)
        try backend.synchronize()

        let info = backend.deviceInfo
        let results = shapes.indices.map { i in
            TuningRecord.ShapeResult(shape: shapes[i], defaultSeconds: baselineTimes[i], tunedSeconds: chosenTimes[i],
                                     kernel: shapes[i].volume < chosen.minIndirectSize * chosen.minIndirectSize * chosen.minIndirectSize
                                         ? "direct" : "indirect")
        }
        let record = TuningRecord(key: TuningCache.key(info), device: info.name, driverVersion: info.driverVersion,
                                  created: ISO8601DateFormatter().string(from: Date()), workload: workload,
                                  parameters: chosen, defaults: defaults, shapes: results,
                                  searchSeconds: Date().timeIntervalSince(t0), candidatesTimed: timed,
                                  rejectedByGate: rejected, failedToRun: failed)
        options.log("tuned in \(String(format1: record.searchSeconds)) s: \(timed) candidates timed, \(rejected) rejected by the gate, "
                    + "\(failed) failed to run; GEMM total \(ms(record.defaultSeconds)) ms (defaults) -> \(ms(record.tunedSeconds)) ms"
                    + (chosen == defaults ? " (the defaults stay)" : ""))
        return record
    }

    /// Applies `p`, then per shape: one gated call (C starts as a sentinel), then timed calls.
    private func measure(_ p: CLBlastGEMMParameters, _ problems: [Problem]) -> Outcome {
        do {
            try backend.applyGEMMParameters(p)
        } catch {
            return .failed("\(error)")
        }
        var times: [Double] = []
        for pr in problems {
            let s = pr.shape
            func call() throws {
                try backend.enqueueGemm(transA: s.transA, transB: s.transB, m: s.m, n: s.n, k: s.k, alpha: 1,
                                        a: pr.a, lda: s.transA ? s.m : s.k, strideA: 0, b: pr.b, ldb: s.transB ? s.k : s.n,
                                        strideB: 0, beta: 0, c: pr.c, ldc: s.n, strideC: 0, batch: 1)
            }
            do {
                try backend.fill(pr.c, value: 12345)   // an element the kernel does not write stays wrong
                try call()
                var got = try backend.floats(pr.c)
                if let corrupt = options.corruptOutput, corrupt(p) { got[got.count / 2] += 1 + abs(got[got.count / 2]) }
                if let why = accept(got, pr.expected) { return .rejected("\(s): \(why)") }
                var start = Date()
                try call()
                try backend.synchronize()
                let once = max(Date().timeIntervalSince(start), 1e-6)
                let reps = max(1, min(50, Int(options.secondsPerShape / once)))
                start = Date()
                for _ in 0..<reps { try call() }
                try backend.synchronize()
                times.append(min(once, Date().timeIntervalSince(start) / Double(reps)))
            } catch {
                return .failed("\(s): \(error)")
            }
        }
        return .timed(times)
    }

    /// Per shape, the median over runs.
    static func medians(_ runs: [[Double]]) -> [Double] {
        guard let first = runs.first else { return [] }
        return first.indices.map { i in
            let v = runs.map { $0[i] }.sorted()
            return v.count % 2 == 1 ? v[v.count / 2] : (v[v.count / 2 - 1] + v[v.count / 2]) / 2
        }
    }

    /// The XGEMM_MIN_INDIRECT_SIZE with the least total time: shapes with m*n*k < size^3 run direct.
    /// Ties keep `current`. Without one of the two timings, the path that was timed takes every shape.
    static func bestThreshold(volumes: [Int], indirect: [Double]?, direct: [Double]?, current: Int) -> Int {
        guard let indirect else { return 1 << 16 }
        guard let direct else { return 1 }
        func total(_ size: Int) -> Double {
            volumes.indices.reduce(0) { $0 + (volumes[$1] < size * size * size ? direct[$1] : indirect[$1]) }
        }
        // Candidate sizes: the current one, 1 (all indirect), and for each volume v the smallest size
        // whose cube exceeds v (that shape and every smaller one run direct).
        var sizes = [current, 1]
        for v in volumes {
            var s = max(1, Int(Double(v).squareRoot().squareRoot().squareRoot()) - 2)
            while s * s * s <= v { s += 1 }
            sizes.append(s)
        }
        var best = current
        for s in sizes where total(s) < total(best) { best = s }
        return best
    }

    /// Grid of `Xgemm` parameter sets (GEMMK 0: CLBlast's classic tiled kernel), filtered by
    /// CLBlast's tuner constraints and the device's limits, in a seeded order. `base` supplies every
    /// parameter not varied here.
    static func xgemmCandidates(_ base: [String: Int], device: OpenCLDeviceInfo, seed: UInt64) -> [[String: Int]] {
        var out: [[String: Int]] = []
        let maxWG = max(device.maxWorkGroupSize, 1)
        let local = device.localMemoryBytes == 0 ? 32768 : Int(device.localMemoryBytes)
        for mwg in [16, 32, 64, 128] { for nwg in [16, 32, 64, 128] { for kwg in [16, 32] {
        for mdimc in [8, 16, 32] { for ndimc in [8, 16, 32] { for vwm in [1, 2, 4] { for vwn in [1, 2, 4] { for sa in [0, 1] {
            let kwi = 2
            guard mwg % (mdimc * vwm) == 0, nwg % (ndimc * vwn) == 0, kwg % kwi == 0,
                  kwg % mdimc == 0, kwg % ndimc == 0,   // KWG % (MDIMC*NDIMC/MDIMA), MDIMA = MDIMC; likewise B
                  mdimc * ndimc <= maxWG, (sa * kwg * mwg + sa * kwg * nwg) * 4 <= local
            else { continue }
            var p = base
            p["GEMMK"] = 0; p["KREG"] = 1; p["KWG"] = kwg; p["KWI"] = kwi
            p["MDIMA"] = mdimc; p["MDIMC"] = mdimc; p["MWG"] = mwg
            p["NDIMB"] = ndimc; p["NDIMC"] = ndimc; p["NWG"] = nwg
            p["SA"] = sa; p["SB"] = sa; p["STRM"] = 0; p["STRN"] = 0; p["VWM"] = vwm; p["VWN"] = vwn
            if p != base { out.append(p) }
        } } } } } } } }
        var rng = SeededRNG(seed: seed)
        out.shuffle(using: &rng)
        return out
    }

    /// Grid of `XgemmDirect` parameter sets, constrained like CLBlast's tuner, in a seeded order.
    static func xgemmDirectCandidates(_ base: [String: Int], device: OpenCLDeviceInfo, seed: UInt64) -> [[String: Int]] {
        var out: [[String: Int]] = []
        let maxWG = max(device.maxWorkGroupSize, 1)
        let local = device.localMemoryBytes == 0 ? 32768 : Int(device.localMemoryBytes)
        for wgd in [8, 16, 32, 64] { for dim in [8, 16] { for vwmd in [1, 2, 4] { for vwnd in [1, 2, 4] {
            let kwid = 2
            guard wgd % (dim * vwmd) == 0, wgd % (dim * vwnd) == 0, wgd % kwid == 0, wgd % dim == 0,
                  dim * dim <= maxWG, 2 * wgd * (wgd + 1) * 4 <= local
            else { continue }
            var p = base
            p["WGD"] = wgd; p["MDIMCD"] = dim; p["NDIMCD"] = dim; p["MDIMAD"] = dim; p["NDIMBD"] = dim
            p["KWID"] = kwid; p["VWMD"] = vwmd; p["VWND"] = vwnd; p["PADA"] = 1; p["PADB"] = 1
            if p != base { out.append(p) }
        } } } }
        var rng = SeededRNG(seed: seed &+ 1)
        out.shuffle(using: &rng)
        return out
    }
}

private func ms(_ seconds: Double) -> String { String(format: "%.3f", seconds * 1000) }

extension CLBlastGEMMParameters {
    /// The part a search step varies.
    func describe(_ label: String) -> String {
        if label.hasPrefix("indirect") { return "Xgemm {\(Self.text(xgemm))}" }
        if label.hasPrefix("direct") { return "XgemmDirect {\(Self.text(xgemmDirect))}" }
        return label == "defaults" ? "" : description
    }
}
