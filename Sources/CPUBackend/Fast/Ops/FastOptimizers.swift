// Fast optimizer updates over the flat parameter buffer, and the loss.
//
// SGD / Adam: the reference's per-element Float arithmetic, in the same order, on 16 lanes and split
// over the pool's threads — bit-exact with `Reference.sgdStep` / `Reference.adamStep` (Swift never
// contracts a * b + c into a fused multiply-add on its own, so the SIMD and scalar forms round alike).
//
// Loss: `Reference.softmaxCrossEntropy` and `Reference.softmax` are (N, K) row loops over a few
// thousand values per step (< 0.1% of a training step: SWIFTCNN_PROFILE=1 shows it); the fast path
// runs the same per-row Double math (bit-exact), split by rows over the threads only for large N*K.

import CNNCore
import SGEMM
import Foundation

extension FastCPU {
    /// Fast path of `Reference.sgdStep` (bit-exact).
    func sgdStep(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, momentumBuffer: UnsafeMutablePointer<Float>?,
                 count: Int, hyper h: SGDHyper) {
        elementwise(count, SGDTask(params: params, grads: grads, buffer: momentumBuffer, hyper: h))
    }

    /// Fast path of `Reference.adamStep` (bit-exact).
    func adamStep(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>,
                  v: UnsafeMutablePointer<Float>, count: Int, hyper h: AdamHyper, step: Int) {
        let stepSize = Float(Double(h.learningRate) / (1 - pow(Double(h.beta1), Double(step))))
        let bc2Sqrt = Float((1 - pow(Double(h.beta2), Double(step))).squareRoot())
        elementwise(count, AdamTask(params: params, grads: grads, m: m, v: v, hyper: h, stepSize: stepSize, bc2Sqrt: bc2Sqrt))
    }

    /// Fast path of `Reference.softmaxCrossEntropy` (bit-exact: the same row math).
    func softmaxCrossEntropy(logits: UnsafePointer<Float>, targets: CPUBackend.Reference.LossTargets<Float>, rows: Int, classes: Int,
                             labelSmoothing: Float, losses: UnsafeMutablePointer<Float>, dLogits: UnsafeMutablePointer<Float>?,
                             gradScale: Float) throws {
        if case .labels(let labels) = targets {
            for r in 0..<rows where labels[r] < 0 || Int(labels[r]) >= classes {
                throw CNNError.invalidArgument(
                    "softmaxCrossEntropy: label \(labels[r]) of row \(r) is outside 0..<\(classes); "
                    + "labels must be class indices of the \(classes) logits")
            }
        }
        let task = LossRowsTask(logits: logits, targets: targets, classes: classes, smoothing: labelSmoothing,
                                losses: losses, dLogits: dLogits, gradScale: gradScale)
        if rows > 1 && split(rows * classes, 1 << 16) { pool.parallelRanges(rows, task) } else { task.run(0..<rows) }
    }
}

struct SGDTask: ParallelRangeTask {
    let params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, buffer: UnsafeMutablePointer<Float>?
    let hyper: SGDHyper
    func run(_ range: Range<Int>) {
        let lr = hyper.learningRate, wd = hyper.weightDecay, mom = hyper.momentum, damp = hyper.dampening
        let nesterov = hyper.nesterov
        if mom != 0 { precondition(buffer != nil, "sgdStep: momentum \(mom) needs a momentum buffer") }
        let pr = UnsafeMutableRawPointer(params), gr = UnsafeRawPointer(grads)
        let lrV = SIMD16<Float>(repeating: lr), wdV = SIMD16<Float>(repeating: wd)
        let momV = SIMD16<Float>(repeating: mom), dampV = SIMD16<Float>(repeating: 1 - damp)
        var i = range.lowerBound
        let end = range.upperBound
        while i &+ 16 <= end {
            let o = i &* 4
            var g = gr.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
            let p = pr.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
            if wd != 0 { g = g + wdV * p }
            if mom != 0, let buffer {
                let br = UnsafeMutableRawPointer(buffer)
                let b = momV * br.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self) + dampV * g
                br.storeBytes(of: b, toByteOffset: o, as: SIMD16<Float>.self)
                g = nesterov ? g + momV * b : b
            }
            pr.storeBytes(of: p - lrV * g, toByteOffset: o, as: SIMD16<Float>.self)
            i &+= 16
        }
        while i < end {
            var g = grads[i]
            if wd != 0 { g = g + wd * params[i] }
            if mom != 0, let buf = buffer {
                buf[i] = mom * buf[i] + (1 - damp) * g
                g = nesterov ? g + mom * buf[i] : buf[i]
            }
            params[i] = params[i] - lr * g
            i &+= 1
        }
    }
}

