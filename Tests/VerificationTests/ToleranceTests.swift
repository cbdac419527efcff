import Testing
@testable import Verification

@Suite struct ToleranceTests {
    @Test func exactRejectsOneUlp() {
        let ref: [Float] = [1, 2, 3]
        #expect(compare(ref, ref, .exact).passed)
        let c = compare([1, 2, 3.0000002], ref, .exact)
        #expect(!c.passed)
        #expect(c.worstIndex == 2)
        #expect(c.failures == 1)
    }

    @Test func boundIsAtolPlusRtolTimesReference() {
        // rms([3, 4]) = sqrt(12.5) ~ 3.536; atol = 1e-4 * 3.536; bound at 4 = 3.536e-4 + 4e-4.
        let tol = Tolerance(rtol: 1e-4, atolRMS: 1e-4)
        #expect(compare([3, 4.0007], [3, 4], tol).passed)
        #expect(!compare([3, 4.0008], [3, 4], tol).passed)
    }

    @Test func nanHandling() {
        #expect(compare([.nan], [.nan], .exact).passed)
        #expect(!compare([.nan], [1], .gemm).passed)
        #expect(!compare([1], [.nan], .gemm).passed)
        #expect(!compare([1, 2], [1], .gemm).passed)
    }

    @Test func reductionToleranceGrowsWithLengthWithinBounds() {
        #expect(Tolerance.reduction(length: 1).rtol == 1e-5)
        #expect(Tolerance.reduction(length: 1 << 20).rtol == 1e-4)
        let mid = Tolerance.reduction(length: 1000).rtol
        #expect(mid > 1e-5 && mid < 1e-4)
    }
}
