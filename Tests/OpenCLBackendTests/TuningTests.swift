import CNNCore
import CPUBackend
import Foundation
@testable import OpenCLBackend
import Testing
import Verification

/// The CLBlast tuner: its cache file (here), and the search, the gate and the policies in child
/// processes (CLBlast keeps parameter overrides per device for the whole process, so a search in
/// this process would change the GEMMs of every other test running beside it).
@Suite struct TuningCacheTests {
    static let device = OpenCLDeviceInfo(
        platformIndex: 0, deviceIndex: 0, platformName: "Test platform", platformVendor: "test", platformVersion: "OpenCL 3.0 test",
        name: "Test device 9000", vendor: "test", driverVersion: "1.2.3", deviceVersion: "OpenCL 3.0", type: .gpu,
        computeUnits: 4, maxClockMHz: 1000, globalMemoryBytes: 1 << 30, maxAllocationBytes: 1 << 28,
        localMemoryBytes: 49152, maxWorkGroupSize: 1024, preferredWorkGroupMultiple: 32, supportsFP16: false, supportsFP64: false)

    static func record(for device: OpenCLDeviceInfo) -> TuningRecord {
        let defaults = CLBlastGEMMParameters(xgemm: ["MWG": 64, "NWG": 64, "KWG": 32], xgemmDirect: ["WGD": 32], minIndirectSize: 384)
        var tuned = defaults
        tuned.xgemm["MWG"] = 128
        tuned.minIndirectSize = 96
        return TuningRecord(key: TuningCache.key(device), device: device.name, driverVersion: device.driverVersion,
                            created: "2026-12-03T00:00:00Z", workload: "optimized, batch 128", parameters: tuned, defaults: defaults,
                            shapes: [.init(shape: GEMMShape(m: 64, n: 32768, k: 288), defaultSeconds: 0.002, tunedSeconds: 0.001,
                                           kernel: "indirect")],
                            searchSeconds: 12.5, candidatesTimed: 20, rejectedByGate: 1, failedToRun: 2)
    }

    @Test func roundTrip() throws {
        let root = try temporaryDirectory("tuning-cache")
        let dev = Self.device
        #expect(TuningCache.load(dev, root: root) == .missing)
        let r = Self.record(for: dev)
        try TuningCache.store(r, for: dev, root: root)
        #expect(TuningCache.load(dev, root: root) == .found(r))
        // Another driver version is another entry: not found, and the first one stays.
        var other = dev
        other.driverVersion = "1.2.4"
        #expect(TuningCache.url(for: other, root: root) != TuningCache.url(for: dev, root: root))
        #expect(TuningCache.load(other, root: root) == .missing)
        #expect(r.defaultSeconds == 0.002 && r.tunedSeconds == 0.001)
    }

    @Test func unusableFilesGetAClearMessage() throws {
        let root = try temporaryDirectory("tuning-corrupt")
        let dev = Self.device
        let url = TuningCache.url(for: dev, root: root)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let good = try JSONEncoder().encode(Self.record(for: dev))
        var wrongKey = Self.record(for: dev)
        wrongKey.key = String(repeating: "0", count: 64)
        var negative = Self.record(for: dev)
        negative.parameters.xgemm["KWG"] = -1
        let cases: [(String, Data, String)] = [
            ("garbage", Data("not json at all \u{0}\u{1}".utf8), "not a valid tuning record"),
            ("truncated", good.prefix(good.count / 2), "not a valid tuning record"),
            ("empty", Data(), "not a valid tuning record"),
            ("other key", try JSONEncoder().encode(wrongKey), "key mismatch"),
            ("negative value", try JSONEncoder().encode(negative), "negative"),
        ]
        for (label, bytes, why) in cases {
            try bytes.write(to: url)
            guard case .corrupt(let message) = TuningCache.load(dev, root: root) else {
                Issue.record("\(label): accepted")
                continue
            }
            #expect(message.contains(url.path) && message.contains(why) && message.contains("re-tuned"), "\(label): \(message)")
        }
    }

    /// The threshold picks, per shape, the faster path — as far as one cut by m*n*k allows.
    @Test func thresholdSendsEachShapeToTheFasterKernel() {
        let volumes = [1000, 8000, 1_000_000, 8_000_000]
        // Direct wins on the two small shapes only.
        let t = GEMMTuner.bestThreshold(volumes: volumes, indirect: [5, 5, 1, 1], direct: [1, 1, 5, 5], current: 500)
        #expect(t * t * t > 8000 && t * t * t <= 1_000_000, "\(t)")
        // Indirect everywhere: no shape runs direct.
        #expect(GEMMTuner.bestThreshold(volumes: volumes, indirect: [1, 1, 1, 1], direct: [2, 2, 2, 2], current: 500) == 1)
        // Direct everywhere: every shape below the cut.
        let all = GEMMTuner.bestThreshold(volumes: volumes, indirect: [2, 2, 2, 2], direct: [1, 1, 1, 1], current: 5)
        #expect(all * all * all > 8_000_000)
        // Without a direct timing, all indirect; without an indirect one, all direct.
        #expect(GEMMTuner.bestThreshold(volumes: volumes, indirect: [1, 1, 1, 1], direct: nil, current: 500) == 1)
        #expect(GEMMTuner.bestThreshold(volumes: volumes, indirect: nil, direct: [1, 1, 1, 1], current: 500) == 1 << 16)
        // The confirmation compares per-shape medians of interleaved runs.
        #expect(GEMMTuner.medians([[1, 5], [3, 4], [2, 60]]) == [2, 5])
    }

