@testable import CPUBackend
import CNNCore
import Testing

/// The fast CPU GELU (`SIMDMath`: vector exp and erfc instead of libm's scalar calls) against the
/// Double reference, over a dense sweep that covers both tails, the bend and the 16-lane tail path,
/// and on the values where the math is fragile.
@Suite struct GELUTests {
    /// Runs the fast forward (dy nil) or backward over `v`.
    func fast(_ v: [Float], dy: [Float]? = nil) -> [Float] {
        var out = [Float](repeating: 0, count: v.count)
        v.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { y in
                if let dy {
                    dy.withUnsafeBufferPointer { g in
                        GELUTask(x: x.baseAddress!, dy: g.baseAddress!, y: y.baseAddress!).run(0..<v.count)
                    }
                } else {
                    GELUTask(x: x.baseAddress!, dy: nil, y: y.baseAddress!).run(0..<v.count)
                }
            }
        }
        return out
    }

    /// Every element within rtol 4e-6 of the reference plus 4e-6 of the output's RMS (the
    /// `transcendental` tolerance of `cnn verify`); where the derivative crosses zero only the
    /// absolute part can hold.
    func expectClose(_ got: [Float], _ ref: [Double], _ what: String) {
        let rms = (ref.reduce(0) { $0 + $1 * $1 } / Double(max(ref.count, 1))).squareRoot()
        var worst = 0.0
        for (g, r) in zip(got, ref) { worst = max(worst, abs(Double(g) - r) / (4e-6 * abs(r) + 4e-6 * rms)) }
        #expect(worst <= 1, "\(what): worst error \(worst)x the tolerance")
    }

    @Test func forwardAndDerivativeMatchTheReferenceOverASweep() {
        // 0.0005 steps over [-12, 12] (48,001 values: not a multiple of 16).
        let v = (0...48_000).map { Float(-12 + Double($0) * 0.0005) }
        expectClose(fast(v), v.map { CPUBackend.Reference.gelu(Double($0)) }, "gelu")
        let dy = v.indices.map { Float(1 + ($0 % 7)) * 0.25 }
        expectClose(fast(v, dy: dy), zip(v, dy).map { Double($1) * CPUBackend.Reference.geluDerivative(Double($0)) }, "geluBackward")
        // Element by element around zero and the bend, relative only.
        for x in [Float(-3), -1, -0.75, -0.1, 0, 1e-6, 0.1, 1, 3] {
            let g = fast([x])[0], r = CPUBackend.Reference.gelu(Double(x))
            #expect(abs(Double(g) - r) <= 4e-6 * abs(r), "gelu(\(x)) = \(g), reference \(r)")
        }
    }

    @Test func extremesAndNonFiniteValues() {
        let big = fast([20, 100, -20, -100, 1e30, -1e30])
        #expect(big[0] == 20 && big[1] == 100 && big[4] == 1e30)
        #expect(abs(big[2]) < 1e-30 && abs(big[3]) < 1e-30 && abs(big[5]) < 1e-30, "\(big)")
        let special = fast([.nan, .infinity, -.infinity])
        #expect(special[0].isNaN && special[1] == .infinity && special[2].isNaN, "as the reference: \(special)")
        let d = fast([.nan, .infinity, -.infinity, 50, -50], dy: [1, 1, 1, 1, 1])
        #expect(d[0].isNaN && d[1].isNaN && d[2].isNaN, "a non-finite input stays visible in the gradient: \(d)")
        #expect(d[3] == 1 && abs(d[4]) < 1e-30)
        // In place (y = x), as the layer calls it.
        var v: [Float] = (0..<37).map { Float($0) * 0.3 - 5 }
        let want = fast(v)
        v.withUnsafeMutableBufferPointer { p in GELUTask(x: p.baseAddress!, dy: nil, y: p.baseAddress!).run(0..<37) }
        #expect(v == want)
    }
}
