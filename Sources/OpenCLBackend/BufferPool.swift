import CNNCore
import COpenCL
import Foundation

/// Device memory of one OpenCL backend: a cl_mem of `capacity` 4-byte elements. When the last
/// tensor view of it goes away the buffer goes back to its pool, not to the driver.
final class CLBuffer: BufferStorage, @unchecked Sendable {
    let mem: cl_mem?
    let capacity: Int
    let pool: BufferPool

    init(mem: cl_mem?, capacity: Int, pool: BufferPool) {
        self.mem = mem
        self.capacity = capacity
        self.pool = pool
    }
    deinit { pool.recycle(mem, capacity: capacity) }
}

/// Allocator statistics (device buffers, not host memory).
package struct BufferPoolStats: Sendable, Equatable, CustomStringConvertible {
    /// clCreateBuffer calls.
    package var allocations = 0
    /// Requests served from the pool.
    package var reuses = 0
    /// Bytes held by live tensors, and bytes parked in the pool.
    package var liveBytes = 0
    package var cachedBytes = 0
    package var description: String {
        "buffers: \(allocations) allocated, \(reuses) reused, \(liveBytes >> 10) KiB live, \(cachedBytes >> 10) KiB cached"
    }
}

/// A caching allocator: freed buffers are kept per size class and handed out again, so a training
/// step that frees and re-requests the same sizes allocates nothing after the first step.
///
/// Safety of reuse: a backend's pool belongs to its single in-order queue, so any command that
/// uses a recycled buffer is ordered after every earlier command that used it.
final class BufferPool: @unchecked Sendable {
    let context: cl_context?
    let maxAllocationBytes: UInt64
    private let lock = NSLock()
    private var free: [Int: [cl_mem?]] = [:]
    private var stats = BufferPoolStats()

    init(context: cl_context?, maxAllocationBytes: UInt64) {
        self.context = context
        self.maxAllocationBytes = maxAllocationBytes
    }

    /// Size classes in elements: multiples of 64 up to 4096, then steps of 1/8 of the power of two
    /// below (at most 12.5% slack).
    static func sizeClass(_ elements: Int) -> Int {
        let n = max(elements, 1)
        if n <= 4096 { return (n + 63) / 64 * 64 }
        let top = 1 << (Int.bitWidth - 1 - n.leadingZeroBitCount)   // largest power of two <= n
        let step = top / 8
        return (n + step - 1) / step * step
    }

    /// The largest batch of a tensor with `perSample` elements per sample that fits one allocation of
    /// at most `maxAllocationBytes` (size classes included); 0 when not even one sample fits.
    static func largestBatch(perSample: Int, maxAllocationBytes: UInt64) -> Int {
        guard perSample > 0 else { return 0 }
        var b = Int(min(maxAllocationBytes / 4, UInt64(Int32.max))) / perSample
        while b > 0 && UInt64(sizeClass(b * perSample) * 4) > maxAllocationBytes { b -= 1 }
        return b
    }

    /// What to do about a tensor too large for one allocation: the largest batch that fits (within
    /// both the device's allocation limit and 2^31 elements) when the tensor is batched.
    private func batchHint(_ batchShape: Shape?) -> String {
        guard let shape = batchShape, shape.rank >= 2, shape[0] > 1 else { return "reduce the batch size" }
        let limit = maxAllocationBytes == 0 ? UInt64(Int32.max) * 4 : maxAllocationBytes
        let fits = BufferPool.largestBatch(perSample: shape.count / shape[0], maxAllocationBytes: limit)
        return fits >= 1 ? "a batch of at most \(fits) fits this tensor (now \(shape[0])); use --batch-size \(fits) or less"
            : "not even one sample of it fits: use smaller images or a narrower model"
    }

    /// `batchShape`: the tensor's shape when its first dimension is the batch (the message then
    /// names a batch size that fits).
    func obtain(elements: Int, what: String, batchShape: Shape? = nil) throws -> CLBuffer {
        let cap = BufferPool.sizeClass(elements)
        let bytes = cap * 4
        guard cap <= Int(Int32.max) else {
            throw CNNError.unsupported("OpenCL: \(what) needs \(elements) elements; tensors over 2^31 elements are not supported; "
                                       + batchHint(batchShape))
        }
        guard UInt64(bytes) <= maxAllocationBytes || maxAllocationBytes == 0 else {
            throw CNNError.device("OpenCL: \(what) needs \(bytes >> 20) MiB but the device's largest allocation "
                                  + "(CL_DEVICE_MAX_MEM_ALLOC_SIZE) is \(maxAllocationBytes >> 20) MiB; " + batchHint(batchShape))
        }
        lock.lock()
        if var list = free[cap], let mem = list.popLast() {
            free[cap] = list
            stats.reuses += 1
            stats.cachedBytes -= bytes
            stats.liveBytes += bytes
            lock.unlock()
            return CLBuffer(mem: mem, capacity: cap, pool: self)
        }
        lock.unlock()
        var status: cl_int = 0
        var mem = clCreateBuffer(context, cl_mem_flags(CL_MEM_READ_WRITE), bytes, nil, &status)
        if status == CL_MEM_OBJECT_ALLOCATION_FAILURE || status == CL_OUT_OF_RESOURCES || status == CL_OUT_OF_HOST_MEMORY {
            trim()   // give the pool's buffers back and try once more
            mem = clCreateBuffer(context, cl_mem_flags(CL_MEM_READ_WRITE), bytes, nil, &status)
        }
        try clCheck(status, "clCreateBuffer(\(bytes) bytes for \(what))")
        lock.lock()
        stats.allocations += 1
        stats.liveBytes += bytes
        lock.unlock()
        return CLBuffer(mem: mem, capacity: cap, pool: self)
    }

    func recycle(_ mem: cl_mem?, capacity: Int) {
        lock.lock()
        free[capacity, default: []].append(mem)
        stats.liveBytes -= capacity * 4
        stats.cachedBytes += capacity * 4
        lock.unlock()
    }

    /// Releases every parked buffer to the driver (the driver frees each once pending commands finish).
    func trim() {
        lock.lock()
        let all = free.values.flatMap { $0 }
        free.removeAll()
        stats.cachedBytes = 0
        lock.unlock()
        for mem in all { clReleaseMemObject(mem) }
    }

    var statistics: BufferPoolStats { lock.lock(); defer { lock.unlock() }; return stats }

    deinit {
        for mem in free.values.flatMap({ $0 }) { clReleaseMemObject(mem) }
    }
}
