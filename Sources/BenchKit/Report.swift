import Foundation
import SwiftCNN

/// The JSON document `cnn-bench` writes (`--out FILE`) and `cnn-bench compare` reads.
///
/// Units are in the key names: `...Ms` milliseconds, `gflops` GFLOP/s (1e9 floating-point
/// operations per second, a multiply-add counting 2), `gbps` GB/s (1e9 bytes per second),
/// `imagesPerSecond`. Every time is measured per repetition of one case (one op call, one
/// training step, one inference batch, or one whole short epoch) and summarised in `Stats`.
package struct BenchReport: Codable, Sendable {
    /// `swiftcnn-bench/1`; readers reject other major versions.
    package var schema: String
    package var environment: BenchEnvironment
    package var settings: BenchSettings
    package var devices: [DeviceRecord]
    package var results: [CaseResult]
    /// True in the copies written while the run is still going (each case rewrites `--out`), so a
    /// run that is interrupted or times out leaves its results so far; absent when complete.
    package var incomplete: Bool?

    package init(schema: String = BenchSchema.version, environment: BenchEnvironment, settings: BenchSettings,
                devices: [DeviceRecord], results: [CaseResult]) {
        self.schema = schema; self.environment = environment; self.settings = settings
        self.devices = devices; self.results = results
    }
}

