// A small persistent thread pool for the fast CPU paths (GEMM, convolution, batch-parallel loops).
//
// Why not `DispatchQueue.concurrentPerform`? Its start cost is as low (< 1 us for near-empty
// tasks), but on this 2-core VM it often did not get a second thread in time: two 10 us tasks took
// 24 us (serial) against 11 us here, two 100 us tasks 209 us against 111 us (`POOL=1
// scripts/gemm-bench.sh` prints these timings). Here the workers spin for a short while after each
// job, so back-to-back jobs start in well under a microsecond, then sleep on a semaphore so an idle
// process does not burn a core. The pool also offers what concurrentPerform cannot: jobs whose
// tasks run at the same time and meet at barriers (`runConcurrently`, used by the GEMM's shared
// packing), and an allocation-free form (`ParallelTask`).
//
// Semantics (the same as `concurrentPerform`): `parallelFor(n) { i in ... }` runs body(0..<n), each
// index exactly once, on up to `threadCount` threads including the caller, and returns when all are
// done. Indices are handed out dynamically (an atomic counter), so uneven tasks balance.
// A call made while the pool is busy — from inside a task, or from another thread at the same
// time — runs serially on the calling thread instead of deadlocking.

import Foundation
import Synchronization

@usableFromInline
package final class ThreadPool: @unchecked Sendable {
    /// Threads a job may use, the calling thread included (>= 1).
    @usableFromInline package let threadCount: Int

    /// The process-wide pool: `SWIFTCNN_THREADS` if set (>= 1), else the active processor count.
    package static let shared = ThreadPool(threadCount: ThreadPool.defaultThreadCount)

    /// `SWIFTCNN_THREADS` if set to a positive integer, else `ProcessInfo.activeProcessorCount`.
    package static var defaultThreadCount: Int {
        if let s = ProcessInfo.processInfo.environment["SWIFTCNN_THREADS"], let v = Int(s), v >= 1 { return v }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }

    // @usableFromInline: the generic entry points below are @inlinable, so that CPUBackend's tasks
    // are specialized into them as when the pool lived in CPUBackend.
    @usableFromInline let core: PoolCore
    @usableFromInline let busy = Mutex<Bool>(false)   // a job is being run (guards submission)

    /// - Parameters:
    ///   - threadCount: threads per job including the caller; 1 makes every job serial.
    ///   - spinIterations: polls (~20-50 ns each) an idle worker makes before it sleeps on a
    ///     semaphore (the default keeps it awake ~0.1-0.2 ms: across the short serial gaps between
    ///     the parallel ops of a training step, without burning a core when the process idles).
    package init(threadCount: Int, spinIterations: Int = 5_000) {
        self.threadCount = max(1, threadCount)
        core = PoolCore(workers: self.threadCount - 1, spinLimit: spinIterations)
    }

    deinit { core.shutDown() }

    /// Runs `body(i)` for every i in 0..<count on up to `threadCount` threads; returns when all are done.
    /// Costs one small heap allocation per parallel call (Swift boxes the non-escaping closure so
    /// that other threads can call it); per-step hot loops should use the `ParallelTask` form.
    package func parallelFor(_ count: Int, _ body: (Int) -> Void) {
        if count <= 0 { return }
        if count == 1 || threadCount == 1 { for i in 0..<count { body(i) }; return }
        withoutActuallyEscaping(body) { escaping in parallelFor(count, ClosureTask(body: escaping)) }
    }

    /// Runs `task.run(i)` for every i in 0..<count on up to `threadCount` threads; returns when all
    /// are done. No heap allocation: workers call the task through a pointer to the caller's stack.
    @inlinable
    package func parallelFor<T: ParallelTask>(_ count: Int, _ task: T) {
        if count <= 0 { return }
        if count == 1 || threadCount == 1 { for i in 0..<count { task.run(i) }; return }
        if count > PoolCore.maxTasksPerJob {
            // Coarsen: chunks of consecutive indices.
            parallelFor(PoolCore.maxTasksPerJob, ChunkedTask(task: task, count: count, chunks: PoolCore.maxTasksPerJob))
            return
        }
        let acquired = busy.withLock { b -> Bool in
            if b { return false }
            b = true
            return true
        }
        guard acquired else { for i in 0..<count { task.run(i) }; return }
        defer { busy.withLock { $0 = false } }
        withUnsafePointer(to: task) { taskPointer in
            // A capture-free closure literal: a plain function pointer once specialized.
            var job = PoolJob(context: UnsafeRawPointer(taskPointer),
                              invoke: { context, index in context.assumingMemoryBound(to: T.self).pointee.run(index) })
            withUnsafePointer(to: &job) { core.run(count: count, job: $0) }
        }
    }

    /// Runs `task.run(t)` for t in 0..<parts, each on its own thread at the same time, so that the
    /// tasks may synchronize with `barrier()` (e.g. pack a shared operand together, then use it).
    /// Returns false, running nothing, when that cannot be guaranteed: parts > threadCount, or the
    /// pool is busy (a call from inside a task, or from another thread meanwhile). The caller then
    /// does the work another way (typically serially: a nested call is already in a parallel region).
    func runConcurrently<T: ParallelTask>(_ parts: Int, _ task: T) -> Bool {
        if parts < 1 || parts > threadCount { return false }
        if parts == 1 { task.run(0); return true }
        let acquired = busy.withLock { b -> Bool in
            if b { return false }
            b = true
            return true
        }
        guard acquired else { return false }
        defer { busy.withLock { $0 = false } }
        core.barrierParties = parts
        withUnsafePointer(to: task) { taskPointer in
            var job = PoolJob(context: UnsafeRawPointer(taskPointer),
                              invoke: { context, index in context.assumingMemoryBound(to: T.self).pointee.run(index) })
            withUnsafePointer(to: &job) { core.run(count: parts, job: $0) }
        }
        return true
    }

    /// Waits until every task of the current `runConcurrently` job has arrived here. Only valid
    /// inside such a job, called the same number of times by every task.
    func barrier() { core.barrier() }

    /// Splits 0..<count into at most `threadCount` contiguous ranges of nearly equal size
    /// (each a multiple of `grain` except the last) and runs `body(range)` for each in parallel.
    package func parallelRanges(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let g = max(1, grain)
        let units = (count + g - 1) / g
        let parts = min(threadCount, units)
        if parts <= 1 { body(0..<count); return }
        parallelFor(parts) { p in
            if let r = Self.range(p, of: parts, count: count, grain: g) { body(r) }
        }
    }

    /// `parallelRanges` without the closure's heap box: `task.run(range)` per range.
    @inlinable
    package func parallelRanges<T: ParallelRangeTask>(_ count: Int, grain: Int = 1, _ task: T) {
        if count <= 0 { return }
        let g = max(1, grain)
        let units = (count + g - 1) / g
        let parts = min(threadCount, units)
        if parts <= 1 { task.run(0..<count); return }
        parallelFor(parts, RangesTask(task: task, parts: parts, count: count, grain: g))
    }

    /// Range `p` of `parts` grain-aligned ranges covering 0..<count (nil if empty).
    @usableFromInline
    static func range(_ p: Int, of parts: Int, count: Int, grain: Int) -> Range<Int>? {
        let units = (count + grain - 1) / grain
        let lo = min(count, p * units / parts * grain), hi = min(count, (p + 1) * units / parts * grain)
        return lo < hi ? lo..<hi : nil
    }
}

