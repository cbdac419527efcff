import CNNCore

/// Convolution launchers (kernels in Kernels/conv.cl, GEMMs through CLBlast).
///
/// Every pass works on chunks of Nc images (the whole batch unless the workspace would exceed
/// `workspaceLimit` floats) and does ONE plain GEMM per chunk, with the chunk's images side by side
/// in the GEMM's n or k dimension. Columns are laid out (K, Nc*P), K = Cin*KH*KW, P = OH*OW,
/// image-major: image n's column p is column n*P + p.
/// - Forward: im2col of the chunk into cols (K, Nc*P); Y' (Cout, Nc*P) = W (Cout, K) * cols;
///   then one epilogue kernel reorders Y' into NCHW with the bias and the activation fused.
/// - Backward data: dY' (Cout, Nc*P) = dy reordered from NCHW (one kernel); dcols (K, Nc*P) =
///   W^T * dY'; col2im from that layout.
/// - Backward filter: dY' as above and cols by im2col; dW (Cout, K) = dY' * cols^T with
///   k = Nc*P, straight into dWeight: beta 0 for the first chunk, 1 after (no per-image partials,
///   no serial sum over the batch). The bias gradient stays the deterministic two-stage reduction.
/// Per pass and chunk: 3 launches (2 kernels + 1 CLBlast call) for forward and backward filter
/// (plus 2 for the bias gradient). Backward data right after backward filter of the same dy (what
/// `Conv2d.backward` does) reuses the filter pass's dY' when the batch was one chunk and no command
/// of any kind was enqueued in between (`OutputGradColumns`): 2 launches; else 3.
///
/// A 1x1 convolution with stride 1 and no padding uses the same scheme: its im2col is a plain
/// reorder of x into (Cin, Nc*P) (one pass over x, cheap next to the GEMM), and in exchange it
/// gets the same large GEMM and no batch of per-image GEMMs or partial sums.
///
/// Why im2col + large GEMM rather than a hand-written implicit-GEMM kernel: the large GEMMs (conv2
/// of `optimized` at batch 128: M 64, N 32768, K 288 forward; dW 64 x 288 with k 32768) are the
/// shape CLBlast's tuned, indirect (tiled, local-memory) kernels are made for, on every vendor, at
/// the price of writing and reading the columns once (K*Nc*P floats) and one reorder pass over the
/// output — memory traffic a GPU's bandwidth absorbs far better than launch-bound tiny GEMMs (the
/// old per-image path sent every 64x256x288 GEMM to CLBlast's generic XgemmDirect). An implicit-GEMM
/// kernel avoids that traffic but must be tuned per device to beat CLBlast, which cannot be done
/// without a GPU here; it stays the next step if a GPU profile shows the column traffic dominating.
/// Measured on PoCL (2 shared cores, heavy load from other jobs: noisy; best of 5 interleaved runs
/// of `cnn-bench --device opencl --filter 'conv2D*:cnn.*,conv2D*:speedrun.layers.2.4*,conv2D*:speedrun.stem*,train:optimized:128'`,
/// old -> new ms): small spatial maps gain most (speedrun.layers.2.4, 4x4: forward 97 -> 79,
/// backward data 126 -> 83, backward filter 433 -> 84); cnn.conv2 is even (63 -> 65, 65 -> 71,
/// 73 -> 73); the K = 27 input layers lose on a CPU (cnn.conv1 forward 22 -> 32, filter 19 -> 26;
/// speedrun.stem 37 -> 58, 28 -> 43: the extra reorder pass costs more than per-image GEMMs there);
/// train:optimized:128 432 -> 444 ms, within the noise.
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
        let P = g.outHeight * g.outWidth
        try enqueueIm2col(x: x, cols: cols, g, rowStride: P, imageStride: g.patchSize * P)
    }

    public func col2im(cols: Tensor, x: Tensor, geometry g: Conv2DGeometry) throws {
        try Contract.columns(x: x, cols: cols, g, op: "col2im")
        let P = g.outHeight * g.outWidth
        try enqueueCol2im(cols: cols, x: x, g, rowStride: P, imageStride: g.patchSize * P)
    }

    /// im2col into either layout: (N, K, P) is rowStride P, imageStride K*P; (K, N*P) is rowStride
    /// N*P, imageStride P.
    private func enqueueIm2col(x: Tensor, cols: Tensor, _ g: Conv2DGeometry, rowStride: Int, imageStride: Int) throws {
        let total = g.batch * g.inChannels * g.outHeight * g.outWidth   // one work-item per (n, c, oh, ow)
        try launch1D(.conv, "im2col", count: total, [.tensor(x), .tensor(cols)] + geometryArgs(g)
                     + [.int(rowStride), .int(imageStride), .int(total)])
    }

    private func enqueueCol2im(cols: Tensor, x: Tensor, _ g: Conv2DGeometry, rowStride: Int, imageStride: Int) throws {
        let total = g.batch * g.inChannels * g.height * g.width
        try launch1D(.conv, "col2im", count: total, [.tensor(cols), .tensor(x)] + geometryArgs(g)
                     + [.int(rowStride), .int(imageStride), .int(total)])
    }

    /// The stamp `OutputGradColumns` compares: every command and wait so far.
    private var commandStamp: Int { commandCounters.kernelLaunches + commandCounters.blockingCalls }

    /// dym (Cout, nb*P) = the NCHW output gradients `dys` of a chunk of nb images.
    private func enqueueOutputGradColumns(dy dys: Tensor, into dym: Tensor, nb: Int, channels: Int, spatial: Int) throws {
        try launchPlanes(.conv, "convOutputGradColumns", planeSize: spatial, channels: channels, images: nb, tensors: [dys, dym],
                         [.tensor(dys), .tensor(dym), .int(nb), .int(channels), .int(spatial)])
    }

    public func conv2DForward(x: Tensor, weight: Tensor, bias: Tensor?, y: Tensor,
                              geometry g: Conv2DGeometry, activation: Activation) throws {
        let op = "conv2DForward"
        try Contract.conv2DForward(x: x, weight: weight, bias: bias, y: y, g)
        let K = g.patchSize, P = g.outHeight * g.outWidth, C = g.outChannels
        let chunk = imagesPerChunk(g, perImage: (K + C) * P)
        for n0 in stride(from: 0, to: g.batch, by: chunk) {
            let nb = min(chunk, g.batch - n0), NP = nb * P
            let xs = x.slice(n0..<n0 + nb), ys = y.slice(n0..<n0 + nb)
            let ws = try workspace((K + C) * NP, op)
            let cols = ws.view(elementOffset: 0, shape: [K * NP])          // (K, nb*P)
            let ym = ws.view(elementOffset: K * NP, shape: [C * NP])       // (Cout, nb*P)
            try enqueueIm2col(x: xs, cols: cols, withBatch(g, nb), rowStride: NP, imageStride: P)
            try enqueueGemm(transA: false, transB: false, m: C, n: NP, k: K, alpha: 1,
                            a: weight, lda: K, strideA: 0, b: cols, ldb: NP, strideB: 0,
                            beta: 0, c: ym, ldc: NP, strideC: 0, batch: 1)
            try launchPlanes(.conv, "convForwardEpilogue", planeSize: P, channels: C, images: nb, tensors: [ym, ys],
                             [.tensor(ym), .tensor(ys), .optional(bias), .int(bias == nil ? 0 : 1),
                              .int(nb), .int(C), .int(P), .int(activation == .relu ? 1 : 0)])
        }
    }

    public func conv2DBackwardData(dy: Tensor, weight: Tensor, dx: Tensor, geometry g: Conv2DGeometry) throws {
        let op = "conv2DBackwardData"
        try Contract.conv2DBackwardData(dy: dy, weight: weight, dx: dx, g)
        let K = g.patchSize, P = g.outHeight * g.outWidth, C = g.outChannels
        let chunk = imagesPerChunk(g, perImage: (K + C) * P)
        for n0 in stride(from: 0, to: g.batch, by: chunk) {
            let nb = min(chunk, g.batch - n0), NP = nb * P
            let dys = dy.slice(n0..<n0 + nb), dxs = dx.slice(n0..<n0 + nb)
            let ws = try workspace((K + C) * NP, op)
            let dym = ws.view(elementOffset: 0, shape: [C * NP])           // (Cout, nb*P)
            let dcols = ws.view(elementOffset: C * NP, shape: [K * NP])    // (K, nb*P)
            let held = OutputGradColumns(dy: dys, workspace: ws, channels: C, spatial: P, stamp: commandStamp)
            if nb < g.batch || outputGradColumns != held {
                try enqueueOutputGradColumns(dy: dys, into: dym, nb: nb, channels: C, spatial: P)
            }
            outputGradColumns = nil
            try enqueueGemm(transA: true, transB: false, m: K, n: NP, k: C, alpha: 1,
                            a: weight, lda: K, strideA: 0, b: dym, ldb: NP, strideB: 0,
                            beta: 0, c: dcols, ldc: NP, strideC: 0, batch: 1)
            try enqueueCol2im(cols: dcols, x: dxs, withBatch(g, nb), rowStride: NP, imageStride: P)
        }
    }

    public func conv2DBackwardFilter(x: Tensor, dy: Tensor, dWeight: Tensor, dBias: Tensor?, geometry g: Conv2DGeometry) throws {
        let op = "conv2DBackwardFilter"
        try Contract.conv2DBackwardFilter(x: x, dy: dy, dWeight: dWeight, dBias: dBias, g)
        let K = g.patchSize, P = g.outHeight * g.outWidth, C = g.outChannels
        // The bias gradient first, so that the last command is the GEMM that read dY' (see above).
        if let dBias { try enqueueBiasGrad(dy: dy, dBias: dBias, n: g.batch, c: g.outChannels, s: P) }
        outputGradColumns = nil
        let chunk = imagesPerChunk(g, perImage: (K + C) * P)
        for (index, n0) in stride(from: 0, to: g.batch, by: chunk).enumerated() {
            let nb = min(chunk, g.batch - n0), NP = nb * P
            let xs = x.slice(n0..<n0 + nb), dys = dy.slice(n0..<n0 + nb)
            let ws = try workspace((K + C) * NP, op)
            let dym = ws.view(elementOffset: 0, shape: [C * NP])           // (Cout, nb*P)
            let cols = ws.view(elementOffset: C * NP, shape: [K * NP])     // (K, nb*P)
            try enqueueIm2col(x: xs, cols: cols, withBatch(g, nb), rowStride: NP, imageStride: P)
            try enqueueOutputGradColumns(dy: dys, into: dym, nb: nb, channels: C, spatial: P)
            try enqueueGemm(transA: false, transB: true, m: C, n: K, k: NP, alpha: 1,
                            a: dym, lda: NP, strideA: 0, b: cols, ldb: NP, strideB: 0,
                            beta: index == 0 ? 0 : 1, c: dWeight, ldc: K, strideC: 0, batch: 1)
            if nb == g.batch {
                outputGradColumns = OutputGradColumns(dy: dys, workspace: ws, channels: C, spatial: P, stamp: commandStamp)
            }
        }
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
        // One chunk per channel (short channels, e.g. a Linear layer's batch): the partial sums are
        // the result, laid out as dBias — one launch instead of two.
        let direct = chunks == 1 && Fusion.enabled
        let partials = direct ? dBias : try scratch(c * chunks)
        try launchReduction(.conv, "biasGradPartial", groups: [chunks, c],
                            [.tensor(dy), .tensor(partials), .int(n), .int(c), .int(s), .int(chunkLen)])
        if direct { return }
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

/// Which output gradients the convolution workspace holds as dY' (Cout, N*P) columns at its start,
/// written by `conv2DBackwardFilter` for a batch of one chunk. `conv2DBackwardData` of the same dy
/// (same buffer, offset and shape) skips its reorder only if the workspace is the same buffer and
/// the stamp (every command and wait this backend has issued) has not moved since: then nothing can
/// have changed dy or the workspace in between.
struct OutputGradColumns: Equatable {
    var dyBuffer: ObjectIdentifier
    var dyOffset: Int
    var dyShape: [Int]
    var workspaceBuffer: ObjectIdentifier
    var channels: Int
    var spatial: Int
    var stamp: Int

    init(dy: Tensor, workspace: Tensor, channels: Int, spatial: Int, stamp: Int) {
        dyBuffer = ObjectIdentifier(dy.storage)
        dyOffset = dy.offset
        dyShape = dy.shape.dims
        workspaceBuffer = ObjectIdentifier(workspace.storage)
        self.channels = channels
        self.spatial = spatial
        self.stamp = stamp
    }
}
