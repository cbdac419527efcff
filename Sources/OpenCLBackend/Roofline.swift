import CNNCore
import COpenCL
import Foundation

/// One device command's work, logged while `profiling` is on (the roofline view: cnn-bench --roofline).
/// bytes: every tensor argument's size, i.e. each tensor read or written once (the compulsory
/// traffic; a kernel that reads a tensor twice moves more unless a cache holds it). flops: exact
/// for GEMMs (2*m*n*k); 0 for every other kernel, which does a few operations per element and is
/// memory-bound by construction (far below any GPU's FLOP/byte ridge point).
package struct KernelWork: Sendable, Equatable {
    package var name: String
    package var bytes: Double
    package var flops: Double
}

/// A device's measured copy bandwidth and FMA rate (`OpenCLBackend.measuredRates`).
package struct DeviceRates: Codable, Sendable, Equatable {
    /// Bytes per second of a device-to-device copy kernel (read + write counted).
    package var bandwidth: Double
    /// FP32 operations per second of a kernel of independent FMA chains (an FMA is 2).
    package var flops: Double
    /// The device and driver the rates were measured on.
    package var device: String
}

extension OpenCLBackend {
    /// Logs a command's work when profiling (the names match `deviceTimeByKernel`).
    func logWork(_ name: String, bytes: Double, flops: Double = 0) {
        guard profiling else { return }
        workLog.append(KernelWork(name: name, bytes: bytes, flops: flops))
    }

    /// Clears the profile (device time per kernel and the work log), e.g. after warm-up steps.
    package func resetProfile() throws {
        try synchronize()
        profiling = false   // drains pending events
        deviceTimeNanoseconds = 0
        deviceTimeByKernel = [:]
        workLog = []
    }

    static let rooflineSource = """
    __kernel void rooflineCopy(__global const float4* a, int aOff, __global float4* b, int bOff, int n) {
        int i = get_global_id(0);
        if (i < n) b[i] = a[i];
    }
    // 8 independent FMA chains per work-item, `iters` rounds: 16 * iters FLOPs per work-item.
    __kernel void rooflineFMA(__global float* out, int outOff, float a, float b, int iters) {
        float x0 = get_global_id(0) * 1e-7f, x1 = x0 + 1, x2 = x0 + 2, x3 = x0 + 3;
        float x4 = x0 + 4, x5 = x0 + 5, x6 = x0 + 6, x7 = x0 + 7;
        for (int i = 0; i < iters; i++) {
            x0 = fma(x0, a, b); x1 = fma(x1, a, b); x2 = fma(x2, a, b); x3 = fma(x3, a, b);
            x4 = fma(x4, a, b); x5 = fma(x5, a, b); x6 = fma(x6, a, b); x7 = fma(x7, a, b);
        }
        out[outOff + get_global_id(0)] = x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7;
    }
    """

    /// Copy bandwidth and FMA rate of this device: two micro-kernels, run once per device and
    /// driver and cached on disk (`<cache>/rates/`, next to the program cache), best of 5 runs each.
    package func measuredRates(cacheRoot: URL? = nil) throws -> DeviceRates {
        let id = "\(deviceInfo.name) | \(deviceInfo.driverVersion) | \(deviceInfo.platformName)"
        let key = ProgramCache.key(device: deviceInfo, source: Self.rooflineSource, options: "rates")
        let dir = (cacheRoot ?? ProgramCache.directory).appendingPathComponent("rates", isDirectory: true)
        let url = dir.appendingPathComponent("\(key).json")
        if let data = try? Data(contentsOf: url), let r = try? JSONDecoder().decode(DeviceRates.self, from: data), r.device == id {
            return r
        }
        let b = try OpenCLBackend(device: deviceInfo)
        let built = try buildProgram(context: runtime.context, device: runtime.device, info: deviceInfo, source: Self.rooflineSource,
                                     options: "-cl-std=CL1.2", label: "roofline", cacheRoot: cacheRoot)
        guard let program = built.program else { throw CNNError.device("OpenCL: the roofline micro-kernels did not build") }
        defer { clReleaseProgram(program) }
        let copy = try Kernel(program: program, name: "rooflineCopy", device: runtime.device)
        let fma = try Kernel(program: program, name: "rooflineFMA", device: runtime.device)
        func best(_ name: String, _ run: () throws -> Void) throws -> Double {
            try run()   // warm-up
            try b.synchronize()
            var t = Double.infinity
            for _ in 0..<5 {
                try b.resetProfile()
                b.profiling = true
                try run()
                try b.synchronize()
                b.profiling = false
                t = min(t, Double(b.deviceTimeByKernel[name] ?? 0) / 1e9)
            }
            guard t > 0, t.isFinite else { throw CNNError.device("OpenCL: no profiling time for \(name) on \(deviceInfo.name)") }
            return t
        }
        // Copy: 32 MiB each way (less where the device allows less).
        let maxAlloc = deviceInfo.maxAllocationBytes == 0 ? UInt64(1 << 30) : deviceInfo.maxAllocationBytes
        let floats = Int(min(UInt64(8 << 20), maxAlloc / 4)) / 4 * 4
        let src = try b.makeTensor([floats]), dst = try b.makeTensor([floats])
        let vec = floats / 4
        let copySeconds = try best("rooflineCopy") {
            try b.launch(copy, global: [vec], local: [min(copy.maxWorkGroupSize, 256)], [.tensor(src), .tensor(dst), .int(vec)])
        }
        // FMA: enough work-items for every compute unit, 16 * iters FLOPs each.
        let items = max(deviceInfo.computeUnits, 1) * 2048, iters = 2048
        let out = try b.makeTensor([items])
        let fmaSeconds = try best("rooflineFMA") {
            try b.launch(fma, global: [items], local: [min(fma.maxWorkGroupSize, 256)], [.tensor(out), .float(0.999), .float(1e-3), .int(iters)])
        }
        let rates = DeviceRates(bandwidth: Double(2 * floats * 4) / copySeconds,
                                flops: Double(items) * 16 * Double(iters) / fmaSeconds, device: id)
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        if let data = try? JSONEncoder().encode(rates) { try? AtomicFile.write(data, to: url) }
        return rates
    }
}
