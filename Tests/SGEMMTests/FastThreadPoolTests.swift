// Tests of the thread pool used by the fast CPU paths (Sources/SGEMM/ThreadPool.swift).

import Testing
import Foundation
import Synchronization
import SGEMM

/// Per-index visit counters that tasks on several threads may bump at once.
private final class VisitCounts: @unchecked Sendable {
    let counts: UnsafeMutablePointer<Atomic<Int>>
    let n: Int
    init(_ n: Int) {
        self.n = n
        counts = .allocate(capacity: n)
        for i in 0..<n { (counts + i).initialize(to: Atomic<Int>(0)) }
    }
    deinit { counts.deinitialize(count: n); counts.deallocate() }
    func bump(_ i: Int) { counts[i].wrappingAdd(1, ordering: .relaxed) }
    func all(equal v: Int) -> Bool { (0..<n).allSatisfy { counts[$0].load(ordering: .relaxed) == v } }
}

private struct BumpTask: ParallelTask {
    let visits: VisitCounts
    let offset: Int
    func run(_ index: Int) { visits.bump(offset + index) }
}

private struct BumpRangeTask: ParallelRangeTask {
    let visits: VisitCounts
    let starts: UnsafeMutablePointer<Int>   // one slot per range start (written once each)
    func run(_ range: Range<Int>) {
        starts[range.lowerBound] += 1
        for i in range { visits.bump(i) }
    }
}

@Suite("Fast thread pool")
struct FastThreadPoolTests {
    @Test("parallelFor runs every index exactly once", arguments: [1, 2, 3, 8])
    func everyIndexOnce(threads: Int) {
        let pool = ThreadPool(threadCount: threads)
        #expect(pool.threadCount == threads)
        for count in [0, 1, 2, 3, 7, 64, 1000] {
            let visits = VisitCounts(max(count, 1))
            for _ in 0..<20 { pool.parallelFor(count) { visits.bump($0) } }
            #expect(count == 0 ? visits.all(equal: 0) : visits.all(equal: 20), "\(threads) threads, \(count) tasks")
        }
    }

    @Test("the ParallelTask forms cover every index once", arguments: [1, 2, 3])
    func taskForms(threads: Int) {
        let pool = ThreadPool(threadCount: threads)
        for count in [1, 2, 5, 100] {
            let visits = VisitCounts(count + 3)
            pool.parallelFor(count, BumpTask(visits: visits, offset: 3))
            #expect((0..<3).allSatisfy { visits.counts[$0].load(ordering: .relaxed) == 0 })
            #expect((3..<(count + 3)).allSatisfy { visits.counts[$0].load(ordering: .relaxed) == 1 })
            for grain in [1, 4] {
                let ranged = VisitCounts(count)
                let starts = UnsafeMutablePointer<Int>.allocate(capacity: count)
                starts.initialize(repeating: 0, count: count)
                defer { starts.deallocate() }
                pool.parallelRanges(count, grain: grain, BumpRangeTask(visits: ranged, starts: starts))
                #expect(ranged.all(equal: 1), "count \(count) grain \(grain)")
                let startIndices = (0..<count).filter { starts[$0] > 0 }
                #expect(startIndices.allSatisfy { $0 % grain == 0 && starts[$0] == 1 })
                #expect(startIndices.count <= threads)
            }
        }
    }

    @Test("work really runs on more than one thread")
    func usesSeveralThreads() {
        let pool = ThreadPool(threadCount: 2)
        let seen = Mutex<Set<String>>([])
        // Tasks that wait for each other can only finish if two threads run them at the same time.
        let arrived = Atomic<Int>(0)
        pool.parallelFor(2) { _ in
            arrived.wrappingAdd(1, ordering: .sequentiallyConsistent)
            let deadline = Date().addingTimeInterval(10)
            while arrived.load(ordering: .sequentiallyConsistent) < 2 && Date() < deadline {}
            let name = "\(Unmanaged.passUnretained(Thread.current).toOpaque())"
            seen.withLock { _ = $0.insert(name) }
        }
        #expect(arrived.load(ordering: .relaxed) == 2)
        #expect(seen.withLock { $0.count } == 2)
    }

    @Test("a nested parallelFor runs serially inside the task")
    func nested() {
        let pool = ThreadPool(threadCount: 2)
        let visits = VisitCounts(8 * 16)
        pool.parallelFor(8) { i in
            pool.parallelFor(16) { j in visits.bump(i * 16 + j) }
        }
        #expect(visits.all(equal: 1))
    }

    @Test("concurrent submitters from several threads")
    func concurrentSubmitters() {
        let pool = ThreadPool(threadCount: 2)
        let visits = VisitCounts(4 * 100)
        DispatchQueue.concurrentPerform(iterations: 4) { t in
            for r in 0..<50 { pool.parallelFor(2) { i in visits.bump(t * 100 + r * 2 + i) } }
        }
        #expect(visits.all(equal: 1))
    }

    @Test("parallelRanges covers 0..<count with grain-aligned pieces", arguments: [1, 2, 3])
    func ranges(threads: Int) {
        let pool = ThreadPool(threadCount: threads)
        for (count, grain) in [(1, 1), (10, 1), (10, 4), (100, 32), (5, 8)] {
            let visits = VisitCounts(count)
            let starts = Mutex<[Int]>([])
            pool.parallelRanges(count, grain: grain) { r in
                starts.withLock { $0.append(r.lowerBound) }
                for i in r { visits.bump(i) }
            }
            #expect(visits.all(equal: 1), "count \(count) grain \(grain)")
            #expect(starts.withLock { $0 }.allSatisfy { $0 % grain == 0 })
            #expect(starts.withLock { $0.count } <= threads)
        }
    }

    @Test("pools shut down when released; idle workers wake for new jobs")
    func lifecycle() {
        for _ in 0..<5 {
            let pool = ThreadPool(threadCount: 3, spinIterations: 1)
            let visits = VisitCounts(6)
            pool.parallelFor(6) { visits.bump($0) }
            Thread.sleep(forTimeInterval: 0.005)   // workers are asleep on their semaphores now
            pool.parallelFor(6) { visits.bump($0) }
            #expect(visits.all(equal: 2))
        }
    }
}
