import CCLBlast
import CLBlastParams
import CNNCore
import COpenCL
import Foundation

/// One GEMM the model runs (row-major, as `enqueueGemm` takes it): what the tuner times.
package struct GEMMShape: Codable, Sendable, Hashable, CustomStringConvertible {
    package var transA: Bool
    package var transB: Bool
    package var m: Int
    package var n: Int
    package var k: Int

    package init(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int) {
        self.transA = transA; self.transB = transB; self.m = m; self.n = n; self.k = k
    }

    /// m*n*k: what CLBlast compares with XGEMM_MIN_INDIRECT_SIZE^3 to choose its kernel.
    package var volume: Int { m * n * k }
    package var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
    package var description: String { "\(m)x\(n)x\(k)\(transA ? " A^T" : "")\(transB ? " B^T" : "")" }
}

/// CLBlast's single-precision GEMM parameters for one device: the indirect kernel (`Xgemm`), the
/// direct kernel (`XgemmDirect`) and the size where CLBlast switches from direct to indirect
/// (`GemmRoutine`'s XGEMM_MIN_INDIRECT_SIZE: a GEMM runs direct when m*n*k < size^3).
package struct CLBlastGEMMParameters: Codable, Sendable, Equatable, CustomStringConvertible {
    package var xgemm: [String: Int]
    package var xgemmDirect: [String: Int]
    package var minIndirectSize: Int

    package init(xgemm: [String: Int], xgemmDirect: [String: Int], minIndirectSize: Int) {
        self.xgemm = xgemm; self.xgemmDirect = xgemmDirect; self.minIndirectSize = minIndirectSize
    }

    static func text(_ p: [String: Int]) -> String {
        p.keys.sorted().map { "\($0)=\(p[$0]!)" }.joined(separator: " ")
    }
    package var description: String {
        "Xgemm {\(Self.text(xgemm))}; XgemmDirect {\(Self.text(xgemmDirect))}; XGEMM_MIN_INDIRECT_SIZE \(minIndirectSize)"
    }
}

/// The outcome of one tuning search, as stored in the tuning cache.
package struct TuningRecord: Codable, Sendable, Equatable {
    package struct ShapeResult: Codable, Sendable, Equatable {
        package var shape: GEMMShape
        /// Seconds per call with CLBlast's defaults and with the tuned parameters.
        package var defaultSeconds: Double
        package var tunedSeconds: Double
        /// "direct" or "indirect" under the tuned threshold.
        package var kernel: String
    }

    package var format = TuningCache.format
    /// The cache key (device, driver, platform: see `TuningCache.key`).
    package var key: String
    package var device: String
    package var driverVersion: String
    package var created: String
    /// What the shapes came from, e.g. "optimized, batch 128".
    package var workload: String
    package var parameters: CLBlastGEMMParameters
    package var defaults: CLBlastGEMMParameters
    package var shapes: [ShapeResult]
    package var searchSeconds: Double
    package var candidatesTimed: Int
    /// Candidates whose output failed the correctness gate (never kept).
    package var rejectedByGate: Int
    /// Candidates CLBlast or the driver refused (compile or launch error).
    package var failedToRun: Int
    /// Our own kernels' work-group sizes (WorkGroupTuner.swift). Absent in records written before
    /// that search existed: they still load, and those kernels keep their defaults.
    package var workGroups: WorkGroupTuning? = nil

    package var defaultSeconds: Double { shapes.reduce(0) { $0 + $1.defaultSeconds } }
    package var tunedSeconds: Double { shapes.reduce(0) { $0 + $1.tunedSeconds } }
}

/// What `TuningCache.load` found.
package enum TuningCacheEntry: Equatable {
    case missing
    case found(TuningRecord)
    /// A file exists but cannot be trusted; `message` names the file, what is wrong and what happens next.
    case corrupt(message: String)
}

