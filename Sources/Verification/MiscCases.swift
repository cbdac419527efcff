import CNNCore

/// Cases of the elementwise, loss, optimizer and reduction families.
extension VerifyCase {
    /// relu, reluBackward, add, mul, scale, axpy, fill, copy over `count` elements.
    public static func elementwise(count n: Int) -> [VerifyCase] {
        let name = "n\(n)"
        func unary(_ op: String, _ tol: Tolerance, _ body: @escaping @Sendable (any Backend, Tensor, Tensor, Tensor) throws -> Void)
            -> VerifyCase {
            VerifyCase(op: op, shape: name) { b in
                var inp = Inputs(seed(op + name))
                let x = try b.tensor(inp.uniform(n), [n]), x2 = try b.tensor(inp.uniform(n), [n])
                let y = try b.tensor(inp.uniform(n), [n])   // read by axpy, overwritten by the others
                try body(b, x, x2, y)
                return [try b.output("y", y, tol)]
            }
        }
        return [
            unary("relu", .exact) { b, x, _, y in try b.relu(x: x, y: y) },
            unary("reluBackward", .exact) { b, x, dy, dx in
                try b.relu(x: x, y: x)   // a real ReLU output: zeros and positives
                try b.reluBackward(y: x, dy: dy, dx: dx)
            },
            unary("add", .exact) { b, x, x2, y in try b.add(x, x2, y: y) },
            unary("mul", .exact) { b, x, x2, y in try b.mul(x, x2, y: y) },
            unary("scale", .exact) { b, x, _, y in try b.scale(x, by: -0.37, y: y) },
            unary("axpy", .elementwise) { b, x, _, y in try b.axpy(alpha: 0.7, x: x, y: y) },
            unary("fill", .exact) { b, _, _, y in try b.fill(y, value: 2.5) },
            unary("copy", .exact) { b, x, _, y in try b.copy(x, to: y) },
        ]
    }

    /// Inverted dropout: the mask must equal the CPU's bit for bit (same counter-based RNG).
    public static func dropoutForward(count n: Int, probability p: Float, seed s: UInt64 = 2024) -> VerifyCase {
        let name = "n\(n) p\(p)"
        return VerifyCase(op: "dropoutForward", shape: name) { b in
            var inp = Inputs(seed("dropoutForward" + name))
            let x = try b.tensor(inp.uniform(n), [n])
            let y = try b.junk([n]), mask = try b.junk([n])
            try b.dropoutForward(x: x, y: y, mask: mask, probability: p, seed: s)
            return [try b.output("y", y, .exact), try b.output("mask", mask, .exact)]
        }
    }

    public static func softmax(rows n: Int, classes k: Int) -> VerifyCase {
        VerifyCase(op: "softmax", shape: "(\(n), \(k))") { b in
            var inp = Inputs(seed("softmax\(n),\(k)"))
            let x = try b.tensor(inp.uniform(n * k, -4, 4), [n, k])
            let y = try b.junk([n, k])
            try b.softmax(x: x, y: y)
            return [try b.output("y", y, .reduction(length: k))]
        }
    }

    public static func softmaxCrossEntropy(rows n: Int, classes k: Int, soft: Bool, smoothing: Float = 0,
                                           gradient: Bool = true) -> VerifyCase {
        let name = "(\(n), \(k)) \(soft ? "soft targets" : "labels")" + (smoothing != 0 ? " smoothing \(smoothing)" : "")
            + (gradient ? "" : " no gradient")
        return VerifyCase(op: "softmaxCrossEntropy", shape: name) { b in
            var inp = Inputs(seed("softmaxCrossEntropy" + name))
            let logits = try b.tensor(inp.uniform(n * k, -4, 4), [n, k])
            let targets: LossTargets = soft ? .soft(try b.tensor(inp.distributions(n, k), [n, k]))
                : .labels(try b.tensor(inp.labels(n, classes: k), [n]))
            let losses = try b.junk([n])
            let d = gradient ? try b.junk([n, k]) : nil
            try b.softmaxCrossEntropy(logits: logits, targets: targets, labelSmoothing: smoothing, losses: losses,
                                      dLogits: d, gradScale: 1 / Float(n))
            var outs = [try b.output("losses", losses, .reduction(length: k))]
            if let d { outs.append(try b.output("dLogits", d, .reduction(length: k))) }
            return outs
        }
    }

