import CNNCore

/// Elementwise launchers (kernels in Kernels/elementwise.cl): 1-D, one work-item per element.
/// Outputs may alias their inputs exactly (each work-item reads its element before writing it).
extension OpenCLBackend {
    private func checkUnary(_ op: String, _ x: Tensor, _ y: Tensor) throws {
        try Check.float([(x, "x"), (y, "y")], op)
        try Check.sameCount(x, y, "x and y", op)
        try require(!y.overlaps(x) || (y.offset == x.offset), "\(op): y overlaps x without being x")
    }

    public func relu(x: Tensor, y: Tensor) throws {
        try checkUnary("relu", x, y)
        try launch1D(.elementwise, "relu", count: x.count, [.tensor(x), .tensor(y), .int(x.count)])
    }

    public func reluBackward(y: Tensor, dy: Tensor, dx: Tensor) throws {
        try Check.float([(y, "y"), (dy, "dy"), (dx, "dx")], "reluBackward")
        try Check.sameCount(y, dy, "y and dy", "reluBackward")
        try Check.sameCount(dy, dx, "dy and dx", "reluBackward")
        try launch1D(.elementwise, "reluBackward", count: dx.count, [.tensor(y), .tensor(dy), .tensor(dx), .int(dx.count)])
    }

    public func dropoutForward(x: Tensor, y: Tensor, mask: Tensor, probability p: Float, seed: UInt64) throws {
        let op = "dropoutForward"
        try checkUnary(op, x, y)
        try Check.dtype(mask, .float32, "mask", op)
        try Check.sameCount(x, mask, "x and mask", op)
        try require(p >= 0 && p < 1, "\(op): probability \(p) must be in [0, 1)")
        try require(x.count <= Int(UInt32.max), "\(op): \(x.count) elements exceed the RNG's 32-bit index")
        let key = CounterRNG.key(seed: seed)
        let scale: Float = 1 / (1 - p)
        try launch1D(.elementwise, "dropoutForward", count: x.count,
                     [.tensor(x), .tensor(y), .tensor(mask), .int(x.count), .uint(key), .float(p), .float(scale)])
    }

    private func binary(_ name: String, _ a: Tensor, _ b: Tensor, _ y: Tensor) throws {
        try Check.float([(a, "a"), (b, "b"), (y, "y")], name)
        try Check.sameCount(a, b, "a and b", name)
        try Check.sameCount(a, y, "a and y", name)
        try launch1D(.elementwise, name, count: y.count, [.tensor(a), .tensor(b), .tensor(y), .int(y.count)])
    }

    public func add(_ a: Tensor, _ b: Tensor, y: Tensor) throws { try binary("add", a, b, y) }
    public func mul(_ a: Tensor, _ b: Tensor, y: Tensor) throws { try binary("mul", a, b, y) }

    public func scale(_ x: Tensor, by alpha: Float, y: Tensor) throws {
        try checkUnary("scale", x, y)
        try launch1D(.elementwise, "scale", count: x.count, [.tensor(x), .tensor(y), .int(x.count), .float(alpha)])
    }

    public func axpy(alpha: Float, x: Tensor, y: Tensor) throws {
        try checkUnary("axpy", x, y)
        try launch1D(.elementwise, "axpy", count: x.count, [.tensor(x), .tensor(y), .int(x.count), .float(alpha)])
    }

    public func fill(_ t: Tensor, value: Float) throws {
        try Check.dtype(t, .float32, "t", "fill")
        try launch1D(.elementwise, "fill", count: t.count, [.tensor(t), .int(t.count), .float(value)])
    }
}
