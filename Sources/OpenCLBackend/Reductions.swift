import CNNCore

/// Reduction launchers (kernels in Kernels/reductions.cl): scalar sums are a local-memory partial
/// pass over G work-groups, then one work-group sums the G partials (fixed order, deterministic).
extension OpenCLBackend {
    /// Work-groups of a scalar reduction over `n` items: at least 4 items per work-item, at most 256 groups.
    private func reductionGroups(_ n: Int) -> Int {
        max(1, min(256, (n + reduceWorkGroupSize * 4 - 1) / (reduceWorkGroupSize * 4)))
    }

    public func sum(_ x: Tensor, into out: Tensor, accumulate: Bool) throws {
        try scalarSum("sum", x, out, accumulate, square: false)
    }

    public func sumOfSquares(_ x: Tensor, into out: Tensor, accumulate: Bool) throws {
        try scalarSum("sumOfSquares", x, out, accumulate, square: true)
    }

    private func scalarSum(_ op: String, _ x: Tensor, _ out: Tensor, _ accumulate: Bool, square: Bool) throws {
        try Contract.sum(x, into: out, op: op)
        let groups = reductionGroups(x.count)
        let direct = groups == 1 && Fusion.enabled   // one group: the partial pass writes out itself
        let partials = direct ? out : try scratch(groups)
        try launchReduction(.reductions, "sumPartial", groups: [groups],
                            [.tensor(x), .tensor(partials), .int(x.count), .int(square ? 1 : 0), .int(direct && accumulate ? 1 : 0)])
        if !direct { try finalize(partials, groups, out, accumulate) }
    }

    private func finalize(_ partials: Tensor, _ count: Int, _ out: Tensor, _ accumulate: Bool) throws {
        try launchReduction(.reductions, "sumFinalize", groups: [1],
                            [.tensor(partials), .tensor(out), .int(count), .int(accumulate ? 1 : 0)])
    }

    public func argmax(_ x: Tensor, into out: Tensor) throws {
        let (n, k) = try Contract.argmax(x, into: out)
        try launch1D(.reductions, "argmax", count: n, [.tensor(x), .tensor(out), .int(n), .int(k)])
    }

    public func countCorrect(logits: Tensor, labels: Tensor, into out: Tensor, accumulate: Bool) throws {
        let (n, k) = try Contract.countCorrect(logits: logits, labels: labels, into: out)
        let groups = max(1, min(256, (n + reduceWorkGroupSize - 1) / reduceWorkGroupSize))
        let direct = groups == 1 && Fusion.enabled   // one group: the partial pass writes out itself
        let partials = direct ? out : try scratch(groups)
        try launchReduction(.reductions, "countCorrectPartial", groups: [groups],
                            [.tensor(logits), .tensor(labels), .tensor(partials), .int(n), .int(k), .int(direct && accumulate ? 1 : 0)])
        if !direct { try finalize(partials, groups, out, accumulate) }
    }
}
