import CNNCore
import Testing
import Verification

// One parameterized test per op family: every case of `VerifySuite`'s family (small awkward shapes
// plus the cnn / optimized layer shapes at a small batch) on OpenCL vs the CPU reference, same
// inputs, tolerances from `Tolerance` (exact for data movement, 1e-6 elementwise, reductions
// 1e-5..1e-4 by length, GEMM / convolution 1e-4).

@Suite(.enabled(if: OCL.available, "no OpenCL device"))
struct GEMMParityTests {
    @Test(arguments: VerifySuite.gemm(modelBatch: parityModelBatch))
    func gemm(_ c: VerifyCase) throws { try expectParity(c) }
}

@Suite(.enabled(if: OCL.available, "no OpenCL device"))
struct ConvParityTests {
    @Test(arguments: VerifySuite.convolution(modelBatch: parityModelBatch))
    func convolution(_ c: VerifyCase) throws { try expectParity(c) }
}

@Suite(.enabled(if: OCL.available, "no OpenCL device"))
struct PoolingParityTests {
    @Test(arguments: VerifySuite.pooling(modelBatch: parityModelBatch))
    func pooling(_ c: VerifyCase) throws { try expectParity(c) }
}

@Suite(.enabled(if: OCL.available, "no OpenCL device"))
struct BatchNormParityTests {
    @Test(arguments: VerifySuite.batchNorm(modelBatch: parityModelBatch))
    func batchNorm(_ c: VerifyCase) throws { try expectParity(c) }
}

@Suite(.enabled(if: OCL.available, "no OpenCL device"))
struct ElementwiseParityTests {
    @Test(arguments: VerifySuite.elementwise(modelBatch: parityModelBatch))
    func elementwise(_ c: VerifyCase) throws { try expectParity(c) }
}

@Suite(.enabled(if: OCL.available, "no OpenCL device"))
struct LossParityTests {
    @Test(arguments: VerifySuite.loss(modelBatch: parityModelBatch))
    func loss(_ c: VerifyCase) throws { try expectParity(c) }
}

@Suite(.enabled(if: OCL.available, "no OpenCL device"))
struct OptimizerParityTests {
    @Test(arguments: VerifySuite.optimizers())
    func optimizers(_ c: VerifyCase) throws { try expectParity(c) }
}

@Suite(.enabled(if: OCL.available, "no OpenCL device"))
struct ReductionParityTests {
    @Test(arguments: VerifySuite.reductions(modelBatch: parityModelBatch))
    func reductions(_ c: VerifyCase) throws { try expectParity(c) }
}
