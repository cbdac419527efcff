import CNNCore

/// Loss launchers (kernels in Kernels/loss.cl): one work-item per row.
extension OpenCLBackend {
    public func softmax(x: Tensor, y: Tensor) throws {
        let (n, k) = try Check.rows(x, "softmax")
        try Check.float([(x, "x"), (y, "y")], "softmax")
        try Check.shape(y, x.shape, "y", "softmax")
        try require(k > 0, "softmax: rows of \(x.shape) are empty")
        try launch1D(.loss, "softmax", count: n, [.tensor(x), .tensor(y), .int(n), .int(k)])
    }

    public func softmaxCrossEntropy(logits: Tensor, targets: LossTargets, labelSmoothing: Float,
                                    losses: Tensor, dLogits: Tensor?, gradScale: Float) throws {
        let op = "softmaxCrossEntropy"
        let (n, k) = try Check.rows(logits, op)
        try Check.float([(logits, "logits"), (losses, "losses")], op)
        try Check.count(losses, n, "losses", op)
        try require(k > 0, "\(op): rows of \(logits.shape) are empty")
        try require(labelSmoothing >= 0 && labelSmoothing <= 1, "\(op): label smoothing \(labelSmoothing) must be in [0, 1]")
        if let dLogits {
            try Check.dtype(dLogits, .float32, "dLogits", op)
            try Check.shape(dLogits, logits.shape, "dLogits", op)
        }
        let tail: [KernelArg] = [.tensor(losses), .optional(dLogits), .int(n), .int(k), .float(labelSmoothing),
                                 .float(gradScale), .int(dLogits == nil ? 0 : 1)]
        switch targets {
        case let .labels(labels):
            try Check.dtype(labels, .int32, "labels", op)
            try Check.count(labels, n, "labels", op)
            try launch1D(.loss, "softmaxCrossEntropyLabels", count: n, [.tensor(logits), .tensor(labels)] + tail)
        case let .soft(t):
            try Check.dtype(t, .float32, "soft targets", op)
            try Check.shape(t, logits.shape, "soft targets", op)
            try launch1D(.loss, "softmaxCrossEntropySoft", count: n, [.tensor(logits), .tensor(t)] + tail)
        }
    }
}
