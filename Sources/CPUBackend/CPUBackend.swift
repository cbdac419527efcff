import CNNCore
import SGEMM
import Foundation
import Synchronization

/// The pure-Swift backend: host memory; fast multi-threaded paths by default, plain loops on request.
///
/// Every primitive validates its arguments (`Validate`, built on CNNCore's `Check`), takes typed
/// pointers at each tensor's offset and calls either
///   - the reference function of the same name in `CPUBackend.Reference` (Sources/CPUBackend/Reference,
///     one file per op family, instantiated with Float) — `CPUBackend(reference: true)`; these are
///     the spec every other implementation is tested against; or
///   - its fast path (the SGEMM engine in Sources/SGEMM, and Sources/CPUBackend/Fast/Ops: implicit-GEMM
///     convolution, BatchNorm, pooling, elementwise, loss, optimizers), whose doc comment names the reference it
///     equals and the tolerance — `CPUBackend()`, the default.
/// The fast paths run on `ThreadPool.shared` (SWIFTCNN_THREADS, else the core count) and keep their
/// scratch memory between calls (SGEMM's `Workspace`). Their results do not depend on the thread count
/// or on scheduling, except the SGEMM's k-split of long-depth GEMMs, which depends on the thread
/// count only. A backend is used from one thread at a time.
public final class CPUBackend: Backend {
    /// The reference math, generic over `T: BinaryFloatingPoint` (the backend uses Float; tests run
    /// the same code in Double). Layout of every buffer is stated in each function's doc comment.
    package enum Reference {}

    /// True when every primitive runs the reference functions.
    public let usesReference: Bool
    public private(set) var transferCounters = TransferCounters()
    public let info: DeviceInfo
    /// The fast paths' context (nil in reference mode).
    let fast: FastCPU?
    /// Intermediate tensors of the fused ops' compositions (FusedBatchNorm.swift), reused across calls.
    var fusedScratch: [String: Tensor] = [:]

    /// - Parameters:
    ///   - reference: run the plain reference functions (single thread, Double accumulation).
    ///   - pool: the thread pool of the fast paths (default: the process-wide pool).
    public convenience init(reference: Bool = false) {
        self.init(reference: reference, pool: .shared, splitAll: false)
    }

    /// A backend whose fast paths run on `pool` (tests and benchmarks compare thread counts).
    package convenience init(reference: Bool = false, pool: ThreadPool) {
        self.init(reference: reference, pool: pool, splitAll: false)
    }

    /// `splitAll`: the fast paths split even the smallest work over the pool (for tests).
    init(reference: Bool, pool: ThreadPool, splitAll: Bool) {
        usesReference = reference
        if reference {
            fast = nil
            info = DeviceInfo(kind: .cpu, name: "Swift CPU", type: "Swift CPU (reference, 1 thread)",
                              details: ["implementation": "reference"])
        } else {
            let gemm = splitAll ? FastGEMM(pool: pool, parallelOverhead: 0)
                : pool === ThreadPool.shared ? FastGEMM.shared : FastGEMM(pool: pool)
            fast = FastCPU(pool: pool, gemm: gemm, splitAll: splitAll)
            #if SWIFTCNN_FMA
            let fma = "yes"
            #else
            let fma = "no (build with -target-cpu and -DSWIFTCNN_FMA, see the Makefile)"
            #endif
            info = DeviceInfo(kind: .cpu, name: "Swift CPU", type: "Swift CPU (\(pool.threadCount) thread\(pool.threadCount == 1 ? "" : "s"))",
                              details: ["implementation": "fast", "threads": "\(pool.threadCount)", "fma": fma])
        }
    }

    /// Bytes of scratch memory the fast paths hold between calls (0 in reference mode): the
    /// workspace of the convolution and other ops, and the SGEMM's packing buffers.
    /// Scratch buffer allocations of this backend's fast paths so far (its workspace and its SGEMM's;
    /// the process-wide SGEMM's when the backend uses the shared pool).
    package var scratchAllocations: Int { (fast?.workspace.allocations ?? 0) + (fast?.gemm.workspace.allocations ?? 0) }
    package var scratchBytes: Int { (fast?.workspace.bytesReserved ?? 0) + (fast?.gemm.workspace.bytesReserved ?? 0) }

    /// Live tensors (all CPU backends together) and this backend's scratch.
    public var memoryReport: MemoryReport { MemoryReport(tensorBytes: CPUStorage.liveBytes, scratchBytes: scratchBytes) }

    // MARK: Profiling

    /// Runs `body`; with `SWIFTCNN_PROFILE=1` in the environment, adds its wall time to the
    /// process-wide per-op table (keyed by op and shape) that `CPUBackend.profileReport()` returns
    /// and that is printed to stderr at exit.
    @inline(__always)
    private func profiled<R>(_ key: @autoclosure () -> String, _ body: () throws -> R) rethrows -> R {
        if fast != nil { FloatEnvironment.flushSubnormalsOnThisThread() }
        guard let profiler = OpProfiler.shared else { return try body() }
        let t0 = DispatchTime.now().uptimeNanoseconds
        defer { profiler.add(key(), nanoseconds: DispatchTime.now().uptimeNanoseconds - t0) }
        return try body()
    }