/// Tuning results on disk, one JSON file per device + driver, next to the program cache:
/// `$SWIFTCNN_CACHE_DIR/tuning/` (default `~/.cache/swiftcnn/tuning/`).
package enum TuningCache {
    static let format = "SWIFTCNN-TUNING 1"
    /// Part of the key: CLBlast's parameter names and meaning belong to its version.
    static let clblastGeneration = "CLBlast 1.5"

    package static var directory: URL { ProgramCache.directory.appendingPathComponent("tuning", isDirectory: true) }

    package static func key(_ device: OpenCLDeviceInfo) -> String {
        SHA256.hex([
            format, clblastGeneration, "device=\(device.name)", "vendor=\(device.vendor)", "driver=\(device.driverVersion)",
            "deviceVersion=\(device.deviceVersion)", "platform=\(device.platformVersion)",
        ].joined(separator: "\n"))
    }

    package static func url(for device: OpenCLDeviceInfo, root: URL? = nil) -> URL {
        let safe = String(device.name.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" }.prefix(48))
        return (root ?? directory).appendingPathComponent("\(safe)-\(key(device).prefix(32)).json")
    }

    package static func load(_ device: OpenCLDeviceInfo, root: URL? = nil) -> TuningCacheEntry {
        let url = url(for: device, root: root)
        guard FileManager.default.fileExists(atPath: url.path) else { return .missing }
        func corrupt(_ why: String) -> TuningCacheEntry {
            .corrupt(message: "tuning cache \(url.path) is not usable (\(why)); it will be re-tuned and replaced "
                     + "(or delete the file; `--no-tune` skips tuning)")
        }
        guard let data = FileManager.default.contents(atPath: url.path) else { return corrupt("cannot be read") }
        let record: TuningRecord
        do {
            record = try JSONDecoder().decode(TuningRecord.self, from: data)
        } catch {
            return corrupt("not a valid tuning record: \(Self.describe(error))")
        }
        guard record.format == format else { return corrupt("format '\(record.format)', expected '\(format)'") }
        guard record.key == key(device) else { return corrupt("written for another device or driver (key mismatch)") }
        guard record.parameters.minIndirectSize > 0, !record.parameters.xgemm.isEmpty,
              !record.parameters.xgemmDirect.isEmpty, record.parameters.xgemm.values.allSatisfy({ $0 >= 0 }),
              record.parameters.xgemmDirect.values.allSatisfy({ $0 >= 0 })
        else { return corrupt("incomplete or negative parameters") }
        if let wg = record.workGroups {
            guard wg.kernels.allSatisfy({ $0.chosenLocal >= 1 && $0.chosenLocal <= 1 << 16 && !$0.kernel.isEmpty })
            else { return corrupt("a work-group size outside 1...65536") }
        }
        return .found(record)
    }

    /// Writes atomically (temporary file + rename: a reader never sees half a record).
    package static func store(_ record: TuningRecord, for device: OpenCLDeviceInfo, root: URL? = nil) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(record), to: url(for: device, root: root))
    }

    private static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let c): return c.debugDescription
        case DecodingError.keyNotFound(let k, _): return "missing field '\(k.stringValue)'"
        case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c):
            return "wrong type at \(c.codingPath.map(\.stringValue).joined(separator: "."))"
        default: return "\(error)"
        }
    }
}

/// When a backend's device gets tuned parameters.
package enum TuningPolicy: Sendable, Equatable {
    /// CLBlast's own defaults (`--no-tune`, or `SWIFTCNN_NO_TUNE=1`).
    case off
    /// Apply a cached tuning if there is one; never search.
    case cacheOnly
    /// Apply the cached tuning, or search now (bounded) and cache the result.
    case tuneIfMissing
    /// `cnn train`'s default: `.tuneIfMissing` on a GPU or accelerator, `.cacheOnly` on a CPU driver
    /// (PoCL compiles each candidate for tens of seconds and gains little, so a first training run
    /// there does not stall for a search; `cnn tune` searches on request).
    case tuneGPUIfMissing

    /// `SWIFTCNN_NO_TUNE=1` turns every policy off (for benchmarks and scripts without a flag).
    package var effective: TuningPolicy {
        let v = ProcessInfo.processInfo.environment["SWIFTCNN_NO_TUNE"] ?? ""
        return v.isEmpty || v == "0" ? self : .off
    }
}

