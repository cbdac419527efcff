import SwiftCNN

/// One GEMM as the Backend sees it (row-major). `batch > 1` is a strided-batched GEMM; `sharedA`
/// reuses one A for every item (a convolution's weights against each image's im2col columns).
package struct GEMMShape: Sendable, Hashable {
    package var m, n, k: Int
    package var transA, transB: Bool
    package var batch: Int
    package var sharedA: Bool
    package init(m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false, batch: Int = 1, sharedA: Bool = false) {
        self.m = m; self.n = n; self.k = k; self.transA = transA; self.transB = transB; self.batch = batch; self.sharedA = sharedA
    }
    package var macs: Int { m * n * k * batch }
    /// alpha 1, beta 0, matrices back to back.
    package var descriptor: OpDescriptor {
        batch > 1 ? .gemmStridedBatched(m: m, n: n, k: k, batch: batch, transA: transA, transB: transB, sharedA: sharedA, packed: true)
            : .gemm(m: m, n: n, k: k, transA: transA, transB: transB)
    }
    package var description: String {
        (batch > 1 ? "batch \(batch) x " : "") + "m\(m) n\(n) k\(k)" + (transA ? " A^T" : "") + (transB ? " B^T" : "")
            + (sharedA ? " (A shared)" : "")
    }
}

/// What a case runs.
package enum CaseKind: Sendable {
    /// One primitive at one shape (its descriptor builds the inputs, runs it and checks it).
    case op(OpDescriptor)
    /// One training step (upload, forward, loss, backward, Adam) on random data.
    case train(model: String, batch: Int)
    /// One inference batch: upload images, forward (eval mode), argmax, read the classes back.
    case infer(model: String, batch: Int)
    /// Training over `images` real CIFAR-10 images with the guide's augmentation in background threads.
    case epoch(model: String, batch: Int, images: Int)
}

/// One benchmark case: a name (stable across runs and devices: `compare` matches on it), what it
/// runs, and the work it does per repetition.
package struct BenchCase: Sendable {
    package var name: String
    package var family: String
    package var op: String
    package var shape: String
    package var batch: Int?
    package var usedBy: [String]
    package var kind: CaseKind
    /// Floating-point operations per repetition (a multiply-add is 2), where meaningful.
    package var flops: Double?
    /// Minimum memory traffic per repetition (every tensor read or written once), for GB/s.
    package var bytes: Double?

    package var isEndToEnd: Bool { family == "train" || family == "infer" || family == "epoch" }
    /// Multiply-accumulates a reference check of this exact case costs.
    package var referenceMACs: Double {
        if case let .op(d) = kind { return d.referenceMACs }
        return 0
    }

    /// A per-op case: family, op, FLOPs and bytes come from the descriptor; `shape` is the
    /// benchmark's own label.
    static func op(_ name: String, _ d: OpDescriptor, shape: String, batch: Int?) -> BenchCase {
        BenchCase(name: name, family: d.family, op: d.op, shape: shape, batch: batch, usedBy: [], kind: .op(d), flops: d.flops,
                  bytes: d.bytes)
    }
}

/// Which cases a run contains.
package struct CaseSelection: Sendable {
    package var gemmSizes: [Int]
    package var models: [String]
    package var opBatch: Int
    package var batches: [Int]
    /// Extra end-to-end cases (e.g. train:speedrun:512 of the CPU goal table).
    package var extraTrain: [(model: String, batch: Int)]
    package var epochModel: String?
    package var epochBatch: Int
    package var epochImages: Int

    package static let full = CaseSelection(gemmSizes: [256, 512, 1024, 2048], models: ["cnn", "optimized", "speedrun"], opBatch: 128,
                                           batches: [64, 128, 256], extraTrain: [("speedrun", 512)], epochModel: "optimized",
                                           epochBatch: 64, epochImages: 2048)
    package static let quick = CaseSelection(gemmSizes: [128], models: ["optimized"], opBatch: 8, batches: [16], extraTrain: [],
                                            epochModel: "optimized", epochBatch: 16, epochImages: 64)
}

