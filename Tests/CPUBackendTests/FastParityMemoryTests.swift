// Steady-state memory behaviour of the fast paths: after warm-up, a training step (the primitives of
// a small `optimized`-style network, forward + backward + Adam) must
//   - allocate no scratch buffer (`Workspace.allocations` of its own workspaces: every workspace / per-task buffer of
//     the fast paths goes through it), and
//   - touch no new memory: no minor page faults on the calling thread (getrusage RUSAGE_THREAD) —
//     on this VM a fresh page costs more than the arithmetic on it.
// The backend runs on a one-thread pool, so all of its work happens on the calling thread and other
// tests running in parallel do not disturb the per-thread counts.
// Counting every malloc needs a process-wide probe, which parallel tests would disturb: that count is
// taken on the benchmark instead (perf uprobes on malloc / posix_memalign).

@testable import CPUBackend
import SGEMM
import CNNCore
import Foundation
import Glibc
import Testing

/// Minor page faults of the calling thread so far.
func threadMinorFaults() -> Int {
    var u = rusage()
    getrusage(__rusage_who_t(1), &u)   // RUSAGE_THREAD (1): this thread only
    return u.ru_minflt
}

@Suite(.serialized) struct FastParityMemoryTests {
    /// One "step" of an optimized-style network at batch 4 through the fast paths.
    final class Net {
        let fast = FastCPU(pool: FastParity.onePool, gemm: FastGEMM(pool: FastParity.onePool))
        let n = 4
        let g1 = Conv2DGeometry(batch: 4, inChannels: 3, height: 16, width: 16, outChannels: 8, kernel: 3, padding: 1)
        let g2 = Conv2DGeometry(batch: 4, inChannels: 8, height: 8, width: 8, outChannels: 16, kernel: 3, padding: 1)
        let p1 = Pool2DGeometry(batch: 4, channels: 8, height: 16, width: 16, kernel: 2)
        let p2 = Pool2DGeometry(batch: 4, channels: 16, height: 8, width: 8, kernel: 2)
        let x: UnsafeMutablePointer<Float>, w1: UnsafeMutablePointer<Float>, b1: UnsafeMutablePointer<Float>, y1: UnsafeMutablePointer<Float>, z1: UnsafeMutablePointer<Float>, gamma1: UnsafeMutablePointer<Float>, beta1: UnsafeMutablePointer<Float>, rm1: UnsafeMutablePointer<Float>, rv1: UnsafeMutablePointer<Float>, sm1: UnsafeMutablePointer<Float>, si1: UnsafeMutablePointer<Float>, q1: UnsafeMutablePointer<Float>, w2: UnsafeMutablePointer<Float>, b2: UnsafeMutablePointer<Float>, y2: UnsafeMutablePointer<Float>, z2: UnsafeMutablePointer<Float>, d2: UnsafeMutablePointer<Float>, mask2: UnsafeMutablePointer<Float>, gamma2: UnsafeMutablePointer<Float>, beta2: UnsafeMutablePointer<Float>, rm2: UnsafeMutablePointer<Float>, rv2: UnsafeMutablePointer<Float>, sm2: UnsafeMutablePointer<Float>, si2: UnsafeMutablePointer<Float>, q2: UnsafeMutablePointer<Float>, fw: UnsafeMutablePointer<Float>, fb: UnsafeMutablePointer<Float>, logits: UnsafeMutablePointer<Float>, losses: UnsafeMutablePointer<Float>, dLogits: UnsafeMutablePointer<Float>, dfw: UnsafeMutablePointer<Float>, dfb: UnsafeMutablePointer<Float>, dq2: UnsafeMutablePointer<Float>, dz2: UnsafeMutablePointer<Float>, dy2: UnsafeMutablePointer<Float>, dx2: UnsafeMutablePointer<Float>, dw2: UnsafeMutablePointer<Float>, db2: UnsafeMutablePointer<Float>, dg2: UnsafeMutablePointer<Float>, dbe2: UnsafeMutablePointer<Float>, dz1: UnsafeMutablePointer<Float>, dy1: UnsafeMutablePointer<Float>, dw1: UnsafeMutablePointer<Float>, db1: UnsafeMutablePointer<Float>, dg1: UnsafeMutablePointer<Float>, dbe1: UnsafeMutablePointer<Float>, params: UnsafeMutablePointer<Float>, grads: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>
        let a1: UnsafeMutablePointer<Int32>, a2: UnsafeMutablePointer<Int32>, labels: UnsafeMutablePointer<Int32>
        private var owned: [UnsafeMutableRawPointer] = []

