import CNNCore

/// One output of a primitive, read back to the host, with the tolerance it is judged by.
package struct VerifyOutput: Sendable {
    package var name: String
    package var values: [Float]
    package var tolerance: Tolerance
    package init(name: String, values: [Float], tolerance: Tolerance) {
        self.name = name
        self.values = values
        self.tolerance = tolerance
    }
}

/// One primitive over one shape. `run` creates its inputs from a fixed seed (so every backend gets
/// the same values), pre-fills outputs with junk (so an op that accumulates instead of overwriting
/// is caught), calls the primitive and reads the outputs back.
package struct VerifyCase: Sendable, CustomStringConvertible {
    /// The primitive's name, as in the Backend protocol (e.g. "conv2DForward").
    package var op: String
    /// The shape / variant, e.g. "conv N64 3->32 32x32 k3x3 s1x1 p1x1 relu".
    package var shape: String
    package var run: @Sendable (any Backend) throws -> [VerifyOutput]

    package init(op: String, shape: String, run: @escaping @Sendable (any Backend) throws -> [VerifyOutput]) {
        self.op = op
        self.shape = shape
        self.run = run
    }
    package var description: String { "\(op) \(shape)" }
}

/// Deterministic input values: the same on every backend.
struct Inputs {
    var rng: SeededRNG
    init(_ seed: UInt64) { rng = SeededRNG(seed: seed) }

    mutating func uniform(_ n: Int, _ lo: Float = -1, _ hi: Float = 1) -> [Float] {
        (0..<n).map { _ in rng.uniform(lo, hi) }
    }
    /// Values on a coarse grid (multiples of 1/4 in [-1, 1]): many ties, for first-maximum rules.
    mutating func coarse(_ n: Int) -> [Float] {
        (0..<n).map { _ in Float(rng.nextInt(9) - 4) / 4 }
    }
    mutating func labels(_ n: Int, classes: Int) -> [Int32] {
        (0..<n).map { _ in Int32(rng.nextInt(classes)) }
    }
    /// Rows of a probability distribution (soft targets), (n, k).
    mutating func distributions(_ n: Int, _ k: Int) -> [Float] {
        var out: [Float] = []
        for _ in 0..<n {
            let row = uniform(k, 0, 1)
            let s = row.reduce(0, +)
            out += row.map { $0 / s }
        }
        return out
    }
}

/// Helpers the case builders share.
extension Backend {
    func tensor(_ values: [Float], _ shape: Shape) throws -> Tensor { try upload(values, shape: shape) }
    func tensor(_ values: [Int32], _ shape: Shape) throws -> Tensor { try upload(values, shape: shape) }
    /// A float tensor pre-filled with junk (a large constant), for outputs that must be overwritten.
    func junk(_ shape: Shape) throws -> Tensor { try upload([Float](repeating: 1234.5, count: shape.count), shape: shape) }
    func junkInts(_ shape: Shape) throws -> Tensor { try upload([Int32](repeating: -77, count: shape.count), shape: shape) }
    func output(_ name: String, _ t: Tensor, _ tol: Tolerance) throws -> VerifyOutput {
        switch t.dtype {
        case .float32: return VerifyOutput(name: name, values: try floats(t), tolerance: tol)
        case .int32: return VerifyOutput(name: name, values: try ints(t).map(Float.init), tolerance: tol)
        }
    }
}

/// A stable per-case seed from its description (FNV-1a), so adding a case does not change others.
func seed(_ text: String) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in text.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return h
}
