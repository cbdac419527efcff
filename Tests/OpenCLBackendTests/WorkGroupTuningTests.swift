import CNNCore
import CPUBackend
import Foundation
@testable import OpenCLBackend
import Testing

/// The work-group half of the tuner (WorkGroupTuner.swift): its cache section here, the launcher,
/// the search and the gate in child processes (tuned sizes are process-wide per device, like
/// CLBlast's parameters).
@Suite struct WorkGroupCacheTests {
    static func tuning() -> WorkGroupTuning {
        WorkGroupTuning(kernels: [
            .init(kernel: "relu", shapes: 2, launches: 5, defaultLocal: 256, chosenLocal: 64, defaultSeconds: 2e-4, tunedSeconds: 1e-4,
                  candidates: [32, 64, 128, 256], rejected: [32], failed: []),
            .init(kernel: "im2col", shapes: 1, launches: 3, defaultLocal: 256, chosenLocal: 256, defaultSeconds: 3e-4,
                  tunedSeconds: 3e-4, candidates: [64, 256], rejected: [], failed: [64]),
        ], searchSeconds: 3.5, candidatesTimed: 5, rejectedByGate: 1, failedToRun: 1, skipped: ["fill"])
    }

    @Test func sectionRoundTripsAndOldFilesStillLoad() throws {
        let root = try temporaryDirectory("wg-cache")
        let dev = TuningCacheTests.device
        var r = TuningCacheTests.record(for: dev)
        r.workGroups = Self.tuning()
        try TuningCache.store(r, for: dev, root: root)
        #expect(TuningCache.load(dev, root: root) == .found(r))
        #expect(r.workGroups?.localSizes == ["relu": 64], "only the changed kernel is applied")

        // A file written before the section existed (no "workGroups" key) loads, without it.
        let url = TuningCache.url(for: dev, root: root)
        var json = try #require(try JSONSerialization.jsonObject(with: try Data(contentsOf: url)) as? [String: Any])
        #expect(json["workGroups"] != nil)
        json.removeValue(forKey: "workGroups")
        try JSONSerialization.data(withJSONObject: json).write(to: url)
        var old = r
        old.workGroups = nil
        #expect(TuningCache.load(dev, root: root) == .found(old))
        #expect(workGroupNote(nil).contains("defaults"))

        // A size no device takes makes the entry unusable (re-tuned), with a message.
        var bad = r
        bad.workGroups!.kernels[0].chosenLocal = 0
        try TuningCache.store(bad, for: dev, root: root)
        guard case .corrupt(let message) = TuningCache.load(dev, root: root) else {
            Issue.record("a work-group size of 0 was accepted")
            return
        }
        #expect(message.contains("work-group size"), "\(message)")
    }

    @Test func gateComparesBitsAndLocalShapesClip() {
        #expect(WorkGroupTuner.difference([[1, 2], [3]], [[1, 2], [3]]) == nil)
        let why = WorkGroupTuner.difference([[1, 2], [3]], [[1, 2], [4]])
        #expect(why?.contains("tensor argument 1, element 0") == true, "\(why ?? "nil")")
        // -0 and +0 differ in bits: a gate on bits, not on values.
        #expect(WorkGroupTuner.difference([[Float(-0.0).bitPattern]], [[Float(0).bitPattern]]) != nil)
        #expect(OpenCLBackend.localShape(64, global: [1000], clip: false) == [64])
        #expect(OpenCLBackend.localShape(64, global: [16, 8, 2], clip: true) == [16, 1, 1])
        #expect(OpenCLBackend.localShape(64, global: [1024, 4], clip: false) == [64, 1])
    }
}

/// The launcher, the search and the gate on the real OpenCL device, each in a child process.
@Suite(.enabled(if: OCL.available, "no OpenCL device"))
struct WorkGroupSearchTests {
    /// A tuned size is what the launchers use: set directly, clipped to the kernel's limit, taken
    /// by a second backend's kernels, and applied from a cached record by `prepareTuning`.
    @Test func launchersUseTheTunedSize() throws {
        let r = try Child.run(mode: "tuningWGLauncher", environment: try TuningSearchTests.env())
        #expect(r["defaultRelu"] == r["local1D"], "\(r)")
        #expect(r["tunedRelu"] == "[32]", "\(r)")
        #expect(r["tunedPlanes"] == "[8, 1, 1]", "\(r)")
        #expect(r["clipped"] == r["maxWG"], "\(r)")
        #expect(r["secondBackend"] == "[32]", "\(r)")
        #expect(r["reluCorrect"] == "true", "\(r)")
        #expect(r["cachedRelu"] == "[64]", "\(r)")
        #expect(r["cachedNote"]?.contains("relu") == true, "\(r)")
        #expect(r["afterOff"] == r["local1D"], "\(r)")
        #expect(r["offNote"]?.contains("default work-group sizes") == true, "\(r)")
    }

