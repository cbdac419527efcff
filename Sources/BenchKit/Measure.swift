import SwiftCNN

/// Measuring a prepared case: first call, warm-up, timed repetitions and (OpenCL) device time per
/// kernel. Knows nothing of gates or skipping.
struct Measurement {
    let settings: BenchSettings

    /// One synchronized run.
    func once(_ prep: PreparedCase, on b: any Backend) throws -> Double {
        let t0 = monotonicSeconds()
        try prep.run()
        try b.synchronize()
        return monotonicSeconds() - t0
    }

    /// Warm-up, then the timed repetitions (`reps`, at least `minReps`, within `maxCaseSeconds`),
    /// then device time where the backend profiles.
    func measure(_ prep: PreparedCase, on b: any Backend, endToEnd: Bool, into r: inout CaseResult) throws {
        let warmStart = monotonicSeconds()
        while r.warmupReps < settings.warmup && monotonicSeconds() - warmStart < settings.maxCaseSeconds / 2 {
            _ = try once(prep, on: b)
            r.warmupReps += 1
        }
        var samples: [Double] = []
        let counted = DeviceWorkCounts.snapshot(b)
        let timedStart = monotonicSeconds()
        while samples.count < settings.reps
                && (samples.count < settings.minReps || monotonicSeconds() - timedStart < settings.maxCaseSeconds) {
            samples.append(try once(prep, on: b) * 1000)
        }
        r.wallMs = Stats(samples)
        if endToEnd, !samples.isEmpty {
            var perStep = DeviceWorkCounts.snapshot(b).perStep(since: counted, steps: samples.count)
            // `once` ends every repetition with one synchronize (one clFinish): the harness's, not the step's.
            perStep.blockingCalls = perStep.blockingCalls.map { $0 - 1 }
            r.perStep = perStep
        }
        if let ocl = b as? OpenCLBackend, settings.deviceTimeReps > 0 {
            try profile(prep, on: ocl, reps: min(settings.deviceTimeReps, samples.count), endToEnd: endToEnd, into: &r)
        }
    }

    /// Device time of `reps` runs with OpenCL profiling on (and the top kernels of an end-to-end case).
    func profile(_ prep: PreparedCase, on ocl: OpenCLBackend, reps: Int, endToEnd: Bool, into r: inout CaseResult) throws {
        ocl.profiling = true
        defer { ocl.profiling = false }
        var dev: [Double] = [], byKernel: [String: UInt64] = [:]
        let start = monotonicSeconds()
        while dev.count < reps && (dev.isEmpty || monotonicSeconds() - start < settings.maxCaseSeconds / 2) {
            ocl.resetDeviceTime()
            try prep.run()
            try ocl.synchronize()
            dev.append(Double(ocl.deviceTimeNanoseconds) / 1e6)
            for (k, v) in ocl.deviceTimeByKernel { byKernel[k, default: 0] += v }
        }
        r.deviceMs = Stats(dev)
        if endToEnd, !dev.isEmpty {
            r.topKernels = byKernel.sorted { $0.value > $1.value }.prefix(8)
                .map { KernelTime(name: $0.key, ms: Double($0.value) / 1e6 / Double(dev.count)) }
        }
    }

    /// Rates from the median wall time.
    static func rates(_ c: BenchCase, into r: inout CaseResult) {
        guard let m = r.wallMs?.median, m > 0 else { return }
        r.gflops = c.flops.map { $0 / (m / 1000) / 1e9 }
        r.gbps = c.bytes.map { $0 / (m / 1000) / 1e9 }
        if c.isEndToEnd, let batch = c.batch { r.imagesPerSecond = Double(batch) / (m / 1000) }
    }
}

/// Skipping: a case whose estimated time per repetition (its FLOPs at the best rate measured so far
/// on this device) is over the case budget is not run.
struct CaseBudget {
    let seconds: Double

    func skipReason(_ c: BenchCase, done: [CaseResult]) -> String? {
        guard let flops = c.flops, let rate = Self.rate(c.family, done) else { return nil }
        let estimate = flops / (rate * 1e9)
        guard estimate > seconds else { return nil }
        return String(format: "estimated %.0f s per repetition (%.3g GFLOP at the best %.2f GFLOP/s measured here) "
                      + "is over --case-budget %.0f s", estimate, flops / 1e9, rate, seconds)
    }

    /// The best GFLOP/s measured so far on this device for `family` (or for GEMM/convolution).
    static func rate(_ family: String, _ done: [CaseResult]) -> Double? {
        func best(_ rows: [CaseResult]) -> Double? {
            rows.filter { $0.status == "ok" && ($0.flops ?? 0) >= 1e7 && ($0.wallMs?.median ?? 0) >= 1 }.compactMap(\.gflops).max()
        }
        return best(done.filter { $0.family == family }) ?? best(done.filter { $0.family == "gemm" || $0.family == "conv" })
    }
}
