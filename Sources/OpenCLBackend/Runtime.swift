import CNNCore
import COpenCL
import Foundation
import Kernels

/// The kernel files, one OpenCL program each (`common.cl` + the family's file).
package enum KernelFamily: String, CaseIterable, Sendable {
    case conv, pooling, batchnorm, elementwise, loss, optimizers, reductions, augment
    case lightweight

    var source: String {
        let body: String
        switch self {
        case .conv: body = KernelSource.conv
        case .pooling: body = KernelSource.pooling
        case .batchnorm: body = KernelSource.batchnorm
        case .elementwise: body = KernelSource.elementwise
        case .loss: body = KernelSource.loss
        case .optimizers: body = KernelSource.optimizers
        case .reductions: body = KernelSource.reductions
        case .augment: body = KernelSource.augment
        case .lightweight: body = KernelSource.lightweight
        }
        // #line keeps build-log line numbers pointing into the family's own file.
        return "#line 1 \"common.cl\"\n" + KernelSource.common + "\n#line 1 \"\(rawValue).cl\"\n" + body
    }
}

/// What one process shares per OpenCL device: the context and the compiled programs.
///
/// Programs are compiled (or loaded from the disk cache) once per process and family, on first use.
/// Every `OpenCLBackend` on the same device shares the context — so CLBlast's in-process kernel
/// cache (keyed by context) is reused too — but has its own queue, kernels and buffer pool.
final class DeviceRuntime: @unchecked Sendable {
    let info: OpenCLDeviceInfo
    let platform: cl_platform_id?
    let device: cl_device_id?
    let context: cl_context?
    /// Work-group size of the local-memory reductions (`-D WG_SIZE`): a power of two <= 256 that
    /// the device allows.
    let reduceWorkGroupSize: Int

    private let lock = NSLock()
    private var programs: [KernelFamily: cl_program] = [:]
    /// Tuned 1-D work-group sizes by kernel name (WorkGroupTuner.swift), for every backend on the device.
    private var tunedLocalSizes: [String: Int] = [:]

    private static let registryLock = NSLock()
    nonisolated(unsafe) private static var registry: [String: DeviceRuntime] = [:]

    /// The process-wide runtime of `info`'s device (created on first use, kept for the process).
    static func shared(for info: OpenCLDeviceInfo) throws -> DeviceRuntime {
        registryLock.lock()
        defer { registryLock.unlock() }
        if let rt = registry[info.selector] { return rt }
        let rt = try DeviceRuntime(info: info)
        registry[info.selector] = rt
        return rt
    }

    private init(info requested: OpenCLDeviceInfo) throws {
        let (platform, device) = try OpenCLDiscovery.handles(platformIndex: requested.platformIndex,
                                                              deviceIndex: requested.deviceIndex)
        // Re-describe: the caller's copy may be stale or hand-made.
        let info = OpenCLDiscovery.describe(platform: platform, device: device,
                                            platformIndex: requested.platformIndex, deviceIndex: requested.deviceIndex)
        self.info = info
        self.platform = platform
        self.device = device
        var status: cl_int = 0
        var dev = device
        var properties: [cl_context_properties] = [
            cl_context_properties(CL_CONTEXT_PLATFORM), Int(bitPattern: platform), 0,
        ]
        context = clCreateContext(&properties, 1, &dev, nil, nil, &status)
        try clCheck(status, "clCreateContext(\(info.name))")
        var wg = 1
        while wg * 2 <= min(256, max(info.maxWorkGroupSize, 1)) { wg *= 2 }
        reduceWorkGroupSize = wg
    }

    /// Build options of a family: the language version and the tunables' values.
    func buildOptions(_ family: KernelFamily) -> String {
        let base = "-cl-std=CL1.2 -D WG_SIZE=\(reduceWorkGroupSize)"
        // augment.cl divides as the host pipeline does (bilinear rotation): correctly rounded
        // where the device offers it (otherwise OpenCL allows 2.5 ulp).
        if family == .augment, correctlyRoundedDivide { return base + " -cl-fp32-correctly-rounded-divide-sqrt" }
        return base
    }

    /// CL_DEVICE_SINGLE_FP_CONFIG has CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT.
    var correctlyRoundedDivide: Bool {
        var config: cl_device_fp_config = 0
        guard clGetDeviceInfo(device, cl_device_info(CL_DEVICE_SINGLE_FP_CONFIG), MemoryLayout.size(ofValue: config), &config, nil) == CL_SUCCESS
        else { return false }
        return config & cl_device_fp_config(CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT) != 0
    }

