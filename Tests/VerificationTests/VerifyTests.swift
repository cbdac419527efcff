import CNNCore
import CPUBackend
import Foundation
import OpenCLBackend
import Testing
@testable import Verification

@Suite struct VerifyTests {
    static let openCLDevice: OpenCLDeviceInfo? = {
        if case let .opencl(dev, _)? = try? selectDevice(.opencl, inventory: OpenCLDiscovery.inventory()) { return dev }
        return nil
    }()

    /// The quick suite covers every primitive of the Backend protocol.
    @Test func quickSuiteCoversEveryPrimitive() {
        let ops = Set(VerifySuite.quick.map(\.op))
        let protocolOps: Set = [
            "gemm", "gemmStridedBatched", "im2col", "col2im", "conv2DForward", "conv2DBackwardData", "conv2DBackwardFilter",
            "biasAdd", "biasGrad", "maxPool2DForward", "maxPool2DBackward", "avgPool2DForward", "avgPool2DBackward",
            "batchNormForwardTraining", "batchNormForwardInference", "batchNormBackward", "relu", "reluBackward",
            "dropoutForward", "add", "mul", "scale", "axpy", "fill", "copy", "softmax", "softmaxCrossEntropy",
            "sgdStep", "adamStep", "sum", "sumOfSquares", "argmax", "countCorrect",
            "batchNormBlockForwardTraining", "batchNormBlockBackward", "biasActivationDropoutForward", "biasActivationDropoutBackward",
            "softmaxCrossEntropyWithTotals",
        ]
        #expect(protocolOps.subtracting(ops).isEmpty, "missing: \(protocolOps.subtracting(ops).sorted())")
        // The standard suite adds the models' layer shapes at batch 64.
        let standard = VerifySuite.standard(batch: 64).map(\.description)
        #expect(standard.contains("conv2DForward N64 32->64 16x16 k3x3 s1x1 p1x1 relu"))
        #expect(standard.contains("gemm m64 n512 k4096 B^T"))
        #expect(standard.contains("dropoutForward n1048576 p0.25"))
    }

    /// The reference against itself: every row passes with zero error (the harness itself is sound).
    @Test func referenceAgainstItselfPasses() {
        let rows = verify(device: CPUBackend(reference: true), reference: CPUBackend(reference: true), cases: VerifySuite.quick)
        #expect(allPassed(rows), "\(rows.filter { !$0.passed })")
        #expect(rows.allSatisfy { $0.maxAbsError == 0 })
    }

    /// A device with one wrong primitive is reported as FAIL for exactly that primitive — for a
    /// bit-exact op and for a reduction with a tolerance.
    @Test(arguments: [("relu", Float(1) + 0x1p-20), ("biasGrad", Float(1.001)), ("conv2DBackwardFilter", Float(1.001))])
    func aWrongPrimitiveIsReported(op: String, factor: Float) {
        let device = PerturbingBackend(CPUBackend(reference: true), op: op, factor: factor)
        let rows = verify(device: device, reference: CPUBackend(reference: true), cases: VerifySuite.quick)
        let failed = Set(rows.filter { !$0.passed }.map(\.op))
        #expect(failed == [op], "failed: \(failed.sorted())")
        #expect(!allPassed(rows))
        let table = formatVerifyTable(rows, device: device.info.description)
        #expect(table.contains("FAIL") && table.contains("checks FAILED (\(op))"), "\(table.suffix(300))")
    }

    @Test func aThrowingDeviceIsAFailingRow() {
        let bad = VerifyCase(op: "relu", shape: "throws") { b in
            if b is PerturbingBackend { throw CNNError.device("kernel launch failed: CL_OUT_OF_RESOURCES (-5)") }
            return [VerifyOutput(name: "y", values: [1], tolerance: .exact)]
        }
        let rows = verify(device: PerturbingBackend(CPUBackend(), op: "", factor: 1), reference: CPUBackend(), cases: [bad])
        #expect(rows.count == 1 && !rows[0].passed && rows[0].output == "error")
        #expect(rows[0].detail.contains("CL_OUT_OF_RESOURCES"))
        #expect(!allPassed([]), "an empty run is not a pass")
    }

    @Test func tableHasHeaderRowsAndSummary() {
        let rows = verify(device: CPUBackend(), reference: CPUBackend(reference: true), cases: VerifySuite.reductions())
        let table = formatVerifyTable(rows, device: "cpu", reference: "reference")
        let lines = table.split(separator: "\n")
        #expect(lines.contains { $0.hasPrefix("op") && $0.contains("max abs err") && $0.contains("tolerance") && $0.contains("result") })
        #expect(lines.last?.hasPrefix("all \(rows.count) checks passed") == true, "\(lines.last ?? "")")
    }

    /// The OpenCL backend against the CPU reference over the quick suite: all pass.
    @Test(.enabled(if: openCLDevice != nil, "no OpenCL device"))
    func openCLPassesAgainstTheReference() throws {
        let device = try OpenCLBackend(device: #require(Self.openCLDevice))
        let rows = verify(device: device, reference: CPUBackend(reference: true), cases: VerifySuite.quick)
        #expect(allPassed(rows), "\(formatVerifyTable(rows.filter { !$0.passed }))")
        #expect(rows.count > 100)
    }

    /// `cnn verify`'s full table (models at batch 64) — slow on the debug-built reference, so only
    /// on request: SWIFTCNN_VERIFY_MODELS=1 swift test -c release ... --filter fullTableOnRequest
    @Test(.enabled(if: openCLDevice != nil && ProcessInfo.processInfo.environment["SWIFTCNN_VERIFY_MODELS"] != nil))
    func fullTableOnRequest() throws {
        let device = try OpenCLBackend(device: #require(Self.openCLDevice))
        let reference = CPUBackend(reference: true)
        let rows = verify(device: device, reference: reference, cases: VerifySuite.standard(batch: 64))
        print(formatVerifyTable(rows, device: device.info.description, reference: reference.info.description))
        #expect(allPassed(rows))
    }
}
