import Foundation
import SwiftCNN

/// A case set up on one backend: inputs uploaded, outputs allocated.
final class PreparedCase {
    /// One repetition (enqueues the work; the runner synchronizes).
    var run: () throws -> Void = {}
    /// Checks the output of the latest `run` at sampled elements against float64 sums on the host
    /// (for shapes too large for a full reference run); nil where the case has none.
    var sampledCheck: (() throws -> GateRecord)?
    /// After timing: numbers to keep (e.g. the mean training loss).
    var finish: (() throws -> [String: Double])?
    /// Whole-case runner (the epoch case times itself): returns per-repetition seconds.
    var selfTimed: (() throws -> (seconds: [Double], extra: [String: Double]))?
}

/// Deterministic inputs per case (the name seeds them).
struct HostInputs {
    var rng: SeededRNG
    init(_ name: String) {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        rng = SeededRNG(seed: h)
    }
    mutating func uniform(_ n: Int, _ lo: Float = -1, _ hi: Float = 1) -> [Float] {
        var out = [Float](repeating: 0, count: n)
        for i in 0..<n { out[i] = rng.uniform(lo, hi) }
        return out
    }
    mutating func labels(_ n: Int, classes: Int) -> [Int32] { (0..<n).map { _ in Int32(rng.nextInt(classes)) } }
}

enum OpCases {
    static let samples = 256

