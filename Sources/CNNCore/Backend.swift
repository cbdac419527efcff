/// What kind of device a backend drives.
public enum DeviceKind: String, Sendable, Codable {
    case cpu       // the pure-Swift backend
    case opencl    // an OpenCL device (GPU, accelerator, or a CPU driver such as PoCL)
}

/// A human-readable description of a backend's device, for logs, `cnn devices` and benchmark JSON.
public struct DeviceInfo: Sendable, Codable, CustomStringConvertible {
    public var kind: DeviceKind
    public var name: String
    /// e.g. "OpenCL GPU", "OpenCL CPU", "Swift CPU (2 threads)"
    public var type: String
    public var details: [String: String]
    public init(kind: DeviceKind, name: String, type: String, details: [String: String] = [:]) {
        self.kind = kind; self.name = name; self.type = type; self.details = details
    }
    public var description: String { "\(name) [\(type)]" }
}

/// Host<->device traffic, counted by every backend (the OpenCL training step is checked with it).
public struct TransferCounters: Sendable, Equatable, Codable {
    public var uploads = 0
    public var uploadBytes = 0
    public var downloads = 0
    public var downloadBytes = 0
    public init() {}
}

/// The device abstraction. Layers, models and the training loop see only this protocol.
///
/// Conventions for every primitive:
/// - Tensors are float32 NCHW (images) or row-major (N, features) unless a parameter says int32.
/// - Outputs are overwritten, never accumulated into, unless the parameter says `accumulate`.
/// - An output may alias its input only where the doc comment says so.
/// - Work is ordered: a primitive sees the results of every primitive called before it.
///   Backends may run asynchronously; `read` and `synchronize` wait.
/// - Arguments (shapes, dtypes, aliasing, hyperparameters) are checked by `Contract.<op>` before any
///   work: every backend rejects the same bad call with the same `invalidArgument` message.
///
/// The CPU backend's reference implementation (`CPUBackend` in reference mode) is the spec;
/// every other implementation is tested against it.
public protocol Backend: AnyObject {
    var info: DeviceInfo { get }
    var transferCounters: TransferCounters { get }

    // MARK: Memory

    /// A new zero-filled tensor on this device.
    func makeTensor(_ shape: Shape, dtype: DType) throws -> Tensor
    /// Host -> device: `values.count` must equal `tensor.count`.
    func write(_ values: UnsafeBufferPointer<Float>, to tensor: Tensor) throws
    func write(_ values: UnsafeBufferPointer<Int32>, to tensor: Tensor) throws
    /// Device -> host (waits for pending work).
    func read(_ tensor: Tensor, into values: UnsafeMutableBufferPointer<Float>) throws
    func read(_ tensor: Tensor, into values: UnsafeMutableBufferPointer<Int32>) throws
    /// dst = src (same count and dtype; no overlap).
    func copy(_ src: Tensor, to dst: Tensor) throws
    /// Waits until all submitted work is done.
    func synchronize() throws

    // MARK: GEMM

