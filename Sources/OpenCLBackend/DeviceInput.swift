import CNNCore
import COpenCL
import Foundation

/// Training batches built on the OpenCL device (see `DeviceBatchInput`; kernel: Kernels/augment.cl).
///
/// Per batch, one non-blocking upload: labels, soft targets, the per-image parameters and, unless
/// the dataset is resident, the batch's uint8 source images (a quarter of the float bytes). The
/// host writes them into one of two pinned staging buffers (CL_MEM_ALLOC_HOST_PTR, mapped once),
/// and `clEnqueueWriteBuffer(CL_FALSE)` copies that to the slot's device buffer; one kernel then
/// builds the float batch. Before a staging buffer is refilled, the host checks (without
/// waiting) that the copy from it two batches ago has finished; only when it has not — the host
/// is two batches ahead of the device — does it wait (counted in `blockingCalls` and `inputWaits`).
///
/// Layout of a slot, in 4-byte units: labels (N) int32 | soft targets (N*K, MixUp/CutMix only) |
/// parameters (N*10) int32 | rotation (N*2) | source images (N*C*H*W bytes, staged mode only).
final class OpenCLBatchInput: DeviceBatchInput {
    let backend: OpenCLBackend
    let spec: DeviceInputSpec
    let maxBatch: Int
    let classes: Int
    /// (C, 256) lookup table, then mean (C), then std (C).
    private let tables: Tensor
    private let output: Tensor
    private var resident: CLBuffer?
    private var slots: [Slot] = []
    private var next = 0
    /// Batches that had to wait for their staging buffer (a subset of the backend's blocking calls).
    private(set) var inputWaits = 0

    /// A pinned host buffer, mapped for the input's lifetime, and the device buffer it is copied to.
    final class Slot {
        let pinned: cl_mem?
        let host: UnsafeMutableRawPointer
        let device: CLBuffer
        let bytes: Int
        var event: cl_event?
        let queueOwner: OpenCLBackend   // strong: its queue must outlive the mapping

        init(backend: OpenCLBackend, bytes: Int) throws {
            queueOwner = backend
            self.bytes = bytes
            var status: cl_int = 0
            let mem = clCreateBuffer(backend.runtime.context, cl_mem_flags(CL_MEM_ALLOC_HOST_PTR | CL_MEM_READ_WRITE), bytes, nil, &status)
            try clCheck(status, "clCreateBuffer(pinned input staging, \(bytes) bytes)")
            let p = clEnqueueMapBuffer(backend.queue, mem, cl_bool(CL_TRUE), cl_map_flags(CL_MAP_WRITE), 0, bytes, 0, nil, nil, &status)
            backend.commandCounters.blockingCalls += 1
            guard status == CL_SUCCESS, let p else {
                clReleaseMemObject(mem)
                try clCheck(status == CL_SUCCESS ? CL_OUT_OF_HOST_MEMORY : status, "clEnqueueMapBuffer(pinned input staging, \(bytes) bytes)")
                throw CNNError.device("clEnqueueMapBuffer returned no pointer")
            }
            pinned = mem
            host = p
            device = try backend.pool.obtain(elements: (bytes + 3) / 4, what: "input batch parameters")
        }

        deinit {
            if let event { clReleaseEvent(event) }
            clEnqueueUnmapMemObject(queueOwner.queue, pinned, host, 0, nil, nil)
            clFinish(queueOwner.queue)
            clReleaseMemObject(pinned)
        }
    }

    init(backend: OpenCLBackend, spec: DeviceInputSpec, maxBatch: Int, classes: Int) throws {
        let C = spec.channels
        try require(maxBatch > 0 && classes > 0 && C > 0 && spec.height > 0 && spec.width > 0,
                    "device input: batch \(maxBatch), \(classes) classes, image \(C)x\(spec.height)x\(spec.width) must all be positive")
        try require(spec.lut.count == C * 256 && spec.mean.count == C && spec.std.count == C,
                    "device input: the normalisation tables do not match \(C) channels")
        self.backend = backend
        self.spec = spec
        self.maxBatch = maxBatch
        self.classes = classes
        tables = try backend.makeTensor([C * 258])
        try backend.write(spec.lut + spec.mean + spec.std, to: tables)
        output = try backend.makeTensor([maxBatch, C, spec.height, spec.width])
        for _ in 0..<2 { slots.append(try Slot(backend: backend, bytes: Self.slotBytes(n: maxBatch, classes: classes, imageBytes: spec.imageBytes))) }
    }

