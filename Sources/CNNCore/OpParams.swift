/// Op descriptions: everything a primitive needs to know about its shapes, in one value.
/// The same description drives the CPU reference, the OpenCL launcher, `cnn verify` and `cnn-bench`.

/// A 2-D convolution over an NCHW batch (no dilation, no groups).
/// x: (batch, inChannels, height, width); weight: (outChannels, inChannels, kernelH, kernelW);
/// y: (batch, outChannels, outHeight, outWidth). Zero padding.
public struct Conv2DGeometry: Hashable, Sendable, Codable, CustomStringConvertible {
    public var batch, inChannels, height, width: Int
    public var outChannels, kernelH, kernelW: Int
    public var strideH, strideW, padH, padW: Int

    public init(batch: Int, inChannels: Int, height: Int, width: Int, outChannels: Int,
                kernelH: Int, kernelW: Int, strideH: Int = 1, strideW: Int = 1, padH: Int = 0, padW: Int = 0) {
        self.batch = batch; self.inChannels = inChannels; self.height = height; self.width = width
        self.outChannels = outChannels; self.kernelH = kernelH; self.kernelW = kernelW
        self.strideH = strideH; self.strideW = strideW; self.padH = padH; self.padW = padW
    }
    /// Square kernel, equal stride and padding on both axes.
    public init(batch: Int, inChannels: Int, height: Int, width: Int, outChannels: Int,
                kernel: Int, stride: Int = 1, padding: Int = 0) {
        self.init(batch: batch, inChannels: inChannels, height: height, width: width, outChannels: outChannels,
                  kernelH: kernel, kernelW: kernel, strideH: stride, strideW: stride, padH: padding, padW: padding)
    }

    public var outHeight: Int { (height + 2 * padH - kernelH) / strideH + 1 }
    public var outWidth: Int { (width + 2 * padW - kernelW) / strideW + 1 }
    public var inputShape: Shape { [batch, inChannels, height, width] }
    public var weightShape: Shape { [outChannels, inChannels, kernelH, kernelW] }
    public var outputShape: Shape { [batch, outChannels, outHeight, outWidth] }
    /// Rows of the im2col matrix of one image: inChannels * kernelH * kernelW.
    public var patchSize: Int { inChannels * kernelH * kernelW }
    /// im2col buffer: (batch, patchSize, outHeight * outWidth).
    public var colsShape: Shape { [batch, patchSize, outHeight * outWidth] }
    /// Multiply-accumulates of the forward pass.
    public var forwardMACs: Int { batch * outChannels * outHeight * outWidth * patchSize }

    public func validate() throws {
        try require(batch > 0 && inChannels > 0 && height > 0 && width > 0 && outChannels > 0,
                    "convolution sizes must be positive: \(self)")
        try require(kernelH > 0 && kernelW > 0 && strideH > 0 && strideW > 0 && padH >= 0 && padW >= 0,
                    "convolution kernel/stride must be positive and padding non-negative: \(self)")
        try require(height + 2 * padH >= kernelH && width + 2 * padW >= kernelW,
                    "convolution kernel \(kernelH)x\(kernelW) is larger than the padded input \(height)x\(width): \(self)")
    }

    public var description: String {
        "conv N\(batch) \(inChannels)->\(outChannels) \(height)x\(width) k\(kernelH)x\(kernelW) s\(strideH)x\(strideW) p\(padH)x\(padW)"
    }
}

/// A 2-D pooling window over an NCHW batch. Output size rounds down (PyTorch's ceil_mode=False).
/// Max pooling ignores padding; average pooling counts padded zeros (count_include_pad=True).
public struct Pool2DGeometry: Hashable, Sendable, Codable, CustomStringConvertible {
    public var batch, channels, height, width: Int
    public var kernelH, kernelW, strideH, strideW, padH, padW: Int

