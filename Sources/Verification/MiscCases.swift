import CNNCore

/// Descriptors of the elementwise, loss, optimizer and reduction families.
extension OpDescriptor {
    /// relu, reluBackward, add, mul, scale, axpy, fill, copy over `count` elements.
    package static func elementwise(count n: Int) -> [OpDescriptor] {
        let name = "n\(n)"
        /// x, x2 and y (read by axpy, overwritten by the others); `setup` runs once, before any run.
        func op(_ op: String, _ tol: Tolerance, setup: @escaping @Sendable (any Backend, Tensor) throws -> Void = { _, _ in },
                _ body: @escaping @Sendable (any Backend, Tensor, Tensor, Tensor) throws -> Void) -> OpDescriptor {
            OpDescriptor(op: op, shape: name, family: "elementwise") { b, inp in
                let x = try b.tensor(inp.uniform(n), [n]), x2 = try b.tensor(inp.uniform(n), [n])
                let y = try b.tensor(inp.uniform(n), [n])
                try setup(b, x)
                return PreparedOp(run: { try body(b, x, x2, y) }, outputs: { [try b.output("y", y, tol)] })
            }
        }
        return [
            op("relu", .exact) { b, x, _, y in try b.relu(x: x, y: y) },
            // A real ReLU output: zeros and positives.
            op("reluBackward", .exact, setup: { b, x in try b.relu(x: x, y: x) }) { b, x, dy, dx in
                try b.reluBackward(y: x, dy: dy, dx: dx)
            },
            op("add", .exact) { b, x, x2, y in try b.add(x, x2, y: y) },
            op("mul", .exact) { b, x, x2, y in try b.mul(x, x2, y: y) },
            op("scale", .exact) { b, x, _, y in try b.scale(x, by: -0.37, y: y) },
            op("axpy", .elementwise) { b, x, _, y in try b.axpy(alpha: 0.7, x: x, y: y) },
            op("fill", .exact) { b, _, _, y in try b.fill(y, value: 2.5) },
            op("copy", .exact) { b, x, _, y in try b.copy(x, to: y) },
        ]
    }

    /// Inverted dropout: the mask must equal the CPU's bit for bit (same counter-based RNG).
    package static func dropoutForward(count n: Int, probability p: Float, seed s: UInt64 = 2024) -> OpDescriptor {
        OpDescriptor(op: "dropoutForward", shape: "n\(n) p\(p)", family: "elementwise", bytes: 4 * 3 * Double(n)) { b, inp in
            let x = try b.tensor(inp.uniform(n), [n])
            let y = try b.junk([n]), mask = try b.junk([n])
            return PreparedOp(run: { try b.dropoutForward(x: x, y: y, mask: mask, probability: p, seed: s) },
                              outputs: { [try b.output("y", y, .exact), try b.output("mask", mask, .exact)] })
        }
    }

    package static func softmax(rows n: Int, classes k: Int) -> OpDescriptor {
        OpDescriptor(op: "softmax", shape: "(\(n), \(k))", family: "loss", bytes: 4 * 2 * Double(n * k),
                     seedKey: "softmax\(n),\(k)") { b, inp in
            let x = try b.tensor(inp.uniform(n * k, -4, 4), [n, k])
            let y = try b.junk([n, k])
            return PreparedOp(run: { try b.softmax(x: x, y: y) }, outputs: { [try b.output("y", y, .reduction(length: k))] })
        }
    }

    package static func softmaxCrossEntropy(rows n: Int, classes k: Int, soft: Bool, smoothing: Float = 0,
                                           gradient: Bool = true) -> OpDescriptor {
        let name = "(\(n), \(k)) \(soft ? "soft targets" : "labels")" + (smoothing != 0 ? " smoothing \(smoothing)" : "")
            + (gradient ? "" : " no gradient")
        return OpDescriptor(op: "softmaxCrossEntropy", shape: name, family: "loss",
                            bytes: 4 * Double((gradient ? 2 : 1) * n * k + (soft ? n * k : n) + n)) { b, inp in
            let logits = try b.tensor(inp.uniform(n * k, -4, 4), [n, k])
            let targets: LossTargets = soft ? .soft(try b.tensor(inp.distributions(n, k), [n, k]))
                : .labels(try b.tensor(inp.labels(n, classes: k), [n]))
            let losses = try b.junk([n])
            let d = gradient ? try b.junk([n, k]) : nil
            return PreparedOp(run: {
                try b.softmaxCrossEntropy(logits: logits, targets: targets, labelSmoothing: smoothing, losses: losses,
                                          dLogits: d, gradScale: 1 / Float(n))
            }, outputs: {
                var outs = [try b.output("losses", losses, .reduction(length: k))]
                if let d { outs.append(try b.output("dLogits", d, .reduction(length: k))) }
                return outs
            })
        }
    }

