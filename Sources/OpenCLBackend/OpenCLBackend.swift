import CCLBlast
import CNNCore
import COpenCL
import Foundation

/// The OpenCL implementation of `Backend` for one device.
///
/// - One in-order command queue with profiling enabled. Primitives only enqueue; nothing waits
///   except `read`, `write` (blocking copies) and `synchronize`.
/// - Memory comes from a caching pool (`BufferPool`): no device allocation in a steady-state step.
///   New tensors are zero-filled on the device (clEnqueueFillBuffer).
/// - Kernels take each tensor as (buffer, element offset), so views work without sub-buffers.
/// - Scratch space for convolution (im2col columns) and reduction partials comes from two
///   grow-only arenas, reused across calls (safe: the queue is in order).
/// - Host<->device copies are counted in `transferCounters`, device commands and host waits in
///   `commandCounters` (exact: counted where they are enqueued); with `profiling` on, kernel device
///   time is accumulated from profiling events (`deviceTimeNanoseconds`).
///
/// Not thread-safe: use one backend from one thread at a time (like the CPU backend). Several
/// backends on the same device may run on different threads; tensors must not cross between them.
public final class OpenCLBackend: Backend {
    public let deviceInfo: OpenCLDeviceInfo
    public let info: DeviceInfo
    public internal(set) var transferCounters = TransferCounters()
    /// Device commands and host waits issued so far (see `CommandCounters`).
    package internal(set) var commandCounters = CommandCounters()
    /// Names of the kernels this backend has launched (tests check that the parity cases reach
    /// every kernel of Kernels/*.cl).
    package private(set) var launchedKernels: Set<String> = []

    let runtime: DeviceRuntime
    let queue: cl_command_queue?
    let pool: BufferPool
    private var kernels: [String: Kernel] = [:]
    private var workspaceBuffer: CLBuffer?
    private var scratchBuffer: CLBuffer?
    private var gemmTempBuffer: CLBuffer?
    /// WorkGroupTuner.swift: while set, `launchTunable` records each launch (and snapshots its tensors).
    var launchRecorder: LaunchRecorder?
    /// Tests set this to force convolutions to split the batch into chunks.
    var workspaceLimitOverride: Int?
    /// Conv.swift: the output gradients whose (Cout, N*P) columns the workspace still holds.
    var outputGradColumns: OutputGradColumns?

    /// Accumulate device time of every kernel and copy from profiling events. Off by default
    /// (collecting events costs host time); benchmarks turn it on.
    package var profiling = false {
        didSet { if !profiling { try? drainEvents() } }
    }
    private var pendingEvents: [(String, cl_event?)] = []
    /// DeviceInput.swift: non-blocking reads of the training totals.
    let scalarReader = ScalarReader()
    /// Device nanoseconds of the commands enqueued while `profiling` was on (complete after a
    /// `synchronize`), in total and per kernel name.
    package internal(set) var deviceTimeNanoseconds: UInt64 = 0
    package internal(set) var deviceTimeByKernel: [String: UInt64] = [:]
    /// With `profiling` on: each kernel's and GEMM's bytes and FLOPs (Roofline.swift).
    package internal(set) var workLog: [KernelWork] = []

    /// A backend on `device` (from `selectDevice` or `OpenCLDiscovery.inventory()`).
    public init(device: OpenCLDeviceInfo) throws {
        runtime = try DeviceRuntime.shared(for: device)
        deviceInfo = runtime.info
        var status: cl_int = 0
        queue = clCreateCommandQueue(runtime.context, runtime.device,
                                     cl_command_queue_properties(CL_QUEUE_PROFILING_ENABLE), &status)
        try clCheck(status, "clCreateCommandQueue(\(deviceInfo.name))")
        pool = BufferPool(context: runtime.context, maxAllocationBytes: deviceInfo.maxAllocationBytes)
        var details = deviceInfo.details
        details["reduceWorkGroupSize"] = String(runtime.reduceWorkGroupSize)
        let typeName: String
        switch deviceInfo.type {
        case .gpu: typeName = "OpenCL GPU"
        case .cpu: typeName = "OpenCL CPU"
        case .accelerator: typeName = "OpenCL accelerator"
        case .custom, .other: typeName = "OpenCL device"
        }
        info = DeviceInfo(kind: .opencl, name: deviceInfo.name, type: typeName, details: details)
    }

    /// A backend on the device `selector` names (`opencl` = the best OpenCL device, or `opencl:P:D`).
    package convenience init(selector: String = "opencl") throws {
        let request = try DeviceRequest.parse(selector)
        let choice = try selectDevice(request == .auto ? .opencl : request, inventory: OpenCLDiscovery.inventory())
        guard case let .opencl(dev, _) = choice else {
            throw CNNError.invalidArgument("OpenCLBackend(selector: \(selector)): '\(selector)' selects the CPU backend; "
                                           + "pass opencl or opencl:P:D")
        }
        try self.init(device: dev)
    }

