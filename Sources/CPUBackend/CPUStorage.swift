import CNNCore
import Synchronization

/// Host memory owned by `CPUBackend`: `capacity` elements of 4 bytes, 64-byte aligned (a cache
/// line, and the widest SIMD register a later fast path may use), zero-filled, freed in deinit.
///
/// The memory is bound to the element type it was created for (`Float` for `.float32`,
/// `Int32` for `.int32`); a view must use that dtype.
package final class CPUStorage: BufferStorage {
    /// Alignment of every allocation, in bytes.
    package static let alignment = 64

    package let capacity: Int
    package let dtype: DType
    /// Bytes held by all live CPU storages of the process (for memory reports).
    package static var liveBytes: Int { live.load(ordering: .relaxed) }
    private static let live = Atomic<Int>(0)
    /// The allocation: max(capacity, 1) * 4 bytes.
    package let raw: UnsafeMutableRawPointer

    /// A zero-filled buffer of `capacity` elements of `dtype`.
    package init(capacity: Int, dtype: DType) {
        precondition(capacity >= 0, "CPUStorage: negative capacity \(capacity)")
        self.capacity = capacity
        self.dtype = dtype
        let elements = max(capacity, 1)
        raw = UnsafeMutableRawPointer.allocate(byteCount: elements * dtype.byteSize, alignment: CPUStorage.alignment)
        CPUStorage.live.wrappingAdd(elements * dtype.byteSize, ordering: .relaxed)
        switch dtype {
        case .float32: raw.bindMemory(to: Float.self, capacity: elements).initialize(repeating: 0, count: elements)
        case .int32: raw.bindMemory(to: Int32.self, capacity: elements).initialize(repeating: 0, count: elements)
        }
    }

    deinit {
        CPUStorage.live.wrappingSubtract(max(capacity, 1) * dtype.byteSize, ordering: .relaxed)
        raw.deallocate()
    }

    /// Element 0 of a float32 view `t` of this storage.
    package func floats(_ t: Tensor) -> UnsafeMutablePointer<Float> {
        precondition(t.storage === self && t.dtype == .float32 && dtype == .float32,
                     "CPUStorage.floats: \(t) is not a float32 view of this float32 storage")
        return raw.assumingMemoryBound(to: Float.self) + t.offset
    }

    /// Element 0 of an int32 view `t` of this storage.
    package func int32s(_ t: Tensor) -> UnsafeMutablePointer<Int32> {
        precondition(t.storage === self && t.dtype == .int32 && dtype == .int32,
                     "CPUStorage.int32s: \(t) is not an int32 view of this int32 storage")
        return raw.assumingMemoryBound(to: Int32.self) + t.offset
    }
}
