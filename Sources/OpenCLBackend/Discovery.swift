import CNNCore
import COpenCL

/// One OpenCL device as the driver describes it. Plain values (no OpenCL handles), so it can be
/// printed, stored in benchmark JSON and passed between threads; `OpenCLBackend(device:)`
/// resolves (platformIndex, deviceIndex) back to the handles.
public struct OpenCLDeviceInfo: Sendable, Codable, Hashable, CustomStringConvertible {
    public enum DeviceType: String, Sendable, Codable, Hashable {
        case gpu, cpu, accelerator, custom, other
        /// Ranking used by `auto`: GPU first, then accelerators, then everything else.
        var preference: Int {
            switch self {
            case .gpu: return 3
            case .accelerator, .custom: return 2
            case .cpu, .other: return 1
            }
        }
    }

    /// Position of the platform in clGetPlatformIDs' list and of the device in its platform's list
    /// (the P and D of `--device opencl:P:D`).
    public var platformIndex: Int
    public var deviceIndex: Int
    public var platformName: String
    public var platformVendor: String
    public var platformVersion: String
    public var name: String
    public var vendor: String
    /// CL_DRIVER_VERSION (part of the program-cache key).
    public var driverVersion: String
    /// CL_DEVICE_VERSION, e.g. "OpenCL 3.0 CUDA".
    public var deviceVersion: String
    public var type: DeviceType
    public var computeUnits: Int
    public var maxClockMHz: Int
    public var globalMemoryBytes: UInt64
    public var maxAllocationBytes: UInt64
    public var localMemoryBytes: UInt64
    public var maxWorkGroupSize: Int
    /// CL_DEVICE_PREFERRED_WORK_GROUP_SIZE_MULTIPLE (OpenCL 3.0 devices); nil before 3.0, where the
    /// backend asks a compiled kernel instead (CL_KERNEL_PREFERRED_WORK_GROUP_SIZE_MULTIPLE).
    public var preferredWorkGroupMultiple: Int?
    public var supportsFP16: Bool
    public var supportsFP64: Bool

    /// "opencl:0:1".
    public var selector: String { "opencl:\(platformIndex):\(deviceIndex)" }
    /// A simulator such as Oclgrind: it reports itself as a GPU, but runs kernels in an interpreter
    /// (correctness checks, not speed), so `auto` never picks it.
    public var isSimulator: Bool { name.contains("Oclgrind") || platformName.contains("Oclgrind") }

    public var description: String {
        let gib = Double(globalMemoryBytes) / Double(1 << 30)
        return "\(selector) \(name) [\(type.rawValue.uppercased()), \(platformName), driver \(driverVersion), "
            + "\(computeUnits) CUs, \(String(format1: gib)) GiB]"
    }

    /// The fields as strings, for `DeviceInfo.details` and benchmark JSON.
    public var details: [String: String] {
        [
            "selector": selector, "platform": platformName, "platformVendor": platformVendor,
            "platformVersion": platformVersion, "vendor": vendor, "driverVersion": driverVersion,
            "deviceVersion": deviceVersion, "type": type.rawValue, "computeUnits": String(computeUnits),
            "maxClockMHz": String(maxClockMHz), "globalMemoryBytes": String(globalMemoryBytes),
            "maxAllocationBytes": String(maxAllocationBytes), "localMemoryBytes": String(localMemoryBytes),
            "maxWorkGroupSize": String(maxWorkGroupSize),
            "preferredWorkGroupMultiple": preferredWorkGroupMultiple.map(String.init) ?? "per kernel",
            "fp16": String(supportsFP16), "fp64": String(supportsFP64),
        ]
    }
}

extension String {
    /// One decimal place, without Foundation's String(format:).
    init(format1 x: Double) {
        let tenths = Int((x * 10).rounded())
        self = "\(tenths / 10).\(abs(tenths % 10))"
    }
}

/// What clGetPlatformIDs found: the devices of every platform, or why there are none.
public struct OpenCLInventory: Sendable {
    public var devices: [OpenCLDeviceInfo]
    /// Set when no OpenCL platform exists (CL_PLATFORM_NOT_FOUND_KHR, or zero platforms) — a normal
    /// case on machines without a driver, not an error.
    public var noPlatformReason: String?
    /// Platforms or devices that could not be queried (listed, not fatal).
    public var problems: [String]
}

