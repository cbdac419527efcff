import CNNCore

/// A deliberately wrong device, for testing correctness harnesses (`verify`, cnn-bench's gate):
/// forwards every primitive to `inner`, then scales the output of the primitive named `op` by
/// `factor`, so that one op is off by a known amount and the harness must catch it.
package final class PerturbingBackend: Backend {
    package let inner: any Backend
    package let op: String
    package let factor: Float
    package init(_ inner: any Backend, op: String, factor: Float) {
        self.inner = inner
        self.op = op
        self.factor = factor
    }

    func perturb(_ name: String, _ out: Tensor?) throws {
        guard name == op, let out, out.dtype == .float32 else { return }
        try inner.scale(out, by: factor, y: out)
    }

    package var info: DeviceInfo { DeviceInfo(kind: inner.info.kind, name: "perturbed \(op)", type: inner.info.type) }
    package var transferCounters: TransferCounters { inner.transferCounters }

    package func makeTensor(_ shape: Shape, dtype: DType) throws -> Tensor { try inner.makeTensor(shape, dtype: dtype) }
    package func write(_ values: UnsafeBufferPointer<Float>, to tensor: Tensor) throws { try inner.write(values, to: tensor) }
    package func write(_ values: UnsafeBufferPointer<Int32>, to tensor: Tensor) throws { try inner.write(values, to: tensor) }
    package func read(_ tensor: Tensor, into values: UnsafeMutableBufferPointer<Float>) throws { try inner.read(tensor, into: values) }
    package func read(_ tensor: Tensor, into values: UnsafeMutableBufferPointer<Int32>) throws { try inner.read(tensor, into: values) }
    package func copy(_ src: Tensor, to dst: Tensor) throws { try inner.copy(src, to: dst); try perturb("copy", dst) }
    package func synchronize() throws { try inner.synchronize() }

    package func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: Tensor, lda: Int, b: Tensor, ldb: Int,
              beta: Float, c: Tensor, ldc: Int) throws {
        try inner.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                       beta: beta, c: c, ldc: ldc)
        try perturb("gemm", c)
    }
    package func gemmStridedBatched(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: Tensor, lda: Int, strideA: Int,
                            b: Tensor, ldb: Int, strideB: Int, beta: Float, c: Tensor, ldc: Int, strideC: Int, batch: Int) throws {
        try inner.gemmStridedBatched(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, strideA: strideA,
                                     b: b, ldb: ldb, strideB: strideB, beta: beta, c: c, ldc: ldc, strideC: strideC, batch: batch)
        try perturb("gemmStridedBatched", c)
    }
    package func im2col(x: Tensor, cols: Tensor, geometry g: Conv2DGeometry) throws {
        try inner.im2col(x: x, cols: cols, geometry: g); try perturb("im2col", cols)
    }
    package func col2im(cols: Tensor, x: Tensor, geometry g: Conv2DGeometry) throws {
        try inner.col2im(cols: cols, x: x, geometry: g); try perturb("col2im", x)
    }
    package func conv2DForward(x: Tensor, weight: Tensor, bias: Tensor?, y: Tensor, geometry g: Conv2DGeometry, activation: Activation) throws {
        try inner.conv2DForward(x: x, weight: weight, bias: bias, y: y, geometry: g, activation: activation)
        try perturb("conv2DForward", y)
    }
    package func conv2DBackwardData(dy: Tensor, weight: Tensor, dx: Tensor, geometry g: Conv2DGeometry) throws {
        try inner.conv2DBackwardData(dy: dy, weight: weight, dx: dx, geometry: g); try perturb("conv2DBackwardData", dx)
    }
    package func conv2DBackwardFilter(x: Tensor, dy: Tensor, dWeight: Tensor, dBias: Tensor?, geometry g: Conv2DGeometry) throws {
        try inner.conv2DBackwardFilter(x: x, dy: dy, dWeight: dWeight, dBias: dBias, geometry: g)
        try perturb("conv2DBackwardFilter", dWeight)
    }
    package func biasAdd(y: Tensor, bias: Tensor, activation: Activation) throws {
        try inner.biasAdd(y: y, bias: bias, activation: activation); try perturb("biasAdd", y)
    }
    package func biasGrad(dy: Tensor, dBias: Tensor) throws { try inner.biasGrad(dy: dy, dBias: dBias); try perturb("biasGrad", dBias) }
    package func maxPool2DForward(x: Tensor, y: Tensor, argmax: Tensor, geometry g: Pool2DGeometry) throws {
        try inner.maxPool2DForward(x: x, y: y, argmax: argmax, geometry: g); try perturb("maxPool2DForward", y)
    }
    package func maxPool2DBackward(dy: Tensor, argmax: Tensor, dx: Tensor, geometry g: Pool2DGeometry) throws {
        try inner.maxPool2DBackward(dy: dy, argmax: argmax, dx: dx, geometry: g); try perturb("maxPool2DBackward", dx)
    }
    package func avgPool2DForward(x: Tensor, y: Tensor, geometry g: Pool2DGeometry) throws {
        try inner.avgPool2DForward(x: x, y: y, geometry: g); try perturb("avgPool2DForward", y)
    }
    package func avgPool2DBackward(dy: Tensor, dx: Tensor, geometry g: Pool2DGeometry) throws {
        try inner.avgPool2DBackward(dy: dy, dx: dx, geometry: g); try perturb("avgPool2DBackward", dx)
    }
    package func batchNormForwardTraining(x: Tensor, gamma: Tensor, beta: Tensor, y: Tensor, runningMean: Tensor, runningVar: Tensor,
                                  saveMean: Tensor, saveInvStd: Tensor, momentum: Float, epsilon: Float, activation: Activation) throws {
        try inner.batchNormForwardTraining(x: x, gamma: gamma, beta: beta, y: y, runningMean: runningMean, runningVar: runningVar,
                                           saveMean: saveMean, saveInvStd: saveInvStd, momentum: momentum, epsilon: epsilon,
                                           activation: activation)
        try perturb("batchNormForwardTraining", runningVar)
    }
    package func batchNormForwardInference(x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor, y: Tensor,
                                   epsilon: Float, activation: Activation) throws {
        try inner.batchNormForwardInference(x: x, gamma: gamma, beta: beta, runningMean: runningMean, runningVar: runningVar,
                                            y: y, epsilon: epsilon, activation: activation)
        try perturb("batchNormForwardInference", y)
    }
    package func batchNormBackward(x: Tensor, dy: Tensor, gamma: Tensor, saveMean: Tensor, saveInvStd: Tensor, dx: Tensor,
                           dGamma: Tensor, dBeta: Tensor) throws {
        try inner.batchNormBackward(x: x, dy: dy, gamma: gamma, saveMean: saveMean, saveInvStd: saveInvStd, dx: dx,
                                    dGamma: dGamma, dBeta: dBeta)
        try perturb("batchNormBackward", dx)
    }
    package func batchNormBlockForwardTraining(x: Tensor, gamma: Tensor, beta: Tensor, y: Tensor, argmax: Tensor?,
                                               runningMean: Tensor, runningVar: Tensor, saveMean: Tensor, saveInvStd: Tensor,
                                               momentum: Float, epsilon: Float, tail: BatchNormTail) throws {
        try inner.batchNormBlockForwardTraining(x: x, gamma: gamma, beta: beta, y: y, argmax: argmax, runningMean: runningMean,
                                                runningVar: runningVar, saveMean: saveMean, saveInvStd: saveInvStd,
                                                momentum: momentum, epsilon: epsilon, tail: tail)
        try perturb("batchNormBlockForwardTraining", y)
    }
    package func batchNormBlockBackward(x: Tensor, dy: Tensor, gamma: Tensor, beta: Tensor, saveMean: Tensor, saveInvStd: Tensor,
                                        argmax: Tensor?, dx: Tensor, dGamma: Tensor, dBeta: Tensor, dBias: Tensor?,
                                        epsilon: Float, tail: BatchNormTail) throws {
        try inner.batchNormBlockBackward(x: x, dy: dy, gamma: gamma, beta: beta, saveMean: saveMean, saveInvStd: saveInvStd,
                                         argmax: argmax, dx: dx, dGamma: dGamma, dBeta: dBeta, dBias: dBias, epsilon: epsilon, tail: tail)
        try perturb("batchNormBlockBackward", dx)
    }
    package func biasActivationDropoutForward(y: Tensor, bias: Tensor, activation: Activation, probability p: Float, seed: UInt64) throws {
        try inner.biasActivationDropoutForward(y: y, bias: bias, activation: activation, probability: p, seed: seed)
        try perturb("biasActivationDropoutForward", y)
    }
    package func biasActivationDropoutBackward(y: Tensor, dy: Tensor, dBias: Tensor, activation: Activation,
                                               probability p: Float, seed: UInt64) throws {
        try inner.biasActivationDropoutBackward(y: y, dy: dy, dBias: dBias, activation: activation, probability: p, seed: seed)
        try perturb("biasActivationDropoutBackward", dBias)
    }
    package func softmaxCrossEntropyWithTotals(logits: Tensor, targets: LossTargets, labelSmoothing: Float,
                                               losses: Tensor, dLogits: Tensor?, gradScale: Float,
                                               labels: Tensor, lossSum: Tensor, correctSum: Tensor) throws {
        try inner.softmaxCrossEntropyWithTotals(logits: logits, targets: targets, labelSmoothing: labelSmoothing, losses: losses,
                                                dLogits: dLogits, gradScale: gradScale, labels: labels,
                                                lossSum: lossSum, correctSum: correctSum)
        try perturb("softmaxCrossEntropyWithTotals", losses)
    }
    package func relu(x: Tensor, y: Tensor) throws { try inner.relu(x: x, y: y); try perturb("relu", y) }
    package func reluBackward(y: Tensor, dy: Tensor, dx: Tensor) throws {
        try inner.reluBackward(y: y, dy: dy, dx: dx); try perturb("reluBackward", dx)
    }
    package func dropoutForward(x: Tensor, y: Tensor, mask: Tensor, probability p: Float, seed: UInt64) throws {
        try inner.dropoutForward(x: x, y: y, mask: mask, probability: p, seed: seed); try perturb("dropoutForward", mask)
    }
    package func add(_ a: Tensor, _ b: Tensor, y: Tensor) throws { try inner.add(a, b, y: y); try perturb("add", y) }
    package func mul(_ a: Tensor, _ b: Tensor, y: Tensor) throws { try inner.mul(a, b, y: y); try perturb("mul", y) }
    package func scale(_ x: Tensor, by alpha: Float, y: Tensor) throws { try inner.scale(x, by: alpha, y: y); try perturb("scale", y) }
    package func axpy(alpha: Float, x: Tensor, y: Tensor) throws { try inner.axpy(alpha: alpha, x: x, y: y); try perturb("axpy", y) }
    package func fill(_ t: Tensor, value: Float) throws { try inner.fill(t, value: value); try perturb("fill", t) }
    package func softmax(x: Tensor, y: Tensor) throws { try inner.softmax(x: x, y: y); try perturb("softmax", y) }
    package func softmaxCrossEntropy(logits: Tensor, targets: LossTargets, labelSmoothing: Float, losses: Tensor, dLogits: Tensor?,
                             gradScale: Float) throws {
        try inner.softmaxCrossEntropy(logits: logits, targets: targets, labelSmoothing: labelSmoothing, losses: losses,
                                      dLogits: dLogits, gradScale: gradScale)
        try perturb("softmaxCrossEntropy", losses)
    }
    package func sgdStep(params: Tensor, grads: Tensor, momentumBuffer: Tensor?, hyper: SGDHyper) throws {
        try inner.sgdStep(params: params, grads: grads, momentumBuffer: momentumBuffer, hyper: hyper); try perturb("sgdStep", params)
    }
    package func adamStep(params: Tensor, grads: Tensor, m: Tensor, v: Tensor, hyper: AdamHyper, step: Int) throws {
        try inner.adamStep(params: params, grads: grads, m: m, v: v, hyper: hyper, step: step); try perturb("adamStep", params)
    }
    package func sum(_ x: Tensor, into out: Tensor, accumulate: Bool) throws {
        try inner.sum(x, into: out, accumulate: accumulate); try perturb("sum", out)
    }
    package func sumOfSquares(_ x: Tensor, into out: Tensor, accumulate: Bool) throws {
        try inner.sumOfSquares(x, into: out, accumulate: accumulate); try perturb("sumOfSquares", out)
    }
    package func argmax(_ x: Tensor, into out: Tensor) throws { try inner.argmax(x, into: out) }
    package func countCorrect(logits: Tensor, labels: Tensor, into out: Tensor, accumulate: Bool) throws {
        try inner.countCorrect(logits: logits, labels: labels, into: out, accumulate: accumulate); try perturb("countCorrect", out)
    }
}
