// Scratch memory of the fast CPU paths: buffers that only grow and are never handed back while the
// backend lives, so a training step in the steady state allocates nothing and takes no page faults
// (this VM pays heavily for them: memory returned to the OS is faulted in again on every touch).
//
// Two kinds:
//   - `FastWorkspace.floats(_:_:)`: named arena buffers of the calling thread's op (packed weights,
//     the flipped weights of a backward-data convolution, weight-gradient partials).
//   - `ScratchPool.withSlot`: per-task scratch for work running on pool threads (padded images,
//     packed B blocks, transposition temporaries). A task checks a slot out under a lock, uses its
//     buffers, and returns it; slots are created on demand (at most one per concurrently running task).
//
// Files in Fast/Ops are the fast paths of CPUBackend's primitives. They use FastGEMM's micro-kernels
// and packers (Fast/*.swift) and ThreadPool, and are kept out of Fast/*.swift because
// scripts/gemm-bench.sh compiles those files on their own, without CNNCore.

import Synchronization

/// A 64-byte aligned allocation of `capacity` bytes that only grows.
struct GrowableBuffer {
    private(set) var raw: UnsafeMutableRawPointer? = nil
    private(set) var capacity = 0   // bytes

    /// Allocations made by all growable buffers of the process (tests check that a steady-state
    /// training step makes none).
    static let allocations = Atomic<Int>(0)

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
}

/// Named scratch buffers for the fast paths of one `CPUBackend` (used by one thread at a time, as the
/// backend itself).
final class FastWorkspace: @unchecked Sendable {
    enum Key: Int, CaseIterable {
        /// Packed op(A) of a convolution (weights in GEMM panels), all depth blocks.
        case convA
        /// Flipped, transposed weights of a stride-1 backward-data convolution.
        case convFlipped
        /// Per-group partial weight gradients.
        case convPartials
        /// im2col columns (strided backward data, the im2col primitive path).
        case columns
        /// Per-channel statistics and small per-op tables.
        case small
        /// Patch row offsets of a convolution (Int).
        case rowOffsets
        /// Per-group bias-gradient partials of a weight gradient (Double).
        case biasPartials
    }
    private var buffers = [GrowableBuffer](repeating: GrowableBuffer(), count: Key.allCases.count)
    let scratch = ScratchPool()

    deinit { for b in buffers { b.free() } }

    /// At least `count` floats under `key` (contents undefined).
    func floats(_ key: Key, _ count: Int) -> UnsafeMutablePointer<Float> {
        buffers[key.rawValue].bytes(max(1, count) * 4).bindMemory(to: Float.self, capacity: max(1, count))
    }

    /// At least `count` values of type T under `key` (contents undefined).
    func buffer<T>(_ key: Key, _ count: Int, as type: T.Type = T.self) -> UnsafeMutablePointer<T> {
        let n = max(1, count)
        return buffers[key.rawValue].bytes(n * MemoryLayout<T>.stride).bindMemory(to: T.self, capacity: n)
    }

    /// Bytes held (arena plus every scratch slot), for memory reports.
    var bytesReserved: Int { buffers.reduce(0) { $0 + $1.capacity } + scratch.bytesReserved }
}

/// Per-task scratch for pool threads (see the file comment).
final class ScratchPool: @unchecked Sendable {
    /// One task's scratch: a few independent growable buffers.
    final class Slot: @unchecked Sendable {
        static let count = 6
        private var buffers = [GrowableBuffer](repeating: GrowableBuffer(), count: Slot.count)
        deinit { for b in buffers { b.free() } }
        /// At least `count` values of type T in buffer `index` (0..<Slot.count; contents undefined).
        func buffer<T>(_ index: Int, _ count: Int, as type: T.Type = T.self) -> UnsafeMutablePointer<T> {
            let n = max(1, count)
            return buffers[index].bytes(n * MemoryLayout<T>.stride).bindMemory(to: T.self, capacity: n)
        }
        /// At least `count` floats in buffer `index` (0..<Slot.count; contents undefined).
        func floats(_ index: Int, _ count: Int) -> UnsafeMutablePointer<Float> { buffer(index, count) }
        var bytesReserved: Int { buffers.reduce(0) { $0 + $1.capacity } }
    }

    private let free = Mutex<[Slot]>([])

    /// Runs `body` with a slot no other task holds meanwhile.
    func withSlot<R>(_ body: (Slot) -> R) -> R {
        let slot = free.withLock { $0.popLast() } ?? Slot()
        defer { free.withLock { $0.append(slot) } }
        return body(slot)
    }

    var bytesReserved: Int { free.withLock { $0.reduce(0) { $0 + $1.bytesReserved } } }
}
