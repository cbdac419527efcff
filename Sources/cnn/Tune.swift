import ArgumentParser
import Foundation
import SwiftCNN

/// `cnn tune`: searches CLBlast's GEMM parameters for a device now and caches them (what
/// `cnn train` otherwise does on the device's first use).
struct Tune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tune CLBlast's GEMM parameters for an OpenCL device and cache them.",
        discussion: """
        A bounded search (about 30 s on a GPU, seconds on a CPU device) over CLBlast's GEMM kernel \
        parameters and its direct/indirect threshold, for the GEMMs of one training step of --model at \
        --batch-size (on a device that is not a GPU, batch 2); then over the work-group size of our own \
        kernels (elementwise, per-plane, im2col/col2im, pooling, optimizer, ...) at the launches of one \
        training step of --model at --batch-size (15-20 s budget). Every candidate's output is compared with \
        the CPU backend's before it can be kept; the result replaces the device's entry in the tuning cache \
        ($SWIFTCNN_CACHE_DIR/tuning, default ~/.cache/swiftcnn/tuning), one per device and driver. \
        `cnn train` and `cnn-bench` use the cached parameters; `cnn train --no-tune` (or SWIFTCNN_NO_TUNE=1) \
        keeps CLBlast's defaults. `cnn devices` shows which devices are tuned.
        """)

    @OptionGroup var deviceOption: DeviceOption
    @Option(help: "Model whose GEMM shapes are tuned for.") var model: ModelKind = .optimized
    @Option(name: .customLong("batch-size"), help: "Batch size of those shapes (GPUs; other devices use 2).") var batchSize = 128
    @Option(help: "Seconds the search may take (default: 30 on a GPU, 8 otherwise).") var budget: Double?
    @Option(name: .customLong("json"), help: "Also write the tuning record as JSON to this file.") var jsonPath: String?

    func validate() throws {
        guard batchSize >= 1 && batchSize <= 65_536 else { throw ValidationError("--batch-size must be in 1...65536, got \(batchSize)") }
        if let budget, !(budget > 0 && budget <= 3600) { throw ValidationError("--budget must be in (0, 3600] seconds, got \(budget)") }
    }

    func run() throws {
        let (backend, reason) = try makeBackend(deviceOption.device ?? .opencl, tuning: .off)
        guard let ocl = backend as? OpenCLBackend else {
            throw ValidationError("cnn tune: \(reason) — tuning is for OpenCL devices; pass --device opencl or opencl:P:D")
        }
        print("device: \(ocl.deviceInfo)")
        var options = GEMMTuner.Options.forDevice(ocl.deviceInfo)
        if let budget { options.budgetSeconds = budget }
        let record = try tuneDevice(ocl, workload: TuningWorkload(model: model.rawValue, batch: batchSize), options: options,
                                    log: { print($0) })
        print("chosen: \(record.parameters)")
        print("shape                      kernel    default ms  tuned ms")
        for s in record.shapes {
            print("\(String(describing: s.shape).padding(toLength: 26, withPad: " ", startingAt: 0)) \(s.kernel.padding(toLength: 9, withPad: " ", startingAt: 0)) "
                  + String(format: "%10.3f %9.3f", s.defaultSeconds * 1000, s.tunedSeconds * 1000))
        }
        if let wg = record.workGroups {
            print("kernel                       launches  default  chosen  default us  tuned us  rejected")
            for k in wg.kernels {
                print("\(k.kernel.padding(toLength: 28, withPad: " ", startingAt: 0)) \(String(format: "%8d %8d %7d %11.1f %9.1f", k.launches, k.defaultLocal, k.chosenLocal, k.defaultSeconds * 1e6, k.tunedSeconds * 1e6))  \(k.rejected.isEmpty ? "-" : k.rejected.map(String.init).joined(separator: ","))")
            }
            print(String(format: "work-group search %.1f s: ", wg.searchSeconds) + wg.summary
                  + (wg.skipped.isEmpty ? "" : "; left at the default (budget): \(wg.skipped.joined(separator: ", "))"))
        } else {
            print("work-group sizes: not searched (the search failed, see above): defaults")
        }
        print(String(format: "search %.1f s; GEMM total %.3f ms -> %.3f ms (%.2fx)", record.searchSeconds, record.defaultSeconds * 1000,
                     record.tunedSeconds * 1000, record.defaultSeconds / max(record.tunedSeconds, 1e-12)))
        if let jsonPath {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(record).write(to: URL(fileURLWithPath: jsonPath))
        }
        OpenCLBackend.releaseLibraryCaches()
    }
}
