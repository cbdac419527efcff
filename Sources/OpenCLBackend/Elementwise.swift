import CNNCore

/// Elementwise launchers (kernels in Kernels/elementwise.cl): 1-D, one work-item per element, or one
/// per 4 elements (float4 loads and stores, the tail of `count % 4` scalar) when every tensor's
/// offset is a multiple of 4. Outputs may alias their inputs exactly (each work-item reads its
/// elements before writing them).
extension OpenCLBackend {
    /// Launches elementwise kernel `name` over `count` elements: `args` followed by the `vec4` flag.
    /// The float4 path needs 16-byte aligned accesses, so every tensor's offset (in elements) must
    /// be a multiple of 4; below 4 elements there is no float4 body and the scalar path is used.
    private func launchElementwise(_ name: String, count: Int, _ args: [KernelArg]) throws {
        guard count > 0 else { return }
        let aligned = args.allSatisfy { arg in
            if case let .tensor(t) = arg { return t.offset % 4 == 0 }
            return true
        }
        let vec4 = aligned && count >= 4
        let k = try kernel(.elementwise, name)
        try launchTunable(k, global: [vec4 ? (count + 3) / 4 : count], clip: false, args + [.int(vec4 ? 1 : 0)])
    }

    public func relu(x: Tensor, y: Tensor) throws {
        try Contract.relu(x: x, y: y)
        try launchElementwise("relu", count: x.count, [.tensor(x), .tensor(y), .int(x.count)])
    }

    public func reluBackward(y: Tensor, dy: Tensor, dx: Tensor) throws {
        try Contract.reluBackward(y: y, dy: dy, dx: dx)
        try launchElementwise("reluBackward", count: dx.count, [.tensor(y), .tensor(dy), .tensor(dx), .int(dx.count)])
    }

    public func dropoutForward(x: Tensor, y: Tensor, mask: Tensor, probability p: Float, seed: UInt64) throws {
        try Contract.dropoutForward(x: x, y: y, mask: mask, probability: p)
        let key = CounterRNG.key(seed: seed)
        let scale: Float = 1 / (1 - p)
        try launchElementwise("dropoutForward", count: x.count,
                     [.tensor(x), .tensor(y), .tensor(mask), .int(x.count), .uint(key), .float(p), .float(scale)])
    }

    private func binary(_ name: String, _ a: Tensor, _ b: Tensor, _ y: Tensor) throws {
        try Contract.binary(a, b, y: y, op: name)
        try launchElementwise(name, count: y.count, [.tensor(a), .tensor(b), .tensor(y), .int(y.count)])
    }

    public func add(_ a: Tensor, _ b: Tensor, y: Tensor) throws { try binary("add", a, b, y) }
    public func mul(_ a: Tensor, _ b: Tensor, y: Tensor) throws { try binary("mul", a, b, y) }

    public func scale(_ x: Tensor, by alpha: Float, y: Tensor) throws {
        try Contract.scale(x, y: y, op: "scale")
        try launchElementwise("scale", count: x.count, [.tensor(x), .tensor(y), .int(x.count), .float(alpha)])
    }

    public func axpy(alpha: Float, x: Tensor, y: Tensor) throws {
        try Contract.scale(x, y: y, op: "axpy")
        try launchElementwise("axpy", count: x.count, [.tensor(x), .tensor(y), .int(x.count), .float(alpha)])
    }

    public func fill(_ t: Tensor, value: Float) throws {
        try Contract.fill(t)
        try launchElementwise("fill", count: t.count, [.tensor(t), .int(t.count), .float(value)])
    }
}
