import CNNCore
import CPUBackend
import Foundation
@testable import OpenCLBackend
import Testing
import Verification

/// The OpenCL device the tests run on (PoCL's CPU device on CI), or nil on a machine without
/// OpenCL — then every test that needs it is skipped, not failed.
enum OCL {
    static let device: OpenCLDeviceInfo? = {
        if case let .opencl(dev, _)? = try? selectDevice(.opencl, inventory: OpenCLDiscovery.inventory()) { return dev }
        return nil
    }()
    static var available: Bool { device != nil }

    static func backend() throws -> OpenCLBackend {
        try OpenCLBackend(device: #require(device, "no OpenCL device"))
    }
    /// The spec every kernel is compared with.
    static func reference() -> CPUBackend { CPUBackend(reference: true) }
}

/// Runs `c` on a fresh OpenCL backend and on the CPU reference and expects every output within
/// its tolerance; a failure names the case, the output and the worst element.
func expectParity(_ c: VerifyCase, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let device = try OCL.backend()
    let expected = try c.run(OCL.reference())
    let got = try c.run(device)
    for ref in expected {
        let out = try #require(got.first { $0.name == ref.name }, "\(c): the device returned no '\(ref.name)'")
        let cmp = compare(out.values, ref.values, ref.tolerance)
        #expect(cmp.passed, "\(c) \(ref.name) [\(ref.tolerance)]: \(cmp)", sourceLocation: sourceLocation)
    }
}

/// Model layer shapes in the parity tests use a small odd batch (the same layers, seconds not minutes
/// on the debug-built reference); `cnn verify` runs them at batch 64.
let parityModelBatch = 3

/// A fresh empty folder under the temporary directory.
func temporaryDirectory(_ label: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("swiftcnn-\(label)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}
