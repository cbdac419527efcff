import CMPI
import CNNCore
import Foundation
import Synchronization

/// The processes of an MPI job (`mpirun -np N cnn train --distributed`), through the run-time
/// loaded wrapper `CMPI` (no link dependency on MPI).
///
/// Every MPI call after start-up runs on one communication thread, in the order the calls were
/// submitted: collectives are issued in the same order on every rank, whichever thread submits
/// them, and gradient buckets are reduced while the main thread goes on with backward.
public final class MPIWorld: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    /// Rank among the processes on this host, and their number (Open MPI's environment; falls
    /// back to the global rank and size).
    public let localRank: Int
    public let localSize: Int

    private let cond = NSCondition()
    private var queue: [(id: Int, job: () -> Int32, what: String)] = []
    private var submitted = 0
    private var completed = 0
    private var failure: String?
    private var finished = false
    private let threaded: Bool
    private static let lock = NSLock()
    nonisolated(unsafe) private static var started: MPIWorld?

    /// Loads libmpi and initialises MPI (once per process); a clear error when it is missing.
    public static func start() throws -> MPIWorld {
        lock.lock()
        defer { lock.unlock() }
        if let w = started { return w }
        var buffer = [CChar](repeating: 0, count: 1024)
        if cmpi_init(&buffer, buffer.count) != 0 {
            let message = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw CNNError.unsupported("--distributed: \(message)")
        }
        let w = MPIWorld(rank: Int(cmpi_rank()), size: Int(cmpi_size()), threaded: cmpi_thread_level() >= 2)
        started = w
        return w
    }

    private init(rank: Int, size: Int, threaded: Bool) {
        self.rank = rank
        self.size = size
        let env = ProcessInfo.processInfo.environment
        localRank = env["OMPI_COMM_WORLD_LOCAL_RANK"].flatMap { Int($0) } ?? rank
        localSize = env["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap { Int($0) } ?? size
        self.threaded = threaded
        if threaded {
            let t = Thread { [self] in communicate() }
            t.name = "swiftcnn-mpi"
            t.start()
        }
    }

    /// "rank R of N" for messages.
    public var who: String { "rank \(rank) of \(size)" }

    private func communicate() {
        while true {
            cond.lock()
            while queue.isEmpty && !finished { cond.wait() }
            if queue.isEmpty { cond.unlock(); return }
            let item = queue.removeFirst()
            cond.unlock()
            let rc = item.job()
            cond.lock()
            if rc != 0 && failure == nil { failure = "\(item.what) failed on \(who): \(errorText(rc))" }
            completed = item.id
            cond.broadcast()
            cond.unlock()
        }
    }

    private func errorText(_ rc: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: 512)
        cmpi_error_string(rc, &buffer, buffer.count)
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// Queues `job` (an MPI call returning its error code) behind the earlier ones; returns a ticket for `wait`.
    func submit(_ what: String, _ job: @escaping () -> Int32) -> Int {
        cond.lock()
        defer { cond.unlock() }
        submitted += 1
        if threaded {
            queue.append((submitted, job, what))
            cond.broadcast()
        } else {
            // MPI gave less than MPI_THREAD_SERIALIZED: every call on the calling (main) thread.
            let rc = job()
            if rc != 0 && failure == nil { failure = "\(what) failed on \(who): \(errorText(rc))" }
            completed = submitted
        }
        return submitted
    }

    /// Waits until the job with `ticket` (and every earlier one) is done; throws the first MPI error.
    func wait(_ ticket: Int) throws {
        cond.lock()
        defer { cond.unlock() }
        while completed < ticket && failure == nil { cond.wait() }
        if let failure { throw CNNError.io("MPI: \(failure)") }
    }

    /// Element-wise sum over ranks, in place (blocking).
    public func sum(_ values: inout [Double]) throws {
        let n = values.count
        try values.withUnsafeMutableBufferPointer { buf in
            let p = buf.baseAddress!
            try wait(submit("MPI_Allreduce(sum of \(n) doubles)") { cmpi_allreduce_double(p, Int32(n), 0) })
        }
    }

    /// Minimum and maximum over ranks of each value (blocking).
    public func minMax(_ values: [Int64]) throws -> (min: [Int64], max: [Int64]) {
        var lo = values, hi = values
        let n = values.count
        try lo.withUnsafeMutableBufferPointer { l in
            try hi.withUnsafeMutableBufferPointer { h in
                let (pl, ph) = (l.baseAddress!, h.baseAddress!)
                _ = submit("MPI_Allreduce(min)") { cmpi_allreduce_int64(pl, Int32(n), 2) }
                try wait(submit("MPI_Allreduce(max)") { cmpi_allreduce_int64(ph, Int32(n), 1) })
            }
        }
        return (lo, hi)
    }

    /// Starts an in-place float sum over ranks of `count` values at `pointer` (which must stay
    /// valid until `wait` returns for the ticket); `prepare` runs on the communication thread first.
    func startSum(_ pointer: UnsafeMutablePointer<Float>, count: Int, prepare: @escaping () -> Void) -> Int {
        submit("MPI_Allreduce(gradient bucket of \(count) floats)") { [self] in
            prepare()
            let t0 = DispatchTime.now().uptimeNanoseconds
            let rc = cmpi_allreduce_float(pointer, Int32(count), 0)
            bucketNanoseconds.add(DispatchTime.now().uptimeNanoseconds - t0, ordering: .relaxed)
            return rc
        }
    }

    /// Seconds spent in gradient-bucket allreduces so far (on the communication thread).
    public var bucketSeconds: Double { Double(bucketNanoseconds.load(ordering: .relaxed)) / 1e9 }
    private let bucketNanoseconds = Atomic<UInt64>(0)

    public func barrier() throws {
        try wait(submit("MPI_Barrier") { cmpi_barrier() })
    }

    /// Ends every rank of the job (MPI_Abort): after an error on this rank.
    public func abort(code: Int32) -> Never {
        cmpi_abort(code)
        exit(code)
    }

    /// MPI_Finalize after the last collective.
    public func finish() {
        if threaded {
            cond.lock()
            finished = true
            cond.broadcast()
            cond.unlock()
        }
        _ = submitFinalize()
    }

    private func submitFinalize() -> Int32 {
        // After the communication thread has drained its queue and exited.
        cond.lock()
        while threaded && completed < submitted && failure == nil { cond.wait() }
        cond.unlock()
        return cmpi_finalize()
    }
}
