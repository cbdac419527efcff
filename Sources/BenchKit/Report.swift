import Foundation

/// The JSON document `cnn-bench` writes (`--out FILE`) and `cnn-bench compare` reads.
///
/// Units are in the key names: `...Ms` milliseconds, `gflops` GFLOP/s (1e9 floating-point
/// operations per second, a multiply-add counting 2), `gbps` GB/s (1e9 bytes per second),
/// `imagesPerSecond`. Every time is measured per repetition of one case (one op call, one
/// training step, one inference batch, or one whole short epoch) and summarised in `Stats`.
public struct BenchReport: Codable, Sendable {
    /// `swiftcnn-bench/1`; readers reject other major versions.
    public var schema: String
    public var environment: BenchEnvironment
    public var settings: BenchSettings
    public var devices: [DeviceRecord]
    public var results: [CaseResult]
    /// True in the copies written while the run is still going (each case rewrites `--out`), so a
    /// run that is interrupted or times out leaves its results so far; absent when complete.
    public var incomplete: Bool?

    public init(schema: String = BenchSchema.version, environment: BenchEnvironment, settings: BenchSettings,
                devices: [DeviceRecord], results: [CaseResult]) {
        self.schema = schema; self.environment = environment; self.settings = settings
        self.devices = devices; self.results = results
    }
}

public enum BenchSchema {
    public static let version = "swiftcnn-bench/1"

    public static func encode(_ report: BenchReport) throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try e.encode(report)
    }

    public static func decode(_ data: Data, source: String = "input") throws -> BenchReport {
        let r: BenchReport
        do { r = try JSONDecoder().decode(BenchReport.self, from: data) } catch {
            throw BenchError("\(source): not a cnn-bench result file (\(error))")
        }
        guard r.schema.hasPrefix("swiftcnn-bench/1") else {
            throw BenchError("\(source): schema '\(r.schema)' is not \(version); rerun cnn-bench to get a current file")
        }
        return r
    }
}

public struct BenchError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Where and how the numbers were measured.
public struct BenchEnvironment: Codable, Sendable {
    /// ISO 8601, UTC.
    public var date: String
    /// The command line (argv).
    public var command: [String]
    /// `git rev-parse HEAD` of the working directory at run time, with `-dirty` when tracked files
    /// differ; nil outside a checkout (then see `build.bundle`).
    public var gitCommit: String?
    public var hostName: String
    public var os: String
    public var kernel: String
    public var cpuModel: String
    /// Logical processors of the machine and those this process may use.
    public var logicalCores: Int
    public var activeCores: Int
    public var memoryGiB: Double?
    /// The SIMD / FMA flags of /proc/cpuinfo that matter to the CPU backend (avx2, fma, avx512f, ...).
    public var cpuFlags: [String]
    public var build: BuildInfo
}

/// How this binary was built.
public struct BuildInfo: Codable, Sendable {
    /// "debug" or "release".
    public var configuration: String
    /// Whether `-DSWIFTCNN_FMA` was given (the CPU backend's fused multiply-add kernels).
    public var swiftcnnFMA: Bool
    /// GFLOP/s of a one-thread SIMD16 multiply-add loop, measured at start. Built for a CPU with
    /// FMA (`-target-cpu native|haswell|...`) it is tens of GFLOP/s; on the default x86-64 target
    /// every lane becomes a libm `fmaf` call (about 1 GFLOP/s). Meaningful in release builds only.
    public var simdFMAProbeGflops: Double
    /// "fma" (the target CPU has FMA), "no-fma (default target: pass -target-cpu)", or "unknown (debug build)".
    public var targetCPU: String
    public var swiftCompiler: String
    /// BUILD_INFO.json next to the executable (written by scripts/build-gpu-bundle.sh), if present.
    public var bundle: [String: String]?
}

/// What the run was asked to do.
public struct BenchSettings: Codable, Sendable {
    public var quick: Bool
    public var reps: Int
    public var minReps: Int
    public var warmup: Int
    public var maxCaseSeconds: Double
    public var caseBudgetSeconds: Double
    public var deviceTimeReps: Int
    public var opBatch: Int
    public var batches: [Int]
    public var models: [String]
    public var epochImages: Int
    public var filter: [String]
    public var exclude: [String]
    public var gate: Bool
    public var gateBudgetMACs: Double
}

