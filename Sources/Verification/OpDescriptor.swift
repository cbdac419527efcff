import CNNCore

/// One primitive at concrete parameters: the single description that both `cnn verify`'s suites
/// (`VerifySuite`) and cnn-bench's per-op cases are generated from.
///
/// Each primitive has exactly one factory (a static function in ConvCases.swift, LayerCases.swift
/// or MiscCases.swift) that says
/// - how to build its inputs on a backend (from a seed derived from op and shape, so every backend
///   gets the same values), with outputs pre-filled with junk (an op that accumulates instead of
///   overwriting is caught),
/// - how to run it (repeatably: cnn-bench times `run` many times),
/// - which outputs to compare, with which tolerance (Tolerance.swift),
/// - and, for the benchmark, its family, FLOPs and minimum bytes per run, what a reference check
///   costs, how to rebuild it at a smaller batch and where possible a sampled float64 check.
package struct OpDescriptor: Sendable, CustomStringConvertible {
    /// The primitive's name, as in the Backend protocol (e.g. "conv2DForward").
    package var op: String
    /// The shape / variant, e.g. "N64 3->32 32x32 k3x3 s1x1 p1x1 relu".
    package var shape: String
    /// gemm, conv, pool, batchnorm, elementwise, loss, optimizer or reduction.
    package var family: String
    /// Floating-point operations per run (a multiply-add is 2), where meaningful.
    package var flops: Double?
    /// Minimum memory traffic per run (every tensor read or written once), where meaningful.
    package var bytes: Double?
    /// Multiply-accumulates of one reference run (0 where negligible).
    package var referenceMACs: Double = 0
    /// The batch axis the descriptor can be rebuilt at (`atBatch`), nil when it has none.
    package var batch: Int?
    var rebatch: (@Sendable (Int) -> OpDescriptor)?
    /// Runs per verification (optimizer steps are checked over several steps of accumulated state).
    var verifyRuns = 1
    /// The input seed's text (op + shape unless a case has kept an older name).
    var seedKey: String?
    var setup: @Sendable (any Backend, inout Inputs) throws -> PreparedOp

    init(op: String, shape: String, family: String, flops: Double? = nil, bytes: Double? = nil, referenceMACs: Double = 0,
         batch: Int? = nil, rebatch: (@Sendable (Int) -> OpDescriptor)? = nil, verifyRuns: Int = 1, seedKey: String? = nil,
         setup: @escaping @Sendable (any Backend, inout Inputs) throws -> PreparedOp) {
        self.op = op
        self.shape = shape
        self.family = family
        self.flops = flops
        self.bytes = bytes
        self.referenceMACs = referenceMACs
        self.batch = batch
        self.rebatch = rebatch
        self.verifyRuns = verifyRuns
        self.seedKey = seedKey
        self.setup = setup
    }

    package var description: String { "\(op) \(shape)" }

    /// Uploads the inputs and allocates the outputs on `backend`.
    package func prepare(on backend: any Backend) throws -> PreparedOp {
        var inp = Inputs(seed(seedKey ?? op + shape))
        return try setup(backend, &inp)
    }

    /// The same primitive with the batch axis set to `n` (a reference check of a case too large
    /// for the reference at full size), or nil when it has no batch axis.
    package func atBatch(_ n: Int) -> OpDescriptor? { rebatch?(n) }

    /// The verification case: prepare, run (`verifyRuns` times), read the outputs back.
    package var verifyCase: VerifyCase {
        let d = self
        return VerifyCase(op: op, shape: shape) { b in
            let p = try d.prepare(on: b)
            for _ in 0..<d.verifyRuns { try p.run() }
            return try p.outputs()
        }
    }
}

/// A descriptor set up on one backend.
package struct PreparedOp {
    /// One run of the primitive (enqueued; the caller synchronizes).
    package var run: () throws -> Void
    /// The outputs after the latest run, read back, with their tolerances.
    package var outputs: () throws -> [VerifyOutput]
    /// The outputs of the latest run at sampled elements against float64 sums on the host (for
    /// shapes too large for a full reference run); nil where the primitive has none.
    package var sampled: (() throws -> [SampledOutput])?

    init(run: @escaping () throws -> Void, outputs: @escaping () throws -> [VerifyOutput],
         sampled: (() throws -> [SampledOutput])? = nil) {
        self.run = run
        self.outputs = outputs
        self.sampled = sampled
    }
}

/// Some elements of one output and their float64 reference.
package struct SampledOutput: Sendable {
    package var name: String
    package var got: [Float]
    package var reference: [Float]
    package var tolerance: Tolerance
}

/// How many elements a sampled check looks at.
let sampledElements = 256
