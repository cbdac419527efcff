import CNNCore
import Testing
import Verification

/// The fused primitives (Sources/Verification/FusedCases.swift: the BatchNorm block, the bias +
/// activation + dropout block, the loss with its totals) on OpenCL against the CPU reference, like
/// every other family in ParityTests.swift.
@Suite(.enabled(if: OCL.available, "no OpenCL device"))
struct FusedParityTests {
    @Test(arguments: VerifySuite.fusedOps(modelBatch: parityModelBatch).map(\.verifyCase))
    func fused(_ c: VerifyCase) throws { try expectParity(c) }
}