/// Process-wide: which parameters each device's CLBlast runs with (CLBlast keeps overrides per
/// device for the whole process).
package enum TuningState {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var applied: [String: CLBlastGEMMParameters] = [:]

    /// The parameters applied to `device` in this process (nil: CLBlast's defaults, never overridden).
    package static func applied(to device: OpenCLDeviceInfo) -> CLBlastGEMMParameters? {
        lock.lock(); defer { lock.unlock() }
        return applied[device.selector]
    }
    static func record(_ p: CLBlastGEMMParameters, for device: OpenCLDeviceInfo) {
        lock.lock(); applied[device.selector] = p; lock.unlock()
    }
}

extension OpenCLBackend {
    /// The parameters CLBlast uses for `kernel` on this device now (its database, or an override).
    package func clblastParameters(_ kernel: String) throws -> [String: Int] {
        let capacity = 64, nameLength = 64
        var names = [CChar](repeating: 0, count: capacity * nameLength)
        var values = [Int](repeating: 0, count: capacity)
        var count = 0
        let status = names.withUnsafeMutableBufferPointer { n in
            values.withUnsafeMutableBufferPointer { v in
                swiftcnn_clblast_retrieve_parameters(UnsafeMutableRawPointer(runtime.device), kernel, capacity, nameLength,
                                                     n.baseAddress, v.baseAddress, &count)
            }
        }
        try clblastCheck(CLBlastStatusCode(rawValue: status), "RetrieveParameters(\(kernel))")
        var out: [String: Int] = [:]
        for i in 0..<min(count, capacity) {
            let name = names[(i * nameLength)..<((i + 1) * nameLength)].withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            out[name] = values[i]
        }
        return out
    }

    /// CLBlast's GEMM parameters for this device now.
    package func currentGEMMParameters() throws -> CLBlastGEMMParameters {
        let routine = try clblastParameters("GemmRoutine")
        guard let size = routine["XGEMM_MIN_INDIRECT_SIZE"] else {
            throw CNNError.device("CLBlast reports no XGEMM_MIN_INDIRECT_SIZE for \(deviceInfo.name) (GemmRoutine: \(routine))")
        }
        return CLBlastGEMMParameters(xgemm: try clblastParameters("Xgemm"), xgemmDirect: try clblastParameters("XgemmDirect"),
                                     minIndirectSize: size)
    }

    /// Overrides CLBlast's GEMM parameters for this device (process-wide, every backend on it).
    /// The next GEMM compiles CLBlast's program for them (CLBlast keeps one program per parameter set).
    package func applyGEMMParameters(_ p: CLBlastGEMMParameters) throws {
        try overrideCLBlast("Xgemm", p.xgemm)
        try overrideCLBlast("XgemmDirect", p.xgemmDirect)
        try overrideCLBlast("GemmRoutine", ["XGEMM_MIN_INDIRECT_SIZE": p.minIndirectSize])
        TuningState.record(p, for: deviceInfo)
    }

    private func overrideCLBlast(_ kernel: String, _ parameters: [String: Int]) throws {
        let keys = parameters.keys.sorted()
        let cNames = keys.map { strdup($0) }
        defer { cNames.forEach { free($0) } }
        var names: [UnsafePointer<CChar>?] = cNames.map { UnsafePointer($0) }
        let values = keys.map { parameters[$0]! }
        let status = names.withUnsafeMutableBufferPointer { n in
            values.withUnsafeBufferPointer { v in
                CLBlastOverrideParameters(runtime.device, kernel, CLBlastPrecisionSingle, keys.count, n.baseAddress, v.baseAddress)
            }
        }
        try clblastCheck(status, "OverrideParameters(\(kernel), \(CLBlastGEMMParameters.text(parameters)))")
    }
}