/// A loop body for `ThreadPool.parallelFor` that runs without heap allocation: a struct holding
/// what the loop needs (pointers, sizes) with `run(i)` as the body. Called from several threads at
/// once; it must not mutate shared state except through disjoint memory.
@usableFromInline package protocol ParallelTask {
    func run(_ index: Int)
}

/// A body for `ThreadPool.parallelRanges` without heap allocation.
@usableFromInline package protocol ParallelRangeTask {
    func run(_ range: Range<Int>)
}

private struct ClosureTask: ParallelTask {
    let body: (Int) -> Void
    func run(_ index: Int) { body(index) }
}

@usableFromInline
struct ChunkedTask<T: ParallelTask>: ParallelTask {
    @usableFromInline let task: T, count: Int, chunks: Int
    @inlinable init(task: T, count: Int, chunks: Int) { self.task = task; self.count = count; self.chunks = chunks }
    @inlinable func run(_ c: Int) {
        for i in (c * count / chunks)..<((c + 1) * count / chunks) { task.run(i) }
    }
}

@usableFromInline
struct RangesTask<T: ParallelRangeTask>: ParallelTask {
    @usableFromInline let task: T, parts: Int, count: Int, grain: Int
    @inlinable init(task: T, parts: Int, count: Int, grain: Int) {
        self.task = task; self.parts = parts; self.count = count; self.grain = grain
    }
    @inlinable func run(_ p: Int) {
        if let r = ThreadPool.range(p, of: parts, count: count, grain: grain) { task.run(r) }
    }
}

/// One job, as workers see it: a type-erased task on the submitter's stack.
@usableFromInline
struct PoolJob {
    @usableFromInline let context: UnsafeRawPointer
    @usableFromInline let invoke: (UnsafeRawPointer, Int) -> Void
    @inlinable init(context: UnsafeRawPointer, invoke: @escaping (UnsafeRawPointer, Int) -> Void) {
        self.context = context; self.invoke = invoke
    }
}

/// The state shared by a pool and its worker threads (the workers hold it, not the pool, so the
/// pool can be released: its deinit shuts the workers down).
@usableFromInline
final class PoolCore: @unchecked Sendable {
    // Job state, one 64-bit word so that a claim is one compare-and-swap that also checks the job:
    // bits 40..62 generation (wrapping), 20..39 task count, 0..19 next task index.
    static let indexBits = 20
    @usableFromInline static let maxTasksPerJob = (1 << indexBits) - 1
    static let generationMask = (1 << 23) - 1
    private let state = Atomic<Int>(0)
    private let completed = Atomic<Int>(0)          // tasks of the current job that have finished
    private let shuttingDown = Atomic<Bool>(false)
    private var job: UnsafePointer<PoolJob>? = nil  // the current job
    // Barrier of a runConcurrently job (sense-reversing: arrivals count up, the last one resets the
    // count and advances the phase that the others wait on).
    var barrierParties = 1
    private let barrierArrived = Atomic<Int>(0)
    private let barrierPhase = Atomic<Int>(0)
    private var workers: [Worker] = []
    private let spinLimit: Int

