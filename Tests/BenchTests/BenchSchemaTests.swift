import ArgumentParser
@testable import BenchKit
import Foundation
import SwiftCNN
import Testing

/// The OpenCL device of this machine (PoCL on CI), or nil: then the runs use the CPU only.
let openCLAvailable: Bool = {
    if case .opencl? = try? selectDevice(.opencl, inventory: OpenCLDiscovery.inventory()) { return true }
    return false
}()

func temporaryFile(_ name: String) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("swiftcnn-bench-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent(name).path
}

/// A few small cases of every kind of result: GEMM (GFLOP/s), pooling (GB/s), loss, optimizer,
/// a training step and an inference batch (images/s) of the small `lite` model.
let tinyRunArguments = [
    "--quick", "--models", "lite", "--gemm-sizes", "48", "--op-batch", "4", "--batch", "1", "--model-gate-batch", "1",
    "--filter", "gemm:square:*,maxPool2DForward:*,softmaxCrossEntropy:*,adamStep:*,train:*,infer:*",
    "--reps", "2", "--min-reps", "1", "--max-case-seconds", "0.3", "--warmup", "0", "--device-time-reps", "1",
    "--epoch-images", "0",
]

@Suite(.serialized) struct BenchRunTests {
    /// Runs the real command line in-process (CPU and, where present, PoCL) and checks the JSON it
    /// writes key by key, without BenchKit's own decoder, then with it.
    @Test func quickRunWritesTheDocumentedSchema() throws {
        let out = temporaryFile("quick.json")
        let devices = openCLAvailable ? "cpu,opencl" : "cpu"
        var command = try CNNBench.parseAsRoot(tinyRunArguments + ["--device", devices, "--out", out])
        try command.run()

        let data = try #require(FileManager.default.contents(atPath: out), "cnn-bench wrote no \(out)")
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(root["schema"] as? String == "swiftcnn-bench/1")

        let env = try #require(root["environment"] as? [String: Any])
        for key in ["date", "cpuModel", "os", "kernel", "hostName"] {
            #expect(!((env[key] as? String) ?? "").isEmpty, "environment.\(key)")
        }
        #expect(((env["logicalCores"] as? Int) ?? 0) > 0)
        #expect(((env["command"] as? [String]) ?? []).isEmpty == false)
        let build = try #require(env["build"] as? [String: Any])
        #expect(["debug", "release"].contains(build["configuration"] as? String ?? ""))
        #expect(build["swiftcnnFMA"] is Bool)
        #expect(((build["simdFMAProbeGflops"] as? Double) ?? 0) > 0)
        if let commit = env["gitCommit"] as? String { #expect(commit.count >= 40) }

        let settings = try #require(root["settings"] as? [String: Any])
        #expect(settings["reps"] as? Int == 2)
        #expect(settings["quick"] as? Bool == true)

        let devs = try #require(root["devices"] as? [[String: Any]])
        #expect(devs.map { $0["id"] as? String ?? "" }.first == "cpu")
        #expect(devs.count == (openCLAvailable ? 2 : 1))
        for d in devs {
            #expect(d["error"] == nil, "device \(d["id"] ?? "?"): \(d["error"] ?? "")")
            #expect(!((d["name"] as? String) ?? "").isEmpty)
        }
        if openCLAvailable {
            let ocl = try #require(devs.first { ($0["kind"] as? String) == "opencl" })
            #expect(!((ocl["driverVersion"] as? String) ?? "").isEmpty)
            #expect(ocl["programsCompiled"] is Int && ocl["programsFromCache"] is Int)
        }

        let results = try #require(root["results"] as? [[String: Any]])
        let expectedNames = ["gemm:square:48", "maxPool2DForward:lite.features.3:4", "maxPool2DForward:lite.features.7:4",
                             "softmaxCrossEntropy:classes10:4", "train:lite:1", "infer:lite:1"]
        for d in devs.compactMap({ $0["id"] as? String }) {
            let mine = results.filter { $0["device"] as? String == d }
            let names = Set(mine.compactMap { $0["name"] as? String })
            for n in expectedNames { #expect(names.contains(n), "\(d) has no result \(n); it has \(names.sorted())") }
            #expect(names.contains { $0.hasPrefix("adamStep:lite:") })
            for r in mine {
                let name = "\(d) \(r["name"] ?? "?")"
                #expect(r["status"] as? String == "ok", "\(name): \(r["status"] ?? "") \(r["message"] ?? "")")
                let wall = try #require(r["wallMs"] as? [String: Any], "\(name) has no wallMs")
                let n = (wall["n"] as? Int) ?? 0
                #expect(n >= 1 && n <= 2, "\(name) repetitions")   // --reps 2, fewer past --max-case-seconds
                #expect(((wall["samples"] as? [Double]) ?? []).count == n)
                let median = (wall["median"] as? Double) ?? -1, lo = (wall["min"] as? Double) ?? -1, hi = (wall["max"] as? Double) ?? -1
                #expect(median > 0 && lo <= median && median <= hi, "\(name): min \(lo) median \(median) max \(hi)")
                #expect(((r["firstCallMs"] as? Double) ?? 0) > 0, "\(name) first call")
                let gate = try #require(r["gate"] as? [String: Any], "\(name) was not gated")
                #expect(gate["passed"] as? Bool == true, "\(name) gate: \(gate)")
                #expect(!((gate["method"] as? String) ?? "").isEmpty)
                if d != "cpu" || !((gate["method"] as? String) ?? "").hasPrefix("the device is") {
                    #expect(((gate["checks"] as? Int) ?? 0) >= 1, "\(name) gate compared nothing")
                }
                if (r["device"] as? String)?.hasPrefix("opencl") == true {
                    let dev = try #require(r["deviceMs"] as? [String: Any], "\(name) has no OpenCL device time")
                    #expect(((dev["median"] as? Double) ?? 0) > 0)
                }
            }
            let gemm = try #require(mine.first { $0["name"] as? String == "gemm:square:48" })
            #expect(gemm["flops"] as? Double == Double(2 * 48 * 48 * 48))
            #expect(((gemm["gflops"] as? Double) ?? 0) > 0)
            let pool = try #require(mine.first { ($0["name"] as? String)?.hasPrefix("maxPool2DForward:") == true })
            #expect(((pool["gbps"] as? Double) ?? 0) > 0 && pool["gflops"] == nil)
            for e2e in ["train:lite:1", "infer:lite:1"] {
                let r = try #require(mine.first { $0["name"] as? String == e2e })
                #expect(((r["imagesPerSecond"] as? Double) ?? 0) > 0, "\(d) \(e2e) images/s")
                #expect(((r["gate"] as? [String: Any])?["method"] as? String)?.contains("lite") == true || d == "cpu")
            }
            // perStep: what one timed repetition asked of the device (the batch in, nothing out for a
            // training step; the classes out for inference). Launch counts only where there are launches.
            // OpenCL training: the uint8 image and its parameters (label, 10 ints, 2 floats) in one
            // non-blocking write (Sources/OpenCLBackend/DeviceInput.swift).
            let ocl = d.hasPrefix("opencl")
            for (e2e, up, down, blocking) in [("train:lite:1", ocl ? 3072 + 4 * (1 + 10 + 2) : 3072 * 4 + 4, 0, ocl ? 0 : 2),
                                              ("infer:lite:1", 3072 * 4, 4, 2)] {
                let r = try #require(mine.first { $0["name"] as? String == e2e })
                let perStep = try #require(r["perStep"] as? [String: Any], "\(d) \(e2e) has no perStep")
                #expect(perStep["hostToDeviceBytes"] as? Int == up, "\(d) \(e2e) perStep \(perStep)")
                #expect(perStep["deviceToHostBytes"] as? Int == down, "\(d) \(e2e) perStep \(perStep)")
                if d.hasPrefix("opencl") {
                    #expect(perStep["blockingCalls"] as? Int == blocking, "\(d) \(e2e) perStep \(perStep)")
                    #expect(((perStep["kernelLaunches"] as? Int) ?? 0) > ((perStep["clblastCalls"] as? Int) ?? -1))
                    #expect(((perStep["clblastCalls"] as? Int) ?? 0) > 0)
                } else {
                    #expect(perStep["kernelLaunches"] == nil && perStep["clblastCalls"] == nil && perStep["blockingCalls"] == nil)
                }
            }
            #expect(mine.first { $0["name"] as? String == "gemm:square:48" }?["perStep"] == nil, "perStep is for end-to-end cases")
            let train = try #require(mine.first { $0["name"] as? String == "train:lite:1" })
            let loss = try #require((train["extra"] as? [String: Any])?["meanLoss"] as? Double)
            #expect(loss.isFinite && loss > 0)
        }

        // BenchKit reads its own file back, and compare lines the devices up.
        let report = try BenchSchema.decode(data)
        #expect(report.results.count == results.count)
        if openCLAvailable {
            let input = try BenchCompare.load(out)
            let split = Set(input.results.map(\.device)).sorted().map { d in CompareInput(label: d, results: input.results.filter { $0.device == d }) }
            let rows = BenchCompare.rows(split, threshold: 0.1, metric: .wall)
            #expect(rows.contains { $0.key == "train:lite:1" && $0.speedups.first.map { $0 != nil } == true })
        }
    }

    /// A wrong primitive is caught before timing: the case is reported as gate-failed with no
    /// timing, on the exact-shape path, on the sampled path, and end to end.
    @Test func wrongKernelsAreNeverTimed() throws {
        var o = BenchOptions()
        o.devices = []
        o.quick = true
        o.models = ["lite"]
        o.gemmSizes = [40]
        o.opBatch = 4
        o.batches = [1]
        o.modelGateBatch = 1
        o.epochImages = 0
        o.reps = 2; o.minReps = 1; o.warmup = 0
        o.filter = ["gemm:square:40", "train:lite:1", "maxPool2DForward:lite.features.3:4"]
        var lines: [String] = []
        let report = try BenchRunner(options: o, out: { lines.append($0) }, log: { _ in }).run(customDevices: [
            ("wrong-gemm", { PerturbingBackend(CPUBackend(reference: true), op: "gemm", factor: 1.01) }),
            ("wrong-filter-grad", { PerturbingBackend(CPUBackend(reference: true), op: "conv2DBackwardFilter", factor: 1.01) }),
        ])
        func result(_ device: String, _ name: String) throws -> CaseResult {
            try #require(report.results.first { $0.device == device && $0.name == name })
        }
        let g = try result("wrong-gemm", "gemm:square:40")
        #expect(g.status == "gate-failed")
        #expect(g.wallMs == nil && g.gflops == nil)
        #expect(g.gate?.passed == false && g.gate?.detail?.contains("gemm") == true)
        // The perturbed GEMM also breaks the model's linear layer: the train step is not timed either.
        #expect(try result("wrong-gemm", "train:lite:1").status == "gate-failed")
        // Untouched primitives still pass and are timed.
        let pool = try result("wrong-gemm", "maxPool2DForward:lite.features.3:4")
        #expect(pool.status == "ok" && pool.wallMs != nil)

        let t = try result("wrong-filter-grad", "train:lite:1")
        #expect(t.status == "gate-failed" && t.imagesPerSecond == nil)
        #expect(t.gate?.detail?.contains("gradients") == true, "\(t.gate?.detail ?? "")")
        #expect(lines.contains { $0.contains("gate FAILED") })

        // The sampled path (reference budget 0: no exact-shape reference run) catches it as well.
        o.gateBudgetMACs = 0
        o.filter = ["gemm:square:40"]
        let sampled = try BenchRunner(options: o, out: { _ in }, log: { _ in }).run(customDevices: [
            ("wrong-gemm", { PerturbingBackend(CPUBackend(reference: true), op: "gemm", factor: 1.01) }),
            ("cpu-ok", { CPUBackend(reference: true) }),
        ])
        let bad = try #require(sampled.results.first { $0.device == "wrong-gemm" })
        #expect(bad.status == "gate-failed" && bad.gate?.method.hasPrefix("sampled") == true)
        let good = try #require(sampled.results.first { $0.device == "cpu-ok" })
        #expect(good.status == "ok" && good.gate?.method.hasPrefix("sampled") == true && good.gate?.passed == true)
    }

    @Test func caseNamesMatchThePyTorchBaseline() throws {
        let names = Set(try CaseCatalog.cases(.full).map(\.name))
        // pytorch_baseline.py --list
        for n in ["train:cnn:64", "train:cnn:128", "train:optimized:64", "train:optimized:128", "infer:cnn:256",
                  "infer:optimized:256", "train:speedrun:512", "infer:speedrun:256"] {
            #expect(names.contains(n), "\(n) missing")
        }
        for n in [256, 512, 1024, 2048] { #expect(names.contains("gemm:square:\(n)")) }
        // Every conv layer of the three models has a forward and a filter-gradient case.
        for m in ["cnn", "optimized", "speedrun"] {
            let shapes = try ModelShapes.of(m, batch: 128)
            let all = try CaseCatalog.cases(.full)
            for c in shapes.convs {
                #expect(all.contains { $0.op == "conv2DForward" && $0.usedBy.contains(c.path) }, "\(c.path)")
                #expect(all.contains { $0.op == "conv2DBackwardFilter" && $0.usedBy.contains(c.path) }, "\(c.path)")
            }
        }
        // The deeper net's forward pass: 0.55 GFLOP per image (issue 6).
        let sr = try ModelShapes.of("speedrun", batch: 1)
        #expect(abs(Double(2 * sr.forwardMACsPerImage) / 1e9 - 0.55) < 0.01, "\(sr.forwardMACsPerImage)")
    }

    @Test func filters() {
        let cases = (try? CaseCatalog.cases(.full)) ?? []
        #expect(CaseCatalog.filter(cases, include: ["train:*"], exclude: []).allSatisfy { $0.family == "train" })
        #expect(CaseCatalog.filter(cases, include: ["gemm:square:1024"], exclude: []).map(\.name) == ["gemm:square:1024"])
        #expect(CaseCatalog.filter(cases, include: ["speedrun"], exclude: ["train", "infer"]).allSatisfy {
            $0.name.contains("speedrun") && !$0.isEndToEnd
        })
        #expect(CaseCatalog.matches("conv2D*:cnn.*:128", "conv2DBackwardData:cnn.conv2:128"))
        #expect(!CaseCatalog.matches("conv2D*:cnn.*:64", "conv2DBackwardData:cnn.conv2:128"))
    }
}

@Suite struct CompareAndStatsTests {
    func result(_ name: String, _ device: String, _ ms: [Double], status: String = "ok") -> CaseResult {
        var r = CaseResult(name: name, device: device, family: "gemm", op: "gemm", shape: "", batch: nil, usedBy: [], status: status)
        r.wallMs = Stats(ms)
        return r
    }

