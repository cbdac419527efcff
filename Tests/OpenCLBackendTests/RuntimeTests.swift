import CNNCore
import Foundation
@testable import OpenCLBackend
import Testing
import Verification

/// Memory, transfers, profiling, argument errors and determinism of the OpenCL runtime.
@Suite(.enabled(if: OCL.available, "no OpenCL device"))
struct RuntimeTests {
    @Test func steadyStateAllocatesNothingAndReusedBuffersAreZeroed() throws {
        let b = try OCL.backend()
        func step() throws {
            let x = try b.upload([Float](repeating: 1, count: 1000), shape: [10, 100])
            let y = try b.makeTensor([10, 100])
            let s = try b.makeTensor([1])
            try b.relu(x: x, y: y)
            try b.sum(y, into: s, accumulate: false)
            #expect(try b.floats(s) == [1000])
        }
        try step()
        let after1 = b.allocatorStats.allocations
        for _ in 0..<5 { try step() }
        #expect(b.allocatorStats.allocations == after1, "steady state must reuse buffers: \(b.allocatorStats)")
        #expect(b.allocatorStats.reuses > 0)
        // A recycled buffer that held ones comes back zero-filled.
        let t = try b.makeTensor([10, 100])
        #expect(try b.floats(t).allSatisfy { $0 == 0 })
    }

    @Test func transfersAreCountedAndPrimitivesMoveNothing() throws {
        let b = try OCL.backend()
        let x = try b.upload([1, -2, 3] as [Float], shape: [3])
        #expect(b.transferCounters.uploads == 1 && b.transferCounters.uploadBytes == 12)
        let y = try b.makeTensor([3])
        try b.relu(x: x, y: y)
        try b.scale(y, by: 2, y: y)
        try b.synchronize()
        #expect(b.transferCounters.downloads == 0)
        #expect(try b.floats(y) == [2, 0, 6])
        #expect(b.transferCounters.downloads == 1 && b.transferCounters.downloadBytes == 12)
        #expect(b.transferCounters.uploads == 1)
    }