    /// Every grid candidate satisfies CLBlast's constraints and the device's limits.
    @Test func gridsRespectTheConstraints() {
        var dev = Self.device
        dev.maxWorkGroupSize = 128
        dev.localMemoryBytes = 16384
        let base = ["GEMMK": 0, "KREG": 1, "KWG": 32, "KWI": 2, "MDIMA": 8, "MDIMC": 8, "MWG": 64, "NDIMB": 8, "NDIMC": 8,
                    "NWG": 64, "SA": 0, "SB": 0, "STRM": 0, "STRN": 0, "VWM": 4, "VWN": 4]
        let grid = GEMMTuner.xgemmCandidates(base, device: dev, seed: 1)
        #expect(grid.count > 20)
        for p in grid {
            #expect(Set(p.keys) == Set(base.keys))
            #expect(p["MWG"]! % (p["MDIMC"]! * p["VWM"]!) == 0 && p["NWG"]! % (p["NDIMC"]! * p["VWN"]!) == 0)
            #expect(p["KWG"]! % p["KWI"]! == 0 && p["KWG"]! % (p["MDIMC"]! * p["NDIMC"]! / p["MDIMA"]!) == 0)
            #expect(p["MDIMC"]! * p["NDIMC"]! <= 128)
            #expect((p["SA"]! * p["KWG"]! * p["MWG"]! + p["SB"]! * p["KWG"]! * p["NWG"]!) * 4 <= 16384)
        }
        #expect(grid == GEMMTuner.xgemmCandidates(base, device: dev, seed: 1), "seeded order")
        let direct = GEMMTuner.xgemmDirectCandidates(["WGD": 8, "MDIMCD": 8, "NDIMCD": 8, "MDIMAD": 8, "NDIMBD": 8, "KWID": 2,
                                                      "VWMD": 1, "VWND": 1, "PADA": 1, "PADB": 1], device: dev, seed: 1)
        #expect(!direct.isEmpty)
        for p in direct {
            #expect(p["WGD"]! % (p["MDIMCD"]! * p["VWMD"]!) == 0 && p["WGD"]! % (p["NDIMCD"]! * p["VWND"]!) == 0)
            #expect(2 * p["WGD"]! * (p["WGD"]! + 1) * 4 <= 16384)
        }
    }
}

/// The search and the policies on the real OpenCL device, each in a child process.
@Suite(.enabled(if: OCL.available, "no OpenCL device"))
struct TuningSearchTests {
    static func env() throws -> [String: String] {
        ["SWIFTCNN_CACHE_DIR": try temporaryDirectory("tuning-child").path]
    }

    /// A corrupt cache file: a clear message naming it, then a search that keeps a configuration
    /// that passed the gate and replaces the file; a later process with `.cacheOnly` gets exactly
    /// those parameters.
    @Test func corruptCacheIsReportedRetunedAndTheNextProcessAppliesIt() throws {
        let env = try Self.env()
        let first = try Child.run(mode: "tuningCorrupt", environment: env)
        #expect(first["log"]?.contains("is not usable") == true && first["log"]?.contains("re-tuned") == true, "\(first)")
        #expect(first["note"]?.contains("searched now") == true, "\(first)")
        #expect(first["stored"] == "true", "\(first)")
        #expect(first["appliedEqualsRecord"] == "true", "\(first)")
        #expect(Int(first["timed"] ?? "") ?? 0 >= 2, "\(first)")
        let second = try Child.run(mode: "tuningCacheOnly", environment: env)
        #expect(second["note"]?.contains("cached") == true, "\(second)")
        #expect(second["current"] == first["chosen"], "\(second) vs \(first)")
        print("tuning on \(first["device"] ?? "?"): \(first["seconds"] ?? "?") s, \(first["timed"] ?? "?") timed, chosen \(first["chosen"] ?? "?")")
    }

    /// Every configuration but the defaults fails the gate: none of them is kept, and the
    /// rejections are counted.
    @Test func configurationsFailingTheGateAreNeverKept() throws {
        let r = try Child.run(mode: "tuningGate", environment: try Self.env())
        #expect(r["chosenIsDefault"] == "true", "\(r)")
        #expect(r["currentIsDefault"] == "true", "\(r)")
        #expect(Int(r["rejected"] ?? "") ?? 0 >= 2, "\(r)")
        #expect(r["timed"] == "1", "only the defaults were timed: \(r)")
    }