/// Stores `record` in the tuning cache; a failure is reported through `log` (the next process tunes again).
package func storeTuning(_ record: TuningRecord, for device: OpenCLDeviceInfo, root: URL? = nil, log: (String) -> Void) {
    do {
        try TuningCache.store(record, for: device, root: root)
        log("tuning stored in \(TuningCache.url(for: device, root: root).path)")
    } catch {
        log("warning: could not store the tuning (\(error)); the next process tunes again")
    }
}

/// Applies `policy` to `backend`'s device (nothing when this process already applied parameters
/// to it). Returns a one-line note for the user, or nil when there is nothing to say.
/// - `.off`: CLBlast's defaults.
/// - `.cacheOnly`: the cached parameters if any; an unusable entry is reported and ignored.
/// - `.tuneIfMissing`: the cached parameters, else (missing, corrupt, or refused by CLBlast)
///   `search()` now (it applies its result), and the result is stored. A failed search is reported
///   and leaves the defaults (nothing stored). On a simulator (Oclgrind) as `.cacheOnly`.
package func prepareTuning(_ backend: OpenCLBackend, policy: TuningPolicy, cacheRoot: URL? = nil,
                           log: (String) -> Void, search: () throws -> TuningRecord) throws -> String? {
    var policy = policy.effective
    if policy == .off { return "CLBlast tuning: off (CLBlast's default GEMM parameters, default work-group sizes)" }
    if TuningState.applied(to: backend.deviceInfo) != nil { return nil }
    if policy == .tuneGPUIfMissing { policy = backend.deviceInfo.type == .cpu ? .cacheOnly : .tuneIfMissing }
    // A simulator (Oclgrind) checks correctness; its timings mean nothing.
    if backend.deviceInfo.isSimulator && policy == .tuneIfMissing { policy = .cacheOnly }
    let path = TuningCache.url(for: backend.deviceInfo, root: cacheRoot).path
    switch TuningCache.load(backend.deviceInfo, root: cacheRoot) {
    case .found(let record):
        do {
            try backend.applyGEMMParameters(record.parameters)
            backend.applyLocalSizes(record.workGroups?.localSizes ?? [:])
            return "CLBlast tuning: cached (\(record.workload), \(record.created); GEMM total "
                + String(format: "%.3f -> %.3f ms", record.defaultSeconds * 1000, record.tunedSeconds * 1000) + ")"
                + workGroupNote(record.workGroups)
        } catch {
            let message = "CLBlast refused the cached tuning in \(path) (\(error))"
            guard policy == .tuneIfMissing else { return "CLBlast tuning: \(message); using the defaults" }
            log(message + "; re-tuning")
        }
    case .corrupt(let message):
        log(message)
        guard policy == .tuneIfMissing else { return "CLBlast tuning: defaults (the cache entry is not usable)" }
    case .missing:
        guard policy == .tuneIfMissing else { return nil }
    }
    let record: TuningRecord
    do {
        record = try search()
    } catch {
        // Training goes on with CLBlast's defaults (the search restored them); the next process tries again.
        log("warning: CLBlast tuning failed: \(error)")
        return "CLBlast tuning: the search failed (see above); CLBlast's defaults, not cached"
    }
    storeTuning(record, for: backend.deviceInfo, root: cacheRoot, log: log)
    return "CLBlast tuning: searched now (\(String(format: "%.1f", record.searchSeconds)) s; GEMM total "
        + String(format: "%.3f -> %.3f ms", record.defaultSeconds * 1000, record.tunedSeconds * 1000) + ")"
        + workGroupNote(record.workGroups)
}

/// "; work-group sizes: im2col 256->64 (1 of 17 kernels changed)", or that the record has none.
package func workGroupNote(_ wg: WorkGroupTuning?) -> String {
    guard let wg else { return "; work-group sizes: defaults (not searched; `cnn tune` searches them)" }
    return "; work-group sizes: \(wg.summary)"
}
