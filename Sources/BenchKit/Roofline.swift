import Foundation
import SwiftCNN

/// A device on paper: memory bandwidth, FP32 rate and the host cost of one launch.
package struct RooflineProfile: Sendable {
    package var name: String
    package var bandwidth: Double      // bytes/s
    package var flops: Double          // FP32 FLOP/s (an FMA is 2)
    package var launchSeconds: Double  // per kernel launch or CLBlast call

    /// Built-in profiles for `cnn-bench --roofline NAME`.
    package static let builtIn: [String: RooflineProfile] = [
        "h200": RooflineProfile(name: "NVIDIA H200 (4.8 TB/s, 67 FP32 TFLOP/s, 5 µs/launch)",
                                bandwidth: 4.8e12, flops: 67e12, launchSeconds: 5e-6),
    ]
}

/// One row of the roofline view: a kernel (all its launches in a step, averaged over the profiled steps).
package struct RooflineRow: Sendable {
    package var kernel: String
    package var launches: Double
    package var bytes: Double
    package var flops: Double
    /// Device time measured with OpenCL profiling events.
    package var measuredSeconds: Double
    /// Σ over its launches of max(bytes / bandwidth, flops / FMA rate) with the device's measured rates.
    package var deviceBoundSeconds: Double
    /// The same bound with the paper profile's rates (no launch cost).
    package var profileBoundSeconds: Double
    /// launches × the profile's launch cost.
    package var profileLaunchSeconds: Double
}

