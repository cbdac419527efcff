import CNNCore
@testable import OpenCLBackend
import Testing

/// `--device` parsing and the auto / opencl / opencl:P:D decisions, over made-up inventories
/// (no OpenCL needed) and over this machine's real one.
@Suite struct DeviceSelectionTests {
    static func device(_ p: Int, _ d: Int, _ type: OpenCLDeviceInfo.DeviceType, cus: Int = 8, name: String? = nil) -> OpenCLDeviceInfo {
        OpenCLDeviceInfo(platformIndex: p, deviceIndex: d, platformName: "Platform \(p)", platformVendor: "V",
                         platformVersion: "OpenCL 3.0", name: name ?? "\(type.rawValue)-\(p)-\(d)", vendor: "V",
                         driverVersion: "1.0", deviceVersion: "OpenCL 3.0", type: type, computeUnits: cus, maxClockMHz: 1000,
                         globalMemoryBytes: 1 << 30, maxAllocationBytes: 1 << 28, localMemoryBytes: 1 << 15,
                         maxWorkGroupSize: 256, preferredWorkGroupMultiple: 32, supportsFP16: false, supportsFP64: true)
    }
    static func inventory(_ devices: [OpenCLDeviceInfo]) -> OpenCLInventory {
        OpenCLInventory(devices: devices, noPlatformReason: nil, problems: [])
    }
    static let noPlatform = OpenCLInventory(devices: [], noPlatformReason: "no OpenCL platform found (clGetPlatformIDs: "
                                            + "CL_PLATFORM_NOT_FOUND_KHR (-1001))", problems: [])

    @Test func parsesEveryForm() throws {
        #expect(try DeviceRequest.parse("auto") == .auto)
        #expect(try DeviceRequest.parse(" CPU ") == .cpu)
        #expect(try DeviceRequest.parse("opencl") == .opencl)
        #expect(try DeviceRequest.parse("opencl:1:2") == .openclDevice(platform: 1, device: 2))
        for bad in ["", "gpu", "opencl:1", "opencl:a:0", "opencl:-1:0", "opencl:0:0:0", "cuda"] {
            let error = #expect(throws: CNNError.self) { try DeviceRequest.parse(bad) }
            #expect(error?.kind == .invalidArgument)
            #expect(error?.message.contains("auto, cpu, opencl or opencl:P:D") == true, "\(bad): \(error?.message ?? "")")
        }
    }

    @Test func autoPrefersTheLargestGPU() throws {
        let inv = Self.inventory([Self.device(0, 0, .cpu, cus: 64), Self.device(1, 0, .gpu, cus: 20), Self.device(1, 1, .gpu, cus: 80)])
        let choice = try selectDevice(.auto, inventory: inv)
        guard case let .opencl(dev, reason) = choice else { Issue.record("expected a GPU, got \(choice)"); return }
        #expect(dev.selector == "opencl:1:1")
        #expect(reason.contains("GPU") && reason.contains("largest of 2"))
    }

    /// Oclgrind reports a GPU; auto must not train on a simulator, --device opencl may choose it
    /// (that is how `scripts/oclgrind-check.sh` runs), and a real device wins over it.
    @Test func autoNeverPicksTheOclgrindSimulator() throws {
        let oclgrind = Self.device(0, 0, .gpu, cus: 1, name: "Oclgrind Simulator")
        guard case let .cpu(reason) = try selectDevice(.auto, inventory: Self.inventory([oclgrind])) else {
            Issue.record("auto chose the simulator"); return
        }
        #expect(reason.contains("Oclgrind Simulator [simulator"), "\(reason)")
        guard case let .opencl(dev, _) = try selectDevice(.opencl, inventory: Self.inventory([oclgrind])) else {
            Issue.record("--device opencl refused the simulator"); return
        }
        #expect(dev.isSimulator)
        let pocl = Self.device(1, 0, .cpu, cus: 2, name: "cpu-pocl")
        guard case let .opencl(real, _) = try selectDevice(.opencl, inventory: Self.inventory([oclgrind, pocl])) else {
            Issue.record("no device"); return
        }
        #expect(real.name == "cpu-pocl")
    }

