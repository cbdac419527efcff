import CNNCore
import CPUBackend
import Foundation
import NN
import OpenCLBackend
import Verification

// CLBlast tuning per device (the search: OpenCLBackend/Tuner.swift; the cache: Tuning.swift there).
// Here: which GEMMs a model needs, the CPU gate, and the policy `cnn train`, `cnn tune` and
// `makeBackend` apply.

/// The GEMMs of one training step of a zoo model (forward, backward data, backward filter of every
/// convolution and linear layer; convolutions as the OpenCL backend runs them: one GEMM over the
/// whole batch). Sequential models; a layer the walk does not know ends it (the shapes so far count).
package func trainingGEMMShapes(model: String, batch: Int, inputShape: Shape = [3, 32, 32], classes: Int = 10) throws -> [GEMMShape] {
    let net = try ModelZoo.network(model, inputShape: inputShape, classes: classes)
    var shapes: [GEMMShape] = []
    var shape = inputShape
    var first = true
    walk: for entry in net.flattened() {
        switch entry.layer {
        case let c as Conv2d:
            let g = Conv2DGeometry(batch: batch, inChannels: shape[0], height: shape[1], width: shape[2],
                                   outChannels: c.outChannels, kernel: c.kernel, stride: c.stride, padding: c.padding)
            try g.validate()
            let K = g.patchSize, NP = batch * g.outHeight * g.outWidth, C = g.outChannels
            shapes.append(GEMMShape(m: C, n: NP, k: K))
            if !first { shapes.append(GEMMShape(transA: true, m: K, n: NP, k: C)) }
            shapes.append(GEMMShape(transB: true, m: C, n: K, k: NP))
            shape = [C, g.outHeight, g.outWidth]
            first = false
        case let p as Pool2d:
            if p.isGlobal {
                shape = [shape[0]]
            } else if let kernel = p.kernel {
                let g = Pool2DGeometry(batch: batch, channels: shape[0], height: shape[1], width: shape[2], kernel: kernel,
                                       stride: p.stride, padding: p.padding)
                shape = [shape[0], g.outHeight, g.outWidth]
            }
        case let l as Linear:
            shapes.append(GEMMShape(transB: true, m: batch, n: l.outFeatures, k: l.inFeatures))
            shapes.append(GEMMShape(transA: true, m: l.outFeatures, n: l.inFeatures, k: batch))
            if !first { shapes.append(GEMMShape(m: batch, n: l.inFeatures, k: l.outFeatures)) }
            shape = [l.outFeatures]
            first = false
        case is Flatten:
            shape = [shape.count]
        case is ReLU, is Dropout, is BatchNorm:
            break
        default:
            break walk
        }
    }
    return shapes
}

/// What the tuner searches for: a model's training GEMMs at a batch size. On a device that is not
/// a GPU (PoCL, a CPU) the batch is cut to 2: the same shapes' structure, a search of seconds.
package struct TuningWorkload: Sendable {
    package var model: String
    package var batch: Int
    package var inputShape: Shape = [3, 32, 32]
    package var classes = 10

    package init(model: String = "optimized", batch: Int = 128, inputShape: Shape = [3, 32, 32], classes: Int = 10) {
        self.model = model; self.batch = batch; self.inputShape = inputShape; self.classes = classes
    }

    func batch(on device: OpenCLDeviceInfo) -> Int { device.type == .gpu ? batch : min(batch, 2) }
}

/// Searches CLBlast's GEMM parameters for `backend`'s device now and applies them (not stored).
/// The gate compares every candidate's output with the CPU backend's (`Tolerance.gemm`).
package func searchTuning(_ backend: OpenCLBackend, workload: TuningWorkload, options: GEMMTuner.Options? = nil,
                          reference: (any Backend)? = nil, log: @escaping (String) -> Void) throws -> TuningRecord {
    var opts = options ?? .forDevice(backend.deviceInfo)
    opts.log = log
    let batch = workload.batch(on: backend.deviceInfo)
    let shapes = try trainingGEMMShapes(model: workload.model, batch: batch, inputShape: workload.inputShape,
                                        classes: workload.classes)
    let tuner = GEMMTuner(backend: backend, reference: reference ?? CPUBackend(), options: opts) { got, expected in
        let c = compare(got, expected, .gemm)
        return c.passed ? nil : "\(c) [\(Tolerance.gemm)]"
    }
    var record = try tuner.run(shapes: shapes, workload: "\(workload.model), batch \(batch)")
    // Our own kernels' work-group sizes (WorkGroupTuning.swift), at the workload's own batch. A
    // failure keeps their defaults and the GEMM result (the record then has no work-group section).
    do {
        record.workGroups = try searchWorkGroups(backend, workload: workload, log: log)
        record.searchSeconds += record.workGroups!.searchSeconds
    } catch {
        backend.applyLocalSizes([:])
        log("warning: work-group tuning failed (\(error)); those kernels keep their default work-group sizes")
    }
    return record
}

/// `cnn tune`: searches now, applies and stores the result (a failed write is reported, not thrown).
package func tuneDevice(_ backend: OpenCLBackend, workload: TuningWorkload, options: GEMMTuner.Options? = nil,
                        cacheRoot: URL? = nil, log: @escaping (String) -> Void) throws -> TuningRecord {
    let record = try searchTuning(backend, workload: workload, options: options, log: log)
    storeTuning(record, for: backend.deviceInfo, root: cacheRoot, log: log)
    return record
}

/// `OpenCLBackend`'s `prepareTuning` for any backend (a CPU backend: nothing to do), searching for
/// `workload` when the policy asks for a search.
package func prepareTuning(_ backend: any Backend, policy: TuningPolicy, workload: TuningWorkload = TuningWorkload(),
                           options: GEMMTuner.Options? = nil, cacheRoot: URL? = nil,
                           log: @escaping (String) -> Void) throws -> String? {
    guard let ocl = backend as? OpenCLBackend else { return nil }
    return try prepareTuning(ocl, policy: policy, cacheRoot: cacheRoot, log: log) {
        try searchTuning(ocl, workload: workload, options: options, log: log)
    }
}

/// For `cnn devices`: "tuned 2026-12-03T14:00:00Z (optimized, batch 128)", "not tuned", or that the
/// cache entry is unusable.
package func tuningStatus(_ device: OpenCLDeviceInfo, cacheRoot: URL? = nil) -> String {
    switch TuningCache.load(device, root: cacheRoot) {
    case .missing: return "not tuned (tuned on first training, or `cnn tune`)"
    case .found(let r):
        return "tuned \(r.created) (\(r.workload); GEMM total "
            + String(format: "%.3f -> %.3f ms", r.defaultSeconds * 1000, r.tunedSeconds * 1000) + workGroupNote(r.workGroups) + ")"
    case .corrupt: return "tuning cache entry unusable (re-tuned on first training)"
    }
}
