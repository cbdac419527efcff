// Shared pieces of the fast-path parity tests (FastParity*Tests.swift): the backends under test and
// comparisons with DESIGN.md's tolerances.
//
// Every fast primitive runs on three backends and is compared with `CPUBackend(reference: true)`:
//   - `CPUBackend()`: the default (process-wide pool, thresholds as in production);
//   - one thread, and three threads with every op split however small (`splitAll`), so the parallel
//     paths run on small test shapes too. The fast backends must agree with each other bit for bit
//     (results may not depend on the thread count or on scheduling).

@testable import CPUBackend
import SGEMM
import CNNCore
import Testing

enum FastParity {
    static let onePool = ThreadPool(threadCount: 1)
    static let threePool = ThreadPool(threadCount: 3)

    /// The fast backends under test: (name, backend).
    static func fastBackends() -> [(String, CPUBackend)] {
        [("default", CPUBackend()),
         ("1 thread", CPUBackend(reference: false, pool: onePool, splitAll: true)),
         ("3 threads split", CPUBackend(reference: false, pool: threePool, splitAll: true))]
    }

    /// Uniform Floats in [lo, hi) from a fixed seed.
    static func random(_ count: Int, seed: UInt64, in range: ClosedRange<Float> = -1...1) -> [Float] {
        var rng = SeededRNG(seed: seed)
        return (0..<count).map { _ in range.lowerBound + (range.upperBound - range.lowerBound) * Float(rng.next() >> 40) * 0x1p-24 }
    }

    /// |got - ref| <= rtol * scale + rtol * |ref| with scale = max |ref| (the output's scale):
    /// DESIGN.md's GEMM / convolution rule, also used for reductions with their rtol.
    static func closeToScale(_ got: [Float], _ ref: [Float], rtol: Double, _ what: String,
                             sourceLocation: SourceLocation = #_sourceLocation) {
        let scale = ref.reduce(0) { max($0, abs(Double($1))) }
        RefCheck.close(got, ref, atol: rtol * max(scale, 1e-30), rtol: rtol, what, sourceLocation: sourceLocation)
    }

    /// Bitwise equality of the results of two fast backends.
    static func same(_ got: [Float], _ first: [Float], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        RefCheck.exact(got, first, what, sourceLocation: sourceLocation)
    }
}
