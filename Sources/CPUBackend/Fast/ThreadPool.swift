// A small persistent thread pool for the fast CPU paths (GEMM, convolution, batch-parallel loops).
//
// Why not `DispatchQueue.concurrentPerform`? It is correct and reasonably fast, but every call
// goes through libdispatch's worker wake-up (tens of microseconds on this VM when the workers are
// asleep); a training step issues hundreds of small parallel loops. Here the workers spin for a
// short while after each job (so back-to-back jobs start in well under a microsecond), then sleep
// on a semaphore so an idle process does not burn CPU. `scripts/gemm-bench.sh` measures both.
//
// Semantics (the same as `concurrentPerform`): `parallelFor(n) { i in ... }` runs body(0..<n), each
// index exactly once, on up to `threadCount` threads including the caller, and returns when all are
// done. Indices are handed out dynamically (an atomic counter), so uneven tasks balance.
// A call made while the pool is busy — from inside a task, or from another thread at the same
// time — runs serially on the calling thread instead of deadlocking.

import Foundation
import Synchronization

public final class ThreadPool: @unchecked Sendable {
    /// Threads a job may use, the calling thread included (>= 1).
    public let threadCount: Int

    /// The process-wide pool: `SWIFTCNN_THREADS` if set (>= 1), else the active processor count.
    public static let shared = ThreadPool(threadCount: ThreadPool.defaultThreadCount)

    /// `SWIFTCNN_THREADS` if set to a positive integer, else `ProcessInfo.activeProcessorCount`.
    public static var defaultThreadCount: Int {
        if let s = ProcessInfo.processInfo.environment["SWIFTCNN_THREADS"], let v = Int(s), v >= 1 { return v }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }

    private let core: PoolCore
    private let busy = Mutex<Bool>(false)   // a job is being run (guards submission)

    /// - Parameters:
    ///   - threadCount: threads per job including the caller; 1 makes every job serial.
    ///   - spinIterations: polls (~100 ns each) an idle worker makes before it sleeps.
    public init(threadCount: Int, spinIterations: Int = 2_000) {
        self.threadCount = max(1, threadCount)
        core = PoolCore(workers: self.threadCount - 1, spinLimit: spinIterations)
    }

    deinit { core.shutDown() }

    /// Runs `body(i)` for every i in 0..<count on up to `threadCount` threads; returns when all are done.
    public func parallelFor(_ count: Int, _ body: (Int) -> Void) {
        if count <= 0 { return }
        if count == 1 || threadCount == 1 { for i in 0..<count { body(i) }; return }
        if count > PoolCore.maxTasksPerJob {
            // Coarsen: chunks of consecutive indices.
            let chunks = PoolCore.maxTasksPerJob
            parallelFor(chunks) { c in
                let lo = c * count / chunks, hi = (c + 1) * count / chunks
                for i in lo..<hi { body(i) }
            }
            return
        }
        let acquired = busy.withLock { b -> Bool in
            if b { return false }
            b = true
            return true
        }
        guard acquired else { for i in 0..<count { body(i) }; return }
        defer { busy.withLock { $0 = false } }
        withoutActuallyEscaping(body) { escaping in
            var closure: (Int) -> Void = escaping
            withUnsafePointer(to: &closure) { ptr in core.run(count: count, body: UnsafeRawPointer(ptr)) }
        }
    }

    /// Splits 0..<count into at most `threadCount` contiguous ranges of nearly equal size
    /// (each a multiple of `grain` except the last) and runs `body(range)` for each in parallel.
    public func parallelRanges(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let g = max(1, grain)
        let units = (count + g - 1) / g
        let parts = min(threadCount, units)
        if parts <= 1 { body(0..<count); return }
        parallelFor(parts) { p in
            let lo = min(count, p * units / parts * g), hi = min(count, (p + 1) * units / parts * g)
            if lo < hi { body(lo..<hi) }
        }
    }
}

/// The state shared by a pool and its worker threads (the workers hold it, not the pool, so the
/// pool can be released: its deinit shuts the workers down).
private final class PoolCore: @unchecked Sendable {
    // Job state, one 64-bit word so that a claim is one compare-and-swap that also checks the job:
    // bits 40..62 generation (wrapping), 20..39 task count, 0..19 next task index.
    static let indexBits = 20
    static let maxTasksPerJob = (1 << indexBits) - 1
    static let generationMask = (1 << 23) - 1
    private let state = Atomic<Int>(0)
    private let completed = Atomic<Int>(0)          // tasks of the current job that have finished
    private let shuttingDown = Atomic<Bool>(false)
    private var body: UnsafeRawPointer? = nil       // the current job's `(Int) -> Void`
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

    /// Runs job `body` (a pointer to a `(Int) -> Void`) for 0..<count; the caller works too.
    func run(count: Int, body: UnsafeRawPointer) {
        self.body = body
        completed.store(0, ordering: .relaxed)
        let gen = ((state.load(ordering: .relaxed) >> 40) + 1) & Self.generationMask
        // Publishing the state (sequentially consistent) also publishes `body` and `completed`.
        state.store((gen << 40) | (count << Self.indexBits), ordering: .sequentiallyConsistent)
        wakeSleepers()
        work(generation: gen)
        // Wait for tasks still running on workers.
        var spins = 0
        while completed.load(ordering: .acquiring) < count {
            spins += 1
            if spins > 1000 { sched_yield() }
        }
        self.body = nil
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
            // The job cannot finish while our claimed task is outstanding, so `body` is this job's.
            body!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(index)
            completed.wrappingAdd(1, ordering: .releasing)
            s = state.load(ordering: .acquiring)
        }
    }

    private func workerLoop(_ w: Worker) {
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
                    for _ in 0..<64 { _ = state.load(ordering: .relaxed) }   // ~100 ns between polls
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
