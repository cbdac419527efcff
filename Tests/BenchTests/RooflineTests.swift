@testable import BenchKit
import Foundation
import SwiftCNN
import Testing

/// `cnn-bench --roofline`: the per-kernel profile of a training step accounts for every launch the
/// backend counted, GEMM FLOPs are the model's, and the prediction is the documented sum.
@Suite(.serialized, .enabled(if: openCLAvailable, "needs an OpenCL device (PoCL in CI)"))
struct RooflineTests {
    @Test func unknownProfileIsNamedWithTheBuiltInOnes() {
        #expect(throws: BenchError.self) { try Roofline.profile(named: "h100") }
        #expect((try? Roofline.profile(named: "H200"))?.bandwidth == 4.8e12)
    }

    @Test func profileAccountsForEveryLaunchOfTheStep() throws {
        guard let ocl = try makeBackend("opencl").backend as? OpenCLBackend else { Issue.record("no OpenCL backend"); return }
        let profile = try Roofline.profile(named: "h200")
        let rates = try JSONDecoder().decode(DeviceRates.self, from: Data(#"{"bandwidth": 1e10, "flops": 1e10, "device": "test"}"#.utf8))
        // Counted launches of one steady-state step, outside profiling.
        let m = try ModelZoo.make("lite", backend: ocl, seed: 1)
        let runner = try StepRunner(model: m, optimizer: try Adam(model: m, hyper: AdamHyper(learningRate: 1e-3)))
        let (x, y) = EndToEnd.randomBatch("roofline-test", batch: 2)
        try runner.trainStep(images: x, labels: y, seed: 1)
        try ocl.synchronize()
        let before = ocl.commandCounters
        try runner.trainStep(images: x, labels: y, seed: 2)
        let launches = ocl.commandCounters.kernelLaunches - before.kernelLaunches, gemms = ocl.commandCounters.clblastCalls - before.clblastCalls

        let rows = try Roofline.rows(model: "lite", batch: 2, on: ocl, rates: rates, profile: profile, steps: 2)
        var total = 0.0
        for r in rows { total += r.launches }
        #expect(Int(total.rounded()) == launches, "\(rows.map { ($0.kernel, $0.launches) })")
        let gemm = try #require(rows.first { $0.kernel == "gemm" })
        #expect(Int(gemm.launches.rounded()) == gemms)
        // FLOPs only from GEMMs; for `lite` at least its first convolution's forward multiply-adds.
        let firstConvFLOPs: Double = 2 * 2 * 16 * 27 * 32 * 32
        #expect(gemm.flops > firstConvFLOPs)
        for r in rows {
            #expect(r.bytes > 0 && r.measuredSeconds >= 0)
            if r.kernel != "gemm" { #expect(r.flops == 0, "\(r.kernel)") }
            let launchCost: Double = r.launches * 5e-6
            #expect(abs(r.profileLaunchSeconds - launchCost) < 1e-12)
            let memoryBound: Double = r.bytes / 4.8e12
            #expect(r.profileBoundSeconds >= memoryBound * 0.999)
        }
        let table = Roofline.table(rows, title: "train:lite:2", device: "test", rates: rates, profile: profile)
        #expect(table.contains("predicted on NVIDIA H200") && table.contains("step"))
    }
}
