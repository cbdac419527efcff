import CNNCore

/// Pooling launchers (kernels in Kernels/pooling.cl): one work-item per output element forward,
/// one per input element backward (gathers, no atomics).
extension OpenCLBackend {
    private func poolArgs(_ g: Pool2DGeometry) -> [KernelArg] {
        [.int(g.batch * g.channels), .int(g.height), .int(g.width), .int(g.kernelH), .int(g.kernelW),
         .int(g.strideH), .int(g.strideW), .int(g.padH), .int(g.padW), .int(g.outHeight), .int(g.outWidth)]
    }

    public func maxPool2DForward(x: Tensor, y: Tensor, argmax: Tensor, geometry g: Pool2DGeometry) throws {
        try Contract.maxPool2DForward(x: x, y: y, argmax: argmax, g)
        try launch1D(.pooling, "maxPool2DForward", count: y.count,
                     [.tensor(x), .tensor(y), .tensor(argmax)] + poolArgs(g))
    }

    public func maxPool2DBackward(dy: Tensor, argmax: Tensor, dx: Tensor, geometry g: Pool2DGeometry) throws {
        try Contract.maxPool2DBackward(dy: dy, argmax: argmax, dx: dx, g)
        try launch1D(.pooling, "maxPool2DBackward", count: dx.count,
                     [.tensor(dy), .tensor(argmax), .tensor(dx)] + poolArgs(g))
    }

    public func avgPool2DForward(x: Tensor, y: Tensor, geometry g: Pool2DGeometry) throws {
        try Contract.avgPool2DForward(x: x, y: y, g)
        try launch1D(.pooling, "avgPool2DForward", count: y.count, [.tensor(x), .tensor(y)] + poolArgs(g))
    }

    public func avgPool2DBackward(dy: Tensor, dx: Tensor, geometry g: Pool2DGeometry) throws {
        try Contract.avgPool2DBackward(dy: dy, dx: dx, g)
        try launch1D(.pooling, "avgPool2DBackward", count: dx.count, [.tensor(dy), .tensor(dx)] + poolArgs(g))
    }
}