struct AdamTask: ParallelRangeTask {
    let params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>
    let m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>
    let hyper: AdamHyper
    let stepSize: Float, bc2Sqrt: Float
    func run(_ range: Range<Int>) {
        let b1 = hyper.beta1, b2 = hyper.beta2, eps = hyper.epsilon, wd = hyper.weightDecay, lr = hyper.learningRate
        let decoupled = hyper.decoupled
        let decay = 1 - lr * wd
        // 16 lanes at a time with the reference's operation order. The square root stays per lane:
        // Float.squareRoot() goes through sqrtf (errno) on Linux, so LLVM never vectorizes it, but the
        // scalar vsqrtss path costs ~1.4 ms per million lanes — an exact vectorised emulation (Newton
        // in Double plus a rounding correction) measured 1.7x slower than that.
        let pr = UnsafeMutableRawPointer(params), gr = UnsafeRawPointer(grads)
        let mr = UnsafeMutableRawPointer(m), vr = UnsafeMutableRawPointer(v)
        let b1V = SIMD16<Float>(repeating: b1), b2V = SIMD16<Float>(repeating: b2)
        let ob1 = SIMD16<Float>(repeating: 1 - b1), ob2 = SIMD16<Float>(repeating: 1 - b2)
        let wdV = SIMD16<Float>(repeating: wd), decayV = SIMD16<Float>(repeating: decay)
        let stepV = SIMD16<Float>(repeating: stepSize), bcV = SIMD16<Float>(repeating: bc2Sqrt), epsV = SIMD16<Float>(repeating: eps)
        var i = range.lowerBound
        let end = range.upperBound
        while i &+ 16 <= end {
            let o = i &* 4
            var g = gr.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
            var p = pr.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
            if wd != 0 {
                if decoupled { p = p * decayV } else { g = g + wdV * p }
            }
            let mv = b1V * mr.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self) + ob1 * g
            let vv = b2V * vr.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self) + ob2 * g * g
            mr.storeBytes(of: mv, toByteOffset: o, as: SIMD16<Float>.self)
            vr.storeBytes(of: vv, toByteOffset: o, as: SIMD16<Float>.self)
            p = p - stepV * (mv / (vv.squareRoot() / bcV + epsV))
            pr.storeBytes(of: p, toByteOffset: o, as: SIMD16<Float>.self)
            i &+= 16
        }
        while i < end {
            var g = grads[i]
            if wd != 0 {
                if decoupled { params[i] = params[i] * decay } else { g = g + wd * params[i] }
            }
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            params[i] = params[i] - stepSize * (m[i] / (v[i].squareRoot() / bc2Sqrt + eps))
            i &+= 1
        }
    }
}

struct LossRowsTask: ParallelRangeTask {
    let logits: UnsafePointer<Float>, targets: CPUBackend.Reference.LossTargets<Float>
    let classes: Int, smoothing: Float
    let losses: UnsafeMutablePointer<Float>, dLogits: UnsafeMutablePointer<Float>?
    let gradScale: Float
    func run(_ range: Range<Int>) {
        CPUBackend.Reference.softmaxCrossEntropyRows(range, logits: logits, targets: targets, classes: classes,
                                                     labelSmoothing: smoothing, losses: losses, dLogits: dLogits,
                                                     gradScale: gradScale)
    }
}
