/// The argument contract of every `Backend` primitive: one function per op, named as the Backend
/// method, checking shapes, dtypes, aliasing and hyperparameters. Every backend's entry point calls
/// it before touching any output, so a rejected call changes nothing and every device rejects the
/// same bad call with the same message (`ContractTests` runs the same bad calls against the CPU
/// backend, the reference and OpenCL). What only one backend can check (where a tensor lives, data
/// values such as an out-of-range argmax index) stays in that backend.
package enum Contract {
    // MARK: Aliasing

    /// Throws unless `out` shares no element with any of `inputs` (the op does not allow aliasing).
    static func disjoint(_ out: Tensor, _ outName: String, from inputs: [(Tensor?, String)], _ op: String) throws {
        for case let (t?, name) in inputs where out.overlaps(t) {
            throw CNNError.invalidArgument(
                "\(op): \(outName) \(out.shape) overlaps \(name) \(t.shape) in memory; \(op) does not work in place — pass a separate \(outName)")
        }
    }

    /// Throws unless `out` is exactly `input` (in place) or shares no element with it.
    static func sameOrDisjoint(_ out: Tensor, _ outName: String, _ input: Tensor, _ inName: String, _ op: String) throws {
        if out.overlaps(input) && !(out.offset == input.offset && out.count == input.count) {
            throw CNNError.invalidArgument(
                "\(op): \(outName) partially overlaps \(inName) (offsets \(out.offset) and \(input.offset)); "
                + "pass the same view to work in place, or a disjoint one")
        }
    }

    /// (N, C, S) of an (N, C, *) tensor, naming the argument when the rank is too small.
    static func channels(_ t: Tensor, _ name: String, _ op: String) throws -> (n: Int, c: Int, s: Int) {
        try require(t.shape.rank >= 2, "\(op): \(name) must be an (N, C, ...) tensor, got \(t.shape)")
        return (t.shape[0], t.shape[1], t.shape.spatialCount)
    }

    /// (N, K) of a matrix, naming the argument when it is not rank 2.
    static func rows(_ t: Tensor, _ name: String, _ op: String) throws -> (n: Int, k: Int) {
        try require(t.shape.rank == 2, "\(op): \(name) must be an (N, K) matrix, got \(t.shape)")
        return (t.shape[0], t.shape[1])
    }

    static func finite(_ v: Float, _ name: String, _ op: String) throws {
        try require(v.isFinite, "\(op): \(name) must be finite, got \(v)")
    }

    // MARK: Memory

    package static func transfer(_ t: Tensor, count: Int, dtype: DType, _ op: String) throws {
        try Check.dtype(t, dtype, "tensor", op)
        try require(count == t.count, "\(op): \(count) host values for tensor \(t.shape) of \(t.count) elements; pass a buffer of exactly \(t.count)")
    }

    package static func copy(_ src: Tensor, _ dst: Tensor) throws {
        let op = "copy"
        try Check.dtype(dst, src.dtype, "dst", op)
        try Check.sameCount(src, dst, "src and dst", op)
        try disjoint(dst, "dst", from: [(src, "src")], op)
    }

    // MARK: GEMM

    package static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: Tensor, lda: Int, strideA: Int,
                     b: Tensor, ldb: Int, strideB: Int, c: Tensor, ldc: Int, strideC: Int, batch: Int, op: String) throws {
        try require(strideA >= 0 && strideB >= 0 && strideC >= 0,
                    "\(op): negative batch stride strideA=\(strideA) strideB=\(strideB) strideC=\(strideC)")
        do {
            try Check.gemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, strideA: strideA,
                           b: b, ldb: ldb, strideB: strideB, c: c, ldc: ldc, strideC: strideC, batch: batch)
        } catch let e as CNNError where op != "gemm" && e.message.hasPrefix("gemm:") {
            throw CNNError(e.kind, op + e.message.dropFirst("gemm".count))   // name the op that was called
        }
        // The outputs of different items must not overlap: each C spans (m - 1) * ldc + n elements.
        let span = m == 0 || n == 0 ? 0 : (m - 1) * ldc + n
        try require(batch <= 1 || strideC >= span,
                    "\(op): strideC = \(strideC) makes the \(batch) C matrices (each spanning \(span) elements with ldc \(ldc)) overlap; "
                    + "use strideC >= \(span)")
        try disjoint(c, "C", from: [(a, "A"), (b, "B")], op)
    }

    // MARK: Convolution

    /// Shapes shared by im2col (x -> cols) and col2im (cols -> x).
    package static func columns(x: Tensor, cols: Tensor, _ g: Conv2DGeometry, op: String) throws {
        try Check.conv(g, x: x, weight: nil, bias: nil, y: nil, op: op)
        try Check.dtype(cols, .float32, "cols", op)
        try Check.shape(cols, g.colsShape, "cols", op)
        try disjoint(cols, "cols", from: [(x, "x")], op)
    }

    package static func conv2DForward(x: Tensor, weight: Tensor, bias: Tensor?, y: Tensor, _ g: Conv2DGeometry) throws {
        let op = "conv2DForward"
        try Check.conv(g, x: x, weight: weight, bias: bias, y: y, op: op)
        try disjoint(y, "y", from: [(x, "x"), (weight, "weight"), (bias, "bias")], op)
    }

    package static func conv2DBackwardData(dy: Tensor, weight: Tensor, dx: Tensor, _ g: Conv2DGeometry) throws {
        let op = "conv2DBackwardData"
        try Check.conv(g, x: nil, weight: weight, bias: nil, y: nil, op: op)
        try Check.float([(dy, "dy"), (dx, "dx")], op)
        try Check.shape(dy, g.outputShape, "dy", op)
        try Check.shape(dx, g.inputShape, "dx", op)
        try disjoint(dx, "dx", from: [(dy, "dy"), (weight, "weight")], op)
    }

    package static func conv2DBackwardFilter(x: Tensor, dy: Tensor, dWeight: Tensor, dBias: Tensor?, _ g: Conv2DGeometry) throws {
        let op = "conv2DBackwardFilter"
        try Check.conv(g, x: x, weight: nil, bias: nil, y: nil, op: op)
        try Check.float([(dy, "dy"), (dWeight, "dWeight")], op)
        try Check.shape(dy, g.outputShape, "dy", op)
        try Check.shape(dWeight, g.weightShape, "dWeight", op)
        try disjoint(dWeight, "dWeight", from: [(x, "x"), (dy, "dy"), (dBias, "dBias")], op)
        if let dBias {
            try Check.dtype(dBias, .float32, "dBias", op)
            try Check.count(dBias, g.outChannels, "dBias", op)
            try disjoint(dBias, "dBias", from: [(x, "x"), (dy, "dy")], op)
        }
    }

    /// (N, C, S) of y.
    package static func biasAdd(y: Tensor, bias: Tensor) throws -> (n: Int, c: Int, s: Int) {
        let op = "biasAdd"
        try Check.float([(y, "y"), (bias, "bias")], op)
        let (n, c, s) = try channels(y, "y", op)
        try Check.count(bias, c, "bias", op)
        try disjoint(y, "y", from: [(bias, "bias")], op)
        return (n, c, s)
    }

    /// (N, C, S) of dy.
    package static func biasGrad(dy: Tensor, dBias: Tensor) throws -> (n: Int, c: Int, s: Int) {
        let op = "biasGrad"
        try Check.float([(dy, "dy"), (dBias, "dBias")], op)
        let (n, c, s) = try channels(dy, "dy", op)
        try Check.count(dBias, c, "dBias", op)
        try disjoint(dBias, "dBias", from: [(dy, "dy")], op)
        return (n, c, s)
    }

    // MARK: Pooling

    package static func maxPool2DForward(x: Tensor, y: Tensor, argmax: Tensor, _ g: Pool2DGeometry) throws {
        let op = "maxPool2DForward"
        try Check.pool(g, x: x, y: y, argmax: argmax, op: op)
        try disjoint(y, "y", from: [(x, "x"), (argmax, "argmax")], op)
        try disjoint(argmax, "argmax", from: [(x, "x")], op)
    }

    package static func maxPool2DBackward(dy: Tensor, argmax: Tensor, dx: Tensor, _ g: Pool2DGeometry) throws {
        let op = "maxPool2DBackward"
        try poolGradients(dy: dy, dx: dx, g, op: op)
        try Check.dtype(argmax, .int32, "argmax", op)
        try Check.shape(argmax, g.outputShape, "argmax", op)
        try disjoint(dx, "dx", from: [(dy, "dy"), (argmax, "argmax")], op)
    }

    package static func avgPool2DForward(x: Tensor, y: Tensor, _ g: Pool2DGeometry) throws {
        let op = "avgPool2DForward"
        try Check.pool(g, x: x, y: y, argmax: nil, op: op)
        try disjoint(y, "y", from: [(x, "x")], op)
    }

    package static func avgPool2DBackward(dy: Tensor, dx: Tensor, _ g: Pool2DGeometry) throws {
        let op = "avgPool2DBackward"
        try poolGradients(dy: dy, dx: dx, g, op: op)
        try disjoint(dx, "dx", from: [(dy, "dy")], op)
    }

    static func poolGradients(dy: Tensor, dx: Tensor, _ g: Pool2DGeometry, op: String) throws {
        try g.validate()
        try Check.float([(dy, "dy"), (dx, "dx")], op)
        try Check.shape(dy, g.outputShape, "dy", op)
        try Check.shape(dx, g.inputShape, "dx", op)
    }

    // MARK: BatchNorm

    /// (N, C, S) of x; every (C) parameter checked. `outputs` must not overlap anything else.
    static func batchNorm(x: Tensor, perChannel: [(Tensor, String)], full: [(Tensor, String)],
                          outputs: [(Tensor, String)], epsilon: Float, op: String) throws -> (n: Int, c: Int, s: Int) {
        try Check.dtype(x, .float32, "x", op)
        let (n, c, s) = try channels(x, "x", op)
        for (t, name) in perChannel {
            try Check.dtype(t, .float32, name, op)
            try Check.count(t, c, name, op)
        }
        for (t, name) in full {
            try Check.dtype(t, .float32, name, op)
            try Check.shape(t, x.shape, name, op)
        }
        try require(epsilon >= 0 && epsilon.isFinite, "\(op): epsilon must be finite and >= 0, got \(epsilon)")
        let all = [(x, "x")] + perChannel + full
        for (out, outName) in outputs {
            try disjoint(out, outName, from: all.filter { $0.1 != outName }.map { ($0.0, $0.1) }, op)
        }
        return (n, c, s)
    }

    /// (N, C, S) of x.
    package static func batchNormForwardTraining(x: Tensor, gamma: Tensor, beta: Tensor, y: Tensor,
                                                 runningMean: Tensor, runningVar: Tensor, saveMean: Tensor, saveInvStd: Tensor,
                                                 momentum: Float, epsilon: Float) throws -> (n: Int, c: Int, s: Int) {
        let op = "batchNormForwardTraining"
        let (n, c, s) = try batchNorm(
            x: x, perChannel: [(gamma, "gamma"), (beta, "beta"), (runningMean, "runningMean"), (runningVar, "runningVar"),
                               (saveMean, "saveMean"), (saveInvStd, "saveInvStd")],
            full: [(y, "y")],
            outputs: [(y, "y"), (runningMean, "runningMean"), (runningVar, "runningVar"), (saveMean, "saveMean"), (saveInvStd, "saveInvStd")],
            epsilon: epsilon, op: op)
        try require(momentum >= 0 && momentum <= 1, "\(op): momentum must be in [0, 1], got \(momentum)")
        try require(n * s >= 2, "\(op): x \(x.shape) has \(n * s) value per channel; training-mode BatchNorm needs at least 2 "
                    + "(the unbiased variance divides by N*spatial - 1, as PyTorch) — use a batch of 2 or more, or drop the last partial batch")
        return (n, c, s)
    }

    /// (N, C, S) of x.
    package static func batchNormForwardInference(x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor,
                                                  y: Tensor, epsilon: Float) throws -> (n: Int, c: Int, s: Int) {
        try batchNorm(
            x: x, perChannel: [(gamma, "gamma"), (beta, "beta"), (runningMean, "runningMean"), (runningVar, "runningVar")],
            full: [(y, "y")], outputs: [(y, "y")], epsilon: epsilon, op: "batchNormForwardInference")
    }

    /// (N, C, S) of x.
    package static func batchNormBackward(x: Tensor, dy: Tensor, gamma: Tensor, saveMean: Tensor, saveInvStd: Tensor,
                                          dx: Tensor, dGamma: Tensor, dBeta: Tensor) throws -> (n: Int, c: Int, s: Int) {
        let (n, c, s) = try batchNorm(
            x: x, perChannel: [(gamma, "gamma"), (saveMean, "saveMean"), (saveInvStd, "saveInvStd"), (dGamma, "dGamma"), (dBeta, "dBeta")],
            full: [(dy, "dy"), (dx, "dx")], outputs: [(dx, "dx"), (dGamma, "dGamma"), (dBeta, "dBeta")], epsilon: 0,
            op: "batchNormBackward")
        try require(n * s > 0, "batchNormBackward: x \(x.shape) is empty; there is no batch statistic to differentiate")
        return (n, c, s)
    }

    // MARK: Elementwise

    static func unary(_ x: Tensor, _ xName: String, _ y: Tensor, _ yName: String, op: String) throws {
        try Check.float([(x, xName), (y, yName)], op)
        try Check.shape(y, x.shape, yName, op)
        try sameOrDisjoint(y, yName, x, xName, op)
    }

    package static func relu(x: Tensor, y: Tensor) throws {
        try unary(x, "x", y, "y", op: "relu")
    }

    /// dx may be dy (in place) but not y.
    package static func reluBackward(y: Tensor, dy: Tensor, dx: Tensor) throws {
        let op = "reluBackward"
        try unary(dy, "dy", dx, "dx", op: op)
        try Check.dtype(y, .float32, "y", op)
        try Check.shape(y, dy.shape, "y", op)
        try disjoint(dx, "dx", from: [(y, "y")], op)
    }

    package static func dropoutForward(x: Tensor, y: Tensor, mask: Tensor, probability p: Float) throws {
        let op = "dropoutForward"
        try unary(x, "x", y, "y", op: op)
        try Check.dtype(mask, .float32, "mask", op)
        try Check.shape(mask, x.shape, "mask", op)
        try disjoint(mask, "mask", from: [(x, "x"), (y, "y")], op)
        try require(p >= 0 && p < 1, "\(op): probability must be in [0, 1), got \(p)")
        try require(UInt64(x.count) <= UInt64(UInt32.max) + 1, "\(op): \(x.count) elements exceed the 2^32 counter range of CounterRNG")
    }

    /// `add` and `mul`: y may be a or b (in place).
    package static func binary(_ a: Tensor, _ b: Tensor, y: Tensor, op: String) throws {
        try Check.float([(a, "a"), (b, "b"), (y, "y")], op)
        try Check.shape(b, a.shape, "b", op)
        try unary(a, "a", y, "y", op: op)
        try sameOrDisjoint(y, "y", b, "b", op)
    }

    /// `scale` and `axpy`: y may be x (in place).
    package static func scale(_ x: Tensor, y: Tensor, op: String) throws {
        try unary(x, "x", y, "y", op: op)
    }

    package static func fill(_ t: Tensor) throws {
        try Check.dtype(t, .float32, "t", "fill")
    }

    // MARK: Loss

    /// (N, K) of x.
    package static func softmax(x: Tensor, y: Tensor) throws -> (n: Int, k: Int) {
        let op = "softmax"
        try Check.float([(x, "x"), (y, "y")], op)
        let (n, k) = try rows(x, "x", op)
        try require(k >= 1, "\(op): x \(x.shape) has no classes")
        try Check.shape(y, x.shape, "y", op)
        try disjoint(y, "y", from: [(x, "x")], op)
        return (n, k)
    }

    /// (N, K) of logits.
    package static func softmaxCrossEntropy(logits: Tensor, targets: LossTargets, labelSmoothing: Float,
                                    losses: Tensor, dLogits: Tensor?, gradScale: Float) throws -> (n: Int, k: Int) {
        let op = "softmaxCrossEntropy"
        try Check.dtype(logits, .float32, "logits", op)
        let (n, k) = try rows(logits, "logits", op)
        try require(k >= 1, "\(op): logits \(logits.shape) has no classes")
        let target: Tensor
        switch targets {
        case .labels(let t):
            try Check.dtype(t, .int32, "labels", op)
            try Check.count(t, n, "labels", op)
            target = t
        case .soft(let t):
            try Check.dtype(t, .float32, "soft targets", op)
            try Check.shape(t, [n, k], "soft targets", op)
            target = t
        }
        try require(labelSmoothing >= 0 && labelSmoothing <= 1, "\(op): labelSmoothing must be in [0, 1], got \(labelSmoothing)")
        try finite(gradScale, "gradScale", op)
        try Check.dtype(losses, .float32, "losses", op)
        try Check.count(losses, n, "losses", op)
        try disjoint(losses, "losses", from: [(logits, "logits"), (target, "targets"), (dLogits, "dLogits")], op)
        if let dLogits {
            try Check.dtype(dLogits, .float32, "dLogits", op)
            try Check.shape(dLogits, [n, k], "dLogits", op)
            try disjoint(dLogits, "dLogits", from: [(logits, "logits"), (target, "targets")], op)
        }
        return (n, k)
    }

    // MARK: Optimizers

    static func optimizer(params: Tensor, grads: Tensor, state: [(Tensor, String)], op: String) throws {
        let all = [(params, "params"), (grads, "grads")] + state
        try Check.float(all, op)
        for (t, name) in all.dropFirst() { try Check.count(t, params.count, name, op) }
        for (i, (t, name)) in all.enumerated() {
            try disjoint(t, name, from: all.enumerated().filter { $0.offset != i }.map { ($0.element.0, $0.element.1) }, op)
        }
    }

    package static func sgdStep(params: Tensor, grads: Tensor, momentumBuffer: Tensor?, hyper h: SGDHyper) throws {
        let op = "sgdStep"
        for (v, name) in [(h.learningRate, "learningRate"), (h.momentum, "momentum"), (h.dampening, "dampening"), (h.weightDecay, "weightDecay")] {
            try finite(v, name, op)
        }
        try require(h.learningRate >= 0 && h.momentum >= 0 && h.weightDecay >= 0,
                    "\(op): learningRate, momentum and weightDecay must be >= 0, got \(h)")
        try require(!h.nesterov || (h.momentum > 0 && h.dampening == 0),
                    "\(op): Nesterov momentum needs momentum > 0 and dampening 0 (as PyTorch), got \(h)")
        try require(h.momentum == 0 || momentumBuffer != nil,
                    "\(op): momentum \(h.momentum) needs a momentumBuffer with as many elements as params")
        try optimizer(params: params, grads: grads, state: momentumBuffer.map { [($0, "momentumBuffer")] } ?? [], op: op)
    }

    package static func adamStep(params: Tensor, grads: Tensor, m: Tensor, v: Tensor, hyper h: AdamHyper, step: Int) throws {
        let op = "adamStep"
        try require(step >= 1, "\(op): step counts from 1, got \(step)")
        for (x, name) in [(h.learningRate, "learningRate"), (h.epsilon, "epsilon"), (h.weightDecay, "weightDecay")] {
            try finite(x, name, op)
            try require(x >= 0, "\(op): \(name) must be >= 0, got \(x)")
        }
        try require(h.beta1 >= 0 && h.beta1 < 1 && h.beta2 >= 0 && h.beta2 < 1,
                    "\(op): beta1 and beta2 must be in [0, 1), got \(h.beta1), \(h.beta2)")
        try optimizer(params: params, grads: grads, state: [(m, "m"), (v, "v")], op: op)
    }

    // MARK: Reductions

    static func scalarOut(_ x: Tensor, _ out: Tensor, op: String) throws {
        try Check.float([(x, "x"), (out, "out")], op)
        try Check.count(out, 1, "out", op)
        try disjoint(out, "out", from: [(x, "x")], op)
    }

    /// `sum` and `sumOfSquares`.
    package static func sum(_ x: Tensor, into out: Tensor, op: String) throws {
        try scalarOut(x, out, op: op)
    }

    /// (N, K) of x.
    package static func argmax(_ x: Tensor, into out: Tensor) throws -> (n: Int, k: Int) {
        let op = "argmax"
        try Check.dtype(x, .float32, "x", op)
        let (n, k) = try rows(x, "x", op)
        try require(k >= 1, "\(op): x \(x.shape) has no columns to take the maximum of")
        try Check.dtype(out, .int32, "out", op)
        try Check.count(out, n, "out", op)
        return (n, k)
    }

    /// (N, K) of logits.
    package static func countCorrect(logits: Tensor, labels: Tensor, into out: Tensor) throws -> (n: Int, k: Int) {
        let op = "countCorrect"
        try Check.dtype(logits, .float32, "logits", op)
        let (n, k) = try rows(logits, "logits", op)
        try require(k >= 1, "\(op): logits \(logits.shape) has no classes")
        try Check.dtype(labels, .int32, "labels", op)
        try Check.count(labels, n, "labels", op)
        try scalarOut(logits, out, op: op)
        try disjoint(out, "out", from: [(labels, "labels")], op)
        return (n, k)
    }
}
