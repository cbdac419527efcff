#!/usr/bin/env bash
# Issue 6's table: the pure-Swift CPU backend against PyTorch (CPU, 2 threads) on the same cases,
# interleaved (PyTorch, Swift, PyTorch, Swift, ...) so both see the same machine state, then the
# median over rounds of each case's speed ratio.
#
# Usage: scripts/compare-pytorch.sh [OUT_DIR]      env: ROUNDS (3), CASES, PYTHON (~/torchvenv/bin/python3),
#        CNN_BENCH (.build/release/cnn-bench), STEPS (15), REPS (10)
# Needs PyTorch (see ../shared/bench/README.md) and a release build (make build).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/bench-pytorch}"
rounds="${ROUNDS:-3}"
cases="${CASES:-train:optimized:128,train:cnn:128,infer:optimized:256,train:speedrun:512}"
python="${PYTHON:-$HOME/torchvenv/bin/python3}"
bench="${CNN_BENCH:-$root/.build/release/cnn-bench}"
baseline="${BASELINE:-$root/../shared/bench/pytorch_baseline.py}"
[ -x "$python" ] || { echo "no PyTorch Python at $python (set PYTHON; see ../shared/bench/README.md)"; exit 1; }
[ -x "$bench" ] || { echo "no cnn-bench at $bench (run make build, or set CNN_BENCH)"; exit 1; }
[ -f "$baseline" ] || { echo "no pytorch_baseline.py at $baseline (set BASELINE)"; exit 1; }
mkdir -p "$out"
for r in $(seq 1 "$rounds"); do
    echo "== round $r/$rounds: PyTorch"
    OMP_NUM_THREADS=2 "$python" "$baseline" --cases "$cases" --steps "${STEPS:-15}" --warmup 3 \
        --speedrun-steps "${SPEEDRUN_STEPS:-5}" --speedrun-warmup 2 --out "$out/pytorch-$r.json" >/dev/null
    echo "== round $r/$rounds: SwiftCNN"
    "$bench" --device cpu --filter "$cases" --reps "${REPS:-10}" --out "$out/swift-$r.json" >/dev/null
done
python3 - "$out" "$rounds" "$cases" <<'PY'
import json, statistics, sys
out, rounds, cases = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
def pt(r):
    return {c["case"]: c for c in json.load(open(f"{out}/pytorch-{r}.json"))["results"]}
def sw(r):
    return {c["name"]: c for c in json.load(open(f"{out}/swift-{r}.json"))["results"] if c.get("status") == "ok"}
def batch(case): return int(case.split(":")[-1])
rows = []
print(f"{'case':22} {'PyTorch img/s':>14} {'Swift img/s':>12} {'Swift/PyTorch':>14}   (medians over {rounds} interleaved rounds)")
for case in cases:
    p, s, ratio = [], [], []
    for r in range(1, rounds + 1):
        a, b = pt(r).get(case), sw(r).get(case)
        if not a or not b: continue
        pi = batch(case) / a["step_s_median"]
        si = batch(case) / (b["wallMs"]["median"] / 1000)
        p.append(pi); s.append(si); ratio.append(si / pi)
    if not ratio: print(f"{case:22} (missing)"); continue
    print(f"{case:22} {statistics.median(p):14,.0f} {statistics.median(s):12,.0f} {statistics.median(ratio):13.2f}x"
          f"   ratios {', '.join(f'{x:.2f}' for x in ratio)}")
PY