    public static func sgdStep(count n: Int, hyper h: SGDHyper, steps: Int = 2) -> VerifyCase {
        let name = "n\(n) lr \(h.learningRate)" + (h.momentum != 0 ? " momentum \(h.momentum)" : "")
            + (h.nesterov ? " nesterov" : "") + (h.dampening != 0 ? " dampening \(h.dampening)" : "")
            + (h.weightDecay != 0 ? " wd \(h.weightDecay)" : "") + " x\(steps)"
        return VerifyCase(op: "sgdStep", shape: name) { b in
            var inp = Inputs(seed("sgdStep" + name))
            let p = try b.tensor(inp.uniform(n), [n]), buf = try b.makeTensor([n])
            for _ in 0..<steps {
                let g = try b.tensor(inp.uniform(n), [n])
                try b.sgdStep(params: p, grads: g, momentumBuffer: h.momentum != 0 ? buf : nil, hyper: h)
            }
            var outs = [try b.output("params", p, .transcendental)]
            if h.momentum != 0 { outs.append(try b.output("momentumBuffer", buf, .transcendental)) }
            return outs
        }
    }

    public static func adamStep(count n: Int, hyper h: AdamHyper, steps: Int = 3) -> VerifyCase {
        let name = "n\(n) lr \(h.learningRate)" + (h.weightDecay != 0 ? " wd \(h.weightDecay)" : "")
            + (h.decoupled ? " AdamW" : " Adam") + " x\(steps)"
        return VerifyCase(op: "adamStep", shape: name) { b in
            var inp = Inputs(seed("adamStep" + name))
            let p = try b.tensor(inp.uniform(n), [n]), m = try b.makeTensor([n]), v = try b.makeTensor([n])
            for step in 1...steps {
                let g = try b.tensor(inp.uniform(n), [n])
                try b.adamStep(params: p, grads: g, m: m, v: v, hyper: h, step: step)
            }
            return [try b.output("params", p, .transcendental), try b.output("m", m, .transcendental),
                    try b.output("v", v, .transcendental)]
        }
    }

    /// sum and sumOfSquares, overwriting and accumulating.
    public static func sums(count n: Int) -> [VerifyCase] {
        [false, true].flatMap { squares in
            [false, true].map { accumulate in
                let op = squares ? "sumOfSquares" : "sum"
                let name = "n\(n)" + (accumulate ? " accumulate" : "")
                return VerifyCase(op: op, shape: name) { b in
                    var inp = Inputs(seed(op + name))
                    let x = try b.tensor(inp.uniform(n), [n])
                    let out = try b.tensor([accumulate ? 3.25 : 1234.5], [1])
                    if squares { try b.sumOfSquares(x, into: out, accumulate: accumulate) }
                    else { try b.sum(x, into: out, accumulate: accumulate) }
                    return [try b.output("out", out, .reduction(length: n))]
                }
            }
        }
    }

    /// argmax and countCorrect over (n, k) logits (ties included: coarse values).
    public static func argmaxAndCount(rows n: Int, classes k: Int) -> [VerifyCase] {
        let name = "(\(n), \(k))"
        let argmax = VerifyCase(op: "argmax", shape: name) { b in
            var inp = Inputs(seed("argmax" + name))
            let x = try b.tensor(inp.coarse(n * k), [n, k])
            let out = try b.junkInts([n])
            try b.argmax(x, into: out)
            return [try b.output("out", out, .exact)]
        }
        let count = VerifyCase(op: "countCorrect", shape: name + " accumulate") { b in
            var inp = Inputs(seed("countCorrect" + name))
            let x = try b.tensor(inp.coarse(n * k), [n, k])
            let labels = try b.tensor(inp.labels(n, classes: k), [n])
            let out = try b.tensor([Float(5)], [1])
            try b.countCorrect(logits: x, labels: labels, into: out, accumulate: true)
            return [try b.output("out", out, .exact)]
        }
        return [argmax, count]
    }
}