    @Test func statistics() throws {
        let s = try #require(Stats([4, 1, 3, 2]))
        #expect(s.median == 2.5 && s.min == 1 && s.max == 4 && s.q1 == 1.75 && s.q3 == 3.25 && s.mean == 2.5)
        #expect(s.samples == [4, 1, 3, 2])
        let one = try #require(Stats([7]))
        #expect(one.median == 7 && one.q1 == 7 && one.relativeSpread == 0)
        #expect(Stats([]) == nil)
    }

    @Test func ratiosAndRegressions() {
        let a = CompareInput(label: "A", results: [result("x", "cpu", [10]), result("y", "cpu", [10]), result("z", "cpu", [10]),
                                                   result("w", "cpu", [10])])
        let b = CompareInput(label: "B", results: [result("x", "cpu", [5]), result("y", "cpu", [10.5]), result("z", "cpu", [12]),
                                                   result("w", "cpu", [1], status: "gate-failed")])
        let rows = BenchCompare.rows([a, b], threshold: 0.1, metric: .wall)
        let byKey = Dictionary(uniqueKeysWithValues: rows.map { ($0.key, $0) })
        #expect(byKey["x"]?.speedups == [2.0])
        #expect(byKey["x"]?.improvements == [1] && byKey["x"]?.regressions == [])
        #expect(byKey["y"]?.regressions == [] && byKey["y"]?.improvements == [])   // 5% slower: within 10%
        #expect(byKey["z"]?.regressions == [1])                                     // 20% slower
        #expect(byKey["w"]?.speedups == [nil])                                      // a failed gate has no time to compare
        let table = BenchCompare.table([a, b], threshold: 0.1, metric: .wall)
        #expect(table.contains("REGRESSION +20%"))
        #expect(table.contains("1 regression beyond 10%"))
        // With a looser threshold the same data has no regression.
        #expect(BenchCompare.rows([a, b], threshold: 0.25, metric: .wall).allSatisfy { $0.regressions.isEmpty })
    }

