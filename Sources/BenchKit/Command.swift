import ArgumentParser
import Foundation

/// `cnn-bench`: per-op and end-to-end benchmarks on every device, JSON results, comparisons.
package struct CNNBench: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "cnn-bench",
        abstract: "Benchmark SwiftCNN per op and end to end on the CPU and on OpenCL devices; compare result files.",
        discussion: """
        Examples:
          cnn-bench --device cpu,opencl --out results.json     the full run (minutes to an hour on a small CPU)
          cnn-bench --quick --device all                       a short run of small cases (CI)
          cnn-bench --filter 'train:*,infer:*' --device opencl end-to-end cases only
          cnn-bench --list                                     the case names
          cnn-bench compare base.json new.json --threshold 0.1 regressions beyond 10%
          cnn-bench compare results.json                       the devices of one file side by side
          cnn-bench compare pytorch.json results.json@cpu      against pytorch_baseline.py's JSON

        Every case is checked against the CPU reference before it is timed (see --no-gate); a case that \
        fails the check is reported as FAIL with no timing, and the exit status is 1.
        """,
        subcommands: [BenchRunCommand.self, BenchCompareCommand.self],
        defaultSubcommand: BenchRunCommand.self)

    package init() {}
}

func commaList(_ s: String?) -> [String]? {
    s.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
}

package struct BenchRunCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run the benchmark cases (the default subcommand).")

    @Option(name: .long, help: ArgumentHelp("Devices, comma-separated: all (cpu and every OpenCL device), cpu, cpu-ref (the plain reference), opencl (the best OpenCL device), opencl:P:D, auto.", valueName: "list"))
    var device = "all"
    @Flag(help: "Small cases, few repetitions (CI): batch 8 per op, batch 16 end to end, GEMM 128.")
    var quick = false
    @Option(help: ArgumentHelp("Only cases matching any of these comma-separated patterns (* and ? match whole names; other text matches anywhere in the name).", valueName: "patterns"))
    var filter: String?
    @Option(help: ArgumentHelp("Leave out cases matching any of these patterns.", valueName: "patterns"))
    var exclude: String?
    @Flag(help: "List the selected cases and exit.")
    var list = false

    @Option(help: "Timed repetitions per case (default 10; quick 3).") var reps: Int?
    @Option(name: .customLong("min-reps"), help: "Repetitions measured even past --max-case-seconds (default 3; quick 1).") var minReps: Int?
    @Option(help: "Untimed repetitions after the first call (default 2; quick 1).") var warmup: Int?
    @Option(name: .customLong("max-case-seconds"), help: "Stop repeating a case after this many seconds (default 15; quick 2).") var maxCaseSeconds: Double?
    @Option(name: .customLong("case-budget"), help: "Skip a case whose estimated repetition (its FLOPs at the best rate measured so far on the device) exceeds this many seconds (default 120; quick 10).") var caseBudget: Double?
    @Option(name: .customLong("device-time-reps"), help: "Extra repetitions with OpenCL profiling for device time (default 5; quick 2; 0: off).") var deviceTimeReps: Int?

    @Option(name: .customLong("op-batch"), help: "Batch of the per-op cases at the models' layer shapes (default 128; quick 8).") var opBatch: Int?
    @Option(help: ArgumentHelp("Batch sizes of the end-to-end cases (default 64,128,256 plus train:speedrun:512; quick 16).", valueName: "list")) var batch: String?
    @Option(help: ArgumentHelp("Models (default cnn,optimized,speedrun; quick optimized for per-op cases).", valueName: "list")) var models: String?
    @Option(name: .customLong("gemm-sizes"), help: ArgumentHelp("Square GEMM sizes (default 256,512,1024,2048; quick 128).", valueName: "list")) var gemmSizes: String?
    @Option(name: .customLong("epoch-images"), help: "Images in the short real-data epoch (default 2048; quick 64; 0: no epoch case).") var epochImages: Int?
    @Option(help: "CIFAR-10 folder for the epoch case (default ./data, then ../shared/data; never downloads).") var data: String?
    @Option(help: "Data-loading threads of the epoch case (default: the core count).") var workers: Int?

    @Flag(name: .customLong("no-gate"), help: "Skip the correctness check against the CPU reference (results are marked 'off').") var noGate = false
    @Option(name: .customLong("gate-budget"), help: "Reference multiply-accumulates for an exact-shape check of a GEMM or convolution; larger ones are checked at a smaller batch plus sampled elements of the timed output (default 1e8).") var gateBudget: Double?
    @Option(name: .customLong("model-gate-batch"), help: "Batch of the end-to-end model check (default 2).") var modelGateBatch: Int?

    @Flag(name: .customLong("e2e-first"), help: "Run the end-to-end cases (train, infer, epoch) before the per-op cases.") var e2eFirst = false

    @Option(help: "Write the results as JSON to this file (rewritten after every case).") var out: String?

    @Option(help: ArgumentHelp("Instead of timing cases: the roofline view of training steps on the OpenCL device (per kernel: launches, bytes, FLOPs, device time against the bound from the device's measured copy bandwidth and FMA rate) and the step predicted for a built-in device profile (h200). Cases: --filter train:MODEL:BATCH,... (default train:optimized:128,train:speedrun:512); profiled steps: --reps (default 3).", valueName: "profile"))
    var roofline: String?

    package init() {}

    func options() throws -> BenchOptions {
        var o = BenchOptions()
        o.devices = [device]
        o.quick = quick
        o.filter = commaList(filter) ?? []
        o.exclude = commaList(exclude) ?? []
        o.reps = reps; o.minReps = minReps; o.warmup = warmup; o.maxCaseSeconds = maxCaseSeconds
        o.caseBudgetSeconds = caseBudget; o.deviceTimeReps = deviceTimeReps; o.opBatch = opBatch
        func ints(_ s: String?, _ what: String) throws -> [Int]? {
            guard let list = commaList(s) else { return nil }
            let v = list.compactMap { Int($0) }
            guard v.count == list.count, !v.isEmpty, v.allSatisfy({ $0 > 0 }) else {
                throw ValidationError("\(what): '\(s ?? "")' is not a comma-separated list of positive integers")
            }
            return v
        }
        o.batches = try ints(batch, "--batch")
        o.gemmSizes = try ints(gemmSizes, "--gemm-sizes")
        o.models = commaList(models)
        o.epochImages = epochImages
        o.dataPath = data
        o.dataWorkers = workers
        o.gate = !noGate
        o.endToEndFirst = e2eFirst
        if let gateBudget { o.gateBudgetMACs = gateBudget }
        if let modelGateBatch { o.modelGateBatch = modelGateBatch }
        for (v, name) in [(reps, "--reps"), (minReps, "--min-reps"), (opBatch, "--op-batch"), (modelGateBatch, "--model-gate-batch")] {
            if let v, v < 1 { throw ValidationError("\(name) must be at least 1, got \(v)") }
        }
        if let warmup, warmup < 0 { throw ValidationError("--warmup must be >= 0") }
        return o
    }

    package mutating func run() throws {
        let o = try options()
        if let roofline {
            try Roofline.run(profileName: roofline, device: device, filter: o.filter, steps: reps ?? 3) { print($0) }
            return
        }
        if list {
            let cases = try o.cases()
            print(formatTable([["case", "family", "shape", "GFLOP", "used by"]] + cases.map {
                [$0.name, $0.family, $0.shape, $0.flops.map { String(format: "%.3f", $0 / 1e9) } ?? "-", $0.usedBy.joined(separator: ", ")]
            }, leftColumns: 3, alsoLeft: [4]))
            print("\(cases.count) cases")
            return
        }
        let path = out
        // Table rows go straight to file descriptor 1 (print's stdout is block-buffered in a pipe): piped
        // into `tee` under a time limit (scripts/gpu-check.sh), a killed run keeps every row printed so far.
        let report = try BenchRunner(options: o, out: { FileHandle.standardOutput.write(Data(($0 + "\n").utf8)) },
                                     checkpoint: { partial in
            guard let path, let data = try? BenchSchema.encode(partial) else { return }
            try? data.write(to: URL(fileURLWithPath: path), options: .atomic)
        }).run()
        if let out {
            let data = try BenchSchema.encode(report)
            try data.write(to: URL(fileURLWithPath: out), options: .atomic)
            FileHandle.standardError.write(Data("wrote \(out)\n".utf8))
        }
        let failed = report.results.filter { $0.status == "gate-failed" }
        let errors = report.results.filter { $0.status == "error" }
        let deviceErrors = report.devices.filter { $0.error != nil }
        if !failed.isEmpty || !errors.isEmpty || !deviceErrors.isEmpty {
            FileHandle.standardError.write(Data(("cnn-bench: \(failed.count) cases failed the correctness gate, \(errors.count) errors, "
                + "\(deviceErrors.count) devices unavailable\n").utf8))
            throw ExitCode(1)
        }
    }
}