/// Platform and device discovery.
public enum OpenCLDiscovery {
    /// Every device of every platform. Never throws: a missing platform or a failing query is
    /// reported in the inventory so device selection can fall back with a reason.
    public static func inventory() -> OpenCLInventory {
        var inv = OpenCLInventory(devices: [], noPlatformReason: nil, problems: [])
        let platforms: [cl_platform_id?]
        do {
            platforms = try platformIDs()
        } catch let e as CNNError {
            inv.noPlatformReason = e.message
            return inv
        } catch {
            inv.noPlatformReason = "\(error)"
            return inv
        }
        if platforms.isEmpty {
            inv.noPlatformReason = "no OpenCL platform found (clGetPlatformIDs reports 0 platforms)"
            return inv
        }
        for (p, platform) in platforms.enumerated() {
            var count: cl_uint = 0
            let st = clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), 0, nil, &count)
            if st == CL_DEVICE_NOT_FOUND || count == 0 { continue }
            if st != CL_SUCCESS {
                inv.problems.append("platform \(p): clGetDeviceIDs failed: \(CLStatus.describe(st))")
                continue
            }
            var ids = [cl_device_id?](repeating: nil, count: Int(count))
            guard clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), count, &ids, nil) == CL_SUCCESS else {
                inv.problems.append("platform \(p): clGetDeviceIDs failed on the second call")
                continue
            }
            for (d, id) in ids.enumerated() {
                inv.devices.append(describe(platform: platform, device: id, platformIndex: p, deviceIndex: d))
            }
        }
        return inv
    }

    /// clGetPlatformIDs; -1001 (no ICD installed) and 0 platforms both mean "none".
    static func platformIDs() throws -> [cl_platform_id?] {
        var count: cl_uint = 0
        let st = clGetPlatformIDs(0, nil, &count)
        if st == -1001 || (st == CL_SUCCESS && count == 0) {
            throw CNNError.unsupported("no OpenCL platform found (clGetPlatformIDs: \(CLStatus.name(st)) (\(st)))")
        }
        try clCheck(st, "clGetPlatformIDs")
        var ids = [cl_platform_id?](repeating: nil, count: Int(count))
        try clCheck(clGetPlatformIDs(count, &ids, nil), "clGetPlatformIDs")
        return ids
    }

    /// The OpenCL handles behind a (platform, device) index pair.
    static func handles(platformIndex: Int, deviceIndex: Int) throws -> (cl_platform_id?, cl_device_id?) {
        let platforms = try platformIDs()
        guard platforms.indices.contains(platformIndex) else {
            throw CNNError.invalidArgument("OpenCL platform \(platformIndex) does not exist: there are \(platforms.count) "
                                           + "(see `cnn devices`)")
        }
        let platform = platforms[platformIndex]
        var count: cl_uint = 0
        let st = clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), 0, nil, &count)
        if st != CL_DEVICE_NOT_FOUND { try clCheck(st, "clGetDeviceIDs(platform \(platformIndex))") }
        guard deviceIndex >= 0 && deviceIndex < Int(count) else {
            throw CNNError.invalidArgument("OpenCL device \(deviceIndex) does not exist on platform \(platformIndex): "
                                           + "it has \(count) (see `cnn devices`)")
        }
        var ids = [cl_device_id?](repeating: nil, count: Int(count))
        try clCheck(clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), count, &ids, nil), "clGetDeviceIDs")
        return (platform, ids[deviceIndex])
    }

    static func describe(platform: cl_platform_id?, device: cl_device_id?, platformIndex: Int, deviceIndex: Int) -> OpenCLDeviceInfo {
        let typeBits = deviceValue(device, CL_DEVICE_TYPE, as: cl_device_type.self) ?? 0
        let type: OpenCLDeviceInfo.DeviceType
        if typeBits & cl_device_type(CL_DEVICE_TYPE_GPU) != 0 { type = .gpu }
        else if typeBits & cl_device_type(CL_DEVICE_TYPE_ACCELERATOR) != 0 { type = .accelerator }
        else if typeBits & cl_device_type(CL_DEVICE_TYPE_CUSTOM) != 0 { type = .custom }
        else if typeBits & cl_device_type(CL_DEVICE_TYPE_CPU) != 0 { type = .cpu }
        else { type = .other }
        let extensions = deviceString(device, CL_DEVICE_EXTENSIONS)
        let version = deviceString(device, CL_DEVICE_VERSION)
        // Queries that a device may answer only with an extension or a version: asking anyway is an
        // API error (CL_INVALID_VALUE) that Oclgrind's --check-api reports.
        let fp16 = extensions.contains("cl_khr_fp16")
        let halfConfig = fp16 ? deviceValue(device, 0x1033 /* CL_DEVICE_HALF_FP_CONFIG */, as: cl_device_fp_config.self) ?? 0 : 0
        let doubleConfig = deviceValue(device, CL_DEVICE_DOUBLE_FP_CONFIG, as: cl_device_fp_config.self) ?? 0
        // CL_DEVICE_PREFERRED_WORK_GROUP_SIZE_MULTIPLE (0x1067) exists from OpenCL 3.0 on.
        let preferred = openCLMajorVersion(version) >= 3
            ? deviceValue(device, 0x1067, as: Int.self).flatMap { $0 > 0 ? $0 : nil } : nil
        return OpenCLDeviceInfo(
            platformIndex: platformIndex, deviceIndex: deviceIndex,
            platformName: platformString(platform, CL_PLATFORM_NAME),
            platformVendor: platformString(platform, CL_PLATFORM_VENDOR),
            platformVersion: platformString(platform, CL_PLATFORM_VERSION),
            name: deviceString(device, CL_DEVICE_NAME),
            vendor: deviceString(device, CL_DEVICE_VENDOR),
            driverVersion: deviceString(device, CL_DRIVER_VERSION),
            deviceVersion: version,
            type: type,
            computeUnits: Int(deviceValue(device, CL_DEVICE_MAX_COMPUTE_UNITS, as: cl_uint.self) ?? 0),
            maxClockMHz: Int(deviceValue(device, CL_DEVICE_MAX_CLOCK_FREQUENCY, as: cl_uint.self) ?? 0),
            globalMemoryBytes: deviceValue(device, CL_DEVICE_GLOBAL_MEM_SIZE, as: cl_ulong.self) ?? 0,
            maxAllocationBytes: deviceValue(device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, as: cl_ulong.self) ?? 0,
            localMemoryBytes: deviceValue(device, CL_DEVICE_LOCAL_MEM_SIZE, as: cl_ulong.self) ?? 0,
            maxWorkGroupSize: deviceValue(device, CL_DEVICE_MAX_WORK_GROUP_SIZE, as: Int.self) ?? 1,
            preferredWorkGroupMultiple: preferred,
            supportsFP16: halfConfig != 0 || fp16,
            supportsFP64: doubleConfig != 0 || extensions.contains("cl_khr_fp64"))
    }

    /// X of "OpenCL X.Y ..." (CL_DEVICE_VERSION's required form), 0 when it does not parse.
    static func openCLMajorVersion(_ version: String) -> Int {
        let parts = version.split(separator: " ")
        guard parts.count >= 2, parts[0] == "OpenCL", let major = parts[1].split(separator: ".").first else { return 0 }
        return Int(major) ?? 0
    }

    static func deviceString(_ device: cl_device_id?, _ param: Int32) -> String {
        var size = 0
        guard clGetDeviceInfo(device, cl_device_info(param), 0, nil, &size) == CL_SUCCESS, size > 0 else { return "" }
        var bytes = [CChar](repeating: 0, count: size + 1)
        guard clGetDeviceInfo(device, cl_device_info(param), size, &bytes, nil) == CL_SUCCESS else { return "" }
        return trimmed(bytes)
    }

    static func platformString(_ platform: cl_platform_id?, _ param: Int32) -> String {
        var size = 0
        guard clGetPlatformInfo(platform, cl_platform_info(param), 0, nil, &size) == CL_SUCCESS, size > 0 else { return "" }
        var bytes = [CChar](repeating: 0, count: size + 1)
        guard clGetPlatformInfo(platform, cl_platform_info(param), size, &bytes, nil) == CL_SUCCESS else { return "" }
        return trimmed(bytes)
    }

    static func deviceValue<T: FixedWidthInteger>(_ device: cl_device_id?, _ param: Int32, as: T.Type) -> T? {
        var value: T = 0
        let st = clGetDeviceInfo(device, cl_device_info(param), MemoryLayout<T>.size, &value, nil)
        return st == CL_SUCCESS ? value : nil
    }

    static func trimmed(_ bytes: [CChar]) -> String {
        let utf8 = bytes.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: utf8, as: UTF8.self).trimmingCharacters()
    }
}

extension String {
    /// Drops leading and trailing spaces/newlines (driver strings often carry them).
    func trimmingCharacters() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\n" || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\n" || l == "\t" { s.removeLast() }
        return String(s)
    }
}