    /// `--no-tune` (`.off`) leaves CLBlast's defaults although the cache holds other parameters;
    /// `.cacheOnly` in the same process then applies them (so the first check could fail).
    @Test func noTuneLeavesTheDefaults() throws {
        let r = try Child.run(mode: "tuningOff", environment: try Self.env())
        #expect(r["offNote"]?.contains("off") == true, "\(r)")
        #expect(r["afterOffIsDefault"] == "true", "\(r)")
        #expect(r["appliedAfterOff"] == "none", "\(r)")
        #expect(r["afterCacheEqualsRecord"] == "true", "\(r)")
        #expect(r["afterCacheIsDefault"] == "false", "\(r)")
    }
}

/// The child side of `TuningSearchTests` (called from `ChildProcessProbe`).
enum TuningProbe {
    static let shapes = [GEMMShape(m: 33, n: 70, k: 37), GEMMShape(transA: true, m: 40, n: 64, k: 17),
                         GEMMShape(transB: true, m: 16, n: 27, k: 130)]

    static func tuner(_ backend: OpenCLBackend, corrupt: ((CLBlastGEMMParameters) -> Bool)? = nil) -> GEMMTuner {
        var options = GEMMTuner.Options(budgetSeconds: 600, maxIndirectCandidates: 2, maxDirectCandidates: 2, secondsPerShape: 0.002)
        options.corruptOutput = corrupt
        options.log = { print($0) }
        return GEMMTuner(backend: backend, reference: CPUBackend(reference: true), options: options) { got, expected in
            let c = compare(got, expected, .gemm)
            return c.passed ? nil : "\(c)"
        }
    }

    static func text(_ p: CLBlastGEMMParameters) -> String { p.description }

    static func run(_ mode: String) throws -> [String: String] {
        let backend = try OpenCLBackend(selector: "opencl")
        var r: [String: String] = ["device": backend.deviceInfo.name]
        switch mode {
        case "tuningCacheOnly":
            r["note"] = try prepareTuning(backend, policy: .cacheOnly, log: { print($0) }) {
                throw CNNError.device("cacheOnly must not search")
            } ?? ""
            r["current"] = text(try backend.currentGEMMParameters())
        case "tuningGate":
            let defaults = try backend.currentGEMMParameters()
            let rec = try tuner(backend, corrupt: { $0 != defaults }).run(shapes: shapes, workload: "test shapes")
            r["chosenIsDefault"] = String(rec.parameters == defaults)
            r["currentIsDefault"] = String(try backend.currentGEMMParameters() == defaults)
            r["rejected"] = String(rec.rejectedByGate)
            r["timed"] = String(rec.candidatesTimed)
        case "tuningCorrupt":
            let url = TuningCache.url(for: backend.deviceInfo)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data("{\"format\": \"SWIFTCNN-TUNING 1\", \"key\": tru".utf8).write(to: url)
            var log: [String] = []
            let t0 = Date()
            r["note"] = try prepareTuning(backend, policy: .tuneIfMissing, log: { log.append($0); print($0) }) {
                try tuner(backend).run(shapes: shapes, workload: "test shapes")
            } ?? ""
            r["seconds"] = String(format: "%.1f", Date().timeIntervalSince(t0))
            r["log"] = log.joined(separator: "\n")
            if case .found(let rec) = TuningCache.load(backend.deviceInfo) {
                r["stored"] = "true"
                r["chosen"] = text(rec.parameters)
                r["timed"] = String(rec.candidatesTimed)
                r["appliedEqualsRecord"] = String(try backend.currentGEMMParameters() == rec.parameters)
            }
        case "tuningOff":
            let defaults = try backend.currentGEMMParameters()
            // A record with parameters other than the defaults (a valid grid candidate).
            var tuned = defaults
            tuned.xgemm = try #require(GEMMTuner.xgemmCandidates(defaults.xgemm, device: backend.deviceInfo, seed: 3).first)
            tuned.minIndirectSize = defaults.minIndirectSize + 7
            let record = TuningRecord(key: TuningCache.key(backend.deviceInfo), device: backend.deviceInfo.name,
                                      driverVersion: backend.deviceInfo.driverVersion, created: "now", workload: "test",
                                      parameters: tuned, defaults: defaults, shapes: [], searchSeconds: 0, candidatesTimed: 0,
                                      rejectedByGate: 0, failedToRun: 0)
            try TuningCache.store(record, for: backend.deviceInfo)
            r["offNote"] = try prepareTuning(backend, policy: .off, log: { print($0) }) {
                throw CNNError.device("off must not search")
            } ?? ""
            r["afterOffIsDefault"] = String(try backend.currentGEMMParameters() == defaults)
            r["appliedAfterOff"] = TuningState.applied(to: backend.deviceInfo).map(text) ?? "none"
            _ = try prepareTuning(backend, policy: .cacheOnly, log: { print($0) }) { throw CNNError.device("cacheOnly must not search") }
            let after = try backend.currentGEMMParameters()
            r["afterCacheEqualsRecord"] = String(after == tuned)
            r["afterCacheIsDefault"] = String(after == defaults)
        case let wg where wg.hasPrefix("tuningWG"):
            r.merge(try WorkGroupProbe.run(wg, backend)) { $1 }   // WorkGroupTuningTests.swift
        default:
            Issue.record("unknown tuning probe mode \(mode)")
        }
        OpenCLBackend.releaseLibraryCaches()
        return r
    }
}