    /// Row-major C = alpha * op(A) * op(B) + beta * C, op(A): (m, k), op(B): (k, n), C: (m, n).
    /// `lda`, `ldb`, `ldc` are row strides of the stored matrices. beta == 0 ignores C's contents.
    func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
              a: Tensor, lda: Int, b: Tensor, ldb: Int, beta: Float, c: Tensor, ldc: Int) throws
    /// `batch` independent GEMMs; matrix i starts `i * strideX` elements into each tensor
    /// (a stride of 0 reuses one matrix for every item).
    func gemmStridedBatched(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                            a: Tensor, lda: Int, strideA: Int, b: Tensor, ldb: Int, strideB: Int,
                            beta: Float, c: Tensor, ldc: Int, strideC: Int, batch: Int) throws

    // MARK: Convolution

    /// x: (N, C, H, W) -> cols: (N, C*KH*KW, OH*OW); row (c, i, j) of image n holds
    /// x[n, c, oh*sh - ph + i, ow*sw - pw + j] for each output position (zero outside the image).
    func im2col(x: Tensor, cols: Tensor, geometry g: Conv2DGeometry) throws
    /// The adjoint of `im2col`: cols: (N, C*KH*KW, OH*OW) -> x: (N, C, H, W), summing every
    /// column entry that im2col copied from the same input element (overwrites x).
    func col2im(cols: Tensor, x: Tensor, geometry g: Conv2DGeometry) throws
    /// y = activation(conv(x, weight) + bias). x: (N, Cin, H, W), weight: (Cout, Cin, KH, KW),
    /// bias: (Cout) or nil, y: (N, Cout, OH, OW). Cross-correlation, as PyTorch's Conv2d.
    func conv2DForward(x: Tensor, weight: Tensor, bias: Tensor?, y: Tensor,
                       geometry g: Conv2DGeometry, activation: Activation) throws
    /// dx = d(conv)/dx applied to dy. dy: (N, Cout, OH, OW), weight: (Cout, Cin, KH, KW), dx: (N, Cin, H, W).
    func conv2DBackwardData(dy: Tensor, weight: Tensor, dx: Tensor, geometry g: Conv2DGeometry) throws
    /// dWeight = sum over the batch of dy (x) patches; dBias = sum of dy over (N, OH, OW).
    /// x: (N, Cin, H, W), dy: (N, Cout, OH, OW), dWeight: (Cout, Cin, KH, KW), dBias: (Cout) or nil.
    func conv2DBackwardFilter(x: Tensor, dy: Tensor, dWeight: Tensor, dBias: Tensor?, geometry g: Conv2DGeometry) throws
    /// y = activation(y + bias[c]) in place. y: (N, C, *), bias: (C).
    func biasAdd(y: Tensor, bias: Tensor, activation: Activation) throws
    /// dBias[c] = sum of dy[:, c, *]. dy: (N, C, *), dBias: (C).
    func biasGrad(dy: Tensor, dBias: Tensor) throws

    // MARK: Pooling

    /// y = window maximum; argmax (int32, shape of y) = index h*W + w of the maximum inside its
    /// (n, c) input plane — the first maximum in row-major window order; padding never wins.
    func maxPool2DForward(x: Tensor, y: Tensor, argmax: Tensor, geometry g: Pool2DGeometry) throws
    /// dx[n, c, p] = sum of dy over the windows of (n, c) whose argmax is p (overwrites dx).
    func maxPool2DBackward(dy: Tensor, argmax: Tensor, dx: Tensor, geometry g: Pool2DGeometry) throws
    /// y = window mean, dividing by KH*KW (padded zeros count, as PyTorch's default).
    func avgPool2DForward(x: Tensor, y: Tensor, geometry g: Pool2DGeometry) throws
    /// The adjoint of avgPool2DForward (overwrites dx).
    func avgPool2DBackward(dy: Tensor, dx: Tensor, geometry g: Pool2DGeometry) throws

    // MARK: BatchNorm (over axis 1 of (N, C, *) tensors)

    /// Training-mode BatchNorm: batch mean and biased variance per channel over (N, *);
    /// y = activation(gamma * (x - mean) * invStd + beta) with invStd = 1 / sqrt(var + eps);
    /// saveMean, saveInvStd: (C) for the backward pass; running statistics updated as PyTorch:
    /// running = (1 - momentum) * running + momentum * stat, with the unbiased variance.
    func batchNormForwardTraining(x: Tensor, gamma: Tensor, beta: Tensor, y: Tensor,
                                  runningMean: Tensor, runningVar: Tensor, saveMean: Tensor, saveInvStd: Tensor,
                                  momentum: Float, epsilon: Float, activation: Activation) throws
    /// Inference-mode BatchNorm with the running statistics.
    func batchNormForwardInference(x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor,
                                   y: Tensor, epsilon: Float, activation: Activation) throws
    /// Gradients of training-mode BatchNorm (without activation: apply reluBackward first).
    /// dx = gamma * invStd * (dy - mean(dy) - xhat * mean(dy * xhat)), dGamma = sum(dy * xhat), dBeta = sum(dy).
    func batchNormBackward(x: Tensor, dy: Tensor, gamma: Tensor, saveMean: Tensor, saveInvStd: Tensor,
                           dx: Tensor, dGamma: Tensor, dBeta: Tensor) throws

    // MARK: Fused BatchNorm block (BatchNormTail: activation, dropout, max pooling after BatchNorm)

    /// Training-mode BatchNorm followed by `tail`, as `batchNormForwardTraining`, `dropoutForward`
    /// (mask regenerated, not stored) and `maxPool2DForward` composed (`BatchNormBlockComposition`).
    /// y: the tail's output shape; argmax: (int32, the pooled shape) with a pooling tail, else nil.
    func batchNormBlockForwardTraining(x: Tensor, gamma: Tensor, beta: Tensor, y: Tensor, argmax: Tensor?,
                                       runningMean: Tensor, runningVar: Tensor, saveMean: Tensor, saveInvStd: Tensor,
                                       momentum: Float, epsilon: Float, tail: BatchNormTail) throws
    /// The backward chain of `batchNormBlockForwardTraining`: max-pool backward, dropout mask, ReLU
    /// mask (recomputed from x and the saved statistics), BatchNorm backward; dBias (optional) = the
    /// per-channel sum of dx, the gradient of a bias added right before the BatchNorm.
    func batchNormBlockBackward(x: Tensor, dy: Tensor, gamma: Tensor, beta: Tensor, saveMean: Tensor, saveInvStd: Tensor,
                                argmax: Tensor?, dx: Tensor, dGamma: Tensor, dBeta: Tensor, dBias: Tensor?,
                                epsilon: Float, tail: BatchNormTail) throws

    /// y = dropout(activation(y + bias[c])) in place: `biasAdd` then `dropoutForward` (probability p,
    /// mask regenerated from `seed`, not stored). y: (N, C, *), bias: (C). p == 0: `biasAdd` alone.
    func biasActivationDropoutForward(y: Tensor, bias: Tensor, activation: Activation, probability p: Float, seed: UInt64) throws
    /// Its backward, in place: dy = dy * mask, zero where the forward output y is not > 0 (ReLU);
    /// dBias = the per-channel sum of the result (`biasGrad`). y, dy: (N, C, *), dBias: (C).
    func biasActivationDropoutBackward(y: Tensor, dy: Tensor, dBias: Tensor, activation: Activation,
                                       probability p: Float, seed: UInt64) throws

    // MARK: Elementwise (y may alias x)

    func relu(x: Tensor, y: Tensor) throws
    /// dx = y > 0 ? dy : 0, where y is the ReLU's output (dx may alias dy).
    func reluBackward(y: Tensor, dy: Tensor, dx: Tensor) throws
    /// Inverted dropout: mask[i] = (CounterRNG.uniform(key(seed), i) >= p) ? 1 / (1 - p) : 0; y = x * mask.
    /// p in [0, 1). mask: same shape as x, kept for the backward pass (dx = dy * mask, via `mul`).
    func dropoutForward(x: Tensor, y: Tensor, mask: Tensor, probability p: Float, seed: UInt64) throws
    /// y = a + b
    func add(_ a: Tensor, _ b: Tensor, y: Tensor) throws
    /// y = a * b (elementwise)
    func mul(_ a: Tensor, _ b: Tensor, y: Tensor) throws
    /// y = alpha * x
    func scale(_ x: Tensor, by alpha: Float, y: Tensor) throws
    /// y += alpha * x
    func axpy(alpha: Float, x: Tensor, y: Tensor) throws
    /// Every element of t set to value.
    func fill(_ t: Tensor, value: Float) throws

    // MARK: Loss

    /// Row-wise softmax of (N, K) logits.
    func softmax(x: Tensor, y: Tensor) throws
    /// Softmax cross-entropy per row. With smoothing s, the target is (1 - s) * t + s / K, where t is
    /// the one-hot label or the soft target row. losses: (N) = -sum_k target_k * log softmax_k;
    /// dLogits (optional): (N, K) = gradScale * (softmax - target).
    func softmaxCrossEntropy(logits: Tensor, targets: LossTargets, labelSmoothing: Float,
                             losses: Tensor, dLogits: Tensor?, gradScale: Float) throws

    /// `softmaxCrossEntropy`, then lossSum[0] += the sum of the losses (`sum`) and correctSum[0] += the
    /// number of rows whose first-maximum logit equals `labels` (`countCorrect`), as one primitive: a
    /// training step's loss and its device-side accumulators. labels: (N) int32 (also with soft targets).
    func softmaxCrossEntropyWithTotals(logits: Tensor, targets: LossTargets, labelSmoothing: Float,
                                       losses: Tensor, dLogits: Tensor?, gradScale: Float,
                                       labels: Tensor, lossSum: Tensor, correctSum: Tensor) throws

    // MARK: Optimizers (flat parameter buffers; params, grads and state have equal counts)

    func sgdStep(params: Tensor, grads: Tensor, momentumBuffer: Tensor?, hyper: SGDHyper) throws
    /// `step` counts from 1.
    func adamStep(params: Tensor, grads: Tensor, m: Tensor, v: Tensor, hyper: AdamHyper, step: Int) throws

    // MARK: Reductions

    /// out[0] (=|+=) sum of x. out: (1).
    func sum(_ x: Tensor, into out: Tensor, accumulate: Bool) throws
    /// out[0] (=|+=) sum of x^2. out: (1).
    func sumOfSquares(_ x: Tensor, into out: Tensor, accumulate: Bool) throws
    /// Index of the first maximum of each row. x: (N, K), out: (N) int32.
    func argmax(_ x: Tensor, into out: Tensor) throws
    /// out[0] (=|+=) number of rows whose argmax equals the label. logits: (N, K), labels: (N) int32, out: (1).
    func countCorrect(logits: Tensor, labels: Tensor, into out: Tensor, accumulate: Bool) throws

    // MARK: Grouped convolution, GELU, channel shuffle (MobileNetV2, ShuffleNetV2, the `fast` model)

    /// Grouped convolution, PyTorch's `Conv2d(groups:)`: the Cin input and Cout output channels are
    /// split into `groups` equal parts and output group k sees only input group k. g.inChannels and
    /// g.outChannels are the totals; weight: (Cout, Cin / groups, KH, KW); x, bias, y as conv2DForward.
    /// groups == Cin == Cout is the depthwise convolution; groups == 1 equals conv2DForward.
    func groupedConv2DForward(x: Tensor, weight: Tensor, bias: Tensor?, y: Tensor,
                              geometry g: Conv2DGeometry, groups: Int, activation: Activation) throws
    /// dx = d(grouped conv)/dx applied to dy (overwrites dx).
    func groupedConv2DBackwardData(dy: Tensor, weight: Tensor, dx: Tensor, geometry g: Conv2DGeometry, groups: Int) throws
    /// dWeight: (Cout, Cin / groups, KH, KW) and dBias (Cout, optional) of the grouped convolution (overwritten).
    func groupedConv2DBackwardFilter(x: Tensor, dy: Tensor, dWeight: Tensor, dBias: Tensor?,
                                     geometry g: Conv2DGeometry, groups: Int) throws
    /// y = x * Phi(x), Phi the standard normal CDF (the exact, erf-based GELU: PyTorch's `nn.GELU()`). y may alias x.
    func gelu(x: Tensor, y: Tensor) throws
    /// dx = dy * (Phi(x) + x * phi(x)), where x is the GELU's input (dx may alias dy, not x).
    func geluBackward(x: Tensor, dy: Tensor, dx: Tensor) throws
    /// ShuffleNet's channel shuffle of an (N, C, *) tensor with C = groups * k:
    /// y[n, j * groups + i, *] = x[n, i * k + j, *] (PyTorch's `channel_shuffle(x, groups)`).
    /// Its adjoint (and inverse) is the shuffle with `k` groups. y must not overlap x.
    func channelShuffle(x: Tensor, y: Tensor, groups: Int) throws
    /// dst[n, dstChannel + c, *] = src[n, srcChannel + c, *] for c in 0..<count: channel split and
    /// concatenation. src: (N, Cs, *), dst: (N, Cd, *) with the same N and *; dst's other channels are untouched.
    func copyChannels(src: Tensor, srcChannel: Int, dst: Tensor, dstChannel: Int, count: Int) throws

    // MARK: Memory report

    /// What the backend holds, for the trainer's memory line. Default: nothing known.
    var memoryReport: MemoryReport { get }
}