package enum BenchSchema {
    package static let version = "swiftcnn-bench/1"

    package static func encode(_ report: BenchReport) throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try e.encode(report)
    }

    package static func decode(_ data: Data, source: String = "input") throws -> BenchReport {
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

package struct BenchError: Error, CustomStringConvertible {
    package var description: String
    package init(_ description: String) { self.description = description }
}

/// Where and how the numbers were measured.
package struct BenchEnvironment: Codable, Sendable {
    /// ISO 8601, UTC.
    package var date: String
    /// The command line (argv).
    package var command: [String]
    /// `git rev-parse HEAD` of the working directory at run time, with `-dirty` when tracked files
    /// differ; nil outside a checkout (then see `build.bundle`).
    package var gitCommit: String?
    package var hostName: String
    package var os: String
    package var kernel: String
    package var cpuModel: String
    /// Logical processors of the machine and those this process may use.
    package var logicalCores: Int
    package var activeCores: Int
    package var memoryGiB: Double?
    /// The SIMD / FMA flags of /proc/cpuinfo that matter to the CPU backend (avx2, fma, avx512f, ...).
    package var cpuFlags: [String]
    package var build: BuildInfo
}

/// How this binary was built.
package struct BuildInfo: Codable, Sendable {
    /// "debug" or "release".
    package var configuration: String
    /// Whether `-DSWIFTCNN_FMA` was given (the CPU backend's fused multiply-add kernels).
    package var swiftcnnFMA: Bool
    /// GFLOP/s of a one-thread SIMD16 multiply-add loop, measured at start. Built for a CPU with
    /// FMA (`-target-cpu native|haswell|...`) it is tens of GFLOP/s; on the default x86-64 target
    /// every lane becomes a libm `fmaf` call (about 1 GFLOP/s). Meaningful in release builds only.
    package var simdFMAProbeGflops: Double
    /// "fma" (the target CPU has FMA), "no-fma (default target: pass -target-cpu)", or "unknown (debug build)".
    package var targetCPU: String
    package var swiftCompiler: String
    /// BUILD_INFO.json next to the executable (written by scripts/build-gpu-bundle.sh), if present.
    package var bundle: [String: String]?
}

/// What the run was asked to do.
package struct BenchSettings: Codable, Sendable {
    package var quick: Bool
    package var reps: Int
    package var minReps: Int
    package var warmup: Int
    package var maxCaseSeconds: Double
    package var caseBudgetSeconds: Double
    package var deviceTimeReps: Int
    package var opBatch: Int
    package var batches: [Int]
    package var models: [String]
    package var epochImages: Int
    package var filter: [String]
    package var exclude: [String]
    package var gate: Bool
    package var gateBudgetMACs: Double
}

/// One device the run measured.
package struct DeviceRecord: Codable, Sendable {
    /// The id used in results: `cpu`, `cpu-ref` (the plain reference) or `opencl:P:D`.
    package var id: String
    package var kind: String
    package var name: String
    /// e.g. "OpenCL GPU", "Swift CPU (2 threads)".
    package var type: String
    package var vendor: String?
    package var driverVersion: String?
    package var platform: String?
    package var computeUnits: Int?
    package var globalMemoryGiB: Double?
    package var details: [String: String]
    /// Seconds to create the backend (context, queue).
    package var setupSeconds: Double
    /// OpenCL program builds during this device's run (from the program cache counters). CLBlast
    /// compiles its own kernels inside its first calls: that time is in each case's `firstCallMs`.
    package var programsCompiled: Int?
    package var programsFromCache: Int?
    package var compileSeconds: Double?
    package var cacheLoadSeconds: Double?
    /// Sum over cases of (first call - median): roughly the one-time cost (compilation, allocation).
    package var firstCallOverheadSeconds: Double?
    /// Set when the device could not be used (then it has no results).
    package var error: String?
}

/// Summary of per-repetition times (milliseconds).
package struct Stats: Codable, Sendable, Equatable {
    package var n: Int
    package var median: Double
    package var min: Double
    package var max: Double
    /// Lower and upper quartiles (linear interpolation).
    package var q1: Double
    package var q3: Double
    package var mean: Double
    package var samples: [Double]

    package init(n: Int, median: Double, min: Double, max: Double, q1: Double, q3: Double, mean: Double, samples: [Double]) {
        self.n = n; self.median = median; self.min = min; self.max = max; self.q1 = q1; self.q3 = q3
        self.mean = mean; self.samples = samples
    }

    /// nil for no samples.
    package init?(_ values: [Double]) {
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
    package var relativeSpread: Double { median > 0 ? (max - min) / median : 0 }
}

/// How a result was checked against the CPU reference before it was timed.
package struct GateRecord: Codable, Sendable {
    package var passed: Bool
    /// e.g. "verify exact shape", "verify at batch 2 + sampled 256 of the timed output",
    /// "model logits and gradients at batch 2", "sampled 256 of the timed output".
    package var method: String
    /// Outputs compared (one Verification row each, or one sampled check).
    package var checks: Int
    package var maxAbsError: Double?
    package var maxRelError: Double?
    package var seconds: Double
    /// The first failure (worst element or error), when failed.
    package var detail: String?
}

package struct KernelTime: Codable, Sendable, Equatable {
    package var name: String
    /// Device milliseconds per repetition.
    package var ms: Double
}

/// One case on one device.
package struct CaseResult: Codable, Sendable {
    /// e.g. `gemm:square:1024`, `conv2DForward:cnn.conv2:128`, `train:optimized:128` (the train/infer
    /// names equal pytorch_baseline.py's, so results compare side by side).
    package var name: String
    package var device: String
    /// gemm, conv, pool, batchnorm, loss, optimizer, train, infer, epoch.
    package var family: String
    /// The Backend primitive (or trainStep / inference / epoch).
    package var op: String
    package var shape: String
    package var batch: Int?
    /// Model layers with this shape.
    package var usedBy: [String]
    /// ok | gate-failed | error | skipped
    package var status: String
    package var message: String?
    /// The first call (includes kernel compilation and first-touch allocation), milliseconds.
    package var firstCallMs: Double?
    package var warmupReps: Int
    /// Wall time per repetition, including `synchronize()`.
    package var wallMs: Stats?
    /// OpenCL device time per repetition (profiling events, in separate repetitions).
    package var deviceMs: Stats?
    /// Work per repetition (nil where a count means nothing).
    package var flops: Double?
    package var bytes: Double?
    /// From the median wall time.
    package var gflops: Double?
    package var gbps: Double?
    package var imagesPerSecond: Double?
    package var gate: GateRecord?
    /// Case-specific numbers, e.g. finalLoss, images, dataWorkers.
    package var extra: [String: Double]?
    /// The largest kernels by device time (end-to-end cases on OpenCL).
    package var topKernels: [KernelTime]?
    /// End-to-end cases (train, infer): what one repetition asks of the device, averaged over the
    /// timed repetitions (steady state; the harness's own `synchronize` after each is not counted).
    /// `kernelLaunches` (every device command but transfers: kernels, CLBlast calls, fills, copies),
    /// `clblastCalls` and `blockingCalls` (blocking writes/reads, clFinish) are the OpenCL backend's
    /// exact counters and absent on the CPU backend (synchronous, nothing to launch or wait for);
    /// `hostToDeviceBytes` / `deviceToHostBytes` are every backend's transfer counters.
    package var perStep: DeviceWorkCounts?

    package init(name: String, device: String, family: String, op: String, shape: String, batch: Int?, usedBy: [String],
                status: String) {
        self.name = name; self.device = device; self.family = family; self.op = op; self.shape = shape
        self.batch = batch; self.usedBy = usedBy; self.status = status; warmupReps = 0
    }

    /// The key compare matches on.
    package var key: String { name }
}

/// A finite value, or nil (JSON has no infinities or NaN).
func finite(_ x: Double?) -> Double? {
    guard let x, x.isFinite else { return nil }
    return x
}
