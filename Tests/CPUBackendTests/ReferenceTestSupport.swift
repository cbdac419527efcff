import CNNCore
import CPUBackend
import Foundation
import Testing

/// The reference math under test, generic over the element type.
typealias Ref = CPUBackend.Reference

/// A heap buffer of T for calling the pointer-based reference functions from tests.
/// Bind each buffer to a local `let` (never pass `RefBuffer(...).p` of a temporary): a named local
/// lives to the end of its scope across calls through its pointer (Swift's lexical lifetimes).
final class RefBuffer<T> {
    let p: UnsafeMutablePointer<T>
    let count: Int
    init(_ values: [T]) {
        count = values.count
        p = .allocate(capacity: max(count, 1))
        p.initialize(from: values, count: count)
    }
    convenience init(count: Int, value: T) { self.init([T](repeating: value, count: count)) }
    deinit { p.deallocate() }
    var values: [T] { Array(UnsafeBufferPointer(start: p, count: count)) }
    subscript(i: Int) -> T {
        get { p[i] }
        set { p[i] = newValue }
    }
}

extension CPUBackend {
    /// A float32 tensor holding `values` (avoids Float/Int32 literal ambiguity in tests).
    func refUpload(_ values: [Float], _ shape: Shape) throws -> Tensor { try upload(values, shape: shape) }
    /// An int32 tensor holding `values`.
    func refUpload(ints values: [Int32], _ shape: Shape) throws -> Tensor { try upload(values, shape: shape) }
}

enum RefCheck {
    /// Uniform values in [lo, hi) with full Double precision, from a fixed seed.
    static func random(_ count: Int, seed: UInt64, in range: ClosedRange<Double> = -1...1) -> [Double] {
        var rng = SeededRNG(seed: seed)
        return (0..<count).map { _ in range.lowerBound + (range.upperBound - range.lowerBound) * Double(rng.next() >> 11) * 0x1p-53 }
    }

    /// Random values whose pairwise gaps are at least `gap` (a shuffled ladder plus small noise), so
    /// finite differences never cross a kink of max / ReLU.
    static func distinct(_ count: Int, seed: UInt64, gap: Double = 0.01) -> [Double] {
        var rng = SeededRNG(seed: seed)
        var v = (0..<count).map { Double($0) * gap - Double(count) * gap / 2 + 0.25 * gap * Double(rng.next() >> 11) * 0x1p-53 }
        v.shuffle(using: &rng)
        return v
    }

    /// Checks |got - ref| <= atol + rtol * |ref| elementwise and reports the worst index on failure.
    static func close<G: BinaryFloatingPoint, R: BinaryFloatingPoint>(
        _ got: [G], _ ref: [R], atol: Double, rtol: Double, _ what: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        guard got.count == ref.count else {
            Issue.record("\(what): \(got.count) values, expected \(ref.count)", sourceLocation: sourceLocation)
            return
        }
        var worst = -1, worstExcess = -Double.infinity, bad = 0
        for i in 0..<got.count {
            let (g, r) = (Double(got[i]), Double(ref[i]))
            if g == r { continue }   // equal values (also equal infinities) pass
            let diff = abs(g - r)
            let excess = diff.isNaN ? Double.infinity : diff - (atol + rtol * abs(r))
            if excess > 0 { bad += 1 }
            if excess > worstExcess { worstExcess = excess; worst = i }
        }
        if bad > 0 {
            let (g, r) = (Double(got[worst]), Double(ref[worst]))
            let message = "\(what): \(bad) of \(got.count) values outside atol \(atol) + rtol \(rtol)*|ref|; "
                + "worst index \(worst): got \(g), expected \(r), |diff| \(abs(g - r))"
            Issue.record(Comment(rawValue: message), sourceLocation: sourceLocation)
        }
    }

    /// Bit-exact comparison (data movement), reporting the first differing index.
    static func exact<V: BinaryFloatingPoint>(_ got: [V], _ ref: [V], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        guard got.count == ref.count else {
            Issue.record("\(what): \(got.count) values, expected \(ref.count)", sourceLocation: sourceLocation)
            return
        }
        if let i = got.indices.first(where: { !(got[$0] == ref[$0] && got[$0].sign == ref[$0].sign) && !(got[$0].isNaN && ref[$0].isNaN) }) {
            Issue.record("\(what): first difference at index \(i): got \(got[i]), expected \(ref[i])", sourceLocation: sourceLocation)
        }
    }

