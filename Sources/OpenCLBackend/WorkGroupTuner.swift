import CNNCore
import Foundation

// Work-group sizes of our own kernels: the half of the tuner that is not CLBlast (Tuner.swift).
//
// Which kernels: those launched through `launchTunable` — the 1-D kernels (`launch1D`: im2col,
// col2im, pooling, optimizers, ...), the elementwise float4 kernels, the per-plane 3-D kernels
// (`launchPlanes`: convolution epilogue, output-gradient columns, BatchNorm apply) and the fused
// bias + activation + dropout kernel. Every work-item of these computes its own elements from
// global memory (no local memory, no barrier, no get_local_*), so the local size changes their
// speed and never their result. The local-memory reductions (`launchReduction`: the fused
// BatchNorm block, the loss, the partial sums) need work-groups of exactly WG_SIZE, a build-time
// define; they are not tuned here.

extension OpenCLBackend {
    /// Launches `k` over `global` with its tuned (else default) work-group size in dimension 0 and 1
    /// in the others. `clip`: dimension 0 at most `global[0]` (per-plane kernels, whose plane may be
    /// smaller than a work-group). Only for kernels whose result does not depend on the local size.
    func launchTunable(_ k: Kernel, global: [Int], clip: Bool, _ args: [KernelArg]) throws {
        if let recorder = launchRecorder, !global.contains(0) {
            try recorder.record(k, global: global, clip: clip, args: args, on: self)
        }
        let local = Self.localShape(k.launchLocal, global: global, clip: clip)
        k.lastLocal = local
        try launch(k, global: global, local: local, args)
    }

    static func localShape(_ size: Int, global: [Int], clip: Bool) -> [Int] {
        var local = [Int](repeating: 1, count: global.count)
        local[0] = clip ? max(1, min(size, global[0])) : max(1, size)
        return local
    }

    /// Applies tuned work-group sizes (kernel name -> size) to this device: process-wide, for the
    /// kernels every backend on the device creates from now on, and for this backend's existing
    /// ones. Kernels not named keep their default (`Kernel.local1D`); `[:]` restores all defaults.
    /// A size above a kernel's limit is clipped at launch (`Kernel.launchLocal`).
    package func applyLocalSizes(_ sizes: [String: Int]) {
        runtime.setTunedLocalSizes(sizes)
        for k in createdKernels { k.tunedLocal = sizes[k.name] }
    }

    /// The local size of `name`'s last tunable launch on this backend (nil: not launched yet).
    package func lastLocalSize(_ name: String) -> [Int]? {
        createdKernels.first { $0.name == name }?.lastLocal
    }
}

/// While set on a backend (`launchRecorder`), keeps each distinct tunable launch of a training
/// step — its kernel, NDRange and arguments — with a device copy of its tensors taken just before
/// it ran, so the tuner can replay it from the same inputs at other local sizes.
final class LaunchRecorder {
    final class Launch {
        let kernel: Kernel
        let global: [Int]
        let clip: Bool
        let args: [KernelArg]
        /// The tensor arguments and their contents before the launch.
        let tensors: [Tensor]
        let snapshots: [Tensor]
        /// How often the step ran this launch (same kernel, NDRange, sizes and tensor sizes).
        var occurrences = 1

        init(kernel: Kernel, global: [Int], clip: Bool, args: [KernelArg], tensors: [Tensor], snapshots: [Tensor]) {
            self.kernel = kernel; self.global = global; self.clip = clip; self.args = args
            self.tensors = tensors; self.snapshots = snapshots
        }
    }

    private(set) var launches: [Launch] = []
    private var index: [String: Launch] = [:]
    private var over: Set<String> = []
    /// Device bytes the snapshots may take; distinct launches beyond it are not kept (`dropped`).
    let byteBudget: Int
    private(set) var bytes = 0
    var dropped: Int { over.count }

    init(byteBudget: Int) { self.byteBudget = byteBudget }

    func record(_ k: Kernel, global: [Int], clip: Bool, args: [KernelArg], on backend: OpenCLBackend) throws {
        var key = "\(k.name)|\(global)"
        var tensors: [Tensor] = []
        for arg in args {
            switch arg {
            case let .tensor(t): tensors.append(t); key += "|t\(t.count)"
            case let .optional(t): if let t { tensors.append(t) }; key += "|o\(t?.count ?? -1)"
            case let .int(v): key += "|\(v)"
            case .uint, .float: break   // seeds and scales: same work
            case let .local(b): key += "|l\(b)"
            }
        }
        if let seen = index[key] { seen.occurrences += 1; return }
        if over.contains(key) { return }
        let size = tensors.reduce(0) { $0 + $1.count * 4 }
        guard bytes + size <= byteBudget else { over.insert(key); return }
        var snapshots: [Tensor] = []
        for t in tensors {
            let s = try backend.makeTensor(t.shape, dtype: t.dtype)
            try backend.copy(t, to: s)   // in-order queue: the contents before this launch
            snapshots.append(s)
        }
        bytes += size
        let launch = Launch(kernel: k, global: global, clip: clip, args: args, tensors: tensors, snapshots: snapshots)
        index[key] = launch
        launches.append(launch)
    }
}