    static func slotBytes(n: Int, classes: Int, imageBytes: Int) -> Int {
        4 * (n + n * classes + n * DeviceInputLayout.intsPerRow + n * DeviceInputLayout.floatsPerRow) + n * imageBytes
    }

    var isResident: Bool { resident != nil }

    func residentBytes(images count: Int) -> Int { count * spec.imageBytes }

    /// A quarter of the device's global memory (and no more than one allocation may take). On a
    /// CPU device (PoCL) the same rule holds: the copy costs host memory, but saves the per-batch
    /// gather and upload.
    func residentFits(images count: Int) -> Bool {
        let bytes = UInt64(residentBytes(images: count))
        let info = backend.deviceInfo
        return bytes <= info.globalMemoryBytes / 4 && bytes <= info.maxAllocationBytes
    }

    func makeResident(_ pixels: [UInt8], images count: Int) throws {
        let bytes = residentBytes(images: count)
        try require(pixels.count == bytes, "device input: \(pixels.count) bytes of pixels for \(count) images of \(spec.imageBytes) bytes")
        try require(count <= Int(Int32.max), "device input: \(count) images are too many to index")
        let buf = try backend.pool.obtain(elements: max((bytes + 3) / 4, 1), what: "resident dataset (\(count) images)")
        if bytes > 0 {
            let status = pixels.withUnsafeBytes { src in
                backend.enqueue("write(dataset)") { event in
                    clEnqueueWriteBuffer(backend.queue, buf.mem, cl_bool(CL_TRUE), 0, bytes, src.baseAddress, 0, nil, event)
                }
            }
            try clCheck(status, "clEnqueueWriteBuffer(resident dataset, \(bytes) bytes)")
            backend.transferCounters.uploads += 1
            backend.transferCounters.uploadBytes += bytes
            backend.commandCounters.blockingCalls += 1
        }
        resident = buf
    }