    public init(batch: Int, channels: Int, height: Int, width: Int,
                kernelH: Int, kernelW: Int, strideH: Int, strideW: Int, padH: Int = 0, padW: Int = 0) {
        self.batch = batch; self.channels = channels; self.height = height; self.width = width
        self.kernelH = kernelH; self.kernelW = kernelW; self.strideH = strideH; self.strideW = strideW
        self.padH = padH; self.padW = padW
    }
    public init(batch: Int, channels: Int, height: Int, width: Int, kernel: Int, stride: Int? = nil, padding: Int = 0) {
        self.init(batch: batch, channels: channels, height: height, width: width, kernelH: kernel, kernelW: kernel,
                  strideH: stride ?? kernel, strideW: stride ?? kernel, padH: padding, padW: padding)
    }
    /// Global pooling: one window covering the whole plane.
    public static func global(batch: Int, channels: Int, height: Int, width: Int) -> Pool2DGeometry {
        Pool2DGeometry(batch: batch, channels: channels, height: height, width: width,
                       kernelH: height, kernelW: width, strideH: height, strideW: width)
    }

    public var outHeight: Int { (height + 2 * padH - kernelH) / strideH + 1 }
    public var outWidth: Int { (width + 2 * padW - kernelW) / strideW + 1 }
    public var inputShape: Shape { [batch, channels, height, width] }
    public var outputShape: Shape { [batch, channels, outHeight, outWidth] }

    public func validate() throws {
        try require(batch > 0 && channels > 0 && height > 0 && width > 0, "pooling sizes must be positive: \(self)")
        try require(kernelH > 0 && kernelW > 0 && strideH > 0 && strideW > 0, "pooling window and stride must be positive: \(self)")
        try require(padH >= 0 && padW >= 0 && 2 * padH <= kernelH && 2 * padW <= kernelW,
                    "pooling padding must be at most half the window (as in PyTorch): \(self)")
        try require(height + 2 * padH >= kernelH && width + 2 * padW >= kernelW, "pooling window larger than the input: \(self)")
    }

    public var description: String {
        "pool N\(batch) C\(channels) \(height)x\(width) k\(kernelH)x\(kernelW) s\(strideH)x\(strideW) p\(padH)x\(padW)"
    }
}

/// Hyper-parameters of stochastic gradient descent, with PyTorch's `torch.optim.SGD` semantics:
/// g += weightDecay * p; buf = momentum * buf + (1 - dampening) * g (buf starts at zero, which equals
/// PyTorch's first-step copy when dampening is 0); g = nesterov ? g + momentum * buf : buf; p -= lr * g.
public struct SGDHyper: Hashable, Sendable, Codable {
    public var learningRate: Float
    public var momentum: Float
    public var dampening: Float
    public var nesterov: Bool
    public var weightDecay: Float
    public init(learningRate: Float, momentum: Float = 0, dampening: Float = 0, nesterov: Bool = false, weightDecay: Float = 0) {
        self.learningRate = learningRate; self.momentum = momentum; self.dampening = dampening
        self.nesterov = nesterov; self.weightDecay = weightDecay
    }
}

/// Hyper-parameters of Adam / AdamW, with PyTorch's update (step t counts from 1):
/// Adam:  g += weightDecay * p.   AdamW (decoupled): p *= 1 - lr * weightDecay.
/// m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
/// p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
public struct AdamHyper: Hashable, Sendable, Codable {
    public var learningRate: Float
    public var beta1: Float
    public var beta2: Float
    public var epsilon: Float
    public var weightDecay: Float
    public var decoupled: Bool
    public init(learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8,
                weightDecay: Float = 0, decoupled: Bool = false) {
        self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2; self.epsilon = epsilon
        self.weightDecay = weightDecay; self.decoupled = decoupled
    }
}

/// What a softmax cross-entropy compares the logits with.
public enum LossTargets: @unchecked Sendable {
    /// Class indices, (N) int32.
    case labels(Tensor)
    /// A probability distribution per row, (N, K) float32 (MixUp / CutMix targets).
    case soft(Tensor)
}

/// Elementwise activation fused into a producer (conv, bias add, BatchNorm).
public enum Activation: String, Sendable, Codable {
    case identity
    case relu
}