/// The outcome of a work-group search, stored in the tuning record (`TuningRecord.workGroups`).
package struct WorkGroupTuning: Codable, Sendable, Equatable {
    package struct KernelResult: Codable, Sendable, Equatable {
        package var kernel: String
        /// Distinct launches timed (NDRange and sizes), and how many launches of one step they stand for.
        package var shapes: Int
        package var launches: Int
        /// The default local size (`Kernel.local1D`) and the one kept.
        package var defaultLocal: Int
        package var chosenLocal: Int
        /// Device seconds of one step's launches of the kernel (profiling events; medians).
        package var defaultSeconds: Double
        package var tunedSeconds: Double
        /// The sizes tried, those whose output differed from the default's, and those the driver refused.
        package var candidates: [Int]
        package var rejected: [Int]
        package var failed: [Int]
    }

    package var kernels: [KernelResult]
    package var searchSeconds: Double
    package var candidatesTimed: Int
    package var rejectedByGate: Int
    package var failedToRun: Int
    /// Kernels the step launched but the budget left at their default.
    package var skipped: [String]
    /// What the recorded step was, e.g. "optimized, batch 128" (set by the caller).
    package var workload: String? = nil

    /// What the launchers apply: the kernels whose chosen size is not their default.
    package var localSizes: [String: Int] {
        var out: [String: Int] = [:]
        for k in kernels where k.chosenLocal != k.defaultLocal { out[k.kernel] = k.chosenLocal }
        return out
    }
    package var defaultSeconds: Double { kernels.reduce(0) { $0 + $1.defaultSeconds } }
    package var tunedSeconds: Double { kernels.reduce(0) { $0 + $1.tunedSeconds } }

    /// e.g. "im2col 256->64, relu 256->128 (4 of 17 kernels changed)".
    package var summary: String {
        let changed = kernels.filter { $0.chosenLocal != $0.defaultLocal }
        let list = changed.map { "\($0.kernel) \($0.defaultLocal)->\($0.chosenLocal)" }.joined(separator: ", ")
        return (list.isEmpty ? "all defaults" : list) + " (\(changed.count) of \(kernels.count) kernels changed"
            + (workload.map { "; \($0)" } ?? "") + ")"
    }
}

