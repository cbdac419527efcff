import CNNCore
import Foundation

/// Optimizer launchers (kernels in Kernels/optimizers.cl): one launch updates a whole flat
/// parameter buffer.
extension OpenCLBackend {
    public func sgdStep(params: Tensor, grads: Tensor, momentumBuffer: Tensor?, hyper h: SGDHyper) throws {
        let op = "sgdStep"
        try Check.float([(params, "params"), (grads, "grads")], op)
        try Check.sameCount(params, grads, "params and grads", op)
        if let b = momentumBuffer {
            try Check.dtype(b, .float32, "momentumBuffer", op)
            try Check.sameCount(params, b, "params and momentumBuffer", op)
        }
        let useMomentum = momentumBuffer != nil && h.momentum != 0
        try launch1D(.optimizers, "sgdStep", count: params.count,
                     [.tensor(params), .tensor(grads), .optional(useMomentum ? momentumBuffer : nil), .int(params.count),
                      .float(h.learningRate), .float(h.momentum), .float(h.dampening), .int(h.nesterov ? 1 : 0),
                      .float(h.weightDecay), .int(useMomentum ? 1 : 0)])
    }

    public func adamStep(params: Tensor, grads: Tensor, m: Tensor, v: Tensor, hyper h: AdamHyper, step: Int) throws {
        let op = "adamStep"
        try Check.float([(params, "params"), (grads, "grads"), (m, "m"), (v, "v")], op)
        try Check.sameCount(params, grads, "params and grads", op)
        try Check.sameCount(params, m, "params and m", op)
        try Check.sameCount(params, v, "params and v", op)
        try require(step >= 1, "\(op): step \(step) must count from 1")
        // Bias corrections on the host, in Float like the reference.
        let bc1 = 1 - pow(h.beta1, Float(step))
        let bc2 = 1 - pow(h.beta2, Float(step))
        try launch1D(.optimizers, "adamStep", count: params.count,
                     [.tensor(params), .tensor(grads), .tensor(m), .tensor(v), .int(params.count),
                      .float(h.learningRate), .float(h.beta1), .float(h.beta2), .float(h.epsilon),
                      .float(h.weightDecay), .int(h.decoupled ? 1 : 0),
                      .float(h.learningRate / bc1), .float(bc2.squareRoot())])
    }
}
