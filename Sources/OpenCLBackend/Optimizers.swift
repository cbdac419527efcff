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
        for (v, name) in [(h.learningRate, "learningRate"), (h.momentum, "momentum"), (h.dampening, "dampening"),
                          (h.weightDecay, "weightDecay")] {
            try require(v.isFinite, "\(op): \(name) must be finite, got \(v)")
        }
        try require(h.learningRate >= 0 && h.momentum >= 0 && h.weightDecay >= 0,
                    "\(op): learningRate, momentum and weightDecay must be >= 0, got \(h)")
        try require(!h.nesterov || (h.momentum > 0 && h.dampening == 0),
                    "\(op): Nesterov momentum needs momentum > 0 and dampening 0 (as PyTorch), got \(h)")
        try require(h.momentum == 0 || momentumBuffer != nil,
                    "\(op): momentum \(h.momentum) needs a momentumBuffer with as many elements as params")
        let useMomentum = h.momentum != 0
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
        try require(step >= 1, "\(op): step counts from 1, got \(step)")
        for (x, name) in [(h.learningRate, "learningRate"), (h.epsilon, "epsilon"), (h.weightDecay, "weightDecay")] {
            try require(x.isFinite && x >= 0, "\(op): \(name) must be finite and >= 0, got \(x)")
        }
        try require(h.beta1 >= 0 && h.beta1 < 1 && h.beta2 >= 0 && h.beta2 < 1,
                    "\(op): beta1 and beta2 must be in [0, 1), got \(h.beta1), \(h.beta2)")
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