    deinit {
        if let queue {
            clFinish(queue)
            for (_, e) in pendingEvents { clReleaseEvent(e) }
            kernels.removeAll()
            clReleaseCommandQueue(queue)
        }
    }

    /// Device-buffer allocator statistics.
    package var allocatorStats: BufferPoolStats { pool.statistics }
    /// Device bytes of live buffers (tensors and workspaces; the pool's idle buffers aside).
    public var memoryReport: MemoryReport { MemoryReport(tensorBytes: pool.statistics.liveBytes) }
    /// Returns the pool's idle buffers to the driver.
    package func trimMemoryCache() { pool.trim() }

    package func resetDeviceTime() {
        try? drainEvents()
        deviceTimeNanoseconds = 0
        deviceTimeByKernel = [:]
    }

    // MARK: Memory

    public func makeTensor(_ shape: Shape, dtype: DType) throws -> Tensor {
        let buffer = try pool.obtain(elements: shape.count, what: "tensor \(shape)", batchShape: shape)
        let t = Tensor(storage: buffer, shape: shape, dtype: dtype)
        if shape.count > 0 {
            var zero: Float = 0
            try clCheck(enqueue("fill(zero)") { clEnqueueFillBuffer(queue, buffer.mem, &zero, 4, 0, shape.count * 4, 0, nil, $0) },
                        "clEnqueueFillBuffer(zeroing tensor \(shape))")
            commandCounters.kernelLaunches += 1
        }
        return t
    }

    public func write(_ values: UnsafeBufferPointer<Float>, to tensor: Tensor) throws {
        try writeBytes(UnsafeRawBufferPointer(values), count: values.count, to: tensor, dtype: .float32)
    }
    public func write(_ values: UnsafeBufferPointer<Int32>, to tensor: Tensor) throws {
        try writeBytes(UnsafeRawBufferPointer(values), count: values.count, to: tensor, dtype: .int32)
    }
    public func read(_ tensor: Tensor, into values: UnsafeMutableBufferPointer<Float>) throws {
        try readBytes(tensor, into: UnsafeMutableRawBufferPointer(values), count: values.count, dtype: .float32)
    }
    public func read(_ tensor: Tensor, into values: UnsafeMutableBufferPointer<Int32>) throws {
        try readBytes(tensor, into: UnsafeMutableRawBufferPointer(values), count: values.count, dtype: .int32)
    }

    /// Blocking host -> device copy (returns when the host memory may be reused).
    private func writeBytes(_ src: UnsafeRawBufferPointer, count: Int, to tensor: Tensor, dtype: DType) throws {
        try Contract.transfer(tensor, count: count, dtype: dtype, "write")
        guard count > 0 else { return }
        let buf = try buffer(tensor, "write")
        try clCheck(enqueue("write") {
                        clEnqueueWriteBuffer(queue, buf.mem, cl_bool(CL_TRUE), tensor.offset * 4, count * 4, src.baseAddress, 0, nil, $0)
                    }, "clEnqueueWriteBuffer(\(count * 4) bytes into \(tensor))")
        transferCounters.uploads += 1
        commandCounters.blockingCalls += 1
        transferCounters.uploadBytes += count * 4
    }

    /// Blocking device -> host copy (waits for the work before it).
    private func readBytes(_ tensor: Tensor, into dst: UnsafeMutableRawBufferPointer, count: Int, dtype: DType) throws {
        try Contract.transfer(tensor, count: count, dtype: dtype, "read")
        guard count > 0 else { return }
        let buf = try buffer(tensor, "read")
        try clCheck(enqueue("read") {
                        clEnqueueReadBuffer(queue, buf.mem, cl_bool(CL_TRUE), tensor.offset * 4, count * 4, dst.baseAddress, 0, nil, $0)
                    }, "clEnqueueReadBuffer(\(count * 4) bytes from \(tensor))")
        transferCounters.downloads += 1
        commandCounters.blockingCalls += 1
        transferCounters.downloadBytes += count * 4
        try drainEvents()
    }

    public func copy(_ src: Tensor, to dst: Tensor) throws {
        try Contract.copy(src, dst)
        guard src.count > 0 else { return }
        let s = try buffer(src, "copy"), d = try buffer(dst, "copy")
        try clCheck(enqueue("copy") {
                        clEnqueueCopyBuffer(queue, s.mem, d.mem, src.offset * 4, dst.offset * 4, src.count * 4, 0, nil, $0)
                    }, "clEnqueueCopyBuffer(\(src.count * 4) bytes)")
        commandCounters.kernelLaunches += 1
        logWork("copy", bytes: Double(2 * src.count * 4))
    }

