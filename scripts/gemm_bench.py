#!/usr/bin/env python3
"""Times the pure-Swift SGEMM (the gemm-bench executable, Sources/gemm-bench, a persistent process
built by gemm-bench.sh) against numpy's BLAS, interleaved: for each shape and round, one numpy batch
then one Swift batch, so both see the same machine load. Prints GFLOP/s (median over rounds of per-call medians) and the ratio swift/numpy."""
import os, subprocess, sys, time
if os.environ.get("CPUTIME") == "1":
    os.environ["SWIFTCNN_THREADS"] = "1"; os.environ["OPENBLAS_NUM_THREADS"] = "1"
import numpy as np

exe = sys.argv[1]
rounds = int(os.environ.get("ROUNDS", "5"))
# CPUTIME=1: time with this thread's CPU time (robust against other processes; single thread only,
# so it also sets SWIFTCNN_THREADS=1 and OPENBLAS_NUM_THREADS=1 — numpy must be imported after).
clock = time.thread_time if os.environ.get("CPUTIME") == "1" else time.perf_counter
only = os.environ.get("SHAPES")
# Pause before each batch: OpenBLAS's idle threads spin for a while after a call, and so do ours
# (briefly); without the pause each side is timed while the other still burns a core.
settle = float(os.environ.get("SETTLE", "0.2"))  # e.g. "square" or "model"

# (label, transA, transB, m, n, k)
square = [(f"square {s}", 0, 0, s, s, s) for s in (256, 512, 1024, 2048)]
model = [
    ("conv fwd  64x(256*128)x288", 0, 0, 64, 256 * 128, 288),      # Cout x (OH*OW*batch) x Cin*3*3
    ("conv fwd  128x(64*128)x576", 0, 0, 128, 64 * 128, 576),
    ("conv dW   64x288x(256*128)", 0, 1, 64, 288, 256 * 128),      # dy * cols^T
    ("conv dX   288x(256*128)x64", 1, 0, 288, 256 * 128, 64),      # W^T * dy
    ("linear fwd 128x512x4096 (x W^T)", 0, 1, 128, 512, 4096),
    ("linear dX  128x4096x512 (dy W)", 0, 0, 128, 4096, 512),
    ("linear dW  512x4096x128 (dy^T x)", 1, 0, 512, 4096, 128),
]
shapes = (square if only != "model" else []) + (model if only != "square" else [])

proc = subprocess.Popen([exe], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
def ask(cmd):
    proc.stdin.write(cmd + "\n"); proc.stdin.flush()
    return proc.stdout.readline().split()

rng = np.random.default_rng(0)
def reps_for(flop):
    return max(3, min(50, int(2e9 / max(flop, 1) / 4)))

print(f"threads: swift SWIFTCNN_THREADS={os.environ.get('SWIFTCNN_THREADS', 'all')}, "
      f"numpy OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'all')}; rounds={rounds}")
print("GFLOP/s: median over rounds of each round's median call (best round in parentheses); ratio = swift/numpy")
print(f"{'shape':34s} {'numpy':>14s} {'swift':>14s} {'ratio':>6s} {'(best)':>6s}  {'max rel err':>11s}")
for label, ta, tb, m, n, k in shapes:
    a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
    A = a.T if ta else a
    B = b.T if tb else b
    c = np.empty((m, n), dtype=np.float32)
    flop = 2.0 * m * n * k
    reps = reps_for(flop)
    np.matmul(A, B, out=c)
    npt, swt, err = [], [], 0.0
    for r in range(rounds):
        time.sleep(settle)   # let the other runtime's spinning threads go to sleep
        np.matmul(A, B, out=c)
        ts = []
        for _ in range(reps):
            t0 = clock(); np.matmul(A, B, out=c); ts.append(clock() - t0)
        npt.append(sorted(ts)[len(ts) // 2])
        time.sleep(settle)
        out = ask(f"gemm {ta} {tb} {m} {n} {k} {reps}")
        swt.append(float(out[0])); err = max(err, float(out[1]))
    tn = sorted(npt)[rounds // 2]; tsw = sorted(swt)[rounds // 2]
    bn = min(npt); bsw = min(swt)
    g = lambda t: flop / t / 1e9
    print(f"{label:34s} {g(tn):6.1f} ({g(bn):5.1f}) {g(tsw):6.1f} ({g(bsw):5.1f}) {tn / tsw:6.2f} {bn / bsw:6.2f}  {err:11.2e}",
          flush=True)

if os.environ.get("POOL"):
    for tasks in (2, 16, 256):
        out = ask(f"pool {tasks} 2000")
        print(f"near-empty parallelFor({tasks}): ThreadPool task {float(out[0]) * 1e6:.2f} us, "
              f"closure {float(out[1]) * 1e6:.2f} us, concurrentPerform {float(out[2]) * 1e6:.2f} us")
    for tasks, work, gap in ((2, 10, 0), (2, 10, 50), (2, 10, 1000), (8, 5, 20), (2, 100, 100)):
        out = ask(f"poolwork {tasks} {work} {gap} 500")
        ideal = work * ((tasks + 1) // 2)
        print(f"{tasks} tasks of {work} us, {gap} us apart (ideal {ideal} us on 2 threads): "
              f"ThreadPool {float(out[0]) * 1e6:.1f} us, concurrentPerform {float(out[1]) * 1e6:.1f} us")
ask("quit") if False else proc.stdin.write("quit\n")
proc.stdin.close(); proc.wait()