    /// The per-op time table collected under `SWIFTCNN_PROFILE=1` (empty otherwise), most expensive first.
    package static func profileReport() -> String { OpProfiler.shared?.report() ?? "" }
    /// Clears the table (e.g. after warm-up).
    package static func resetProfile() { OpProfiler.shared?.reset() }

    // MARK: Pointers

    private func storage(_ t: Tensor, _ name: String, _ op: String) throws -> CPUStorage {
        guard let s = t.storage as? CPUStorage else {
            throw CNNError.invalidArgument("\(op): \(name) \(t.shape) lives in \(type(of: t.storage)), not in a CPUBackend; "
                                           + "read it back to the host and upload it to this backend")
        }
        try require(s.dtype == t.dtype, "\(op): \(name) is a \(t.dtype) view of \(s.dtype) storage; views must keep their storage's dtype")
        return s
    }
    /// Element 0 of float32 tensor t.
    private func f(_ t: Tensor, _ name: String, _ op: String) throws -> UnsafeMutablePointer<Float> {
        try Check.dtype(t, .float32, name, op)
        return try storage(t, name, op).floats(t)
    }
    private func f(_ t: Tensor?, _ name: String, _ op: String) throws -> UnsafeMutablePointer<Float>? {
        try t.map { try f($0, name, op) }
    }
    /// Element 0 of int32 tensor t.
    private func i32(_ t: Tensor, _ name: String, _ op: String) throws -> UnsafeMutablePointer<Int32> {
        try Check.dtype(t, .int32, name, op)
        return try storage(t, name, op).int32s(t)
    }

    // MARK: Memory

    public func makeTensor(_ shape: Shape, dtype: DType) throws -> Tensor {
        Tensor(storage: CPUStorage(capacity: shape.count, dtype: dtype), shape: shape, dtype: dtype)
    }

    public func write(_ values: UnsafeBufferPointer<Float>, to tensor: Tensor) throws {
        try Contract.transfer(tensor, count: values.count, dtype: .float32, "write")
        let dst = try f(tensor, "tensor", "write")
        if let src = values.baseAddress { dst.update(from: src, count: values.count) }
        transferCounters.uploads += 1
        transferCounters.uploadBytes += values.count * MemoryLayout<Float>.size
    }

    public func write(_ values: UnsafeBufferPointer<Int32>, to tensor: Tensor) throws {
        try Contract.transfer(tensor, count: values.count, dtype: .int32, "write")
        let dst = try i32(tensor, "tensor", "write")
        if let src = values.baseAddress { dst.update(from: src, count: values.count) }
        transferCounters.uploads += 1
        transferCounters.uploadBytes += values.count * MemoryLayout<Int32>.size
    }

    public func read(_ tensor: Tensor, into values: UnsafeMutableBufferPointer<Float>) throws {
        try Contract.transfer(tensor, count: values.count, dtype: .float32, "read")
        let src = try f(tensor, "tensor", "read")
        if let dst = values.baseAddress { dst.update(from: src, count: values.count) }
        transferCounters.downloads += 1
        transferCounters.downloadBytes += values.count * MemoryLayout<Float>.size
    }

    public func read(_ tensor: Tensor, into values: UnsafeMutableBufferPointer<Int32>) throws {
        try Contract.transfer(tensor, count: values.count, dtype: .int32, "read")
        let src = try i32(tensor, "tensor", "read")
        if let dst = values.baseAddress { dst.update(from: src, count: values.count) }
        transferCounters.downloads += 1
        transferCounters.downloadBytes += values.count * MemoryLayout<Int32>.size
    }

    public func copy(_ src: Tensor, to dst: Tensor) throws {
        try Contract.copy(src, dst)
        let (s, d) = (try storage(src, "src", "copy"), try storage(dst, "dst", "copy"))
        let bytes = src.count * src.dtype.byteSize
        (d.raw + dst.offset * dst.dtype.byteSize).copyMemory(from: s.raw + src.offset * src.dtype.byteSize, byteCount: bytes)
    }

    /// Work runs synchronously on the calling thread: nothing to wait for.
    public func synchronize() throws {}

    // MARK: GEMM

