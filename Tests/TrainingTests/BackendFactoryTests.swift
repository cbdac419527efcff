import Testing
import SwiftCNN

/// `makeBackend` (the umbrella module) and the backends' memory reports.
@Suite struct BackendFactoryTests {
    @Test func cpuRequestMakesTheCPUBackend() throws {
        let (backend, reason) = try makeBackend(.cpu)
        #expect(backend is CPUBackend && reason.contains("cpu"))
        let report = backend.memoryReport
        #expect(report.tensorBytes != nil && report.scratchBytes != nil)
        #expect(try makeBackend("cpu").backend is CPUBackend)
        let error = #expect(throws: CNNError.self) { try makeBackend("gpu") }
        #expect(error?.message.contains("opencl:P:D") == true)
    }

    @Test func deviceRequestTextRoundTrips() throws {
        for r: DeviceRequest in [.auto, .cpu, .opencl, .openclDevice(platform: 1, device: 2)] {
            #expect(DeviceRequest(r.description) == r)
        }
        #expect(DeviceRequest("gpu") == nil)
    }
}