    @Test func devicesOfOneFileAndPyTorchFiles() throws {
        // Two devices in one input: rows match by case and device.
        let both = CompareInput(label: "run", results: [result("x", "cpu", [10]), result("x", "opencl:0:0", [2])])
        #expect(BenchCompare.rows([both, both], threshold: nil, metric: .wall).count == 2)
        // Single-device inputs match by case only: CPU vs GPU.
        let cpu = CompareInput(label: "cpu", results: [result("x", "cpu", [10])])
        let gpu = CompareInput(label: "gpu", results: [result("x", "opencl:0:0", [2])])
        #expect(BenchCompare.rows([cpu, gpu], threshold: nil, metric: .wall).map(\.speedups) == [[5.0]])
        // Devices against each other are "slower"/"faster", not regressions.
        let crossTable = BenchCompare.table([gpu, cpu], threshold: 0.1, metric: .wall)
        #expect(crossTable.contains("slower +400%") && !crossTable.contains("REGRESSION"))

        let py = temporaryFile("pt.json")
        let json = """
        {"label": "", "env": {"torch": "2.5.1"}, "args": {}, "results": [
          {"case": "train:optimized:128", "kind": "train", "model": "optimized", "batch": 128, "step_s_median": 0.1112,
           "step_s_min": 0.1, "step_s_max": 0.13, "images_per_s": 1151.0, "n_timed": 30},
          {"case": "aug:dataloader:64", "images_per_s": 6260.0}]}
        """
        try json.write(toFile: py, atomically: true, encoding: .utf8)
        let input = try BenchCompare.load(py)
        #expect(input.results.map(\.name) == ["train:optimized:128"])
        #expect(input.results.first?.device == "pytorch")
        #expect(abs((input.results.first?.wallMs?.median ?? 0) - 111.2) < 1e-9)
        var ours = result("train:optimized:128", "cpu", [55.6])
        ours.imagesPerSecond = 2302
        let rows = BenchCompare.rows([input, CompareInput(label: "swift", results: [ours])], threshold: 0.1, metric: .wall)
        #expect(rows.count == 1 && abs((rows[0].speedups[0] ?? 0) - 2.0) < 1e-9)

        // FILE@DEVICE selects one device; an unknown device is an error naming the ones present.
        let report = BenchReport(environment: EnvironmentProbe.collect(command: ["test"]),
                                 settings: BenchOptions().settings, devices: [], results: both.results)
        let path = temporaryFile("two.json")
        try BenchSchema.encode(report).write(to: URL(fileURLWithPath: path))
        #expect(try BenchCompare.load(path + "@opencl:0:0").results.map(\.device) == ["opencl:0:0"])
        #expect(throws: BenchError.self) { try BenchCompare.load(path + "@opencl:1:0") }
    }
}