    public func synchronize() throws {
        try clCheck(clFinish(queue), "clFinish")
        commandCounters.blockingCalls += 1
        try drainEvents()
    }

    // MARK: Plumbing for the launchers

    /// The backend's buffer behind a tensor; a tensor of another backend is a caller error.
    func buffer(_ t: Tensor, _ op: String) throws -> CLBuffer {
        guard let b = t.storage as? CLBuffer, b.pool === pool else {
            throw CNNError.invalidArgument("\(op): tensor \(t) does not belong to this OpenCL backend (\(deviceInfo.name)); "
                                           + "create it with this backend's makeTensor/upload")
        }
        return b
    }

    /// The kernel `name` of `family` (program built on first use, kernel created once per backend).
    func kernel(_ family: KernelFamily, _ name: String) throws -> Kernel {
        if let k = kernels[name] { return k }
        let k = try Kernel(program: runtime.program(family), name: name, device: runtime.device)
        k.tunedLocal = runtime.tunedLocalSize(name)
        kernels[name] = k
        return k
    }

    /// Enqueues `kernel` over `global` work-items (rounded up to whole work-groups of `local`;
    /// kernels check their bounds). `local == nil` lets the driver choose.
    func launch(_ k: Kernel, global: [Int], local: [Int]?, _ args: [KernelArg]) throws {
        if global.contains(0) { return }
        launchedKernels.insert(k.name)
        var index: cl_uint = 0
        func set<T>(_ value: T) throws {
            let status = withUnsafeBytes(of: value) { clSetKernelArg(k.handle, index, $0.count, $0.baseAddress) }
            try clCheck(status, "clSetKernelArg(\(k.name), arg \(index))")
            index += 1
        }
        for arg in args {
            switch arg {
            case let .tensor(t):
                try set(try buffer(t, k.name).mem)
                try set(Int32(t.offset))
            case let .optional(t):
                if let t {
                    try set(try buffer(t, k.name).mem)
                    try set(Int32(t.offset))
                } else {
                    try clCheck(clSetKernelArg(k.handle, index, MemoryLayout<cl_mem?>.size, nil), "clSetKernelArg(\(k.name), NULL)")
                    index += 1
                    try set(Int32(0))
                }
            case let .int(v):
                guard let v32 = Int32(exactly: v) else {
                    throw CNNError.unsupported("\(k.name): size \(v) does not fit the kernels' 32-bit indices")
                }
                try set(v32)
            case let .uint(v): try set(v)
            case let .float(v): try set(v)
            case let .local(bytes):
                try clCheck(clSetKernelArg(k.handle, index, bytes, nil), "clSetKernelArg(\(k.name), local \(bytes) bytes)")
                index += 1
            }
        }
        var globalSize = global
        if let local {
            for d in globalSize.indices { globalSize[d] = (globalSize[d] + local[d] - 1) / local[d] * local[d] }
        }
        let localSize = local
        let status: cl_int = enqueue(k.name) { event in
            globalSize.withUnsafeBufferPointer { g in
                if let localSize {
                    return localSize.withUnsafeBufferPointer { l in
                        clEnqueueNDRangeKernel(queue, k.handle, cl_uint(g.count), nil, g.baseAddress, l.baseAddress, 0, nil, event)
                    }
                }
                return clEnqueueNDRangeKernel(queue, k.handle, cl_uint(g.count), nil, g.baseAddress, nil, 0, nil, event)
            }
        }
        try clCheck(status, "clEnqueueNDRangeKernel(\(k.name), global \(globalSize), local \(local.map { "\($0)" } ?? "auto"))")
        commandCounters.kernelLaunches += 1
        if profiling {
            var bytes = 0
            for arg in args {
                switch arg {
                case let .tensor(t): bytes += t.count * 4
                case let .optional(t?): bytes += t.count * 4
                default: break
                }
            }
            logWork(k.name, bytes: Double(bytes))
        }
    }

    /// The backend's kernels created so far (WorkGroupTuner.swift applies tuned sizes to them).
    var createdKernels: [Kernel] { Array(kernels.values) }

    /// One work-item per element of `count`, in work-groups of the kernel's 1-D local size.
    func launch1D(_ family: KernelFamily, _ name: String, count: Int, _ args: [KernelArg]) throws {
        guard count > 0 else { return }
        try launchTunable(try kernel(family, name), global: [count], clip: false, args)
    }

    /// A local-memory reduction kernel: work-groups of exactly `WG_SIZE` (the build-time tunable).
    func launchReduction(_ family: KernelFamily, _ name: String, groups: [Int], _ args: [KernelArg]) throws {
        let k = try kernel(family, name)
        let wg = runtime.reduceWorkGroupSize
        guard k.maxWorkGroupSize >= wg else {
            throw CNNError.device("OpenCL: kernel \(name) allows work-groups of \(k.maxWorkGroupSize) on \(deviceInfo.name), "
                                  + "below its WG_SIZE \(wg); rebuild with a smaller -D WG_SIZE")
        }
        var global = groups
        var local = [Int](repeating: 1, count: groups.count)
        global[0] *= wg
        local[0] = wg
        try launch(k, global: global, local: local, args)
    }