/// `cnn-bench --roofline NAME`: per kernel of a profiled training step on the OpenCL device, bytes and
/// FLOPs (OpenCLBackend.workLog), device time (profiling events) against the roofline bound from the
/// device's measured copy bandwidth and FMA rate; and the step predicted for the paper profile:
/// Σ max(bytes / bandwidth, FLOPs / peak) + launches × launch cost (an in-order queue pays each
/// launch in turn; CLBlast's real efficiency and caches are left out, so it is a lower bound).
package enum Roofline {
    package static func profile(named name: String) throws -> RooflineProfile {
        guard let p = RooflineProfile.builtIn[name.lowercased()] else {
            throw BenchError("--roofline: unknown profile '\(name)'; built in: \(RooflineProfile.builtIn.keys.sorted().joined(separator: ", "))")
        }
        return p
    }

    /// Profiles `steps` steady-state training steps of `model` at `batch` on `ocl`.
    package static func rows(model: String, batch: Int, on ocl: OpenCLBackend, rates: DeviceRates, profile: RooflineProfile,
                             steps: Int) throws -> [RooflineRow] {
        let m = try ModelZoo.make(model, backend: ocl, seed: 1)
        let runner = try StepRunner(model: m, optimizer: try Adam(model: m, hyper: AdamHyper(learningRate: 1e-3, weightDecay: 1e-4)))
        let (images, labels) = EndToEnd.randomBatch("train:\(model):\(batch)", batch: batch)
        try runner.trainStep(images: images, labels: labels, seed: 0)   // warm-up: programs built, buffers allocated
        try ocl.resetProfile()
        ocl.profiling = true
        for s in 0..<steps { try runner.trainStep(images: images, labels: labels, seed: UInt64(100 + s)) }
        try ocl.synchronize()
        ocl.profiling = false
        let n = Double(max(steps, 1))
        var rows: [String: RooflineRow] = [:]
        for w in ocl.workLog {
            var r = rows[w.name] ?? RooflineRow(kernel: w.name, launches: 0, bytes: 0, flops: 0, measuredSeconds: 0,
                                                deviceBoundSeconds: 0, profileBoundSeconds: 0, profileLaunchSeconds: 0)
            r.launches += 1 / n
            r.bytes += w.bytes / n
            r.flops += w.flops / n
            r.deviceBoundSeconds += max(w.bytes / rates.bandwidth, w.flops / rates.flops) / n
            r.profileBoundSeconds += max(w.bytes / profile.bandwidth, w.flops / profile.flops) / n
            r.profileLaunchSeconds += profile.launchSeconds / n
            rows[w.name] = r
        }
        for (name, ns) in ocl.deviceTimeByKernel where rows[name] != nil { rows[name]!.measuredSeconds = Double(ns) / 1e9 / n }
        _ = try runner.takeTotals()
        return rows.values.sorted { $0.measuredSeconds > $1.measuredSeconds }
    }

    /// The table: one row per kernel and the step's total.
    package static func table(_ rows: [RooflineRow], title: String, device: String, rates: DeviceRates, profile: RooflineProfile) -> String {
        func ms(_ s: Double) -> String { String(format: "%.3f", s * 1e3) }
        func us(_ s: Double) -> String { String(format: "%.1f", s * 1e6) }
        var t: [[String]] = [["kernel", "launches", "MB", "GFLOP", "measured ms", "bound ms", "bound/measured",
                              "\(profile.name.split(separator: " ").prefix(2).joined(separator: " ")) µs", "+ launches µs"]]
        var total = RooflineRow(kernel: "step", launches: 0, bytes: 0, flops: 0, measuredSeconds: 0, deviceBoundSeconds: 0,
                                profileBoundSeconds: 0, profileLaunchSeconds: 0)
        for r in rows {
            total.launches += r.launches; total.bytes += r.bytes; total.flops += r.flops
            total.measuredSeconds += r.measuredSeconds; total.deviceBoundSeconds += r.deviceBoundSeconds
            total.profileBoundSeconds += r.profileBoundSeconds; total.profileLaunchSeconds += r.profileLaunchSeconds
        }
        for row in rows + [total] {
            let frac = row.measuredSeconds > 0 ? String(format: "%.0f%%", 100 * row.deviceBoundSeconds / row.measuredSeconds) : "-"
            t.append([row.kernel, String(format: "%.0f", row.launches), String(format: "%.2f", row.bytes / 1e6),
                      String(format: "%.3f", row.flops / 1e9), ms(row.measuredSeconds), ms(row.deviceBoundSeconds), frac,
                      us(row.profileBoundSeconds), us(row.profileBoundSeconds + row.profileLaunchSeconds)])
        }
        let predicted = total.profileBoundSeconds + total.profileLaunchSeconds
        return """
        \(title) on \(device): measured copy \(String(format: "%.1f", rates.bandwidth / 1e9)) GB/s, \
        FMA \(String(format: "%.1f", rates.flops / 1e9)) GFLOP/s
        \(formatTable(t, leftColumns: 1))
        predicted on \(profile.name): \(String(format: "%.3f", predicted * 1e3)) ms/step \
        (roofline \(ms(total.profileBoundSeconds)) ms + \(String(format: "%.0f", total.launches)) launches \
        \(ms(total.profileLaunchSeconds)) ms)
        """
    }

    /// `cnn-bench --roofline NAME [--device opencl...] [--filter 'train:...'] [--reps N]`.
    package static func run(profileName: String, device: String, filter: [String], steps: Int,
                            out: (String) -> Void) throws {
        let profile = try profile(named: profileName)
        let spec = device == "all" ? "opencl" : device
        guard let ocl = try makeBackend(spec).backend as? OpenCLBackend else {
            throw BenchError("--roofline needs an OpenCL device (--device opencl or opencl:P:D), got '\(device)'")
        }
        let rates = try ocl.measuredRates()
        let names = filter.isEmpty ? ["train:optimized:128", "train:speedrun:512"] : filter
        for name in names {
            let parts = name.split(separator: ":")
            guard parts.count == 3, parts[0] == "train", let batch = Int(parts[2]), batch > 0 else {
                throw BenchError("--roofline: cases are train:MODEL:BATCH (e.g. train:optimized:128), got '\(name)'")
            }
            let rows = try rows(model: String(parts[1]), batch: batch, on: ocl, rates: rates, profile: profile, steps: steps)
            out(table(rows, title: name, device: ocl.deviceInfo.name, rates: rates, profile: profile) + "\n")
        }
    }
}
