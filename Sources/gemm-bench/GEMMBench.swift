// Benchmark driver for the fast SGEMM (Sources/SGEMM): the gemm-bench executable, which
// scripts/gemm-bench.sh builds (swift build --product gemm-bench) and drives from
// scripts/gemm_bench.py. Reads commands on stdin, one per line, answers one line each:
//   gemm TA TB M N K REPS   -> "<median seconds per call> <max abs error vs. a Double reference on a sample>"
//   poolwork TASKS WORK_US GAP_US REPS -> median job time, ThreadPool then concurrentPerform
//   loop TA TB M N K CALLS  -> seconds for CALLS back-to-back calls (nothing else allocates)
//   scale M N K CALLS ROUNDS -> GFLOP/s on 1 thread / 2 threads, alternating ROUNDS times
//   kernel KC REPS          -> median seconds of one micro-kernel call on L1-resident panels
//   pool TASKS REPS         -> median seconds of a near-empty parallelFor: ParallelTask form, closure form,
//                              DispatchQueue.concurrentPerform
//   quit
// Environment: SWIFTCNN_THREADS (threads), CPUTIME=1 (thread CPU time instead of wall time), GEMM_KC / GEMM_MC / GEMM_NC (blocking sweep).

import Foundation
import Dispatch
import SGEMM