    /// `steps` steps, each with its own gradients (verification runs all of them; a benchmark
    /// cycles through them).
    package static func sgdStep(count n: Int, hyper h: SGDHyper, steps: Int = 2) -> OpDescriptor {
        let name = "n\(n) lr \(h.learningRate)" + (h.momentum != 0 ? " momentum \(h.momentum)" : "")
            + (h.nesterov ? " nesterov" : "") + (h.dampening != 0 ? " dampening \(h.dampening)" : "")
            + (h.weightDecay != 0 ? " wd \(h.weightDecay)" : "") + " x\(steps)"
        return OpDescriptor(op: "sgdStep", shape: name, family: "optimizer", bytes: 4 * 5 * Double(n), verifyRuns: steps) { b, inp in
            let p = try b.tensor(inp.uniform(n), [n]), buf = try b.makeTensor([n])
            let grads = try (0..<steps).map { _ in try b.tensor(inp.uniform(n), [n]) }
            var step = 0
            return PreparedOp(run: {
                try b.sgdStep(params: p, grads: grads[step % steps], momentumBuffer: h.momentum != 0 ? buf : nil, hyper: h)
                step += 1
            }, outputs: {
                var outs = [try b.output("params", p, .transcendental)]
                if h.momentum != 0 { outs.append(try b.output("momentumBuffer", buf, .transcendental)) }
                return outs
            })
        }
    }

    package static func adamStep(count n: Int, hyper h: AdamHyper, steps: Int = 3) -> OpDescriptor {
        let name = "n\(n) lr \(h.learningRate)" + (h.weightDecay != 0 ? " wd \(h.weightDecay)" : "")
            + (h.decoupled ? " AdamW" : " Adam") + " x\(steps)"
        return OpDescriptor(op: "adamStep", shape: name, family: "optimizer", bytes: 4 * 7 * Double(n), verifyRuns: steps) { b, inp in
            let p = try b.tensor(inp.uniform(n), [n]), m = try b.makeTensor([n]), v = try b.makeTensor([n])
            let grads = try (0..<steps).map { _ in try b.tensor(inp.uniform(n), [n]) }
            var step = 0
            return PreparedOp(run: {
                step += 1
                try b.adamStep(params: p, grads: grads[(step - 1) % steps], m: m, v: v, hyper: h, step: step)
            }, outputs: {
                [try b.output("params", p, .transcendental), try b.output("m", m, .transcendental),
                 try b.output("v", v, .transcendental)]
            })
        }
    }

    /// sum or sumOfSquares, overwriting or accumulating.
    package static func sum(count n: Int, squares: Bool, accumulate: Bool) -> OpDescriptor {
        OpDescriptor(op: squares ? "sumOfSquares" : "sum", shape: "n\(n)" + (accumulate ? " accumulate" : ""), family: "reduction",
                     bytes: 4 * Double(n)) { b, inp in
            let x = try b.tensor(inp.uniform(n), [n])
            let out = try b.tensor([accumulate ? 3.25 : 1234.5], [1])
            return PreparedOp(run: {
                if squares { try b.sumOfSquares(x, into: out, accumulate: accumulate) }
                else { try b.sum(x, into: out, accumulate: accumulate) }
            }, outputs: { [try b.output("out", out, .reduction(length: n))] })
        }
    }

    /// sum and sumOfSquares, overwriting and accumulating.
    package static func sums(count n: Int) -> [OpDescriptor] {
        [false, true].flatMap { squares in [false, true].map { sum(count: n, squares: squares, accumulate: $0) } }
    }

    /// argmax over (n, k) logits (ties included: coarse values).
    package static func argmax(rows n: Int, classes k: Int) -> OpDescriptor {
        OpDescriptor(op: "argmax", shape: "(\(n), \(k))", family: "reduction", bytes: 4 * Double(n * k + n)) { b, inp in
            let x = try b.tensor(inp.coarse(n * k), [n, k])
            let out = try b.junkInts([n])
            return PreparedOp(run: { try b.argmax(x, into: out) }, outputs: { [try b.output("out", out, .exact)] })
        }
    }

    /// countCorrect over (n, k) logits (ties included), accumulating.
    package static func countCorrect(rows n: Int, classes k: Int) -> OpDescriptor {
        OpDescriptor(op: "countCorrect", shape: "(\(n), \(k)) accumulate", family: "reduction", bytes: 4 * Double(n * k + n),
                     seedKey: "countCorrect(\(n), \(k))") { b, inp in
            let x = try b.tensor(inp.coarse(n * k), [n, k])
            let labels = try b.tensor(inp.labels(n, classes: k), [n])
            let out = try b.tensor([Float(5)], [1])
            return PreparedOp(run: { try b.countCorrect(logits: x, labels: labels, into: out, accumulate: true) },
                              outputs: { [try b.output("out", out, .exact)] })
        }
    }
}