    func prepare(_ p: DeviceBatchParams, pixels: ((Int, UnsafeMutablePointer<UInt8>) -> Void)?) throws
        -> (images: Tensor, labels: Tensor, soft: Tensor?) {
        let n = p.count, K = classes, C = spec.channels, H = spec.height, W = spec.width
        let R = DeviceInputLayout.intsPerRow, F = DeviceInputLayout.floatsPerRow
        try require(n > 0 && n <= maxBatch, "device input: batch of \(n) images; this input takes 1...\(maxBatch)")
        try require(p.ints.count == n * R && p.floats.count == n * F && p.labels.count == n,
                    "device input: parameters for \(p.ints.count / R) rows, \(p.labels.count) labels, batch of \(n)")
        if let s = p.soft { try require(s.count == n * K, "device input: \(s.count) soft targets for \(n) rows of \(K) classes") }
        try require(resident != nil || pixels != nil, "device input: no resident dataset and no pixels for the batch")

        let slot = slots[next]
        next = (next + 1) % slots.count
        if let e = slot.event {
            var status: cl_int = 0
            var ev: cl_event? = e
            let got = clGetEventInfo(e, cl_event_info(CL_EVENT_COMMAND_EXECUTION_STATUS), MemoryLayout<cl_int>.size, &status, nil)
            if got != CL_SUCCESS || status > CL_COMPLETE {
                let waited = clWaitForEvents(1, &ev)
                backend.commandCounters.blockingCalls += 1
                inputWaits += 1
                try clCheck(waited, "clWaitForEvents(input staging)")
            } else if status < 0 {
                try clCheck(status, "input upload")
            }
            clReleaseEvent(e)
            slot.event = nil
        }
        let softOff = n, intOff = n + (p.soft == nil ? 0 : n * K), floatOff = intOff + n * R, pixOff = floatOff + n * F
        let host = slot.host
        p.labels.withUnsafeBytes { host.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        if let s = p.soft { s.withUnsafeBytes { (host + 4 * softOff).copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
        p.ints.withUnsafeBytes { (host + 4 * intOff).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        p.floats.withUnsafeBytes { (host + 4 * floatOff).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        var bytes = 4 * pixOff
        if resident == nil, let pixels {
            let dst = (host + 4 * pixOff).assumingMemoryBound(to: UInt8.self)
            for r in 0..<n { pixels(r, dst + r * spec.imageBytes) }
            bytes += n * spec.imageBytes
        }
        var event: cl_event?
        let status = clEnqueueWriteBuffer(backend.queue, slot.device.mem, cl_bool(CL_FALSE), 0, bytes, host, 0, nil, &event)
        try clCheck(status, "clEnqueueWriteBuffer(input batch, \(bytes) bytes, non-blocking)")
        if backend.profiling, let event {
            clRetainEvent(event)
            backend.track("write(input)", event)
        }
        slot.event = event
        backend.transferCounters.uploads += 1
        backend.transferCounters.uploadBytes += bytes

        let labels = Tensor(storage: slot.device, offset: 0, shape: [n], dtype: .int32)
        let soft = p.soft == nil ? nil : Tensor(storage: slot.device, offset: softOff, shape: [n, K])
        let source = resident.map { Tensor(storage: $0, shape: [$0.capacity]) } ?? Tensor(storage: slot.device, offset: pixOff, shape: [1])
        let images = Tensor(storage: output.storage, offset: output.offset, shape: [n, C, H, W])
        try backend.launch1D(.augment, "augmentBatch", count: n * C * H * W, [
            .tensor(source), .tensor(Tensor(storage: slot.device, offset: intOff, shape: [n * R], dtype: .int32)),
            .tensor(Tensor(storage: slot.device, offset: floatOff, shape: [n * F])), .tensor(tables), .tensor(images),
            .int(n), .int(C), .int(H), .int(W), .int(p.cropPadding), .int(p.reflect ? 1 : 0), .int(p.nearest ? 1 : 0),
            .int(p.mixKind), .float(p.lambda), .int(p.box.y0), .int(p.box.y1), .int(p.box.x0), .int(p.box.x1),
        ])
        // Submit now (non-blocking): a GPU queue may otherwise hold the copy until the next wait.
        clFlush(backend.queue)
        return (images, labels, soft)
    }
}

extension OpenCLBackend: DeviceBatchInputProvider {
    package func makeBatchInput(spec: DeviceInputSpec, maxBatch: Int, classes: Int) throws -> any DeviceBatchInput {
        try OpenCLBatchInput(backend: self, spec: spec, maxBatch: maxBatch, classes: classes)
    }

    package func readScalarsLater(_ a: Tensor, _ b: Tensor, tag: Int) throws -> (Float, Float, Int)? {
        try scalarReader.read(a, b, tag: tag, on: self)
    }
}

/// Non-blocking reads of two scalars into host memory: each call returns the newest values whose
/// read has completed and, unless one is still in flight, enqueues the next.
final class ScalarReader {
    private let values = UnsafeMutablePointer<Float>.allocate(capacity: 2)
    private var pending: cl_event?
    private var pendingTag = 0
    private var last: (Float, Float, Int)?

    func read(_ a: Tensor, _ b: Tensor, tag: Int, on backend: OpenCLBackend) throws -> (Float, Float, Int)? {
        if let e = pending {
            var status: cl_int = 0
            let got = clGetEventInfo(e, cl_event_info(CL_EVENT_COMMAND_EXECUTION_STATUS), MemoryLayout<cl_int>.size, &status, nil)
            try clCheck(got, "clGetEventInfo(totals read)")
            if status > CL_COMPLETE { return last }
            clReleaseEvent(e)
            pending = nil
            try clCheck(status < 0 ? status : CL_SUCCESS, "non-blocking totals read")
            last = (values[0], values[1], pendingTag)
        }
        let ba = try backend.buffer(a, "readScalarsLater"), bb = try backend.buffer(b, "readScalarsLater")
        try clCheck(clEnqueueReadBuffer(backend.queue, ba.mem, cl_bool(CL_FALSE), a.offset * 4, 4, values, 0, nil, nil),
                    "clEnqueueReadBuffer(totals, non-blocking)")
        var event: cl_event?
        try clCheck(clEnqueueReadBuffer(backend.queue, bb.mem, cl_bool(CL_FALSE), b.offset * 4, 4, values + 1, 0, nil, &event),
                    "clEnqueueReadBuffer(totals, non-blocking)")
        clFlush(backend.queue)
        pending = event
        pendingTag = tag
        backend.transferCounters.downloads += 2
        backend.transferCounters.downloadBytes += 8
        return last
    }

    deinit {
        if let pending {
            var e: cl_event? = pending
            clWaitForEvents(1, &e)
            clReleaseEvent(pending)
        }
        values.deallocate()
    }
}