/// Wall time, or this thread's CPU time with CPUTIME=1 (robust on a loaded machine; 1 thread only).
let useThreadCPUTime = ProcessInfo.processInfo.environment["CPUTIME"] == "1"
func now() -> Double {
    var t = timespec()
    clock_gettime(useThreadCPUTime ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

func env(_ name: String) -> Int? { ProcessInfo.processInfo.environment[name].flatMap { Int($0) } }


final class Buf {
    let p: UnsafeMutablePointer<Float>
    let count: Int
    init(_ count: Int, seed: UInt64) {
        self.count = count
        p = .allocate(capacity: count)
        var s = seed
        for i in 0..<count {
            s = s &* 6364136223846793005 &+ 1442695040888963407
            p[i] = Float(Int64(bitPattern: s >> 11) % 2001) / 1000.0 - 1.0
        }
    }
}

struct Sink: @unchecked Sendable { let p: UnsafeMutablePointer<Int> }
/// Busy work for about `seconds` (wall clock).
func spin(_ seconds: Double) { let end = now() + seconds; while now() < end {} }
struct SpinTask: ParallelTask, @unchecked Sendable {
    let sink: Sink, seconds: Double
    func run(_ i: Int) { spin(seconds); sink.p[i * 16] &+= 1 }
}
struct SinkTask: ParallelTask { let sink: Sink; func run(_ i: Int) { sink.p[i * 16] &+= 1 } }
func reply(_ s: String) { FileHandle.standardOutput.write((s + "\n").data(using: .utf8)!) }
func median(_ xs: [Double]) -> Double { let s = xs.sorted(); return s[s.count / 2] }

@main
struct GEMMBenchMain {
    static func main() {
        let defaults = GEMMBlocking()
        let blocking = GEMMBlocking(kc: env("GEMM_KC") ?? defaults.kc, mc: env("GEMM_MC") ?? defaults.mc,
                                    nc: env("GEMM_NC") ?? defaults.nc)
        let gemm = FastGEMM(pool: ThreadPool.shared, blocking: blocking)
        var cache: [String: (Buf, Buf, Buf)] = [:]
        while let line = readLine() {
            let f = line.split(separator: " ").map(String.init)
            if f.isEmpty { continue }
            switch f[0] {
            case "gemm":
                let ta = f[1] == "1", tb = f[2] == "1"
                let m = Int(f[3])!, n = Int(f[4])!, k = Int(f[5])!, reps = Int(f[6])!
                let key = "\(m) \(n) \(k)"
                let pad = env("LDPAD") ?? 0   // extra elements per row of A, B, C (avoids power-of-two strides)
                if cache[key] == nil { cache[key] = (Buf(m * (k + pad) + k * pad, seed: 1), Buf(k * (n + pad) + n * pad, seed: 2), Buf(m * (n + pad), seed: 3)) }
                let (a, b, c) = cache[key]!
                let lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad
                var times: [Double] = []
                gemm.sgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 1, a: a.p, lda: lda, b: b.p, ldb: ldb,
                           beta: 0, c: c.p, ldc: ldc)   // warm-up
                for _ in 0..<reps {
                    let t0 = now()
                    gemm.sgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 1, a: a.p, lda: lda, b: b.p, ldb: ldb,
                               beta: 0, c: c.p, ldc: ldc)
                    times.append(now() - t0)
                }
                // Spot-check 64 entries against a Double dot product.
                var err = 0.0
                for t in 0..<64 {
                    let i = (t * 7919) % m, j = (t * 104729) % n
                    var s = 0.0
                    for p in 0..<k {
                        let av = ta ? a.p[p * lda + i] : a.p[i * lda + p]
                        let bv = tb ? b.p[j * ldb + p] : b.p[p * ldb + j]
                        s += Double(av) * Double(bv)
                    }
                    err = max(err, abs(s - Double(c.p[i * ldc + j])) / (1 + abs(s)))
                }
                reply("\(median(times)) \(err)")
            case "pool":
                // Overhead of starting a job: parallelFor with near-empty tasks, back to back (so the
                // workers are awake, as in a training step), then the same with concurrentPerform.
                let tasks = Int(f[1])!, reps = Int(f[2])!
                var t1: [Double] = [], t2: [Double] = [], t3: [Double] = []
                let sink = Sink(p: .allocate(capacity: tasks * 16))
                for _ in 0..<reps {
                    var t0 = now()
                    ThreadPool.shared.parallelFor(tasks, SinkTask(sink: sink))
                    t1.append(now() - t0)
                    t0 = now()
                    ThreadPool.shared.parallelFor(tasks) { i in sink.p[i * 16] &+= 1 }
                    t2.append(now() - t0)
                    t0 = now()
                    DispatchQueue.concurrentPerform(iterations: tasks) { i in sink.p[i * 16] &+= 1 }
                    t3.append(now() - t0)
                }
                reply("\(median(t1)) \(median(t2)) \(median(t3))")
            case "poolwork":
                // poolwork TASKS WORK_US GAP_US REPS: tasks of WORK_US microseconds of arithmetic each,
                // with GAP_US of serial work between jobs (as a training step between its parallel
                // ops). Prints the median job time for ThreadPool (task form) and concurrentPerform.
                let tasks = Int(f[1])!, work = Double(f[2])! * 1e-6, gap = Double(f[3])! * 1e-6, reps = Int(f[4])!
                let sink = Sink(p: .allocate(capacity: tasks * 16))
                let task = SpinTask(sink: sink, seconds: work)
                var t1: [Double] = [], t2: [Double] = []
                for _ in 0..<reps {
                    spin(gap)
                    var t0 = now()
                    ThreadPool.shared.parallelFor(tasks, task)
                    t1.append(now() - t0)
                    spin(gap)
                    t0 = now()
                    DispatchQueue.concurrentPerform(iterations: tasks) { i in task.run(i) }
                    t2.append(now() - t0)
                }
                reply("\(median(t1)) \(median(t2))")
            case "loop":
                // loop TA TB M N K CALLS: just the calls (for counting allocations with perf probes).
                let ta = f[1] == "1", tb = f[2] == "1"
                let m = Int(f[3])!, n = Int(f[4])!, k = Int(f[5])!, calls = Int(f[6])!
                let a = Buf(m * k, seed: 1), b = Buf(k * n, seed: 2), c = Buf(m * n, seed: 3)
                let t0 = now()
                for _ in 0..<calls {
                    gemm.sgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 1, a: a.p, lda: ta ? m : k,
                               b: b.p, ldb: tb ? k : n, beta: 0, c: c.p, ldc: n)
                }
                reply("\(now() - t0) 0")
            case "scale":
                // scale M N K CALLS ROUNDS: CALLS calls on a 1-thread pool, then on a 2-thread pool,
                // alternating ROUNDS times; prints GFLOP/s pairs (thread scaling, same process).
                let m = Int(f[1])!, n = Int(f[2])!, k = Int(f[3])!, calls = Int(f[4])!, rounds = Int(f[5])!
                let a = Buf(m * k, seed: 1), b = Buf(k * n, seed: 2), c = Buf(m * n, seed: 3)
                let g1 = FastGEMM(pool: ThreadPool(threadCount: 1), blocking: blocking)
                let g2 = FastGEMM(pool: ThreadPool(threadCount: 2), blocking: blocking)
                var out = ""
                for _ in 0..<rounds {
                    for g in [g1, g2] {
                        let t0 = now()
                        for _ in 0..<calls {
                            g.sgemm(transA: false, transB: false, m: m, n: n, k: k, alpha: 1, a: a.p, lda: k,
                                    b: b.p, ldb: n, beta: 0, c: c.p, ldc: n)
                        }
                        out += "\(Int(2.0 * Double(m * n * k * calls) / (now() - t0) / 1e9))" + (g === g1 ? "/" : " ")
                    }
                }
                reply(out)
            case "kernel":
            // The micro-kernel alone on L1-resident panels: the ceiling for the whole GEMM.
            let kc = Int(f[1])!, reps = Int(f[2])!
            let a = Buf(kc * GEMMTile.mr, seed: 4), b = Buf(kc * GEMMTile.nr, seed: 5)
            let c = Buf(GEMMTile.mr * GEMMTile.nr, seed: 6)
            var times: [Double] = []
            for _ in 0..<reps {
                let t0 = now()
                for _ in 0..<1000 {
                    microKernel12x32(kc: kc, a: a.p, b: b.p, c: c.p, ldc: GEMMTile.nr, alpha: 1, beta: 1)
                }
                times.append((now() - t0) / 1000)
            }
            reply("\(median(times)) 0")
        case "quit":
                exit(0)
            default:
                reply("unknown command")
            }
        }
    }
}
