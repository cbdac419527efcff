import CNNCore
import Foundation
import NN
import Training

/// Averages a model's gradients over the ranks of a job, as PyTorch's DistributedDataParallel:
/// the flat gradient buffer is cut into buckets at top-level layer boundaries, and a bucket's
/// allreduce starts as soon as backward has produced it (backward runs from the last layer to the
/// first), on the communication thread, while the rest of backward goes on. On a device backend a
/// bucket is read back to the host, reduced, and written back (counted in the backend's transfer
/// bytes, hence in `--profile` and cnn-bench's `perStep`).
///
/// The average is weighted by images, so that ranks with unequal shares of a last, partial batch
/// still give exactly the mean gradient over the global batch: rank r scales its gradients by
/// n_r / n before the sum. With N equal shares that is 1/N.
///
/// Every rank adds the same values in the same reduction, so the parameters stay bit-identical
/// across ranks; `checkReplicasEvery` verifies it with a checksum allreduce.
package final class GradientReducer: StepDistribution {
    let world: MPIWorld
    let model: Model
    /// The buckets in launch order (last layers first): ranges of the flat gradient buffer.
    package let buckets: [Range<Int>]
    /// Top-level child index -> the bucket to launch once its backward has returned.
    private let launchAfter: [Int: Int]
    private var host: [UnsafeMutablePointer<Float>]
    private var tickets: [Int] = []
    /// n_r / n for the current step.
    private var weight: Float = 1
    package var stepWeight: Float { weight }
    package private(set) var globalCount = 0
    package private(set) var steps = 0
    /// Raised by a signal on this rank; `agreedStop` is raised on every rank at the same step.
    package let localStop = StopFlag()
    package let agreedStop = StopFlag()
    /// Compare a checksum of the parameters across ranks every this many steps (0: never).
    package var checkReplicasEvery = 0
    package private(set) var replicaChecks = 0
    /// Seconds the main thread waited for the gradient reductions after backward (the part of
    /// the reductions that backward did not hide); `MPIWorld.bucketSeconds` has their whole time.
    package private(set) var waitSeconds = 0.0
    /// Test seam (`SWIFTCNN_TEST_FAULT=RANK:STEP:kill|error|stop`): this rank dies, raises an
    /// error, or asks to stop (as SIGUSR1 does) at that step.
    var fault: (rank: Int, step: Int, kind: Substring)?

    /// `bucketBytes`: the target bucket size (buckets end at top-level layer boundaries).
    package init(world: MPIWorld, model: Model, bucketBytes: Int) {
        self.world = world
        self.model = model
        // Each top-level child's parameters are one contiguous range of the flat buffer (they are
        // registered in build order).
        var lowest: [Int: Int] = [:]
        for (i, child) in model.network.children.enumerated() {
            for (name, p) in model.parameters where name.hasPrefix(child.name + ".") {
                lowest[i] = min(lowest[i] ?? Int.max, p.flatOffset)
            }
        }
        let total = model.parameterCount
        let target = max(bucketBytes / 4, 1)
        var buckets: [Range<Int>] = []
        var launch: [Int: Int] = [:]
        var hi = total
        for i in model.network.children.indices.reversed() {
            guard let lo = lowest[i], lo < hi, i > 0 else { continue }
            if hi - lo >= target {
                launch[i] = buckets.count
                buckets.append(lo..<hi)
                hi = lo
            }
        }
        if hi > 0 { buckets.append(0..<hi) }
        self.buckets = buckets
        launchAfter = launch
        host = buckets.map { UnsafeMutablePointer<Float>.allocate(capacity: $0.count) }
        if let spec = ProcessInfo.processInfo.environment["SWIFTCNN_TEST_FAULT"] {
            let parts = spec.split(separator: ":")
            if parts.count == 3, let r = Int(parts[0]), let s = Int(parts[1]) { fault = (r, s, parts[2]) }
        }
    }

    deinit { for p in host { p.deallocate() } }

    /// Hooks the reducer into the model's backward pass and the runner's step.
    package func attach(to runner: StepRunner) {
        runner.distribution = self
        model.network.afterChildBackward = { [unowned self] i in
            if let b = launchAfter[i] { try launch(b) }
        }
    }

    package func beginStep(count: Int) throws {
        steps += 1
        if let f = fault, f.rank == world.rank, f.step == steps, f.kind == "stop" {
            localStop.request()
        } else if let f = fault, f.rank == world.rank, f.step == steps {
            if f.kind == "kill" {
                FileHandle.standardError.write(Data("test fault: \(world.who) kills itself at step \(steps)\n".utf8))
                kill(getpid(), SIGKILL)
            }
            throw CNNError.invalidData("test fault: \(world.who) raises an error at step \(steps) (SWIFTCNN_TEST_FAULT)")
        }
        // One small collective: the global image count (for the weights) and the stop request,
        // so that every rank stops after the same step.
        var v = [Double(count), localStop.isRequested ? 1 : 0]
        try world.sum(&v)
        globalCount = Int(v[0])
        weight = Float(count) / Float(max(globalCount, 1))
        if v[1] > 0 { agreedStop.request() }
        if checkReplicasEvery > 0, (steps - 1) % checkReplicasEvery == 0 { try checkReplicas() }
        tickets.removeAll(keepingCapacity: true)
    }

    private func launch(_ b: Int) throws {
        let range = buckets[b]
        let p = host[b]
        try model.backend.read(model.flatGradients.view(elementOffset: range.lowerBound, shape: [range.count]),
                               into: UnsafeMutableBufferPointer(start: p, count: range.count))
        let w = weight
        tickets.append(world.startSum(p, count: range.count) {
            if w != 1 { for i in 0..<range.count { p[i] *= w } }
        })
    }

    package func finishGradients() throws {
        if tickets.count < buckets.count {
            // The first layers' bucket (and any not launched during backward).
            for b in tickets.count..<buckets.count { try launch(b) }
        }
        let t0 = Date()
        if let last = tickets.last { try world.wait(last) }
        waitSeconds += Date().timeIntervalSince(t0)
        for (b, range) in buckets.enumerated() {
            try model.backend.write(UnsafeBufferPointer(start: host[b], count: range.count),
                                    to: model.flatGradients.view(elementOffset: range.lowerBound, shape: [range.count]))
        }
    }

    package func sumOverRanks(_ values: inout [Double]) throws { try world.sum(&values) }
    package var takesRestoredTotals: Bool { world.rank == 0 }

    /// The parameters' checksum must be the same on every rank (bit-identical replicas).
    package func checkReplicas() throws {
        let values = try model.backend.floats(model.flatParameters)
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for v in values { h = (h ^ UInt64(v.bitPattern)) &* 0x100_0000_01b3 }
        let (lo, hi) = try world.minMax([Int64(bitPattern: h)])
        replicaChecks += 1
        if lo != hi {
            throw CNNError.invalidData("parameters differ across ranks before step \(steps) (checksums \(lo[0]) ... \(hi[0]) on \(world.who)): the replicas diverged")
        }
    }
}