        init() {
            var owned: [UnsafeMutableRawPointer] = []
            func buffer(_ count: Int, seed: UInt64) -> UnsafeMutablePointer<Float> {
                let p = UnsafeMutablePointer<Float>.allocate(capacity: count)
                p.initialize(from: seed == 0 ? [Float](repeating: 0, count: count) : FastParity.random(count, seed: seed), count: count)
                owned.append(UnsafeMutableRawPointer(p))
                return p
            }
            let (g1, g2, p1, p2) = (self.g1, self.g2, self.p1, self.p2)
            x = buffer(g1.inputShape.count, seed: 1)
            w1 = buffer(g1.weightShape.count, seed: 2)
            b1 = buffer(8, seed: 3)
            y1 = buffer(g1.outputShape.count, seed: 0)
            z1 = buffer(g1.outputShape.count, seed: 0)
            gamma1 = buffer(8, seed: 4)
            beta1 = buffer(8, seed: 5)
            rm1 = buffer(8, seed: 0)
            rv1 = buffer(8, seed: 0)
            sm1 = buffer(8, seed: 0)
            si1 = buffer(8, seed: 0)
            q1 = buffer(p1.outputShape.count, seed: 0)
            w2 = buffer(g2.weightShape.count, seed: 6)
            b2 = buffer(16, seed: 7)
            y2 = buffer(g2.outputShape.count, seed: 0)
            z2 = buffer(g2.outputShape.count, seed: 0)
            d2 = buffer(g2.outputShape.count, seed: 0)
            mask2 = buffer(g2.outputShape.count, seed: 0)
            gamma2 = buffer(16, seed: 8)
            beta2 = buffer(16, seed: 9)
            rm2 = buffer(16, seed: 0)
            rv2 = buffer(16, seed: 0)
            sm2 = buffer(16, seed: 0)
            si2 = buffer(16, seed: 0)
            q2 = buffer(p2.outputShape.count, seed: 0)
            fw = buffer(10 * 256, seed: 10)
            fb = buffer(10, seed: 11)
            logits = buffer(40, seed: 0)
            losses = buffer(4, seed: 0)
            dLogits = buffer(40, seed: 0)
            dfw = buffer(10 * 256, seed: 0)
            dfb = buffer(10, seed: 0)
            dq2 = buffer(p2.outputShape.count, seed: 0)
            dz2 = buffer(g2.outputShape.count, seed: 0)
            dy2 = buffer(g2.outputShape.count, seed: 0)
            dx2 = buffer(g2.inputShape.count, seed: 0)
            dw2 = buffer(g2.weightShape.count, seed: 0)
            db2 = buffer(16, seed: 0)
            dg2 = buffer(16, seed: 0)
            dbe2 = buffer(16, seed: 0)
            dz1 = buffer(g1.outputShape.count, seed: 0)
            dy1 = buffer(g1.outputShape.count, seed: 0)
            dw1 = buffer(g1.weightShape.count, seed: 0)
            db1 = buffer(8, seed: 0)
            dg1 = buffer(8, seed: 0)
            dbe1 = buffer(8, seed: 0)
            params = buffer(5000, seed: 12)
            grads = buffer(5000, seed: 13)
            m = buffer(5000, seed: 0)
            v = buffer(5000, seed: 0)
            a1 = .allocate(capacity: p1.outputShape.count); a2 = .allocate(capacity: p2.outputShape.count)
            labels = .allocate(capacity: 4)
            for i in 0..<4 { labels[i] = Int32(i * 3 % 10) }
            owned += [UnsafeMutableRawPointer(a1), UnsafeMutableRawPointer(a2), UnsafeMutableRawPointer(labels)]
            self.owned = owned
        }