/// A bounded search over the work-group size of our own kernels at the launches of one training
/// step of the model (`launchTunable`'s kernels; see the top of this file).
///
/// 1. The caller's `step` runs once with a `LaunchRecorder` on the backend: every distinct launch
///    is kept with a device copy of its tensors from just before it ran (within a memory budget).
/// 2. Kernels in order of their device time in that step (hottest first), while the budget lasts:
///    the candidates are `Options.sizes` and the kernel's default, clipped to the kernel's and the
///    device's limits.
/// 3. Correctness gate: for each distinct launch, the tensors are restored from the copy and the
///    kernel runs at the default size; every candidate then runs from the same restored inputs and
///    every tensor argument must come back bit-identical (these kernels' results do not depend on
///    the local size, so any difference is a fault). A candidate that differs anywhere, or that the
///    driver refuses, is dropped for that kernel.
/// 4. Time: device time from profiling events, `repetitions` launches per distinct launch, weighted
///    by how often the step runs it; `rounds` rounds interleaving the candidates, medians. The
///    fastest, if it beats the default by more than 3%, is timed against the default again
///    (`confirmationRounds` interleaved rounds, medians) and kept only if it still beats it by
///    more than 3%; else the default stays.
///
/// The result is applied to the device (`applyLocalSizes`).
package struct WorkGroupTuner {
    package struct Options {
        /// Candidate work-group sizes (besides each kernel's default).
        package var sizes: [Int] = [32, 64, 128, 256, 512]
        /// Seconds for the search: no kernel is started after it (the one under way finishes).
        package var budgetSeconds: Double
        /// Launches per timing, and interleaved rounds (the median is kept).
        package var repetitions: Int
        package var rounds = 3
        /// Interleaved rounds of the winner against the default before it is kept.
        package var confirmationRounds = 5
        /// Device bytes for the recorded launches' input copies.
        package var snapshotBytes: Int
        package var log: (String) -> Void = { _ in }
        /// Test hook: when it returns true for (kernel, local size), one output element of that
        /// candidate is changed before the gate compares (so the gate must reject it).
        package var corruptOutput: ((_ kernel: String, _ local: Int) -> Bool)?

        package init(budgetSeconds: Double, repetitions: Int, snapshotBytes: Int) {
            self.budgetSeconds = budgetSeconds; self.repetitions = repetitions; self.snapshotBytes = snapshotBytes
        }

        /// A GPU: 15 s, 10 launches per timing. A CPU driver (PoCL): 20 s, 3 per timing (PoCL
        /// compiles a kernel once per local size, a fraction of a second each, cached on disk after).
        package static func forDevice(_ info: OpenCLDeviceInfo) -> Options {
            let snapshot = Int(min(info.globalMemoryBytes / 8, 1 << 30))
            return info.type == .gpu ? Options(budgetSeconds: 15, repetitions: 10, snapshotBytes: snapshot)
                                     : Options(budgetSeconds: 20, repetitions: 3, snapshotBytes: snapshot)
        }
    }

    let backend: OpenCLBackend
    var options: Options

    package init(backend: OpenCLBackend, options: Options) {
        self.backend = backend
        self.options = options
    }

    /// Records `step`'s launches, searches, applies the result to the device and returns it. The
    /// step's tensors are overwritten by the replays: give it a throwaway model. A failure leaves
    /// the defaults applied.
    package func run(step: () throws -> Void) throws -> WorkGroupTuning {
        let wasProfiling = backend.profiling
        let saved = (backend.deviceTimeNanoseconds, backend.deviceTimeByKernel, backend.workLog)
        backend.applyLocalSizes([:])
        defer {
            backend.launchRecorder = nil
            backend.profiling = wasProfiling
            (backend.deviceTimeNanoseconds, backend.deviceTimeByKernel, backend.workLog) = saved
        }
        let result = try search(step: step)
        backend.applyLocalSizes(result.localSizes)
        return result
    }

    private func search(step: () throws -> Void) throws -> WorkGroupTuning {
        let t0 = Date()
        let recorder = LaunchRecorder(byteBudget: options.snapshotBytes)
        backend.profiling = true
        backend.resetDeviceTime()
        backend.launchRecorder = recorder
        try step()
        backend.launchRecorder = nil
        try backend.synchronize()
        let stepTime = backend.deviceTimeByKernel

        var groups: [String: [LaunchRecorder.Launch]] = [:]
        for l in recorder.launches { groups[l.kernel.name, default: []].append(l) }
        let order = groups.keys.sorted { (stepTime[$0] ?? 0, $1) > (stepTime[$1] ?? 0, $0) }
        options.log("tuning work-group sizes on \(backend.deviceInfo.name): \(order.count) kernels, "
                    + "\(recorder.launches.count) distinct launches (\(recorder.bytes >> 20) MiB of inputs kept"
                    + (recorder.dropped > 0 ? ", \(recorder.dropped) launches over the memory budget not timed" : "")
                    + "), budget \(String(format1: options.budgetSeconds)) s")

        var results: [WorkGroupTuning.KernelResult] = []
        var skipped: [String] = []
        var timed = 0, rejectedTotal = 0, failedTotal = 0
        for name in order {
            guard Date().timeIntervalSince(t0) < options.budgetSeconds else { skipped.append(name); continue }
            let launches = groups[name]!
            let k = launches[0].kernel
            let limit = min(k.maxWorkGroupSize, max(backend.deviceInfo.maxWorkGroupSize, 1))
            let def = k.local1D
            let candidates = Array(Set(options.sizes.filter { $0 >= 1 && $0 <= limit } + [def])).sorted()
            var rejected: Set<Int> = [], failed: Set<Int> = []

            // The gate: every candidate against the default, from the same inputs.
            for l in launches {
                try restore(l)
                try run(l, local: def)
                let reference = try outputs(l)
                for c in candidates where c != def && !rejected.contains(c) && !failed.contains(c) {
                    do {
                        try restore(l)
                        try run(l, local: c)
                        var got = try outputs(l)
                        if let corrupt = options.corruptOutput, corrupt(name, c), let i = got.firstIndex(where: { !$0.isEmpty }) {
                            got[i][got[i].count / 2] ^= 1
                        }
                        if let why = Self.difference(got, reference) {
                            rejected.insert(c)
                            options.log("  \(name) local \(c): REJECTED by the gate (global \(l.global): \(why))")
                        }
                    } catch {
                        failed.insert(c)
                        options.log("  \(name) local \(c): failed to run (\(error))")
                    }
                }
            }
            let alive = candidates.filter { !rejected.contains($0) && !failed.contains($0) }

            // Timing: rounds interleaving the candidates; per candidate the median of its step totals.
            var totals: [Int: [Double]] = [:]
            for _ in 0..<max(options.rounds, 1) {
                for c in alive {
                    var total = 0.0
                    for l in launches { total += Double(l.occurrences) * (try seconds(l, local: c)) }
                    totals[c, default: []].append(total)
                }
            }
            timed += alive.count
            rejectedTotal += rejected.count
            failedTotal += failed.count
            func median(_ v: [Double]) -> Double {
                let s = v.sorted()
                return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
            }
            let medians = totals.mapValues(median)
            var defaultTime = medians[def] ?? 0
            var chosen = def, chosenTime = defaultTime
            if let best = alive.min(by: { (medians[$0]!, $0) < (medians[$1]!, $1) }), medians[best]! < 0.97 * defaultTime {
                // Confirmation: the winner and the default again, interleaved, more rounds (a busy
                // host or a CPU driver varies by more than the margin); kept only if it still wins.
                var d: [Double] = [], b: [Double] = []
                for _ in 0..<max(options.confirmationRounds, 1) {
                    var td = 0.0, tb = 0.0
                    for l in launches { td += Double(l.occurrences) * (try seconds(l, local: def)) }
                    for l in launches { tb += Double(l.occurrences) * (try seconds(l, local: best)) }
                    d.append(td); b.append(tb)
                }
                defaultTime = median(d)
                let bestTime = median(b)
                options.log("  \(name): confirmation (medians of \(d.count), interleaved): \(def): \(us(defaultTime)), "
                            + "\(best): \(us(bestTime)) us per step")
                if bestTime < 0.97 * defaultTime { chosen = best; chosenTime = bestTime } else { chosenTime = defaultTime }
            }
            let result = WorkGroupTuning.KernelResult(
                kernel: name, shapes: launches.count, launches: launches.reduce(0) { $0 + $1.occurrences },
                defaultLocal: def, chosenLocal: chosen, defaultSeconds: defaultTime, tunedSeconds: chosenTime,
                candidates: candidates, rejected: rejected.sorted(), failed: failed.sorted())
            results.append(result)
            options.log("  \(name): " + alive.map { "\($0): \(us(medians[$0]!))" }.joined(separator: ", ")
                        + " us per step -> \(chosen)" + (chosen == def ? " (default)" : ""))
        }
        try backend.synchronize()
        let out = WorkGroupTuning(kernels: results, searchSeconds: Date().timeIntervalSince(t0), candidatesTimed: timed,
                                  rejectedByGate: rejectedTotal, failedToRun: failedTotal, skipped: skipped)
        options.log("work-group sizes tuned in \(String(format1: out.searchSeconds)) s: \(out.summary); "
                    + "kernel time per step \(us(out.defaultSeconds)) -> \(us(out.tunedSeconds)) us"
                    + (skipped.isEmpty ? "" : "; budget spent, left at the default: \(skipped.joined(separator: ", "))"))
        return out
    }

    private func restore(_ l: LaunchRecorder.Launch) throws {
        for (t, s) in zip(l.tensors, l.snapshots) { try backend.copy(s, to: t) }
    }

    private func run(_ l: LaunchRecorder.Launch, local: Int) throws {
        try backend.launch(l.kernel, global: l.global, local: OpenCLBackend.localShape(local, global: l.global, clip: l.clip), l.args)
    }

    /// Every tensor argument's bits.
    private func outputs(_ l: LaunchRecorder.Launch) throws -> [[UInt32]] {
        try l.tensors.map { t in
            t.dtype == .int32 ? try backend.ints(t).map { UInt32(bitPattern: $0) } : try backend.floats(t).map(\.bitPattern)
        }
    }

    /// Mean device seconds of one launch at `local` (profiling events).
    private func seconds(_ l: LaunchRecorder.Launch, local: Int) throws -> Double {
        backend.resetDeviceTime()
        let reps = max(options.repetitions, 1)
        for _ in 0..<reps { try run(l, local: local) }
        try backend.synchronize()
        return Double(backend.deviceTimeByKernel[l.kernel.name] ?? 0) / 1e9 / Double(reps)
    }

    /// nil when `got` equals `expected` bit for bit, else where they first differ.
    static func difference(_ got: [[UInt32]], _ expected: [[UInt32]]) -> String? {
        for (a, (g, e)) in zip(got, expected).enumerated() where g != e {
            let i = (0..<min(g.count, e.count)).first { g[$0] != e[$0] } ?? min(g.count, e.count)
            return "tensor argument \(a), element \(i): \(i < g.count ? Float(bitPattern: g[i]) : .nan) "
                + "instead of \(i < e.count ? Float(bitPattern: e[i]) : .nan)"
        }
        return nil
    }
}

private func us(_ seconds: Double) -> String { String(format: "%.1f", seconds * 1e6) }
