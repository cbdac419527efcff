import CNNCore
import Foundation

// Reference optimizer updates over flat parameter buffers, with PyTorch's torch.optim semantics
// (see `SGDHyper` and `AdamHyper`). Per-element arithmetic is in T, in the order of the formulas,
// as PyTorch does it in float32; step-dependent scalars (bias corrections) are computed in Double.

extension CPUBackend.Reference {
    /// One SGD step. params, grads, momentumBuffer: (count); grads are not modified.
    ///   g = grad + weightDecay * p
    ///   if momentum != 0:  buf = momentum * buf + (1 - dampening) * g;  g = nesterov ? g + momentum * buf : buf
    ///   p = p - lr * g
    /// With momentum == 0 the buffer is neither needed nor touched (PyTorch's plain SGD). The buffer
    /// starts at zero, which equals PyTorch's first-step copy when dampening is 0.
    package static func sgdStep<T: BinaryFloatingPoint>(
        params: UnsafeMutablePointer<T>, grads: UnsafePointer<T>, momentumBuffer: UnsafeMutablePointer<T>?,
        count: Int, hyper h: SGDHyper
    ) {
        let lr = T(h.learningRate), wd = T(h.weightDecay), mom = T(h.momentum), damp = T(h.dampening)
        for i in 0..<count {
            var g = grads[i]
            if wd != 0 { g = g + wd * params[i] }
            if mom != 0 {
                guard let buf = momentumBuffer else { preconditionFailure("sgdStep: momentum \(mom) needs a momentum buffer") }
                buf[i] = mom * buf[i] + (1 - damp) * g
                g = h.nesterov ? g + mom * buf[i] : buf[i]
            }
            params[i] = params[i] - lr * g
        }
    }

    /// One Adam / AdamW step; `step` counts from 1. params, grads, m, v: (count); grads are not modified.
    ///   Adam (L2):        g = grad + weightDecay * p
    ///   AdamW (decoupled): p = p * (1 - lr * weightDecay)
    ///   m = b1 * m + (1 - b1) * g;   v = b2 * v + (1 - b2) * g^2
    ///   p = p - (lr / (1 - b1^step)) * m / (sqrt(v) / sqrt(1 - b2^step) + eps)
    package static func adamStep<T: BinaryFloatingPoint>(
        params: UnsafeMutablePointer<T>, grads: UnsafePointer<T>, m: UnsafeMutablePointer<T>, v: UnsafeMutablePointer<T>,
        count: Int, hyper h: AdamHyper, step: Int
    ) {
        let b1 = T(h.beta1), b2 = T(h.beta2), eps = T(h.epsilon), wd = T(h.weightDecay), lr = T(h.learningRate)
        let stepSize = T(Double(h.learningRate) / (1 - pow(Double(h.beta1), Double(step))))
        let bc2Sqrt = T((1 - pow(Double(h.beta2), Double(step))).squareRoot())
        let decay = 1 - lr * wd
        for i in 0..<count {
            var g = grads[i]
            if wd != 0 {
                if h.decoupled { params[i] = params[i] * decay } else { g = g + wd * params[i] }
            }
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            params[i] = params[i] - stepSize * (m[i] / (v[i].squareRoot() / bc2Sqrt + eps))   // PyTorch's addcdiv order
        }
    }
}