package struct BenchCompareCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Compare result files (or devices within one) case by case.",
        discussion: """
        Each FILE may be FILE@DEVICE to take one device's results (e.g. results.json@opencl:0:0). Rows match \
        by case name, and by device too unless every input holds one device. The first input is the base: \
        "B vs A" is A's time / B's time (> 1: B is faster). One file with several devices compares them.
        """)

    @Argument(help: "Result files: cnn-bench JSON or pytorch_baseline.py JSON (FILE or FILE@DEVICE).") var files: [String]
    @Option(help: "Flag cases slower than the base by more than this fraction.") var threshold: Double = 0.1
    @Option(help: "wall (median wall time) or device (median OpenCL device time).") var metric: String = "wall"
    @Option(help: ArgumentHelp("Only cases matching these patterns.", valueName: "patterns")) var filter: String?
    @Flag(name: .customLong("fail-on-regression"), help: "Exit with status 1 when any case regressed beyond the threshold.") var failOnRegression = false

    package init() {}

    package mutating func run() throws {
        guard let m = CompareMetric(rawValue: metric) else { throw ValidationError("--metric: wall or device, got '\(metric)'") }
        var inputs = try files.map(BenchCompare.load)
        if inputs.count == 1 {
            let devices = inputs[0].results.reduce(into: [String]()) { if !$0.contains($1.device) { $0.append($1.device) } }
            guard devices.count >= 2 else { throw ValidationError("compare: one file with one device; give two files or FILE@DEVICE twice") }
            inputs = devices.map { d in CompareInput(label: d, results: inputs[0].results.filter { $0.device == d }) }
        }
        if let pats = commaList(filter) {
            inputs = inputs.map { CompareInput(label: $0.label, results: $0.results.filter { r in pats.contains { CaseCatalog.matches($0, r.name) } }) }
        }
        print(BenchCompare.table(inputs, threshold: threshold, metric: m))
        if failOnRegression, BenchCompare.rows(inputs, threshold: threshold, metric: m).contains(where: { !$0.regressions.isEmpty }) {
            throw ExitCode(1)
        }
    }
}
