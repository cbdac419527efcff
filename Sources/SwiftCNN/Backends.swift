import CNNCore
import CPUBackend
import OpenCLBackend

// Where the backends meet: the only module that depends on both the CPU and the OpenCL backend
// and constructs one of them from a device request.

/// Creates the backend that `request` names (`--device auto|cpu|opencl|opencl:P:D`), with the
/// reason for the choice (`selectDevice` decides; see there).
///
/// An OpenCL device gets its cached CLBlast tuning, if `cnn tune` or an earlier `cnn train` stored
/// one (`SWIFTCNN_NO_TUNE=1`: CLBlast's defaults); the reason then says so.
public func makeBackend(_ request: DeviceRequest) throws -> (backend: any Backend, reason: String) {
    try makeBackend(request, tuning: .cacheOnly)
}

/// `makeBackend` with a tuning policy (see `prepareTuning`): `cnn train` tunes a device on its
/// first use (`.tuneIfMissing`, for `workload`), `--no-tune` is `.off`.
package func makeBackend(_ request: DeviceRequest, tuning: TuningPolicy, workload: TuningWorkload = TuningWorkload(),
                         log: @escaping (String) -> Void = { _ in }) throws -> (backend: any Backend, reason: String) {
    switch try selectDevice(request) {
    case .cpu(let reason):
        return (CPUBackend(), reason)
    case .opencl(let info, let reason):
        let backend = try OpenCLBackend(device: info)
        let note = try prepareTuning(backend, policy: tuning, workload: workload, log: log)
        return (backend, note.map { reason + "; " + $0 } ?? reason)
    }
}

/// `makeBackend` for the text form `auto|cpu|opencl|opencl:P:D` (a bad one: an error listing the forms).
public func makeBackend(_ spec: String) throws -> (backend: any Backend, reason: String) {
    try makeBackend(try DeviceRequest.parse(spec))
}

/// What a backend asked of its device over some stretch of work (totals, or per step after
/// `perStep`): the figures `cnn-bench` reports as `perStep` and `cnn train --profile` prints.
///
/// Launch, CLBlast and blocking counts are the OpenCL backend's exact `commandCounters`. The CPU
/// backend runs every primitive synchronously on the calling threads — there is nothing to launch
/// and no device to wait for — so for it those three are nil (absent from JSON); its host<->device
/// bytes are its `transferCounters` (copies into and out of its tensors).
package struct DeviceWorkCounts: Codable, Sendable, Equatable {
    package var kernelLaunches: Double?
    package var clblastCalls: Double?
    package var blockingCalls: Double?
    package var hostToDeviceBytes: Double
    package var deviceToHostBytes: Double

    package init(kernelLaunches: Double? = nil, clblastCalls: Double? = nil, blockingCalls: Double? = nil,
                 hostToDeviceBytes: Double = 0, deviceToHostBytes: Double = 0) {
        self.kernelLaunches = kernelLaunches; self.clblastCalls = clblastCalls; self.blockingCalls = blockingCalls
        self.hostToDeviceBytes = hostToDeviceBytes; self.deviceToHostBytes = deviceToHostBytes
    }

    /// The backend's counts so far.
    package static func snapshot(_ b: any Backend) -> DeviceWorkCounts {
        let t = b.transferCounters
        var c = DeviceWorkCounts(hostToDeviceBytes: Double(t.uploadBytes), deviceToHostBytes: Double(t.downloadBytes))
        if let ocl = b as? OpenCLBackend {
            let k = ocl.commandCounters
            c.kernelLaunches = Double(k.kernelLaunches)
            c.clblastCalls = Double(k.clblastCalls)
            c.blockingCalls = Double(k.blockingCalls)
        }
        return c
    }

    /// (self - earlier) / steps: the average per step between two snapshots.
    package func perStep(since earlier: DeviceWorkCounts, steps: Int) -> DeviceWorkCounts {
        let n = Double(max(steps, 1))
        func d(_ a: Double?, _ b: Double?) -> Double? { a.flatMap { a in b.map { (a - $0) / n } } }
        return DeviceWorkCounts(kernelLaunches: d(kernelLaunches, earlier.kernelLaunches),
                                clblastCalls: d(clblastCalls, earlier.clblastCalls),
                                blockingCalls: d(blockingCalls, earlier.blockingCalls),
                                hostToDeviceBytes: (hostToDeviceBytes - earlier.hostToDeviceBytes) / n,
                                deviceToHostBytes: (deviceToHostBytes - earlier.deviceToHostBytes) / n)
    }

    /// e.g. `kernel launches 59, CLBlast calls 11, blocking calls 2, host->device 1.57 MB, device->host 0 B`.
    package var summary: String {
        func f(_ v: Double?) -> String {
            guard let v else { return "n/a" }
            return v == v.rounded() ? String(Int(v)) : String(format: "%.2f", v)
        }
        func bytes(_ v: Double) -> String {
            v >= 1e6 ? String(format: "%.2f MB", v / 1e6) : v >= 1e3 ? String(format: "%.1f kB", v / 1e3) : "\(f(v)) B"
        }
        return "kernel launches \(f(kernelLaunches)), CLBlast calls \(f(clblastCalls)), blocking calls \(f(blockingCalls)), "
            + "host->device \(bytes(hostToDeviceBytes)), device->host \(bytes(deviceToHostBytes))"
    }
}