    /// Every candidate but the default fails the gate (a fault injected into its output): nothing
    /// changes, every rejection is counted, and the default stays applied.
    @Test func candidatesFailingTheGateAreNeverKept() throws {
        let r = try Child.run(mode: "tuningWGGate", environment: try TuningSearchTests.env())
        #expect(r["changed"] == "0", "\(r)")
        #expect(Int(r["rejected"] ?? "") ?? 0 >= Int(r["kernelCount"] ?? "") ?? 99, "\(r)")
        #expect(r["allRejectedOrFailed"] == "true", "\(r)")
        #expect(r["applied"] == "", "\(r)")
    }

    /// A real search: the recorded kernels are timed at several sizes, each choice passed the
    /// gate, the device has exactly the chosen sizes applied, and results stay correct.
    @Test func searchKeepsOnlyGatedChoicesAndAppliesThem() throws {
        let r = try Child.run(mode: "tuningWGSearch", environment: try TuningSearchTests.env())
        #expect(r["kernels"]?.contains("relu") == true && r["kernels"]?.contains("maxPool2DForward") == true
                && r["kernels"]?.contains("batchNormForwardInference") == true && r["kernels"]?.contains("add") == true, "\(r)")
        #expect(r["chosenPassed"] == "true", "\(r)")
        #expect(r["appliedMatches"] == "true", "\(r)")
        #expect(Int(r["timed"] ?? "") ?? 0 >= 8, "\(r)")
        #expect(r["rejected"] == "0", "\(r)")
        #expect(r["resultCorrect"] == "true", "\(r)")
        #expect(r["kernelCount"] == "4", "relu, add, batchNormForwardInference, maxPool2DForward: \(r)")
        print("work-group search on \(r["device"] ?? "?"): \(r["seconds"] ?? "?") s, \(r["summary"] ?? "?")")
    }
}

/// The child side of `WorkGroupSearchTests` (through `TuningProbe.run`).
enum WorkGroupProbe {
    /// A small "step": elementwise (in place and not), a per-plane kernel, 1-D pooling.
    final class Step {
        let b: OpenCLBackend
        let x, y, z, pooled, argmax, gamma, beta, mean, variance: Tensor
        let g = Pool2DGeometry(batch: 2, channels: 3, height: 8, width: 8, kernel: 2)

        init(_ b: OpenCLBackend) throws {
            self.b = b
            let n = 2 * 3 * 8 * 8
            let values = (0..<n).map { Float(($0 * 37) % 101) / 50 - 1 }
            x = try b.upload(values, shape: [2, 3, 8, 8])
            y = try b.makeTensor([2, 3, 8, 8])
            z = try b.makeTensor([2, 3, 8, 8])
            pooled = try b.makeTensor([2, 3, 4, 4])
            argmax = try b.makeTensor([2, 3, 4, 4], dtype: .int32)
            gamma = try b.upload([1, 2, 0.5], shape: [3]); beta = try b.upload([0, 0.1, -0.2], shape: [3])
            mean = try b.upload([0.1, 0, -0.1], shape: [3]); variance = try b.upload([1, 0.5, 2], shape: [3])
        }

        func run() throws {
            try b.relu(x: x, y: y)
            try b.add(x, y, y: z)
            try b.batchNormForwardInference(x: z, gamma: gamma, beta: beta, runningMean: mean, runningVar: variance,
                                            y: y, epsilon: 1e-5, activation: .relu)
            try b.maxPool2DForward(x: y, y: pooled, argmax: argmax, geometry: g)
            try b.relu(x: z, y: z)   // in place, and a second launch of the same shape
        }

        /// The step's results on the CPU reference.
        func expected() throws -> [Float] {
            let c = CPUBackend(reference: true)
            let xs = try c.upload(try b.floats(x), shape: x.shape)
            let ys = try c.makeTensor(y.shape), zs = try c.makeTensor(z.shape)
            let ps = try c.makeTensor(pooled.shape), am = try c.makeTensor(argmax.shape, dtype: .int32)
            try c.relu(x: xs, y: ys)
            try c.add(xs, ys, y: zs)
            try c.batchNormForwardInference(x: zs, gamma: try c.upload(try b.floats(gamma), shape: [3]),
                                            beta: try c.upload(try b.floats(beta), shape: [3]),
                                            runningMean: try c.upload(try b.floats(mean), shape: [3]),
                                            runningVar: try c.upload(try b.floats(variance), shape: [3]),
                                            y: ys, epsilon: 1e-5, activation: .relu)
            try c.maxPool2DForward(x: ys, y: ps, argmax: am, geometry: g)
            try c.relu(x: zs, y: zs)
            return try c.floats(ps) + c.floats(zs)
        }
        func got() throws -> [Float] { try b.floats(pooled) + b.floats(z) }
    }

    static func options() -> WorkGroupTuner.Options {
        var o = WorkGroupTuner.Options(budgetSeconds: 600, repetitions: 2, snapshotBytes: 1 << 24)
        o.sizes = [8, 32, 64]
        o.rounds = 2
        o.log = { print($0) }
        return o
    }

