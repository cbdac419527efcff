// Scratch memory of the SGEMM and of the fast CPU paths built on it: buffers that only grow and are
// never handed back while their workspace lives, so a training step in the steady state allocates
// nothing and takes no page faults (this VM pays heavily for them: memory returned to the OS is
// faulted in again on every touch).
//
// One allocator, two ways in:
//   - named buffers (`buffer(named:_:as:)`): the calling thread's op (packed weights, the flipped
//     weights of a backward-data convolution, weight-gradient partials); CPUBackend names them
//     (Fast/Ops/WorkspaceNames.swift). Used by one thread at a time, as the backend itself.
//   - per-task slots (`withSlot`, `withSlots`): scratch for work running on pool threads (the
//     SGEMM's packed blocks, padded images, transposition temporaries). A task checks a slot out
//     under a lock, uses its buffers, and returns it; slots are created on demand (at most one per
//     concurrently running task). The SGEMM's use of a slot: see `Workspace.Slot` in FastGEMM.swift.
// Every buffer is a `GrowableBuffer`: `Workspace.allocations` counts the growths of one workspace
// (tests check that a steady-state training step makes none; a per-workspace count is not disturbed
// by other tests running in parallel), `GrowableBuffer.allocations` those of the whole process.

import Synchronization

/// A 64-byte aligned allocation of `capacity` bytes that only grows.
package struct GrowableBuffer {
    private(set) var raw: UnsafeMutableRawPointer? = nil
    private(set) var capacity = 0   // bytes

    /// Allocations made by all growable buffers of the process (tests check that a steady-state
    /// training step makes none).
    package static let allocations = Atomic<Int>(0)

    init() {}

    /// At least `bytes` bytes (contents are not kept when it grows).
    mutating func bytes(_ bytes: Int) -> UnsafeMutableRawPointer {
        if bytes > capacity || raw == nil {
            GrowableBuffer.allocations.wrappingAdd(1, ordering: .relaxed)
            raw?.deallocate()
            // Round up so that small growth steps do not reallocate every time.
            let size = max(64, bytes + bytes / 8 + 63) & ~63
            raw = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
            capacity = size
        }
        return raw!
    }

    func free() { raw?.deallocate() }

    /// At least `count` values of type T (contents undefined); a growth is added to `counter`.
    mutating func values<T>(_ count: Int, as type: T.Type, counter: Workspace.AllocationCounter) -> UnsafeMutablePointer<T> {
        let n = max(1, count)
        let before = capacity
        let p = bytes(n * MemoryLayout<T>.stride)
        if capacity != before { counter.value.wrappingAdd(1, ordering: .relaxed) }
        return p.bindMemory(to: T.self, capacity: n)
    }
}

/// Scratch buffers of the SGEMM and the fast paths (see the file comment). The slots are safe to
/// share between threads and concurrent calls; the named buffers belong to one thread at a time.
package final class Workspace: @unchecked Sendable {
    /// One task's scratch: a few independent growable buffers.
    package final class Slot: @unchecked Sendable {
        static let count = 6
        private var buffers = [GrowableBuffer](repeating: GrowableBuffer(), count: Slot.count)
        private let counter: AllocationCounter
        init(counter: AllocationCounter) { self.counter = counter }
        deinit { for b in buffers { b.free() } }
        /// At least `count` values of type T in buffer `index` (0..<Slot.count; contents undefined).
        package func buffer<T>(_ index: Int, _ count: Int, as type: T.Type = T.self) -> UnsafeMutablePointer<T> {
            buffers[index].values(count, as: T.self, counter: counter)
        }
        /// At least `count` floats in buffer `index` (0..<Slot.count; contents undefined).
        package func floats(_ index: Int, _ count: Int) -> UnsafeMutablePointer<Float> { buffer(index, count) }
        var bytesReserved: Int { buffers.reduce(0) { $0 + $1.capacity } }
    }

    /// Growths of this workspace's buffers, named and slots.
    final class AllocationCounter: Sendable {
        let value = Atomic<Int>(0)
    }

    private var named: [GrowableBuffer]
    private let free = Mutex<[Slot]>([])
    private let counter = AllocationCounter()

    /// Buffer allocations (growths) this workspace has made so far.
    package var allocations: Int { counter.value.load(ordering: .relaxed) }

    /// - Parameter namedBuffers: how many named buffers (`buffer(named:_:as:)` takes 0..<namedBuffers).
    package init(namedBuffers: Int = 0) {
        named = [GrowableBuffer](repeating: GrowableBuffer(), count: namedBuffers)
    }

    deinit { for b in named { b.free() } }

    /// At least `count` values of type T in named buffer `name` (contents undefined). Not thread-safe.
    package func buffer<T>(named name: Int, _ count: Int, as type: T.Type = T.self) -> UnsafeMutablePointer<T> {
        named[name].values(count, as: T.self, counter: counter)
    }

    /// Runs `body` with a slot no other task holds meanwhile.
    package func withSlot<R>(_ body: (Slot) -> R) -> R {
        let slot = free.withLock { $0.popLast() } ?? Slot(counter: counter)
        defer { free.withLock { $0.append(slot) } }
        return body(slot)
    }

    /// `count` slots at once (one lock round trip; the threads of a parallel GEMM then index them
    /// instead of contending for the lock). The buffer lives on the stack.
    func withSlots<R>(_ count: Int, _ body: (UnsafeBufferPointer<Slot>) -> R) -> R {
        withUnsafeTemporaryAllocation(of: Slot.self, capacity: count) { buffer in
            free.withLock { slots in
                for i in 0..<count { (buffer.baseAddress! + i).initialize(to: slots.popLast() ?? Slot(counter: counter)) }
            }
            defer {
                free.withLock { slots in
                    for i in 0..<count { slots.append((buffer.baseAddress! + i).move()) }
                }
            }
            return body(UnsafeBufferPointer(buffer))
        }
    }

    /// Bytes held: the named buffers and the slots not in use right now (all of them between
    /// calls), for memory reports.
    package var bytesReserved: Int {
        named.reduce(0) { $0 + $1.capacity } + free.withLock { $0.reduce(0) { $0 + $1.bytesReserved } }
    }
}