        func step(_ t: Int) throws {
            let f = fast
            f.conv2DForward(x: x, weight: w1, bias: b1, y: y1, geometry: g1, activation: .identity)
            f.batchNormForwardTraining(x: y1, gamma: gamma1, beta: beta1, y: z1, runningMean: rm1, runningVar: rv1, saveMean: sm1,
                                       saveInvStd: si1, batch: n, channels: 8, spatial: 256, momentum: 0.1, epsilon: 1e-5, activation: .relu)
            f.maxPool2DForward(x: z1, y: q1, argmax: a1, geometry: p1)
            f.conv2DForward(x: q1, weight: w2, bias: b2, y: y2, geometry: g2, activation: .identity)
            f.batchNormForwardTraining(x: y2, gamma: gamma2, beta: beta2, y: z2, runningMean: rm2, runningVar: rv2, saveMean: sm2,
                                       saveInvStd: si2, batch: n, channels: 16, spatial: 64, momentum: 0.1, epsilon: 1e-5, activation: .relu)
            f.dropoutForward(x: z2, y: d2, mask: mask2, count: g2.outputShape.count, probability: 0.25, seed: UInt64(t))
            f.maxPool2DForward(x: d2, y: q2, argmax: a2, geometry: p2)
            f.gemm.sgemm(transA: false, transB: true, m: n, n: 10, k: 256, alpha: 1, a: q2, lda: 256, b: fw, ldb: 256, beta: 0, c: logits, ldc: 10)
            f.biasAdd(y: logits, bias: fb, batch: n, channels: 10, spatial: 1, activation: .identity)
            try f.softmaxCrossEntropy(logits: logits, targets: .labels(labels), rows: n, classes: 10, labelSmoothing: 0,
                                      losses: losses, dLogits: dLogits, gradScale: 0.25)
            f.gemm.sgemm(transA: true, transB: false, m: 10, n: 256, k: n, alpha: 1, a: dLogits, lda: 10, b: q2, ldb: 256, beta: 0, c: dfw, ldc: 256)
            f.biasGrad(dy: dLogits, dBias: dfb, batch: n, channels: 10, spatial: 1)
            f.gemm.sgemm(transA: false, transB: false, m: n, n: 256, k: 10, alpha: 1, a: dLogits, lda: 10, b: fw, ldb: 256, beta: 0, c: dq2, ldc: 256)
            try f.maxPool2DBackward(dy: dq2, argmax: a2, dx: dz2, geometry: p2)
            f.mul(dz2, mask2, y: dz2, count: g2.outputShape.count)
            f.reluBackward(y: z2, dy: dz2, dx: dz2, count: g2.outputShape.count)
            f.batchNormBackward(x: y2, dy: dz2, gamma: gamma2, saveMean: sm2, saveInvStd: si2, dx: dy2, dGamma: dg2, dBeta: dbe2,
                                batch: n, channels: 16, spatial: 64)
            f.conv2DBackwardFilter(x: q1, dy: dy2, dWeight: dw2, dBias: db2, geometry: g2)
            f.conv2DBackwardData(dy: dy2, weight: w2, dx: dx2, geometry: g2)
            try f.maxPool2DBackward(dy: dx2, argmax: a1, dx: dz1, geometry: p1)
            f.reluBackward(y: z1, dy: dz1, dx: dz1, count: g1.outputShape.count)
            f.batchNormBackward(x: y1, dy: dz1, gamma: gamma1, saveMean: sm1, saveInvStd: si1, dx: dy1, dGamma: dg1, dBeta: dbe1,
                                batch: n, channels: 8, spatial: 256)
            f.conv2DBackwardFilter(x: x, dy: dy1, dWeight: dw1, dBias: db1, geometry: g1)
            f.adamStep(params: params, grads: grads, m: m, v: v, count: 5000, hyper: AdamHyper(learningRate: 1e-3, weightDecay: 1e-4), step: t)
            f.sum(losses, count: n, into: losses, accumulate: false, squares: false)
        }
        deinit { for b in owned { b.deallocate() } }
    }

