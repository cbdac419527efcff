import CNNCore

/// Softmax cross-entropy over (N, K) logits with optional label smoothing and soft targets,
/// PyTorch's `nn.CrossEntropyLoss` (mean reduction). Keeps its buffers across steps.
public final class SoftmaxCrossEntropyLoss {
    public let backend: any Backend
    public var labelSmoothing: Float
    private var lossCache = TensorCache(), gradCache = TensorCache()

    public init(backend: any Backend, labelSmoothing: Float = 0) throws {
        try require(labelSmoothing >= 0 && labelSmoothing < 1, "label smoothing must be in [0, 1), got \(labelSmoothing)")
        self.backend = backend
        self.labelSmoothing = labelSmoothing
    }

    /// The same, adding the losses' sum to `lossSum` and the rows whose argmax is `labels` to
    /// `correctSum` in the same primitive (`softmaxCrossEntropyWithTotals`: one launch on OpenCL).
    public func callAsFunction(_ logits: Tensor, _ targets: LossTargets, labels: Tensor, lossSum: Tensor, correctSum: Tensor,
                               gradient: Bool = true) throws -> (losses: Tensor, dLogits: Tensor?) {
        let n = logits.shape[0]
        let losses = try lossCache.tensor([n], on: backend)
        let d = gradient ? try gradCache.tensor(logits.shape, on: backend) : nil
        try backend.softmaxCrossEntropyWithTotals(logits: logits, targets: targets, labelSmoothing: labelSmoothing,
                                                  losses: losses, dLogits: d, gradScale: 1 / Float(n),
                                                  labels: labels, lossSum: lossSum, correctSum: correctSum)
        return (losses, d)
    }

    /// Per-sample losses (N) and, when `gradient` is true, dL/dlogits (N, K) of the batch mean.
    public func callAsFunction(_ logits: Tensor, _ targets: LossTargets, gradient: Bool = true) throws -> (losses: Tensor, dLogits: Tensor?) {
        let n = logits.shape[0]
        let losses = try lossCache.tensor([n], on: backend)
        let d = gradient ? try gradCache.tensor(logits.shape, on: backend) : nil
        try backend.softmaxCrossEntropy(logits: logits, targets: targets, labelSmoothing: labelSmoothing,
                                        losses: losses, dLogits: d, gradScale: 1 / Float(n))
        return (losses, d)
    }
}
