import CNNCore

/// Loss launchers (kernels in Kernels/loss.cl): one work-item per row.
extension OpenCLBackend {
    public func softmax(x: Tensor, y: Tensor) throws {
        let (n, k) = try Contract.softmax(x: x, y: y)
        try launch1D(.loss, "softmax", count: n, [.tensor(x), .tensor(y), .int(n), .int(k)])
    }

    public func softmaxCrossEntropy(logits: Tensor, targets: LossTargets, labelSmoothing: Float,
                                    losses: Tensor, dLogits: Tensor?, gradScale: Float) throws {
        let (n, k) = try Contract.softmaxCrossEntropy(logits: logits, targets: targets, labelSmoothing: labelSmoothing,
                                                     losses: losses, dLogits: dLogits, gradScale: gradScale)
        let tail: [KernelArg] = [.tensor(losses), .optional(dLogits), .int(n), .int(k), .float(labelSmoothing),
                                 .float(gradScale), .int(dLogits == nil ? 0 : 1)]
        switch targets {
        case let .labels(labels):
            try launch1D(.loss, "softmaxCrossEntropyLabels", count: n, [.tensor(logits), .tensor(labels)] + tail)
        case let .soft(t):
            try launch1D(.loss, "softmaxCrossEntropySoft", count: n, [.tensor(logits), .tensor(t)] + tail)
        }
    }
}