    @Test func fastPathStepsAllocateNoBuffersAndTouchNoNewPages() throws {
        let net = Net()
        for t in 1...2 { try net.step(t) }   // warm-up: scratch buffers grow to their steady size
        // This net's own workspaces (not the process-wide count, which tests running in parallel move).
        func allocations() -> Int { net.fast.workspace.allocations + net.fast.gemm.workspace.allocations }
        let buffersBefore = allocations()
        #expect(buffersBefore > 0, "the warm-up steps allocated no scratch: the count does not see them")
        let faultsBefore = threadMinorFaults()
        for t in 3...7 { try net.step(t) }
        let faults = threadMinorFaults() - faultsBefore
        let buffers = allocations() - buffersBefore
        #expect(buffers == 0, "scratch buffer allocations in 5 steady-state steps: \(buffers)")
        #expect(faults == 0, "minor page faults in 5 steady-state steps: \(faults)")
    }

    @Test func backendStepsAllocateNoBuffersAndTouchNoNewPages() throws {
        let be = CPUBackend(reference: false, pool: FastParity.onePool, splitAll: false)
        let g = Conv2DGeometry(batch: 4, inChannels: 8, height: 8, width: 8, outChannels: 16, kernel: 3, padding: 1)
        let x = try be.upload(FastParity.random(g.inputShape.count, seed: 1), shape: g.inputShape)
        let w = try be.upload(FastParity.random(g.weightShape.count, seed: 2), shape: g.weightShape)
        let b = try be.upload(FastParity.random(16, seed: 3), shape: [16])
        let y = try be.makeTensor(g.outputShape), z = try be.makeTensor(g.outputShape), dx = try be.makeTensor(g.inputShape)
        let dw = try be.makeTensor(g.weightShape), db = try be.makeTensor([16])
        let gamma = try be.upload(FastParity.random(16, seed: 4), shape: [16]), beta = try be.makeTensor([16])
        let rm = try be.makeTensor([16]), rv = try be.makeTensor([16]), sm = try be.makeTensor([16]), si = try be.makeTensor([16])
        let dg = try be.makeTensor([16]), dbe = try be.makeTensor([16])
        let dz = try be.upload(FastParity.random(g.outputShape.count, seed: 5), shape: g.outputShape), dyb = try be.makeTensor(g.outputShape)
        let dyc = try be.makeTensor(g.outputShape)
        func step() throws {
            try be.conv2DForward(x: x, weight: w, bias: b, y: y, geometry: g, activation: .identity)
            try be.batchNormForwardTraining(x: y, gamma: gamma, beta: beta, y: z, runningMean: rm, runningVar: rv, saveMean: sm,
                                            saveInvStd: si, momentum: 0.1, epsilon: 1e-5, activation: .relu)
            try be.reluBackward(y: z, dy: dz, dx: dyb)
            try be.batchNormBackward(x: y, dy: dyb, gamma: gamma, saveMean: sm, saveInvStd: si, dx: dyc, dGamma: dg, dBeta: dbe)
            try be.conv2DBackwardFilter(x: x, dy: dyc, dWeight: dw, dBias: db, geometry: g)
            try be.conv2DBackwardData(dy: dyc, weight: w, dx: dx, geometry: g)
        }
        for _ in 0..<2 { try step() }
        let buffersBefore = be.scratchAllocations
        #expect(buffersBefore > 0, "the warm-up steps allocated no scratch: the count does not see them")
        let faultsBefore = threadMinorFaults()
        for _ in 0..<5 { try step() }
        let faults = threadMinorFaults() - faultsBefore
        let buffers = be.scratchAllocations - buffersBefore
        #expect(buffers == 0, "scratch buffer allocations in 5 steady-state steps: \(buffers)")
        #expect(faults == 0, "minor page faults in 5 steady-state steps: \(faults)")
    }
}
