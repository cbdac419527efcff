import CNNCore

/// Convolution launchers (kernels in Kernels/conv.cl, GEMMs through CLBlast).
///
/// Forward: im2col of the whole batch into the workspace, cols: (N, K, P) with K = Cin*KH*KW,
/// P = OH*OW; then ONE strided-batched GEMM y_n (Cout, P) = W (Cout, K) * cols_n (K, P) with W's
/// stride 0; then bias + activation in one elementwise pass.
/// Backward data: one strided-batched GEMM dcols_n (K, P) = W^T * dy_n, then col2im (a gather).
/// Backward filter: im2col, one strided-batched GEMM of per-image dW_n (Cout, K) = dy_n * cols_n^T,
/// then a fixed-order sum over the batch; the bias gradient by a local-memory reduction.
/// If the workspace would exceed `workspaceLimit` floats the batch is processed in chunks
/// (each chunk still one GEMM). A 1x1 kernel with stride 1 and no padding skips im2col/col2im.
extension OpenCLBackend {
    /// Largest workspace in floats: a quarter of the largest allocation, at most 64 Mi floats (256 MiB).
    var workspaceLimit: Int {
        if let forced = workspaceLimitOverride { return forced }
        let maxAlloc = deviceInfo.maxAllocationBytes == 0 ? UInt64(1 << 30) : deviceInfo.maxAllocationBytes
        return max(1 << 20, min(Int(maxAlloc / 16), 64 << 20))
    }

    /// The geometry's scalar arguments, in the order the conv.cl kernels take them.
    private func geometryArgs(_ g: Conv2DGeometry) -> [KernelArg] {
        [.int(g.inChannels), .int(g.height), .int(g.width), .int(g.kernelH), .int(g.kernelW),
         .int(g.strideH), .int(g.strideW), .int(g.padH), .int(g.padW), .int(g.outHeight), .int(g.outWidth)]
    }

    private func isPointwise(_ g: Conv2DGeometry) -> Bool {
        g.kernelH == 1 && g.kernelW == 1 && g.strideH == 1 && g.strideW == 1 && g.padH == 0 && g.padW == 0
    }

    /// Images per chunk so that `perImage` floats each fit the workspace.
    private func imagesPerChunk(_ g: Conv2DGeometry, perImage: Int) -> Int {
        max(1, min(g.batch, workspaceLimit / max(perImage, 1)))
    }

    private func withBatch(_ g: Conv2DGeometry, _ n: Int) -> Conv2DGeometry {
        var h = g
        h.batch = n
        return h
    }

    public func im2col(x: Tensor, cols: Tensor, geometry g: Conv2DGeometry) throws {
        try Contract.columns(x: x, cols: cols, g, op: "im2col")
        try enqueueIm2col(x: x, cols: cols, g)
    }

    public func col2im(cols: Tensor, x: Tensor, geometry g: Conv2DGeometry) throws {
        try Contract.columns(x: x, cols: cols, g, op: "col2im")
        try enqueueCol2im(cols: cols, x: x, g)
    }

    private func enqueueIm2col(x: Tensor, cols: Tensor, _ g: Conv2DGeometry) throws {
        let total = g.batch * g.inChannels * g.outHeight * g.outWidth   // one work-item per (n, c, oh, ow)
        try launch1D(.conv, "im2col", count: total, [.tensor(x), .tensor(cols)] + geometryArgs(g) + [.int(total)])
    }

    private func enqueueCol2im(cols: Tensor, x: Tensor, _ g: Conv2DGeometry) throws {
        let total = g.batch * g.inChannels * g.height * g.width
        try launch1D(.conv, "col2im", count: total, [.tensor(cols), .tensor(x)] + geometryArgs(g) + [.int(total)])
    }

    public func conv2DForward(x: Tensor, weight: Tensor, bias: Tensor?, y: Tensor,
                              geometry g: Conv2DGeometry, activation: Activation) throws {
        let op = "conv2DForward"
        try Contract.conv2DForward(x: x, weight: weight, bias: bias, y: y, g)
        let K = g.patchSize, P = g.outHeight * g.outWidth, perImage = K * P
        let chunk = isPointwise(g) ? g.batch : imagesPerChunk(g, perImage: perImage)
        for n0 in stride(from: 0, to: g.batch, by: chunk) {
            let nb = min(chunk, g.batch - n0)
            let xs = x.slice(n0..<n0 + nb), ys = y.slice(n0..<n0 + nb)
            let cols: Tensor
            if isPointwise(g) {
                cols = xs   // (nb, Cin, H*W) is already (nb, K, P)
            } else {
                cols = try workspace(nb * perImage, op)
                try enqueueIm2col(x: xs, cols: cols, withBatch(g, nb))
            }
            try enqueueGemm(transA: false, transB: false, m: g.outChannels, n: P, k: K, alpha: 1,
                            a: weight, lda: K, strideA: 0, b: cols, ldb: P, strideB: perImage,
                            beta: 0, c: ys, ldc: P, strideC: g.outChannels * P, batch: nb)
        }
        if let bias {
            try enqueueBiasAdd(y: y, bias: bias, channels: g.outChannels, spatial: P, activation: activation)
        } else if activation == .relu {
            try launch1D(.elementwise, "relu", count: y.count, [.tensor(y), .tensor(y), .int(y.count)])
        }
    }