    public func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                     a: Tensor, lda: Int, b: Tensor, ldb: Int, beta: Float, c: Tensor, ldc: Int) throws {
        try profiled("gemm \(transA ? "T" : "N")\(transB ? "T" : "N") m\(m) n\(n) k\(k)") {
            let op = "gemm"
            try Contract.gemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, strideA: 0,
                              b: b, ldb: ldb, strideB: 0, c: c, ldc: ldc, strideC: 0, batch: 1, op: op)
            let (pa, pb, pc) = (try f(a, "A", op), try f(b, "B", op), try f(c, "C", op))
            if let fast {
                fast.gemm.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: pa, lda: lda, b: pb, ldb: ldb,
                                beta: beta, c: pc, ldc: ldc)
                return
            }
            Reference.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                           a: pa, lda: lda, b: pb, ldb: ldb, beta: beta, c: pc, ldc: ldc)
        }
    }

    public func gemmStridedBatched(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                                   a: Tensor, lda: Int, strideA: Int, b: Tensor, ldb: Int, strideB: Int,
                                   beta: Float, c: Tensor, ldc: Int, strideC: Int, batch: Int) throws {
        try profiled("gemmStridedBatched \(batch)x m\(m) n\(n) k\(k)") {
            let op = "gemmStridedBatched"
            try Contract.gemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, strideA: strideA,
                              b: b, ldb: ldb, strideB: strideB, c: c, ldc: ldc, strideC: strideC, batch: batch, op: op)
            let (pa, pb, pc) = (try f(a, "A", op), try f(b, "B", op), try f(c, "C", op))
            if let fast {
                fast.gemm.sgemmStridedBatched(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                                              a: pa, lda: lda, strideA: strideA, b: pb, ldb: ldb, strideB: strideB,
                                              beta: beta, c: pc, ldc: ldc, strideC: strideC, batch: batch)
                return
            }
            Reference.gemmStridedBatched(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                                         a: pa, lda: lda, strideA: strideA, b: pb, ldb: ldb, strideB: strideB,
                                         beta: beta, c: pc, ldc: ldc, strideC: strideC, batch: batch)
        }
    }

    // MARK: Convolution

    public func im2col(x: Tensor, cols: Tensor, geometry g: Conv2DGeometry) throws {
        try profiled("im2col \(g)") {
            let op = "im2col"
            try Contract.columns(x: x, cols: cols, g, op: op)
            if let fast { fast.im2col(x: try f(x, "x", op), cols: try f(cols, "cols", op), geometry: g); return }
            Reference.im2col(x: try f(x, "x", op), cols: try f(cols, "cols", op), geometry: g)
        }
    }

    public func col2im(cols: Tensor, x: Tensor, geometry g: Conv2DGeometry) throws {
        try profiled("col2im \(g)") {
            let op = "col2im"
            try Contract.columns(x: x, cols: cols, g, op: op)
            if let fast { fast.col2im(cols: try f(cols, "cols", op), x: try f(x, "x", op), geometry: g); return }
            Reference.col2im(cols: try f(cols, "cols", op), x: try f(x, "x", op), geometry: g)
        }
    }

    public func conv2DForward(x: Tensor, weight: Tensor, bias: Tensor?, y: Tensor,
                              geometry g: Conv2DGeometry, activation: Activation) throws {
        try profiled("conv2DForward \(g)") {
            let op = "conv2DForward"
            try Contract.conv2DForward(x: x, weight: weight, bias: bias, y: y, g)
            if let fast {
                fast.conv2DForward(x: try f(x, "x", op), weight: try f(weight, "weight", op), bias: try f(bias, "bias", op),
                                   y: try f(y, "y", op), geometry: g, activation: activation)
                return
            }
            Reference.conv2DForward(x: try f(x, "x", op), weight: try f(weight, "weight", op), bias: try f(bias, "bias", op),
                                    y: try f(y, "y", op), geometry: g, activation: activation)
        }
    }

    public func conv2DBackwardData(dy: Tensor, weight: Tensor, dx: Tensor, geometry g: Conv2DGeometry) throws {
        try profiled("conv2DBackwardData \(g)") {
            let op = "conv2DBackwardData"
            try Contract.conv2DBackwardData(dy: dy, weight: weight, dx: dx, g)
            if let fast {
                fast.conv2DBackwardData(dy: try f(dy, "dy", op), weight: try f(weight, "weight", op), dx: try f(dx, "dx", op), geometry: g)
                return
            }
            Reference.conv2DBackwardData(dy: try f(dy, "dy", op), weight: try f(weight, "weight", op), dx: try f(dx, "dx", op), geometry: g)
        }
    }

    public func conv2DBackwardFilter(x: Tensor, dy: Tensor, dWeight: Tensor, dBias: Tensor?, geometry g: Conv2DGeometry) throws {
        try profiled("conv2DBackwardFilter \(g)") {
            let op = "conv2DBackwardFilter"
            try Contract.conv2DBackwardFilter(x: x, dy: dy, dWeight: dWeight, dBias: dBias, g)
            if let fast {
                fast.conv2DBackwardFilter(x: try f(x, "x", op), dy: try f(dy, "dy", op), dWeight: try f(dWeight, "dWeight", op),
                                          dBias: try f(dBias, "dBias", op), geometry: g)
                return
            }
            Reference.conv2DBackwardFilter(x: try f(x, "x", op), dy: try f(dy, "dy", op), dWeight: try f(dWeight, "dWeight", op),
                                           dBias: try f(dBias, "dBias", op), geometry: g)
        }
    }

    public func biasAdd(y: Tensor, bias: Tensor, activation: Activation) throws {
        try profiled("biasAdd \(y.shape)") {
            let op = "biasAdd"
            let (n, c, s) = try Contract.biasAdd(y: y, bias: bias)
            if let fast {
                fast.biasAdd(y: try f(y, "y", op), bias: try f(bias, "bias", op), batch: n, channels: c, spatial: s, activation: activation)
                return
            }
            Reference.biasAdd(y: try f(y, "y", op), bias: try f(bias, "bias", op), batch: n, channels: c, spatial: s, activation: activation)
        }
    }

    public func biasGrad(dy: Tensor, dBias: Tensor) throws {
        try profiled("biasGrad \(dy.shape)") {
            let op = "biasGrad"
            let (n, c, s) = try Contract.biasGrad(dy: dy, dBias: dBias)
            if let fast { fast.biasGrad(dy: try f(dy, "dy", op), dBias: try f(dBias, "dBias", op), batch: n, channels: c, spatial: s); return }
            Reference.biasGrad(dy: try f(dy, "dy", op), dBias: try f(dBias, "dBias", op), batch: n, channels: c, spatial: s)
        }
    }

    // MARK: Pooling

    public func maxPool2DForward(x: Tensor, y: Tensor, argmax: Tensor, geometry g: Pool2DGeometry) throws {
        try profiled("maxPool2DForward \(g)") {
            let op = "maxPool2DForward"
            try Contract.maxPool2DForward(x: x, y: y, argmax: argmax, g)
            if let fast {
                fast.maxPool2DForward(x: try f(x, "x", op), y: try f(y, "y", op), argmax: try i32(argmax, "argmax", op), geometry: g)
                return
            }
            Reference.maxPool2DForward(x: try f(x, "x", op), y: try f(y, "y", op), argmax: try i32(argmax, "argmax", op), geometry: g)
        }
    }

    public func maxPool2DBackward(dy: Tensor, argmax: Tensor, dx: Tensor, geometry g: Pool2DGeometry) throws {
        try profiled("maxPool2DBackward \(g)") {
            let op = "maxPool2DBackward"
            try Contract.maxPool2DBackward(dy: dy, argmax: argmax, dx: dx, g)
            if let fast {
                try fast.maxPool2DBackward(dy: try f(dy, "dy", op), argmax: try i32(argmax, "argmax", op), dx: try f(dx, "dx", op), geometry: g)
                return
            }
            try Reference.maxPool2DBackward(dy: try f(dy, "dy", op), argmax: try i32(argmax, "argmax", op), dx: try f(dx, "dx", op), geometry: g)
        }
    }

    public func avgPool2DForward(x: Tensor, y: Tensor, geometry g: Pool2DGeometry) throws {
        try profiled("avgPool2DForward \(g)") {
            let op = "avgPool2DForward"
            try Contract.avgPool2DForward(x: x, y: y, g)
            if let fast { fast.avgPool2DForward(x: try f(x, "x", op), y: try f(y, "y", op), geometry: g); return }
            Reference.avgPool2DForward(x: try f(x, "x", op), y: try f(y, "y", op), geometry: g)
        }
    }

    public func avgPool2DBackward(dy: Tensor, dx: Tensor, geometry g: Pool2DGeometry) throws {
        try profiled("avgPool2DBackward \(g)") {
            let op = "avgPool2DBackward"
            try Contract.avgPool2DBackward(dy: dy, dx: dx, g)
            if let fast { fast.avgPool2DBackward(dy: try f(dy, "dy", op), dx: try f(dx, "dx", op), geometry: g); return }
            Reference.avgPool2DBackward(dy: try f(dy, "dy", op), dx: try f(dx, "dx", op), geometry: g)
        }
    }

    // MARK: BatchNorm

    public func batchNormForwardTraining(x: Tensor, gamma: Tensor, beta: Tensor, y: Tensor,
                                         runningMean: Tensor, runningVar: Tensor, saveMean: Tensor, saveInvStd: Tensor,
                                         momentum: Float, epsilon: Float, activation: Activation) throws {
        try profiled("batchNormForwardTraining \(x.shape)") {
            let op = "batchNormForwardTraining"
            let (n, c, s) = try Contract.batchNormForwardTraining(
                x: x, gamma: gamma, beta: beta, y: y, runningMean: runningMean, runningVar: runningVar,
                saveMean: saveMean, saveInvStd: saveInvStd, momentum: momentum, epsilon: epsilon)
            if let fast {
                fast.batchNormForwardTraining(
                    x: try f(x, "x", op), gamma: try f(gamma, "gamma", op), beta: try f(beta, "beta", op), y: try f(y, "y", op),
                    runningMean: try f(runningMean, "runningMean", op), runningVar: try f(runningVar, "runningVar", op),
                    saveMean: try f(saveMean, "saveMean", op), saveInvStd: try f(saveInvStd, "saveInvStd", op),
                    batch: n, channels: c, spatial: s, momentum: momentum, epsilon: epsilon, activation: activation)
                return
            }
            Reference.batchNormForwardTraining(
                x: try f(x, "x", op), gamma: try f(gamma, "gamma", op), beta: try f(beta, "beta", op), y: try f(y, "y", op),
                runningMean: try f(runningMean, "runningMean", op), runningVar: try f(runningVar, "runningVar", op),
                saveMean: try f(saveMean, "saveMean", op), saveInvStd: try f(saveInvStd, "saveInvStd", op),
                batch: n, channels: c, spatial: s, momentum: momentum, epsilon: epsilon, activation: activation)
        }
    }

    public func batchNormForwardInference(x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor,
                                          y: Tensor, epsilon: Float, activation: Activation) throws {
        try profiled("batchNormForwardInference \(x.shape)") {
            let op = "batchNormForwardInference"
            let (n, c, s) = try Contract.batchNormForwardInference(
                x: x, gamma: gamma, beta: beta, runningMean: runningMean, runningVar: runningVar, y: y, epsilon: epsilon)
            if let fast {
                fast.batchNormForwardInference(
                    x: try f(x, "x", op), gamma: try f(gamma, "gamma", op), beta: try f(beta, "beta", op),
                    runningMean: try f(runningMean, "runningMean", op), runningVar: try f(runningVar, "runningVar", op), y: try f(y, "y", op),
                    batch: n, channels: c, spatial: s, epsilon: epsilon, activation: activation)
                return
            }
            Reference.batchNormForwardInference(
                x: try f(x, "x", op), gamma: try f(gamma, "gamma", op), beta: try f(beta, "beta", op),
                runningMean: try f(runningMean, "runningMean", op), runningVar: try f(runningVar, "runningVar", op), y: try f(y, "y", op),
                batch: n, channels: c, spatial: s, epsilon: epsilon, activation: activation)
        }
    }

    public func batchNormBackward(x: Tensor, dy: Tensor, gamma: Tensor, saveMean: Tensor, saveInvStd: Tensor,
                                  dx: Tensor, dGamma: Tensor, dBeta: Tensor) throws {
        try profiled("batchNormBackward \(x.shape)") {
            let op = "batchNormBackward"
            let (n, c, s) = try Contract.batchNormBackward(
                x: x, dy: dy, gamma: gamma, saveMean: saveMean, saveInvStd: saveInvStd, dx: dx, dGamma: dGamma, dBeta: dBeta)
            if let fast {
                fast.batchNormBackward(
                    x: try f(x, "x", op), dy: try f(dy, "dy", op), gamma: try f(gamma, "gamma", op),
                    saveMean: try f(saveMean, "saveMean", op), saveInvStd: try f(saveInvStd, "saveInvStd", op),
                    dx: try f(dx, "dx", op), dGamma: try f(dGamma, "dGamma", op), dBeta: try f(dBeta, "dBeta", op),
                    batch: n, channels: c, spatial: s)
                return
            }
            Reference.batchNormBackward(
                x: try f(x, "x", op), dy: try f(dy, "dy", op), gamma: try f(gamma, "gamma", op),
                saveMean: try f(saveMean, "saveMean", op), saveInvStd: try f(saveInvStd, "saveInvStd", op),
                dx: try f(dx, "dx", op), dGamma: try f(dGamma, "dGamma", op), dBeta: try f(dBeta, "dBeta", op),
                batch: n, channels: c, spatial: s)
        }
    }

    // MARK: Elementwise

    public func relu(x: Tensor, y: Tensor) throws {
        try profiled("relu \(x.shape)") {
            let op = "relu"
            try Contract.relu(x: x, y: y)
            if let fast { fast.relu(x: try f(x, "x", op), y: try f(y, "y", op), count: x.count); return }
            Reference.relu(x: try f(x, "x", op), y: try f(y, "y", op), count: x.count)
        }
    }

    public func reluBackward(y: Tensor, dy: Tensor, dx: Tensor) throws {
        try profiled("reluBackward \(dy.shape)") {
            let op = "reluBackward"
            try Contract.reluBackward(y: y, dy: dy, dx: dx)
            if let fast { fast.reluBackward(y: try f(y, "y", op), dy: try f(dy, "dy", op), dx: try f(dx, "dx", op), count: dy.count); return }
            Reference.reluBackward(y: try f(y, "y", op), dy: try f(dy, "dy", op), dx: try f(dx, "dx", op), count: dy.count)
        }
    }

    public func dropoutForward(x: Tensor, y: Tensor, mask: Tensor, probability p: Float, seed: UInt64) throws {
        try profiled("dropoutForward \(x.shape)") {
            let op = "dropoutForward"
            try Contract.dropoutForward(x: x, y: y, mask: mask, probability: p)
            if let fast {
                fast.dropoutForward(x: try f(x, "x", op), y: try f(y, "y", op), mask: try f(mask, "mask", op), count: x.count,
                                    probability: p, seed: seed)
                return
            }
            Reference.dropoutForward(x: try f(x, "x", op), y: try f(y, "y", op), mask: try f(mask, "mask", op), count: x.count,
                                     probability: p, seed: seed)
        }
    }

    public func add(_ a: Tensor, _ b: Tensor, y: Tensor) throws {
        try profiled("add \(y.shape)") {
            let op = "add"
            try Contract.binary(a, b, y: y, op: op)
            if let fast { fast.add(try f(a, "a", op), try f(b, "b", op), y: try f(y, "y", op), count: y.count); return }
            Reference.add(try f(a, "a", op), try f(b, "b", op), y: try f(y, "y", op), count: y.count)
        }
    }

    public func mul(_ a: Tensor, _ b: Tensor, y: Tensor) throws {
        try profiled("mul \(y.shape)") {
            let op = "mul"
            try Contract.binary(a, b, y: y, op: op)
            if let fast { fast.mul(try f(a, "a", op), try f(b, "b", op), y: try f(y, "y", op), count: y.count); return }
            Reference.mul(try f(a, "a", op), try f(b, "b", op), y: try f(y, "y", op), count: y.count)
        }
    }

    public func scale(_ x: Tensor, by alpha: Float, y: Tensor) throws {
        try profiled("scale \(y.shape)") {
            let op = "scale"
            try Contract.scale(x, y: y, op: op)
            if let fast { fast.scale(try f(x, "x", op), by: alpha, y: try f(y, "y", op), count: y.count); return }
            Reference.scale(try f(x, "x", op), by: alpha, y: try f(y, "y", op), count: y.count)
        }
    }

    public func axpy(alpha: Float, x: Tensor, y: Tensor) throws {
        try profiled("axpy \(y.shape)") {
            let op = "axpy"
            try Contract.scale(x, y: y, op: op)
            if let fast { fast.axpy(alpha: alpha, x: try f(x, "x", op), y: try f(y, "y", op), count: y.count); return }
            Reference.axpy(alpha: alpha, x: try f(x, "x", op), y: try f(y, "y", op), count: y.count)
        }
    }

    public func fill(_ t: Tensor, value: Float) throws {
        try profiled("fill \(t.shape)") {
            try Contract.fill(t)
            if let fast { fast.fill(try f(t, "t", "fill"), value: value, count: t.count); return }
            Reference.fill(try f(t, "t", "fill"), value: value, count: t.count)
        }
    }

    // MARK: Loss

    public func softmax(x: Tensor, y: Tensor) throws {
        try profiled("softmax \(x.shape)") {
            let op = "softmax"
            let (n, k) = try Contract.softmax(x: x, y: y)
            // Both modes: the reference loop (one pass over an (N, K) logits matrix; microseconds per step).
            Reference.softmax(x: try f(x, "x", op), y: try f(y, "y", op), rows: n, classes: k)
        }
    }

    public func softmaxCrossEntropy(logits: Tensor, targets: LossTargets, labelSmoothing: Float,
                                    losses: Tensor, dLogits: Tensor?, gradScale: Float) throws {
        try profiled("softmaxCrossEntropy \(logits.shape)") {
            let op = "softmaxCrossEntropy"
            let (n, k) = try Contract.softmaxCrossEntropy(logits: logits, targets: targets, labelSmoothing: labelSmoothing,
                                                          losses: losses, dLogits: dLogits, gradScale: gradScale)
            let t: Reference.LossTargets<Float>
            switch targets {
            case .labels(let labels): t = .labels(try i32(labels, "labels", op))
            case .soft(let soft): t = .soft(try f(soft, "soft targets", op))
            }
            if let fast {
                try fast.softmaxCrossEntropy(logits: try f(logits, "logits", op), targets: t, rows: n, classes: k,
                                             labelSmoothing: labelSmoothing, losses: try f(losses, "losses", op),
                                             dLogits: try f(dLogits, "dLogits", op), gradScale: gradScale)
                return
            }
            try Reference.softmaxCrossEntropy(logits: try f(logits, "logits", op), targets: t, rows: n, classes: k,
                                              labelSmoothing: labelSmoothing, losses: try f(losses, "losses", op),
                                              dLogits: try f(dLogits, "dLogits", op), gradScale: gradScale)
        }
    }

    // MARK: Optimizers

    public func sgdStep(params: Tensor, grads: Tensor, momentumBuffer: Tensor?, hyper: SGDHyper) throws {
        try profiled("sgdStep \(params.count)") {
            let op = "sgdStep"
            try Contract.sgdStep(params: params, grads: grads, momentumBuffer: momentumBuffer, hyper: hyper)
            if let fast {
                fast.sgdStep(params: try f(params, "params", op), grads: try f(grads, "grads", op),
                             momentumBuffer: try f(momentumBuffer, "momentumBuffer", op), count: params.count, hyper: hyper)
                return
            }
            Reference.sgdStep(params: try f(params, "params", op), grads: try f(grads, "grads", op),
                              momentumBuffer: try f(momentumBuffer, "momentumBuffer", op), count: params.count, hyper: hyper)
        }
    }

    public func adamStep(params: Tensor, grads: Tensor, m: Tensor, v: Tensor, hyper: AdamHyper, step: Int) throws {
        try profiled("adamStep \(params.count)") {
            let op = "adamStep"
            try Contract.adamStep(params: params, grads: grads, m: m, v: v, hyper: hyper, step: step)
            if let fast {
                fast.adamStep(params: try f(params, "params", op), grads: try f(grads, "grads", op), m: try f(m, "m", op),
                              v: try f(v, "v", op), count: params.count, hyper: hyper, step: step)
                return
            }
            Reference.adamStep(params: try f(params, "params", op), grads: try f(grads, "grads", op), m: try f(m, "m", op),
                               v: try f(v, "v", op), count: params.count, hyper: hyper, step: step)
        }
    }

    // MARK: Reductions

    public func sum(_ x: Tensor, into out: Tensor, accumulate: Bool) throws {
        try profiled("sum \(x.count)") {
            let op = "sum"
            try Contract.sum(x, into: out, op: op)
            if let fast { fast.sum(try f(x, "x", op), count: x.count, into: try f(out, "out", op), accumulate: accumulate, squares: false); return }
            Reference.sum(try f(x, "x", op), count: x.count, into: try f(out, "out", op), accumulate: accumulate)
        }
    }

    public func sumOfSquares(_ x: Tensor, into out: Tensor, accumulate: Bool) throws {
        try profiled("sumOfSquares \(x.count)") {
            let op = "sumOfSquares"
            try Contract.sum(x, into: out, op: op)
            if let fast { fast.sum(try f(x, "x", op), count: x.count, into: try f(out, "out", op), accumulate: accumulate, squares: true); return }
            Reference.sumOfSquares(try f(x, "x", op), count: x.count, into: try f(out, "out", op), accumulate: accumulate)
        }
    }

    public func argmax(_ x: Tensor, into out: Tensor) throws {
        try profiled("argmax \(x.shape)") {
            let op = "argmax"
            let (n, k) = try Contract.argmax(x, into: out)
            // Both modes: the reference loop (one pass over an (N, K) logits matrix; microseconds per step).
            Reference.argmax(try f(x, "x", op), rows: n, classes: k, into: try i32(out, "out", op))
        }
    }

    public func countCorrect(logits: Tensor, labels: Tensor, into out: Tensor, accumulate: Bool) throws {
        try profiled("countCorrect \(logits.shape)") {
            let op = "countCorrect"
            let (n, k) = try Contract.countCorrect(logits: logits, labels: labels, into: out)
            // Both modes: the reference loop (one pass over an (N, K) logits matrix; microseconds per step).
            Reference.countCorrect(logits: try f(logits, "logits", op), labels: try i32(labels, "labels", op), rows: n, classes: k,
                                   into: try f(out, "out", op), accumulate: accumulate)
        }
    }

    // MARK: Grouped convolution, GELU, channel shuffle

    public func groupedConv2DForward(x: Tensor, weight: Tensor, bias: Tensor?, y: Tensor,
                                     geometry g: Conv2DGeometry, groups: Int, activation: Activation) throws {
        try profiled("groupedConv2DForward \(g) groups \(groups)") {
            let op = "groupedConv2DForward"
            try Contract.groupedConv2DForward(x: x, weight: weight, bias: bias, y: y, g, groups: groups)
            let (px, pw, pb, py) = (try f(x, "x", op), try f(weight, "weight", op), try f(bias, "bias", op), try f(y, "y", op))
            if let fast {
                fast.groupedConv2DForward(x: px, weight: pw, bias: pb, y: py, geometry: g, groups: groups, activation: activation)
                return
            }
            Reference.groupedConv2DForward(x: px, weight: pw, bias: pb, y: py, geometry: g, groups: groups, activation: activation)
        }
    }

    public func groupedConv2DBackwardData(dy: Tensor, weight: Tensor, dx: Tensor, geometry g: Conv2DGeometry, groups: Int) throws {
        try profiled("groupedConv2DBackwardData \(g) groups \(groups)") {
            let op = "groupedConv2DBackwardData"
            try Contract.groupedConv2DBackwardData(dy: dy, weight: weight, dx: dx, g, groups: groups)
            let (pdy, pw, pdx) = (try f(dy, "dy", op), try f(weight, "weight", op), try f(dx, "dx", op))
            if let fast { fast.groupedConv2DBackwardData(dy: pdy, weight: pw, dx: pdx, geometry: g, groups: groups); return }
            Reference.groupedConv2DBackwardData(dy: pdy, weight: pw, dx: pdx, geometry: g, groups: groups)
        }
    }

    public func groupedConv2DBackwardFilter(x: Tensor, dy: Tensor, dWeight: Tensor, dBias: Tensor?,
                                            geometry g: Conv2DGeometry, groups: Int) throws {
        try profiled("groupedConv2DBackwardFilter \(g) groups \(groups)") {
            let op = "groupedConv2DBackwardFilter"
            try Contract.groupedConv2DBackwardFilter(x: x, dy: dy, dWeight: dWeight, dBias: dBias, g, groups: groups)
            let (px, pdy, pdw, pdb) = (try f(x, "x", op), try f(dy, "dy", op), try f(dWeight, "dWeight", op), try f(dBias, "dBias", op))
            if let fast { fast.groupedConv2DBackwardFilter(x: px, dy: pdy, dWeight: pdw, dBias: pdb, geometry: g, groups: groups); return }
            Reference.groupedConv2DBackwardFilter(x: px, dy: pdy, dWeight: pdw, dBias: pdb, geometry: g, groups: groups)
        }
    }

    public func gelu(x: Tensor, y: Tensor) throws {
        try profiled("gelu \(x.shape)") {
            let op = "gelu"
            try Contract.gelu(x: x, y: y)
            if let fast { fast.gelu(x: try f(x, "x", op), y: try f(y, "y", op), count: x.count); return }
            Reference.gelu(x: try f(x, "x", op), y: try f(y, "y", op), count: x.count)
        }
    }

    public func geluBackward(x: Tensor, dy: Tensor, dx: Tensor) throws {
        try profiled("geluBackward \(dy.shape)") {
            let op = "geluBackward"
            try Contract.geluBackward(x: x, dy: dy, dx: dx)
            if let fast { fast.geluBackward(x: try f(x, "x", op), dy: try f(dy, "dy", op), dx: try f(dx, "dx", op), count: dy.count); return }
            Reference.geluBackward(x: try f(x, "x", op), dy: try f(dy, "dy", op), dx: try f(dx, "dx", op), count: dy.count)
        }
    }

    public func channelShuffle(x: Tensor, y: Tensor, groups: Int) throws {
        try profiled("channelShuffle \(x.shape) groups \(groups)") {
            let op = "channelShuffle"
            let (n, c, s) = try Contract.channelShuffle(x: x, y: y, groups: groups)
            let (px, py) = (try f(x, "x", op), try f(y, "y", op))
            if let fast { fast.channelShuffle(x: px, y: py, batch: n, channels: c, spatial: s, groups: groups); return }
            Reference.channelShuffle(x: UnsafePointer(px), y: py, batch: n, channels: c, spatial: s, groups: groups)
        }
    }

    public func copyChannels(src: Tensor, srcChannel: Int, dst: Tensor, dstChannel: Int, count: Int) throws {
        try profiled("copyChannels \(src.shape) -> \(dst.shape)") {
            let op = "copyChannels"
            let (n, cs, cd, s) = try Contract.copyChannels(src: src, srcChannel: srcChannel, dst: dst, dstChannel: dstChannel, count: count)
            let (ps, pd) = (try f(src, "src", op), try f(dst, "dst", op))
            if let fast {
                fast.copyChannels(src: ps, srcChannels: cs, srcChannel: srcChannel, dst: pd, dstChannels: cd, dstChannel: dstChannel,
                                  count: count, batch: n, spatial: s)
                return
            }
            Reference.copyChannels(src: UnsafePointer(ps), srcChannels: cs, srcChannel: srcChannel, dst: pd, dstChannels: cd,
                                   dstChannel: dstChannel, count: count, batch: n, spatial: s)
        }
    }
}


