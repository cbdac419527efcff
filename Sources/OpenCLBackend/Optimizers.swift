import CNNCore
import Foundation

/// Optimizer launchers (kernels in Kernels/optimizers.cl): one launch updates a whole flat
/// parameter buffer.
extension OpenCLBackend {
    public func sgdStep(params: Tensor, grads: Tensor, momentumBuffer: Tensor?, hyper h: SGDHyper) throws {
        try Contract.sgdStep(params: params, grads: grads, momentumBuffer: momentumBuffer, hyper: h)
        let useMomentum = h.momentum != 0
        try launch1D(.optimizers, "sgdStep", count: params.count,
                     [.tensor(params), .tensor(grads), .optional(useMomentum ? momentumBuffer : nil), .int(params.count),
                      .float(h.learningRate), .float(h.momentum), .float(h.dampening), .int(h.nesterov ? 1 : 0),
                      .float(h.weightDecay), .int(useMomentum ? 1 : 0)])
    }

    public func adamStep(params: Tensor, grads: Tensor, m: Tensor, v: Tensor, hyper h: AdamHyper, step: Int) throws {
        try Contract.adamStep(params: params, grads: grads, m: m, v: v, hyper: h, step: step)
        // Step-dependent scalars on the host, in Double rounded once, as the reference.
        let stepSize = Float(Double(h.learningRate) / (1 - pow(Double(h.beta1), Double(step))))
        let sqrtBc2 = Float((1 - pow(Double(h.beta2), Double(step))).squareRoot())
        try launch1D(.optimizers, "adamStep", count: params.count,
                     [.tensor(params), .tensor(grads), .tensor(m), .tensor(v), .int(params.count),
                      .float(h.learningRate), .float(h.beta1), .float(h.beta2), .float(h.epsilon),
                      .float(h.weightDecay), .int(h.decoupled ? 1 : 0),
                      .float(stepSize), .float(sqrtBc2)])
    }
}