/// The ordered case list (per-op families first, then end to end).
package enum CaseCatalog {
    package static func cases(_ sel: CaseSelection) throws -> [BenchCase] {
        var out: [BenchCase] = []
        var index: [String: Int] = [:]   // dedup key -> position in out
        func add(_ key: String, _ make: () -> BenchCase, usedBy: String? = nil) {
            if let i = index[key] {
                if let u = usedBy, !out[i].usedBy.contains(u) { out[i].usedBy.append(u) }
                return
            }
            var c = make()
            if let u = usedBy { c.usedBy = [u] }
            index[key] = out.count
            out.append(c)
        }
        let shapes = sel.models.compactMap { m -> ModelShapes? in
            do { return try ModelShapes.of(m, batch: sel.opBatch) } catch { return nil }   // residual nets: no per-op cases
        }

        // GEMM: square sizes, the models' linear layers (forward, weight gradient, input gradient)
        // and each convolution's forward GEMM over im2col columns (one weight matrix, batch of images).
        for n in sel.gemmSizes {
            let s = GEMMShape(m: n, n: n, k: n)
            add("gemm \(s)", { gemmCase("gemm:square:\(n)", s, batch: nil) })
        }
        for ms in shapes {
            for d in ms.denses {
                let fwd = GEMMShape(m: d.batch, n: d.outFeatures, k: d.inFeatures, transB: true)
                add("gemm \(fwd)", { gemmCase("gemm:\(d.path).forward:\(d.batch)", fwd, batch: d.batch) }, usedBy: d.path)
                let dw = GEMMShape(m: d.outFeatures, n: d.inFeatures, k: d.batch, transA: true)
                add("gemm \(dw)", { gemmCase("gemm:\(d.path).dweight:\(d.batch)", dw, batch: d.batch) }, usedBy: d.path)
                if d.needsInputGradient {
                    let dx = GEMMShape(m: d.batch, n: d.inFeatures, k: d.outFeatures)
                    add("gemm \(dx)", { gemmCase("gemm:\(d.path).dinput:\(d.batch)", dx, batch: d.batch) }, usedBy: d.path)
                }
            }
            for c in ms.convs {
                let g = c.geometry
                let s = GEMMShape(m: g.outChannels, n: g.outHeight * g.outWidth, k: g.patchSize, batch: g.batch, sharedA: true)
                add("gemm \(s)", { gemmCase("gemm:\(c.path).im2col:\(g.batch)", s, batch: g.batch) }, usedBy: c.path)
            }
        }
        // Convolutions: forward, backward data (not for a first layer), backward filter.
        for ms in shapes {
            for c in ms.convs {
                let g = c.geometry
                let key = "\(g) bias \(c.bias)"
                add("fwd " + key, {
                    .op("conv2DForward:\(c.path):\(g.batch)", .conv2DForward(g, bias: c.bias, activation: c.activation),
                        shape: convShape(g, c.bias, c.activation), batch: g.batch)
                }, usedBy: c.path)
                if c.needsInputGradient {
                    add("data " + key, {
                        .op("conv2DBackwardData:\(c.path):\(g.batch)", .conv2DBackwardData(g), shape: convShape(g, false, .identity),
                            batch: g.batch)
                    }, usedBy: c.path)
                }
                add("filter " + key, {
                    .op("conv2DBackwardFilter:\(c.path):\(g.batch)", .conv2DBackwardFilter(g, bias: c.bias),
                        shape: convShape(g, c.bias, .identity), batch: g.batch)
                }, usedBy: c.path)
            }
        }
        // Pooling.
        for ms in shapes {
            for p in ms.pools {
                let g = p.geometry
                let kind = p.isMax ? "maxPool2D" : "avgPool2D"
                add("\(kind) fwd \(g)", {
                    .op("\(kind)Forward:\(p.path):\(g.batch)", p.isMax ? .maxPool2DForward(g) : .avgPool2DForward(g),
                        shape: g.description, batch: g.batch)
                }, usedBy: p.path)
                add("\(kind) bwd \(g)", {
                    .op("\(kind)Backward:\(p.path):\(g.batch)", p.isMax ? .maxPool2DBackward(g) : .avgPool2DBackward(g),
                        shape: g.description, batch: g.batch)
                }, usedBy: p.path)
            }
        }
        // BatchNorm: training forward, backward, inference forward.
        for ms in shapes {
            for b in ms.norms {
                let desc = "\(b.shape)" + (b.activation == .relu ? " relu" : "")
                let n = b.shape[0]
                add("bn train \(b.shape)", {
                    .op("batchNormForwardTraining:\(b.path):\(n)", .batchNormForwardTraining(b.shape, activation: b.activation),
                        shape: desc, batch: n)
                }, usedBy: b.path)
                add("bn bwd \(b.shape)", {
                    .op("batchNormBackward:\(b.path):\(n)", .batchNormBackward(b.shape), shape: "\(b.shape)", batch: n)
                }, usedBy: b.path)
                add("bn infer \(b.shape)", {
                    .op("batchNormForwardInference:\(b.path):\(n)", .batchNormForwardInference(b.shape, activation: b.activation),
                        shape: desc, batch: n)
                }, usedBy: b.path)
            }
        }
        // Grouped / depthwise convolution and GELU at mobilenetv2's depthwise shapes and the fast model's first GELU.
        if !sel.models.isEmpty {
            let n = sel.opBatch
            for (c, h, s) in [(96, 16, 2), (192, 8, 1)] {
                let g = Conv2DGeometry(batch: n, inChannels: c, height: h, width: h, outChannels: c, kernel: 3, stride: s, padding: 1)
                for d in OpDescriptor.groupedConvolutionFamily(g, groups: c) {
                    add("\(d.op) \(g)", { .op("\(d.op):depthwise\(c)s\(s):\(n)", d, shape: d.shape, batch: n) })
                }
            }
            for d in OpDescriptor.gelu(count: n * 64 * 32 * 32) {
                add("\(d.op) \(d.shape)", { .op("\(d.op):fast.gelu1:\(n)", d, shape: d.shape, batch: nil) })
            }
        }
        // Loss and optimizers (over each model's flat parameter buffer).
        if !sel.models.isEmpty {
            let n = sel.opBatch, k = 10
            add("loss", {
                .op("softmaxCrossEntropy:classes\(k):\(n)", .softmaxCrossEntropy(rows: n, classes: k, soft: false),
                    shape: "(\(n), \(k)) labels", batch: n)
            })
        }
        for ms in shapes {
            let p = ms.parameterCount
            add("adam \(p)", {
                .op("adamStep:\(ms.model):\(p)", .adamStep(count: p, hyper: AdamHyper(learningRate: 1e-3, weightDecay: 1e-4, decoupled: true),
                                                            steps: 2),
                    shape: "n\(p) (AdamW)", batch: nil)
            }, usedBy: ms.model)
        }
        if let ms = shapes.first {
            let p = ms.parameterCount
            add("sgd \(p)", {
                .op("sgdStep:\(ms.model):\(p)",
                    .sgdStep(count: p, hyper: SGDHyper(learningRate: 0.01, momentum: 0.9, nesterov: true, weightDecay: 5e-4), steps: 2),
                    shape: "n\(p) (momentum 0.9, Nesterov)", batch: nil)
            }, usedBy: ms.model)
        }

        // End to end: pytorch_baseline.py's names (train:MODEL:BATCH, infer:MODEL:BATCH).
        var e2e: [(String, String, Int)] = []
        for m in sel.models { for b in sel.batches { e2e.append(("train", m, b)) } }
        for (m, b) in sel.extraTrain where sel.models.contains(m) && !sel.batches.contains(b) { e2e.append(("train", m, b)) }
        for m in sel.models { for b in sel.batches { e2e.append(("infer", m, b)) } }
        for (kind, m, b) in e2e {
            let macs = (try? ModelShapes.of(m, batch: b).forwardMACsPerImage).map(Double.init)
            let flops = macs.map { (kind == "train" ? 6 : 2) * $0 * Double(b) }
            out.append(BenchCase(name: "\(kind):\(m):\(b)", family: kind, op: kind == "train" ? "trainStep" : "inference",
                                 shape: kind == "train" ? "batch \(b), Adam" : "batch \(b), eval mode, argmax back to host",
                                 batch: b, usedBy: [m],
                                 kind: kind == "train" ? .train(model: m, batch: b) : .infer(model: m, batch: b), flops: flops, bytes: nil))
        }
        if let m = sel.epochModel, sel.epochImages > 0 {
            let b = sel.epochBatch
            let macs = (try? ModelShapes.of(m, batch: b).forwardMACsPerImage).map(Double.init)
            let images = sel.epochImages / b * b
            out.append(BenchCase(name: "epoch:\(m):\(b)", family: "epoch", op: "epoch",
                                 shape: "\(images) CIFAR-10 images, batch \(b), flip + rotation 15 in background threads",
                                 batch: b, usedBy: [m], kind: .epoch(model: m, batch: b, images: images),
                                 flops: macs.map { 6 * $0 * Double(images) }, bytes: nil))
        }
        return out
    }

    static func gemmCase(_ name: String, _ s: GEMMShape, batch: Int?) -> BenchCase {
        .op(name, s.descriptor, shape: s.description, batch: batch)
    }

    static func convShape(_ g: Conv2DGeometry, _ bias: Bool, _ act: Activation) -> String {
        "\(g.inChannels)->\(g.outChannels) \(g.height)x\(g.width) k\(g.kernelH) s\(g.strideH) p\(g.padH)"
            + (bias ? "" : " no bias") + (act == .relu ? " relu" : "")
    }

    /// Cases whose name matches any of `include` (all when empty) and none of `exclude`. A pattern
    /// with `*` or `?` must match the whole name; any other pattern matches as a substring.
    package static func filter(_ cases: [BenchCase], include: [String], exclude: [String]) -> [BenchCase] {
        cases.filter { c in
            (include.isEmpty || include.contains { matches($0, c.name) }) && !exclude.contains { matches($0, c.name) }
        }
    }

    package static func matches(_ pattern: String, _ name: String) -> Bool {
        if pattern.contains("*") || pattern.contains("?") { return glob(Array(pattern), Array(name)) }
        return name.contains(pattern)
    }

    static func glob(_ p: [Character], _ s: [Character]) -> Bool {
        var pi = 0, si = 0, star = -1, mark = 0
        while si < s.count {
            if pi < p.count && (p[pi] == "?" || p[pi] == s[si]) { pi += 1; si += 1 }
            else if pi < p.count && p[pi] == "*" { star = pi; mark = si; pi += 1 }
            else if star >= 0 { pi = star + 1; mark += 1; si = mark }
            else { return false }
        }
        while pi < p.count && p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}