/// Per-op wall time of CPUBackend primitives, enabled by SWIFTCNN_PROFILE=1 (see `CPUBackend.profileReport`).
final class OpProfiler: @unchecked Sendable {
    static let shared: OpProfiler? = {
        guard ProcessInfo.processInfo.environment["SWIFTCNN_PROFILE"] == "1" else { return nil }
        let p = OpProfiler()
        atexit { if let r = OpProfiler.shared?.report(), !r.isEmpty { FileHandle.standardError.write(Data(r.utf8)) } }
        return p
    }()
    private let table = Mutex<[String: (calls: Int, ns: UInt64)]>([:])

    func add(_ key: String, nanoseconds: UInt64) {
        table.withLock { t in
            let e = t[key] ?? (0, 0)
            t[key] = (e.calls + 1, e.ns + nanoseconds)
        }
    }
    func reset() { table.withLock { $0.removeAll() } }

    func report() -> String {
        let rows = table.withLock { $0 }.sorted { $0.value.ns > $1.value.ns }
        let total = rows.reduce(0) { $0 + $1.value.ns }
        guard total > 0 else { return "" }
        var out = "CPUBackend profile (SWIFTCNN_PROFILE=1): total \(String(format: "%.1f", Double(total) / 1e6)) ms in primitives\n"
        out += "     ms      %    calls   ms/call  op\n"
        for (key, v) in rows {
            out += String(format: "%8.1f  %5.1f  %7d  %8.3f  ", Double(v.ns) / 1e6, 100 * Double(v.ns) / Double(total), v.calls,
                          Double(v.ns) / 1e6 / Double(v.calls)) + key + "\n"
        }
        return out
    }
}