    static func prepare(_ c: BenchCase, on b: any Backend, dataPath: String? = nil, dataWorkers: Int? = nil) throws -> PreparedCase {
        let p = PreparedCase()
        var inp = HostInputs(c.name)
        switch c.kind {
        case let .gemm(s):
            let (ar, ac) = s.transA ? (s.k, s.m) : (s.m, s.k)
            let (br, bc) = s.transB ? (s.n, s.k) : (s.k, s.n)
            let aCount = ar * ac * (s.sharedA ? 1 : s.batch), bCount = br * bc * s.batch, cCount = s.m * s.n * s.batch
            let ha = inp.uniform(aCount), hb = inp.uniform(bCount)
            let a = try b.upload(ha, shape: [aCount]), bm = try b.upload(hb, shape: [bCount]), cm = try b.makeTensor([cCount])
            p.run = {
                if s.batch == 1 {
                    try b.gemm(transA: s.transA, transB: s.transB, m: s.m, n: s.n, k: s.k, alpha: 1, a: a, lda: ac, b: bm, ldb: bc,
                               beta: 0, c: cm, ldc: s.n)
                } else {
                    try b.gemmStridedBatched(transA: s.transA, transB: s.transB, m: s.m, n: s.n, k: s.k, alpha: 1,
                                             a: a, lda: ac, strideA: s.sharedA ? 0 : ar * ac, b: bm, ldb: bc, strideB: br * bc,
                                             beta: 0, c: cm, ldc: s.n, strideC: s.m * s.n, batch: s.batch)
                }
            }
            p.sampledCheck = {
                let got = try b.floats(cm)
                var rng = SeededRNG(seed: 99)
                var g: [Float] = [], r: [Float] = []
                for _ in 0..<min(samples, cCount) {
                    let item = rng.nextInt(s.batch), i = rng.nextInt(s.m), j = rng.nextInt(s.n)
                    let ao = s.sharedA ? 0 : item * ar * ac, bo = item * br * bc
                    var acc = 0.0
                    for q in 0..<s.k {
                        let av = s.transA ? ha[ao + q * ac + i] : ha[ao + i * ac + q]
                        let bv = s.transB ? hb[bo + j * bc + q] : hb[bo + q * bc + j]
                        acc += Double(av) * Double(bv)
                    }
                    g.append(got[item * s.m * s.n + i * s.n + j]); r.append(Float(acc))
                }
                return sampledRecord(g, r)
            }

        case let .convForward(gm, bias, act):
            let hx = inp.uniform(gm.inputShape.count), hw = inp.uniform(gm.weightShape.count)
            let hbias = bias ? inp.uniform(gm.outChannels) : []
            let x = try b.upload(hx, shape: gm.inputShape), w = try b.upload(hw, shape: gm.weightShape)
            let bt = bias ? try b.upload(hbias, shape: [gm.outChannels]) : nil
            let y = try b.makeTensor(gm.outputShape)
            p.run = { try b.conv2DForward(x: x, weight: w, bias: bt, y: y, geometry: gm, activation: act) }
            p.sampledCheck = {
                let got = try b.floats(y)
                var rng = SeededRNG(seed: 99)
                var g: [Float] = [], r: [Float] = []
                let (OH, OW) = (gm.outHeight, gm.outWidth)
                for _ in 0..<samples {
                    let n = rng.nextInt(gm.batch), co = rng.nextInt(gm.outChannels), oh = rng.nextInt(OH), ow = rng.nextInt(OW)
                    var acc = bias ? Double(hbias[co]) : 0
                    for ci in 0..<gm.inChannels {
                        for i in 0..<gm.kernelH {
                            let ih = oh * gm.strideH - gm.padH + i
                            guard ih >= 0 && ih < gm.height else { continue }
                            for j in 0..<gm.kernelW {
                                let iw = ow * gm.strideW - gm.padW + j
                                guard iw >= 0 && iw < gm.width else { continue }
                                acc += Double(hw[((co * gm.inChannels + ci) * gm.kernelH + i) * gm.kernelW + j])
                                    * Double(hx[((n * gm.inChannels + ci) * gm.height + ih) * gm.width + iw])
                            }
                        }
                    }
                    if act == .relu { acc = max(acc, 0) }
                    g.append(got[((n * gm.outChannels + co) * OH + oh) * OW + ow]); r.append(Float(acc))
                }
                return sampledRecord(g, r)
            }

        case let .convBackwardData(gm):
            let hdy = inp.uniform(gm.outputShape.count), hw = inp.uniform(gm.weightShape.count)
            let dy = try b.upload(hdy, shape: gm.outputShape), w = try b.upload(hw, shape: gm.weightShape)
            let dx = try b.makeTensor(gm.inputShape)
            p.run = { try b.conv2DBackwardData(dy: dy, weight: w, dx: dx, geometry: gm) }
            p.sampledCheck = {
                let got = try b.floats(dx)
                var rng = SeededRNG(seed: 99)
                var g: [Float] = [], r: [Float] = []
                let (OH, OW) = (gm.outHeight, gm.outWidth)
                for _ in 0..<samples {
                    let n = rng.nextInt(gm.batch), ci = rng.nextInt(gm.inChannels), h = rng.nextInt(gm.height), wq = rng.nextInt(gm.width)
                    var acc = 0.0
                    for co in 0..<gm.outChannels {
                        for i in 0..<gm.kernelH {
                            let th = h + gm.padH - i
                            guard th >= 0, th % gm.strideH == 0, th / gm.strideH < OH else { continue }
                            for j in 0..<gm.kernelW {
                                let tw = wq + gm.padW - j
                                guard tw >= 0, tw % gm.strideW == 0, tw / gm.strideW < OW else { continue }
                                acc += Double(hdy[((n * gm.outChannels + co) * OH + th / gm.strideH) * OW + tw / gm.strideW])
                                    * Double(hw[((co * gm.inChannels + ci) * gm.kernelH + i) * gm.kernelW + j])
                            }
                        }
                    }
                    g.append(got[((n * gm.inChannels + ci) * gm.height + h) * gm.width + wq]); r.append(Float(acc))
                }
                return sampledRecord(g, r)
            }

        case let .convBackwardFilter(gm, bias):
            let hx = inp.uniform(gm.inputShape.count), hdy = inp.uniform(gm.outputShape.count)
            let x = try b.upload(hx, shape: gm.inputShape), dy = try b.upload(hdy, shape: gm.outputShape)
            let dw = try b.makeTensor(gm.weightShape), db = bias ? try b.makeTensor([gm.outChannels]) : nil
            p.run = { try b.conv2DBackwardFilter(x: x, dy: dy, dWeight: dw, dBias: db, geometry: gm) }
            p.sampledCheck = {
                let got = try b.floats(dw)
                var rng = SeededRNG(seed: 99)
                var g: [Float] = [], r: [Float] = []
                let (OH, OW) = (gm.outHeight, gm.outWidth)
                // Each element sums N*OH*OW products: sample fewer when that is large.
                let count = max(16, min(samples, 50_000_000 / max(gm.batch * OH * OW, 1)))
                for _ in 0..<count {
                    let co = rng.nextInt(gm.outChannels), ci = rng.nextInt(gm.inChannels)
                    let i = rng.nextInt(gm.kernelH), j = rng.nextInt(gm.kernelW)
                    var acc = 0.0
                    for n in 0..<gm.batch {
                        for oh in 0..<OH {
                            let ih = oh * gm.strideH - gm.padH + i
                            guard ih >= 0 && ih < gm.height else { continue }
                            for ow in 0..<OW {
                                let iw = ow * gm.strideW - gm.padW + j
                                guard iw >= 0 && iw < gm.width else { continue }
                                acc += Double(hdy[((n * gm.outChannels + co) * OH + oh) * OW + ow])
                                    * Double(hx[((n * gm.inChannels + ci) * gm.height + ih) * gm.width + iw])
                            }
                        }
                    }
                    g.append(got[((co * gm.inChannels + ci) * gm.kernelH + i) * gm.kernelW + j]); r.append(Float(acc))
                }
                var rec = sampledRecord(g, r)
                if let db {   // every bias gradient: a plain sum of dy per channel
                    let gotB = try b.floats(db)
                    var refB = [Float](repeating: 0, count: gm.outChannels)
                    let plane = OH * OW
                    for co in 0..<gm.outChannels {
                        var acc = 0.0
                        for n in 0..<gm.batch {
                            let base = (n * gm.outChannels + co) * plane
                            for q in 0..<plane { acc += Double(hdy[base + q]) }
                        }
                        refB[co] = Float(acc)
                    }
                    let cb = compare(gotB, refB, .reduction(length: gm.batch * plane))
                    rec.checks += 1
                    rec.maxAbsError = finite(max(rec.maxAbsError ?? 0, cb.maxAbsError))
                    rec.maxRelError = finite(max(rec.maxRelError ?? 0, cb.maxRelError))
                    if !cb.passed { rec.passed = false; rec.detail = (rec.detail.map { $0 + "; " } ?? "") + "dBias: \(cb)" }
                }
                return rec
            }

        case let .maxPoolForward(g):
            let x = try b.upload(inp.uniform(g.inputShape.count), shape: g.inputShape)
            let y = try b.makeTensor(g.outputShape), am = try b.makeTensor(g.outputShape, dtype: .int32)
            p.run = { try b.maxPool2DForward(x: x, y: y, argmax: am, geometry: g) }
        case let .maxPoolBackward(g):
            let x = try b.upload(inp.uniform(g.inputShape.count), shape: g.inputShape)
            let y = try b.makeTensor(g.outputShape), am = try b.makeTensor(g.outputShape, dtype: .int32)
            try b.maxPool2DForward(x: x, y: y, argmax: am, geometry: g)
            let dy = try b.upload(inp.uniform(g.outputShape.count), shape: g.outputShape), dx = try b.makeTensor(g.inputShape)
            p.run = { try b.maxPool2DBackward(dy: dy, argmax: am, dx: dx, geometry: g) }
        case let .avgPoolForward(g):
            let x = try b.upload(inp.uniform(g.inputShape.count), shape: g.inputShape), y = try b.makeTensor(g.outputShape)
            p.run = { try b.avgPool2DForward(x: x, y: y, geometry: g) }
        case let .avgPoolBackward(g):
            let dy = try b.upload(inp.uniform(g.outputShape.count), shape: g.outputShape), dx = try b.makeTensor(g.inputShape)
            p.run = { try b.avgPool2DBackward(dy: dy, dx: dx, geometry: g) }

        case let .batchNormTraining(shape, act):
            let ch = shape[1]
            let x = try b.upload(inp.uniform(shape.count), shape: shape)
            let gamma = try b.upload(inp.uniform(ch, 0.5, 1.5), shape: [ch]), beta = try b.upload(inp.uniform(ch), shape: [ch])
            let rm = try b.makeTensor([ch]), rv = try b.upload([Float](repeating: 1, count: ch), shape: [ch])
            let y = try b.makeTensor(shape), sm = try b.makeTensor([ch]), si = try b.makeTensor([ch])
            p.run = {
                try b.batchNormForwardTraining(x: x, gamma: gamma, beta: beta, y: y, runningMean: rm, runningVar: rv,
                                               saveMean: sm, saveInvStd: si, momentum: 0.1, epsilon: 1e-5, activation: act)
            }
        case let .batchNormInference(shape, act):
            let ch = shape[1]
            let x = try b.upload(inp.uniform(shape.count), shape: shape)
            let gamma = try b.upload(inp.uniform(ch, 0.5, 1.5), shape: [ch]), beta = try b.upload(inp.uniform(ch), shape: [ch])
            let rm = try b.upload(inp.uniform(ch), shape: [ch]), rv = try b.upload(inp.uniform(ch, 0.5, 2), shape: [ch])
            let y = try b.makeTensor(shape)
            p.run = {
                try b.batchNormForwardInference(x: x, gamma: gamma, beta: beta, runningMean: rm, runningVar: rv, y: y,
                                                epsilon: 1e-5, activation: act)
            }
        case let .batchNormBackward(shape):
            let ch = shape[1]
            let x = try b.upload(inp.uniform(shape.count), shape: shape)
            let gamma = try b.upload(inp.uniform(ch, 0.5, 1.5), shape: [ch]), beta = try b.upload(inp.uniform(ch), shape: [ch])
            let rm = try b.makeTensor([ch]), rv = try b.makeTensor([ch]), y = try b.makeTensor(shape)
            let sm = try b.makeTensor([ch]), si = try b.makeTensor([ch])
            try b.batchNormForwardTraining(x: x, gamma: gamma, beta: beta, y: y, runningMean: rm, runningVar: rv,
                                           saveMean: sm, saveInvStd: si, momentum: 0.1, epsilon: 1e-5, activation: .identity)
            let dy = try b.upload(inp.uniform(shape.count), shape: shape)
            let dx = try b.makeTensor(shape), dg = try b.makeTensor([ch]), dbeta = try b.makeTensor([ch])
            p.run = { try b.batchNormBackward(x: x, dy: dy, gamma: gamma, saveMean: sm, saveInvStd: si, dx: dx, dGamma: dg, dBeta: dbeta) }

        case let .softmaxCrossEntropy(n, k):
            let logits = try b.upload(inp.uniform(n * k, -4, 4), shape: [n, k])
            let labels = try b.upload(inp.labels(n, classes: k), shape: [n])
            let losses = try b.makeTensor([n]), d = try b.makeTensor([n, k])
            p.run = {
                try b.softmaxCrossEntropy(logits: logits, targets: .labels(labels), labelSmoothing: 0, losses: losses, dLogits: d,
                                          gradScale: 1 / Float(n))
            }
        case let .adamStep(n):
            let params = try b.upload(inp.uniform(n), shape: [n]), grads = try b.upload(inp.uniform(n, -0.01, 0.01), shape: [n])
            let m = try b.makeTensor([n]), v = try b.makeTensor([n])
            let hyper = AdamHyper(learningRate: 1e-3, weightDecay: 1e-4, decoupled: true)
            var step = 0
            p.run = { step += 1; try b.adamStep(params: params, grads: grads, m: m, v: v, hyper: hyper, step: step) }
        case let .sgdStep(n):
            let params = try b.upload(inp.uniform(n), shape: [n]), grads = try b.upload(inp.uniform(n, -0.01, 0.01), shape: [n])
            let buf = try b.makeTensor([n])
            let hyper = SGDHyper(learningRate: 0.01, momentum: 0.9, nesterov: true, weightDecay: 5e-4)
            p.run = { try b.sgdStep(params: params, grads: grads, momentumBuffer: buf, hyper: hyper) }

        case .train, .infer, .epoch:
            return try EndToEnd.prepare(c, on: b, dataPath: dataPath, dataWorkers: dataWorkers)
        }
        return p
    }