    public func conv2DBackwardData(dy: Tensor, weight: Tensor, dx: Tensor, geometry g: Conv2DGeometry) throws {
        let op = "conv2DBackwardData"
        try Contract.conv2DBackwardData(dy: dy, weight: weight, dx: dx, g)
        let K = g.patchSize, P = g.outHeight * g.outWidth, perImage = K * P
        let chunk = isPointwise(g) ? g.batch : imagesPerChunk(g, perImage: perImage)
        for n0 in stride(from: 0, to: g.batch, by: chunk) {
            let nb = min(chunk, g.batch - n0)
            let dys = dy.slice(n0..<n0 + nb), dxs = dx.slice(n0..<n0 + nb)
            let dcols = isPointwise(g) ? dxs : try workspace(nb * perImage, op)
            try enqueueGemm(transA: true, transB: false, m: K, n: P, k: g.outChannels, alpha: 1,
                            a: weight, lda: K, strideA: 0, b: dys, ldb: P, strideB: g.outChannels * P,
                            beta: 0, c: dcols, ldc: P, strideC: perImage, batch: nb)
            if !isPointwise(g) { try enqueueCol2im(cols: dcols, x: dxs, withBatch(g, nb)) }
        }
    }

    public func conv2DBackwardFilter(x: Tensor, dy: Tensor, dWeight: Tensor, dBias: Tensor?, geometry g: Conv2DGeometry) throws {
        let op = "conv2DBackwardFilter"
        try Contract.conv2DBackwardFilter(x: x, dy: dy, dWeight: dWeight, dBias: dBias, g)
        let K = g.patchSize, P = g.outHeight * g.outWidth, perImage = K * P, M = g.outChannels * K
        let chunk = imagesPerChunk(g, perImage: (isPointwise(g) ? 0 : perImage) + M)
        for (index, n0) in stride(from: 0, to: g.batch, by: chunk).enumerated() {
            let nb = min(chunk, g.batch - n0)
            let xs = x.slice(n0..<n0 + nb), dys = dy.slice(n0..<n0 + nb)
            let colsCount = isPointwise(g) ? 0 : nb * perImage
            let ws = try workspace(colsCount + nb * M, op)
            let partials = ws.view(elementOffset: colsCount, shape: [nb * M])   // (nb, Cout, K)
            let cols: Tensor
            if isPointwise(g) {
                cols = xs
            } else {
                cols = ws.view(elementOffset: 0, shape: [colsCount])             // (nb, K, P)
                try enqueueIm2col(x: xs, cols: cols, withBatch(g, nb))
            }
            try enqueueGemm(transA: false, transB: true, m: g.outChannels, n: K, k: P, alpha: 1,
                            a: dys, lda: P, strideA: g.outChannels * P, b: cols, ldb: P, strideB: perImage,
                            beta: 0, c: partials, ldc: K, strideC: M, batch: nb)
            try launch1D(.conv, "conv2DBackwardFilterSum", count: M,
                         [.tensor(partials), .tensor(dWeight), .int(nb), .int(M), .int(index > 0 ? 1 : 0)])
        }
        if let dBias { try enqueueBiasGrad(dy: dy, dBias: dBias, n: g.batch, c: g.outChannels, s: P) }
    }

    public func biasAdd(y: Tensor, bias: Tensor, activation: Activation) throws {
        let (_, c, s) = try Contract.biasAdd(y: y, bias: bias)
        try enqueueBiasAdd(y: y, bias: bias, channels: c, spatial: s, activation: activation)
    }

    private func enqueueBiasAdd(y: Tensor, bias: Tensor, channels: Int, spatial: Int, activation: Activation) throws {
        try launch1D(.conv, "biasAdd", count: y.count,
                     [.tensor(y), .tensor(bias), .int(channels), .int(spatial), .int(y.count),
                      .int(activation == .relu ? 1 : 0)])
    }

    public func biasGrad(dy: Tensor, dBias: Tensor) throws {
        let (n, c, s) = try Contract.biasGrad(dy: dy, dBias: dBias)
        try enqueueBiasGrad(dy: dy, dBias: dBias, n: n, c: c, s: s)
    }

    private func enqueueBiasGrad(dy: Tensor, dBias: Tensor, n: Int, c: Int, s: Int) throws {
        guard c > 0 else { return }
        guard n * s > 0 else { try fill(dBias, value: 0); return }
        let (chunks, chunkLen) = channelChunks(m: n * s, channels: c)
        let partials = try scratch(c * chunks)
        try launchReduction(.conv, "biasGradPartial", groups: [chunks, c],
                            [.tensor(dy), .tensor(partials), .int(n), .int(c), .int(s), .int(chunkLen)])
        try launch1D(.conv, "biasGradFinalize", count: c,
                     [.tensor(partials), .tensor(dBias), .int(c), .int(chunks)])
    }

    /// How a per-channel reduction over `m` elements is split: enough work-groups in total to fill
    /// the device (about 8 per compute unit), at least 4 elements per work-item.
    func channelChunks(m: Int, channels: Int) -> (chunks: Int, chunkLen: Int) {
        let wg = reduceWorkGroupSize
        let wanted = max(1, (max(deviceInfo.computeUnits, 1) * 8 + channels - 1) / max(channels, 1))
        let most = max(1, (m + wg * 4 - 1) / (wg * 4))
        var chunks = min(wanted, most)
        let chunkLen = (m + chunks - 1) / chunks
        chunks = (m + chunkLen - 1) / chunkLen
        return (chunks, chunkLen)
    }
}
