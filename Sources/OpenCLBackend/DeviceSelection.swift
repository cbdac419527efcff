import CNNCore

/// The device a request resolved to, with one human-readable line saying why.
/// The caller constructs the backend: `CPUBackend()` for `.cpu`, `OpenCLBackend(device:)` for `.opencl`.
package enum DeviceChoice: Sendable, CustomStringConvertible {
    case cpu(reason: String)
    case opencl(OpenCLDeviceInfo, reason: String)

    package var reason: String {
        switch self {
        case let .cpu(r): return r
        case let .opencl(_, r): return r
        }
    }
    package var description: String { reason }
}

/// Resolves `--device` on this machine. `auto` never fails: it takes the best GPU, else an
/// OpenCL accelerator, else the CPU backend (an OpenCL CPU driver such as PoCL is not preferred
/// over the Swift CPU backend), saying which and why. `opencl` and `opencl:P:D` throw a clear
/// error when no such OpenCL device exists.
package func selectDevice(_ spec: String) throws -> DeviceChoice {
    try selectDevice(try DeviceRequest.parse(spec))
}

/// `selectDevice` for a parsed request, on this machine's OpenCL inventory.
package func selectDevice(_ request: DeviceRequest) throws -> DeviceChoice {
    // --device cpu never touches OpenCL: loading a driver (PoCL brings LLVM) would cost ~50 MB of
    // memory and a second of start-up for nothing.
    if case .cpu = request { return try selectDevice(request, inventory: OpenCLInventory(devices: [], noPlatformReason: nil, problems: [])) }
    return try selectDevice(request, inventory: OpenCLDiscovery.inventory())
}

/// The same decision over a given inventory (tests pass made-up inventories).
package func selectDevice(_ request: DeviceRequest, inventory: OpenCLInventory) throws -> DeviceChoice {
    let devices = inventory.devices
    switch request {
    case .cpu:
        return .cpu(reason: "device cpu: the Swift CPU backend, as requested")

    case .auto:
        if let reason = inventory.noPlatformReason {
            return .cpu(reason: "device auto: \(reason) — using the Swift CPU backend")
        }
        // A simulator (Oclgrind) calls itself a GPU; like an OpenCL CPU driver, it is never auto's choice.
        let hardware = devices.filter { !$0.isSimulator }
        if let gpu = best(hardware.filter { $0.type == .gpu }) {
            let n = hardware.filter { $0.type == .gpu }.count
            return .opencl(gpu, reason: "device auto: OpenCL GPU \(gpu.name) (\(gpu.selector), \(gpu.computeUnits) compute units"
                           + (n > 1 ? ", the largest of \(n) GPUs)" : ")"))
        }
        if let acc = best(hardware.filter { $0.type == .accelerator || $0.type == .custom }) {
            return .opencl(acc, reason: "device auto: no OpenCL GPU; using the OpenCL accelerator \(acc.name) (\(acc.selector))")
        }
        if devices.isEmpty {
            return .cpu(reason: "device auto: OpenCL platforms exist but expose no device — using the Swift CPU backend")
        }
        let found = devices.map {
            "\($0.name) [\($0.isSimulator ? "simulator" : $0.type.rawValue.uppercased()), \($0.platformName)]"
        }.joined(separator: "; ")
        return .cpu(reason: "device auto: no OpenCL GPU or accelerator (found only \(found)) — using the Swift CPU backend; "
                    + "pass --device opencl to run on \(devices.count == 1 ? "it" : "the best of them") anyway")

    case .opencl:
        if let reason = inventory.noPlatformReason {
            throw CNNError.unsupported("--device opencl: \(reason). Install an OpenCL driver (an ICD file under "
                                       + "/etc/OpenCL/vendors, or point OCL_ICD_VENDORS at one), or use --device auto or --device cpu.")
        }
        guard let dev = best(devices) else {
            throw CNNError.unsupported("--device opencl: the OpenCL platforms expose no device"
                                       + (inventory.problems.isEmpty ? "" : " (\(inventory.problems.joined(separator: "; ")))")
                                       + ". Use --device auto or --device cpu.")
        }
        return .opencl(dev, reason: "device opencl: \(dev.name) [\(dev.type.rawValue.uppercased())] (\(dev.selector)), "
                       + "the best of \(devices.count) OpenCL device\(devices.count == 1 ? "" : "s")")

    case let .openclDevice(p, d):
        if let reason = inventory.noPlatformReason {
            throw CNNError.unsupported("--device opencl:\(p):\(d): \(reason). Install an OpenCL driver, or use --device auto "
                                       + "or --device cpu.")
        }
        guard let dev = devices.first(where: { $0.platformIndex == p && $0.deviceIndex == d }) else {
            let list = devices.map { "\($0.selector) \($0.name)" }.joined(separator: ", ")
            throw CNNError.invalidArgument("--device opencl:\(p):\(d): no such OpenCL device; this machine has: "
                                           + (list.isEmpty ? "none" : list))
        }
        return .opencl(dev, reason: "device opencl:\(p):\(d): \(dev.name) [\(dev.type.rawValue.uppercased())], as requested")
    }
}

/// GPU before accelerator before CPU before a simulator; then more compute units x clock; then more
/// memory; then the lowest index (a stable choice).
private func best(_ devices: [OpenCLDeviceInfo]) -> OpenCLDeviceInfo? {
    devices.max { a, b in
        let ka = (a.isSimulator ? 0 : a.type.preference, a.computeUnits * max(a.maxClockMHz, 1), a.globalMemoryBytes, -a.platformIndex, -a.deviceIndex)
        let kb = (b.isSimulator ? 0 : b.type.preference, b.computeUnits * max(b.maxClockMHz, 1), b.globalMemoryBytes, -b.platformIndex, -b.deviceIndex)
        return ka < kb
    }
}