    @Test func profilingAccumulatesKernelTime() throws {
        let b = try OCL.backend()
        let g = Conv2DGeometry(batch: 2, inChannels: 3, height: 8, width: 8, outChannels: 4, kernel: 3, padding: 1)
        let x = try b.upload([Float](repeating: 0.5, count: g.inputShape.count), shape: g.inputShape)
        let w = try b.upload([Float](repeating: 0.1, count: g.weightShape.count), shape: g.weightShape)
        let y = try b.makeTensor(g.outputShape)
        #expect(b.deviceTimeNanoseconds == 0)
        b.profiling = true
        let counted = b.commandCounters
        try b.conv2DForward(x: x, weight: w, bias: nil, y: y, geometry: g, activation: .relu)
        // One chunk: im2col, ONE plain GEMM for both images, the NCHW/bias/ReLU epilogue; no waits.
        #expect(b.commandCounters.kernelLaunches - counted.kernelLaunches == 3)
        #expect(b.commandCounters.clblastCalls - counted.clblastCalls == 1)
        #expect(b.commandCounters.blockingCalls == counted.blockingCalls)
        try b.synchronize()
        // clFinish, then (profiling on) the wait for the events' times.
        #expect(b.commandCounters.blockingCalls == counted.blockingCalls + 2)
        #expect(b.deviceTimeNanoseconds > 0)
        #expect(b.deviceTimeByKernel["im2col"] != nil && b.deviceTimeByKernel["gemm"] != nil
                && b.deviceTimeByKernel["convForwardEpilogue"] != nil,
                "\(b.deviceTimeByKernel.keys.sorted())")
        b.resetDeviceTime()
        #expect(b.deviceTimeNanoseconds == 0 && b.deviceTimeByKernel.isEmpty)
    }

    @Test func foreignTensorsAndBadShapesAreRejected() throws {
        let b = try OCL.backend(), other = try OCL.backend()
        let mine = try b.makeTensor([4])
        let theirs = try other.makeTensor([4])
        let e1 = #expect(throws: CNNError.self) { try b.relu(x: theirs, y: mine) }
        #expect(e1?.kind == .invalidArgument && e1?.message.contains("does not belong to this OpenCL backend") == true)
        let cpuTensor = try OCL.reference().makeTensor([4])
        #expect(throws: CNNError.self) { try b.relu(x: cpuTensor, y: mine) }
        let e2 = #expect(throws: CNNError.self) { try b.relu(x: mine, y: try b.makeTensor([5])) }
        #expect(e2?.kind == .invalidArgument)
        let g = Pool2DGeometry(batch: 1, channels: 1, height: 4, width: 4, kernel: 2)
        let e3 = #expect(throws: CNNError.self) {
            try b.maxPool2DForward(x: try b.makeTensor([1, 1, 4, 4]), y: try b.makeTensor([1, 1, 2, 2]),
                                   argmax: try b.makeTensor([1, 1, 2, 2]), geometry: g)
        }
        #expect(e3?.message.contains("argmax is float32, expected int32") == true, "\(e3?.message ?? "")")
    }

    @Test func errorCodesHaveNames() {
        #expect(CLStatus.name(-5) == "CL_OUT_OF_RESOURCES")
        #expect(CLStatus.name(-4) == "CL_MEM_OBJECT_ALLOCATION_FAILURE")
        #expect(CLStatus.name(-11) == "CL_BUILD_PROGRAM_FAILURE")
        #expect(CLStatus.name(-1001) == "CL_PLATFORM_NOT_FOUND_KHR")
        #expect(CLStatus.describe(-5).contains("batch size"))
        #expect(CLStatus.clblastName(-1017).hasPrefix("CLBlastInvalidDimension"))
        #expect(CLStatus.clblastName(-2049).hasPrefix("CLBlastInvalidBatchCount"))
        #expect(CLStatus.clblastName(-54) == "CL_INVALID_WORK_GROUP_SIZE")
    }

    /// Views carry offsets into their storage; kernels and CLBlast must honour them and leave the
    /// rest of the buffer alone.
    @Test func viewsWithOffsetsTouchOnlyTheirElements() throws {
        let b = try OCL.backend()
        let buf = try b.upload((0..<20).map { Float($0) - 10 }, shape: [20])
        let v = buf.view(elementOffset: 5, shape: [7])
        try b.relu(x: v, y: v)
        var expected = (0..<20).map { Float($0) - 10 }
        for i in 5..<12 { expected[i] = max(expected[i], 0) }
        #expect(try b.floats(buf) == expected)
        // GEMM on views: C (2x2) at offset 3 of a 10-element buffer = A (2x3) at offset 1 * B (3x2) at offset 2.
        let a = try b.upload([9, 1, 2, 3, 4, 5, 6, 9] as [Float], shape: [8]).view(elementOffset: 1, shape: [6])
        let bm = try b.upload([9, 9, 1, 0, 0, 1, 1, 1] as [Float], shape: [8]).view(elementOffset: 2, shape: [6])
        let cBuf = try b.upload([Float](repeating: -1, count: 10), shape: [10])
        try b.gemm(transA: false, transB: false, m: 2, n: 2, k: 3, alpha: 1, a: a, lda: 3, b: bm, ldb: 2, beta: 0,
                   c: cBuf.view(elementOffset: 3, shape: [4]), ldc: 2)
        #expect(try b.floats(cBuf) == [-1, -1, -1, 4, 5, 10, 11, -1, -1, -1])
    }

    @Test func dropoutMaskIsTheCounterRNGsBitForBit() throws {
        let b = try OCL.backend()
        let n = 5000, p: Float = 0.3, seed: UInt64 = 0xDEAD_BEEF_1234
        let x = try b.upload([Float](repeating: 1, count: n), shape: [n])
        let y = try b.makeTensor([n]), mask = try b.makeTensor([n])
        try b.dropoutForward(x: x, y: y, mask: mask, probability: p, seed: seed)
        let key = CounterRNG.key(seed: seed)
        let keep: Float = 1 / (1 - p)
        let expected = (0..<n).map { CounterRNG.uniform(key: key, index: UInt32($0)) >= p ? keep : 0 }
        #expect(try b.floats(mask) == expected)
        let kept = expected.filter { $0 != 0 }.count
        #expect(abs(Double(kept) / Double(n) - 0.7) < 0.03)
    }

    /// Same inputs, same device: bit-identical results (fixed-order reductions, no atomics).
    @Test func reductionsAreDeterministic() throws {
        let b = try OCL.backend()
        let shape: Shape = [4, 8, 33, 17]
        var rng = SeededRNG(seed: 5)
        let x = try b.upload((0..<shape.count).map { _ in rng.uniform(-1, 1) }, shape: shape)
        func run() throws -> [Float] {
            let c = 8
            let y = try b.makeTensor(shape), rm = try b.makeTensor([c]), rv = try b.makeTensor([c])
            let sm = try b.makeTensor([c]), si = try b.makeTensor([c]), gamma = try b.upload([Float](repeating: 1, count: c), shape: [c])
            let beta = try b.makeTensor([c])
            try b.batchNormForwardTraining(x: x, gamma: gamma, beta: beta, y: y, runningMean: rm, runningVar: rv, saveMean: sm,
                                           saveInvStd: si, momentum: 0.1, epsilon: 1e-5, activation: .identity)
            let db = try b.makeTensor([c]), s = try b.makeTensor([1])
            try b.biasGrad(dy: x, dBias: db)
            try b.sum(x, into: s, accumulate: false)
            return try b.floats(y) + b.floats(sm) + b.floats(si) + b.floats(db) + b.floats(s)
        }
        #expect(try run() == run())
    }

    /// Backward data right after backward filter of the same dy reuses the filter pass's dY' columns
    /// (2 launches instead of 3) and gives the same bits; any command in between turns that off.
    @Test func backwardDataReusesTheFilterPassOutputGradColumns() throws {
        let b = try OCL.backend()
        let g = Conv2DGeometry(batch: 3, inChannels: 2, height: 6, width: 5, outChannels: 4, kernel: 3, padding: 1)
        var rng = SeededRNG(seed: 4)
        func up(_ s: Shape) throws -> Tensor { try b.upload((0..<s.count).map { _ in rng.uniform(-1, 1) }, shape: s) }
        let x = try up(g.inputShape), w = try up(g.weightShape), dy = try up(g.outputShape)
        let dW = try b.makeTensor(g.weightShape), dBias = try b.makeTensor([g.outChannels])
        let dx1 = try b.makeTensor(g.inputShape), dx2 = try b.makeTensor(g.inputShape)
        func launches(_ body: () throws -> Void) rethrows -> (Int, Int) {
            let before = b.commandCounters
            try body()
            return (b.commandCounters.kernelLaunches - before.kernelLaunches, b.commandCounters.clblastCalls - before.clblastCalls)
        }
        // bias gradient 1 (one chunk per channel: no finalize pass), im2col, dY' reorder, GEMM
        #expect(try launches { try b.conv2DBackwardFilter(x: x, dy: dy, dWeight: dW, dBias: dBias, geometry: g) } == (4, 1))
        #expect(try launches { try b.conv2DBackwardData(dy: dy, weight: w, dx: dx1, geometry: g) } == (2, 1))
        try b.conv2DBackwardFilter(x: x, dy: dy, dWeight: dW, dBias: nil, geometry: g)
        try b.fill(dx2, value: 0)
        #expect(try launches { try b.conv2DBackwardData(dy: dy, weight: w, dx: dx2, geometry: g) } == (3, 1))
        #expect(try b.floats(dx1) == b.floats(dx2))
    }

    /// A convolution split into batch chunks (small workspace) equals the CPU reference too.
    @Test func convolutionInBatchChunks() throws {
        let g = Conv2DGeometry(batch: 5, inChannels: 3, height: 9, width: 7, outChannels: 4, kernel: 3, padding: 1)
        let perImage = (g.patchSize + g.outChannels) * g.outHeight * g.outWidth   // columns + (Cout, P) GEMM operand
        for c in VerifyCase.convolutionFamily(g, activation: .relu) where c.op.hasPrefix("conv2D") {
            let b = try OCL.backend()
            b.workspaceLimitOverride = 2 * perImage + 10   // two images per chunk: chunks of 2, 2, 1
            let got = try c.run(b)
            let ref = try c.run(OCL.reference())
            for (o, r) in zip(got, ref) {
                let cmp = compare(o.values, r.values, r.tolerance)
                #expect(cmp.passed, "\(c) \(r.name) in chunks: \(cmp)")
            }
        }
    }

    /// beta == 0 ignores C (NaN stays out), k == 0 gives C = beta * C, batch 0 does nothing.
    @Test func gemmEdgeCases() throws {
        let b = try OCL.backend()
        let a = try b.upload([1, 2, 3, 4] as [Float], shape: [4]), bm = try b.upload([1, 0, 0, 1] as [Float], shape: [4])
        let c = try b.upload([.nan, .nan, .nan, .nan], shape: [4])
        try b.gemm(transA: false, transB: false, m: 2, n: 2, k: 2, alpha: 1, a: a, lda: 2, b: bm, ldb: 2, beta: 0, c: c, ldc: 2)
        #expect(try b.floats(c) == [1, 2, 3, 4])
        try b.gemm(transA: false, transB: false, m: 2, n: 2, k: 0, alpha: 1, a: a, lda: 2, b: bm, ldb: 2, beta: 0.5, c: c, ldc: 2)
        #expect(try b.floats(c) == [0.5, 1, 1.5, 2])
        try b.gemmStridedBatched(transA: false, transB: false, m: 2, n: 2, k: 2, alpha: 1, a: a, lda: 2, strideA: 0,
                                 b: bm, ldb: 2, strideB: 0, beta: 0, c: c, ldc: 2, strideC: 4, batch: 0)
        #expect(try b.floats(c) == [0.5, 1, 1.5, 2])
    }
}
