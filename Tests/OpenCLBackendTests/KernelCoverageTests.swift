import CNNCore
@testable import OpenCLBackend
import Testing
import Verification

/// Every kernel in Kernels/*.cl is reached by the parity cases: the ops are tested against the CPU
/// reference (ParityTests.swift), and this test shows that those ops launch every kernel, including
/// the partial / finalize stages of the multi-kernel ops.
@Suite(.enabled(if: OCL.available, "no OpenCL device"))
struct KernelCoverageTests {
    /// The kernels of Kernels/*.cl, by family (the test also checks this list against the sources).
    static let kernels: [KernelFamily: Set<String>] = [
        .conv: ["im2col", "col2im", "biasAdd", "biasGradPartial", "biasGradFinalize", "convForwardEpilogue",
                "convOutputGradColumns", "biasActivationDropout", "biasActivationDropoutBackward"],
        .pooling: ["maxPool2DForward", "maxPool2DBackward", "avgPool2DForward", "avgPool2DBackward"],
        .batchnorm: ["batchNormStatsPartial", "batchNormStatsFinalize", "batchNormForwardTraining", "batchNormForwardInference",
                     "batchNormBackwardPartial", "batchNormBackwardFinalize", "batchNormBackwardData",
                     "batchNormBlockForward", "batchNormBlockBackward"],
        .elementwise: ["relu", "reluBackward", "dropoutForward", "add", "mul", "scale", "axpy", "fill"],
        .loss: ["softmax", "softmaxCrossEntropyLabels", "softmaxCrossEntropySoft", "softmaxCrossEntropyTotals"],
        .optimizers: ["sgdStep", "adamStep"],
        .reductions: ["sumPartial", "sumFinalize", "argmax", "countCorrectPartial"],
        .augment: ["augmentBatch"],
        .lightweight: ["groupedConvForward", "groupedConvBackwardData", "groupedConvBackwardFilter", "gelu", "geluBackward",
                       "channelShuffle", "copyChannels"],
    ]
    /// Families that are not Backend primitives: the device input's kernel is checked against the
    /// host pipeline by TrainingTests/DeviceInputTests.swift (and runs under Oclgrind in
    /// scripts/oclgrind-check.sh through `cnn verify --quick`).
    static let notPrimitives: Set<KernelFamily> = [.augment]

    @Test func theListMatchesTheSources() {
        for family in KernelFamily.allCases {
            #expect(kernelNames(in: family.source) == Self.kernels[family] ?? [], "kernels of \(family.rawValue).cl")
        }
    }

    @Test func parityCasesLaunchEveryKernel() throws {
        let device = try OCL.backend()
        for c in VerifySuite.quick { _ = try c.run(device) }
        let all = Self.kernels.filter { !Self.notPrimitives.contains($0.key) }.values.reduce(into: Set<String>()) { $0.formUnion($1) }
        let missed = all.subtracting(device.launchedKernels)
        #expect(missed.isEmpty, "kernels no parity case launches: \(missed.sorted())")
    }

    /// Names following `__kernel void` in OpenCL C source.
    func kernelNames(in source: String) -> Set<String> {
        var names = Set<String>()
        let tokens = source.split(whereSeparator: { $0.isWhitespace || $0 == "(" })
        for i in tokens.indices.dropLast(2) where tokens[i] == "__kernel" && tokens[i + 1] == "void" {
            names.insert(String(tokens[i + 2]))
        }
        return names
    }
}
