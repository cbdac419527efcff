import CNNCore
import Foundation
@testable import OpenCLBackend
import Testing
import Verification

/// Device time per kernel for the model-shape cases of the verification suite (batch 64), from
/// profiling events. Diagnostic only, on request:
/// SWIFTCNN_PROFILE=1 swift test -c release -Xswiftc -enable-testing --filter ProfileOnRequest
@Suite(.enabled(if: OCL.available && ProcessInfo.processInfo.environment["SWIFTCNN_PROFILE"] != nil))
struct ProfileOnRequestTests {
    @Test func kernelTimesOfTheModelLayers() throws {
        let b = try OCL.backend()
        let cases = VerifySuite.standard(batch: 64).filter { $0.shape.contains("N64") || $0.shape.contains("(64,") || $0.shape.contains("m64") }
        for c in cases { _ = try c.run(b) }   // warm-up: programs, CLBlast kernels, pool
        try b.synchronize()
        b.profiling = true
        b.resetDeviceTime()
        let t0 = Date()
        for c in cases { _ = try c.run(b) }
        try b.synchronize()
        let wall = Date().timeIntervalSince(t0)
        let total = Double(b.deviceTimeNanoseconds) / 1e6
        print("device time \(String(format: "%.1f", total)) ms over \(cases.count) cases (wall \(String(format: "%.1f", wall * 1000)) ms)")
        for (name, ns) in b.deviceTimeByKernel.sorted(by: { $0.value > $1.value }) {
            let padded = name + String(repeating: " ", count: max(0, 28 - name.count))
            print("  \(padded) " + String(format: "%9.2f ms  %5.1f%%", Double(ns) / 1e6, Double(ns) / 1e4 / max(total, 1e-9)))
        }
        #expect(b.deviceTimeNanoseconds > 0)
    }
}
