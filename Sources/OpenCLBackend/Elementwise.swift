import CNNCore

/// Elementwise launchers (kernels in Kernels/elementwise.cl): 1-D, one work-item per element.
/// Outputs may alias their inputs exactly (each work-item reads its element before writing it).
extension OpenCLBackend {
    public func relu(x: Tensor, y: Tensor) throws {
        try Contract.relu(x: x, y: y)
        try launch1D(.elementwise, "relu", count: x.count, [.tensor(x), .tensor(y), .int(x.count)])
    }

    public func reluBackward(y: Tensor, dy: Tensor, dx: Tensor) throws {
        try Contract.reluBackward(y: y, dy: dy, dx: dx)
        try launch1D(.elementwise, "reluBackward", count: dx.count, [.tensor(y), .tensor(dy), .tensor(dx), .int(dx.count)])
    }

    public func dropoutForward(x: Tensor, y: Tensor, mask: Tensor, probability p: Float, seed: UInt64) throws {
        try Contract.dropoutForward(x: x, y: y, mask: mask, probability: p)
        let key = CounterRNG.key(seed: seed)
        let scale: Float = 1 / (1 - p)
        try launch1D(.elementwise, "dropoutForward", count: x.count,
                     [.tensor(x), .tensor(y), .tensor(mask), .int(x.count), .uint(key), .float(p), .float(scale)])
    }

    private func binary(_ name: String, _ a: Tensor, _ b: Tensor, _ y: Tensor) throws {
        try Contract.binary(a, b, y: y, op: name)
        try launch1D(.elementwise, name, count: y.count, [.tensor(a), .tensor(b), .tensor(y), .int(y.count)])
    }

    public func add(_ a: Tensor, _ b: Tensor, y: Tensor) throws { try binary("add", a, b, y) }
    public func mul(_ a: Tensor, _ b: Tensor, y: Tensor) throws { try binary("mul", a, b, y) }

    public func scale(_ x: Tensor, by alpha: Float, y: Tensor) throws {
        try Contract.scale(x, y: y, op: "scale")
        try launch1D(.elementwise, "scale", count: x.count, [.tensor(x), .tensor(y), .int(x.count), .float(alpha)])
    }

    public func axpy(alpha: Float, x: Tensor, y: Tensor) throws {
        try Contract.scale(x, y: y, op: "axpy")
        try launch1D(.elementwise, "axpy", count: x.count, [.tensor(x), .tensor(y), .int(x.count), .float(alpha)])
    }

    public func fill(_ t: Tensor, value: Float) throws {
        try Contract.fill(t)
        try launch1D(.elementwise, "fill", count: t.count, [.tensor(t), .int(t.count), .float(value)])
    }
}
