import CNNCore

/// How close a device's output must be to the reference: element i passes when
/// `|got - ref| <= atol + rtol * |ref|`, with `atol = atolRMS * RMS(ref)`.
///
/// Why atol scales with the output's RMS: a sum's rounding error grows with the size of its terms,
/// not with the result, and random data makes some results cancel to almost zero. The RMS of the
/// whole output measures the terms' scale without being fooled by one small element.
package struct Tolerance: Sendable, Equatable, CustomStringConvertible {
    package var rtol: Double
    package var atolRMS: Double

    package init(rtol: Double, atolRMS: Double) {
        self.rtol = rtol
        self.atolRMS = atolRMS
    }

    /// Data movement (im2col, max-pool routing, ReLU, dropout with its mask): bit for bit.
    package static let exact = Tolerance(rtol: 0, atolRMS: 0)
    /// One or a few roundings per element (add, axpy, optimizer updates, exp/log per element).
    package static let elementwise = Tolerance(rtol: 1e-6, atolRMS: 1e-6)
    /// Elementwise ops with division, sqrt, exp or log (BN inference, optimizer updates): OpenCL lets
    /// a device round these to 2.5-4 ulp (OpenCL C spec, "Relative Error as ULPs"), not 0.5 like the
    /// reference; a few of them per element stay below about 4e-6.
    package static let transcendental = Tolerance(rtol: 4e-6, atolRMS: 4e-6)
    /// GEMM and convolution: the device sums in float in another order than the Double reference.
    package static let gemm = Tolerance(rtol: 1e-4, atolRMS: 1e-4)

    /// Reductions (BN statistics, softmax, col2im, sums): rtol = 2e-6 * sqrt(length), kept within
    /// [1e-5, 1e-4] — float summation error grows about with the square root of the length.
    package static func reduction(length: Int) -> Tolerance {
        let r = min(1e-4, max(1e-5, 2e-6 * Double(max(length, 1)).squareRoot()))
        return Tolerance(rtol: r, atolRMS: r)
    }

    package var description: String {
        if self == .exact { return "exact" }
        return "rtol \(sci(rtol)), atol \(sci(atolRMS))*rms"
    }
}

/// How a device output compares with the reference.
package struct Comparison: Sendable, CustomStringConvertible {
    package var count: Int
    package var maxAbsError: Double
    /// max of |got - ref| / max(|ref|, RMS(ref)) — relative to the element, or to the output's
    /// scale where the element is smaller than that (so near-zero results do not read as huge).
    package var maxRelError: Double
    /// The element closest to (or furthest past) its bound, and its values.
    package var worstIndex: Int
    package var worstGot: Float
    package var worstRef: Float
    package var failures: Int
    package var passed: Bool { failures == 0 }

    package var description: String {
        (passed ? "pass" : "FAIL: \(failures) of \(count) elements out of tolerance")
            + "; max abs \(sci(maxAbsError)), max rel \(sci(maxRelError)); worst at [\(worstIndex)]: got \(worstGot), reference \(worstRef)"
    }
}

/// Compares `got` with `reference` element by element. Both NaN counts as equal; a NaN on one side
/// only, or a count mismatch, fails.
package func compare(_ got: [Float], _ reference: [Float], _ tol: Tolerance) -> Comparison {
    var c = Comparison(count: reference.count, maxAbsError: 0, maxRelError: 0, worstIndex: -1, worstGot: .nan,
                       worstRef: .nan, failures: 0)
    guard got.count == reference.count else {
        c.failures = max(1, abs(got.count - reference.count))
        c.maxAbsError = .infinity
        return c
    }
    var sq = 0.0
    var finite = 0
    for r in reference where r.isFinite {
        sq += Double(r) * Double(r)
        finite += 1
    }
    let rms = finite > 0 ? (sq / Double(finite)).squareRoot() : 0
    let atol = tol.atolRMS * rms
    var worstRatio = -1.0
    for i in reference.indices {
        let g = got[i], r = reference[i]
        var ratio: Double
        if g.isNaN || r.isNaN {
            ratio = (g.isNaN && r.isNaN) ? 0 : .infinity
        } else if g == r {
            ratio = 0   // covers equal infinities
        } else {
            let diff = abs(Double(g) - Double(r))
            c.maxAbsError = max(c.maxAbsError, diff)
            c.maxRelError = max(c.maxRelError, diff / max(abs(Double(r)), rms, Double.leastNonzeroMagnitude))
            let bound = atol + tol.rtol * abs(Double(r))
            ratio = bound > 0 ? diff / bound : .infinity
        }
        if ratio > 1 { c.failures += 1 }
        if ratio.isInfinite { c.maxAbsError = .infinity }
        if ratio > worstRatio {
            worstRatio = ratio
            c.worstIndex = i
            c.worstGot = g
            c.worstRef = r
        }
    }
    return c
}

/// "1.2e-05"-style formatting without Foundation.
func sci(_ x: Double) -> String {
    if x == 0 { return "0" }
    if !x.isFinite { return x.isNaN ? "nan" : "inf" }
    var e = 0
    var m = abs(x)
    while m >= 10 { m /= 10; e += 1 }
    while m < 1 { m *= 10; e -= 1 }
    var tenths = Int((m * 10).rounded())
    if tenths >= 100 { tenths /= 10; e += 1 }
    let sign = x < 0 ? "-" : ""
    return "\(sign)\(tenths / 10).\(tenths % 10)e\(e < 0 ? "-" : "+")\(abs(e) < 10 ? "0" : "")\(abs(e))"
}