    @Test func autoTakesAnAcceleratorWhenThereIsNoGPU() throws {
        let inv = Self.inventory([Self.device(0, 0, .cpu), Self.device(0, 1, .accelerator)])
        guard case let .opencl(dev, reason) = try selectDevice(.auto, inventory: inv) else { Issue.record("no accelerator"); return }
        #expect(dev.type == .accelerator)
        #expect(reason.contains("accelerator"))
    }

    @Test func autoFallsBackToTheCPUBackendOverAnOpenCLCPUDevice() throws {
        let inv = Self.inventory([Self.device(0, 0, .cpu, name: "pthread-skylake")])
        guard case let .cpu(reason) = try selectDevice(.auto, inventory: inv) else { Issue.record("PoCL-like CPU device chosen"); return }
        #expect(reason.contains("no OpenCL GPU or accelerator") && reason.contains("pthread-skylake"))
        // ... while `opencl` takes that device.
        guard case let .opencl(dev, _) = try selectDevice(.opencl, inventory: inv) else { Issue.record("opencl refused"); return }
        #expect(dev.name == "pthread-skylake")
    }

    @Test func noPlatformIsANormalCaseForAutoAndAnErrorForOpenCL() throws {
        guard case let .cpu(reason) = try selectDevice(.auto, inventory: Self.noPlatform) else { Issue.record("auto chose OpenCL"); return }
        #expect(reason.contains("no OpenCL platform") && reason.contains("CPU backend"))
        #expect(!reason.contains("\n"), "one line")
        for request in [DeviceRequest.opencl, .openclDevice(platform: 0, device: 0)] {
            let error = #expect(throws: CNNError.self) { try selectDevice(request, inventory: Self.noPlatform) }
            #expect(error?.message.contains("no OpenCL platform") == true)
            #expect(error?.message.contains("--device cpu") == true)
        }
    }

    @Test func explicitIndicesMustExist() throws {
        let inv = Self.inventory([Self.device(0, 0, .gpu), Self.device(0, 1, .cpu)])
        guard case let .opencl(dev, _) = try selectDevice(.openclDevice(platform: 0, device: 1), inventory: inv) else {
            Issue.record("opencl:0:1 refused"); return
        }
        #expect(dev.type == .cpu)
        let error = #expect(throws: CNNError.self) { try selectDevice(.openclDevice(platform: 2, device: 0), inventory: inv) }
        #expect(error?.message.contains("opencl:0:0") == true, "lists the devices that exist")
        guard case .cpu = try selectDevice(.cpu, inventory: inv) else { Issue.record("cpu not honoured"); return }
    }

    /// On this machine: whatever the inventory holds, `auto` picks by the rule.
    @Test func autoOnThisMachineFollowsTheRule() throws {
        let inv = OpenCLDiscovery.inventory()
        let choice = try selectDevice(.auto, inventory: inv)
        print("--device auto on this machine: \(choice.reason)")
        let hasGPUOrAccelerator = inv.devices.contains { $0.type != .cpu && $0.type != .other }
        switch choice {
        case .cpu(let reason):
            #expect(!hasGPUOrAccelerator, "\(reason)")
            #expect(!reason.isEmpty)
        case .opencl(let dev, _):
            #expect(hasGPUOrAccelerator && dev.type != .cpu)
        }
    }

    @Test(.enabled(if: OCL.available, "no OpenCL device"))
    func discoveryDescribesTheDevice() throws {
        let inv = OpenCLDiscovery.inventory()
        #expect(inv.noPlatformReason == nil)
        let dev = try #require(inv.devices.first)
        #expect(!dev.name.isEmpty && !dev.driverVersion.isEmpty && !dev.platformName.isEmpty)
        #expect(dev.computeUnits > 0 && dev.maxWorkGroupSize > 0)
        #expect(dev.globalMemoryBytes > 0 && dev.maxAllocationBytes > 0 && dev.maxAllocationBytes <= dev.globalMemoryBytes)
        #expect(dev.selector == "opencl:\(dev.platformIndex):\(dev.deviceIndex)")
        #expect(dev.details["driverVersion"] == dev.driverVersion)
        let backend = try OpenCLBackend(device: dev)
        #expect(backend.info.kind == .opencl)
        #expect(backend.info.details["computeUnits"] == String(dev.computeUnits))
    }
}