    /// The tuned work-group size of kernel `name` (nil: the kernel's `local1D`).
    func tunedLocalSize(_ name: String) -> Int? {
        lock.lock(); defer { lock.unlock() }
        return tunedLocalSizes[name]
    }
    func setTunedLocalSizes(_ sizes: [String: Int]) {
        lock.lock(); tunedLocalSizes = sizes; lock.unlock()
    }

    /// The family's program, compiled or loaded from the disk cache on first use.
    func program(_ family: KernelFamily) throws -> cl_program {
        lock.lock()
        defer { lock.unlock() }
        if let p = programs[family] { return p }
        guard let p = try buildProgram(context: context, device: device, info: info, source: family.source,
                                       options: buildOptions(family), label: family.rawValue).program
        else { throw CNNError.device("OpenCL: building program '\(family.rawValue)' returned no program") }
        programs[family] = p
        return p
    }
}

/// A kernel object of one backend, with the launch limits the driver reports for it.
final class Kernel {
    let name: String
    let handle: cl_kernel?
    /// CL_KERNEL_WORK_GROUP_SIZE and CL_KERNEL_PREFERRED_WORK_GROUP_SIZE_MULTIPLE.
    let maxWorkGroupSize: Int
    let preferredMultiple: Int

    init(program: cl_program, name: String, device: cl_device_id?) throws {
        var status: cl_int = 0
        handle = clCreateKernel(program, name, &status)
        try clCheck(status, "clCreateKernel(\(name))")
        self.name = name
        // Both queries are checked: a failed one used to leave 0, which became work-groups of 1.
        var maxWG = 0
        var multiple = 0
        try clCheck(clGetKernelWorkGroupInfo(handle, device, cl_kernel_work_group_info(CL_KERNEL_WORK_GROUP_SIZE),
                                             MemoryLayout<Int>.size, &maxWG, nil),
                    "clGetKernelWorkGroupInfo(\(name), CL_KERNEL_WORK_GROUP_SIZE)")
        try clCheck(clGetKernelWorkGroupInfo(handle, device,
                                             cl_kernel_work_group_info(CL_KERNEL_PREFERRED_WORK_GROUP_SIZE_MULTIPLE),
                                             MemoryLayout<Int>.size, &multiple, nil),
                    "clGetKernelWorkGroupInfo(\(name), CL_KERNEL_PREFERRED_WORK_GROUP_SIZE_MULTIPLE)")
        try require(maxWG >= 1 && multiple >= 1,
                    "OpenCL: the driver reports a work-group size of \(maxWG) (preferred multiple \(multiple)) for kernel \(name)")
        maxWorkGroupSize = maxWG
        preferredMultiple = multiple
    }

    /// Local size of a 1-D launch: about 256 work-items, a multiple of the preferred multiple.
    var local1D: Int {
        let cap = min(256, maxWorkGroupSize)
        return cap >= preferredMultiple ? (cap / preferredMultiple) * preferredMultiple : cap
    }

    /// The work-group size the tuner chose for this kernel on this device (WorkGroupTuner.swift);
    /// nil: `local1D`. Only for kernels whose result does not depend on the local size.
    var tunedLocal: Int?
    /// Dimension 0 of the local size of a `launchTunable` launch (clipped to the kernel's limit).
    var launchLocal: Int { tunedLocal.map { max(1, min($0, maxWorkGroupSize)) } ?? local1D }
    /// The local size of this kernel's last `launchTunable` launch (tests check the tuned one is used).
    var lastLocal: [Int]?

    deinit { if let handle { clReleaseKernel(handle) } }
}

/// One kernel argument. A tensor expands to two arguments: its buffer and its element offset.
enum KernelArg {
    case tensor(Tensor)
    /// A tensor that may be absent: a NULL buffer and offset 0 (the kernel takes a flag too).
    case optional(Tensor?)
    case int(Int)
    case uint(UInt32)
    case float(Float)
    /// `__local` memory of this many bytes.
    case local(Int)
}

extension OpenCLBackend {
    /// Compiles `source` for this backend's device through the same path as the kernel families
    /// (disk cache, build log on failure) and releases it: for tests and for checking a kernel edit.
    func compileProgram(source: String, options: String = "-cl-std=CL1.2", label: String,
                        useCache: Bool = true, cacheRoot: URL? = nil) throws -> ProgramOrigin {
        let built = try buildProgram(context: runtime.context, device: runtime.device, info: deviceInfo, source: source,
                                     options: options, label: label, useCache: useCache, cacheRoot: cacheRoot)
        if let p = built.program { clReleaseProgram(p) }
        return built.origin
    }
}
