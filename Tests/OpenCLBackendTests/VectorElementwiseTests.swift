import CNNCore
@testable import OpenCLBackend
import Testing

/// The elementwise kernels take a float4 path when every tensor's offset is a multiple of 4 and a
/// scalar path otherwise (and for the tail of n % 4). Both must give exactly the CPU reference's
/// bits (same float ops per element, the dropout mask from the same counter per element index),
/// and neither may touch an element outside its views (guard elements around each view are checked).
@Suite(.enabled(if: OCL.available, "no OpenCL device"))
struct VectorElementwiseTests {
    static let lengths = [1, 3, 4, 5, 1027]
    /// (input offset, output offset) in elements: both aligned (float4), both unaligned, mixed (scalar).
    static let offsets = [(0, 0), (1, 1), (4, 4), (4, 1), (0, 4)]
    static let ops = ["relu", "reluBackward", "dropoutForward", "add", "mul", "scale", "axpy", "fill",
                      "relu in place", "add in place"]

    static let guardCount = 5

    /// Values with negatives, +0 and -0, of varied magnitude; `salt` makes inputs differ.
    static func values(_ count: Int, salt: Int) -> [Float] {
        (0..<count).map { i in
            switch (i + salt) % 7 {
            case 0: return 0
            case 1: return -0.0
            default:
                let u = Float((i &* 2_654_435_761 &+ salt &* 40_503) % 10_007) / 10_007
                return (u - 0.5) * Float(1 + (i % 3) * 100) + 1e-3
            }
        }
    }

    /// A view of `n` elements at offset `off` in storage of `off + n + guardCount` elements, all of
    /// it filled with `values(salt:)`.
    static func view(_ b: any Backend, n: Int, off: Int, salt: Int) throws -> (whole: Tensor, view: Tensor) {
        let total = off + n + guardCount
        let whole = try b.upload(values(total, salt: salt), shape: [total])
        return (whole, whole.view(elementOffset: off, shape: [n]))
    }

    /// Runs `op` on `b`; returns every storage's full contents (views and guards).
    static func run(_ op: String, on b: any Backend, n: Int, inOff: Int, outOff: Int) throws -> [String: [Float]] {
        let x = try view(b, n: n, off: inOff, salt: 1)
        let x2 = try view(b, n: n, off: inOff, salt: 2)
        let y = try view(b, n: n, off: outOff, salt: 3)
        let mask = try view(b, n: n, off: outOff, salt: 4)
        switch op {
        case "relu": try b.relu(x: x.view, y: y.view)
        case "reluBackward": try b.reluBackward(y: x.view, dy: x2.view, dx: y.view)
        case "dropoutForward": try b.dropoutForward(x: x.view, y: y.view, mask: mask.view, probability: 0.3, seed: 12345)
        case "add": try b.add(x.view, x2.view, y: y.view)
        case "mul": try b.mul(x.view, x2.view, y: y.view)
        case "scale": try b.scale(x.view, by: -0.7, y: y.view)
        case "axpy": try b.axpy(alpha: 0.3, x: x.view, y: y.view)
        case "fill": try b.fill(y.view, value: -2.5)
        case "relu in place": try b.relu(x: x.view, y: x.view)
        case "add in place": try b.add(x.view, x2.view, y: x.view)
        default: throw CNNError.invalidArgument("unknown op \(op)")
        }
        return ["x": try b.floats(x.whole), "x2": try b.floats(x2.whole), "y": try b.floats(y.whole), "mask": try b.floats(mask.whole)]
    }

    @Test(arguments: ops)
    func exactOnBothPaths(_ op: String) throws {
        let device = try OCL.backend()
        let reference = OCL.reference()
        for n in Self.lengths {
            for (inOff, outOff) in Self.offsets {
                let expected = try Self.run(op, on: reference, n: n, inOff: inOff, outOff: outOff)
                let got = try Self.run(op, on: device, n: n, inOff: inOff, outOff: outOff)
                for (name, want) in expected.sorted(by: { $0.key < $1.key }) {
                    let have = try #require(got[name])
                    let firstDiff = zip(have, want).enumerated().first { $0.element.0.bitPattern != $0.element.1.bitPattern }
                    #expect(firstDiff == nil,
                            "\(op) n=\(n) offsets in \(inOff) out \(outOff): \(name)[\(firstDiff?.offset ?? -1)] = \(firstDiff?.element.0 ?? 0), reference \(firstDiff?.element.1 ?? 0)")
                }
            }
        }
    }
}