    private final class Worker: @unchecked Sendable {
        let semaphore = DispatchSemaphore(value: 0)
        let sleeping = Atomic<Bool>(false)
        let finished = DispatchSemaphore(value: 0)
    }

    init(workers count: Int, spinLimit: Int) {
        self.spinLimit = spinLimit
        for index in 0..<count {
            let w = Worker()
            workers.append(w)
            let t = Thread { self.workerLoop(w) }
            t.name = "swiftcnn-pool-\(index + 1)"
            t.stackSize = 1 << 20
            t.start()
        }
    }

    func shutDown() {
        shuttingDown.store(true, ordering: .sequentiallyConsistent)
        // A new generation wakes every worker; it sees the flag and exits.
        let s = state.load(ordering: .relaxed)
        state.store((((s >> 40) + 1) & Self.generationMask) << 40, ordering: .sequentiallyConsistent)
        wakeSleepers()
        for w in workers { w.finished.wait() }
    }

    private func wakeSleepers() {
        for w in workers where w.sleeping.exchange(false, ordering: .sequentiallyConsistent) {
            w.semaphore.signal()
        }
    }

    /// Runs `job.body` for 0..<count; the caller works too.
    @usableFromInline
    func run(count: Int, job: UnsafePointer<PoolJob>) {
        self.job = job
        completed.store(0, ordering: .relaxed)
        let gen = ((state.load(ordering: .relaxed) >> 40) + 1) & Self.generationMask
        // Publishing the state (sequentially consistent) also publishes `job` and `completed`.
        state.store((gen << 40) | (count << Self.indexBits), ordering: .sequentiallyConsistent)
        wakeSleepers()
        work(generation: gen)
        // Wait for tasks still running on workers.
        var spins = 0
        while completed.load(ordering: .acquiring) < count {
            spins += 1
            if spins > 20_000 { sched_yield() }   // ~10-20 us of polling first
        }
        self.job = nil
    }

    func barrier() {
        let parties = barrierParties
        if parties <= 1 { return }
        let phase = barrierPhase.load(ordering: .acquiring)
        if barrierArrived.wrappingAdd(1, ordering: .acquiringAndReleasing).newValue == parties {
            barrierArrived.store(0, ordering: .relaxed)
            barrierPhase.store(phase &+ 1, ordering: .releasing)
            return
        }
        var spins = 0
        while barrierPhase.load(ordering: .acquiring) == phase {
            spins += 1
            if spins > 20_000 { sched_yield() }   // ~10-20 us of polling first
        }
    }

    /// Claims and runs tasks of job `generation` until none are left.
    private func work(generation: Int) {
        let mask = (1 << Self.indexBits) - 1
        var s = state.load(ordering: .acquiring)
        while true {
            if s >> 40 != generation { return }
            let index = s & mask
            let count = (s >> Self.indexBits) & mask
            if index >= count { return }
            let (exchanged, original) = state.compareExchange(expected: s, desired: s + 1, ordering: .acquiringAndReleasing)
            if !exchanged { s = original; continue }
            // The job cannot finish while our claimed task is outstanding, so `job` is this job's.
            let j = job!.pointee
            j.invoke(j.context, index)
            completed.wrappingAdd(1, ordering: .releasing)
            s = state.load(ordering: .acquiring)
        }
    }

    private func workerLoop(_ w: Worker) {
        FloatEnvironment.flushSubnormalsOnThisThread()
        // Generation 0 is the state before any job: a job (or a shutdown) published before this
        // thread got going is still seen as new.
        var seen = 0
        while true {
            // Wait for a new generation or the shutdown: poll for a while, then sleep.
            var spins = 0
            var gen = state.load(ordering: .acquiring) >> 40
            while gen == seen && !shuttingDown.load(ordering: .relaxed) {
                spins += 1
                if spins < spinLimit {
                    for _ in 0..<64 { _ = state.load(ordering: .relaxed) }   // a short pause between polls
                } else {
                    w.sleeping.store(true, ordering: .sequentiallyConsistent)
                    gen = state.load(ordering: .sequentiallyConsistent) >> 40
                    if gen != seen || shuttingDown.load(ordering: .sequentiallyConsistent) {
                        // Woken meanwhile. If the submitter already took our flag it signals: consume that.
                        if !w.sleeping.exchange(false, ordering: .sequentiallyConsistent) { w.semaphore.wait() }
                        break
                    }
                    w.semaphore.wait()
                    spins = 0
                }
                gen = state.load(ordering: .acquiring) >> 40
            }
            if shuttingDown.load(ordering: .sequentiallyConsistent) { w.finished.signal(); return }
            seen = gen
            work(generation: gen)
        }
    }
}