    var reduceWorkGroupSize: Int { runtime.reduceWorkGroupSize }

    /// A view of `elements` floats in the convolution workspace arena (contents undefined).
    func workspace(_ elements: Int, _ what: String) throws -> Tensor {
        if workspaceBuffer == nil || workspaceBuffer!.capacity < elements {
            workspaceBuffer = nil   // back to the pool before the bigger one is requested
            workspaceBuffer = try pool.obtain(elements: elements, what: "workspace for \(what)")
        }
        return Tensor(storage: workspaceBuffer!, shape: [elements])
    }

    /// A view of `elements` floats in the reduction scratch arena (contents undefined).
    func scratch(_ elements: Int) throws -> Tensor {
        if scratchBuffer == nil || scratchBuffer!.capacity < elements {
            scratchBuffer = nil
            scratchBuffer = try pool.obtain(elements: max(elements, 4096), what: "reduction scratch")
        }
        return Tensor(storage: scratchBuffer!, shape: [elements])
    }

    /// CLBlast's temporary GEMM buffer (at least `elements` floats, contents undefined).
    func gemmTemp(_ elements: Int) throws -> cl_mem? {
        if gemmTempBuffer == nil || gemmTempBuffer!.capacity < elements {
            gemmTempBuffer = nil
            gemmTempBuffer = try pool.obtain(elements: max(elements, 4096), what: "CLBlast temporary buffer")
        }
        return gemmTempBuffer!.mem
    }

    // MARK: Profiling

    /// Runs an enqueue call with an event slot when profiling (NULL otherwise) and tracks the event.
    func enqueue<R>(_ name: String, _ body: (UnsafeMutablePointer<cl_event?>?) throws -> R) rethrows -> R {
        guard profiling else { return try body(nil) }
        var event: cl_event?
        let result = try withUnsafeMutablePointer(to: &event) { try body($0) }
        track(name, event)
        return result
    }

    func track(_ name: String, _ event: cl_event?) {
        guard let event else { return }
        pendingEvents.append((name, event))
        if pendingEvents.count >= 4096 { try? drainEvents() }
    }

    /// Waits for the tracked events and adds their device time.
    private func drainEvents() throws {
        guard !pendingEvents.isEmpty else { return }
        var events = pendingEvents.map { $0.1 }
        let waited = clWaitForEvents(cl_uint(events.count), &events)
        commandCounters.blockingCalls += 1
        for (name, e) in pendingEvents {
            var start: cl_ulong = 0, end: cl_ulong = 0
            if waited == CL_SUCCESS,
               clGetEventProfilingInfo(e, cl_profiling_info(CL_PROFILING_COMMAND_START), 8, &start, nil) == CL_SUCCESS,
               clGetEventProfilingInfo(e, cl_profiling_info(CL_PROFILING_COMMAND_END), 8, &end, nil) == CL_SUCCESS, end >= start {
                deviceTimeNanoseconds += end - start
                deviceTimeByKernel[name, default: 0] += end - start
            }
            clReleaseEvent(e)
        }
        pendingEvents.removeAll(keepingCapacity: true)
        try clCheck(waited, "clWaitForEvents(profiling)")
    }
}

/// What an OpenCL backend has asked of the device, counted exactly where it is enqueued — what a
/// GPU punishes per training step: commands (each a launch with host overhead) and host waits.
package struct CommandCounters: Sendable, Equatable {
    /// Device commands other than host<->device transfers: kernels of Kernels/*.cl, CLBlast calls
    /// (one each, however many kernels CLBlast runs inside), buffer fills (zeroing new tensors) and
    /// device-to-device copies.
    package var kernelLaunches = 0
    /// The CLBlast calls among `kernelLaunches`.
    package var clblastCalls = 0
    /// Calls that make the host wait for the device: blocking writes and reads, `synchronize`
    /// (clFinish) and, with profiling on only, clWaitForEvents.
    package var blockingCalls = 0
    package init() {}

    mutating func countCLBlastCall() {
        clblastCalls += 1
        kernelLaunches += 1
    }
}

extension OpenCLBackend {
    /// Empties CLBlast's process-wide cache of compiled programs. Its static destructor would
    /// release them during exit(), after the OpenCL runtime may have torn itself down: under
    /// Oclgrind that corrupts the heap and the process aborts after its work is done. Commands that
    /// may run under Oclgrind (`cnn verify`) call this before they return; later GEMMs recompile.
    package static func releaseLibraryCaches() {
        _ = CLBlastClearCache()
    }
}
