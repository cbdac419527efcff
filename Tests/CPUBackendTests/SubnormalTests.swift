@testable import CPUBackend
import SGEMM
import CNNCore
import Foundation
import Testing

/// The fast paths flush subnormals (see Sources/SGEMM/FloatEnvironment.swift); the
/// reference backend does not touch the floating-point environment.
@Suite struct SubnormalTests {
    @Test func fastPrimitivesFlushSubnormalsOnTheCallingThread() throws {
        try #require(FloatEnvironment.enabled, "SWIFTCNN_KEEP_SUBNORMALS=1 is set")
        let be = CPUBackend()
        // A GEMM whose A holds subnormals: with DAZ they are zero, so C = 0 * B = 0 exactly.
        let tiny = Float.leastNormalMagnitude / 8   // subnormal
        let a = try be.upload([Float](repeating: tiny, count: 6), shape: [2, 3])
        let b = try be.upload([Float]([1, 2, 3, 4, 5, 6]), shape: [3, 2])
        let c = try be.makeTensor([2, 2])
        try be.gemm(transA: false, transB: false, m: 2, n: 2, k: 3, alpha: 1, a: a, lda: 3, b: b, ldb: 2, beta: 0, c: c, ldc: 2)
        #expect(FloatEnvironment.flushesOnThisThread)
        #expect(try be.floats(c) == [0, 0, 0, 0])
    }

    @Test func referenceKeepsSubnormals() throws {
        // On a thread in IEEE mode (threads inherit the mode of their creator, so it is cleared
        // first), the reference backend leaves the mode alone and computes with subnormals.
        let (flushes, values) = try runOnFreshThread { () throws -> (Bool, [Float]) in
            FloatEnvironment.keepSubnormalsOnThisThread()
            let be = CPUBackend(reference: true)
            let tiny = Float.leastNormalMagnitude / 8
            let a = try be.upload([tiny], shape: [1, 1])
            let b = try be.upload([Float(2)], shape: [1, 1])
            let c = try be.makeTensor([1, 1])
            try be.gemm(transA: false, transB: false, m: 1, n: 1, k: 1, alpha: 1, a: a, lda: 1, b: b, ldb: 1, beta: 0, c: c, ldc: 1)
            return (FloatEnvironment.flushesOnThisThread, try be.floats(c))
        }
        #expect(!flushes)
        #expect(values == [Float.leastNormalMagnitude / 4])
    }
}

/// Runs `body` on a new thread and returns its result (rethrowing its error).
func runOnFreshThread<R: Sendable>(_ body: @escaping @Sendable () throws -> R) throws -> R {
    let box = ResultBox<R>(), done = DispatchSemaphore(value: 0)
    let t = Thread { box.result = Result { try body() }; done.signal() }
    t.start()
    done.wait()
    return try box.result!.get()
}

private final class ResultBox<R>: @unchecked Sendable { var result: Result<R, Error>? }
