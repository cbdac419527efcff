import CNNCore
import Testing
import Verification

/// Grouped / depthwise convolution, GELU, channel shuffle and channel copy on OpenCL vs the CPU
/// reference (small awkward shapes plus mobilenetv2's depthwise layers at a small batch).
@Suite(.enabled(if: OCL.available, "no OpenCL device"))
struct LightweightParityTests {
    @Test(arguments: VerifySuite.lightweightOps(modelBatch: parityModelBatch).map(\.verifyCase))
    func lightweight(_ c: VerifyCase) throws { try expectParity(c) }
}