/// One device the run measured.
public struct DeviceRecord: Codable, Sendable {
    /// The id used in results: `cpu`, `cpu-ref` (the plain reference) or `opencl:P:D`.
    public var id: String
    public var kind: String
    public var name: String
    /// e.g. "OpenCL GPU", "Swift CPU (2 threads)".
    public var type: String
    public var vendor: String?
    public var driverVersion: String?
    public var platform: String?
    public var computeUnits: Int?
    public var globalMemoryGiB: Double?
    public var details: [String: String]
    /// Seconds to create the backend (context, queue).
    public var setupSeconds: Double
    /// OpenCL program builds during this device's run (from the program cache counters). CLBlast
    /// compiles its own kernels inside its first calls: that time is in each case's `firstCallMs`.
    public var programsCompiled: Int?
    public var programsFromCache: Int?
    public var compileSeconds: Double?
    public var cacheLoadSeconds: Double?
    /// Sum over cases of (first call - median): roughly the one-time cost (compilation, allocation).
    public var firstCallOverheadSeconds: Double?
    /// Set when the device could not be used (then it has no results).
    public var error: String?
}

/// Summary of per-repetition times (milliseconds).
public struct Stats: Codable, Sendable, Equatable {
    public var n: Int
    public var median: Double
    public var min: Double
    public var max: Double
    /// Lower and upper quartiles (linear interpolation).
    public var q1: Double
    public var q3: Double
    public var mean: Double
    public var samples: [Double]

    public init(n: Int, median: Double, min: Double, max: Double, q1: Double, q3: Double, mean: Double, samples: [Double]) {
        self.n = n; self.median = median; self.min = min; self.max = max; self.q1 = q1; self.q3 = q3
        self.mean = mean; self.samples = samples
    }

    /// nil for no samples.
    public init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        let s = values.sorted()
        func quantile(_ q: Double) -> Double {
            let pos = q * Double(s.count - 1)
            let lo = Int(pos.rounded(.down)), hi = Swift.min(lo + 1, s.count - 1)
            return s[lo] + (s[hi] - s[lo]) * (pos - Double(lo))
        }
        self.init(n: s.count, median: quantile(0.5), min: s[0], max: s[s.count - 1], q1: quantile(0.25), q3: quantile(0.75),
                  mean: s.reduce(0, +) / Double(s.count), samples: values)
    }

    /// (max - min) / median: the spread as a fraction of the median.
    public var relativeSpread: Double { median > 0 ? (max - min) / median : 0 }
}

/// How a result was checked against the CPU reference before it was timed.
public struct GateRecord: Codable, Sendable {
    public var passed: Bool
    /// e.g. "verify exact shape", "verify at batch 2 + sampled 256 of the timed output",
    /// "model logits and gradients at batch 2", "sampled 256 of the timed output".
    public var method: String
    /// Outputs compared (one Verification row each, or one sampled check).
    public var checks: Int
    public var maxAbsError: Double?
    public var maxRelError: Double?
    public var seconds: Double
    /// The first failure (worst element or error), when failed.
    public var detail: String?
}

public struct KernelTime: Codable, Sendable, Equatable {
    public var name: String
    /// Device milliseconds per repetition.
    public var ms: Double
}

/// One case on one device.
public struct CaseResult: Codable, Sendable {
    /// e.g. `gemm:square:1024`, `conv2DForward:cnn.conv2:128`, `train:optimized:128` (the train/infer
    /// names equal pytorch_baseline.py's, so results compare side by side).
    public var name: String
    public var device: String
    /// gemm, conv, pool, batchnorm, loss, optimizer, train, infer, epoch.
    public var family: String
    /// The Backend primitive (or trainStep / inference / epoch).
    public var op: String
    public var shape: String
    public var batch: Int?
    /// Model layers with this shape.
    public var usedBy: [String]
    /// ok | gate-failed | error | skipped
    public var status: String
    public var message: String?
    /// The first call (includes kernel compilation and first-touch allocation), milliseconds.
    public var firstCallMs: Double?
    public var warmupReps: Int
    /// Wall time per repetition, including `synchronize()`.
    public var wallMs: Stats?
    /// OpenCL device time per repetition (profiling events, in separate repetitions).
    public var deviceMs: Stats?
    /// Work per repetition (nil where a count means nothing).
    public var flops: Double?
    public var bytes: Double?
    /// From the median wall time.
    public var gflops: Double?
    public var gbps: Double?
    public var imagesPerSecond: Double?
    public var gate: GateRecord?
    /// Case-specific numbers, e.g. finalLoss, images, dataWorkers.
    public var extra: [String: Double]?
    /// The largest kernels by device time (end-to-end cases on OpenCL).
    public var topKernels: [KernelTime]?

    public init(name: String, device: String, family: String, op: String, shape: String, batch: Int?, usedBy: [String],
                status: String) {
        self.name = name; self.device = device; self.family = family; self.op = op; self.shape = shape
        self.batch = batch; self.usedBy = usedBy; self.status = status; warmupReps = 0
    }

    /// The key compare matches on.
    public var key: String { name }
}

/// A finite value, or nil (JSON has no infinities or NaN).
func finite(_ x: Double?) -> Double? {
    guard let x, x.isFinite else { return nil }
    return x
}