    static func close(_ a: [Float], _ b: [Float]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($1)) }
    }

    static func run(_ mode: String, _ backend: OpenCLBackend) throws -> [String: String] {
        var r: [String: String] = [:]
        switch mode {
        case "tuningWGLauncher":
            let step = try Step(backend)
            try step.run()
            let relu = try backend.kernel(.elementwise, "relu")
            r["local1D"] = "[\(relu.local1D)]"
            r["maxWG"] = "[\(relu.maxWorkGroupSize)]"
            r["defaultRelu"] = backend.lastLocalSize("relu").map { "\($0)" } ?? "none"
            // Planes of 8*8/4 = 16 float4 work-items: 8 fits, so it is used as is.
            backend.applyLocalSizes(["relu": 32, "batchNormForwardInference": 8])
            try step.run()
            r["tunedRelu"] = backend.lastLocalSize("relu").map { "\($0)" } ?? "none"
            r["tunedPlanes"] = backend.lastLocalSize("batchNormForwardInference").map { "\($0)" } ?? "none"
            r["reluCorrect"] = String(close(try step.got(), try step.expected()))
            let second = try OpenCLBackend(device: backend.deviceInfo)
            try Step(second).run()
            r["secondBackend"] = second.lastLocalSize("relu").map { "\($0)" } ?? "none"
            backend.applyLocalSizes(["relu": 1 << 20])
            try step.run()
            r["clipped"] = backend.lastLocalSize("relu").map { "\($0)" } ?? "none"
            // From the cache, as `cnn train` / `makeBackend` applies it.
            backend.applyLocalSizes([:])
            var record = TuningRecord(key: TuningCache.key(backend.deviceInfo), device: backend.deviceInfo.name,
                                      driverVersion: backend.deviceInfo.driverVersion, created: "now", workload: "test",
                                      parameters: try backend.currentGEMMParameters(), defaults: try backend.currentGEMMParameters(),
                                      shapes: [], searchSeconds: 0, candidatesTimed: 0, rejectedByGate: 0, failedToRun: 0)
            record.workGroups = WorkGroupTuning(kernels: [
                .init(kernel: "relu", shapes: 1, launches: 1, defaultLocal: relu.local1D, chosenLocal: 64, defaultSeconds: 2, tunedSeconds: 1,
                      candidates: [64, relu.local1D], rejected: [], failed: []),
            ], searchSeconds: 1, candidatesTimed: 2, rejectedByGate: 0, failedToRun: 0, skipped: [])
            try TuningCache.store(record, for: backend.deviceInfo)
            r["cachedNote"] = try prepareTuning(backend, policy: .cacheOnly, log: { print($0) }) {
                throw CNNError.device("cacheOnly must not search")
            } ?? ""
            try step.run()
            r["cachedRelu"] = backend.lastLocalSize("relu").map { "\($0)" } ?? "none"
            // `--no-tune` (`.off`) in a fresh process applies nothing although the cache has sizes.
            backend.applyLocalSizes([:])
            r["offNote"] = try prepareTuning(backend, policy: .off, log: { print($0) }) { throw CNNError.device("off must not search") } ?? ""
            try step.run()
            r["afterOff"] = backend.lastLocalSize("relu").map { "\($0)" } ?? "none"
        case "tuningWGGate", "tuningWGSearch":
            let step = try Step(backend)
            try step.run()
            var options = options()
            if mode == "tuningWGGate" { options.corruptOutput = { _, _ in true } }
            let t0 = Date()
            let recorded = try WorkGroupTuner(backend: backend, options: options).run { try step.run() }
            r["seconds"] = String(format: "%.1f", Date().timeIntervalSince(t0))
            r["summary"] = recorded.summary
            r["kernels"] = recorded.kernels.map(\.kernel).sorted().joined(separator: ",")
            r["changed"] = String(recorded.localSizes.count)
            r["rejected"] = String(recorded.rejectedByGate)
            r["timed"] = String(recorded.candidatesTimed)
            r["allRejectedOrFailed"] = String(recorded.kernels.allSatisfy { (k: WorkGroupTuning.KernelResult) -> Bool in
                let others: Set<Int> = Set(k.candidates.filter { $0 != k.defaultLocal })
                return Set(k.rejected + k.failed) == others
            })
            r["chosenPassed"] = String(recorded.kernels.allSatisfy { $0.candidates.contains($0.chosenLocal) && !$0.rejected.contains($0.chosenLocal) })
            r["applied"] = backend.createdKernels.compactMap { k in k.tunedLocal.map { "\(k.name)=\($0)" } }.sorted().joined(separator: ",")
            var matches = true
            for k in recorded.kernels {
                let kernel = try #require(backend.createdKernels.first { $0.name == k.kernel })
                matches = matches && kernel.tunedLocal == recorded.localSizes[k.kernel]
            }
            r["appliedMatches"] = String(matches)
            r["kernelCount"] = String(recorded.kernels.count)
            try step.run()
            r["resultCorrect"] = String(close(try step.got(), try step.expected()))
        default:
            Issue.record("unknown work-group probe mode \(mode)")
        }
        return r
    }
}