    /// Central finite differences of a scalar function: (f(x + h e_i) - f(x - h e_i)) / 2h for every i.
    static func numericGradient(_ x: [Double], h: Double = 1e-6, _ f: ([Double]) -> Double) -> [Double] {
        var xp = x
        return x.indices.map { i in
            xp[i] = x[i] + h
            let up = f(xp)
            xp[i] = x[i] - h
            let down = f(xp)
            xp[i] = x[i]
            return (up - down) / (2 * h)
        }
    }

    /// The gradient-check criterion: relative error < 1e-6 against the finite differences.
    /// |analytic - numeric| <= 1e-6 * |numeric| + 1e-6 * max|numeric|. The absolute part (scaled by the
    /// largest gradient entry) is there because entries near zero are limited by the rounding error of
    /// the differenced loss (about 1e-16 * |loss| / h), not by the gradient under test.
    static func gradient(_ analytic: [Double], _ numeric: [Double], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let scale = numeric.map { abs($0) }.max() ?? 0
        #expect(scale > 1e-3, "\(what): the numeric gradient is all (near) zero; the check would be vacuous", sourceLocation: sourceLocation)
        close(analytic, numeric, atol: 1e-6 * scale, rtol: 1e-6, what, sourceLocation: sourceLocation)
    }

    static func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

    /// Expects `body` to throw CNNError.invalidArgument whose message starts with `op` and names `argument`.
    static func throwsInvalid(_ op: String, _ argument: String, sourceLocation: SourceLocation = #_sourceLocation,
                              _ body: () throws -> Void) {
        do {
            try body()
            Issue.record("\(op) with a bad \(argument) did not throw", sourceLocation: sourceLocation)
        } catch let e as CNNError {
            #expect(e.kind == .invalidArgument, "\(e.kind): \(e.message)", sourceLocation: sourceLocation)
            #expect(e.message.hasPrefix(op + ":"), "message does not start with the op name \(op): \(e.message)", sourceLocation: sourceLocation)
            #expect(e.message.contains(argument), "message does not name \(argument): \(e.message)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("\(op) threw \(error), expected CNNError.invalidArgument", sourceLocation: sourceLocation)
        }
    }
}

/// Hand-written shapes for gradient checks: N = 1 and 3, 5x7 and 7x5 planes, strides 1 and 2,
/// padding 0 and 1, non-square kernels.
enum GradCheckShapes {
    static let conv: [Conv2DGeometry] = [
        Conv2DGeometry(batch: 1, inChannels: 2, height: 5, width: 7, outChannels: 3, kernelH: 3, kernelW: 2),
        Conv2DGeometry(batch: 3, inChannels: 2, height: 7, width: 5, outChannels: 2, kernelH: 2, kernelW: 3,
                       strideH: 2, strideW: 2, padH: 1, padW: 1),
        Conv2DGeometry(batch: 1, inChannels: 1, height: 5, width: 7, outChannels: 2, kernelH: 3, kernelW: 3,
                       strideH: 2, strideW: 1, padH: 1, padW: 0),
        Conv2DGeometry(batch: 3, inChannels: 3, height: 5, width: 7, outChannels: 2, kernelH: 1, kernelW: 3,
                       strideH: 1, strideW: 2, padH: 0, padW: 1),
    ]
    static let pool: [Pool2DGeometry] = [
        Pool2DGeometry(batch: 1, channels: 2, height: 5, width: 7, kernelH: 2, kernelW: 2, strideH: 2, strideW: 2),
        Pool2DGeometry(batch: 3, channels: 2, height: 7, width: 5, kernelH: 3, kernelW: 2, strideH: 2, strideW: 1, padH: 1, padW: 1),
        Pool2DGeometry(batch: 1, channels: 1, height: 5, width: 7, kernelH: 3, kernelW: 3, strideH: 1, strideW: 1, padH: 1, padW: 1),
        Pool2DGeometry(batch: 3, channels: 1, height: 7, width: 5, kernelH: 2, kernelW: 3, strideH: 1, strideW: 2, padH: 0, padW: 1),
    ]
}