    static func sampledRecord(_ got: [Float], _ ref: [Float]) -> GateRecord {
        let c = compare(got, ref, .gemm)
        return GateRecord(passed: c.passed, method: "sampled \(ref.count) elements of the timed output vs float64 sums",
                          checks: 1, maxAbsError: finite(c.maxAbsError), maxRelError: finite(c.maxRelError), seconds: 0,
                          detail: c.passed ? nil : c.description)
    }

    /// The Verification cases that check `c`'s primitive at `c`'s shapes (batch reduced to `batch`
    /// where given), or nil for end-to-end cases.
    static func verifyCases(_ c: BenchCase, batch: Int? = nil) -> [VerifyCase]? {
        func rb(_ g: Conv2DGeometry) -> Conv2DGeometry { var g = g; if let batch { g.batch = batch }; return g }
        switch c.kind {
        case let .gemm(s):
            if s.batch > 1 || s.sharedA {
                return [.gemmStridedBatched(m: s.m, n: s.n, k: s.k, batch: batch ?? s.batch, transA: s.transA, transB: s.transB,
                                            sharedA: s.sharedA)]
            }
            return [.gemm(m: s.m, n: s.n, k: s.k, transA: s.transA, transB: s.transB)]
        case let .convForward(g, bias, act): return [.conv2DForward(rb(g), bias: bias, activation: act)]
        case let .convBackwardData(g): return [.conv2DBackwardData(rb(g))]
        case let .convBackwardFilter(g, bias): return [.conv2DBackwardFilter(rb(g), bias: bias)]
        case let .maxPoolForward(g): return [VerifyCase.maxPool2D(g)[0]]
        case let .maxPoolBackward(g): return [VerifyCase.maxPool2D(g)[1]]
        case let .avgPoolForward(g): return [VerifyCase.avgPool2D(g)[0]]
        case let .avgPoolBackward(g): return [VerifyCase.avgPool2D(g)[1]]
        case let .batchNormTraining(s, act): return [VerifyCase.batchNorm(s, activation: act)[0]]
        case let .batchNormInference(s, act): return [VerifyCase.batchNorm(s, activation: act)[1]]
        case let .batchNormBackward(s): return [VerifyCase.batchNorm(s)[2]]
        case let .softmaxCrossEntropy(n, k): return [.softmaxCrossEntropy(rows: n, classes: k, soft: false)]
        case let .adamStep(n): return [.adamStep(count: n, hyper: AdamHyper(learningRate: 1e-3, weightDecay: 1e-4, decoupled: true), steps: 2)]
        case let .sgdStep(n):
            return [.sgdStep(count: n, hyper: SGDHyper(learningRate: 0.01, momentum: 0.9, nesterov: true, weightDecay: 5e-4), steps: 2)]
        case .train, .infer, .epoch: return nil
        }
    }

    /// For GEMM and convolution cases over the reference budget: the batch at which a reference
    /// check fits it (nil when the per-item shape alone exceeds it, or the case has no batch axis).
    static func reducedBatch(_ c: BenchCase, budgetMACs: Double) -> Int? {
        switch c.kind {
        case let .gemm(s) where s.batch > 1:
            let per = Double(s.m * s.n * s.k)
            return per <= budgetMACs ? max(1, min(s.batch - 1, Int(budgetMACs / per))) : nil
        case let .convForward(g, _, _), let .convBackwardData(g), let .convBackwardFilter(g, _):
            let per = Double(g.forwardMACs / g.batch)
            return per <= budgetMACs ? max(1, min(g.batch - 1, Int(budgetMACs / per))) : nil
        default: return nil
        }
    }
}