// MARK: - Conveniences on every backend

extension Backend {
    public func makeTensor(_ shape: Shape) throws -> Tensor { try makeTensor(shape, dtype: .float32) }

    /// A new tensor holding `values`.
    public func upload(_ values: [Float], shape: Shape) throws -> Tensor {
        try require(values.count == shape.count, "\(values.count) values for shape \(shape)")
        let t = try makeTensor(shape, dtype: .float32)
        try values.withUnsafeBufferPointer { try write($0, to: t) }
        return t
    }
    public func upload(_ host: HostTensor) throws -> Tensor { try upload(host.values, shape: host.shape) }
    public func upload(_ values: [Int32], shape: Shape) throws -> Tensor {
        try require(values.count == shape.count, "\(values.count) values for shape \(shape)")
        let t = try makeTensor(shape, dtype: .int32)
        try values.withUnsafeBufferPointer { try write($0, to: t) }
        return t
    }
    public func write(_ values: [Float], to t: Tensor) throws {
        try values.withUnsafeBufferPointer { try write($0, to: t) }
    }
    public func write(_ values: [Int32], to t: Tensor) throws {
        try values.withUnsafeBufferPointer { try write($0, to: t) }
    }
    /// The tensor's values on the host (waits for pending work).
    public func floats(_ t: Tensor) throws -> [Float] {
        var out = [Float](repeating: 0, count: t.count)
        try out.withUnsafeMutableBufferPointer { try read(t, into: $0) }
        return out
    }
    public func ints(_ t: Tensor) throws -> [Int32] {
        var out = [Int32](repeating: 0, count: t.count)
        try out.withUnsafeMutableBufferPointer { try read(t, into: $0) }
        return out
    }
    public func host(_ t: Tensor) throws -> HostTensor { HostTensor(shape: t.shape, values: try floats(t)) }
    /// A new tensor with a copy of t's contents.
    public func clone(_ t: Tensor) throws -> Tensor {
        let c = try makeTensor(t.shape, dtype: t.dtype)
        try copy(t, to: c)
        return c
    }
}

// MARK: - Memory report

/// Bytes a backend holds, for information (nil: the backend does not say).
public struct MemoryReport: Sendable, Equatable {
    /// Bytes of live tensors (on the device for a device backend).
    public var tensorBytes: Int?
    /// Bytes of scratch memory kept between calls (workspaces, packing buffers).
    public var scratchBytes: Int?

    public init(tensorBytes: Int? = nil, scratchBytes: Int? = nil) {
        self.tensorBytes = tensorBytes
        self.scratchBytes = scratchBytes
    }
}

extension Backend {
    public var memoryReport: MemoryReport { MemoryReport() }
}
